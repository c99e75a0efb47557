"""What a device keeps in non-volatile memory, and how it is configured.

`DeviceState` is everything that must survive a power cut; storage.py gives
it a byte layout.  A token's effect and its count live in the same state
value, so they are always written together.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from paygkit.token import DecodeWindows, DeviceParams

MAX_USED_COUNTS = 64
MAX_TEST_CODE_USES = 16


class TamperResponse(enum.Enum):
    """What the device does when its RTC is found tampered with."""

    LOCK = "lock"  # refuse activation (device inactive) until a Set Time token
    REPORT = "report"  # keep running, flag it in the status


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What the factory writes: identity and token parameters."""

    serial: str
    key: bytes = field(repr=False)
    starting_code: int
    time_divider: int = 1
    restricted_digits: bool = False
    test_code: str | None = None

    def token_params(self, windows: DecodeWindows) -> DeviceParams:
        return DeviceParams(
            key=self.key,
            starting_code=self.starting_code,
            time_divider=self.time_divider,
            restricted_digits=self.restricted_digits,
            windows=windows,
        )


class TamperFlag(enum.IntFlag):
    NONE = 0
    RTC_SLOW = 1  # the RTC advanced less than the tick source: stopped or slowed
    RTC_FAST = 2  # the RTC advanced more than the tick source: sped up
    RTC_BACKWARDS = 4  # the RTC is earlier than a time already seen


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The persistent state of a device.  Times are RTC seconds, except `wait_left`.

    `wait_left` is the waiting period after invalid tokens that still has to
    run, in seconds of the device's own powered-on time (its tick source), as
    last checkpointed: it may be a little longer than the real remaining wait,
    never shorter (see firmware.py).  The RTC plays no part in it, so neither
    time spent switched off nor a clock moved forward shortens it.
    """

    provisioning: Provisioning | None = None
    last_count: int = 1
    used_counts: tuple[int, ...] = ()
    payg_enabled: bool = True
    active_until: int = 0
    invalid_attempts: int = 0
    wait_left: int = 0
    tamper: TamperFlag = TamperFlag.NONE
    latest_rtc_seen: int = 0
    test_code_uses: tuple[int, ...] = ()
    test_active_until: int = 0


@dataclass(frozen=True, slots=True)
class WaitingPeriod:
    """The wait imposed after invalid tokens (reference firmware defaults).

    The first `forgiven` invalid tokens cost nothing; after the n-th invalid
    token (n > forgiven) entry is blocked for base x 2^(n - forgiven) seconds,
    capped.  With the defaults (the reference firmware's 2^(n-2) minutes) the
    3rd invalid token waits 2 minutes, the 4th 4, ... up to 512 minutes.
    """

    enabled: bool = True
    forgiven: int = 2
    base_seconds: int = 60
    cap_seconds: int = 512 * 60

    def seconds_after(self, invalid_attempts: int) -> int:
        """The wait after this many consecutive invalid tokens."""
        if not self.enabled or invalid_attempts <= self.forgiven:
            return 0
        exponent = invalid_attempts - self.forgiven
        if exponent >= 32:
            return self.cap_seconds
        return min(self.cap_seconds, self.base_seconds << exponent)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Firmware settings that are not per-device secrets."""

    windows: DecodeWindows = field(default_factory=DecodeWindows)
    waiting_period: WaitingPeriod = field(default_factory=WaitingPeriod)
    keypad_timeout_seconds: int = 30
    tamper_response: TamperResponse = TamperResponse.REPORT
    # Allowed disagreement between RTC and tick source: the spec asks for less
    # than 6 h drift a year (~0.07 %); anything past 2 % plus a minute is tamper.
    tamper_tolerance_ratio: float = 0.02
    tamper_tolerance_seconds: int = 60
    test_code_active_seconds: int = 30
    test_code_max_uses: int = 5
    test_code_period_seconds: int = 3600
    # The reset token (Counter Sync at count 0) puts a device back to count 0,
    # which re-opens every token it ever took: only a factory or workshop build
    # should take it (SPEC 4: it must never be given to customers).
    accept_reset_token: bool = False
