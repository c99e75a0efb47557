"""Devices for testing the certification suite: deliberately faulty firmware, a device that
is not a simulator (HELLO simulator=0), and a TCP server for any protocol session.

Each faulty firmware is the firmware model (`paygkit.device.firmware.Firmware`)
with one fault, the kind a firmware team could plausibly ship.  It runs in a
simulator (`FaultySimulator`) so that the certification drives it through the
protocol exactly like a good device.  The overrides use the model's private
methods: they inject faults into it, they are not a way to use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from unittest import mock

from paygkit.device import firmware
from paygkit.device.firmware import Firmware, OutcomeKind, Status, TokenOutcome
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.ports import Feedback
from paygkit.device.serve import serve_tcp
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.state import DeviceConfig, Provisioning, WaitingPeriod
from paygkit.token import (
    SECONDS_PER_DAY,
    ChainBackend,
    DecodeResult,
    DecodeWindows,
    DeviceParams,
    TokenType,
    default_backend,
    format_token,
    parse_token,
)
from paygkit.token.coding import (
    EXTENDED_MODULUS,
    STANDARD_MODULUS,
    put_base,
    updated_used_counts,
)
from paygkit.token.digits import typed_digits
from paygkit.token.model import COUNTER_SYNC_VALUE, DISABLE_PAYG_VALUE

WAIT = 20.0  # seconds before a server that does not start counts as a failure


class FaultySimulator(SimulatedDevice):
    """A simulator running `firmware` (a Firmware subclass) instead of the good firmware."""

    firmware_class: type[Firmware] = Firmware

    def __init__(self, firmware: type[Firmware], *, config: DeviceConfig | None = None) -> None:
        self.firmware_class = firmware
        super().__init__(RamMemory(), config=config)

    def power_on(self) -> None:
        if self._firmware is not None:
            return
        self._ticks.restart()
        self._firmware = self.firmware_class(
            clock=self._clock,
            ticks=self._ticks,
            memory=self._memory,
            feedback=self._feedback,
            config=self._config,
            backend=self._backend,
        )


# --- faulty firmware ---------------------------------------------------------------------------


class OlderAddAfterSet(Firmware):
    """Accepts an older Add Time token after a Set Time token: the Set Time marks only its
    own count as used, so older Add Time tokens pass as unordered entries."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        if result.token_type is TokenType.SET_TIME:
            before = set(self._state.used_counts)
            kept = tuple(c for c in result.used_counts if c == result.count or c in before)
            result = dataclasses.replace(result, used_counts=kept)
        return super()._apply(now, t, result)


class ForgetsWaitOnReboot(Firmware):
    """Forgets the waiting period when it starts: a power cycle ends the wait."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        now, t = self._read_time()
        if self._state.wait_left:
            self._commit(dataclasses.replace(self._state, wait_left=0), now)
        self._tick_block_until = t


class ReentryInvalid(Firmware):
    """Treats a token entered again as invalid (and counts it as an invalid try)."""

    def enter_token(self, text: str) -> TokenOutcome:
        outcome = super().enter_token(text)
        if outcome.kind is OutcomeKind.ALREADY_USED:
            now, t = self._read_time()
            return self._count_invalid(now, t, OutcomeKind.INVALID, "Invalid token")
        return outcome


class IgnoresDivider(Firmware):
    """Takes every unit for a whole day, whatever the time divider."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        outcome = super()._apply(now, t, result)
        provisioning = self._state.provisioning
        if result.units is not None and provisioning is not None:
            right = result.units * SECONDS_PER_DAY // provisioning.time_divider
            wrong = result.units * SECONDS_PER_DAY
            state = self._state
            self._commit(
                dataclasses.replace(state, active_until=state.active_until + wrong - right), now
            )
        return outcome


class AddsInsteadOfSets(Firmware):
    """A Set Time token adds to the time left instead of replacing it."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        left_before = max(0, self._state.active_until - now)
        outcome = super()._apply(now, t, result)
        if result.token_type is TokenType.SET_TIME and left_before:
            state = self._state
            self._commit(
                dataclasses.replace(state, active_until=state.active_until + left_before), now
            )
        return outcome


class CountsLateDays(Firmware):
    """Add Time on an expired device adds to the old end, not to now: late days are owed."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        end_before = self._state.active_until
        outcome = super()._apply(now, t, result)
        provisioning = self._state.provisioning
        late = result.token_type is TokenType.ADD_TIME and end_before < now
        if late and result.units is not None and provisioning is not None:
            duration = result.units * SECONDS_PER_DAY // provisioning.time_divider
            state = self._state
            self._commit(dataclasses.replace(state, active_until=end_before + duration), now)
        return outcome


class LocksOnInvalid(Firmware):
    """Cuts off the time left when an invalid token is entered, to punish guessing."""

    def _count_invalid(self, now: int, t: int, kind: OutcomeKind, message: str) -> TokenOutcome:
        outcome = super()._count_invalid(now, t, kind, message)
        state = self._state
        if state.active_until != now:
            self._commit(dataclasses.replace(state, active_until=now), now)
        return outcome


class KeepsInvalidCount(Firmware):
    """A genuine token does not end the run of invalid tries: they keep adding up."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        invalid = self._state.invalid_attempts
        outcome = super()._apply(now, t, result)
        self._commit(dataclasses.replace(self._state, invalid_attempts=invalid), now)
        return outcome


class DisableAsLongTime(Firmware):
    """Disable PAYG gives a hundred years of time instead of turning PAYG off."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        outcome = super()._apply(now, t, result)
        if result.token_type is TokenType.DISABLE_PAYG:
            century = now + 100 * 365 * SECONDS_PER_DAY
            self._commit(
                dataclasses.replace(self._state, payg_enabled=True, active_until=century), now
            )
        return outcome


def reference_rule_decode(
    device: DeviceParams,
    token: str,
    *,
    last_count: int,
    used_counts: Iterable[int] = (),
    accept_reset_token: bool = False,
    backend: ChainBackend | None = None,
) -> DecodeResult:
    """`decode` as the reference decoder (openpaygo 0.6.3) decides what to accept.

    A Counter Sync is taken up to 64 counts below the last count and sets the
    last count to its own, even lower; every other token above the last
    count is taken without looking at the used counts, whose window stays
    anchored at the highest count ever used.  The reference takes the reset
    token the same way, so `accept_reset_token` changes nothing.
    """
    used = tuple(used_counts)
    parsed = parse_token(token, restricted=device.restricted_digits)
    modulus = EXTENDED_MODULUS if parsed.extended else STANDARD_MODULUS
    windows = device.windows
    token_base = parsed.value % modulus
    units = (token_base - device.starting_code) % modulus
    sync = units == COUNTER_SYNC_VALUE and not parsed.extended
    search_to = last_count + (windows.counter_sync if sync else windows.forward)
    chain = backend or default_backend()
    find = chain.ext_find if parsed.extended else chain.std_find
    start = put_base(device.starting_code, token_base, modulus)
    matches = find(device.key, start, parsed.value // modulus, search_to)
    for count in matches:
        if units == COUNTER_SYNC_VALUE:
            token_type = TokenType.COUNTER_SYNC
            valid = count > last_count - windows.forward
        else:
            if units == DISABLE_PAYG_VALUE:
                token_type = TokenType.DISABLE_PAYG
            else:
                token_type = TokenType.SET_TIME if count % 2 else TokenType.ADD_TIME
            valid = count > last_count or (
                count % 2 == 0 and count > last_count - windows.unordered and count not in used
            )
        if valid:
            return DecodeResult(
                token_type=token_type,
                units=units if token_type.carries_value else None,
                count=count,
                last_count=count if sync else max(last_count, count),
                used_counts=updated_used_counts(used, count, token_type, windows.unordered),
                extended=parsed.extended,
                time_divider=device.time_divider,
            )
    return DecodeResult(
        token_type=TokenType.ALREADY_USED if matches else TokenType.INVALID,
        units=None,
        count=matches[0] if matches else None,
        last_count=last_count,
        used_counts=used,
        extended=parsed.extended,
        time_divider=device.time_divider,
    )


class ReferenceRule(Firmware):
    """Decides what to accept as the reference decoder does (`reference_rule_decode`): an old
    Counter Sync token moves the count back and every Add Time token above it works again."""

    def enter_token(self, text: str) -> TokenOutcome:
        # The firmware calls the module's decode; for this device it is the reference's.
        with mock.patch.object(firmware, "decode", reference_rule_decode):
            return super().enter_token(text)


class ForgetsUsedCountsAfterJump(Firmware):
    """Keeps its used counts as bits below its count and, when an Add Time token moves the
    count by more than 2, shifts them all out: only the new count is still marked used."""

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        jump = (result.count or 0) - self._state.last_count
        if result.token_type is TokenType.ADD_TIME and jump > 2:
            result = dataclasses.replace(result, used_counts=(result.count or 0,))
        return super()._apply(now, t, result)


class WaitsOnRtcWhileOff(Firmware):
    """Counts the time its RTC moved while it was off as waiting time: at power-on it takes
    the RTC's advance since the last save off the stored wait."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        now, t = self._read_time()
        off = max(0, now - self._state.latest_rtc_seen)
        self._tick_block_until = max(t, self._tick_block_until - off)


def reset_token_of(provisioning: Provisioning) -> str:
    code = provisioning.starting_code
    value = code - code % 1000 + (code + 999) % 1000
    return format_token(value, extended=False, restricted=provisioning.restricted_digits)


class AcceptsResetToken(Firmware):
    """Accepts the reset token (Counter Sync at count 0) at any count, not only below 64."""

    def enter_token(self, text: str) -> TokenOutcome:
        provisioning = self._state.provisioning
        if provisioning is not None and text.replace(" ", "") == reset_token_of(provisioning):
            now, t = self._read_time()
            reset = DecodeResult(
                token_type=TokenType.COUNTER_SYNC,
                units=None,
                count=0,
                last_count=0,
                used_counts=(0,),
                extended=False,
                time_divider=provisioning.time_divider,
            )
            return self._apply(now, t, reset)
        return super().enter_token(text)


class DropsLeadingZeros(Firmware):
    """Reads the typed token as a number and writes it back without its leading zeros."""

    def enter_token(self, text: str) -> TokenOutcome:
        try:
            digits = typed_digits(text)
        except Exception:
            return super().enter_token(text)
        return super().enter_token(str(int(digits)))


class TruncatesLongTokens(Firmware):
    """Keeps the first 9 digits of a longer entry (an extended 12-digit token is kept)."""

    def enter_token(self, text: str) -> TokenOutcome:
        digits = text.replace(" ", "").replace("-", "")
        if digits.isdigit() and 9 < len(digits) < 12:
            text = digits[:9]
        return super().enter_token(text)


def reset_token_config() -> DeviceConfig:
    """A GOOD firmware setting: take the reset token while the count is below 64 (a
    workshop build), certified with accepts_reset_token."""
    return DeviceConfig(accept_reset_token=True)


def small_window_config(**windows: int) -> DeviceConfig:
    """Firmware settings with other decode windows (a firmware that got them wrong)."""
    return DeviceConfig(windows=DecodeWindows(**windows))


def unforgiving_wait_config() -> DeviceConfig:
    """A waiting period from the first invalid token on (the reference forgives two)."""
    return DeviceConfig(waiting_period=WaitingPeriod(forgiven=0))


def no_waiting_period_config() -> DeviceConfig:
    """A waiting period that never starts, however many invalid tokens are entered."""
    return DeviceConfig(waiting_period=WaitingPeriod(forgiven=1_000_000))


def uncapped_wait_config() -> DeviceConfig:
    """A waiting period that keeps doubling past 512 minutes: customers locked out for days."""
    return DeviceConfig(waiting_period=WaitingPeriod(cap_seconds=2**31))


class RewritingSession(CommandInterpreter):
    """A device whose answers misreport one field: `pattern` is replaced by `replacement` in
    every answer line that starts with `tag` (a firmware that computes right, says wrong)."""

    def __init__(
        self,
        sim: SimulatedDevice,
        tag: str,
        pattern: str,
        replacement: str | Callable[[re.Match[str]], str],
    ) -> None:
        super().__init__(sim, newline="\r\n")
        self.tag = tag
        self.pattern = re.compile(pattern)
        self.replacement = replacement

    def handle_line(self, line: str) -> list[str]:
        return [
            self.pattern.sub(self.replacement, answer) if answer.startswith(self.tag) else answer
            for answer in super().handle_line(line)
        ]


# --- a device that is not a simulator ---------------------------------------------------------


class DeviceOnly:
    """A simulated device seen through the firmware API only: HELLO says simulator=0 and the
    simulator commands are refused (NOT_SUPPORTED), like real hardware.  The test keeps the
    simulator itself, to let time pass or cycle the power as an operator would."""

    def __init__(self, sim: SimulatedDevice) -> None:
        self.sim = sim

    @property
    def provisioning(self) -> Provisioning | None:
        return self.sim.provisioning

    def provision(self, **kwargs: object) -> Provisioning:
        return self.sim.provision(**kwargs)  # type: ignore[arg-type]

    def enter_token(self, text: str) -> TokenOutcome:
        return self.sim.enter_token(text)

    def press(self, key: str) -> TokenOutcome | Status | None:
        return self.sim.press(key)

    def status(self) -> Status:
        return self.sim.status()

    def drain_feedback(self) -> list[Feedback]:
        return self.sim.drain_feedback()


def device_session(sim: SimulatedDevice) -> CommandInterpreter:
    """A protocol session for `sim` that presents it as a real device."""
    return CommandInterpreter(DeviceOnly(sim), newline="\r\n")


class TickingSession(CommandInterpreter):
    """A real-device session whose clock runs: every command line lets `seconds` pass."""

    def __init__(self, sim: SimulatedDevice, seconds: int, on_tick: Callable[[], None]) -> None:
        super().__init__(DeviceOnly(sim), newline="\r\n")
        self.sim = sim
        self.seconds = seconds
        self.on_tick = on_tick

    def handle_line(self, line: str) -> list[str]:
        self.sim.advance(self.seconds)
        self.on_tick()
        return super().handle_line(line)


# --- serving -----------------------------------------------------------------------------------


@contextlib.contextmanager
def tcp_server(make_session: Callable[[], CommandInterpreter]) -> Iterator[str]:
    """Serve sessions on an ephemeral TCP port in a thread; yields the target tcp:HOST:PORT."""
    stop = threading.Event()
    ready = threading.Event()
    address: list[tuple[str, int]] = []

    def on_ready(bound: tuple[str, int]) -> None:
        address.append(bound)
        ready.set()

    thread = threading.Thread(
        target=serve_tcp,
        kwargs={"make_interpreter": make_session, "stop": stop, "ready": on_ready},
        daemon=True,
    )
    thread.start()
    assert ready.wait(WAIT), "the TCP server did not start"
    host, port = address[0]
    try:
        yield f"tcp:{host}:{port}"
    finally:
        stop.set()
        thread.join(WAIT)
