"""The reference certification procedure (SPEC section 6) on the firmware model, through
its Python API: waiting period off, count starting at 1, tokens made by paygkit.token."""

from __future__ import annotations

import pytest

from paygkit.device.cfirmware import CFirmware, firmware_class
from paygkit.device.clocks import ManualClock, ManualTicks, RecordingFeedback
from paygkit.device.firmware import Firmware, OutcomeKind, TokenOutcome
from paygkit.device.memory import RamMemory
from paygkit.device.state import DeviceConfig, WaitingPeriod
from paygkit.token import DeviceParams, GeneratedToken, TokenType, decode, generate

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
# The device of the "Exactly once" issue, where the reference rule gives unlimited days.
ISSUE_KEY_HEX = "a29ab82edc5fbbc41ec9530f6dac86b1"
ISSUE_STARTING_CODE = 123456789
T0 = 1_700_000_000
DAY = 86_400
HOUR = 3600

CERTIFICATION = DeviceConfig(waiting_period=WaitingPeriod(enabled=False))


class Bench:
    """A device under test and the server that issues its tokens."""

    def __init__(
        self,
        *,
        time_divider: int = 1,
        restricted_digits: bool = False,
        config: DeviceConfig = CERTIFICATION,
        key_hex: str = KEY_HEX,
        starting_code: int = STARTING_CODE,
    ) -> None:
        self.clock = ManualClock(T0)
        self.ticks = ManualTicks()
        self.feedback = RecordingFeedback()
        self.memory = RamMemory()
        self.config = config
        self.device = self._power_on()
        self.device.provision(
            serial="CERT00000001",
            starting_code=starting_code,
            key=bytes.fromhex(key_hex),
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            count=1,
        )
        self.params = DeviceParams.create(
            key_hex,
            starting_code,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
        )
        self.count = 1  # the server's count

    def make(
        self, token_type: TokenType = TokenType.ADD_TIME, *, days: int | None = None
    ) -> GeneratedToken:
        made = generate(self.params, count=self.count, token_type=token_type, days=days)
        self.count = made.count
        return made

    def enter(self, token: GeneratedToken | str) -> TokenOutcome:
        return self.device.enter_token(token if isinstance(token, str) else token.digits)

    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.ticks.advance(seconds)

    def _power_on(self) -> Firmware | CFirmware:
        return firmware_class()(
            clock=self.clock,
            ticks=self.ticks,
            memory=self.memory,
            feedback=self.feedback,
            config=self.config,
        )

    def power_cycle(self, *, off_seconds: int = 0, rtc_forward: int = 0) -> None:
        """Off, `off_seconds` pass (the RTC runs on its battery), the RTC is moved, on again."""
        self.clock.advance(off_seconds + rtc_forward)
        self.ticks.restart()
        self.device = self._power_on()

    @property
    def days_left(self) -> float | None:
        left = self.device.status().seconds_left
        return None if left is None else left / DAY

    @property
    def active(self) -> bool:
        return self.device.status().active


def invalid_token(bench: Bench) -> str:
    for candidate in ("000000000", "111111111", "123456789"):
        if decode(bench.params, candidate, last_count=500).token_type is TokenType.INVALID:
            return candidate
    raise AssertionError("no invalid token")  # pragma: no cover


def test_g1_to_g12_in_order() -> None:
    bench = Bench()

    # G1: an invalid token is refused.
    assert bench.enter(invalid_token(bench)).kind is OutcomeKind.INVALID
    assert not bench.active

    # G2: Set Time 1 day.
    g2 = bench.make(TokenType.SET_TIME, days=1)
    assert bench.enter(g2).kind is OutcomeKind.APPLIED
    assert bench.days_left == 1

    # G3: Add Time 1 day -> 2 days.
    g3 = bench.make(days=1)
    assert bench.enter(g3).kind is OutcomeKind.APPLIED
    assert bench.days_left == 2

    # G4A: the same Add Time again -> already used, still 2 days.
    assert bench.enter(g3).kind is OutcomeKind.ALREADY_USED
    assert bench.days_left == 2
    # G4B: the older Set Time -> already used.
    assert bench.enter(g2).kind is OutcomeKind.ALREADY_USED
    assert bench.days_left == 2

    # G5: Set Time 30 days.
    assert bench.enter(bench.make(TokenType.SET_TIME, days=30)).kind is OutcomeKind.APPLIED
    assert bench.days_left == 30

    # G6: Set Time 0 -> inactive at once.
    assert bench.enter(bench.make(TokenType.SET_TIME, days=0)).kind is OutcomeKind.APPLIED
    assert not bench.active
    assert bench.days_left == 0

    # G7: three Add Time 995 -> 995, 1990, 2985 days.
    for total in (995, 1990, 2985):
        outcome = bench.enter(bench.make(days=995))
        assert (outcome.kind, outcome.units) == (OutcomeKind.APPLIED, 995)
        assert bench.days_left == total

    # G8: 21 Set Time tokens of 1..21 days, each 30 counts after the previous.
    previous = None
    for days in range(1, 22):
        bench.count += 29
        made = bench.make(TokenType.SET_TIME, days=days)
        assert previous is None or made.count == previous + 30
        outcome = bench.enter(made)
        assert (outcome.kind, outcome.count) == (OutcomeKind.APPLIED, made.count)
        assert bench.days_left == days
        previous = made.count

    # G9: Disable PAYG -> unlimited.
    assert bench.enter(bench.make(TokenType.DISABLE_PAYG)).kind is OutcomeKind.APPLIED
    bench.wait(3 * 365 * DAY)
    assert bench.active
    assert bench.days_left is None

    # G10: Set Time 0 -> locked again.
    assert bench.enter(bench.make(TokenType.SET_TIME, days=0)).kind is OutcomeKind.APPLIED
    assert not bench.active
    assert bench.device.status().payg_enabled

    # G11 (optional): Disable PAYG, then Add Time 0 -> stays unlocked.
    bench.enter(bench.make(TokenType.DISABLE_PAYG))
    assert bench.enter(bench.make(days=0)).kind is OutcomeKind.APPLIED
    assert bench.active
    assert bench.days_left is None

    # G12: Set Time 0, 48 h later Add Time 1 -> 1 day (the late days are not owed).
    bench.enter(bench.make(TokenType.SET_TIME, days=0))
    bench.wait(48 * HOUR)
    assert bench.enter(bench.make(days=1)).kind is OutcomeKind.APPLIED
    assert bench.days_left == 1


def test_u1_add_time_tokens_entered_out_of_order_all_count() -> None:
    bench = Bench()
    first, second, third = bench.make(days=1), bench.make(days=2), bench.make(days=4)
    for token in (third, first, second):
        assert bench.enter(token).kind is OutcomeKind.APPLIED
    assert bench.days_left == 7


def test_u2_set_time_entered_first_voids_older_add_time_only() -> None:
    bench = Bench()
    older_add = bench.make(days=1)
    set_time = bench.make(TokenType.SET_TIME, days=5)
    newer_add = bench.make(days=2)
    assert bench.enter(set_time).kind is OutcomeKind.APPLIED
    assert bench.enter(older_add).kind is OutcomeKind.ALREADY_USED
    assert bench.enter(newer_add).kind is OutcomeKind.APPLIED
    assert bench.days_left == 7


def test_u3_disable_payg_voids_an_older_add_time() -> None:
    bench = Bench()
    older_add = bench.make(days=3)
    disable = bench.make(TokenType.DISABLE_PAYG)
    assert bench.enter(disable).kind is OutcomeKind.APPLIED
    assert bench.enter(older_add).kind is OutcomeKind.ALREADY_USED
    assert bench.days_left is None


def test_counter_synchronisation_recovers_a_device_left_behind() -> None:
    bench = Bench()
    bench.count += 80  # tokens issued that never reached the device
    lost = bench.make(days=1)
    assert bench.enter(lost).kind is OutcomeKind.INVALID  # beyond the 64-count window
    sync = bench.make(TokenType.COUNTER_SYNC)
    outcome = bench.enter(sync)
    assert (outcome.kind, outcome.token_type) == (OutcomeKind.APPLIED, TokenType.COUNTER_SYNC)
    assert bench.device.status().count == sync.count
    assert bench.days_left == 0  # only the count changed
    assert bench.enter(bench.make(days=2)).kind is OutcomeKind.APPLIED
    assert bench.days_left == 2


def test_restricted_digit_device_by_keypad() -> None:
    bench = Bench(restricted_digits=True)
    made = bench.make(days=3)
    assert len(made.digits) == 15
    assert set(made.digits) <= set("1234")
    result = None
    for key in "*" + made.digits + "#":
        result = bench.device.press(key)
    assert isinstance(result, TokenOutcome)
    assert result.kind is OutcomeKind.APPLIED
    assert bench.days_left == 3


@pytest.mark.parametrize(("divider", "units", "hours"), [(24, 12, 12), (4, 3, 18), (2, 5, 60)])
def test_time_divider(divider: int, units: int, hours: int) -> None:
    bench = Bench(time_divider=divider)
    made = generate(bench.params, count=bench.count, units=units)
    bench.count = made.count
    assert bench.enter(made).units == units
    assert bench.device.status().seconds_left == hours * HOUR


def test_waiting_period_when_enabled() -> None:
    bench = Bench(config=DeviceConfig())
    bad = invalid_token(bench)
    assert [bench.enter(bad).wait_seconds for _ in range(3)] == [0, 0, 120]
    good = bench.make(days=1)
    assert bench.enter(good).kind is OutcomeKind.BLOCKED
    bench.wait(120)
    assert bench.enter(good).kind is OutcomeKind.APPLIED


# --- exactly once (SPEC 3.1) ----------------------------------------------------------------


def test_an_old_counter_sync_token_does_not_replay_the_add_time_tokens_after_it() -> None:
    # The issue: Sync @3, Add 30 @4, Add 30 @6, then the same three again and again.
    bench = Bench(key_hex=ISSUE_KEY_HEX, starting_code=ISSUE_STARTING_CODE)
    sync = bench.make(TokenType.COUNTER_SYNC)
    first, second = bench.make(days=30), bench.make(days=30)
    assert (sync.count, first.count, second.count) == (3, 4, 6)
    assert [bench.enter(token).kind for token in (sync, first, second)] == [OutcomeKind.APPLIED] * 3
    assert bench.days_left == 60
    for _ in range(3):
        outcomes = [bench.enter(token) for token in (sync, first, second)]
        assert [o.kind for o in outcomes] == [OutcomeKind.ALREADY_USED] * 3
        assert bench.device.status().count == 6
        assert bench.days_left == 60  # the 60 days paid for, not 120, 180, 240


def test_an_old_counter_sync_token_does_not_reopen_an_older_add_time_token() -> None:
    # The issue's second case: Add 5 @28, Sync @3, then Add 1 @6 three times.
    bench = Bench(key_hex=ISSUE_KEY_HEX, starting_code=ISSUE_STARTING_CODE)
    sync = bench.make(TokenType.COUNTER_SYNC)
    paid = generate(bench.params, count=5, days=1)
    bench.count = 27
    high = bench.make(days=5)
    assert (sync.count, paid.count, high.count) == (3, 6, 28)
    assert bench.enter(high).kind is OutcomeKind.APPLIED
    assert bench.enter(sync).kind is OutcomeKind.ALREADY_USED
    assert bench.device.status().count == 28
    for _ in range(3):
        assert bench.enter(paid).kind is OutcomeKind.ALREADY_USED
    assert bench.days_left == 5


def test_tokens_are_taken_once_however_far_the_count_moves() -> None:
    bench = Bench()
    entered: list[GeneratedToken] = []
    for jump in (2, 4, 8, 20):
        bench.count += jump - 2
        token = bench.make(days=1)
        assert bench.enter(token).kind is OutcomeKind.APPLIED
        entered.append(token)
        for old in entered:
            assert bench.enter(old).kind is OutcomeKind.ALREADY_USED, (jump, old.count)
    assert bench.days_left == len(entered)


def test_the_reset_token_is_refused_unless_the_firmware_is_set_to_take_it() -> None:
    for config, taken in ((CERTIFICATION, False), (DeviceConfig(accept_reset_token=True), True)):
        bench = Bench(config=config)
        code = STARTING_CODE
        reset = f"{code - code % 1000 + (code + 999) % 1000:09d}"
        outcome = bench.enter(reset)
        expected = OutcomeKind.APPLIED if taken else OutcomeKind.ALREADY_USED
        assert (outcome.kind, outcome.count) == (expected, 0)
        assert bench.device.status().count == (0 if taken else 1)


@pytest.mark.parametrize(("off_seconds", "rtc_forward"), [(2 * HOUR, 0), (30, DAY), (0, 365 * DAY)])
def test_the_waiting_period_does_not_run_while_the_device_is_off(
    off_seconds: int, rtc_forward: int
) -> None:
    bench = Bench(config=DeviceConfig())
    bad = invalid_token(bench)
    assert [bench.enter(bad).wait_seconds for _ in range(3)] == [0, 0, 120]
    bench.power_cycle(off_seconds=off_seconds, rtc_forward=rtc_forward)
    good = bench.make(days=1)
    blocked = bench.enter(good)
    assert (blocked.kind, blocked.wait_seconds) == (OutcomeKind.BLOCKED, 120)
    bench.wait(120)
    assert bench.enter(good).kind is OutcomeKind.APPLIED
