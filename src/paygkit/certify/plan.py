"""The server side of the procedure: it makes the tokens and keeps the counts.

A `Plan` plays the token server for the device under test.  It makes every
token with `paygkit.token.generate` from the device parameters, remembers the
highest count issued (the count a server stores) and the count the device
should be at if every expectation so far held, and turns tokens into steps
with their expectation in plain words.
"""

from __future__ import annotations

import copy
from typing import Any

from paygkit.certify.params import CertParams
from paygkit.certify.steps import (
    REFUSED,
    Check,
    Enter,
    Entry,
    Expect,
    Outcome,
    WaitRule,
)
from paygkit.device.feedback import (
    REFERENCE_LED_PATTERNS,
    STATUS_ACTIVE,
    STATUS_INACTIVE,
    LedPattern,
)
from paygkit.device.ports import FeedbackKind
from paygkit.token import (
    SECONDS_PER_DAY,
    DecodeResult,
    GeneratedToken,
    TokenType,
    decode,
    duration_text,
    format_token,
    from_restricted,
    generate,
    plural,
)

# A device further behind the tokens made so far than this has refused tokens it
# should have taken (or was reset); carrying on from the highest count issued
# would leave every later token out of its 64-count window.
LAG_LIMIT = 32


def _led_words(pattern: LedPattern) -> str:
    """'green LED blinks once', 'red LED blinks 10 times': what a person at the device sees."""
    colour = pattern.led.value if pattern.led is not None else "no"
    times = "once" if pattern.blinks == 1 else f"{pattern.blinks} times"
    return f"{colour} LED blinks {times}"


def _reference(kind: FeedbackKind) -> str:
    return _led_words(REFERENCE_LED_PATTERNS[kind])


_USED_WORDS = (
    f"Refused as already used; nothing changes (reference: {_reference(FeedbackKind.ALREADY_USED)})"
)
_INVALID_WORDS = (
    f"Refused as invalid; nothing changes (reference: {_reference(FeedbackKind.INVALID)})"
)
# The feedback the firmware gives for each applied token type.
_APPLIED_FEEDBACK = {
    TokenType.ADD_TIME: FeedbackKind.TIME_CHANGED,
    TokenType.SET_TIME: FeedbackKind.TIME_CHANGED,
    TokenType.DISABLE_PAYG: FeedbackKind.PAYG_DISABLED,
    TokenType.COUNTER_SYNC: FeedbackKind.COUNTER_SYNCED,
}


class NotApplicableError(Exception):
    """A case cannot be built for this device or at this point; the message says why."""


class Plan:
    """Tokens and counts for one device, and the steps that enter them."""

    def __init__(self, params: CertParams) -> None:
        self.params = params
        self.device = params.token_params()
        self.count = params.count  # the count the next token is made after
        self.issued = params.count  # the highest count issued: what the server must store
        self.device_count = params.count  # the device's count if every expectation held
        # Tokens one case leaves for a later one (G4A re-enters G3's token).
        self.memo: dict[str, Any] = {}
        self._invalid: str | None = None

    def fork(self) -> Plan:
        """A copy to build a case on; the caller keeps it only if the case runs."""
        other = copy.copy(self)
        other.memo = dict(self.memo)
        return other

    def sync(self, device_count: int) -> int:
        """Take the count the device reports (automatic runs read it before each case).

        Returns how far the device was behind when the next tokens are made from
        its count instead (it lagged more than LAG_LIMIT), else 0.
        """
        self.device_count = device_count
        lag = self.count - device_count
        if lag > LAG_LIMIT:
            self.count = device_count
            return lag
        self.count = max(self.count, device_count)
        return 0

    # -- values -------------------------------------------------------------------------------

    @property
    def divider(self) -> int:
        return self.params.time_divider

    def seconds(self, units: int) -> int:
        """The activation time of `units` (one rounding, down, as the firmware model does)."""
        return units * SECONDS_PER_DAY // self.divider

    def units(self, days: int) -> int:
        return days * self.divider

    def value_words(self, units: int) -> str:
        if units == 0:
            return "0"
        if self.divider == 1:
            return plural(units, "day")
        return f"{plural(units, 'unit')} = {duration_text(self.seconds(units))}"

    def label(self, token: GeneratedToken) -> str:
        """'Set Time 1 day (count 3)', 'extended Add Time 1000 days (count 7)'."""
        text = token.token_type.label
        if token.units is not None:
            text += " " + self.value_words(token.units)
        if token.extended:
            text = "extended " + text
        return f"{text} (count {token.count})"

    # -- tokens -------------------------------------------------------------------------------

    def make(
        self,
        token_type: TokenType = TokenType.ADD_TIME,
        *,
        days: int | None = None,
        units: int | None = None,
        after: int | None = None,
        extended: bool = False,
    ) -> GeneratedToken:
        """The next token of this type, or the first one after count `after`."""
        if days is not None:
            units = self.units(days)
        token = generate(
            self.device,
            count=self.count if after is None else after,
            token_type=token_type,
            units=units,
            extended=extended,
        )
        self.count = max(self.count, token.count)
        self.issued = max(self.issued, token.count)
        return token

    def invalid_token(self) -> str:
        """A token of the device's form (length, digits) that matches no count near its own."""
        if self._invalid is not None:
            return self._invalid
        # Far past any count the procedure reaches: a match anywhere below would not be INVALID.
        horizon = max(self.issued, self.device_count) + 5000
        for value in range(123_456_789, 999_999_999, 7_654_321):
            candidate = format_token(value, extended=False, restricted=self.params.restricted)
            if candidate == self.params.test_code:
                continue
            result = decode(self.device, candidate, last_count=horizon)
            if result.token_type is TokenType.INVALID:
                self._invalid = candidate
                return candidate
        raise NotApplicableError("no invalid token found for this device")  # pragma: no cover

    def reset_token(self) -> str:
        """The reset token: Counter Sync at count 0 (the starting code with 999 put in)."""
        code = self.device.starting_code
        value = code - code % 1000 + (code + 999) % 1000
        return format_token(value, extended=False, restricted=self.params.restricted)

    def leading_zero_token(self) -> GeneratedToken:
        """An Add Time token whose digits start with 0, found within the device's window."""
        if self.params.restricted:
            raise NotApplicableError("restricted-digit tokens have no digit 0")
        start = max(self.count, self.device_count)
        # Keep well inside the 64-count window of a device at device_count.
        for after in range(start, self.device_count + 40):
            for units in range(0, 12):
                token = generate(
                    self.device, count=after, token_type=TokenType.ADD_TIME, units=units
                )
                if token.digits.startswith("0"):
                    self.count = max(self.count, token.count)
                    self.issued = max(self.issued, token.count)
                    return token
        raise NotApplicableError("no token starting with 0 within the device's window")

    @staticmethod
    def standard_form(restricted_digits: str) -> str:
        """The 9-digit form of a 15-digit restricted token (the same value)."""
        return format_token(from_restricted(restricted_digits), extended=False, restricted=False)

    # -- steps --------------------------------------------------------------------------------

    def _accepted(self, token: GeneratedToken) -> None:
        # A paygkit device's count never goes down, Counter Sync included (SPEC 3.1).
        self.device_count = max(self.device_count, token.count)

    def effect_words(self, token: GeneratedToken | DecodeResult) -> str:
        units = token.units or 0
        if token.token_type is TokenType.ADD_TIME:
            effect = f"adds {duration_text(self.seconds(units))}"
        elif token.token_type is TokenType.SET_TIME:
            effect = f"sets {duration_text(self.seconds(units))} left"
        elif token.token_type is TokenType.DISABLE_PAYG:
            effect = "PAYG disabled, unlimited"
        else:
            effect = f"counter synchronised to count {token.count}"
        return f"Accepted: {effect} (reference: {_reference(_APPLIED_FEEDBACK[token.token_type])})"

    def predicted(self, result: DecodeResult) -> Expect:
        """The expectation for an entry whose outcome the model worked out (`decode`)."""
        if result.token_type.is_generated:
            return Expect(
                frozenset({Outcome.APPLIED}),
                self.effect_words(result),
                token_type=result.token_type.name,
                units=result.units,
                count=result.count,
            )
        if result.token_type is TokenType.ALREADY_USED:
            return Expect(frozenset({Outcome.ALREADY_USED}), _USED_WORDS, count=result.count)
        return Expect(frozenset({Outcome.INVALID}), _INVALID_WORDS)

    def applied(
        self,
        token: GeneratedToken,
        *,
        what: str | None = None,
        setup: bool = False,
        within: float | None = None,
        via: Entry = "auto",
    ) -> Enter:
        """Enter a token that must be accepted with its type, value and count."""
        expect = Expect(
            frozenset({Outcome.APPLIED}),
            self.effect_words(token),
            token_type=token.token_type.name,
            units=token.units,
            count=token.count,
        )
        self._accepted(token)
        return Enter(
            token.digits,
            what or self.label(token),
            expect,
            setup=setup,
            within=within,
            via=via,
        )

    def already_used(self, token: GeneratedToken, *, what: str | None = None) -> Enter:
        expect = Expect(frozenset({Outcome.ALREADY_USED}), _USED_WORDS, count=token.count)
        return Enter(token.digits, what or self.label(token) + " again", expect, snapshot=True)

    def refused(
        self,
        keys: str,
        what: str,
        *,
        outcomes: frozenset[Outcome] = REFUSED,
        invalid: int | None = None,
        wait: WaitRule = "any",
        via: Entry = "auto",
        protocol_only: bool = False,
    ) -> Enter:
        """Enter something the device must refuse (and count as an invalid try, unless used)."""
        if outcomes == {Outcome.ALREADY_USED}:
            words = _USED_WORDS
        elif Outcome.ALREADY_USED in outcomes:
            words = "Refused (as already used, or as invalid); nothing changes"
        else:
            words = _INVALID_WORDS
        if wait == "positive":
            words += "; entry is now blocked for a while (the waiting period starts)"
        elif wait == "zero":
            words += "; no waiting period yet"
        elif wait == "doubled":
            words += "; the waiting period is twice the previous one, at most 512 minutes"
        expect = Expect(outcomes, words, wait=wait, invalid=invalid)
        return Enter(keys, what, expect, via=via, protocol_only=protocol_only, snapshot=True)

    def blocked(self, token: GeneratedToken) -> Enter:
        expect = Expect(
            frozenset({Outcome.BLOCKED}),
            "Refused without being checked: entry is blocked by the waiting period "
            f"(reference: {_reference(FeedbackKind.ENTRY_LOCKED)})",
            wait="positive",
        )
        return Enter(token.digits, self.label(token) + " during the waiting period", expect)

    def sequence(self, keys: str, what: str, token: GeneratedToken) -> Enter:
        """Press an exact key sequence that must end in `token` being accepted."""
        step = self.applied(token, what=what)
        return Enter(keys, what, step.expect, sequence=True)

    def left(self, seconds: int, *, setup: bool = False) -> Check:
        if seconds == 0:
            text = f"Inactive, no time left (reference: {_led_words(STATUS_INACTIVE)} on #)"
        else:
            shown = f"reference: {_led_words(STATUS_ACTIVE)} on #"
            text = f"Active, {duration_text(seconds)} left ({shown})"
        return Check(text, seconds_left=seconds, setup=setup)

    def left_days(self, days: int) -> Check:
        return self.left(self.seconds(self.units(days)))

    def unlimited(self) -> Check:
        return Check(
            f"Active, unlimited: PAYG disabled (reference: {_led_words(STATUS_ACTIVE)} on #)",
            unlimited=True,
        )

    def unchanged(self) -> Check:
        return Check("Nothing changed: same time left and count as before", unchanged=True)

    def count_is(self, count: int) -> Check:
        return Check(f"The device's count is {count}", count=count)

    def baseline(self) -> list[Enter | Check]:
        """Set Time 0: start the case from a known state (PAYG on, no time left)."""
        token = self.make(TokenType.SET_TIME, units=0)
        return [
            self.applied(
                token, what=f"Set Time 0 (count {token.count}): start from no time left", setup=True
            ),
            self.left(0, setup=True),
        ]

    def genuine(self) -> GeneratedToken:
        """A token that changes nothing but is genuine: Add Time 0."""
        return self.make(TokenType.ADD_TIME, units=0)

    def ensure_count(self, minimum: int) -> list[Enter | Check]:
        """Add Time 0 tokens far ahead until the device's count is at least `minimum`."""
        steps: list[Enter | Check] = []
        while self.device_count < minimum:
            token = self.make(TokenType.ADD_TIME, units=0, after=self.device_count + 62)
            steps.append(
                self.applied(
                    token,
                    what=f"Add Time 0 (count {token.count}): move the count past {minimum}",
                    setup=True,
                )
            )
        return steps
