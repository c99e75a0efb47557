"""The simulated device (clocks, power, persistence) and the interactive terminal device."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from paygkit.cli import device_cmd
from paygkit.cli.device_cmd import (
    PROMPT,
    InteractiveSimulator,
    parse_serve,
    run_interactive,
)
from paygkit.device.firmware import OutcomeKind
from paygkit.device.memory import FileMemory, RamMemory
from paygkit.device.ports import FeedbackKind, Led
from paygkit.device.simulator import (
    DEFAULT_RTC_START,
    PoweredOffError,
    SimulatedDevice,
    SimulatorFileError,
    sidecar_path,
)
from paygkit.device.state import DeviceConfig, TamperFlag, TamperResponse
from paygkit.device.storage import StorageError
from paygkit.token import DeviceParams, TokenType, countdown_text, generate
from tests.device.protocol_host import KEY_HEX, SERIAL, STARTING_CODE

DAY = 86_400
PARAMS = DeviceParams.create(KEY_HEX, STARTING_CODE)
KEY = bytes.fromhex(KEY_HEX)


def provision(sim: SimulatedDevice) -> None:
    sim.provision(serial=SERIAL, starting_code=STARTING_CODE, key=KEY)


def add(count: int, days: int) -> str:
    return generate(PARAMS, count=count, days=days).digits


# --- SimulatedDevice -------------------------------------------------------------------------


def test_time_moves_only_when_told() -> None:
    sim = SimulatedDevice()
    assert (sim.rtc, sim.ticks, sim.powered) == (DEFAULT_RTC_START, 0, True)
    provision(sim)
    assert sim.enter_token(add(1, 1)).kind is OutcomeKind.APPLIED
    assert sim.status().seconds_left == DAY
    sim.advance(3600)
    assert (sim.rtc, sim.ticks) == (DEFAULT_RTC_START + 3600, 3600)
    assert sim.status().seconds_left == DAY - 3600
    assert sim.status().tamper is TamperFlag.NONE


def test_power_off_keeps_memory_and_rtc_and_restarts_ticks() -> None:
    sim = SimulatedDevice(RamMemory())
    provision(sim)
    sim.enter_token(add(1, 1))
    sim.advance(100)
    sim.power_off()
    assert not sim.powered
    with pytest.raises(PoweredOffError, match="POWER ON"):
        sim.status()
    with pytest.raises(PoweredOffError):
        sim.enter_token(add(1, 1))
    sim.advance(900)  # the RTC runs on its battery; the MCU's ticks do not
    assert (sim.rtc, sim.ticks) == (DEFAULT_RTC_START + 1000, 100)
    sim.power_on()
    assert sim.ticks == 0
    status = sim.status()
    assert (status.count, status.seconds_left, status.tamper) == (2, DAY - 1000, TamperFlag.NONE)
    sim.power_on()  # already on: nothing happens
    assert sim.status().count == 2


def test_set_rtc_is_seen_as_tamper() -> None:
    sim = SimulatedDevice(config=DeviceConfig(tamper_response=TamperResponse.LOCK))
    provision(sim)
    sim.enter_token(add(1, 5))
    sim.drain_feedback()
    sim.set_rtc(DEFAULT_RTC_START - DAY)
    assert TamperFlag.RTC_BACKWARDS in sim.status().tamper
    assert [f.kind for f in sim.drain_feedback()] == [FeedbackKind.TAMPER]
    assert sim.status().active is False  # locked until a Set Time token


def test_feedback_is_queued_and_the_last_signal_kept() -> None:
    sim = SimulatedDevice()
    provision(sim)
    for key in f"*{add(1, 2)}#":
        sim.press(key)
    events = sim.drain_feedback()
    assert events[-1].kind is FeedbackKind.TIME_CHANGED
    assert sim.drain_feedback() == []
    last = sim.last_feedback
    assert last is not None
    assert (last.led, last.blinks, last.text) == (Led.GREEN, 2, "+2 days")
    assert sim.last_outcome is not None
    assert sim.last_outcome.token_type is TokenType.ADD_TIME
    sim.press("*")  # key echoes do not replace the last signal
    assert sim.last_feedback == last


def test_wipe_and_configure() -> None:
    sim = SimulatedDevice()
    provision(sim)
    sim.configure(dataclasses.replace(sim.config, keypad_timeout_seconds=5))
    assert sim.firmware.config.keypad_timeout_seconds == 5
    sim.wipe()
    assert sim.provisioning is None
    assert sim.last_outcome is None
    sim.power_off()
    sim.wipe()  # also while off; it stays off
    assert not sim.powered


def test_configure_keeps_the_old_settings_when_the_firmware_refuses() -> None:
    sim = SimulatedDevice()
    provision(sim)
    old = sim.config
    with pytest.raises(ValueError, match="keypad_timeout_seconds"):
        sim.configure(dataclasses.replace(old, keypad_timeout_seconds=0))
    assert sim.config == old
    assert sim.powered
    assert sim.provisioning is not None


def test_repr_holds_no_key() -> None:
    sim = SimulatedDevice()
    provision(sim)
    assert KEY_HEX not in repr(sim).lower()


def test_state_and_clock_persist_in_files(tmp_path: Path) -> None:
    path = tmp_path / "device.bin"
    config = dataclasses.replace(
        DeviceConfig(),
        waiting_period=dataclasses.replace(DeviceConfig().waiting_period, enabled=False),
    )
    with SimulatedDevice.open(path, config=config) as sim:
        provision(sim)
        sim.enter_token(add(1, 3))
        sim.advance(DAY)
        # Another device cannot use the same file meanwhile.
        with pytest.raises(StorageError, match="already in use"):
            SimulatedDevice.open(path)
    saved = json.loads(sidecar_path(path).read_text())
    assert saved["rtc"] == DEFAULT_RTC_START + DAY
    assert saved["config"]["waiting"] is False
    with SimulatedDevice.open(path) as sim:
        assert (sim.rtc, sim.ticks) == (DEFAULT_RTC_START + DAY, 0)
        assert sim.config.waiting_period.enabled is False
        status = sim.status()
        assert (status.serial, status.count, status.seconds_left) == (SERIAL, 2, 2 * DAY)
        sim.set_rtc(DEFAULT_RTC_START + 5 * DAY)
    with SimulatedDevice.open(path) as sim:
        assert sim.rtc == DEFAULT_RTC_START + 5 * DAY


def test_without_the_clock_file_the_rtc_restarts_from_the_stored_time(tmp_path: Path) -> None:
    path = tmp_path / "device.bin"
    with SimulatedDevice.open(path) as sim:
        provision(sim)
        sim.advance(3 * DAY)  # poll() records the RTC in the device state
    sidecar_path(path).unlink()
    with SimulatedDevice.open(path) as sim:
        assert sim.rtc == DEFAULT_RTC_START + 3 * DAY
        assert sim.status().tamper is TamperFlag.NONE


def test_a_blank_file_starts_at_the_default_time(tmp_path: Path) -> None:
    with SimulatedDevice.open(tmp_path / "new.bin") as sim:
        assert sim.rtc == DEFAULT_RTC_START
        assert sim.provisioning is None
    assert (tmp_path / "new.bin").read_bytes() == b"\xff" * 1024


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format": "other", "version": 1, "rtc": 1}',
        '{"format": "paygkit-simulator", "version": 9, "rtc": 1}',
        '{"format": "paygkit-simulator", "version": 1, "rtc": -5}',
        '{"format": "paygkit-simulator", "version": 1, "rtc": 1, "config": {"waiting": 3}}',
        '{"format": "paygkit-simulator", "version": 1, "rtc": 1, "config": {"tamper": "x"}}',
        '{"format": "paygkit-simulator", "version": 1, "rtc": 1, '
        '"config": {"accept_reset_token": "yes"}}',
    ],
)
def test_a_damaged_clock_file_is_reported_not_guessed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "device.bin"
    sidecar_path(path).write_text(content)
    with pytest.raises(SimulatorFileError, match="delete"):
        SimulatedDevice.open(path)
    # The memory file was released: opening it directly works.
    FileMemory(path).close()


def reset_token() -> str:
    """Counter Sync (999) at count 0: the starting code with its base put in."""
    base = (STARTING_CODE + 999) % 1000
    return f"{STARTING_CODE - STARTING_CODE % 1000 + base:09d}"


def test_the_reset_token_is_refused_unless_configured() -> None:
    sim = SimulatedDevice()
    assert sim.config.accept_reset_token is False
    provision(sim)
    sim.enter_token(add(1, 1))
    assert sim.enter_token(reset_token()).kind is OutcomeKind.ALREADY_USED
    sim.configure(dataclasses.replace(sim.config, accept_reset_token=True))
    outcome = sim.enter_token(reset_token())
    assert (outcome.kind, outcome.token_type) == (OutcomeKind.APPLIED, TokenType.COUNTER_SYNC)
    assert sim.status().count == 0


def test_the_reset_token_setting_is_kept_with_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "device.bin"
    with SimulatedDevice.open(path) as sim:
        sim.configure(dataclasses.replace(sim.config, accept_reset_token=True))
    assert json.loads(sidecar_path(path).read_text())["config"]["accept_reset_token"] is True
    with SimulatedDevice.open(path) as sim:
        assert sim.config.accept_reset_token is True
    # A clock file from before the setting existed: the default, refused.
    saved = json.loads(sidecar_path(path).read_text())
    del saved["config"]["accept_reset_token"]
    sidecar_path(path).write_text(json.dumps(saved))
    with SimulatedDevice.open(path) as sim:
        assert sim.config.accept_reset_token is False


def test_the_wait_counts_only_while_the_simulator_is_on() -> None:
    sim = SimulatedDevice()
    provision(sim)
    for _ in range(3):
        outcome = sim.enter_token("000000000")
        assert outcome.kind is OutcomeKind.INVALID
        sim.advance(outcome.wait_seconds)
    assert sim.enter_token("000000000").wait_seconds == 240
    sim.advance(100)  # on: the wait runs, and the poll that ends it checkpoints 140 s
    sim.power_off()
    sim.advance(30 * DAY)  # off: it does not
    sim.set_rtc(sim.rtc + 365 * DAY)
    sim.power_on()
    assert sim.status().blocked_seconds == 140
    assert sim.enter_token(add(1, 1)).kind is OutcomeKind.BLOCKED


# --- the interactive device ------------------------------------------------------------------


def render(ui: InteractiveSimulator) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None, highlight=False)
    console.print(ui.panel())
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


@pytest.mark.parametrize(
    ("typed", "command"),
    [
        ("*123 456 789#", "KEYS *123 456 789#"),
        ("#", "KEYS #"),
        ("+1h", "ADVANCE 1h"),
        ("+ 2d", "ADVANCE 2d"),
        ("off", "POWER OFF"),
        ("ON", "POWER ON"),
        ("status", "status"),
        ("reset", "reset"),
        ("TOKEN 123", "TOKEN 123"),
        ("quit", None),
        ("exit", None),
        ("help", ""),
    ],
)
def test_what_a_person_types(typed: str, command: str | None) -> None:
    assert InteractiveSimulator.command_for(typed) == command


def test_the_panel_follows_the_device() -> None:
    sim = SimulatedDevice()
    ui = InteractiveSimulator(sim)
    text = render(ui)
    assert "not set up" in text
    assert "Last result  -" in text
    ui.handle(f"#{SERIAL};{STARTING_CODE:09d};{KEY_HEX}")
    ui.handle("CONFIG waiting=off")
    ui.handle(f"*{add(1, 7)}#")
    text = render(ui)
    assert SERIAL in text
    assert "Active       YES" in text
    assert "Time left    7d 00h 00m 00s" in text
    assert "Count        2  (used 2)" in text
    assert "APPLIED Add Time, count 2  +7 days" in text
    assert "green x2  +7 days" in text
    assert "waiting period off" in text
    assert "RESULT APPLIED" in text  # the protocol answer is shown too
    assert KEY_HEX not in text.lower()

    ui.handle("+1d")
    ui.handle("*12")
    text = render(ui)
    assert "Time left    6d 00h 00m 00s" in text
    assert "Keypad       *12" in text
    assert "2025-01-02 00:00:00 UTC" in text

    ui.handle("CONFIG waiting=on")
    for _ in range(3):
        ui.handle("*111111111#")
    text = render(ui)
    assert "entry blocked for 2m 00s" in text
    assert "(3 invalid in a row)" in text
    assert "red x10" in text

    ui.handle("CLOCK -1d")
    assert "rtc_slow,rtc_backwards" in render(ui)

    ui.handle("off")
    text = render(ui)
    assert "OFF (type 'on')" in text
    ui.handle("on")
    assert "Active" in render(ui)

    ui.handle("bogus")
    assert "ERR UNKNOWN_COMMAND" in render(ui)
    ui.handle("help")
    assert "+30m, +1h, +2d" in render(ui)
    assert not ui.finished
    ui.handle("quit")
    assert ui.finished


def test_run_interactive_redraws_after_each_line() -> None:
    sim = SimulatedDevice()
    console = Console(file=io.StringIO(), width=120, color_system=None, highlight=False)
    lines = iter(["SETUP serial=RUN1 code=1 key=" + "2" * 32, "+1h"])
    prompts: list[str] = []

    def read_line(prompt: str) -> str:
        prompts.append(prompt)
        return next(lines)  # StopIteration would fail the test; EOF ends the loop

    def read_or_eof(prompt: str) -> str:
        try:
            return read_line(prompt)
        except StopIteration:
            raise EOFError from None

    run_interactive(sim, console, read_or_eof)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert prompts == [PROMPT] * 3
    assert output.count("paygkit simulated device") == 3
    assert "RUN1" in output
    assert "2025-01-01 01:00:00 UTC" in output


def test_the_panel_counts_down_with_the_token_layers_clock_text() -> None:
    assert [countdown_text(s) for s in (0, 59, 61, 3600, 90061)] == [
        "0s",
        "59s",
        "1m 01s",
        "1h 00m 00s",
        "1d 01h 01m 01s",
    ]


def test_parse_serve() -> None:
    assert parse_serve("stdio").kind == "stdio"
    assert parse_serve("tcp:7878").port == 7878
    assert parse_serve("pty").link is None
    assert parse_serve("pty:/tmp/x").link == Path("/tmp/x")


def _paygkit() -> list[str]:
    script = Path(sys.executable).with_name("paygkit")
    if script.exists():
        return [str(script)]
    found = shutil.which("paygkit")
    if found is None:
        pytest.skip("the paygkit console script is not installed")
    return [found]


def test_interactive_simulate_command_with_typed_lines(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    env = {k: v for k, v in os.environ.items() if k != "PAYGKIT_KEY"}
    env |= {"COLUMNS": "120", "NO_COLOR": "1", "PAYGKIT_KEY": KEY_HEX}
    typed = f"*{add(1, 1)}#\n+6h\nstatus\nquit\n"
    run = subprocess.run(
        [
            *_paygkit(),
            "device",
            "simulate",
            "--state",
            str(state),
            "--serial",
            SERIAL,
            "--starting-code",
            str(STARTING_CODE),
        ],
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    panels = run.stdout.split(PROMPT)
    assert len(panels) == 5  # a panel before each of the 4 lines, nothing after quit
    assert "Active       NO" in panels[0]
    assert "Active       YES" in panels[1]
    assert "Time left    1d 00h 00m 00s" in panels[1]
    assert "Time left    18h 00m 00s" in panels[2]
    assert "STATUS serial=TEST220000001" in panels[3]
    assert panels[4] == ""
    assert KEY_HEX not in (run.stdout + run.stderr).lower()
    # The device persists: a new run shows what is left.
    again = subprocess.run(
        [*_paygkit(), "device", "simulate", "--state", str(state)],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "Time left    18h 00m 00s" in again.stdout


def test_simulate_accept_reset_token_option(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    # The device commands alone, as `paygkit device` mounts them.
    app = typer.Typer()
    app.add_typer(device_cmd.app, name="device")

    def simulate(*options: str) -> str:
        result = CliRunner().invoke(
            app, ["device", "simulate", "--state", str(state), *options], input="quit\n"
        )
        assert result.exit_code == 0, result.output
        return result.output

    def saved() -> object:
        return json.loads(sidecar_path(state).read_text())["config"]["accept_reset_token"]

    assert "Reset token" not in simulate()
    assert saved() is False
    assert "Reset token  accepted" in simulate("--accept-reset-token")
    assert saved() is True
    assert "Reset token  accepted" in simulate()  # kept, like the other settings
    assert "Reset token" not in simulate("--refuse-reset-token")
    assert saved() is False


# --- what a person gets wrong at the prompt (issue 13) -----------------------------------------


def _set_up() -> InteractiveSimulator:
    ui = InteractiveSimulator(SimulatedDevice())
    ui.handle(f"#{SERIAL};{STARTING_CODE:09d};{KEY_HEX}")
    ui.handle("CONFIG waiting=off")
    return ui


def test_digits_typed_without_a_star_get_a_hint() -> None:
    ui = _set_up()
    ui.handle(add(1, 7))  # the token's digits, without * and #
    text = render(ui)
    assert "start a token with *, end it with #" in text
    assert "Active       NO" in text  # nothing was entered
    ui.handle(f"*{add(1, 7)}#")
    text = render(ui)
    assert "start a token with *" not in text  # the hint is about the last line only
    assert "Active       YES" in text
    # Digits that continue a token begun on an earlier line are no mistake.
    ui.handle("*12")
    ui.handle("34")
    assert "start a token with *" not in render(ui)


def test_a_character_that_is_not_a_keypad_key_is_named() -> None:
    ui = _set_up()
    ui.handle("*30225901x#")
    text = render(ui)
    assert "'x' is not a keypad key" in text
    assert "UNKNOWN_COMMAND" not in text
    assert "nothing was pressed" in text
    assert ui.sim.status().invalid_attempts == 0
    ui.handle("12a4b#")
    assert "'a', 'b' are not keypad keys" in render(ui)
    ui.handle("bogus")  # a word is still a protocol command
    assert "ERR UNKNOWN_COMMAND" in render(ui)


def test_simulate_refuses_a_state_file_that_holds_another_device(tmp_path: Path) -> None:
    state = tmp_path / "device.bin"
    app = typer.Typer()
    app.add_typer(device_cmd.app, name="device")
    other_key = "3" * 32

    def simulate(*options: str, key: str = KEY_HEX) -> tuple[int, str]:
        result = CliRunner().invoke(
            app,
            ["device", "simulate", "--state", str(state), *options],
            input="quit\n",
            env={"PAYGKIT_KEY": key, "COLUMNS": "200"},
        )
        return result.exit_code, result.output

    code, output = simulate("--serial", SERIAL)
    assert code == 0, output
    assert SERIAL in output
    # Before: a note the panel wiped at once, and the old device ran under the new options.
    code, output = simulate("--serial", "OTHER1", key=other_key)
    assert code == 2, output
    assert f"already holds device {SERIAL}" in output
    assert "the --serial, --key (or PAYGKIT_KEY) given differ from it" in output
    assert "--reset-state" in output
    assert "--state" in output
    assert other_key not in output
    code, output = simulate("--serial", SERIAL, key=other_key)
    assert code == 2, output
    assert "the --key (or PAYGKIT_KEY) given differs from it" in output
    code, output = simulate("--serial", SERIAL)  # the same device: opened as before
    assert code == 0, output
    code, output = simulate("--serial", "OTHER1", "--reset-state", key=other_key)
    assert code == 0, output
    assert "OTHER1" in output
    assert SERIAL not in output
    with SimulatedDevice.open(state) as sim:
        provisioning = sim.provisioning
        assert provisioning is not None
        assert provisioning.serial == "OTHER1"
