"""The device side of the protocol (CommandInterpreter): every command, every ERR path,
framing, and the key's secrecy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygkit import __version__
from paygkit.device.cfirmware import firmware_class
from paygkit.device.clocks import ManualClock, ManualTicks, RecordingFeedback
from paygkit.device.commands import HELP_LINES, read_duration
from paygkit.device.firmware import OutcomeKind, Status, TokenOutcome
from paygkit.device.interpreter import CommandInterpreter, result_line
from paygkit.device.memory import RamMemory
from paygkit.device.ports import Feedback
from paygkit.device.simulator import DEFAULT_RTC_START, SimulatedDevice
from paygkit.device.wire import MAX_COMMAND_LENGTH
from paygkit.token import DeviceParams, TokenType, generate
from tests.device.protocol_host import (
    KEY_HEX,
    REFERENCE_SETUP,
    SERIAL,
    STARTING_CODE,
    Host,
    check_answer,
    is_final,
    parse_line,
)

DAY = 86_400
PARAMS = DeviceParams.create(KEY_HEX, STARTING_CODE)
SETUP = f"SETUP serial={SERIAL} code={STARTING_CODE} key={KEY_HEX}"


def add(count: int, days: int, params: DeviceParams = PARAMS) -> str:
    return generate(params, count=count, days=days).digits


def set_time(count: int, days: int, params: DeviceParams = PARAMS) -> str:
    return generate(params, count=count, token_type=TokenType.SET_TIME, days=days).digits


def no_key(lines: list[str]) -> None:
    for line in lines:
        assert KEY_HEX not in line.lower(), line


@pytest.fixture
def sim() -> SimulatedDevice:
    return SimulatedDevice(RamMemory())


@pytest.fixture
def interpreter(sim: SimulatedDevice) -> CommandInterpreter:
    return CommandInterpreter(sim)


@pytest.fixture
def host(interpreter: CommandInterpreter) -> Host:
    return Host.over(interpreter)


@pytest.fixture
def ready(host: Host) -> Host:
    """A host whose device is set up (reference form) with the published test key."""
    host.ok(REFERENCE_SETUP)
    return host


# --- HELLO, HELP ---------------------------------------------------------------------------


def test_hello_identifies_protocol_model_and_state(host: Host) -> None:
    hello = host.one("HELLO", "HELLO")
    assert hello.fields == {
        "protocol": "1",
        "model": "paygkit-sim",
        "firmware": hello["firmware"],
        "simulator": "1",
        "power": "on",
        "provisioned": "0",
    }
    assert hello["firmware"].startswith("paygkit-")
    assert host.send("HELLO")[-1] == "OK HELLO"
    host.ok(REFERENCE_SETUP)
    assert host.one("hello", "HELLO")["provisioned"] == "1"  # commands are case-insensitive
    host.ok("POWER OFF")
    hello = host.one("HELLO", "HELLO")
    assert hello["power"] == "off"
    assert "provisioned" not in hello.fields
    host.err("HELLO there", "BAD_ARGUMENT")


def test_help_lists_every_command(host: Host, interpreter: CommandInterpreter) -> None:
    lines = host.ok("HELP")
    assert lines[-1] == "OK HELP"
    assert lines[:-1] == [f"HELP {line}" for line in HELP_LINES]
    listed = {line.split()[0] for line in HELP_LINES if not line.startswith("#")}
    assert listed == set(interpreter._handlers)
    host.err("HELP me", "BAD_ARGUMENT")


# --- setup ---------------------------------------------------------------------------------


def test_reference_setup_answers_like_the_reference_firmware(
    host: Host, sim: SimulatedDevice
) -> None:
    lines = host.send(REFERENCE_SETUP)
    assert lines == [
        f"SN:{SERIAL}",
        f"SC:{STARTING_CODE:09d}",
        f"SK:{KEY_HEX.upper()}",
        "OK SETUP",
    ]
    provisioning = sim.provisioning
    assert provisioning is not None
    assert provisioning.key == bytes.fromhex(KEY_HEX)
    assert (provisioning.time_divider, provisioning.restricted_digits) == (1, False)
    status = host.status()
    assert (status["serial"], status["provisioned"], status["count"]) == (SERIAL, "1", "1")


def test_setup_reads_back_every_field(host: Host) -> None:
    lines = host.send(
        f"setup SERIAL=SLT-9 code=000012345 key={KEY_HEX.upper()} divider=4 restricted=1 "
        "test=1234 count=7"
    )
    assert lines == [
        "SN:SLT-9",
        "SC:000012345",
        f"SK:{KEY_HEX.upper()}",
        "SETUP divider=4 restricted=1 test=1234 count=7",
        "OK SETUP",
    ]
    status = host.status()
    assert (status["divider"], status["restricted"], status["count"]) == ("4", "1", "7")


def test_setup_defaults(host: Host) -> None:
    lines = host.send(SETUP)
    assert lines[3] == "SETUP divider=1 restricted=0 test=- count=1"


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (f"SETUP code={STARTING_CODE} key={KEY_HEX}", "serial="),
        (f"SETUP serial=A key={KEY_HEX}", "code="),
        (f"SETUP serial=A code={STARTING_CODE}", "key="),
        (f"SETUP serial=A code=12345678a key={KEY_HEX}", "starting code"),
        (f"SETUP serial=A code=1234567890 key={KEY_HEX}", "starting code"),
        (f"SETUP serial=A code=1 key={KEY_HEX[:-1]}", "32 hex"),
        (f"SETUP serial=A code=1 key={KEY_HEX[:-1]}z", "hex"),
        (f"SETUP serial=A code=1 key={KEY_HEX} divider=0", "divider"),
        (f"SETUP serial=A code=1 key={KEY_HEX} divider=256", "divider"),
        (f"SETUP serial=A code=1 key={KEY_HEX} restricted=maybe", "restricted"),
        (f"SETUP serial=A code=1 key={KEY_HEX} test=12a", "test"),
        (f"SETUP serial=A code=1 key={KEY_HEX} count=-1", "count"),
        (f"SETUP serial=A code=1 key={KEY_HEX} count=99999999999", "count"),
        (f"SETUP serial=A code=1 key={KEY_HEX} colour=red", "unknown argument 'colour'"),
        (f"SETUP serial=A serial=B code=1 key={KEY_HEX}", "twice"),
        (f"SETUP serial=A code=1 key={KEY_HEX} restricted", "without '='"),
        (f"SETUP serial= code=1 key={KEY_HEX}", "needs a value"),
        (f"SETUP serial=A;B code=1 key={KEY_HEX}", "serial"),
        (f"SETUP serial={'S' * 33} code=1 key={KEY_HEX}", "serial"),
        # The one serial grammar of paygkit (device.serial_number), also on the device.
        (f"SETUP serial=#A1 code=1 key={KEY_HEX}", "letters, digits and . _ : + -"),
        (f"SETUP serial=-A1 code=1 key={KEY_HEX}", "starting with a letter or digit"),
        (f"#A/1;000000001;{KEY_HEX}", "letters, digits and . _ : + -"),
        # Refused by the firmware itself: a restricted keypad cannot type a 5.
        (f"SETUP serial=A code=1 key={KEY_HEX} restricted=1 test=1235", "test code"),
        ("SETUP", "needs"),
    ],
)
def test_setup_refuses_bad_arguments_and_writes_nothing(
    host: Host, sim: SimulatedDevice, line: str, needle: str
) -> None:
    error = host.err(line, "BAD_ARGUMENT")
    assert needle in error
    no_key([error])
    assert sim.provisioning is None
    assert host.status()["provisioned"] == "0"


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("#", "KEYS #"),
        (f"#{SERIAL};{STARTING_CODE}", "3 fields"),
        (f"#{SERIAL};{STARTING_CODE};{KEY_HEX};1", "3 fields"),
        (f"#{SERIAL};12345678;{KEY_HEX}", "exactly 9 digits"),
        (f"#{SERIAL};0123456789;{KEY_HEX}", "exactly 9 digits"),
        (f"#{SERIAL};{STARTING_CODE};{KEY_HEX[:30]}", "32 hex"),
        (f"#;{STARTING_CODE};{KEY_HEX}", "serial"),
        (f"#A B;{STARTING_CODE};{KEY_HEX}", "serial"),
    ],
)
def test_reference_setup_refuses_bad_lines(
    host: Host, sim: SimulatedDevice, line: str, needle: str
) -> None:
    error = host.err(line, "BAD_ARGUMENT")
    assert needle in error
    no_key([error])
    assert sim.provisioning is None


@pytest.mark.parametrize("line", [REFERENCE_SETUP, f"SETUP serial=OTHER code=1 key={'0' * 32}"])
def test_a_set_up_device_refuses_a_new_setup(ready: Host, sim: SimulatedDevice, line: str) -> None:
    error = ready.err(line, "ALREADY_PROVISIONED")
    assert SERIAL in error
    assert "WIPE" in error
    assert sim.provisioning is not None
    assert sim.provisioning.serial == SERIAL
    assert ready.token(add(1, 1))["type"] == "ADD_TIME"  # still the original key


def test_wipe_blanks_the_device_for_a_new_setup(ready: Host, sim: SimulatedDevice) -> None:
    ready.token(add(1, 1))
    assert ready.send("WIPE") == ["POWER on", "OK WIPE"]
    assert sim.memory.read(0, sim.memory.size) == b"\xff" * sim.memory.size
    status = ready.status()
    assert (status["provisioned"], status["serial"], status["count"]) == ("0", "-", "1")
    ready.ok(f"SETUP serial=NEW1 code=1 key={'1' * 32}")
    assert ready.status()["serial"] == "NEW1"
    ready.err("WIPE now", "BAD_ARGUMENT")


# --- the key stays secret ------------------------------------------------------------------

MISTYPED_KEY = KEY_HEX[:-1] + "0"  # 31 of 32 characters are the real key


@pytest.mark.parametrize(
    "line",
    [
        KEY_HEX,
        KEY_HEX.upper(),
        f"TOKEN {KEY_HEX}",
        f"KEYS {KEY_HEX}",
        f"STATUS {KEY_HEX}",
        f"HELLO {KEY_HEX}",
        f"ADVANCE {KEY_HEX}",
        f"CLOCK {KEY_HEX}",
        f"CONFIG waiting={KEY_HEX}",
        f"CONFIG {KEY_HEX}=1",
        f"POWER {KEY_HEX}",
        f"SETUP serial={KEY_HEX} code=1 key={KEY_HEX}",
        f"SETUP serial=A code={KEY_HEX} key={KEY_HEX}",
        f"SETUP serial=A code=1 key={KEY_HEX}0",
        f"SETUP serial=A code=1 key={MISTYPED_KEY}x",
        f"SETUP serial=A code=1 key={KEY_HEX} {KEY_HEX}",
        f"#{SERIAL};{STARTING_CODE};{KEY_HEX}00",
        f"#{SERIAL};{STARTING_CODE};{MISTYPED_KEY[:-1]}",
        f"#{KEY_HEX};{STARTING_CODE};{KEY_HEX}",
    ],
)
@pytest.mark.parametrize("provisioned", [False, True])
def test_the_key_is_never_echoed(line: str, provisioned: bool) -> None:
    host = Host.over(CommandInterpreter(SimulatedDevice(RamMemory())))
    if provisioned:
        host.ok(REFERENCE_SETUP)
    # A line that sets the device up legitimately reads the key back on SK: only.
    text = "\n".join(answer for answer in host.send(line) if not answer.startswith("SK:")).lower()
    assert KEY_HEX not in text
    assert MISTYPED_KEY[:-1] not in text
    assert KEY_HEX[:16] not in text


def test_the_key_appears_only_on_the_sk_line(host: Host) -> None:
    params = DeviceParams.create(KEY_HEX, STARTING_CODE, restricted_digits=False)
    script = [
        "HELLO",
        REFERENCE_SETUP,
        "HELLO",
        "STATUS",
        f"TOKEN {add(1, 1, params)}",
        f"TOKEN {add(1, 1, params)}",
        "TOKEN 123456789",
        "KEYS *123#",
        "KEYS #",
        "ADVANCE 1h",
        "CLOCK -2h",
        "CONFIG waiting=off",
        "RESET",
        "POWER OFF",
        "POWER ON",
        REFERENCE_SETUP,
        "HELP",
        "STATUS",
    ]
    everything: list[str] = []
    for line in script:
        everything += host.send(line)
    with_key = [line for line in everything if KEY_HEX in line.lower()]
    assert with_key == [f"SK:{KEY_HEX.upper()}"]


def test_interpreter_repr_holds_no_key(ready: Host, interpreter: CommandInterpreter) -> None:
    assert KEY_HEX not in repr(interpreter).lower()


# --- keypad --------------------------------------------------------------------------------


def test_keys_enter_a_token_and_report_result_and_feedback(ready: Host) -> None:
    lines = ready.ok(f"KEYS *{add(1, 7)}#")
    result, event = parse_line(lines[0]), parse_line(lines[1])
    assert result.tag == "RESULT"
    assert result.words == ("APPLIED",)
    assert result.fields == {
        "type": "ADD_TIME",
        "units": "7",
        "count": "2",
        "payg": "on",
        "active": "1",
        "active_until": str(DEFAULT_RTC_START + 7 * DAY),
        "seconds_left": str(7 * DAY),
        "text": "+7 days",
    }
    assert event.tag == "EVENT"
    assert event.words == ("time_changed",)
    assert event.fields == {"led": "green", "blinks": "2", "text": "+7 days"}
    assert lines[2] == "OK KEYS typing=-"


def test_keys_over_several_lines_with_spaces(ready: Host) -> None:
    token = add(1, 2)
    assert ready.send(f"KEYS * {token[:3]} {token[3:5]}") == [f"OK KEYS typing={token[:5]}"]
    assert ready.status()["typing"] == token[:5]
    lines = ready.keys(f"{token[5:]}#")
    assert [line.words for line in lines] == [("APPLIED",), ("time_changed",)]
    assert lines[0]["seconds_left"] == str(2 * DAY)


def test_hash_alone_shows_the_status(ready: Host) -> None:
    lines = ready.keys("#")
    assert [line.tag for line in lines] == ["STATUS", "EVENT"]
    assert lines[0]["serial"] == SERIAL
    assert lines[1].words == ("status",)
    assert lines[1].fields == {"led": "red", "blinks": "1", "text": "Inactive"}


@pytest.mark.parametrize("keys", ["*12a", "*12-3#", "A", "*1.2#", "**x"])
def test_keys_refuses_a_non_key_and_presses_nothing(ready: Host, keys: str) -> None:
    ready.ok("KEYS *12")
    error = ready.err(f"KEYS {keys}", "BAD_ARGUMENT")
    assert "nothing was pressed" in error
    assert ready.status()["typing"] == "12"


def test_keys_needs_keys(ready: Host) -> None:
    ready.err("KEYS", "BAD_ARGUMENT")
    ready.err("KEYS    ", "BAD_ARGUMENT")


def test_keypad_timeout_discards_a_partial_token(ready: Host) -> None:
    ready.ok("KEYS *123")
    ready.ok("ADVANCE 31")
    assert ready.status()["typing"] == "-"


# --- tokens --------------------------------------------------------------------------------


def test_token_applied_already_used_and_grouping(ready: Host) -> None:
    token = generate(PARAMS, count=1, days=1)
    result = ready.token(token.grouped)
    assert result.words == ("APPLIED",)
    assert (result["type"], result["units"], result["count"]) == ("ADD_TIME", "1", "2")
    again = ready.token("-".join(token.grouped.split()))
    assert again.words == ("ALREADY_USED",)
    assert again.fields == {"count": "2", "text": "Already used"}


def test_set_time_disable_and_counter_sync_results(ready: Host) -> None:
    result = ready.token(set_time(1, 3))
    assert (result["type"], result["units"], result["seconds_left"]) == (
        "SET_TIME",
        "3",
        str(3 * DAY),
    )
    disable = ready.token(generate(PARAMS, count=3, token_type=TokenType.DISABLE_PAYG).digits)
    assert disable.fields["type"] == "DISABLE_PAYG"
    assert "units" not in disable.fields
    assert (disable["payg"], disable["seconds_left"], disable["active"]) == (
        "off",
        "unlimited",
        "1",
    )
    sync = ready.token(generate(PARAMS, count=40, token_type=TokenType.COUNTER_SYNC).digits)
    assert (sync["type"], sync["count"]) == ("COUNTER_SYNC", "41")
    assert ready.status()["count"] == "41"


def test_invalid_tokens_start_the_waiting_period_and_block(ready: Host) -> None:
    first = ready.token("111111111")
    assert first.words == ("INVALID",)
    assert (first["wait"], first["invalid"]) == ("0", "1")
    assert ready.token("111111112")["wait"] == "0"
    third = ready.token("111111113")
    assert (third["wait"], third["invalid"]) == ("120", "3")
    ready.ok("ADVANCE 25")
    blocked = ready.token(add(1, 1))
    assert blocked.words == ("BLOCKED",)
    assert blocked.fields == {"wait": "95", "text": "Wait 2 min"}
    assert ready.status()["blocked"] == "95"
    # The wait survives a power cycle, and time switched off does not count.  The
    # 25 s on since the last checkpoint are lost: less than the 60 s interval.
    ready.ok("RESET")
    assert ready.token(add(1, 1))["wait"] == "120"
    ready.ok("POWER OFF")
    ready.ok("ADVANCE 1d")
    ready.ok("POWER ON")
    assert ready.token(add(1, 1))["wait"] == "120"
    ready.ok("ADVANCE 120")
    assert ready.token(add(1, 1)).words == ("APPLIED",)
    assert ready.status()["invalid"] == "0"


@pytest.mark.parametrize("text", ["123", "12345678a", "12-34--56789", "+123456789"])
def test_malformed_tokens(ready: Host, text: str) -> None:
    result = ready.token(text)
    assert result.words == ("MALFORMED",)
    assert result["text"]
    assert result["wait"] == "0"


def test_token_needs_digits(ready: Host) -> None:
    ready.err("TOKEN", "BAD_ARGUMENT")


def test_token_before_setup(host: Host) -> None:
    result = host.token(add(1, 1))
    assert result.words == ("NOT_PROVISIONED",)
    assert host.keys("*123456789#")[0].words == ("NOT_PROVISIONED",)


def test_test_code_result(host: Host) -> None:
    host.ok(f"{SETUP} test=55555")
    result = host.token("55555")
    assert result.words == ("TEST_CODE",)
    assert (result["test"], result["active"]) == ("1", "1")
    assert host.status()["test"] == "1"
    host.ok("ADVANCE 31")
    assert host.status()["test"] == "0"


# --- status --------------------------------------------------------------------------------


def test_status_fields(ready: Host) -> None:
    ready.token(add(1, 1))
    status = ready.status()
    assert status.fields == {
        "serial": SERIAL,
        "provisioned": "1",
        "now": str(DEFAULT_RTC_START),
        "active": "1",
        "payg": "on",
        "seconds_left": str(DAY),
        "active_until": str(DEFAULT_RTC_START + DAY),
        "count": "2",
        "used": "2",
        "invalid": "0",
        "blocked": "0",
        "tamper": "none",
        "test": "0",
        "typing": "-",
        "restricted": "0",
        "divider": "1",
    }
    ready.err("STATUS now", "BAD_ARGUMENT")


# --- simulator commands --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("2m", 120), ("3H", 10_800), ("2d", 172_800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert read_duration(text) == seconds


def test_advance_moves_rtc_and_ticks(ready: Host) -> None:
    ready.token(add(1, 1))
    clock = ready.one("ADVANCE 2h", "CLOCK")
    assert clock.fields == {"rtc": str(DEFAULT_RTC_START + 7200), "ticks": "7200"}
    assert ready.status()["seconds_left"] == str(DAY - 7200)
    assert ready.status()["tamper"] == "none"


@pytest.mark.parametrize("argument", ["", "-5", "1w", "1.5h", "h", "3651d", "99999999999999"])
def test_advance_refuses_bad_durations(ready: Host, argument: str) -> None:
    ready.err(f"ADVANCE {argument}", "BAD_ARGUMENT")
    assert ready.one("CLOCK", "CLOCK")["rtc"] == str(DEFAULT_RTC_START)


def test_advance_stops_at_year_2100(ready: Host) -> None:
    ready.ok("CLOCK 4102444000")
    error = ready.err("ADVANCE 1h", "BAD_ARGUMENT")
    assert "2100" in error


def test_clock_shows_sets_and_skews_the_rtc_alone(ready: Host) -> None:
    assert ready.one("CLOCK", "CLOCK").fields == {"rtc": str(DEFAULT_RTC_START), "ticks": "0"}
    lines = ready.ok("CLOCK +3d")
    assert parse_line(lines[0]).fields == {"rtc": str(DEFAULT_RTC_START + 3 * DAY), "ticks": "0"}
    tamper = parse_line(lines[1])
    assert (tamper.tag, tamper.words, tamper["led"], tamper["blinks"]) == (
        "EVENT",
        ("tamper",),
        "red",
        "3",
    )
    assert ready.status()["tamper"] == "rtc_fast"
    ready.ok(f"CLOCK {DEFAULT_RTC_START}")
    # Measured from the first detection, the RTC now also ran 3 days slow.
    assert ready.status()["tamper"] == "rtc_slow,rtc_fast,rtc_backwards"
    ready.ok("CLOCK -1h")
    assert ready.one("CLOCK", "CLOCK")["rtc"] == str(DEFAULT_RTC_START - 3600)


@pytest.mark.parametrize("argument", ["-99999d", "abc", "+", "1.5", "+1y", "5000000000"])
def test_clock_refuses_bad_times(ready: Host, argument: str) -> None:
    ready.err(f"CLOCK {argument}", "BAD_ARGUMENT")
    assert ready.one("CLOCK", "CLOCK")["rtc"] == str(DEFAULT_RTC_START)


def test_config_shows_and_changes_settings(ready: Host, sim: SimulatedDevice) -> None:
    assert ready.ok("CONFIG") == ["CONFIG waiting=on tamper=report keypad_timeout=30", "OK CONFIG"]
    lines = ready.ok("config WAITING=off tamper=LOCK keypad_timeout=10")
    assert lines == ["CONFIG waiting=off tamper=lock keypad_timeout=10", "OK CONFIG"]
    assert sim.config.waiting_period.enabled is False
    for _ in range(5):
        assert ready.token("111111111")["wait"] == "0"
    ready.ok("KEYS *12")
    ready.ok("ADVANCE 11")
    assert ready.status()["typing"] == "-"


@pytest.mark.parametrize(
    "arguments",
    ["waiting=maybe", "tamper=explode", "keypad_timeout=0", "keypad_timeout=3601", "colour=1", "x"],
)
def test_config_refuses_bad_settings(ready: Host, sim: SimulatedDevice, arguments: str) -> None:
    ready.err(f"CONFIG {arguments}", "BAD_ARGUMENT")
    assert ready.ok("CONFIG")[0] == "CONFIG waiting=on tamper=report keypad_timeout=30"


def test_power_off_and_on(ready: Host, sim: SimulatedDevice) -> None:
    ready.token(add(1, 1))
    ready.ok("ADVANCE 1h")
    assert ready.send("POWER OFF") == ["POWER off", "OK POWER"]
    assert ready.send("POWER") == ["POWER off", "OK POWER"]
    for line in ("STATUS", "TOKEN 123456789", "KEYS *1", REFERENCE_SETUP, SETUP):
        ready.err(line, "POWERED_OFF")
    # While off only the RTC moves.
    assert ready.one("ADVANCE 1h", "CLOCK").fields == {
        "rtc": str(DEFAULT_RTC_START + 7200),
        "ticks": "3600",
    }
    assert ready.send("POWER ON") == ["POWER on", "OK POWER"]
    assert ready.send("power on") == ["POWER on", "OK POWER"]
    status = ready.status()
    assert (status["count"], status["seconds_left"], status["tamper"]) == (
        "2",
        str(DAY - 7200),
        "none",
    )
    assert ready.one("CLOCK", "CLOCK")["ticks"] == "0"
    ready.err("POWER SOMETIMES", "BAD_ARGUMENT")


def test_reset_is_a_power_cycle(ready: Host) -> None:
    ready.ok("KEYS *12")
    ready.ok("ADVANCE 5")
    assert ready.send("RESET") == ["POWER on", "OK RESET"]
    assert ready.status()["typing"] == "-"
    assert ready.one("CLOCK", "CLOCK")["ticks"] == "0"
    ready.err("RESET 1", "BAD_ARGUMENT")


def test_quit_stops_reading(interpreter: CommandInterpreter) -> None:
    assert not interpreter.closed
    assert interpreter.feed(b"QUIT\nHELLO\nQUIT now\n").decode().splitlines() == ["OK QUIT"]
    assert interpreter.closed
    assert interpreter.feed(b"STATUS\n") == b""  # kept, not read
    # A server that goes on (a serial line) reopens the interpreter.
    interpreter.closed = False
    finals = [line for line in interpreter.feed(b"").decode().splitlines() if is_final(line)]
    assert finals[0] == "OK HELLO"
    assert finals[1].startswith("ERR BAD_ARGUMENT QUIT takes no arguments")
    assert finals[2:] == ["OK STATUS"]


# --- a real Device without simulator controls ----------------------------------------------


class _FeedbackLog:
    def __init__(self) -> None:
        self.recording = RecordingFeedback()

    def drain_feedback(self) -> list[Feedback]:
        events = list(self.recording.events)
        self.recording.clear()
        return events


def test_a_device_without_simulator_controls() -> None:
    log = _FeedbackLog()
    device = firmware_class()(
        clock=ManualClock(DEFAULT_RTC_START),
        ticks=ManualTicks(),
        memory=RamMemory(),
        feedback=log.recording,
    )
    host = Host.over(CommandInterpreter(device, feedback=log))
    hello = host.one("HELLO", "HELLO")
    assert (hello["simulator"], hello["model"]) == ("0", "paygkit")
    for line in ("ADVANCE 1h", "CLOCK", "CLOCK +1h", "CONFIG", "POWER OFF", "RESET", "WIPE"):
        assert "simulator command" in host.err(line, "NOT_SUPPORTED")
    host.ok(REFERENCE_SETUP)
    lines = host.ok(f"TOKEN {add(1, 1)}")
    assert [parse_line(line).tag for line in lines[:-1]] == ["RESULT", "EVENT"]


def test_without_a_feedback_source_there_are_no_events() -> None:
    device = firmware_class()(
        clock=ManualClock(DEFAULT_RTC_START), ticks=ManualTicks(), memory=RamMemory()
    )
    host = Host.over(CommandInterpreter(device))
    host.ok(REFERENCE_SETUP)
    assert [parse_line(line).tag for line in host.ok(f"TOKEN {add(1, 1)}")[:-1]] == ["RESULT"]


# --- errors of the firmware ----------------------------------------------------------------


class _BrokenStatus(SimulatedDevice):
    def status(self) -> Status:
        raise RuntimeError("boom")


def test_a_firmware_fault_is_an_internal_error_not_a_crash() -> None:
    host = Host.over(CommandInterpreter(_BrokenStatus(RamMemory())))
    error = host.err("STATUS", "INTERNAL")
    assert "RuntimeError" in error
    assert "boom" not in error
    assert host.send("HELLO")[-1] == "OK HELLO"  # the interpreter goes on


class _FailingMemory(RamMemory):
    fail = False

    def write(self, offset: int, data: bytes) -> None:
        if self.fail:
            raise OSError(5, "Input/output error")
        super().write(offset, data)


def test_a_memory_failure_is_a_storage_error() -> None:
    memory = _FailingMemory()
    host = Host.over(CommandInterpreter(SimulatedDevice(memory)))
    host.ok(REFERENCE_SETUP)
    memory.fail = True
    assert "nothing was changed" in host.err("TOKEN 111111111", "STORAGE")
    memory.fail = False
    status = host.status()
    assert (status["invalid"], status["provisioned"]) == ("0", "1")


def test_result_line_of_a_target_that_raises_on_bad_text() -> None:
    class Strict(SimulatedDevice):
        def enter_token(self, text: str) -> TokenOutcome:
            raise ValueError(f"cannot read {text}")

    host = Host.over(CommandInterpreter(Strict(RamMemory())))
    host.ok(REFERENCE_SETUP)
    assert host.token("12x").words == ("MALFORMED",)
    # Its message repeats the text; anything shaped like a key is blanked out.
    result = host.token(MISTYPED_KEY)
    assert result["text"] == "cannot read <hidden>"


def test_result_line_escapes_text() -> None:
    outcome = TokenOutcome(OutcomeKind.MALFORMED, message='say "hi" \\ \x07')
    line = result_line(outcome, None).format()
    assert line == 'RESULT MALFORMED wait=0 text="say \\"hi\\" \\\\ ?"'
    assert parse_line(line)["text"] == 'say "hi" \\ ?'


# --- framing -------------------------------------------------------------------------------


def test_unknown_commands(host: Host) -> None:
    assert "'FLASH'" in host.err("FLASH", "UNKNOWN_COMMAND")
    assert "HELP" in host.err("flash now", "UNKNOWN_COMMAND")
    # A word that could be a secret is not repeated.
    assert host.err("x" * 40, "UNKNOWN_COMMAND") == (
        "ERR UNKNOWN_COMMAND unknown command; send HELP for the list of commands"
    )


@pytest.mark.parametrize("line", ["STATUS\x00", "TOKEN 1\x1b[A", "HELLO é", "\x7fSTATUS"])
def test_bad_characters(interpreter: CommandInterpreter, line: str) -> None:
    answer = check_answer(interpreter.handle_line(line))
    assert answer[0].startswith("ERR BAD_LINE ")


def test_blank_lines_get_no_answer(interpreter: CommandInterpreter) -> None:
    assert interpreter.handle_line("") == []
    assert interpreter.handle_line("   \t ") == []
    assert interpreter.feed(b"\r\n\n\r  \r\n") == b""


def test_line_endings_lf_crlf_and_cr(sim: SimulatedDevice) -> None:
    interpreter = CommandInterpreter(sim, newline="\r\n")
    out = interpreter.feed(b"HELLO\nSTATUS\r\nCLOCK\r")
    lines = out.decode().split("\r\n")
    assert lines[-1] == ""
    finals = [line for line in lines if is_final(line)]
    assert finals == ["OK HELLO", "OK STATUS", "OK CLOCK"]
    assert b"\n" not in out.replace(b"\r\n", b"")


def test_lines_split_over_several_reads(interpreter: CommandInterpreter) -> None:
    assert interpreter.feed(b"HEL") == b""
    assert interpreter.feed(b"LO") == b""
    assert interpreter.feed(b"\n").decode().splitlines()[-1] == "OK HELLO"


def test_backspace_edits_the_line(interpreter: CommandInterpreter) -> None:
    out = interpreter.feed(b"HELXX\x08\x08LO\n\x7f\x7fSTATUZ\x7fS\n")
    finals = [line for line in out.decode().splitlines() if is_final(line)]
    assert finals == ["OK HELLO", "OK STATUS"]


def test_too_long_lines(interpreter: CommandInterpreter) -> None:
    long_line = "KEYS " + "1" * MAX_COMMAND_LENGTH
    assert check_answer(interpreter.handle_line(long_line))[0].startswith("ERR LINE_TOO_LONG ")
    out = interpreter.feed(long_line.encode() + b"\nHELLO\n").decode().splitlines()
    assert out[0].startswith("ERR LINE_TOO_LONG ")
    assert out[-1] == "OK HELLO"
    # Exactly the limit is fine.
    exact = "KEYS " + "1" * (MAX_COMMAND_LENGTH - 5)
    assert interpreter.feed(exact.encode() + b"\n").decode().splitlines()[-1].startswith("OK KEYS")
    # A long line split over reads is still refused once, then framing recovers.
    interpreter.feed(b"*" * 200)
    out = interpreter.feed(b"#" * 200 + b"\r\nCLOCK\r\n").decode().splitlines()
    assert out[0].startswith("ERR LINE_TOO_LONG ")
    assert out[-1] == "OK CLOCK"


_WORDS = ["TOKEN ", "KEYS ", "SETUP ", "STATUS", "ADVANCE ", "CLOCK ", "CONFIG ", "POWER "]
_WORDS += ["#", "key=", "serial=", "code=", "waiting=", KEY_HEX, "RESET", "WIPE", "QUIT"]
_LINE_CHARACTERS = st.sampled_from([*"*#0123456789 =;:+-abcdefxyzABCDEFXYZ\t\x00\x7fé", *_WORDS])


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.lists(_LINE_CHARACTERS, max_size=12).map("".join), max_size=8))
def test_any_line_gets_a_well_formed_answer_without_the_key(lines: list[str]) -> None:
    sim = SimulatedDevice(RamMemory())
    interpreter = CommandInterpreter(sim)
    interpreter.handle_line(REFERENCE_SETUP)
    for line in lines:
        answer = interpreter.handle_line(line)
        if line.replace("\t", " ").strip() == "" and all(
            " " <= c <= "~" or c == "\t" for c in line
        ):
            assert answer == []
            continue
        check_answer(answer)
        for text in answer:
            assert KEY_HEX not in text.lower()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_any_bytes_give_well_formed_answers(data: bytes) -> None:
    interpreter = CommandInterpreter(SimulatedDevice(RamMemory()))
    out = interpreter.feed(data + b"\n").decode("ascii")
    lines = out.splitlines()
    if lines:
        assert is_final(lines[-1])
    assert out == "" or out.endswith("\n")


# --- the documentation ---------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "device-protocol.md"


def _doc_conversations() -> list[tuple[str, list[tuple[str, list[str]]]]]:
    """Every example in docs/device-protocol.md that starts from a blank device."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(> .*?)```", text, flags=re.DOTALL)
    conversations = []
    for block in blocks:
        exchanges: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("> "):
                exchanges.append((line[2:], []))
            elif line.startswith("< "):
                exchanges[-1][1].append(line[2:])
        conversations.append((exchanges[0][0], exchanges))
    return conversations


def test_the_example_conversation_of_the_documentation_is_exact() -> None:
    conversations = [s for s in _doc_conversations() if len(s[1]) > 5]
    assert len(conversations) == 1
    host = Host.over(CommandInterpreter(SimulatedDevice(RamMemory())))
    for command, expected in conversations[0][1]:
        expected = [line.replace("paygkit-0.1.0", f"paygkit-{__version__}") for line in expected]
        assert host.send(command) == expected, command


def test_the_documented_answers_are_what_the_simulator_says() -> None:
    """The examples of sections 3.5 to 3.10 follow each other on one device."""
    chained = ["KEYS *588224011#", "ADVANCE 2h", "CLOCK -1h", "CONFIG waiting=off"]
    conversations = [s for s in _doc_conversations() if s[0] in chained]
    assert [first for first, _ in conversations] == chained
    host = Host.over(CommandInterpreter(SimulatedDevice(RamMemory())))
    host.ok(REFERENCE_SETUP)
    for _, exchanges in conversations:
        for command, expected in exchanges:
            assert host.send(command) == expected, command
