"""The firmware model: effects, keypad, waiting period, tamper, test code, feedback, wear,
and the power-cut proof (a cut after every single byte write of a run of token entries)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from paygkit.device.cfirmware import CFirmware, firmware_class
from paygkit.device.clocks import ManualClock, ManualTicks, RecordingFeedback
from paygkit.device.feedback import REFERENCE_LED_PATTERNS, reference_feedback
from paygkit.device.firmware import (
    Firmware,
    OutcomeKind,
    ProvisioningError,
    Status,
    TokenOutcome,
    display_time,
    wait_checkpoint_interval,
)
from paygkit.device.keypad import (
    START_HINT,
    TIMED_OUT_TEXT,
    Keypad,
    KeyShown,
    StatusAsked,
    TokenTyped,
)
from paygkit.device.memory import RamMemory
from paygkit.device.ports import Feedback, FeedbackKind, Led
from paygkit.device.serial_number import SERIAL_MAX_LENGTH
from paygkit.device.state import (
    DeviceConfig,
    DeviceState,
    Provisioning,
    TamperFlag,
    TamperResponse,
    WaitingPeriod,
)
from paygkit.device.storage import (
    COMMIT_MARK,
    LAYOUT_VERSION,
    SLOT_OFFSETS,
    SLOT_SIZE,
    StateStore,
    decode_record,
)
from paygkit.token import DeviceParams, TokenType, decode, default_backend, generate
from tests.device.powercut import CutAtFeedback, PowerCut, PowerCutMemory
from tests.device.test_storage import v1_record

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
KEY = bytes.fromhex(KEY_HEX)
STARTING_CODE = 516959010
T0 = 1_700_000_000
DAY = 86_400
HOUR = 3600
MINUTE = 60


class Rig:
    """A device on a bench: manual RTC and ticks, RAM memory, recorded feedback,
    and the server side that makes its tokens."""

    def __init__(
        self,
        *,
        config: DeviceConfig | None = None,
        memory: Any = None,
        provision: bool = True,
        backend: Any = None,
        start: int = T0,
        **provisioning: Any,
    ) -> None:
        self.clock = ManualClock(start)
        self.ticks = ManualTicks()
        self.memory = memory if memory is not None else RamMemory()
        self.feedback = RecordingFeedback()
        self.config = config if config is not None else DeviceConfig()
        self.backend = backend
        self.device = self._power_on()
        self.params = DeviceParams.create(
            KEY_HEX,
            STARTING_CODE,
            time_divider=provisioning.get("time_divider", 1),
            restricted_digits=provisioning.get("restricted_digits", False),
        )
        self.server_count = provisioning.get("count", 1)
        if provision:
            self.device.provision(
                serial="SLT220000001", starting_code=STARTING_CODE, key=KEY, **provisioning
            )
            self.feedback.clear()

    def _power_on(self) -> Firmware | CFirmware:
        return firmware_class()(
            clock=self.clock,
            ticks=self.ticks,
            memory=self.memory,
            feedback=self.feedback,
            config=self.config,
            backend=self.backend,
        )

    def advance(self, seconds: int) -> None:
        """Time passes normally: the RTC and the tick source agree."""
        self.clock.advance(seconds)
        self.ticks.advance(seconds)

    def reboot(self, off_seconds: int = 0) -> Firmware | CFirmware:
        """Power off for a while (the RTC runs on its battery), then on."""
        self.clock.advance(off_seconds)
        self.ticks = ManualTicks()
        self.device = self._power_on()
        return self.device

    def token(
        self,
        token_type: TokenType = TokenType.ADD_TIME,
        *,
        days: int | None = None,
        units: int | None = None,
    ) -> str:
        if token_type in (TokenType.ADD_TIME, TokenType.SET_TIME) and days is None:
            units = 1 if units is None else units
        made = generate(
            self.params, count=self.server_count, token_type=token_type, days=days, units=units
        )
        self.server_count = made.count
        return made.digits

    def enter(self, token: str) -> TokenOutcome:
        return self.device.enter_token(token)

    def press_all(self, keys: str) -> TokenOutcome | Status | None:
        result = None
        for key in keys:
            result = self.device.press(key)
        return result

    @property
    def status(self) -> Status:
        return self.device.status()

    def last(self, kind: FeedbackKind | None = None) -> Feedback:
        events = [e for e in self.feedback.events if kind is None or e.kind is kind]
        assert events, f"no {kind} feedback in {self.feedback.events}"
        return events[-1]

    def kinds(self) -> list[FeedbackKind]:
        return [e.kind for e in self.feedback.events if e.kind is not FeedbackKind.KEY_PRESS]


def wrong_token(rig: Rig) -> str:
    """A well-formed token that is not one of the device's (checked, not assumed)."""
    for candidate in ("000000000", "111111111", "123456789", "999999999"):
        outcome_type = _decode_type(rig, candidate)
        if outcome_type is TokenType.INVALID:
            return candidate
    raise AssertionError("no invalid token found")  # pragma: no cover


def _decode_type(rig: Rig, text: str) -> TokenType:
    return decode(rig.params, text, last_count=rig.status.count + 200).token_type


def fail(rig: Rig, times: int) -> TokenOutcome:
    """Enter invalid tokens, sitting out each wait but the last one's."""
    bad = wrong_token(rig)
    outcome = rig.enter(bad)
    for _ in range(times - 1):
        rig.advance(outcome.wait_seconds)
        outcome = rig.enter(bad)
        assert outcome.kind is OutcomeKind.INVALID
    return outcome


# -- effects ---------------------------------------------------------------------------


def test_add_time_counts_from_now_when_expired_and_from_the_end_when_active() -> None:
    rig = Rig()
    outcome = rig.enter(rig.token(days=3))
    assert outcome.kind is OutcomeKind.APPLIED
    assert outcome.token_type is TokenType.ADD_TIME
    assert (outcome.units, outcome.count) == (3, 2)
    assert outcome.message == "+3 days"
    assert rig.status.active_until == T0 + 3 * DAY
    assert rig.status.seconds_left == 3 * DAY
    rig.advance(DAY)
    rig.enter(rig.token(days=2))
    assert rig.status.seconds_left == 4 * DAY
    rig.advance(10 * DAY)  # expired six days ago: those days are not owed
    assert not rig.status.active
    assert rig.status.seconds_left == 0
    rig.enter(rig.token(days=1))
    assert rig.status.seconds_left == DAY
    assert rig.status.active


def test_set_time_replaces_the_remaining_time() -> None:
    rig = Rig()
    rig.enter(rig.token(days=10))
    outcome = rig.enter(rig.token(TokenType.SET_TIME, days=2))
    assert (outcome.kind, outcome.token_type, outcome.units) == (
        OutcomeKind.APPLIED,
        TokenType.SET_TIME,
        2,
    )
    assert rig.status.seconds_left == 2 * DAY
    rig.enter(rig.token(TokenType.SET_TIME, days=0))
    assert not rig.status.active
    assert rig.status.seconds_left == 0


@pytest.mark.parametrize(
    ("divider", "units", "seconds"),
    [(1, 7, 7 * DAY), (4, 1, 6 * HOUR), (24, 5, 5 * HOUR), (7, 1, DAY // 7), (7, 10, 123_428)],
)
def test_time_divider_is_units_per_day(divider: int, units: int, seconds: int) -> None:
    rig = Rig(time_divider=divider)
    outcome = rig.enter(rig.token(units=units))
    assert outcome.units == units
    assert rig.status.seconds_left == seconds
    assert rig.status.time_divider == divider
    rig.enter(rig.token(TokenType.SET_TIME, units=units))
    assert rig.status.seconds_left == seconds


def test_disable_payg_is_active_forever_until_a_set_time() -> None:
    rig = Rig()
    outcome = rig.enter(rig.token(TokenType.DISABLE_PAYG))
    assert (outcome.kind, outcome.token_type, outcome.units) == (
        OutcomeKind.APPLIED,
        TokenType.DISABLE_PAYG,
        None,
    )
    rig.advance(5 * 365 * DAY)
    status = rig.status
    assert status.active
    assert not status.payg_enabled
    assert status.seconds_left is None
    # Add Time does not re-enable PAYG (certification G11).
    rig.enter(rig.token(days=0))
    assert rig.status.active
    assert rig.status.seconds_left is None
    rig.enter(rig.token(TokenType.SET_TIME, days=1))
    assert rig.status.payg_enabled
    assert rig.status.seconds_left == DAY


def test_counter_sync_changes_only_the_count() -> None:
    rig = Rig()
    rig.enter(rig.token(days=2))
    before = rig.status
    rig.server_count += 80  # tokens made but never entered
    outcome = rig.enter(rig.token(TokenType.COUNTER_SYNC))
    assert (outcome.kind, outcome.token_type) == (OutcomeKind.APPLIED, TokenType.COUNTER_SYNC)
    after = rig.status
    assert after.count == rig.server_count == outcome.count
    assert after.count > before.count + 64
    assert (after.active_until, after.payg_enabled) == (before.active_until, before.payg_enabled)


def test_already_used_changes_nothing_and_writes_nothing() -> None:
    rig = Rig()
    token = rig.token(days=2)
    rig.enter(token)
    before = rig.status
    writes = rig.memory.write_count
    outcome = rig.enter(token)
    assert outcome.kind is OutcomeKind.ALREADY_USED
    assert outcome.count == 2
    assert outcome.message == "Already used"
    assert rig.status == before
    assert rig.memory.write_count == writes


def test_invalid_counts_a_try_and_a_valid_token_resets_it() -> None:
    rig = Rig()
    token = rig.token(days=1)
    rig.enter(token)
    outcome = rig.enter(wrong_token(rig))
    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.wait_seconds == 0  # the first two are forgiven
    assert rig.status.invalid_attempts == 1
    # An already-used token is public (receipts): it must not reset the counter.
    rig.enter(token)
    assert rig.status.invalid_attempts == 1
    rig.enter(rig.token(days=1))
    assert rig.status.invalid_attempts == 0


@pytest.mark.parametrize("text", ["12345", "1234567890", "12a456789", "-12345678", " 123456789"])
def test_malformed_entries_count_as_invalid_tries(text: str) -> None:
    rig = Rig()
    outcome = rig.enter(text)
    assert outcome.kind is OutcomeKind.MALFORMED
    assert outcome.message.startswith("Not a token: ")
    assert rig.status.invalid_attempts == 1
    assert rig.last().kind is FeedbackKind.INVALID


def test_grouped_tokens_are_accepted() -> None:
    rig = Rig()
    token = rig.token(days=1)
    grouped = f"{token[:3]} {token[3:6]}-{token[6:]}"
    assert rig.enter(grouped).kind is OutcomeKind.APPLIED


def test_restricted_device_refuses_other_digits_as_malformed() -> None:
    rig = Rig(restricted_digits=True)
    token = rig.token(days=1)
    assert len(token) == 15
    assert rig.enter(token.replace("1", "5", 1)).kind is OutcomeKind.MALFORMED
    assert rig.enter(token).kind is OutcomeKind.APPLIED


def test_extended_token_carries_large_units() -> None:
    rig = Rig(time_divider=24)
    made = generate(rig.params, count=1, units=5000, extended=True)
    outcome = rig.enter(made.digits)
    assert (outcome.kind, outcome.units) == (OutcomeKind.APPLIED, 5000)
    assert rig.status.seconds_left == 5000 * HOUR


def test_non_text_token_is_a_programming_error_not_an_attempt() -> None:
    rig = Rig()
    with pytest.raises(TypeError, match="as text"):
        rig.enter(123456789)  # type: ignore[arg-type]
    assert rig.status.invalid_attempts == 0


def test_not_provisioned_refuses_tokens_without_counting_or_writing() -> None:
    rig = Rig(provision=False)
    outcome = rig.enter("123456789")
    assert outcome.kind is OutcomeKind.NOT_PROVISIONED
    status = rig.status
    assert (status.provisioned, status.active, status.serial, status.seconds_left) == (
        False,
        False,
        None,
        0,
    )
    assert status.invalid_attempts == 0
    assert rig.memory.write_count == 0
    assert rig.last() == Feedback(FeedbackKind.ENTRY_LOCKED, Led.RED, 1, "Not provisioned")


# -- provisioning ----------------------------------------------------------------------


def test_provision_writes_a_fresh_state_over_an_old_one() -> None:
    rig = Rig()
    rig.enter(rig.token(TokenType.DISABLE_PAYG))
    rig.enter(wrong_token(rig))
    provisioning = rig.device.provision(
        serial="ACME000042", starting_code=123, key=KEY_HEX, count=7, time_divider=4
    )
    assert provisioning.serial == "ACME000042"
    assert KEY_HEX not in repr(provisioning)
    status = rig.reboot().status()
    assert (status.serial, status.count, status.time_divider) == ("ACME000042", 7, 4)
    assert (status.payg_enabled, status.active, status.invalid_attempts) == (True, False, 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": KEY[:15]}, "16 bytes"),
        ({"key": "zz" * 16}, "hex"),
        ({"serial": ""}, "empty"),
        ({"serial": "S" * (SERIAL_MAX_LENGTH + 1)}, "33 characters long"),
        ({"serial": "SLT 1"}, "letters, digits and"),
        ({"serial": "SLT\x001"}, "letters, digits and"),
        ({"serial": "SLT;1"}, "letters, digits and"),
        ({"serial": "SLT/1"}, "letters, digits and"),
        ({"serial": "-SLT1"}, "starting with a letter or digit"),
        ({"starting_code": 1_000_000_000}, "starting code"),
        ({"time_divider": 0}, "time divider"),
        ({"test_code": "12a4"}, "digits 0-9"),
        ({"test_code": ""}, "digits 0-9"),
        ({"test_code": "1" * 21}, "at most 20"),
        ({"test_code": "1256", "restricted_digits": True}, "keys 1-4"),
        ({"count": -1}, "count"),
    ],
)
def test_provision_refuses_bad_factory_data_and_leaves_memory_alone(
    changes: dict[str, Any], message: str
) -> None:
    rig = Rig(provision=False)
    arguments: dict[str, Any] = {
        "serial": "SLT220000001",
        "starting_code": STARTING_CODE,
        "key": KEY,
        **changes,
    }
    with pytest.raises(ProvisioningError, match=message) as caught:
        rig.device.provision(**arguments)
    assert KEY_HEX not in str(caught.value)
    assert rig.memory.write_count == 0
    assert rig.device.provisioning is None


def test_a_serial_stored_under_the_older_wider_rule_still_loads_and_takes_tokens() -> None:
    # Older firmware took any printable ASCII; such a device must keep working.
    memory = RamMemory()
    old = Provisioning(serial="SLT 22/1", key=KEY, starting_code=STARTING_CODE)
    StateStore(memory).save(DeviceState(provisioning=old))
    rig = Rig(memory=memory, provision=False)
    assert rig.device.status().serial == "SLT 22/1"
    assert rig.enter(rig.token(days=2)).kind is OutcomeKind.APPLIED
    assert rig.reboot().status().serial == "SLT 22/1"


# -- feedback patterns -----------------------------------------------------------------


def _blocked(rig: Rig) -> None:
    fail(rig, 3)
    rig.enter(rig.token())


def _tamper(rig: Rig) -> None:
    rig.ticks.advance(HOUR)  # the RTC stood still
    rig.device.poll()


@pytest.mark.parametrize(
    ("action", "kind", "led", "blinks", "text"),
    [
        (lambda r: r.enter(r.token(days=7)), FeedbackKind.TIME_CHANGED, Led.GREEN, 2, "+7 days"),
        (
            lambda r: r.enter(r.token(TokenType.SET_TIME, days=1)),
            FeedbackKind.TIME_CHANGED,
            Led.GREEN,
            2,
            "Set 1 day",
        ),
        (
            lambda r: r.enter(r.token(TokenType.COUNTER_SYNC)),
            FeedbackKind.COUNTER_SYNCED,
            Led.GREEN,
            3,
            "Counter synced",
        ),
        (
            lambda r: r.enter(r.token(TokenType.DISABLE_PAYG)),
            FeedbackKind.PAYG_DISABLED,
            Led.GREEN,
            5,
            "PAYG disabled",
        ),
        (
            lambda r: [r.enter(t) for t in [r.token()] * 2],
            FeedbackKind.ALREADY_USED,
            Led.GREEN,
            1,
            "Already used",
        ),
        (lambda r: r.enter(wrong_token(r)), FeedbackKind.INVALID, Led.RED, 10, "Invalid token"),
        (_blocked, FeedbackKind.ENTRY_LOCKED, Led.RED, 1, "Wait 2 min"),
        (lambda r: r.enter("2468"), FeedbackKind.TEST_CODE, Led.GREEN, 2, "Test 30 s"),
        (_tamper, FeedbackKind.TAMPER, Led.RED, 3, "Clock tamper (RTC slow or stopped)"),
        (lambda r: r.press_all("#"), FeedbackKind.STATUS, Led.RED, 1, "Inactive"),
    ],
)
def test_feedback_patterns(
    action: Any, kind: FeedbackKind, led: Led, blinks: int, text: str
) -> None:
    rig = Rig(test_code="2468")
    action(rig)
    assert rig.last() == Feedback(kind, led, blinks, text)


def test_third_invalid_token_shows_its_wait() -> None:
    rig = Rig()
    for _ in range(3):
        outcome = rig.enter(wrong_token(rig))
    assert outcome.wait_seconds == 2 * MINUTE
    assert rig.last() == Feedback(FeedbackKind.INVALID, Led.RED, 10, "Invalid token, wait 2 min")


def test_status_feedback_green_when_active() -> None:
    rig = Rig()
    rig.enter(rig.token(days=3))
    rig.press_all("#")
    assert rig.last() == Feedback(FeedbackKind.STATUS, Led.GREEN, 1, "Active, 3 days left")
    rig.enter(rig.token(TokenType.DISABLE_PAYG))
    rig.press_all("#")
    assert rig.last() == Feedback(FeedbackKind.STATUS, Led.GREEN, 1, "Active, unlimited")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 days"),
        (DAY, "1 day"),
        (7 * DAY, "7 days"),
        (36 * HOUR, "1 day 12 h"),
        (6 * HOUR, "6 h"),
        (12_342, "3 h 26 min"),
        (45 * MINUTE, "45 min"),
        (1, "1 s"),
        (59, "59 s"),
        (60, "1 min"),
        (61, "2 min"),
        (512 * MINUTE, "8 h 32 min"),
    ],
)
def test_the_display_shows_two_units_and_never_less_time_than_there_is(
    seconds: int, text: str
) -> None:
    assert display_time(seconds) == text


# -- keypad ----------------------------------------------------------------------------


def test_the_keypad_collects_keys_and_leaves_the_token_to_the_firmware() -> None:
    keypad = Keypad(timeout_seconds=30)
    assert keypad.press("5", 0, restricted=False) == KeyShown(START_HINT)
    assert keypad.press("*", 1, restricted=False) == KeyShown("*")
    assert keypad.press("1", 2, restricted=False) == KeyShown("*1")
    assert keypad.press("7", 3, restricted=True) == KeyShown("Key 7 not used: keys 1-4 only")
    assert keypad.typing == "1"
    assert keypad.time_out(33) is None
    assert keypad.press("2", 33, restricted=False) == KeyShown("*12")
    assert keypad.press("#", 34, restricted=False) == TokenTyped("12")
    assert keypad.press("#", 35, restricted=False) == StatusAsked()
    keypad.press("*", 36, restricted=False)
    assert keypad.time_out(67) == TIMED_OUT_TEXT
    assert keypad.typing == ""
    with pytest.raises(ValueError, match="keypad key"):
        keypad.press("A", 70, restricted=False)


def test_the_core_names_feedback_kinds_and_the_product_maps_every_one_to_leds() -> None:
    assert set(REFERENCE_LED_PATTERNS) == set(FeedbackKind) - {FeedbackKind.STATUS}
    assert reference_feedback(FeedbackKind.INVALID, "Invalid token") == Feedback(
        FeedbackKind.INVALID, Led.RED, 10, "Invalid token"
    )
    assert reference_feedback(FeedbackKind.STATUS, "Inactive").led is Led.RED
    assert reference_feedback(FeedbackKind.STATUS, "Active", active=True).led is Led.GREEN


def test_keypad_token_entry() -> None:
    rig = Rig()
    token = rig.token(days=2)
    assert rig.press_all("*" + token[:4]) is None
    assert rig.status.typing == token[:4]
    assert rig.last(FeedbackKind.KEY_PRESS).text == "*" + token[:4]
    outcome = rig.press_all(token[4:] + "#")
    assert isinstance(outcome, TokenOutcome)
    assert outcome.kind is OutcomeKind.APPLIED
    assert rig.status.seconds_left == 2 * DAY
    assert rig.status.typing == ""


def test_hash_alone_shows_status_without_writing() -> None:
    rig = Rig()
    writes = rig.memory.write_count
    result = rig.press_all("#")
    assert isinstance(result, Status)
    assert result == rig.status
    assert rig.last().kind is FeedbackKind.STATUS
    # '*' then '#' with nothing typed is not an attempt either.
    assert isinstance(rig.press_all("*#"), Status)
    assert rig.status.invalid_attempts == 0
    assert rig.memory.write_count == writes


def test_digits_without_star_are_ignored() -> None:
    rig = Rig()
    token = rig.token(days=2)
    assert isinstance(rig.press_all(token + "#"), Status)
    assert rig.last(FeedbackKind.KEY_PRESS).text == "Press * to start a token"
    assert rig.status.count == 1


def test_star_restarts_the_entry() -> None:
    rig = Rig()
    token = rig.token(days=2)
    outcome = rig.press_all("*999*" + token + "#")
    assert isinstance(outcome, TokenOutcome)
    assert outcome.kind is OutcomeKind.APPLIED


def test_keypad_timeout_discards_the_partial_token_at_the_next_press() -> None:
    rig = Rig()
    token = rig.token(days=2)
    rig.press_all("*" + token[:5])
    rig.advance(rig.config.keypad_timeout_seconds + 1)
    result = rig.press_all(token[5:] + "#")  # the rest alone: ignored, then '#' is status
    assert isinstance(result, Status)
    assert rig.status.count == 1
    assert rig.status.invalid_attempts == 0
    assert "Entry timed out" in [e.text for e in rig.feedback.events]


def test_keypad_timeout_in_poll_and_not_before_it_expires() -> None:
    rig = Rig()
    token = rig.token(days=2)
    rig.press_all("*" + token[:5])
    rig.advance(rig.config.keypad_timeout_seconds)  # exactly the timeout: still typing
    rig.device.poll()
    assert rig.status.typing == token[:5]
    rig.press_all(token[5:7])
    rig.advance(rig.config.keypad_timeout_seconds + 1)
    rig.device.poll()
    assert rig.status.typing == ""
    assert rig.last(FeedbackKind.KEY_PRESS).text == "Entry timed out"


def test_keypad_timeout_runs_on_the_tick_source_not_the_rtc() -> None:
    rig = Rig()
    rig.press_all("*12")
    rig.clock.advance(HOUR)  # an RTC jump is not time at the keypad
    rig.press_all("3")
    assert rig.status.typing == "123"


def test_restricted_keypad_accepts_only_keys_1_to_4() -> None:
    rig = Rig(restricted_digits=True)
    token = rig.token(days=3)
    rig.press_all("*" + token[:3])
    assert rig.press_all("5") is None
    assert rig.last(FeedbackKind.KEY_PRESS).text == "Key 5 not used: keys 1-4 only"
    assert rig.status.typing == token[:3]
    outcome = rig.press_all("0" + token[3:] + "9#")
    assert isinstance(outcome, TokenOutcome)
    assert outcome.kind is OutcomeKind.APPLIED
    assert rig.status.seconds_left == 3 * DAY


def test_keypad_buffer_is_capped_at_20_digits() -> None:
    rig = Rig()
    rig.press_all("*" + "1" * 25)
    assert rig.status.typing == "1" * 20
    assert rig.last(FeedbackKind.KEY_PRESS).text == "At most 20 digits"


@pytest.mark.parametrize("key", ["a", "", "12", "+", None])
def test_unknown_keys_are_refused(key: Any) -> None:
    rig = Rig()
    with pytest.raises(ValueError, match="keypad key"):
        rig.device.press(key)


# -- waiting period --------------------------------------------------------------------


def test_waiting_period_sequence_doubles_up_to_512_minutes() -> None:
    rig = Rig()
    bad = wrong_token(rig)
    waits = []
    for _ in range(13):
        outcome = rig.enter(bad)
        assert outcome.kind is OutcomeKind.INVALID
        waits.append(outcome.wait_seconds)
        assert rig.status.blocked_seconds == outcome.wait_seconds
        rig.advance(outcome.wait_seconds)
    assert waits == [m * MINUTE for m in (0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512, 512)]


class CountingBackend:
    """The default chain backend, counting decode searches."""

    def __init__(self) -> None:
        self._inner = default_backend()
        self.name = "counting"
        self.finds = 0

    def std_find(self, *args: Any) -> list[int]:
        self.finds += 1
        return self._inner.std_find(*args)

    def ext_find(self, *args: Any) -> list[int]:
        self.finds += 1
        return self._inner.ext_find(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_blocked_entries_are_not_decoded_counted_or_written() -> None:
    backend = CountingBackend()
    rig = Rig(backend=backend, test_code="2468")
    fail(rig, 3)
    bad = wrong_token(rig)
    good = rig.token(days=1)
    finds, writes = backend.finds, rig.memory.write_count
    for text in (good, bad, "12", "2468"):
        outcome = rig.enter(text)
        assert outcome.kind is OutcomeKind.BLOCKED
        assert outcome.wait_seconds == 2 * MINUTE
        assert outcome.message == "Wait 2 min"
    assert (backend.finds, rig.memory.write_count) == (finds, writes)
    assert rig.status.invalid_attempts == 3
    assert not rig.status.test_active
    rig.advance(2 * MINUTE - 1)
    assert rig.enter(good).wait_seconds == 1
    rig.advance(1)
    assert rig.enter(good).kind is OutcomeKind.APPLIED
    assert (rig.status.invalid_attempts, rig.status.blocked_seconds) == (0, 0)


def stored_wait(rig: Rig) -> int:
    """The wait a device powering on over the memory as it is now would impose."""
    state = StateStore(RamMemory(data=rig.memory.data)).load()
    return min(state.wait_left, rig.config.waiting_period.seconds_after(state.invalid_attempts))


def on_time(rig: Rig, seconds: int) -> None:
    """Powered-on time passes, with the firmware's main loop polling every second."""
    for _ in range(seconds):
        rig.advance(1)
        rig.device.poll()


def test_time_switched_off_does_not_count() -> None:
    rig = Rig()
    fail(rig, 4)  # a 4-minute wait
    good = rig.token(days=1)
    rig.reboot(off_seconds=3 * MINUTE)
    outcome = rig.enter(good)
    assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, 4 * MINUTE)
    assert rig.status.invalid_attempts == 4
    rig.advance(3 * MINUTE)  # switched on this time
    assert rig.enter(good).wait_seconds == MINUTE
    rig.reboot(off_seconds=DAY)
    assert rig.enter(good).wait_seconds == MINUTE
    rig.advance(MINUTE)
    assert rig.enter(good).kind is OutcomeKind.APPLIED


def test_the_wait_survives_a_power_cycle() -> None:
    rig = Rig()
    fail(rig, 4)
    # Checkpointed at 180 s left, after 60 s on; the 40 s on since then are lost
    # at a power cut (less than the 60 s checkpoint interval), never gained.
    on_time(rig, 100)
    for _ in range(5):
        rig.reboot()
        assert rig.status.blocked_seconds == 180
    outcome = rig.enter(rig.token(days=1))
    assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, 180)


def test_an_rtc_moved_forward_by_days_while_off_lets_no_try_through() -> None:
    """The brute force of the issue: 200 extra tries, each after a power cycle with the
    RTC moved days ahead.  None of them is even decoded."""
    backend = CountingBackend()
    rig = Rig(backend=backend)
    fail(rig, 11)  # the longest wait, 512 minutes
    bad = wrong_token(rig)
    finds = backend.finds
    for _ in range(200):
        rig.reboot(off_seconds=3 * DAY)
        outcome = rig.enter(bad)
        assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, 512 * MINUTE)
    assert backend.finds == finds
    assert rig.status.invalid_attempts == 11


def test_an_rtc_moved_forward_while_on_does_not_shorten_the_wait() -> None:
    rig = Rig()
    fail(rig, 3)
    rig.clock.advance(30 * DAY)
    rig.device.poll()
    assert rig.status.tamper & TamperFlag.RTC_FAST
    outcome = rig.enter(rig.token())
    assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, 2 * MINUTE)
    rig.advance(2 * MINUTE)
    assert rig.enter(rig.token()).kind is OutcomeKind.APPLIED


def test_a_fast_rtc_does_not_shorten_the_wait_within_a_power_on() -> None:
    rig = Rig()
    fail(rig, 3)
    rig.clock.advance(10 * MINUTE)  # the RTC races ahead; the tick source says 1 minute
    rig.ticks.advance(MINUTE)
    outcome = rig.enter(rig.token())
    assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, MINUTE)
    assert rig.status.tamper & TamperFlag.RTC_FAST


def test_an_rtc_set_back_does_not_lengthen_the_wait() -> None:
    rig = Rig()
    fail(rig, 4)
    now = rig.clock.now()
    rig.clock.set(now - 365 * DAY)
    rig.reboot()
    outcome = rig.enter(rig.token())
    assert (outcome.kind, outcome.wait_seconds) == (OutcomeKind.BLOCKED, 4 * MINUTE)
    rig.advance(4 * MINUTE)
    assert rig.enter(rig.token()).kind is OutcomeKind.APPLIED


@pytest.mark.parametrize(
    ("attempts", "wait", "interval", "writes"),
    [(3, 2 * MINUTE, 60, 2), (6, 16 * MINUTE, 60, 16), (7, 32 * MINUTE, 120, 16)],
)
def test_a_power_cut_only_lengthens_the_wait_by_less_than_one_interval(
    attempts: int, wait: int, interval: int, writes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig()
    fail(rig, attempts)
    assert rig.status.blocked_seconds == wait
    assert wait_checkpoint_interval(wait) == interval
    saves = count_saves(monkeypatch)
    for elapsed in range(1, wait + 1):
        on_time(rig, 1)
        real = wait - elapsed
        # What a power cut now would leave: never shorter, less than an interval longer.
        assert real <= stored_wait(rig) < real + interval, elapsed
    assert stored_wait(rig) == 0
    assert len(saves) == writes


def count_saves(monkeypatch: pytest.MonkeyPatch) -> list[DeviceState]:
    """From now on, every state written to memory (saves that changed nothing are left out).

    Seen from the memory, whichever firmware saves: a save ends with the commit mark of
    its slot, which then holds the state saved.
    """
    saved: list[DeviceState] = []
    real_write = RamMemory.write

    def recording_write(memory: RamMemory, offset: int, data: bytes) -> None:
        real_write(memory, offset, data)
        if offset in SLOT_OFFSETS and bytes(data) == bytes([COMMIT_MARK]):
            saved.append(decode_record(memory.data[offset : offset + SLOT_SIZE])[1])

    monkeypatch.setattr(RamMemory, "write", recording_write)
    return saved


def test_the_longest_wait_costs_16_writes_even_with_power_cycles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig()
    fail(rig, 11)
    wait = 512 * MINUTE
    assert wait_checkpoint_interval(wait) == 32 * MINUTE
    saves = count_saves(monkeypatch)
    # Polled every 10 s, switched off (for days) after every 45 minutes on.
    left = wait
    while left > 0:
        for _ in range(45 * MINUTE // 10):
            rig.advance(10)
            rig.device.poll()
        before = rig.status.blocked_seconds
        rig.reboot(off_seconds=2 * DAY)
        after = rig.status.blocked_seconds
        assert before <= after < before + 32 * MINUTE + 10
        left = after
    # The RTC moved days while off, so the hourly RTC mark is saved after each
    # power-on as well; the wait's own writes are the ones that change it.
    waits = [wait, *(state.wait_left for state in saves)]
    checkpoints = [b for a, b in pairwise(waits) if a != b]
    assert checkpoints == sorted(checkpoints, reverse=True)
    assert checkpoints[-1] == 0
    assert len(checkpoints) == 16
    # Power cycles with the wait over write nothing, however many.
    rig.device.poll()  # (the RTC mark after the last 2 days off)
    written = len(saves)
    for _ in range(10):
        rig.reboot()
        rig.device.poll()
    assert len(saves) == written


def test_a_power_cut_during_a_checkpoint_leaves_the_old_or_the_new_wait() -> None:
    rig = Rig()
    fail(rig, 4)
    image, start = rig.memory.data, rig.clock.now()

    def run(memory: Any) -> Rig:
        bench = Rig(memory=memory, provision=False, start=start)
        bench.advance(100)
        bench.device.poll()  # the checkpoint: 240 -> 140
        return bench

    probe = PowerCutMemory(RamMemory(data=image))
    run(probe)
    assert probe.bytes_written > 0
    seen = set()
    for budget in range(probe.bytes_written + 1):
        raw = RamMemory(data=image)
        try:
            run(PowerCutMemory(raw, budget))
        except PowerCut:
            assert budget < probe.bytes_written
        restarted = Rig(memory=RamMemory(data=raw.data), provision=False, start=start + 100)
        seen.add(restarted.status.blocked_seconds)
    assert seen == {240, 140}


def test_the_wait_end_is_written_once_and_entry_reopens() -> None:
    rig = Rig()
    fail(rig, 3)
    rig.advance(2 * MINUTE)
    rig.device.poll()
    assert StateStore(RamMemory(data=rig.memory.data)).load().wait_left == 0
    writes = rig.memory.write_count
    rig.device.poll()
    rig.reboot()
    assert (rig.status.blocked_seconds, rig.memory.write_count) == (0, writes)
    assert rig.status.invalid_attempts == 3  # the next invalid token waits 4 minutes
    assert rig.enter(wrong_token(rig)).wait_seconds == 4 * MINUTE


def test_status_only_reads_the_wait() -> None:
    rig = Rig()
    fail(rig, 4)
    writes = rig.memory.write_count
    rig.advance(3 * MINUTE)
    assert rig.status.blocked_seconds == MINUTE
    assert rig.memory.write_count == writes
    assert stored_wait(rig) == 4 * MINUTE  # so a power cut now costs the 3 minutes again
    rig.reboot()
    assert rig.status.blocked_seconds == 4 * MINUTE


def test_a_stored_wait_beyond_the_settings_is_capped_at_power_on() -> None:
    rig = Rig()
    fail(rig, 3)
    store = StateStore(rig.memory)
    store.save(replace(store.load(), wait_left=10 * DAY))
    rig.reboot()
    assert rig.status.blocked_seconds == 2 * MINUTE
    rig.device.poll()  # more than an interval above the real wait: written down at once
    assert stored_wait(rig) == 2 * MINUTE
    assert StateStore(RamMemory(data=rig.memory.data)).load().wait_left == 2 * MINUTE


def test_a_stored_wait_ends_when_the_waiting_period_is_turned_off() -> None:
    rig = Rig()
    fail(rig, 5)
    rig.config = DeviceConfig(waiting_period=WaitingPeriod(enabled=False))
    rig.reboot()
    assert rig.status.blocked_seconds == 0
    assert rig.enter(rig.token()).kind is OutcomeKind.APPLIED


class WaitingPeriodMachine(RuleBasedStateMachine):
    """Invalid tokens, good tokens, powered-on time, power cycles (with days off) and RTC
    jumps (while off and while on), in any order.  The waiting period must never be
    shorter than the powered-on time since the invalid token allows, no entry may get
    through it, and each power cycle may lengthen it by less than one checkpoint
    interval (the main loop polls after every step here)."""

    rig: Rig

    @initialize()
    def start(self) -> None:
        self.rig = Rig()
        self.bad = wrong_token(self.rig)
        self.good: str | None = None
        self.attempts = 0
        self.real_left = 0  # the wait that powered-on time has not yet served

    def _left(self) -> int:
        return self.rig.status.blocked_seconds

    @rule()
    def enter_invalid(self) -> None:
        blocked = self._left() > 0
        outcome = self.rig.enter(self.bad)
        if blocked:
            assert outcome.kind is OutcomeKind.BLOCKED
            return
        assert outcome.kind is OutcomeKind.INVALID
        self.attempts += 1
        wait = self.rig.config.waiting_period.seconds_after(self.attempts)
        assert outcome.wait_seconds == wait == self._left()
        self.real_left = wait

    @rule()
    def enter_valid(self) -> None:
        if self.good is None:
            self.good = self.rig.token(days=1)  # kept until it gets through
        blocked = self._left() > 0
        outcome = self.rig.enter(self.good)
        if blocked:
            assert outcome.kind is OutcomeKind.BLOCKED
            return
        assert outcome.kind is OutcomeKind.APPLIED
        self.good = None
        self.attempts = self.real_left = 0

    @rule(seconds=st.integers(1, 3 * HOUR))
    def time_on(self, seconds: int) -> None:
        self.rig.advance(seconds)
        self.rig.device.poll()
        self.real_left = max(0, self.real_left - seconds)

    @rule(off=st.integers(0, 400 * DAY), rtc_jump=st.integers(-30 * DAY, 400 * DAY))
    def power_cycle(self, off: int, rtc_jump: int) -> None:
        before = self._left()
        self.rig.clock.set(self.rig.clock.now() + rtc_jump)  # tampered while off
        self.rig.reboot(off_seconds=off)
        after = self._left()
        assert (
            before
            <= after
            < before
            + wait_checkpoint_interval(self.rig.config.waiting_period.seconds_after(self.attempts))
        )

    @rule(rtc_jump=st.integers(-30 * DAY, 400 * DAY))
    def move_rtc_while_on(self, rtc_jump: int) -> None:
        before = self._left()
        self.rig.clock.set(self.rig.clock.now() + rtc_jump)
        self.rig.device.poll()
        assert self._left() == before

    @invariant()
    def the_wait_is_never_shorter_than_its_powered_on_time_allows(self) -> None:
        if not hasattr(self, "rig"):
            return
        left = self._left()
        assert left >= self.real_left
        assert left <= self.rig.config.waiting_period.seconds_after(self.attempts)
        # What a power cut at this moment would leave is never shorter either.
        assert stored_wait(self.rig) >= left
        assert self.rig.status.invalid_attempts == self.attempts


def test_the_waiting_period_machine() -> None:
    # A test function rather than the machine's TestCase, so that it runs on each firmware.
    run_state_machine_as_test(
        WaitingPeriodMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_a_device_updated_from_layout_version_1_keeps_its_wait_and_its_counts() -> None:
    """paygkit 0.1 stored the wait as an RTC time and may have moved its count back with
    a Counter Sync (the reference rule); the updated firmware carries both over."""
    old = DeviceState(
        provisioning=Provisioning(serial="SLT220000001", key=KEY, starting_code=STARTING_CODE),
        last_count=3,
        used_counts=(2, 3, 4, 6),
        active_until=T0 + DAY,
        invalid_attempts=3,
        latest_rtc_seen=T0,
    )
    memory = RamMemory()
    memory.write(SLOT_OFFSETS[0], v1_record(old, blocked_until=T0 + 90, sequence=1))
    writes = memory.write_count
    # The update took days, and the RTC kept running: the wait is still 90 s on.
    rig = Rig(memory=memory, provision=False, start=T0 + 5 * DAY)
    assert rig.status.blocked_seconds == 90
    assert rig.status.count == 6
    assert memory.write_count == writes  # powering on wrote nothing
    rig.device.poll()  # the RTC moved days: its hourly mark is the first save, in version 2
    assert memory.read(SLOT_OFFSETS[1] + 4, 1) == bytes([LAYOUT_VERSION])
    rig.advance(90)
    set_5 = generate(rig.params, count=4, token_type=TokenType.SET_TIME, days=30)
    assert set_5.count == 5
    assert rig.enter(set_5.digits).kind is OutcomeKind.ALREADY_USED  # below the highest count
    rig.server_count = 6
    outcome = rig.enter(rig.token(days=1))
    assert (outcome.kind, outcome.count) == (OutcomeKind.APPLIED, 8)


def test_waiting_period_can_be_disabled() -> None:
    rig = Rig(config=DeviceConfig(waiting_period=WaitingPeriod(enabled=False)))
    for _ in range(20):
        assert rig.enter(wrong_token(rig)).wait_seconds == 0
    assert rig.enter(rig.token()).kind is OutcomeKind.APPLIED


@pytest.mark.one_firmware(
    "the C library has the waiting period's steps compiled in (tests/device/test_cfirmware.py "
    "checks it refuses others)"
)
def test_custom_waiting_period() -> None:
    wait = WaitingPeriod(forgiven=0, base_seconds=10, cap_seconds=25)
    rig = Rig(config=DeviceConfig(waiting_period=wait))
    waits = []
    for _ in range(3):
        waits.append(rig.enter(wrong_token(rig)).wait_seconds)
        rig.advance(waits[-1])
    assert waits == [20, 25, 25]


# -- tamper ----------------------------------------------------------------------------


def test_stopped_rtc_is_flagged_once() -> None:
    rig = Rig()
    rig.ticks.advance(HOUR)
    rig.device.poll()
    assert rig.status.tamper == TamperFlag.RTC_SLOW
    assert rig.kinds() == [FeedbackKind.TAMPER]
    writes = rig.memory.write_count
    rig.ticks.advance(HOUR)
    rig.device.poll()
    assert rig.kinds() == [FeedbackKind.TAMPER]
    assert rig.memory.write_count == writes


def test_slowed_rtc_is_flagged_and_persisted() -> None:
    rig = Rig()
    rig.ticks.advance(HOUR)
    rig.clock.advance(HOUR // 2)
    rig.device.poll()
    assert rig.status.tamper == TamperFlag.RTC_SLOW
    assert rig.reboot().status().tamper == TamperFlag.RTC_SLOW


def test_sped_up_rtc_is_flagged() -> None:
    rig = Rig()
    rig.ticks.advance(HOUR)
    rig.clock.advance(2 * HOUR)
    rig.device.poll()
    assert rig.status.tamper == TamperFlag.RTC_FAST


def test_normal_drift_is_not_tamper() -> None:
    rig = Rig()
    rig.ticks.advance(HOUR)
    rig.clock.advance(HOUR + 60)  # 60 s + 2 % is allowed
    rig.device.poll()
    rig.ticks.advance(DAY)
    rig.clock.advance(DAY - 1000)
    rig.device.poll()
    assert rig.status.tamper == TamperFlag.NONE
    assert rig.kinds() == []


def test_rtc_set_back_across_a_reboot_is_flagged_at_power_on() -> None:
    rig = Rig()
    rig.enter(rig.token(days=5))
    rig.clock.set(T0 - DAY)
    rig.reboot()
    assert rig.status.tamper == TamperFlag.RTC_BACKWARDS
    assert rig.last() == Feedback(FeedbackKind.TAMPER, Led.RED, 3, "Clock tamper (RTC set back)")


def test_rtc_set_back_by_a_few_seconds_is_not_tamper() -> None:
    rig = Rig()
    rig.enter(rig.token(days=5))
    rig.clock.set(T0 - 30)
    rig.reboot()
    assert rig.status.tamper == TamperFlag.NONE


def test_rtc_set_back_after_the_last_save_is_caught_by_the_hourly_mark() -> None:
    rig = Rig()
    rig.enter(rig.token(days=5))
    rig.advance(3 * HOUR)
    writes = rig.memory.write_count
    rig.device.poll()  # the RTC moved an hour past the stored mark: one write
    assert rig.memory.write_count > writes
    writes = rig.memory.write_count
    rig.advance(59 * MINUTE)
    rig.device.poll()
    assert rig.memory.write_count == writes
    rig.clock.set(T0 + HOUR)
    rig.reboot()
    assert rig.status.tamper == TamperFlag.RTC_BACKWARDS


def test_report_response_keeps_the_device_running() -> None:
    rig = Rig(config=DeviceConfig(tamper_response=TamperResponse.REPORT))
    rig.enter(rig.token(days=5))
    _tamper(rig)
    status = rig.status
    assert status.tamper == TamperFlag.RTC_SLOW
    assert status.active
    assert status.seconds_left == 5 * DAY


def test_lock_response_until_a_set_time_token() -> None:
    rig = Rig(config=DeviceConfig(tamper_response=TamperResponse.LOCK))
    rig.enter(rig.token(days=5))
    _tamper(rig)
    assert rig.last().text == "Clock tamper (RTC slow or stopped): locked until Set Time"
    status = rig.status
    assert (status.active, status.seconds_left) == (False, 0)
    rig.press_all("#")
    assert rig.last() == Feedback(FeedbackKind.STATUS, Led.RED, 1, "Locked: clock tamper")
    assert rig.enter(rig.token(days=1)).kind is OutcomeKind.APPLIED  # recorded...
    assert not rig.status.active  # ...but still locked
    assert rig.enter(rig.token(TokenType.SET_TIME, days=2)).kind is OutcomeKind.APPLIED
    status = rig.status
    assert (status.tamper, status.active, status.seconds_left) == (TamperFlag.NONE, True, 2 * DAY)
    # The Set Time took the present RTC and ticks as the new reference.
    rig.advance(HOUR)
    rig.device.poll()
    assert rig.status.tamper == TamperFlag.NONE


def test_lock_survives_a_reboot_and_disable_payg_does_not_unlock() -> None:
    rig = Rig(config=DeviceConfig(tamper_response=TamperResponse.LOCK))
    rig.ticks.advance(HOUR)
    rig.clock.advance(3 * HOUR)
    rig.device.poll()
    rig.reboot()
    rig.enter(rig.token(TokenType.DISABLE_PAYG))
    assert not rig.status.active
    assert rig.status.tamper == TamperFlag.RTC_FAST


def test_tamper_is_checked_before_a_token_is_processed() -> None:
    rig = Rig()
    token = rig.token(days=1)
    rig.clock.advance(DAY)  # sped up: the ticks say no time passed
    rig.enter(token)
    assert rig.kinds() == [FeedbackKind.TAMPER, FeedbackKind.TIME_CHANGED]


# -- the reset token -------------------------------------------------------------------


def reset_token() -> str:
    """The reset token: Counter Sync (999) at count 0, the starting code with its base put in."""
    base = (STARTING_CODE + 999) % 1000
    return f"{STARTING_CODE - STARTING_CODE % 1000 + base:09d}"


def test_the_reset_token_is_refused_by_default() -> None:
    rig = Rig()
    rig.enter(rig.token(days=2))
    before, writes = rig.status, rig.memory.write_count
    outcome = rig.enter(reset_token())
    assert (outcome.kind, outcome.count) == (OutcomeKind.ALREADY_USED, 0)
    assert rig.status == before
    assert rig.memory.write_count == writes


def test_a_device_configured_for_it_takes_the_reset_token() -> None:
    rig = Rig(config=DeviceConfig(accept_reset_token=True))
    rig.enter(rig.token(days=2))
    outcome = rig.enter(reset_token())
    assert (outcome.kind, outcome.token_type, outcome.count) == (
        OutcomeKind.APPLIED,
        TokenType.COUNTER_SYNC,
        0,
    )
    status = rig.reboot().status()
    assert (status.count, status.used_counts, status.seconds_left) == (0, (0,), 2 * DAY)
    # Back at count 0 there is nothing left to reset.
    assert rig.enter(reset_token()).kind is OutcomeKind.ALREADY_USED


@pytest.mark.parametrize("value", [1, "yes", None])
def test_accept_reset_token_must_be_a_bool(value: Any) -> None:
    with pytest.raises(ValueError, match="accept_reset_token must be True or False"):
        Rig(config=DeviceConfig(accept_reset_token=value))


# -- test code -------------------------------------------------------------------------


def test_test_code_activates_for_30_seconds_without_touching_the_count() -> None:
    rig = Rig(test_code="2468")
    outcome = rig.enter("2468")
    assert outcome.kind is OutcomeKind.TEST_CODE
    status = rig.status
    assert (status.active, status.test_active, status.count) == (True, True, 1)
    assert status.payg_enabled
    assert status.seconds_left == 0
    assert status.invalid_attempts == 0
    rig.advance(29)
    assert rig.status.active
    rig.advance(1)
    assert not rig.status.active
    assert not rig.status.test_active


def test_test_code_by_keypad_and_on_a_locked_device() -> None:
    rig = Rig(test_code="2468", config=DeviceConfig(tamper_response=TamperResponse.LOCK))
    _tamper(rig)
    assert not rig.status.active
    outcome = rig.press_all("*2468#")
    assert isinstance(outcome, TokenOutcome)
    assert outcome.kind is OutcomeKind.TEST_CODE
    assert rig.status.active


def test_test_code_is_limited_to_5_uses_per_hour() -> None:
    rig = Rig(test_code="2468")
    for _ in range(5):
        assert rig.enter("2468").kind is OutcomeKind.TEST_CODE
        rig.advance(MINUTE)
    writes = rig.memory.write_count
    refused = rig.enter("2468")
    assert refused.kind is OutcomeKind.BLOCKED
    assert refused.wait_seconds == HOUR - 5 * MINUTE
    assert refused.message == "Test code limit, wait 55 min"
    assert rig.status.invalid_attempts == 0
    assert not rig.status.test_active
    assert rig.memory.write_count == writes
    rig.advance(HOUR - 5 * MINUTE)
    assert rig.enter("2468").kind is OutcomeKind.TEST_CODE
    assert rig.enter("2468").kind is OutcomeKind.BLOCKED  # the second use is still recent
    assert rig.status.count == 1


def test_test_code_uses_survive_a_reboot() -> None:
    rig = Rig(test_code="2468")
    for _ in range(5):
        rig.enter("2468")
    rig.reboot(off_seconds=10 * MINUTE)
    assert rig.enter("2468").kind is OutcomeKind.BLOCKED


def test_without_a_test_code_the_digits_are_just_a_malformed_entry() -> None:
    rig = Rig()
    assert rig.enter("2468").kind is OutcomeKind.MALFORMED
    assert rig.status.invalid_attempts == 1


# -- write wear ------------------------------------------------------------------------


def test_nothing_is_written_when_nothing_changes() -> None:
    rig = Rig(test_code="2468")
    token = rig.token(days=1)
    rig.enter(token)
    writes = rig.memory.write_count
    for _ in range(3):
        rig.device.status()
        rig.device.poll()
        rig.press_all("#")
        rig.press_all("*12")
        rig.enter(token)  # already used
        rig.advance(10 * MINUTE)
    rig.reboot(off_seconds=5 * MINUTE)
    rig.device.poll()
    assert rig.memory.write_count == writes


def test_each_applied_token_is_one_save(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig()
    saved = count_saves(monkeypatch)
    rig.enter(rig.token(days=1))
    rig.enter(rig.token(TokenType.SET_TIME, days=1))
    assert [state.last_count for state in saved] == [2, 3]


class FlakyMemory:
    """A memory whose writes can be made to fail (a worn-out or unplugged flash)."""

    def __init__(self, inner: RamMemory) -> None:
        self.inner = inner
        self.failing = False

    @property
    def size(self) -> int:
        return self.inner.size

    def read(self, offset: int, length: int) -> bytes:
        return self.inner.read(offset, length)

    def write(self, offset: int, data: bytes) -> None:
        if self.failing:
            raise OSError("flash write failed")
        self.inner.write(offset, data)


def test_a_failed_save_applies_nothing_and_signals_nothing() -> None:
    memory = FlakyMemory(RamMemory())
    rig = Rig(memory=memory)
    token = rig.token(days=2)
    before = rig.status
    memory.failing = True
    with pytest.raises(OSError, match="flash write failed"):
        rig.enter(token)
    assert rig.status == before
    assert rig.kinds() == []
    memory.failing = False
    assert rig.enter(token).kind is OutcomeKind.APPLIED
    assert rig.status.seconds_left == 2 * DAY


# -- the power-cut proof ---------------------------------------------------------------


def _fingerprint(status: Status) -> tuple[object, ...]:
    return (
        status.count,
        status.used_counts,
        status.active_until,
        status.payg_enabled,
        status.invalid_attempts,
        status.tamper,
    )


def _power_cut_script() -> tuple[bytes, list[str], list[tuple[object, ...]]]:
    """A provisioned memory image, the tokens to enter, and the state after each (no cut)."""
    rig = Rig()
    add_2 = rig.token(days=3)
    set_3 = rig.token(TokenType.SET_TIME, days=10)
    add_4 = rig.token(days=2)
    disable_5 = rig.token(TokenType.DISABLE_PAYG)
    add_6 = rig.token(days=1)
    add_8 = rig.token(days=5)
    sync_9 = rig.token(TokenType.COUNTER_SYNC)
    set_11 = rig.token(TokenType.SET_TIME, days=4)
    # add_6 after add_8 takes the unordered-entry path.
    tokens = [add_2, set_3, wrong_token(rig), add_4, disable_5, add_8, add_6, sync_9, set_11]
    image = rig.memory.data
    expected = [_fingerprint(rig.status)]
    for token in tokens:
        rig.advance(HOUR)
        assert rig.enter(token).kind in (OutcomeKind.APPLIED, OutcomeKind.INVALID)
        expected.append(_fingerprint(rig.status))
    return image, tokens, expected


def test_power_cut_after_every_byte_write_loses_no_token_and_applies_none_twice() -> None:
    image, tokens, expected = _power_cut_script()
    assert len(set(expected)) == len(expected), "every entry of the script changes the state"

    # How many bytes the whole run writes.
    probe = Rig(memory=RamMemory(data=image), provision=False)
    for token in tokens:
        probe.advance(HOUR)
        probe.enter(token)
    total = probe.memory.write_count
    assert total > len(tokens)

    cuts: list[tuple[int | None, int | None]] = [(budget, None) for budget in range(total + 1)]
    cuts += [(None, signal) for signal in range(len(tokens))]
    seen = set()
    for budget, signal in cuts:
        raw = RamMemory(data=image)
        memory = raw if budget is None else PowerCutMemory(raw, budget)
        rig = Rig(memory=memory, provision=False)
        if signal is not None:
            rig.feedback = CutAtFeedback(signal)
            rig.reboot()
        interrupted = None
        for index, token in enumerate(tokens):
            rig.advance(HOUR)
            try:
                rig.enter(token)
            except PowerCut:
                interrupted = index
                break
        if interrupted is None:
            assert budget == total
            assert _fingerprint(rig.status) == expected[-1]
            continue
        # Feedback was given exactly for the entries that finished before the cut.
        assert len(rig.kinds()) == interrupted

        # Power on again over the bytes that landed, at the time of the cut.
        rebooted = Rig(memory=RamMemory(data=raw.data), provision=False, start=rig.clock.now())
        state = _fingerprint(rebooted.status)
        before, after = expected[interrupted], expected[interrupted + 1]
        assert state in (before, after), f"cut {budget, signal}: torn state at {interrupted}"
        if signal is not None:
            assert state == after, "a token whose save returned must survive"
        seen.add(state == after)

        again = rebooted.enter(tokens[interrupted])
        if again.kind is OutcomeKind.INVALID:
            continue  # an invalid try may count once or twice; nothing to apply
        if state == before:
            assert again.kind is OutcomeKind.APPLIED
        else:
            # Exactly once (SPEC 3.1), a Counter Sync included.
            assert again.kind is OutcomeKind.ALREADY_USED
        assert _fingerprint(rebooted.status) == after
        # And the rest of the run ends where the uninterrupted one did.
        for later in tokens[interrupted + 1 :]:
            rebooted.advance(HOUR)
            rebooted.enter(later)
        assert _fingerprint(rebooted.status) == expected[-1]
    assert seen == {True, False}, "cuts both before and after the commit were tested"
