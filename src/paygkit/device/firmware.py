"""The PAYG firmware model: what a device does with a keypad, a token, its clocks and memory.

This module is meant to be read as the reference design of a device's
firmware.  It does no I/O: the RTC, the tick source, the non-volatile memory
and the feedback (LEDs, display) are ports passed in (`paygkit.device.ports`).

Power-loss safety
    Every change is computed as a complete new `DeviceState` (effect, count
    and used counts together), saved through `StateStore.save()` (which
    leaves either the old or the new state after a power cut at any byte),
    and only THEN is feedback given and the outcome returned.  So a token
    whose feedback was seen is never lost, and a cut before the save ends
    leaves the old state: entering the token again applies it once.

Decisions (where SPEC section 4 and the issue leave a choice)
    * Effects: a unit is 86400 / time_divider seconds; the whole duration is
      `units * 86400 // time_divider` (one rounding, down).  Add Time adds to
      max(now, active_until); Set Time sets now + duration, re-enables PAYG
      and clears the tamper flags (see below); Disable PAYG only turns PAYG
      off (active_until is kept); an Add Time while PAYG is off extends
      active_until but leaves PAYG off (certification G11).  Extended
      (12/20-digit) tokens carry Add/Set Time units like standard ones.
    * Invalid-try counter: only an APPLIED token resets it.  ALREADY_USED
      does not, because old tokens are printed on receipts: an attacker
      could otherwise interleave one to dodge the waiting period.  As a
      result ALREADY_USED never changes the state and never writes.
    * MALFORMED entries (wrong length, digits outside 1-4 on a restricted
      device) count as invalid tries, like the reference firmware, which
      only ever sees digits; otherwise a brute force could probe for free.
      A non-str argument to enter_token() is a programming error
      (TypeError), not an attempt.
    * Waiting period: while it runs, the entry is refused (BLOCKED, ENTRY_LOCKED)
      before anything is parsed, compared with the test code or decoded.
      It runs only on the device's own powered-on time, the tick source
      (SPEC 4).  The state keeps `wait_left`, the powered-on seconds still to
      wait; at power-on the device imposes it again on the restarted tick
      source (at most the wait for the stored invalid_attempts, in case the
      settings changed since).  Time switched off does not count and the
      RTC plays no part: moving it forward, while off or on, does not
      shorten the wait, and moving it back does not lengthen it.  What the
      customer sees: docs/device-protocol.md, section 4.5.
    * Wait checkpoints: poll() and each entry (not status(), which only
      reads) write the real remaining wait to `wait_left` once the stored
      value exceeds it by at least the checkpoint interval,
      max(60 s, the imposed wait / 16 rounded up), the imposed wait being
      the one for the stored invalid_attempts; and they write 0 when the
      wait ends.  The stored value is never below the real remaining wait,
      so a power cut can only LENGTHEN the wait, by at most one interval
      (plus the time between two poll() calls), never shorten it.
      Wear: every checkpoint but the final 0 lowers the stored value by at
      least one interval, at least 1/16 of the wait, so a wait costs at
      most 15 checkpoints and the final 0: 16 writes on top of the invalid
      entry that started it, whatever the power cycles (nothing is written
      at power-on).  The maximal 512-minute wait writes every 32 minutes.
      The price: the wait only moves while the device stays on for one
      interval at a time (1 minute for waits up to 16 minutes, 32 minutes
      for the longest); a device switched off more often keeps its wait.
    * Keypad: key-by-key entry is `paygkit.device.keypad`; a partial token
      that timed out is dropped at the next press or poll().
    * Feedback: the core gives a `FeedbackKind` and a display text; the LED
      pattern of each kind is the product's (`paygkit.device.feedback`).
    * Test code: compared with the typed digits after the waiting-period
      check and before decoding; it sets test_active_until and records the
      use, without touching the count or the invalid-try counter.  Beyond
      test_code_max_uses within test_code_period_seconds it is refused as
      BLOCKED ("Test code limit") with the time until a use expires; that
      refusal is not an invalid try and writes nothing.  Uses stamped later
      than the RTC (a clock set back) still count until they expire.
    * Tamper: checked at power-on, in poll() and before each token entry
      (status() only reads).  RTC_SLOW / RTC_FAST compare the RTC and the
      tick source since power-on (or the last detection) with a tolerance
      of tamper_tolerance_ratio x elapsed ticks + tamper_tolerance_seconds;
      RTC_BACKWARDS is an RTC more than tamper_tolerance_seconds earlier
      than the latest time seen.  The flags are saved and signalled once
      (TAMPER).  With LOCK the device is inactive (seconds_left 0,
      Add Time still recorded) until a Set Time token; with REPORT it keeps
      running.  A Set Time token clears the flags in both modes and takes
      the current RTC as the new reference time.  A test code still
      activates a locked device for its 30 s.
    * Reset token (Counter Sync at count 0): refused (ALREADY_USED) unless
      DeviceConfig.accept_reset_token, which only a factory or workshop
      build should set (SPEC 3.1 and 4).
    * latest_rtc_seen is written with every other save, and on its own only
      from poll() once the RTC has moved an hour past it (flash wear).
    * Unprovisioned: a token gives NOT_PROVISIONED with entry-locked
      feedback and is not an invalid try; status is inactive.
    * '#' status feedback says whether the device is active (the product
      shows it: green or red in the reference).
    * seconds_left: 0 when inactive (unprovisioned or tamper-locked), None
      when PAYG is disabled, else the PAYG time left (a running test code
      does not add to it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from paygkit.device.feedback import reference_feedback
from paygkit.device.keypad import (
    MAX_TYPED_DIGITS,
    Keypad,
    StatusAsked,
    TokenTyped,
    check_key,
)
from paygkit.device.ports import (
    Clock,
    Feedback,
    FeedbackKind,
    FeedbackSink,
    Memory,
    TickSource,
)
from paygkit.device.serial_number import SerialNumberError, check_serial_number
from paygkit.device.state import (
    MAX_TEST_CODE_USES,
    MAX_USED_COUNTS,
    DeviceConfig,
    DeviceState,
    Provisioning,
    TamperFlag,
    TamperResponse,
)
from paygkit.device.storage import StateStore
from paygkit.token import (
    MAX_COUNT,
    SECONDS_PER_DAY,
    ChainBackend,
    DecodeResult,
    DecodeWindows,
    DeviceParams,
    ParameterError,
    TokenFormatError,
    TokenType,
    days_text,
    decode,
    duration_text,
    parse_key,
    typed_digits,
)

# A stored RTC high-water mark only needs to be roughly current: once an hour
# is enough to catch a clock set back by hours, at 24 writes a day at most.
LATEST_RTC_WRITE_INTERVAL = 3600
# Beyond this the wait is at its cap anyway; the bound keeps the stored field small.
MAX_INVALID_ATTEMPTS = 0xFFFF
# The stored wait is brought down in steps of at least this, and of at least
# 1/WAIT_CHECKPOINTS of the wait: at most WAIT_CHECKPOINTS writes per wait.
MIN_WAIT_CHECKPOINT_SECONDS = 60
WAIT_CHECKPOINTS = 16

_TAMPER_TEXT = {
    TamperFlag.RTC_SLOW: "RTC slow or stopped",
    TamperFlag.RTC_FAST: "RTC fast",
    TamperFlag.RTC_BACKWARDS: "RTC set back",
}


class ProvisioningError(ValueError):
    """Factory data that cannot be written to the device (says which value and why)."""


class OutcomeKind(enum.Enum):
    APPLIED = "applied"
    ALREADY_USED = "already_used"
    INVALID = "invalid"
    BLOCKED = "blocked"
    TEST_CODE = "test_code"
    MALFORMED = "malformed"
    NOT_PROVISIONED = "not_provisioned"


@dataclass(frozen=True, slots=True)
class TokenOutcome:
    """What became of one token entry."""

    kind: OutcomeKind
    token_type: TokenType | None = None  # APPLIED: ADD_TIME / SET_TIME / DISABLE_PAYG / ...
    units: int | None = None  # APPLIED Add/Set Time: value units
    count: int | None = None  # matched count (APPLIED and ALREADY_USED)
    wait_seconds: int = 0  # BLOCKED: remaining wait; INVALID/MALFORMED: the wait it started
    message: str = ""  # short display text


@dataclass(frozen=True, slots=True)
class Status:
    """What the device shows on '#', and what a host reads over the protocol."""

    serial: str | None
    provisioned: bool
    now: int
    active: bool
    payg_enabled: bool
    seconds_left: int | None  # None when PAYG is disabled; 0 when inactive
    active_until: int
    count: int
    used_counts: tuple[int, ...]
    invalid_attempts: int
    blocked_seconds: int
    tamper: TamperFlag
    test_active: bool
    typing: str  # digits typed so far for the token being entered
    restricted_digits: bool
    time_divider: int


def display_time(seconds: int) -> str:
    """A time as the device's small display shows it: '1 day 12 h', '45 s', '0 days'.

    The two largest units; from a minute on rounded up to whole minutes, so a
    wait is never shown shorter than it is.
    """
    if seconds <= 0:
        return days_text(0)
    return duration_text(seconds, parts=2, round_up_to=60 if seconds >= 60 else 1)


# -- display texts (paygkit.device.cfirmware gives the C library's feedback the same) --------

NOT_PROVISIONED_TEXT = "Not provisioned"
INVALID_TEXT = "Invalid token"
ALREADY_USED_TEXT = "Already used"


def malformed_text(error: TokenFormatError) -> str:
    return f"Not a token: {error}"


def refused_text(reason: str, wait: int) -> str:
    """An invalid try's text: why it was refused, and the wait it started (if any)."""
    return f"{reason}, wait {display_time(wait)}" if wait else reason


def wait_text(wait: int) -> str:
    return f"Wait {display_time(wait)}"


def test_code_limit_text(wait: int) -> str:
    return refused_text("Test code limit", wait)


def test_code_text(active_seconds: int) -> str:
    return f"Test {display_time(active_seconds)}"


def applied_text(token_type: TokenType, duration: int) -> str:
    """An applied token's text; `duration` is the activation time of an Add/Set Time."""
    if token_type is TokenType.ADD_TIME:
        return f"+{display_time(duration)}"
    if token_type is TokenType.SET_TIME:
        return f"Set {display_time(duration)}"
    if token_type is TokenType.DISABLE_PAYG:
        return "PAYG disabled"
    return "Counter synced"


def status_text(
    *, active: bool, seconds_left: int | None, provisioned: bool, tamper_locked: bool
) -> str:
    """What '#' shows."""
    if active:
        if seconds_left is None:
            return "Active, unlimited"
        if seconds_left > 0:
            return f"Active, {display_time(seconds_left)} left"
        return "Test mode"
    if not provisioned:
        return NOT_PROVISIONED_TEXT
    if tamper_locked:
        return "Locked: clock tamper"
    return "Inactive"


def tamper_text(new_flags: TamperFlag, *, locked: bool) -> str:
    """The signal of newly found tamper flags."""
    names = ", ".join(text for flag, text in _TAMPER_TEXT.items() if flag & new_flags)
    if locked:
        return f"Clock tamper ({names}): locked until Set Time"
    return f"Clock tamper ({names})"


def wait_checkpoint_interval(imposed_wait: int) -> int:
    """How far the stored wait may run ahead of the real one before it is written again.

    max(60 s, imposed_wait / 16 rounded up): 16 times the interval covers the
    whole wait, so a wait costs at most 16 writes (15 checkpoints and the 0).
    """
    return max(MIN_WAIT_CHECKPOINT_SECONDS, -(-imposed_wait // WAIT_CHECKPOINTS))


def check_config(config: DeviceConfig) -> None:
    """Raise TypeError or ValueError for settings a firmware cannot run on."""
    if not isinstance(config, DeviceConfig):
        raise TypeError(f"config must be a DeviceConfig, not {type(config).__name__}")
    if config.windows.unordered + 1 > MAX_USED_COUNTS:
        raise ValueError(
            f"the unordered window ({config.windows.unordered}) keeps more used counts than "
            f"the stored state holds ({MAX_USED_COUNTS}); use at most {MAX_USED_COUNTS - 1}"
        )
    if not 1 <= config.test_code_max_uses <= MAX_TEST_CODE_USES:
        raise ValueError(
            f"test_code_max_uses must be between 1 and {MAX_TEST_CODE_USES} (the uses the "
            f"stored state remembers), got {config.test_code_max_uses}"
        )
    for name in ("keypad_timeout_seconds", "test_code_period_seconds"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1 second")
    if config.test_code_active_seconds < 0:
        raise ValueError("test_code_active_seconds must not be negative")
    if config.tamper_tolerance_ratio < 0 or config.tamper_tolerance_seconds < 0:
        raise ValueError("the tamper tolerances must not be negative")
    if not isinstance(config.accept_reset_token, bool):
        raise ValueError(
            f"accept_reset_token must be True or False, not {config.accept_reset_token!r}"
        )


def _check_serial(serial: object) -> str:
    # Storage holds any printable ASCII (docs/storage-layout.md), but a device is
    # only given a serial that the factory, host and server all accept.
    try:
        return check_serial_number(serial)
    except SerialNumberError as error:
        raise ProvisioningError(str(error)) from None


def _check_test_code(test_code: object, restricted: bool) -> str | None:
    if test_code is None:
        return None
    if not isinstance(test_code, str):
        raise ProvisioningError(f"the test code must be text, not {type(test_code).__name__}")
    allowed = "1234" if restricted else "0123456789"
    if not test_code or not all(c in allowed for c in test_code):
        keys = "keys 1-4 (restricted keypad)" if restricted else "digits 0-9"
        raise ProvisioningError(f"the test code must be typed with {keys} only")
    if len(test_code) > MAX_TYPED_DIGITS:
        raise ProvisioningError(
            f"the test code has {len(test_code)} digits; the keypad takes at most "
            f"{MAX_TYPED_DIGITS}"
        )
    return test_code


def check_provisioning(
    *,
    serial: str,
    starting_code: int,
    key: bytes | str,
    time_divider: int,
    restricted_digits: bool,
    test_code: str | None,
    count: int,
    windows: DecodeWindows,
) -> Provisioning:
    """The factory data `Firmware.provision` writes; ProvisioningError says what is wrong."""
    serial = _check_serial(serial)
    try:
        raw_key = parse_key(key)
        DeviceParams(
            key=raw_key,
            starting_code=starting_code,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            windows=windows,
        )
    except ParameterError as error:
        raise ProvisioningError(str(error)) from None
    code = _check_test_code(test_code, restricted_digits)
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise ProvisioningError(
            f"the count must be a whole number from 0 to {MAX_COUNT}, got {count!r}; "
            "a new device starts at 1"
        )
    return Provisioning(
        serial=serial,
        key=raw_key,
        starting_code=starting_code,
        time_divider=time_divider,
        restricted_digits=restricted_digits,
        test_code=code,
    )


class Firmware:
    """The firmware of one PAYG device.  Constructing it is powering it on: it loads the state.

    Power off/on is dropping the object and building a new one over the same
    memory and RTC, with a restarted tick source.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        ticks: TickSource,
        memory: Memory,
        feedback: FeedbackSink | None = None,
        config: DeviceConfig | None = None,
        backend: ChainBackend | None = None,
    ) -> None:
        self._config = config if config is not None else DeviceConfig()
        check_config(self._config)
        self._clock = clock
        self._ticks = ticks
        self._feedback = feedback
        self._backend = backend
        self._store = StateStore(memory)
        self._state = self._store.load()
        now, t = self._read_time()
        self._start_session(now, t)
        # The stored wait runs again from here, on this power-on's ticks: the
        # time spent off, and whatever the RTC did meanwhile, do not count.
        self._tick_block_until = t + min(self._wait_cap(self._state), self._state.wait_left)
        self._keypad = Keypad(self._config.keypad_timeout_seconds)
        if self._state.provisioning is not None:
            self._check_tamper(now, t)

    # -- the factory ---------------------------------------------------------------

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
        """Factory setup: write identity and token parameters over a fresh state.

        Everything is checked before anything is written, so refused data
        leaves the stored state as it was.
        """
        provisioning = check_provisioning(
            serial=serial,
            starting_code=starting_code,
            key=key,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            test_code=test_code,
            count=count,
            windows=self._config.windows,
        )
        now, t = self._read_time()
        fresh = DeviceState(provisioning=provisioning, last_count=count, latest_rtc_seen=now)
        self._store.save(fresh)
        self._state = fresh
        self._start_session(now, t)
        self._tick_block_until = t
        self._keypad.clear()
        return provisioning

    @property
    def provisioning(self) -> Provisioning | None:
        return self._state.provisioning

    @property
    def config(self) -> DeviceConfig:
        return self._config

    # -- token entry ---------------------------------------------------------------

    def enter_token(self, text: str) -> TokenOutcome:
        """Enter a whole token (digits; single spaces or dashes between groups are fine)."""
        if not isinstance(text, str):
            raise TypeError(f"a token is entered as text, not {type(text).__name__}")
        now, t = self._read_time()
        provisioning = self._state.provisioning
        if provisioning is None:
            return self._finish(
                TokenOutcome(OutcomeKind.NOT_PROVISIONED, message=NOT_PROVISIONED_TEXT),
                FeedbackKind.ENTRY_LOCKED,
            )
        self._check_tamper(now, t)
        self._checkpoint_wait(now, t)
        wait = self._remaining_wait(t)
        if wait > 0:
            return self._finish(
                TokenOutcome(OutcomeKind.BLOCKED, wait_seconds=wait, message=wait_text(wait)),
                FeedbackKind.ENTRY_LOCKED,
            )
        try:
            digits = typed_digits(text)
        except TokenFormatError as error:
            return self._count_invalid(now, t, OutcomeKind.MALFORMED, malformed_text(error))
        if provisioning.test_code is not None and digits == provisioning.test_code:
            return self._use_test_code(now)
        try:
            result = decode(
                provisioning.token_params(self._config.windows),
                digits,
                last_count=self._state.last_count,
                used_counts=self._state.used_counts,
                accept_reset_token=self._config.accept_reset_token,
                backend=self._backend,
            )
        except TokenFormatError as error:  # a length this device does not take
            return self._count_invalid(now, t, OutcomeKind.MALFORMED, malformed_text(error))
        if result.token_type is TokenType.INVALID:
            return self._count_invalid(now, t, OutcomeKind.INVALID, INVALID_TEXT)
        if result.token_type is TokenType.ALREADY_USED:
            return self._finish(
                TokenOutcome(
                    OutcomeKind.ALREADY_USED, count=result.count, message=ALREADY_USED_TEXT
                ),
                FeedbackKind.ALREADY_USED,
            )
        return self._apply(now, t, result)

    def _apply(self, now: int, t: int, result: DecodeResult) -> TokenOutcome:
        """The effect of an accepted token, saved together with its count."""
        state = self._state
        assert state.provisioning is not None
        token_type, units = result.token_type, result.units
        new = replace(
            state,
            last_count=result.last_count,
            used_counts=result.used_counts,
            invalid_attempts=0,
            wait_left=0,
        )
        duration = 0
        if units is not None:
            duration = units * SECONDS_PER_DAY // state.provisioning.time_divider
        kind = FeedbackKind.TIME_CHANGED
        if token_type is TokenType.ADD_TIME:
            new = replace(new, active_until=max(now, state.active_until) + duration)
        elif token_type is TokenType.SET_TIME:
            # Whoever issued a Set Time has seen the device's situation; its
            # RTC from now on is the reference again.
            new = replace(
                new,
                active_until=now + duration,
                payg_enabled=True,
                tamper=TamperFlag.NONE,
                latest_rtc_seen=now,
            )
        elif token_type is TokenType.DISABLE_PAYG:
            new = replace(new, payg_enabled=False)
            kind = FeedbackKind.PAYG_DISABLED
        else:
            kind = FeedbackKind.COUNTER_SYNCED
        self._commit(new, now)
        self._tick_block_until = t
        if token_type is TokenType.SET_TIME:
            self._start_session(now, t)
        return self._finish(
            TokenOutcome(
                OutcomeKind.APPLIED,
                token_type=token_type,
                units=units,
                count=result.count,
                message=applied_text(token_type, duration),
            ),
            kind,
        )

    def _count_invalid(self, now: int, t: int, kind: OutcomeKind, message: str) -> TokenOutcome:
        state = self._state
        attempts = min(state.invalid_attempts + 1, MAX_INVALID_ATTEMPTS)
        wait = self._config.waiting_period.seconds_after(attempts)
        self._commit(replace(state, invalid_attempts=attempts, wait_left=wait), now)
        self._tick_block_until = t + wait
        return self._finish(
            TokenOutcome(kind, wait_seconds=wait, message=refused_text(message, wait)),
            FeedbackKind.INVALID,
        )

    def _use_test_code(self, now: int) -> TokenOutcome:
        state = self._state
        config = self._config
        recent = tuple(u for u in state.test_code_uses if u > now - config.test_code_period_seconds)
        if len(recent) >= config.test_code_max_uses:
            wait = max(1, min(recent) + config.test_code_period_seconds - now)
            return self._finish(
                TokenOutcome(
                    OutcomeKind.BLOCKED, wait_seconds=wait, message=test_code_limit_text(wait)
                ),
                FeedbackKind.ENTRY_LOCKED,
            )
        new = replace(
            state,
            test_code_uses=(*recent, now)[-MAX_TEST_CODE_USES:],
            test_active_until=now + config.test_code_active_seconds,
        )
        self._commit(new, now)
        return self._finish(
            TokenOutcome(
                OutcomeKind.TEST_CODE,
                message=test_code_text(config.test_code_active_seconds),
            ),
            FeedbackKind.TEST_CODE,
        )

    # -- keypad --------------------------------------------------------------------

    def press(self, key: str) -> TokenOutcome | Status | None:
        """One key of the keypad: '*', '#' or a digit.

        Returns the outcome when '#' ends a token, the status when '#' is
        pressed with nothing typed, and None for every other key.
        """
        check_key(key)
        _, t = self._read_time()
        self._time_out_entry(t)
        provisioning = self._state.provisioning
        restricted = provisioning is not None and provisioning.restricted_digits
        pressed = self._keypad.press(key, t, restricted=restricted)
        if isinstance(pressed, TokenTyped):
            return self.enter_token(pressed.digits)
        if isinstance(pressed, StatusAsked):
            return self._show_status()
        self._signal(FeedbackKind.KEY_PRESS, pressed.text)
        return None

    def _time_out_entry(self, t: int) -> None:
        shown = self._keypad.time_out(t)
        if shown is not None:
            self._signal(FeedbackKind.KEY_PRESS, shown)

    def _show_status(self) -> Status:
        status = self.status()
        text = status_text(
            active=status.active,
            seconds_left=status.seconds_left,
            provisioned=status.provisioned,
            tamper_locked=self._tamper_locked(self._state),
        )
        self._emit(reference_feedback(FeedbackKind.STATUS, text, active=status.active))
        return status

    # -- status and housekeeping ---------------------------------------------------

    def status(self) -> Status:
        """The device's status now.  Only reads: no write, no feedback, no tamper check."""
        now, t = self._read_time()
        state = self._state
        provisioning = state.provisioning
        locked = self._tamper_locked(state)
        test_active = now < state.test_active_until
        payg_active = (
            provisioning is not None
            and not locked
            and (not state.payg_enabled or now < state.active_until)
        )
        seconds_left: int | None
        if provisioning is None or locked:
            seconds_left = 0
        elif not state.payg_enabled:
            seconds_left = None
        else:
            seconds_left = max(0, state.active_until - now)
        return Status(
            serial=provisioning.serial if provisioning else None,
            provisioned=provisioning is not None,
            now=now,
            active=test_active or payg_active,
            payg_enabled=state.payg_enabled,
            seconds_left=seconds_left,
            active_until=state.active_until,
            count=state.last_count,
            used_counts=state.used_counts,
            invalid_attempts=state.invalid_attempts,
            blocked_seconds=self._remaining_wait(t),
            tamper=state.tamper,
            test_active=test_active,
            typing=self._keypad.typing,
            restricted_digits=provisioning.restricted_digits if provisioning else False,
            time_divider=provisioning.time_divider if provisioning else 1,
        )

    def poll(self) -> None:
        """Periodic housekeeping (the firmware's main loop): keypad timeout, tamper check,
        waiting-period checkpoint.

        A test activation ends by itself (it is a time in the state); nothing
        is written for it.
        """
        now, t = self._read_time()
        self._time_out_entry(t)
        if self._state.provisioning is None:
            return
        self._check_tamper(now, t)
        self._checkpoint_wait(now, t)
        if now - self._state.latest_rtc_seen >= LATEST_RTC_WRITE_INTERVAL:
            self._commit(replace(self._state, latest_rtc_seen=now), now)

    # -- internals -----------------------------------------------------------------

    def _read_time(self) -> tuple[int, int]:
        return self._clock.now(), self._ticks.ticks()

    def _start_session(self, now: int, t: int) -> None:
        """Take the current RTC and ticks as the reference for tamper checks."""
        self._rtc0 = now
        self._tick0 = t
        self._latest_seen = now

    def _tamper_locked(self, state: DeviceState) -> bool:
        return (
            state.tamper is not TamperFlag.NONE
            and self._config.tamper_response is TamperResponse.LOCK
        )

    def _check_tamper(self, now: int, t: int) -> None:
        config = self._config
        state = self._state
        found = TamperFlag.NONE
        rtc_elapsed = now - self._rtc0
        tick_elapsed = t - self._tick0
        tolerance = (
            config.tamper_tolerance_ratio * abs(tick_elapsed) + config.tamper_tolerance_seconds
        )
        if rtc_elapsed < tick_elapsed - tolerance:
            found |= TamperFlag.RTC_SLOW
        elif rtc_elapsed > tick_elapsed + tolerance:
            found |= TamperFlag.RTC_FAST
        latest = max(state.latest_rtc_seen, self._latest_seen)
        if now + config.tamper_tolerance_seconds < latest:
            found |= TamperFlag.RTC_BACKWARDS
        self._latest_seen = max(self._latest_seen, now)
        if found:
            # Measure afresh from here: the flags are sticky until a Set Time.
            self._rtc0, self._tick0 = now, t
        new_flags = found & ~state.tamper
        if not new_flags:
            return
        self._commit(replace(state, tamper=state.tamper | found), now)
        locked = config.tamper_response is TamperResponse.LOCK
        self._signal(FeedbackKind.TAMPER, tamper_text(new_flags, locked=locked))

    def _wait_cap(self, state: DeviceState) -> int:
        return self._config.waiting_period.seconds_after(state.invalid_attempts)

    def _remaining_wait(self, t: int) -> int:
        """The wait still to run, in seconds of powered-on time."""
        return min(self._wait_cap(self._state), max(0, self._tick_block_until - t))

    def _checkpoint_wait(self, now: int, t: int) -> None:
        """Bring the stored wait down to the real one: when it ends, or a whole interval on.

        Seldom enough for the memory (module docstring), and never below the
        real wait, so a power cut between two checkpoints only lengthens it.
        """
        stored = self._state.wait_left
        left = self._remaining_wait(t)
        if stored == left:
            return
        interval = wait_checkpoint_interval(self._wait_cap(self._state))
        if left == 0 or stored - left >= interval:
            self._commit(replace(self._state, wait_left=left), now)

    def _commit(self, new: DeviceState, now: int) -> None:
        """Save a changed state; only after this returns may its effect be signalled."""
        if new == self._state:
            return
        new = replace(new, latest_rtc_seen=max(new.latest_rtc_seen, now))
        self._store.save(new)
        self._state = new

    def _finish(self, outcome: TokenOutcome, kind: FeedbackKind) -> TokenOutcome:
        self._signal(kind, outcome.message)
        return outcome

    def _signal(self, kind: FeedbackKind, text: str) -> None:
        self._emit(reference_feedback(kind, text))

    def _emit(self, feedback: Feedback) -> None:
        if self._feedback is not None:
            self._feedback.emit(feedback)
