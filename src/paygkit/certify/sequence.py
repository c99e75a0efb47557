"""The random sequence (case RS1): genuine tokens entered in the orders customers use, every
answer worked out by paygkit's model of a device.

A server makes the tokens in count order with `paygkit.token.generate`, as
it does for a real device: Add Time, Set Time, Disable PAYG and Counter Sync,
now and then skipping counts (tokens that never reached the device) and,
after a long gap, a Counter Sync as a server sends to a device left behind.
The customer enters them out of order: the next one, one further ahead, one
already entered, an older one never entered, an old Counter Sync.  Before
each entry `ExpectedState` works out the answer (outcome, count, time left)
from the device's last count and used counts with `paygkit.token.decode`
(the exactly-once rule of SPEC 3.1) and the effects of SPEC section 4.

Every choice comes from `random.Random(seed)`: the same seed, length and
starting count give the same entries, which is how a failure is replayed
(`paygkit certify --seed N`).  From another count the same seed makes the
same choices with other tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from paygkit.certify.plan import Plan
from paygkit.certify.steps import Check, Enter, Step
from paygkit.token import (
    SECONDS_PER_DAY,
    DecodeResult,
    DeviceParams,
    GeneratedToken,
    TokenType,
    decode,
    duration_text,
    plural,
)

_T = TypeVar("_T")

# Invalid tries the reference firmware forgives: one more starts a waiting period where it
# cannot be switched off, so the sequence never enters a third before a token is accepted.
FORGIVEN_INVALID_TRIES = 2
# Tokens above the device's count that the server keeps made, so that "enter one further
# ahead" has something to choose from.
TOKENS_AHEAD = 3
# The most units a standard token carries.
MAX_UNITS = 995

# How a server's tokens are spread over the types and the counts between them.
_TYPES: tuple[tuple[TokenType, int], ...] = (
    (TokenType.ADD_TIME, 11),
    (TokenType.SET_TIME, 3),
    (TokenType.COUNTER_SYNC, 4),
    (TokenType.DISABLE_PAYG, 2),
)
_GAPS: tuple[tuple[int, int], ...] = ((1, 10), (2, 5), (4, 3), (8, 2), (20, 1))
# Values in days: on a real device time passes during the run, and a time left of a few
# units (minutes with a large divider) could run out between an entry and its check.
_ADD_DAYS = (0, 1, 1, 2, 3, 5, 7, 30)
_SET_DAYS = (0, 1, 3, 7, 30)
# Now and then the server's count runs far ahead (tokens lost on the way) and its next
# token is a Counter Sync, within the 100 counts a device takes one.
_LOST_RUN_CHANCE = 0.1
_LOST_RUN_GAPS = (62, 85)
# What the customer enters next.
_CHOICES: tuple[tuple[str, int], ...] = (
    ("next", 10),
    ("further ahead", 3),
    ("again", 4),
    ("older", 2),
    ("old sync", 2),
)


@dataclass
class ExpectedState:
    """What a paygkit device must hold and show after each entry, with time standing still.

    `seconds_left` is kept while PAYG is disabled too: an Add Time token then
    extends it, and it shows again only after a Set Time (which replaces it).
    """

    device: DeviceParams
    accepts_reset_token: bool
    last_count: int
    used_counts: tuple[int, ...] = ()
    payg_enabled: bool = True
    seconds_left: int = 0
    invalid_tries: int = 0  # invalid tokens since the last accepted one

    def predict(self, digits: str) -> DecodeResult:
        return decode(
            self.device,
            digits,
            last_count=self.last_count,
            used_counts=self.used_counts,
            accept_reset_token=self.accepts_reset_token,
        )

    def enter(self, digits: str) -> DecodeResult:
        result = self.predict(digits)
        if result.accepted:
            self._apply(result)
        elif result.token_type is TokenType.INVALID:
            self.invalid_tries += 1
        return result

    def _apply(self, result: DecodeResult) -> None:
        self.last_count = result.last_count
        self.used_counts = result.used_counts
        self.invalid_tries = 0
        duration = (result.units or 0) * SECONDS_PER_DAY // self.device.time_divider
        if result.token_type is TokenType.ADD_TIME:
            self.seconds_left += duration
        elif result.token_type is TokenType.SET_TIME:
            self.seconds_left = duration
            self.payg_enabled = True
        elif result.token_type is TokenType.DISABLE_PAYG:
            self.payg_enabled = False


def _weighted(rng: random.Random, table: Sequence[tuple[_T, int]]) -> _T:
    values = [value for value, _ in table]
    return rng.choices(values, weights=[weight for _, weight in table])[0]


class _Sequence:
    """The server (tokens in count order) and the customer (entries in any order)."""

    def __init__(self, plan: Plan, rng: random.Random, expected: ExpectedState) -> None:
        self.plan = plan
        self.rng = rng
        self.expected = expected
        self.issued: list[GeneratedToken] = []
        self.entered: list[GeneratedToken] = []  # in the order entered, repeats included

    # -- the server ---------------------------------------------------------------------------

    def issue(self) -> None:
        rng = self.rng
        top = self.plan.count
        behind = top - self.expected.last_count
        if rng.random() < _LOST_RUN_CHANCE and behind < 10:
            gap = rng.randint(*_LOST_RUN_GAPS)
            token = self.plan.make(TokenType.COUNTER_SYNC, after=top + gap - 1)
        else:
            token_type = _weighted(rng, _TYPES)
            after = top + _weighted(rng, _GAPS) - 1
            units: int | None = None
            if token_type is TokenType.ADD_TIME:
                units = min(MAX_UNITS, rng.choice(_ADD_DAYS) * self.plan.divider)
            elif token_type is TokenType.SET_TIME:
                units = min(MAX_UNITS, rng.choice(_SET_DAYS) * self.plan.divider)
            token = self.plan.make(token_type, units=units, after=after)
        self.issued.append(token)

    def ahead(self) -> list[GeneratedToken]:
        """Tokens made whose count is above the device's (never accepted), lowest first."""
        return [token for token in self.issued if token.count > self.expected.last_count]

    # -- the customer -------------------------------------------------------------------------

    def choose(self) -> GeneratedToken:
        while len(self.ahead()) < TOKENS_AHEAD:
            self.issue()
        token = self._pick(_weighted(self.rng, _CHOICES))
        at_limit = self.expected.invalid_tries >= FORGIVEN_INVALID_TRIES
        if at_limit and self.expected.predict(token.digits).token_type is TokenType.INVALID:
            return self._not_invalid()
        return token

    def _pick(self, choice: str) -> GeneratedToken:
        rng = self.rng
        ahead = self.ahead()
        last = self.expected.last_count
        entered = {token.count for token in self.entered}
        candidates: list[GeneratedToken] = []
        if choice == "further ahead":
            candidates = ahead[1 : 1 + TOKENS_AHEAD]
        elif choice == "again":
            candidates = self.entered[-6:]
        elif choice == "older":
            candidates = [t for t in self.issued if t.count <= last and t.count not in entered]
        elif choice == "old sync":
            candidates = [
                t for t in self.issued if t.token_type is TokenType.COUNTER_SYNC and t.count <= last
            ]
        return rng.choice(candidates) if candidates else ahead[0]

    def _not_invalid(self) -> GeneratedToken:
        """A token the device accepts (or refuses as used): a third invalid try would start a
        waiting period on a device that cannot switch it off."""
        accepted = self.first_accepted_ahead()
        # Failing that, the token that started the sequence, which is refused as used.
        return accepted if accepted is not None else self.entered[0]

    def first_accepted_ahead(self) -> GeneratedToken | None:
        for token in self.ahead():
            if self.expected.predict(token.digits).accepted:
                return token
        return None

    def catch_up(self) -> list[tuple[GeneratedToken, DecodeResult]]:
        """Entries that bring the device to the server's count, the last a Counter Sync.

        Tokens the customer never entered may leave the server's count far
        ahead; the server's next token must still work on the device.
        """
        final = self.plan.make(TokenType.COUNTER_SYNC)
        self.issued.append(final)
        entries: list[tuple[GeneratedToken, DecodeResult]] = []
        while not self.expected.predict(final.digits).accepted:
            # Beyond the Counter Sync window: first what the device still takes, lowest first.
            token = self.first_accepted_ahead()
            if token is None or token == final:
                break
            entries.append((token, self.expected.enter(token.digits)))
        entries.append((final, self.expected.enter(final.digits)))
        return entries

    def relation(self, token: GeneratedToken) -> str:
        last = self.expected.last_count
        if token.count > last:
            ahead = token.count - last
            return f"{plural(ahead, 'count')} ahead of the device"
        before = "again" if token in self.entered else "never entered"
        if token.count == last:
            return f"{before}, at the device's count"
        behind = last - token.count
        return f"{before}, {plural(behind, 'count')} behind the device"


def _status_check(expected: ExpectedState) -> Check:
    count = expected.last_count
    if not expected.payg_enabled:
        return Check(
            f"Active, unlimited: PAYG disabled; count {count}", unlimited=True, count=count
        )
    left = expected.seconds_left
    if left == 0:
        return Check(f"Inactive, no time left; count {count}", seconds_left=0, count=count)
    return Check(
        f"Active, {duration_text(left)} left; count {count}", seconds_left=left, count=count
    )


def random_sequence(p: Plan) -> list[Step]:
    """The steps of RS1: a known start, then `sequence_length` entries, each with its status."""
    params = p.params
    length = params.sequence_length
    rng = random.Random(params.seed)
    expected = ExpectedState(p.device, params.accepts_reset_token, last_count=p.device_count)
    start = p.make(TokenType.SET_TIME, units=0)
    steps: list[Step] = [
        p.applied(
            start,
            what=(
                f"Set Time 0 (count {start.count}): start from no time left "
                f"(random sequence, seed {params.seed}, {length} entries)"
            ),
            setup=True,
        ),
    ]
    expected.enter(start.digits)
    steps.append(_status_check(expected))
    sequence = _Sequence(p, rng, expected)
    sequence.entered.append(start)
    for number in range(1, length + 1):
        token = sequence.choose()
        what = f"Entry {number} of {length}: {p.label(token)}, {sequence.relation(token)}"
        result = expected.enter(token.digits)
        sequence.entered.append(token)
        steps.append(Enter(token.digits, what, p.predicted(result)))
        steps.append(_status_check(expected))
    for token, result in sequence.catch_up():
        what = f"{p.label(token)}: the device catches up with the server's count"
        steps.append(Enter(token.digits, what, p.predicted(result), setup=True))
    steps.append(_status_check(expected))
    p.device_count = expected.last_count
    return steps
