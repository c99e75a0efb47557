"""A simulated device: the firmware model with manual clocks, a power switch and a memory.

`SimulatedDevice` is what `paygkit device simulate` runs and what the
protocol tests drive.  Time stands still unless told to move, so every run is
reproducible: `advance()` moves the RTC and the tick source together (normal
running), `set_rtc()` moves the RTC alone (tampering), `power_off()` /
`power_on()` drop and rebuild the `Firmware` over the same memory and RTC with
a restarted tick source, exactly as the firmware sees a power cut.

Persistence (`SimulatedDevice.open(path)`): the memory is a `FileMemory` at
`path`, and the simulator keeps its RTC and firmware settings in a small JSON
file next to it (`<path>.sim.json`), replaced atomically after every change.
Without that file the RTC starts from the latest RTC time the device stored
(`DeviceState.latest_rtc_seen`), so a restarted simulator never shows the
device its clock running backwards; a blank device starts at
`DEFAULT_RTC_START`.

Firmware: paygkit's model (`firmware="python"`) or the C device library
(`firmware="c"`, `paygkit.device.cfirmware`); None takes $PAYGKIT_FIRMWARE,
else the model.  Both keep the same memory layout, so a state file opened
with one runs on the other; the choice is not saved with it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from paygkit.device.cfirmware import CFirmware, firmware_class
from paygkit.device.clocks import ManualClock, ManualTicks
from paygkit.device.firmware import Firmware, Status, TokenOutcome
from paygkit.device.memory import DEFAULT_SIZE, ERASED, FileMemory, RamMemory
from paygkit.device.ports import Feedback, FeedbackKind, Memory
from paygkit.device.state import DeviceConfig, Provisioning, TamperResponse
from paygkit.device.storage import StateStore
from paygkit.token import ChainBackend

DEFAULT_RTC_START = 1_735_689_600  # 2025-01-01 00:00:00 UTC
SIDECAR_SUFFIX = ".sim.json"
_SIDECAR_FORMAT = "paygkit-simulator"
_SIDECAR_VERSION = 1


class PoweredOffError(RuntimeError):
    """The simulated device is off; power it on first."""

    def __init__(self) -> None:
        super().__init__("the simulated device is off; call power_on() (protocol: POWER ON)")


class SimulatorFileError(ValueError):
    """The simulator's settings file cannot be read; the message says how to recover."""


def sidecar_path(state_path: str | os.PathLike[str]) -> Path:
    """Where the simulator keeps its RTC and settings for a state file."""
    path = Path(state_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def config_to_json(config: DeviceConfig) -> dict[str, Any]:
    """The settings the simulator keeps (protocol CONFIG, `device simulate` options).

    The rest keep their defaults.
    """
    return {
        "waiting": config.waiting_period.enabled,
        "tamper": config.tamper_response.value,
        "keypad_timeout": config.keypad_timeout_seconds,
        "accept_reset_token": config.accept_reset_token,
    }


def config_from_json(data: object, base: DeviceConfig | None = None) -> DeviceConfig:
    config = base if base is not None else DeviceConfig()
    if not isinstance(data, dict):
        raise ValueError("config must be an object")
    waiting = data.get("waiting", config.waiting_period.enabled)
    tamper = data.get("tamper", config.tamper_response.value)
    timeout = data.get("keypad_timeout", config.keypad_timeout_seconds)
    # Files written before the setting existed lack it: the default (refuse) applies.
    reset_token = data.get("accept_reset_token", config.accept_reset_token)
    if not isinstance(waiting, bool):
        raise ValueError("config.waiting must be true or false")
    if not isinstance(reset_token, bool):
        raise ValueError("config.accept_reset_token must be true or false")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
        raise ValueError("config.keypad_timeout must be a whole number of seconds, at least 1")
    return dataclasses.replace(
        config,
        waiting_period=dataclasses.replace(config.waiting_period, enabled=waiting),
        tamper_response=TamperResponse(tamper),
        keypad_timeout_seconds=timeout,
        accept_reset_token=reset_token,
    )


class _FeedbackQueue:
    """The simulator's feedback sink: queued for the protocol, the last one kept for display."""

    def __init__(self) -> None:
        self.pending: list[Feedback] = []
        self.last: Feedback | None = None  # the last LED pattern / message (not key echoes)

    def emit(self, feedback: Feedback) -> None:
        self.pending.append(feedback)
        if feedback.kind is not FeedbackKind.KEY_PRESS:
            self.last = feedback


class SimulatedDevice:
    """The `Firmware` (or `CFirmware`) on a manual RTC and tick source, with a power switch.

    `memory` defaults to a blank `RamMemory`; `SimulatedDevice.open(path)`
    uses a file and persists the clock.  The device starts powered on.
    """

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        rtc: int = DEFAULT_RTC_START,
        config: DeviceConfig | None = None,
        backend: ChainBackend | None = None,
        sidecar: str | os.PathLike[str] | None = None,
        firmware: str | None = None,
    ) -> None:
        self._firmware_class = firmware_class(firmware)
        self._memory: Memory = memory if memory is not None else RamMemory(DEFAULT_SIZE)
        self._clock = ManualClock(rtc)
        self._ticks = ManualTicks()
        self._config = config if config is not None else DeviceConfig()
        self._backend = backend
        self._sidecar = Path(sidecar) if sidecar is not None else None
        self._feedback = _FeedbackQueue()
        self._firmware: Firmware | CFirmware | None = None
        self.last_outcome: TokenOutcome | None = None
        self.power_on()
        self._save_sidecar()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        config: DeviceConfig | None = None,
        backend: ChainBackend | None = None,
        memory_size: int = DEFAULT_SIZE,
        firmware: str | None = None,
    ) -> SimulatedDevice:
        """A simulator whose memory is the file at `path` (created blank if missing).

        `config` replaces the settings saved with the file; None keeps them.
        """
        side = sidecar_path(path)
        rtc: int | None = None
        saved_config: DeviceConfig | None = None
        if side.exists():
            rtc, saved_config = _read_sidecar(side)
        memory = FileMemory(path, memory_size)
        try:
            if rtc is None:
                latest = StateStore(memory).load().latest_rtc_seen
                rtc = latest if latest > 0 else DEFAULT_RTC_START
            return cls(
                memory,
                rtc=rtc,
                config=config if config is not None else saved_config,
                backend=backend,
                sidecar=side,
                firmware=firmware,
            )
        except BaseException:
            memory.close()
            raise

    # -- the simulator controls -------------------------------------------------------

    @property
    def memory(self) -> Memory:
        return self._memory

    @property
    def powered(self) -> bool:
        return self._firmware is not None

    @property
    def rtc(self) -> int:
        return self._clock.now()

    @property
    def ticks(self) -> int:
        return self._ticks.ticks()

    @property
    def config(self) -> DeviceConfig:
        return self._config

    @property
    def firmware_name(self) -> str:
        """Which firmware runs: "python" (paygkit's model) or "c" (the C device library)."""
        return "c" if self._firmware_class is CFirmware else "python"

    @property
    def firmware(self) -> Firmware | CFirmware:
        """The running firmware; PoweredOffError while off."""
        if self._firmware is None:
            raise PoweredOffError()
        return self._firmware

    @property
    def last_feedback(self) -> Feedback | None:
        """The last signal given (LED pattern and text), key echoes left out."""
        return self._feedback.last

    def advance(self, seconds: int) -> None:
        """Time passes: the RTC and, while on, the tick source; then the firmware's housekeeping.

        While off, only the RTC moves (it runs on its backup battery).
        """
        self._clock.advance(seconds)
        if self._firmware is not None:
            self._ticks.advance(seconds)
            self._firmware.poll()
        self._save_sidecar()

    def set_rtc(self, t: int) -> None:
        """Set the RTC alone, as a tamperer (or a flat backup battery) would."""
        self._clock.set(t)
        if self._firmware is not None:
            self._firmware.poll()
        self._save_sidecar()

    def power_off(self) -> None:
        self._firmware = None
        self._save_sidecar()

    def power_on(self) -> None:
        """Start the firmware from what the memory holds (no-op when already on)."""
        if self._firmware is not None:
            return
        self._ticks.restart()
        self._firmware = self._firmware_class(
            clock=self._clock,
            ticks=self._ticks,
            memory=self._memory,
            feedback=self._feedback,
            config=self._config,
            backend=self._backend,
        )

    def reset(self) -> None:
        """A power cycle."""
        self.power_off()
        self.power_on()

    def wipe(self) -> None:
        """Erase the whole memory (blank flash) and restart: the device is unprovisioned."""
        was_on = self.powered
        self.power_off()
        self._memory.write(0, bytes([ERASED]) * self._memory.size)
        self.last_outcome = None
        self._feedback.last = None
        if was_on:
            self.power_on()

    def configure(self, config: DeviceConfig) -> None:
        """New firmware settings; a running device restarts with them (a test build flashed)."""
        if not isinstance(config, DeviceConfig):
            raise TypeError(f"config must be a DeviceConfig, not {type(config).__name__}")
        was_on = self.powered
        previous = self._config
        self.power_off()
        self._config = config
        try:
            if was_on:
                self.power_on()
        except BaseException:
            # Settings the firmware refuses are not kept; the device runs on the old ones.
            self._config = previous
            if was_on:
                self.power_on()
            raise
        self._save_sidecar()

    def drain_feedback(self) -> list[Feedback]:
        """The feedback given since the last call."""
        pending, self._feedback.pending = self._feedback.pending, []
        return pending

    # -- the Firmware API -------------------------------------------------------------

    @property
    def provisioning(self) -> Provisioning | None:
        return self.firmware.provisioning

    def provision(
        self,
        *,
        serial: str,
        starting_code: int,
        key: bytes | str,
        time_divider: int = 1,
        restricted_digits: bool = False,
        test_code: str | None = None,
        count: int = 1,
    ) -> Provisioning:
        return self.firmware.provision(
            serial=serial,
            starting_code=starting_code,
            key=key,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            test_code=test_code,
            count=count,
        )

    def enter_token(self, text: str) -> TokenOutcome:
        outcome = self.firmware.enter_token(text)
        self.last_outcome = outcome
        return outcome

    def press(self, key: str) -> TokenOutcome | Status | None:
        result = self.firmware.press(key)
        if isinstance(result, TokenOutcome):
            self.last_outcome = result
        return result

    def status(self) -> Status:
        return self.firmware.status()

    def poll(self) -> None:
        self.firmware.poll()

    # -- files ------------------------------------------------------------------------

    def close(self) -> None:
        """Save the clock and release the memory file (the device is switched off)."""
        self.power_off()
        close = getattr(self._memory, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> SimulatedDevice:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _save_sidecar(self) -> None:
        if self._sidecar is None:
            return
        data = {
            "format": _SIDECAR_FORMAT,
            "version": _SIDECAR_VERSION,
            "rtc": self._clock.now(),
            "config": config_to_json(self._config),
        }
        _write_atomically(self._sidecar, json.dumps(data, indent=2) + "\n")

    def __repr__(self) -> str:
        power = "on" if self.powered else "off"
        return (
            f"SimulatedDevice(memory={self._memory!r}, rtc={self.rtc}, power={power}, "
            f"firmware={self.firmware_name})"
        )


def _read_sidecar(path: Path) -> tuple[int, DeviceConfig]:
    fix = f"fix or delete {path} (the RTC then restarts from the device's stored time)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SimulatorFileError(f"cannot read the simulator clock file: {error}; {fix}") from None
    if not isinstance(data, dict) or data.get("format") != _SIDECAR_FORMAT:
        raise SimulatorFileError(f"{path} is not a paygkit simulator clock file; {fix}")
    if data.get("version") != _SIDECAR_VERSION:
        raise SimulatorFileError(
            f"{path} has version {data.get('version')!r}, this paygkit reads version "
            f"{_SIDECAR_VERSION}; {fix}"
        )
    rtc = data.get("rtc")
    if not isinstance(rtc, int) or isinstance(rtc, bool) or rtc < 0:
        raise SimulatorFileError(f"{path}: rtc must be a whole number of seconds; {fix}")
    try:
        config = config_from_json(data.get("config", {}))
    except ValueError as error:
        raise SimulatorFileError(f"{path}: {error}; {fix}") from None
    return rtc, config


def _write_atomically(path: Path, text: str) -> None:
    # A crash mid-write must leave the old file or the new one, never half of one.
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
