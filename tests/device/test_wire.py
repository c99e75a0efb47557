"""The one grammar of the device protocol (paygkit.device.wire): every answer line the device
writes reads back to the same values, every canonical line formats back to the same bytes,
and the line splitter cuts any stream the same way however it arrives."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygkit.device.firmware import OutcomeKind
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.ports import FeedbackKind, Led
from paygkit.device.serial_number import SERIAL_PATTERN
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.state import TamperFlag, TamperResponse
from paygkit.device.wire import (
    MAX_ANSWER_LENGTH,
    UNLIMITED,
    AnswerLine,
    BadLine,
    ClockLine,
    CodeReadBack,
    ConfigLine,
    Cut,
    ErrLine,
    ErrorCode,
    EventLine,
    HelloLine,
    HelpLine,
    KeyReadBack,
    LineSplitter,
    OkLine,
    OtherLine,
    PowerLine,
    ResultLine,
    SerialReadBack,
    SetupLine,
    StatusLine,
    parse_answer,
    quote,
    shown,
    split_words,
)
from paygkit.token import DeviceParams, TokenType, generate
from tests.device.protocol_host import KEY_HEX, REFERENCE_SETUP, STARTING_CODE

pytestmark = pytest.mark.one_firmware(
    "the protocol's line format, which paygkit writes and reads whichever firmware runs"
)

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
number = st.integers(0, 2**40)
word = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:+\-/]{0,19}", fullmatch=True)
digits = st.from_regex(r"[0-9]{1,20}", fullmatch=True)
upper_word = st.from_regex(r"[A-Z][A-Z_]{0,19}", fullmatch=True)


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


LINES: dict[type[AnswerLine], st.SearchStrategy[AnswerLine]] = {
    OkLine: st.builds(OkLine, command=maybe(upper_word), typing=maybe(st.just("") | digits)),
    ErrLine: st.builds(ErrLine, code=upper_word, message=printable.map(str.strip)),
    HelloLine: st.builds(
        HelloLine,
        protocol=maybe(number),
        model=maybe(word),
        firmware=maybe(word),
        simulator=maybe(st.booleans()),
        power=maybe(st.booleans()),
        provisioned=maybe(st.booleans()),
    ),
    HelpLine: st.builds(HelpLine, syntax=printable.map(str.strip)),
    SerialReadBack: st.builds(SerialReadBack, serial=st.from_regex(SERIAL_PATTERN, fullmatch=True)),
    CodeReadBack: st.builds(CodeReadBack, starting_code=st.integers(0, 999_999_999)),
    KeyReadBack: st.builds(KeyReadBack, key=st.binary(min_size=16, max_size=16)),
    SetupLine: st.builds(
        SetupLine,
        divider=maybe(st.integers(1, 255)),
        restricted=maybe(st.booleans()),
        test=maybe(st.just("") | digits),
        count=maybe(number),
    ),
    ResultLine: st.builds(
        ResultLine,
        outcome=maybe(st.sampled_from(OutcomeKind)),
        type=maybe(st.sampled_from(TokenType)),
        units=maybe(number),
        count=maybe(number),
        payg=maybe(st.booleans()),
        test=maybe(st.booleans()),
        active=maybe(st.booleans()),
        active_until=maybe(number),
        seconds_left=maybe(number | st.just(UNLIMITED)),
        wait=maybe(number),
        invalid=maybe(number),
        text=maybe(printable),
    ),
    StatusLine: st.builds(
        StatusLine,
        serial=maybe(st.just("") | st.from_regex(SERIAL_PATTERN, fullmatch=True)),
        provisioned=maybe(st.booleans()),
        now=maybe(number),
        active=maybe(st.booleans()),
        payg=maybe(st.booleans()),
        seconds_left=maybe(number | st.just(UNLIMITED)),
        active_until=maybe(number),
        count=maybe(number),
        used=maybe(st.lists(number, max_size=6).map(tuple)),
        invalid=maybe(number),
        blocked=maybe(number),
        tamper=maybe(st.integers(0, 7).map(TamperFlag)),
        test=maybe(st.booleans()),
        typing=maybe(st.just("") | digits),
        restricted=maybe(st.booleans()),
        divider=maybe(st.integers(1, 255)),
    ),
    EventLine: st.builds(
        EventLine,
        kind=maybe(st.sampled_from(FeedbackKind)),
        led=maybe(st.sampled_from(Led)),
        blinks=maybe(number),
        text=maybe(printable),
    ),
    ClockLine: st.builds(ClockLine, rtc=maybe(number), ticks=maybe(number)),
    ConfigLine: st.builds(
        ConfigLine,
        waiting=maybe(st.booleans()),
        tamper=maybe(st.sampled_from(TamperResponse)),
        keypad_timeout=maybe(number),
    ),
    PowerLine: st.builds(PowerLine, on=maybe(st.booleans())),
}


@pytest.mark.parametrize("kind", list(LINES), ids=[kind.__name__ for kind in LINES])
@settings(max_examples=150)
@given(data=st.data())
def test_format_then_parse_gives_the_same_values(
    kind: type[AnswerLine], data: st.DataObject
) -> None:
    line = data.draw(LINES[kind])
    written = line.format()
    read = parse_answer(written)
    assert type(read) is kind, (written, read)
    assert read == line
    # The line read formats to the same bytes: the written form is canonical.
    assert read.format() == written
    assert read.raw == written


@given(text=printable)
def test_quoting_round_trips_and_is_one_word(text: str) -> None:
    quoted = quote(text)
    assert split_words(f"x=1 text={quoted} y=2") == [("x", "1"), ("text", quoted), ("y", "2")]
    assert parse_answer(f"EVENT status text={quoted}").fields["text"] == text


def test_quoting_cleans_what_is_not_printable() -> None:
    assert quote('a "b" \\ \x07\u00e9') == '"a \\"b\\" \\\\ ??"'


# Every line the simulator answers, over a conversation that uses every command.
CONVERSATION = [
    "HELLO",
    "HELP",
    REFERENCE_SETUP,
    "STATUS",
    f"TOKEN {generate(DeviceParams.create(KEY_HEX, STARTING_CODE), count=1, days=1).digits}",
    "TOKEN 111111111",
    "TOKEN 12",
    "KEYS *12#",
    "KEYS #",
    "KEYS *123",
    "ADVANCE 2h",
    "CLOCK -1h",
    "CONFIG waiting=off",
    "POWER OFF",
    "HELLO",
    "STATUS",
    "POWER ON",
    "RESET",
    "FLASH",
    "SETUP serial=NEW1 code=1 key=" + KEY_HEX,
    "WIPE",
    "SETUP serial=NEW1 code=1 key=" + KEY_HEX + " divider=4 test=1234",
    "QUIT",
]


def test_every_line_the_device_writes_parses_back_to_the_same_bytes() -> None:
    interpreter = CommandInterpreter(SimulatedDevice(RamMemory()), newline="\r\n")
    seen: set[type[AnswerLine]] = set()
    for command in CONVERSATION:
        answer = interpreter.feed(command.encode("ascii") + b"\r\n").decode("ascii")
        for raw in answer.splitlines():
            line = parse_answer(raw)
            assert not isinstance(line, BadLine | OtherLine), (command, raw)
            assert line.format() == raw
            seen.add(type(line))
    assert seen == set(LINES)


def test_lines_the_protocol_does_not_define() -> None:
    assert isinstance(parse_answer("NOTE something new=1"), OtherLine)
    assert isinstance(parse_answer("XX:value"), OtherLine)
    assert isinstance(parse_answer("SN value"), OtherLine)
    bad = parse_answer("RESULT APPLIED count=two")
    assert isinstance(bad, BadLine)
    assert "count 'two', not a whole number" in bad.problem
    busy = parse_answer("ERR BUSY too many clients")
    assert isinstance(busy, ErrLine)
    assert (busy.error_code, busy.message) == (ErrorCode.BUSY, "too many clients")
    newer = parse_answer("ERR LOW_BATTERY charge it")
    assert isinstance(newer, ErrLine)
    assert (newer.code, newer.error_code) == ("LOW_BATTERY", None)
    # A field a newer device adds is kept for a person to read, and does not stop the line.
    status = parse_answer("STATUS count=2 battery=80")
    assert status == StatusLine(count=2)
    assert status.get("battery") == "80"


def test_a_key_never_shows_in_a_line_as_shown() -> None:
    sk = parse_answer("SK:" + KEY_HEX.upper())
    assert isinstance(sk, KeyReadBack)
    assert sk.key.hex() == KEY_HEX
    assert KEY_HEX not in (str(sk) + repr(sk)).lower()
    for line in (
        f"SETUP serial=A code=1 key={KEY_HEX}",
        f"#A;000000001;{KEY_HEX}",
        f"ERR BAD_ARGUMENT {KEY_HEX} is not a token",
    ):
        assert KEY_HEX not in shown(line).lower()
    bad = parse_answer(f"RESULT {KEY_HEX}")
    assert isinstance(bad, BadLine)
    assert KEY_HEX not in bad.problem.lower()


# --- the line splitter -------------------------------------------------------------------------

line_ends = st.sampled_from([b"\n", b"\r", b"\r\n"])
short_lines = st.lists(
    st.binary(max_size=40).filter(lambda data: b"\r" not in data and b"\n" not in data),
    max_size=8,
)


@given(lines=short_lines, ends=st.lists(line_ends, min_size=8, max_size=8), data=st.data())
def test_the_splitter_gives_the_same_lines_however_the_bytes_arrive(
    lines: list[bytes], ends: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(line + end for line, end in zip(lines, ends, strict=False))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    splitter = LineSplitter(40)
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        splitter.feed(stream[start:stop])
    out: list[bytes | Cut] = []
    while (line := splitter.next_line()) is not None:
        out.append(line)
    expected: list[bytes | Cut] = []
    for line, end in zip(lines, ends, strict=False):
        expected += [line, b""] if end == b"\r\n" else [line]
    assert out == expected


def test_the_splitter_cuts_a_line_over_the_limit_and_goes_on() -> None:
    splitter = LineSplitter(MAX_ANSWER_LENGTH)
    splitter.feed(b"x" * (MAX_ANSWER_LENGTH + 1))
    assert splitter.cutting
    assert splitter.next_line() is None
    splitter.feed(b"y" * 5000 + b"\nOK\n")
    assert [splitter.next_line(), splitter.next_line()] == [Cut.TOO_LONG, b"OK"]
    assert not splitter.cutting


def test_the_splitter_edits_lines_only_when_asked() -> None:
    typed = LineSplitter(10, editing=True)
    typed.feed(b"HELXX\x08\x08LO\n\x7fA\n")
    assert [typed.next_line(), typed.next_line()] == [b"HELLO", b"A"]
    raw = LineSplitter(10)
    raw.feed(b"A\x08B\n")
    assert raw.next_line() == b"A\x08B"


def test_fields_of_a_line_made_to_be_sent_are_those_of_its_text() -> None:
    line = ResultLine(outcome=OutcomeKind.BLOCKED, wait=60, text='say "hi"')
    assert line.format() == 'RESULT BLOCKED wait=60 text="say \\"hi\\""'
    assert (line.tag, line.value, line.fields) == (
        "RESULT",
        "BLOCKED",
        {"wait": "60", "text": 'say "hi"'},
    )
    assert line.int("wait") == 60
    assert dataclasses.replace(line, wait=None).format() == 'RESULT BLOCKED text="say \\"hi\\""'
