"""The C protocol grammar (firmware/lib/pgk_wire.c) against paygkit's own.

The line splitter against `wire.LineSplitter`; command parsing against
paygkit's `CommandInterpreter` itself, run on a recording stand-in device
that notes what the interpreter would have asked of a device (so a command
either reaches the device with the same values, or is refused with the same
ERR line, byte for byte); every answer line against `wire.py`'s `format()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygkit.device.commands import HELP_LINES
from paygkit.device.firmware import OutcomeKind
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.ports import FeedbackKind, Led
from paygkit.device.state import DeviceConfig, TamperFlag, TamperResponse
from paygkit.device.wire import (
    UNLIMITED,
    ClockLine,
    CodeReadBack,
    ConfigLine,
    Cut,
    EventLine,
    HelloLine,
    HelpLine,
    KeyReadBack,
    LineSplitter,
    OkLine,
    PowerLine,
    ResultLine,
    SerialReadBack,
    SetupLine,
    StatusLine,
)
from paygkit.token import TokenType
from tests.firmware.conftest import HOST_DIR, LIBRARY_DIR, Compiler, HostProgram

# The RTC the stand-in simulator shows, as the harness's CLOCK_NOW: far enough
# from both ends that no CLOCK change in range leaves 0..MAX_RTC.
CLOCK_NOW = 2_000_000_000
WIRE_SOURCES = (HOST_DIR / "wire_harness.c", LIBRARY_DIR / "pgk_wire.c")
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def wire(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    # The simulator commands are parsed only in builds that have them.
    program = compile_host_program("wire_harness", WIRE_SOURCES, {"PGK_WITH_SIM_CONTROLS": 1})
    harness = HostProgram(program, tmp_path_factory.mktemp("wire_harness") / "stderr.txt")
    yield harness
    harness.close()


def _hex(data: bytes | str) -> str:
    raw = data.encode("latin-1") if isinstance(data, str) else data
    return raw.hex() or "-"


# --- the line splitter ---------------------------------------------------------------------


def python_split(data: bytes) -> str:
    splitter = LineSplitter(256, editing=True)
    splitter.feed(data)
    parts = []
    while (line := splitter.next_line()) is not None:
        parts.append("!" if line is Cut.TOO_LONG else (line.hex() or "="))
    return " ".join(parts) + (" " if parts else "") + f";{int(splitter.cutting)}"


_SPLIT_PIECES = st.one_of(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"\x08", b"\x7f", b"\x00", b"\xff", b" ", b"\t"]),
    st.builds(lambda n, c: c * n, st.integers(0, 300), st.sampled_from([b"a", b"1", b" "])),
    st.binary(max_size=20),
)


@SLOW
@given(st.lists(_SPLIT_PIECES, max_size=12).map(b"".join))
def test_line_splitter_cuts_like_paygkit(wire: HostProgram, data: bytes) -> None:
    assert wire.ask(f"split {_hex(data)}") == python_split(data)


@pytest.mark.parametrize("length", [255, 256, 257, 300, 600])
@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"])
def test_line_limit_edges(wire: HostProgram, length: int, end: bytes) -> None:
    data = b"x" * length + end + b"STATUS" + end
    assert wire.ask(f"split {_hex(data)}") == python_split(data)
    edited = b"y" * length + b"\x08" * 3 + end
    assert wire.ask(f"split {_hex(edited)}") == python_split(edited)


# --- commands ------------------------------------------------------------------------------


class _StopError(Exception):
    """Raised by the stand-in once the interpreter asked the device for something."""


class Recorder:
    """A device that notes the first thing asked of it, as the harness prints a command."""

    provisioning = None

    def __init__(self) -> None:
        self.asked: str | None = None
        self._keys = ""

    def _note(self, text: str) -> None:
        self.asked = text
        raise _StopError

    def provision(self, **kw: Any) -> None:
        self._note(
            f"SETUP serial={kw['serial']} code={kw['starting_code']} key={kw['key'].hex()} "
            f"divider={kw['time_divider']} restricted={int(kw['restricted_digits'])} "
            f"test={kw['test_code'] or '-'} count={kw['count']}"
        )

    def enter_token(self, text: str) -> None:
        self._note(f"TOKEN {text}")

    def press(self, key: str) -> None:
        self._keys += key

    def status(self) -> None:
        self._note(f"KEYS {self._keys}" if self._keys else "STATUS")


class SimulatorRecorder(Recorder):
    powered = True
    rtc = CLOCK_NOW
    ticks = 0
    config = DeviceConfig()

    def drain_feedback(self) -> list[Any]:
        return []

    def advance(self, seconds: int) -> None:
        self._note(f"ADVANCE {seconds}")

    def set_rtc(self, t: int) -> None:
        self._note(f"CLOCK {t}")

    def configure(self, config: DeviceConfig) -> None:
        waiting = "on" if config.waiting_period.enabled else "off"
        self._note(
            f"CONFIG waiting={waiting} tamper={config.tamper_response.value} "
            f"keypad_timeout={config.keypad_timeout_seconds}"
        )

    def power_on(self) -> None:
        self._note("POWER ON")

    def power_off(self) -> None:
        self._note("POWER OFF")

    def reset(self) -> None:
        self._note("RESET")

    def wipe(self) -> None:
        self._note("WIPE")


def python_parse(line: bytes, simulator: bool) -> str:
    """What paygkit makes of a line, in the harness's form."""
    device = SimulatorRecorder() if simulator else Recorder()
    interpreter = CommandInterpreter(device)  # type: ignore[arg-type]
    answer = interpreter.handle_line(line.decode("latin-1"))
    if device.asked is not None:
        if device.asked.startswith("SETUP"):
            reference = line.decode("latin-1").replace("\t", " ").strip().startswith("#")
            return f"{device.asked} ref={int(reference)}"
        return device.asked
    if not answer:
        return "BLANK"
    final = answer[-1]
    if final.startswith("ERR"):
        assert len(answer) == 1
        return final
    assert final.startswith("OK "), answer
    return final[3:]


def check_parse(wire: HostProgram, line: bytes) -> None:
    for simulator in (True, False):
        expected = python_parse(line, simulator)
        assert wire.ask(f"parse {int(simulator)} {_hex(line)}") == expected, (line, simulator)


_COMMANDS = [
    "HELLO", "HELP", "SETUP", "KEYS", "TOKEN", "STATUS", "ADVANCE", "CLOCK", "CONFIG",
    "POWER", "RESET", "WIPE", "QUIT", "FLASH", "hello", "Setup", "status", "abcdefabcdefabcdefab",
    "Abcdefabcdefabcdef_x", "x" * 21, "1X", "",
]  # fmt: skip
_NAMES = [
    "serial", "code", "key", "divider", "restricted", "test", "count", "waiting", "tamper",
    "keypad_timeout", "SERIAL", "Key", "bogus", "", "abcdefabcdefabcdefabc", "a_b", "9",
]  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        [
            "", "SLT220000001", "TEST220000001", "a", "-x", "a" * 32, "a" * 33, "x.y_z:1+2-3",
            "516959010", "000000001", "1234567890", "0", "1", "255", "256", "2147483647",
            "2147483648", "999999999999", "9999999999999", "on", "OFF", "Yes", "true", "False",
            "lock", "REPORT", "maybe", "3600", "3601", "1234", "12345678901234567890",
            "123456789012345678901", "bc41ec9530f6dac86b1a29ab82edc5fb",
            "BC41EC9530F6DAC86B1A29AB82EDC5FB", "bc41ec9530f6dac86b1a29ab82edc5f",
            "bc41ec9530f6dac86b1a29ab82edc5fbb", "gc41ec9530f6dac86b1a29ab82edc5fb", "=", "a=b",
        ]
    ),
    st.text(alphabet="0123456789abcdefABCDEF=.:+-_ xyz", max_size=40),
)  # fmt: skip
_DURATIONS = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "90",
            "90s",
            "30m",
            "2h",
            "3d",
            "3650d",
            "3651d",
            "2H",
            "1D",
            "87600h",
            "87601h",
            "5256000m",
            "5256001m",
            "315360000",
            "315360001",
            "999999999999",
            "9999999999999",
            "1x",
            "h",
            "1 h",
            "+1h",
            "-1",
            "1.5h",
            "1hh",
        ]
    ),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.integers(0, 10**13),
        st.sampled_from(["", "s", "m", "h", "d", "S", "x"]),
    ),
)


def _join(words: list[str], spaces: list[str]) -> str:
    return "".join(w + s for w, s in zip(words, spaces, strict=False)) + "".join(
        words[len(spaces) :]
    )


_SPACE = st.sampled_from([" ", "  ", "\t", " \t "])


@st.composite
def command_lines(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["setup", "ref", "keys", "token", "duration", "clock", "any"]))
    if kind == "setup" or (kind == "any" and draw(st.booleans())):
        word = draw(st.sampled_from(["SETUP", "setup", "CONFIG", "config"]))
        args = draw(
            st.lists(
                st.one_of(
                    st.builds(lambda n, v: f"{n}={v}", st.sampled_from(_NAMES), _VALUES),
                    _VALUES,
                ),
                max_size=9,
            )
        )
        if word.upper() == "SETUP" and draw(st.booleans()):
            args = [
                "serial=" + draw(_VALUES),
                "code=" + draw(_VALUES),
                "key=" + draw(_VALUES),
                *args[:4],
            ]
            args = draw(st.permutations(args))
        parts = [word, *args]
    elif kind == "ref":
        fields = draw(st.lists(_VALUES, min_size=0, max_size=4))
        return "#" + ";".join(fields)
    elif kind == "keys":
        word = draw(st.sampled_from(["KEYS", "keys", "TOKEN", "token"]))
        body = draw(st.text(alphabet="0123456789*# -x", max_size=40))
        return f"{word} {body}"
    elif kind == "token":
        return "TOKEN " + draw(st.text(alphabet="0123456789 -a+", max_size=30))
    elif kind in ("duration", "clock"):
        word = draw(st.sampled_from(["ADVANCE", "advance", "CLOCK", "clock"]))
        sign = draw(st.sampled_from(["", "", "+", "-"])) if word.upper() == "CLOCK" else ""
        parts = [word, sign + draw(_DURATIONS)]
    else:
        word = draw(st.sampled_from(_COMMANDS))
        parts = [word, *draw(st.lists(st.sampled_from(["ON", "off", "x", "", "1"]), max_size=2))]
    spaces = draw(st.lists(_SPACE, min_size=len(parts), max_size=len(parts)))
    lead = draw(st.sampled_from(["", " ", "\t"]))
    return lead + _join(parts, spaces)


@SLOW
@given(command_lines())
def test_command_lines_parse_like_paygkit(wire: HostProgram, line: str) -> None:
    check_parse(wire, line.encode("latin-1"))


@SLOW
@given(st.binary(max_size=80))
def test_random_bytes_parse_like_paygkit(wire: HostProgram, data: bytes) -> None:
    check_parse(wire, data.replace(b"\n", b"").replace(b"\r", b""))


@SLOW
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_printable_text_parses_like_paygkit(wire: HostProgram, text: str) -> None:
    check_parse(wire, text.encode("ascii"))


KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "\t",
        "HELLO",
        "hello x",
        "HELP",
        f"SETUP serial=SLT220000001 code=516959010 key={KEY} divider=4",
        f"SETUP serial=SLT1 code=1 key={KEY} restricted=yes test=1234 count=0",
        f"#TEST220000001;516959010;{KEY}",
        f"#TEST220000001;51695901;{KEY}",
        f"#TEST220000001;516959010;{KEY};",
        f"# TEST220000001;516959010;{KEY}",
        "#",
        "#;;",
        f"#{'a' * 33};516959010;{KEY}",
        f"#-a;516959010;{KEY}",
        f"#{KEY};516959010;{KEY}",
        "SETUP",
        "SETUP serial",
        "SETUP =x",
        "SETUP serial=",
        "SETUP serial=a serial=b",
        "SETUP Bogus=1",
        "SETUP abcdefabcdefabcdefab=1",
        "SETUP serial=a code=1",
        "SETUP key=x",
        f"SETUP serial=a code=1234567890 key={KEY}",
        f"SETUP serial=a code=1 key={KEY} test=12a",
        f"SETUP serial=a code=1 key={KEY} divider=0",
        f"SETUP serial=a code=1 key={KEY} divider=256",
        f"SETUP serial=a code=1 key={KEY} restricted=2",
        f"SETUP serial=a code=1 key={KEY} count=2147483648",
        f"SETUP serial=a code=1 key={KEY[:-1]}",
        f"SETUP serial=a code=1 key={KEY[:-1]}g",
        "KEYS",
        "KEYS *588 224 011#",
        "KEYS *12a",
        "TOKEN",
        "TOKEN 588  224-011",
        "TOKEN  588\t224 011 ",
        "STATUS now",
        "ADVANCE",
        "ADVANCE 2h",
        "ADVANCE 3651d",
        "CLOCK",
        "CLOCK -1h",
        "CLOCK +3d",
        "CLOCK 1735689600",
        "CLOCK 4102444801",
        "CLOCK +",
        "CONFIG",
        "CONFIG waiting=off",
        "CONFIG tamper=LOCK keypad_timeout=60 waiting=no",
        "CONFIG tamper=maybe",
        "CONFIG keypad_timeout=0",
        "CONFIG waiting",
        "POWER",
        "POWER on",
        "POWER OFF",
        "POWER up",
        "RESET",
        "WIPE now",
        "QUIT",
        "QUIT now",
        "FLASH",
        "abcdefabcdefabcdef",
        "x" * 256,
        "bad\x00byte",
        "caf\xe9",
    ],
)
def test_command_examples(wire: HostProgram, line: str) -> None:
    check_parse(wire, line.encode("latin-1"))


# --- answer lines --------------------------------------------------------------------------

_OUTCOMES = list(OutcomeKind)
_TYPES = [TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC]
_EVENTS = list(FeedbackKind)
_TAMPER_BITS = [TamperFlag.RTC_SLOW, TamperFlag.RTC_FAST, TamperFlag.RTC_BACKWARDS]
_BIG = st.integers(0, 2**63)
_U32 = st.integers(0, 2**32 - 1)
_TEXTS = st.text(alphabet=st.characters(max_codepoint=255), max_size=40) | st.sampled_from(
    ["+1 day", 'say "hi"', "back\\slash", "tab\there"]
)
_WORDS = st.text(alphabet="ABCxyz0123456789._:+-", min_size=0, max_size=32)


def _newline(crlf: bool) -> str:
    return "\r\n" if crlf else "\n"


def _tamper(bits: int) -> TamperFlag:
    flags = TamperFlag.NONE
    for i, flag in enumerate(_TAMPER_BITS):
        if bits & (1 << i):
            flags |= flag
    return flags


# The used counts as paygkit keeps them, the only lists a device shows: those
# within the unordered window (16) below the highest, ascending.
_USED_COUNTS = st.builds(
    lambda top, picked: sorted({top - d for d in picked if d <= top}),
    _U32,
    st.sets(st.integers(0, 16), max_size=17),
)


@settings(max_examples=200, deadline=None)
@given(
    serial=_WORDS,
    provisioned=st.booleans(),
    now=_BIG,
    active=st.booleans(),
    payg=st.booleans(),
    left=st.none() | _BIG,
    until=_BIG,
    count=_U32,
    used=_USED_COUNTS,
    invalid=_U32,
    blocked=_U32,
    tamper=st.integers(0, 7),
    test=st.booleans(),
    typing=st.text(alphabet="0123456789", max_size=20),
    restricted=st.booleans(),
    divider=st.integers(0, 255),
    crlf=st.booleans(),
)
def test_status_line(wire: HostProgram, **v: Any) -> None:
    line = StatusLine(
        serial=v["serial"],
        provisioned=v["provisioned"],
        now=v["now"],
        active=v["active"],
        payg=v["payg"],
        seconds_left=UNLIMITED if v["left"] is None else v["left"],
        active_until=v["until"],
        count=v["count"],
        used=tuple(v["used"]),
        invalid=v["invalid"],
        blocked=v["blocked"],
        tamper=_tamper(v["tamper"]),
        test=v["test"],
        typing=v["typing"],
        restricted=v["restricted"],
        divider=v["divider"],
    ).format()
    used = ",".join(map(str, v["used"])) or "-"
    request = (
        f"status {_hex(v['serial'])} {int(v['provisioned'])} {v['now']} {int(v['active'])} "
        f"{int(v['payg'])} {v['left'] or 0} {v['until']} {v['count']} {used} {v['invalid']} "
        f"{v['blocked']} {v['tamper']} {int(v['test'])} {_hex(v['typing'])} "
        f"{int(v['restricted'])} {v['divider']} {int(v['crlf'])} {int(v['left'] is None)}"
    )
    assert bytes.fromhex(wire.ask(request)) == (line + _newline(v["crlf"])).encode("ascii")


_RESULT_FIELDS = [
    "type", "units", "count", "payg", "test", "active", "active_until", "seconds_left", "wait",
    "invalid",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    fields=st.integers(0, 1023),
    outcome=st.integers(0, len(_OUTCOMES) - 1),
    token_type=st.integers(0, 3),
    units=_U32,
    count=_U32,
    payg=st.booleans(),
    test=st.booleans(),
    active=st.booleans(),
    until=_BIG,
    left=st.none() | _BIG,
    wait=_U32,
    invalid=_U32,
    text=_TEXTS,
    crlf=st.booleans(),
)
def test_result_line(wire: HostProgram, **v: Any) -> None:
    values = {
        "type": _TYPES[v["token_type"]],
        "units": v["units"],
        "count": v["count"],
        "payg": v["payg"],
        "test": v["test"],
        "active": v["active"],
        "active_until": v["until"],
        "seconds_left": UNLIMITED if v["left"] is None else v["left"],
        "wait": v["wait"],
        "invalid": v["invalid"],
    }
    given_fields = {
        name: values[name] for i, name in enumerate(_RESULT_FIELDS) if v["fields"] & (1 << i)
    }
    line = ResultLine(outcome=_OUTCOMES[v["outcome"]], text=v["text"], **given_fields).format()
    text = v["text"].encode("latin-1")
    request = (
        f"result {v['fields']} {v['outcome']} {v['token_type']} {v['units']} {v['count']} "
        f"{int(v['payg'])} {int(v['test'])} {int(v['active'])} {v['until']} {v['left'] or 0} "
        f"{v['wait']} {v['invalid']} {int(v['left'] is None)} {_hex(text)} {int(v['crlf'])}"
    )
    assert bytes.fromhex(wire.ask(request)) == (line + _newline(v["crlf"])).encode("ascii")


@settings(max_examples=100, deadline=None)
@given(
    kind=st.integers(0, len(_EVENTS) - 1),
    led=st.integers(0, 2),
    blinks=st.integers(0, 255),
    text=st.text(alphabet=st.characters(max_codepoint=255), max_size=40),
    crlf=st.booleans(),
)
def test_event_line(wire: HostProgram, **v: Any) -> None:
    led = [None, Led.RED, Led.GREEN][v["led"]]
    line = EventLine(kind=_EVENTS[v["kind"]], led=led, blinks=v["blinks"], text=v["text"]).format()
    request = f"event {v['kind']} {v['led']} {v['blinks']} {_hex(v['text'])} {int(v['crlf'])}"
    assert bytes.fromhex(wire.ask(request)) == (line + _newline(v["crlf"])).encode("ascii")


@settings(max_examples=100, deadline=None)
@given(
    serial=_WORDS,
    code=st.integers(0, 999_999_999),
    key=st.binary(min_size=16, max_size=16),
    divider=st.integers(1, 255),
    restricted=st.booleans(),
    test=st.text(alphabet="0123456789", max_size=20),
    count=_U32,
    crlf=st.booleans(),
)
def test_setup_answer_lines(wire: HostProgram, **v: Any) -> None:
    nl = _newline(v["crlf"])
    read_back = "".join(
        line.format() + nl
        for line in (SerialReadBack(v["serial"]), CodeReadBack(v["code"]), KeyReadBack(v["key"]))
    )
    request = f"readback {_hex(v['serial'])} {v['code']} {v['key'].hex()} {int(v['crlf'])}"
    assert bytes.fromhex(wire.ask(request)).decode() == read_back
    setup = SetupLine(
        divider=v["divider"], restricted=v["restricted"], test=v["test"], count=v["count"]
    ).format()
    request = (
        f"setup {v['divider']} {int(v['restricted'])} {_hex(v['test'])} {v['count']} "
        f"{int(v['crlf'])}"
    )
    assert bytes.fromhex(wire.ask(request)).decode() == setup + nl


@pytest.mark.parametrize("crlf", [False, True])
def test_small_lines(wire: HostProgram, crlf: bool) -> None:
    nl = _newline(crlf)

    def ask(request: str) -> str:
        return bytes.fromhex(wire.ask(f"{request} {int(crlf)}")).decode()

    for simulator in (False, True):
        for power in (False, True):
            for provisioned in (False, True, None):
                line = HelloLine(
                    protocol=1,
                    model="paygkit-sim",
                    firmware="paygkit-0.1.0",
                    simulator=simulator,
                    power=power,
                    provisioned=provisioned,
                ).format()
                flag = 2 if provisioned is None else int(provisioned)
                request = f"hello paygkit-sim paygkit-0.1.0 {int(simulator)} {int(power)} {flag}"
                assert ask(request) == line + nl
    for rtc, ticks in ((0, 0), (4_102_444_800, 2**40)):
        assert ask(f"clock {rtc} {ticks}") == ClockLine(rtc=rtc, ticks=ticks).format() + nl
    for waiting in (False, True):
        for tamper in TamperResponse:
            lock = int(tamper is TamperResponse.LOCK)
            expected = ConfigLine(waiting=waiting, tamper=tamper, keypad_timeout=3600).format()
            assert ask(f"config {int(waiting)} {lock} 3600") == expected + nl
    for on in (False, True):
        assert ask(f"power {int(on)}") == PowerLine(on=on).format() + nl
    names = ["HELLO", "HELP", "SETUP", "KEYS", "TOKEN", "STATUS", "ADVANCE", "CLOCK", "CONFIG",
             "POWER", "RESET", "WIPE", "QUIT"]  # fmt: skip
    for kind, name in enumerate(names, start=2):
        assert ask(f"ok {kind}") == OkLine(name).format() + nl
    help_text = "".join(HelpLine(syntax).format() + nl for syntax in HELP_LINES)
    assert ask("help") == help_text + OkLine("HELP").format() + nl
