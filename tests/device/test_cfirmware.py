"""The C device library built for Python (`CFirmware` on paygkit.device._cfirmware).

The rest of tests/device, factory and certify runs once on each firmware; here
the two run side by side: the same random events give the same outcomes,
texts, feedback, status, exceptions and memory bytes; a power cut after any
byte write, or before any signal, leaves the same memory and raises the same
exception; a state file passes from one to the other and back; and
`paygkit device simulate --firmware c --serve pty` passes `paygkit certify`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from paygkit.cli.main import app
from paygkit.device import cfirmware
from paygkit.device.cfirmware import (
    CFirmware,
    CFirmwareUnavailableError,
    build_config,
    c_firmware_built,
    firmware_class,
)
from paygkit.device.clocks import ManualClock, ManualTicks, RecordingFeedback
from paygkit.device.firmware import Firmware, OutcomeKind
from paygkit.device.memory import FileMemory, RamMemory
from paygkit.device.ports import Feedback, FeedbackKind
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.state import (
    DeviceConfig,
    DeviceState,
    Provisioning,
    TamperResponse,
    WaitingPeriod,
)
from paygkit.device.storage import SLOT_SIZE, StateStore, StorageError
from paygkit.token import DecodeWindows, DeviceParams, TokenType, generate
from tests.device.powercut import CutAtFeedback, PowerCut, PowerCutMemory
from tests.device.test_transports import SerialClient, _env, _paygkit, _read_line_from

pytestmark = [
    pytest.mark.one_firmware("runs both firmwares side by side"),
    pytest.mark.skipif(not c_firmware_built(), reason="the C firmware is not built"),
    # make test's second pass is the pure-Python one; its first runs these.
    pytest.mark.skipif(
        os.environ.get("PAYGKIT_PURE_PYTHON") == "1", reason="the C library: first pass only"
    ),
]

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
SERIAL = "SLT220000001"
T0 = 1_700_000_000
PARAMS = DeviceParams.create(KEY, STARTING_CODE)
RESTRICTED = DeviceParams.create(KEY, STARTING_CODE, restricted_digits=True)


def outcome_of(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did, comparable between the firmwares: its result or its exception."""
    try:
        return ("returned", call())
    except Exception as error:  # compared, not swallowed: both must raise the same
        return ("raised", (type(error), str(error)))


class Twin:
    """One device of a Pair: a firmware on its own clocks, memory and feedback."""

    def __init__(self, firmware: type[Firmware] | type[CFirmware], memory: Any) -> None:
        self.firmware_type = firmware
        self.clock = ManualClock(T0)
        self.ticks = ManualTicks()
        self.memory = memory
        self.feedback = RecordingFeedback()
        self.config = DeviceConfig()
        self.device: Firmware | CFirmware | None = None
        self.power_on()

    def power_on(self) -> tuple[str, Any]:
        self.ticks.restart()

        def build() -> None:
            self.device = self.firmware_type(
                clock=self.clock,
                ticks=self.ticks,
                memory=self.memory,
                feedback=self.feedback,
                config=self.config,
            )

        return outcome_of(build)


class Pair:
    """paygkit's Firmware and CFirmware given the same events, compared after each."""

    def __init__(self, make_memory: Callable[[], Any] = RamMemory) -> None:
        self.twins = (Twin(Firmware, make_memory()), Twin(CFirmware, make_memory()))
        self.tokens: list[str] = []
        self.steps = 0

    @property
    def python(self) -> Twin:
        return self.twins[0]

    def each(self, action: Callable[[Twin], Any]) -> Any:
        """Does `action` to both; both must do the same, which is returned."""
        self.steps += 1
        done = [outcome_of(lambda twin=twin: action(twin)) for twin in self.twins]
        observed = [
            (
                result,
                list(twin.feedback.events),
                twin.memory.data,
                None if twin.device is None else twin.device.status(),
                None if twin.device is None else twin.device.provisioning,
            )
            for twin, result in zip(self.twins, done, strict=True)
        ]
        for twin in self.twins:
            twin.feedback.clear()
        python, c = observed
        for name, left, right in zip(
            ("result", "feedback", "memory", "status", "provisioning"), python, c, strict=True
        ):
            assert left == right, (self.steps, name, left, right)
        return done[0]

    def device_call(self, call: Callable[[Firmware | CFirmware], Any]) -> Any:
        def on(twin: Twin) -> Any:
            assert twin.device is not None
            return call(twin.device)

        return self.each(on)

    def token(self, token_type: TokenType, offset: int, value: int, extended: bool) -> str:
        provisioning = self.python.device.provisioning if self.python.device else None
        if provisioning is None:
            return "123456789"
        params = RESTRICTED if provisioning.restricted_digits else PARAMS
        count = max(0, self.python.device.status().count + offset)  # type: ignore[union-attr]
        units = value if token_type in (TokenType.ADD_TIME, TokenType.SET_TIME) else None
        made = generate(params, count=count, token_type=token_type, units=units, extended=extended)
        self.tokens.append(made.digits)
        return made.digits


# -- random runs, side by side ---------------------------------------------------------------

token_events = st.tuples(
    st.just("token"),
    st.sampled_from(
        (TokenType.ADD_TIME,) * 3
        + (TokenType.SET_TIME, TokenType.DISABLE_PAYG)
        + (TokenType.COUNTER_SYNC,)
    ),
    st.integers(-20, 70),
    st.integers(0, 995),
    st.integers(0, 6).map(lambda n: n == 0),
    st.booleans(),  # by keys
)
events = st.one_of(
    *(token_events,) * 5,
    st.tuples(st.just("advance"), st.sampled_from((1, 29, 31, 61, 121, 3599, 3600, 90_000))),
    st.tuples(st.just("rtc"), st.sampled_from((-100_000, -61, 30, 200_000))),
    st.tuples(st.just("keys"), st.text("*#0123456789", max_size=8)),
    st.tuples(
        st.just("text"),
        st.sampled_from(("", "12", "1234", "123 456", "-1", "12a", " 1", "1" * 300, "9" * 21)),
    ),
    st.just(("replay",)),
    st.just(("power",)),
    st.just(("poll",)),
    st.tuples(st.just("config"), st.booleans(), st.booleans(), st.sampled_from((1, 30, 600))),
    st.tuples(
        st.just("setup"),
        st.sampled_from((SERIAL, "a.b", "-bad", "X" * 33)),
        st.sampled_from((1, 7, 0)),
        st.booleans(),
        st.sampled_from((None, "1234", "50", "")),
        st.sampled_from((0, 1, 2**31, 5)),
    ),
)


def play(pair: Pair, event: tuple[Any, ...]) -> None:
    name = event[0]
    if pair.python.device is None and name not in ("power", "advance", "rtc", "config"):
        return
    if name == "token":
        _, token_type, offset, value, extended, by_keys = event
        token = pair.token(token_type, offset, value, extended)
        if by_keys:
            for key in f"*{token}#":
                pair.device_call(lambda device, key=key: device.press(key))
        else:
            pair.device_call(lambda device: device.enter_token(token))
    elif name == "advance":

        def advance(twin: Twin) -> None:
            twin.clock.advance(event[1])
            if twin.device is not None:
                twin.ticks.advance(event[1])
                twin.device.poll()

        pair.each(advance)
    elif name == "rtc":

        def move(twin: Twin) -> None:
            twin.clock.set(twin.clock.now() + event[1])
            if twin.device is not None:
                twin.device.poll()

        pair.each(move)
    elif name == "keys":
        for key in event[1]:
            pair.device_call(lambda device, key=key: device.press(key))
    elif name == "text":
        pair.device_call(lambda device: device.enter_token(event[1]))
    elif name == "replay":
        if pair.tokens:
            token = pair.tokens[len(pair.tokens) // 2]
            pair.device_call(lambda device: device.enter_token(token))
    elif name == "power":

        def switch(twin: Twin) -> Any:
            if twin.device is None:
                return twin.power_on()
            twin.device = None
            return None

        pair.each(switch)
    elif name == "poll":
        pair.device_call(lambda device: device.poll())
    elif name == "config":
        _, waiting, lock, timeout = event

        def configure(twin: Twin) -> Any:
            twin.config = dataclasses.replace(
                twin.config,
                waiting_period=WaitingPeriod(enabled=waiting),
                tamper_response=TamperResponse.LOCK if lock else TamperResponse.REPORT,
                keypad_timeout_seconds=timeout,
            )
            return twin.power_on() if twin.device is not None else None

        pair.each(configure)
    else:
        _, serial, divider, restricted, test_code, count = event
        pair.device_call(
            lambda device: device.provision(
                serial=serial,
                starting_code=STARTING_CODE,
                key=KEY,
                time_divider=divider,
                restricted_digits=restricted,
                test_code=test_code,
                count=count,
            )
        )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(run=st.lists(events, min_size=10, max_size=50), restricted=st.booleans())
def test_the_same_device_as_the_model(run: list[tuple[Any, ...]], restricted: bool) -> None:
    pair = Pair()
    play(pair, ("setup", SERIAL, 1, restricted, "1234" if restricted else "2468", 1))
    for event in run:
        play(pair, event)


def test_the_texts_of_every_path() -> None:
    """A run through every kind of signal and outcome, not left to chance."""
    pair = Pair()
    play(pair, ("config", True, True, 30))
    play(pair, ("keys", "#12"))
    play(pair, ("text", "123456789"))  # not provisioned
    play(pair, ("setup", SERIAL, 24, False, "2468", 1))
    for token_type in (TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.COUNTER_SYNC):
        play(pair, ("token", token_type, 1, 30, False, False))
    play(pair, ("token", TokenType.ADD_TIME, 1, 123456, True, True))  # extended, by keys
    play(pair, ("replay",))
    for text in ("12a", "", "1234567", "111111111", "111111111", "111111111", "111111111"):
        play(pair, ("text", text))  # malformed and invalid, then the wait
    play(pair, ("advance", 121))
    play(pair, ("keys", "#*2468#"))
    for _ in range(6):
        play(pair, ("text", "2468"))  # the test code, then its limit
    play(pair, ("rtc", -100_000))  # tamper: locked
    play(pair, ("keys", "#*9#"))
    play(pair, ("keys", "*1"))
    play(pair, ("advance", 31))  # the entry times out
    play(pair, ("token", TokenType.SET_TIME, 1, 2, False, False))
    play(pair, ("token", TokenType.DISABLE_PAYG, 1, 0, False, False))
    play(pair, ("keys", "#"))
    play(pair, ("setup", SERIAL, 1, True, "1234", 1))
    play(pair, ("keys", "*1509" + "1" * 20 + "#"))


# -- power cuts ------------------------------------------------------------------------------


def scripted_run(device: Firmware | CFirmware, clock: ManualClock, ticks: ManualTicks) -> None:
    """Tokens of every type, an invalid one, a tamper check and a wait checkpoint."""
    count = 1
    for token_type, days in (
        (TokenType.ADD_TIME, 3),
        (TokenType.SET_TIME, 10),
        (TokenType.DISABLE_PAYG, None),
        (TokenType.ADD_TIME, 2),
        (TokenType.COUNTER_SYNC, None),
    ):
        clock.advance(3600)
        ticks.advance(3600)
        made = generate(PARAMS, count=count, token_type=token_type, days=days)
        count = made.count
        device.enter_token(made.digits)
        device.enter_token("111111111")
    clock.set(clock.now() - 7200)  # set back: the next entry finds it first
    device.enter_token(generate(PARAMS, count=count, days=1).digits)
    ticks.advance(200)
    clock.advance(200)
    device.poll()


def provisioned_image() -> bytes:
    memory = RamMemory()
    device = Firmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory)
    device.provision(serial=SERIAL, starting_code=STARTING_CODE, key=KEY)
    return memory.data


def cut_run(
    firmware: type[Firmware] | type[CFirmware],
    image: bytes,
    budget: int | None,
    signal_cut: int | None,
) -> tuple[tuple[str, Any], list[Feedback], bytes, int]:
    raw = RamMemory(data=image)
    clock, ticks = ManualClock(T0), ManualTicks()
    feedback = RecordingFeedback() if signal_cut is None else CutAtFeedback(signal_cut)
    memory = raw if budget is None else PowerCutMemory(raw, budget)
    device = firmware(clock=clock, ticks=ticks, memory=memory, feedback=feedback)
    done = outcome_of(lambda: scripted_run(device, clock, ticks))
    if done[0] == "raised":
        # How many bytes landed, not how the writes that carried them were split.
        error_type, message = done[1]
        done = ("raised", (error_type, message.partition(" (")[0]))
    return done, feedback.events, raw.data, clock.now()


def test_a_power_cut_after_any_byte_or_before_any_signal_leaves_the_same_memory() -> None:
    """At every byte write of the run, and instead of every signal, the power fails: both
    firmwares raise the same exception, have signalled the same and leave the same bytes;
    and each, powered on again over what the other left, shows the same device."""
    image = provisioned_image()
    whole = cut_run(Firmware, image, None, None)
    assert whole[0] == ("returned", None)
    probe = PowerCutMemory(RamMemory(data=image))
    clock, ticks = ManualClock(T0), ManualTicks()
    scripted_run(Firmware(clock=clock, ticks=ticks, memory=probe), clock, ticks)
    total = probe.bytes_written
    signals = len([e for e in whole[1] if e.kind is not FeedbackKind.KEY_PRESS])
    cuts = [(budget, None) for budget in range(total + 1)]
    cuts += [(None, signal_cut) for signal_cut in range(signals + 1)]
    raised = 0
    for budget, signal_cut in cuts:
        python = cut_run(Firmware, image, budget, signal_cut)
        c = cut_run(CFirmware, image, budget, signal_cut)
        assert python == c, (budget, signal_cut)
        raised += python[0][0] == "raised"
        statuses = []
        for firmware in (Firmware, CFirmware):
            restarted = firmware(
                clock=ManualClock(python[3]), ticks=ManualTicks(), memory=RamMemory(data=c[2])
            )
            statuses.append(restarted.status())
        assert statuses[0] == statuses[1], (budget, signal_cut)
    assert raised == total + signals


def test_after_a_power_cut_the_c_firmware_stops_until_powered_on_again() -> None:
    raw = RamMemory(data=provisioned_image())
    device = CFirmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=PowerCutMemory(raw, 3))
    with pytest.raises(PowerCut):
        device.enter_token(generate(PARAMS, count=1, days=1).digits)
    for call in (device.poll, lambda: device.enter_token("123456789"), lambda: device.press("*")):
        with pytest.raises(StorageError, match="stopped after its memory failed"):
            call()
    again = CFirmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=raw)
    assert again.enter_token(generate(PARAMS, count=1, days=1).digits).kind is OutcomeKind.APPLIED


# -- memory the firmware cannot use ----------------------------------------------------------


def newer_layout_image() -> bytes:
    memory = bytearray(provisioned_image())
    length = int.from_bytes(memory[6:8], "little")
    record = bytearray(memory[: 12 + length])
    record[4] = 3
    record += zlib.crc32(record).to_bytes(4, "little")
    memory[: len(record)] = record
    return bytes(memory)


def refused_image() -> bytes:
    memory = bytearray(provisioned_image())
    length = int.from_bytes(memory[6:8], "little")
    memory[12] |= 0x80  # an unknown flag, under a good CRC
    memory[12 + length : 16 + length] = zlib.crc32(memory[: 12 + length]).to_bytes(4, "little")
    return bytes(memory)


@pytest.mark.parametrize(
    "memory",
    [
        lambda: RamMemory(data=newer_layout_image()),
        lambda: RamMemory(data=refused_image()),
        lambda: RamMemory(size=1000),
    ],
    ids=["newer layout", "refused values", "too small"],
)
def test_memory_that_cannot_be_loaded_is_refused_in_paygkit_words(
    memory: Callable[[], RamMemory],
) -> None:
    errors = []
    for firmware in (Firmware, CFirmware):
        with pytest.raises(StorageError) as caught:
            firmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory())
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


class ForgetfulMemory(RamMemory):
    """A worn memory: writes to slot B (or A: `worn` 0) return but change nothing."""

    def __init__(self, *, data: bytes, worn: int = 1) -> None:
        super().__init__(data=data)
        self.worn = worn

    def write(self, offset: int, data: bytes) -> None:
        if offset // SLOT_SIZE != self.worn:
            super().write(offset, data)


def test_a_save_that_does_not_read_back_raises_as_in_the_model() -> None:
    token = generate(PARAMS, count=1, days=1).digits
    seen = []
    for firmware in (Firmware, CFirmware):
        memory = ForgetfulMemory(data=provisioned_image())
        device = firmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory)
        with pytest.raises(StorageError, match="did not read back as written") as caught:
            device.enter_token(token)
        seen.append((str(caught.value), device.status(), memory.data))
    assert seen[0] == seen[1]


def _image_with_newest_in_b() -> bytes:
    memory = RamMemory(data=provisioned_image())
    device = Firmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory)
    device.enter_token(generate(PARAMS, count=1, days=1).digits)
    return memory.data


@pytest.mark.parametrize("worn", [0, 1], ids=["slot A worn", "slot B worn"])
def test_every_save_that_does_not_read_back_raises_and_names_its_slot(worn: int) -> None:
    """The library clears its storage error at each call and keeps the failed save's slot
    across the reload, so a failure repeated on the next key press, token or poll is raised
    again, naming the slot it failed on, as the model does."""
    image = provisioned_image() if worn else _image_with_newest_in_b()
    tokens = [generate(PARAMS, count=count, days=1).digits for count in (3, 5)]
    seen = []
    for firmware in (Firmware, CFirmware):
        memory = ForgetfulMemory(data=image, worn=worn)
        device = firmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory)
        errors = []
        for _ in range(2):
            with pytest.raises(StorageError, match="did not read back as written") as caught:
                device.enter_token(tokens[0])
            errors.append(str(caught.value))
        for key in "*" + tokens[1]:
            device.press(key)
        with pytest.raises(StorageError, match="did not read back as written") as caught:
            device.press("#")
        errors.append(str(caught.value))
        seen.append((errors, device.status(), memory.data))
    assert seen[0] == seen[1]
    assert f"slot {'AB'[worn]}" in seen[1][0][0]


# -- settings, builds and the choice of firmware ---------------------------------------------


def test_the_builds_are_paygkit_s_defaults() -> None:
    assert build_config(cfirmware._cfirmware, DeviceConfig()) == DeviceConfig()
    workshop = DeviceConfig(accept_reset_token=True)
    assert build_config(cfirmware._cfirmware_workshop, workshop) == workshop


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (DeviceConfig(waiting_period=WaitingPeriod(forgiven=0)), "waiting_period"),
        (DeviceConfig(windows=DecodeWindows(forward=8)), "windows"),
        (DeviceConfig(test_code_max_uses=3), "test_code_max_uses"),
        (DeviceConfig(keypad_timeout_seconds=70_000), "65535"),
    ],
)
def test_settings_the_library_has_compiled_in_are_refused(config: DeviceConfig, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        CFirmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=RamMemory(), config=config)


def test_the_runtime_settings_are_taken() -> None:
    config = DeviceConfig(
        waiting_period=WaitingPeriod(enabled=False),
        tamper_response=TamperResponse.LOCK,
        keypad_timeout_seconds=5,
    )
    device = CFirmware(
        clock=ManualClock(T0), ticks=ManualTicks(), memory=RamMemory(), config=config
    )
    assert device.config is config


def test_the_simulator_runs_the_firmware_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(SimulatedDevice(firmware="c").firmware, CFirmware)
    assert SimulatedDevice(firmware="python").firmware_name == "python"
    monkeypatch.setenv("PAYGKIT_FIRMWARE", "c")
    sim = SimulatedDevice()
    assert (sim.firmware_name, type(sim.firmware)) == ("c", CFirmware)
    sim.power_off()
    sim.power_on()
    assert isinstance(sim.firmware, CFirmware)
    monkeypatch.setenv("PAYGKIT_FIRMWARE", "rust")
    with pytest.raises(ValueError, match="no firmware 'rust' \\(from PAYGKIT_FIRMWARE\\)"):
        SimulatedDevice()


def test_without_the_extension_the_c_firmware_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cfirmware, "_cfirmware", None)
    with pytest.raises(CFirmwareUnavailableError, match=r"not built.*Install gcc"):
        firmware_class("c")
    result = CliRunner().invoke(
        app,
        ["device", "simulate", "--firmware", "c", "--state", str(tmp_path / "d.bin")],
        env={"COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.exit_code == 2, result.output
    assert "Error: the C firmware (paygkit.device._cfirmware) is not built" in result.stderr
    assert "Traceback" not in result.output


def test_the_panel_says_which_firmware_runs(tmp_path: Path) -> None:
    state = str(tmp_path / "d.bin")
    runner = CliRunner()
    env = {"COLUMNS": "200", "NO_COLOR": "1", "PAYGKIT_FIRMWARE": "c"}
    chosen = runner.invoke(app, ["device", "simulate", "--state", state], env=env, input="quit\n")
    assert chosen.exit_code == 0, chosen.output
    assert "Firmware     C device library (firmware/lib)" in chosen.stdout
    given = ["device", "simulate", "--state", state, "--firmware", "python"]
    python = runner.invoke(app, given, env=env, input="quit\n")
    assert "Firmware     paygkit model (Python)" in python.stdout


# -- calls from callbacks and threads --------------------------------------------------------


class Reentrant(RecordingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.device: CFirmware | None = None
        self.seen: list[object] = []

    def emit(self, feedback: Feedback) -> None:
        super().emit(feedback)
        assert self.device is not None
        self.seen.append(self.device.status().count)
        if feedback.kind is FeedbackKind.TIME_CHANGED:
            self.device.enter_token("123456789")


def test_a_signal_may_read_the_status_but_not_call_the_device_again() -> None:
    sink = Reentrant()
    device = CFirmware(
        clock=ManualClock(T0), ticks=ManualTicks(), memory=RamMemory(), feedback=sink
    )
    sink.device = device
    device.provision(serial=SERIAL, starting_code=STARTING_CODE, key=KEY)
    device.press("*")
    assert sink.seen == [1]
    with pytest.raises(RuntimeError, match="already handling a call"):
        device.enter_token(generate(PARAMS, count=1, days=1).digits)
    assert device.status().count == 2  # the token was saved before its signal


def test_devices_in_threads_each_run_on_their_own_memory(tmp_path: Path) -> None:
    """FileMemory lets other threads run while it syncs, in the middle of a C call."""
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            with FileMemory(tmp_path / f"device{index}.bin") as memory:
                device = CFirmware(clock=ManualClock(T0), ticks=ManualTicks(), memory=memory)
                device.provision(serial=f"S{index}", starting_code=STARTING_CODE, key=KEY)
                count = 1
                for _ in range(15):
                    made = generate(PARAMS, count=count, days=1)
                    count = made.count
                    assert device.enter_token(made.digits).kind is OutcomeKind.APPLIED
                assert device.status().count == 30
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures


# -- state files -----------------------------------------------------------------------------


def test_a_state_file_passes_between_the_firmwares(tmp_path: Path) -> None:
    path = tmp_path / "device.bin"
    made = iter(generate(PARAMS, count=c, days=1).digits for c in range(1, 40, 2))
    with SimulatedDevice.open(path, firmware="c") as sim:
        sim.provision(serial=SERIAL, starting_code=STARTING_CODE, key=KEY, test_code="2468")
        sim.enter_token(next(made))
        for _ in range(3):
            sim.enter_token("111111111")  # a wait starts
        sim.advance(61)  # and is checkpointed: the wait stored is the wait left
        before = sim.status()
    with SimulatedDevice.open(path, firmware="python") as sim:
        assert sim.status() == before  # the clock was kept; the wait runs on from power-on
        sim.advance(120)
        assert sim.enter_token(next(made)).kind is OutcomeKind.APPLIED
        sim.enter_token("2468")
        after = sim.status()
    with SimulatedDevice.open(path, firmware="c") as sim:
        assert dataclasses.replace(sim.status(), blocked_seconds=0) == after
        assert sim.enter_token(next(made)).count == 6
    state = StateStore(RamMemory(data=path.read_bytes())).load()
    assert state.provisioning == Provisioning(
        serial=SERIAL, key=bytes.fromhex(KEY), starting_code=STARTING_CODE, test_code="2468"
    )
    assert isinstance(state, DeviceState)
    assert state.last_count == 6


# -- the command line ------------------------------------------------------------------------


@pytest.fixture
def c_device_on_a_pty(tmp_path: Path) -> Iterator[Path]:
    """`paygkit device simulate --firmware c --serve pty:LINK`; yields the link."""
    state, link = tmp_path / "device.bin", tmp_path / "ttyPAYG"
    options = ["--firmware", "c", "--state", str(state), "--serve", f"pty:{link}"]
    process = subprocess.Popen(
        [*_paygkit(), "device", "simulate", *options],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(PAYGKIT_FIRMWARE="python"),  # the option decides
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        assert _read_line_from(process.stdout.fileno()).startswith("/dev/")
        yield link
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_simulate_firmware_c_on_a_pty_passes_certification(
    c_device_on_a_pty: Path, tmp_path: Path
) -> None:
    device = ["--key", KEY, "--starting-code", str(STARTING_CODE)]
    done = subprocess.run(
        [*_paygkit(), "certify", "--target", f"pty:{c_device_on_a_pty}", *device],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"PASSED: \d+ passed, 0 failed", done.stdout), done.stdout
    client = SerialClient(c_device_on_a_pty)
    try:
        assert client.ask("HELLO")[-1] == "OK HELLO"
    finally:
        client.close()
