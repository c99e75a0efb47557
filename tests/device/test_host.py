"""The host side of the device protocol (paygkit.device.host) over every kind of link:
the simulator in this process, a real TCP connection and a real pty opened with pyserial,
plus scripted fake devices for the failures the simulator never shows.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from paygkit.device.firmware import OutcomeKind
from paygkit.device.host import (
    Answer,
    AnswerLine,
    DeviceError,
    DeviceLink,
    LinkError,
    LinkTimeoutError,
    Target,
    open_link,
    parse_target,
)
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.wire import BadLine, HelloLine, StatusLine, WireError
from paygkit.token import DeviceParams, TokenType, generate
from tests.device.protocol_host import KEY_HEX, SERIAL, STARTING_CODE
from tests.device.servers import pty_simulator, scripted_pty, tcp_simulator

KEY = bytes.fromhex(KEY_HEX)
PARAMS = DeviceParams.create(KEY_HEX, STARTING_CODE)
TOKEN = generate(PARAMS, count=1, days=1).digits


def _exercise(link: DeviceLink) -> None:
    """The same conversation over any link."""
    hello = link.hello()
    assert hello.tag == "HELLO"
    assert (hello.protocol, hello.provisioned, hello.simulator) == (1, False, True)
    assert link.is_simulator
    answer = link.setup(
        serial=SERIAL, starting_code=STARTING_CODE, key=KEY, time_divider=4, count=3
    )
    assert answer.ok
    back = answer.read_back()
    assert (back.serial, back.starting_code, back.key) == (SERIAL, STARTING_CODE, KEY)
    assert (back.time_divider, back.restricted, back.test_code, back.count) == (4, False, None, 3)
    divided = DeviceParams.create(KEY_HEX, STARTING_CODE, time_divider=4)
    token = generate(divided, count=3, days=1)
    result = link.token(token.grouped)
    assert result.tag == "RESULT"
    assert (result.outcome, result.type) == (OutcomeKind.APPLIED, TokenType.ADD_TIME)
    assert (result.units, result.count) == (4, token.count)
    status = link.status()
    assert (status.serial, status.count, status.divider) == (SERIAL, token.count, 4)
    with pytest.raises(DeviceError) as refused:
        link.setup(serial="OTHER", starting_code=1, key=KEY)
    assert refused.value.code == "ALREADY_PROVISIONED"
    assert KEY_HEX not in str(refused.value).lower()
    again = link.command("SETUP serial=X code=1 key=" + KEY_HEX, check=False)
    assert not again.ok
    assert again.final.value == "ALREADY_PROVISIONED"


def test_in_process_simulator() -> None:
    with open_link("sim:") as link:
        _exercise(link)


def test_tcp_link() -> None:
    with tcp_simulator() as (target, sim), open_link(target) as link:
        _exercise(link)
        assert sim.status().serial == SERIAL


def test_pty_link_with_pyserial(tmp_path: Path) -> None:
    with pty_simulator(symlink=tmp_path / "ttyPAYG") as (path, sim):
        with open_link(path) as link:
            _exercise(link)
        # The symlink and the pty: prefix name the same port; it is the same device.
        with open_link(f"pty:{tmp_path / 'ttyPAYG'}") as link:
            assert link.status().get("serial") == SERIAL
        assert sim.status().serial == SERIAL


def test_simulator_commands() -> None:
    sim = SimulatedDevice(RamMemory())
    with DeviceLink.for_simulator(sim) as link:
        link.reference_setup(SERIAL, STARTING_CODE, KEY)
        link.advance(3600)
        assert sim.ticks == 3600
        link.set_clock(sim.rtc + 60)
        link.configure(waiting="off", keypad_timeout="10")
        assert not sim.config.waiting_period.enabled
        assert sim.config.keypad_timeout_seconds == 10
        link.power_off()
        assert not sim.powered
        assert link.hello().power is False
        link.power_on()
        assert sim.powered
        keys = link.keys(f"*{TOKEN}#")
        assert [line.tag for line in keys.all("RESULT")] == ["RESULT"]
        assert keys.first("RESULT") is not None
        assert keys.final.raw == "OK KEYS typing=-"
        link.wipe()
        assert sim.provisioning is None
    # The link did not own the simulator: it is still usable.
    assert sim.status().provisioned is False


def test_reference_setup_read_back_has_only_the_three_lines() -> None:
    with open_link("sim:") as link:
        back = link.reference_setup(SERIAL, 1234, KEY).read_back()
    assert (back.serial, back.starting_code, back.key) == (SERIAL, 1234, KEY)
    assert back.time_divider is None
    assert back.count is None


def test_state_file_simulator_persists(tmp_path: Path) -> None:
    state = tmp_path / "dev.bin"
    with open_link(f"sim:{state}") as link:
        link.setup(serial=SERIAL, starting_code=STARTING_CODE, key=KEY)
        assert link.token(TOKEN).value == "APPLIED"
    # The link closed the simulator it opened (the file lock is released).
    with open_link(f"sim:{state}") as link:
        assert link.status().int("count") == 2


def test_keys_never_in_reprs_or_transcript() -> None:
    seen: list[str] = []
    with open_link("sim:", transcript=seen.append) as link:
        answer = link.setup(serial=SERIAL, starting_code=STARTING_CODE, key=KEY)
        shown = " ".join([repr(answer), str(answer.first("SK")), repr(answer.read_back()), *seen])
        assert KEY_HEX not in shown.lower()
        assert "< SK:<hidden>" in seen
        assert any(line.startswith("> SETUP serial=") and "key=<hidden>" in line for line in seen)
        # The key is there for whoever reads the answer on purpose.
        sk = answer.first("SK")
        assert sk is not None
        assert sk.value.lower() == KEY_HEX
    link2 = open_link("sim:", transcript=seen.append)
    with link2:
        link2.reference_setup(SERIAL, STARTING_CODE, KEY)
    assert KEY_HEX not in " ".join(seen).lower()
    assert any(line.startswith(f"> #{SERIAL};") for line in seen)


@pytest.mark.parametrize(
    ("raw", "tag", "words", "fields"),
    [
        ("SN:SLT1", "SN", ("SLT1",), {}),
        ("SC:000001234", "SC", ("000001234",), {}),
        ("sk:abcd", "SK", ("abcd",), {}),
        (
            'RESULT APPLIED type=ADD_TIME count=2 text="+1 day"',
            "RESULT",
            ("APPLIED",),
            {"type": "ADD_TIME", "count": "2", "text": "+1 day"},
        ),
        ('EVENT x text="say \\"hi\\" \\\\"', "EVENT", ("x",), {"text": 'say "hi" \\'}),
        ("ERR BAD_ARGUMENT code must be", "ERR", ("BAD_ARGUMENT", "code", "must", "be"), {}),
        ('RESULT X text="unbalanced', "RESULT", ("X",), {"text": '"unbalanced'}),
    ],
)
def test_answer_line_parsing(
    raw: str, tag: str, words: tuple[str, ...], fields: dict[str, str]
) -> None:
    line = AnswerLine.parse(raw)
    assert (line.tag, line.words, line.fields, line.raw) == (tag, words, fields, raw)


def test_answer_line_int_errors_are_wire_errors() -> None:
    line = AnswerLine.parse("STATUS count=abc")
    with pytest.raises(WireError, match="count"):
        line.int("count")
    with pytest.raises(WireError, match="missing"):
        line.int("used")


def test_a_line_that_does_not_read_fails_the_link_only_where_it_is_needed() -> None:
    bad = AnswerLine.parse("STATUS count=abc")
    assert isinstance(bad, BadLine)
    answer = Answer((AnswerLine.parse("HELLO protocol=1"), bad), AnswerLine.parse("OK STATUS"))
    assert answer.first_of(HelloLine) == HelloLine(protocol=1)
    with pytest.raises(LinkError, match=r"STATUS line has count 'abc', not a whole number"):
        answer.first_of(StatusLine)


def test_answer_helpers() -> None:
    answer = Answer(
        (AnswerLine.parse("A x=1"), AnswerLine.parse("B"), AnswerLine.parse("A x=2")),
        AnswerLine.parse("OK T"),
    )
    assert answer.ok
    assert [line.int("x") for line in answer.all("a")] == [1, 2]
    assert answer.first("C") is None
    with pytest.raises(LinkError, match="SN"):
        answer.read_back()


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("sim:", Target("sim:", "sim")),
        (" sim:dev.bin ", Target("sim:dev.bin", "sim", "dev.bin")),
        ("TCP::7878", Target("TCP::7878", "tcp", "127.0.0.1", 7878)),
        ("tcp:[::1]:7878", Target("tcp:[::1]:7878", "tcp", "::1", 7878)),
        ("serial:/dev/ttyUSB0", Target("serial:/dev/ttyUSB0", "serial", "/dev/ttyUSB0")),
        ("pty:/tmp/x", Target("pty:/tmp/x", "serial", "/tmp/x")),
        ("rfc2217://host:1", Target("rfc2217://host:1", "serial", "rfc2217://host:1")),
    ],
)
def test_targets(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "no device"),
        ("tcp:nohost", "tcp:HOST:PORT"),
        ("tcp:127.0.0.1:99999", "tcp:HOST:PORT"),
        ("/nonexistent/ttyUSB9", "no such port"),
        ("pty:/nonexistent/tty", "cannot open the serial port pty:/nonexistent/tty"),
        ("pty:", "names no port"),
    ],
)
def test_bad_targets(target: str, message: str) -> None:
    with pytest.raises(LinkError, match=message):
        open_link(target)


def test_connection_refused_names_the_target() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(LinkError, match=rf"tcp:127\.0\.0\.1:{port}.*running"):
        open_link(f"tcp:127.0.0.1:{port}")


def test_silent_device_times_out_then_a_late_answer_is_skipped() -> None:
    release = threading.Event()

    def answer(line: str) -> bytes | None:
        if line == "HELLO":
            release.wait(10)  # answers only after the host gave up
            return b"HELLO protocol=1 simulator=0\r\nOK HELLO\r\n"
        if line == "STATUS":
            return b"STATUS serial=A count=7\r\nOK STATUS\r\n"
        return b"ERR UNKNOWN_COMMAND no\r\n"

    with scripted_pty(answer) as (path, received), open_link(path, timeout=0.3) as link:
        with pytest.raises(LinkTimeoutError, match=r"no answer from .* to HELLO within 0.3 s"):
            link.hello()
        assert not link.closed
        release.set()
        # The late HELLO answer is dropped, not read as the answer to STATUS.
        assert link.status().int("count") == 7
        assert received == ["HELLO", "STATUS"]


def test_garbled_answer() -> None:
    with (
        scripted_pty(lambda line: b"\xf0\x9f\xff garbage\r\n") as (path, _),
        open_link(path, timeout=2) as link,
        pytest.raises(LinkError, match=r"garbled.*baud rate"),
    ):
        link.hello()


def test_answer_out_of_step() -> None:
    with (
        scripted_pty(lambda line: b"OK HELLO\r\n") as (path, _),
        open_link(path, timeout=2) as link,
        pytest.raises(LinkError, match="out of step"),
    ):
        link.status()


def test_unknown_information_lines_are_kept_and_blank_lines_skipped() -> None:
    reply = b"\r\n\r\nSN:A\r\n\r\nSC:000000005\r\nSK:" + KEY_HEX.encode() + b"\r\nOK SETUP\r\n"
    with scripted_pty(lambda line: reply) as (path, received), open_link(path) as link:
        back = link.reference_setup("A", 5, KEY).read_back()
        assert (back.serial, back.starting_code, back.key) == ("A", 5, KEY)
        assert received == [f"#A;000000005;{KEY_HEX}"]


def test_closed_tcp_link() -> None:
    with tcp_simulator() as (target, _), open_link(target) as link:
        link.command("QUIT")
        with pytest.raises(LinkError, match="closed"):
            link.hello()
        assert link.closed


def test_command_line_checks() -> None:
    with open_link("sim:") as link:
        with pytest.raises(ValueError, match="empty"):
            link.command("  ")
        with pytest.raises(ValueError, match="one line"):
            link.command("HELLO\nSTATUS")
        with pytest.raises(ValueError, match="16 bytes"):
            link.setup(serial="A", starting_code=1, key=b"short")
        with pytest.raises(ValueError, match="serial"):
            link.setup(serial="A B", starting_code=1, key=KEY)
    with pytest.raises(LinkError, match="closed"):
        link.hello()
