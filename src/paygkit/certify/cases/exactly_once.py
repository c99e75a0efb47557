"""XO: exactly once: every count is accepted at most once in the device's life (SPEC 3.1).

This is where paygkit devices differ from the reference, which loses money:
an old Counter Sync token moves its count back and reopens the tokens above.
"""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Enter, Step
from paygkit.token import GeneratedToken, TokenType

SUITE = Suite("XO", "Exactly once")


@SUITE.case(
    "XO1",
    "An old Counter Sync token cannot replay the Add Time tokens after it",
    "A customer keeps a Counter Sync token and the two Add Time tokens of 30 days made "
    "after it, and enters all three, then the same three again, four rounds. The first "
    "round gives 60 days; every later entry is refused as already used, the count stays at "
    "the last Add Time's, and the time left stays at the 60 days paid for. A device built "
    "on the reference decoder gives 240 days after four rounds, and more with each round.",
    security=(
        "Not a difference from the reference: a customer who kept one old Counter Sync token "
        "gets the same Add Time tokens' days again and again, without limit: days nobody "
        "paid for. A device built on the reference decoder has this hole; its firmware must "
        "follow the exactly-once rule (SPEC 3.1)."
    ),
)
def _xo1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    sync = p.make(TokenType.COUNTER_SYNC)
    first = p.make(TokenType.ADD_TIME, days=30)
    second = p.make(TokenType.ADD_TIME, days=30)
    steps += [
        p.applied(sync, what=f"{p.label(sync)}, kept by the customer"),
        p.count_is(sync.count),
        p.applied(first),
        p.left_days(30),
        p.applied(second),
        p.left_days(60),
    ]
    for round_number in (2, 3, 4):
        steps += [
            p.already_used(sync, what=f"{p.label(sync)} again (round {round_number})"),
            p.count_is(second.count),
            p.already_used(first, what=f"{p.label(first)} again (round {round_number})"),
            p.already_used(second, what=f"{p.label(second)} again (round {round_number})"),
            p.left_days(60),
        ]
    return steps


@SUITE.case(
    "XO2",
    "An old Counter Sync token cannot reopen older Add Time tokens",
    "An Add Time token of 5 days made 26 counts ahead is entered; then an older Counter "
    "Sync token and an older Add Time token of 1 day, made between them, three times. The "
    "Counter Sync is refused and the count stays; the Add Time, more than 16 counts behind, "
    "is refused as already used each time: 5 days left. The reference moves the count back "
    "to the Counter Sync and then takes the 1-day token three times.",
    security=(
        "An old Counter Sync token lets the customer enter an old Add "
        "Time token as many times as they like, each time for days nobody paid for."
    ),
)
def _xo2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    sync = p.make(TokenType.COUNTER_SYNC)
    paid = p.make(TokenType.ADD_TIME, days=1, after=sync.count + 2)
    high = p.make(TokenType.ADD_TIME, days=5, after=p.device_count + 26)
    steps += [
        p.applied(high, what=f"{p.label(high)}, {high.count - p.device_count} counts ahead"),
        p.left_days(5),
        p.already_used(
            sync, what=f"The older {p.label(sync)}, {high.count - sync.count} counts behind"
        ),
        p.count_is(high.count),
    ]
    for entry in (1, 2, 3):
        steps += [
            p.already_used(
                paid,
                what=(
                    f"The older {p.label(paid)}, {high.count - paid.count} counts behind, "
                    f"entry {entry}"
                ),
            ),
            p.left_days(5),
        ]
    return steps


@SUITE.case(
    "XO3",
    "Tokens are accepted once, however far the count has moved",
    "Add Time tokens are entered again after the device's count moved by 1, 2, 4, 8 and "
    "20 counts: within the 16 counts below the device's count, where older tokens may "
    "still be entered once, and beyond. Each is refused as already used; a token never "
    "entered within those 16 counts is accepted once, then refused. A device that loses "
    "track of its used counts when the count jumps takes paid tokens again.",
    security=(
        "Add Time tokens already entered are taken again after the count "
        "has moved, and each gives its days again: days nobody paid for."
    ),
)
def _xo3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]

    def again(token: GeneratedToken, top: GeneratedToken) -> Enter:
        behind = top.count - token.count
        where = "the same count" if behind == 0 else f"{behind} counts behind"
        return p.already_used(token, what=f"{p.label(token)} again, {where}")

    def moved(token: GeneratedToken, by: int) -> Enter:
        return p.applied(token, what=f"{p.label(token)}: the count moves by {by}")

    first = p.make(TokenType.ADD_TIME, days=1)
    steps += [p.applied(first), p.left_days(1), again(first, first), p.left_days(1)]
    second = p.make(TokenType.ADD_TIME, days=1, after=first.count + 1)
    kept = p.make(TokenType.ADD_TIME, days=1, after=second.count + 1)
    steps += [moved(second, 2), again(first, second), again(second, second), p.left_days(2)]
    third = p.make(TokenType.ADD_TIME, days=1, after=second.count + 3)
    steps += [moved(third, 4), again(first, third), again(second, third), p.left_days(3)]
    fourth = p.make(TokenType.ADD_TIME, days=1, after=third.count + 7)
    steps += [
        moved(fourth, 8),
        again(second, fourth),
        again(third, fourth),
        p.applied(
            kept,
            what=(
                f"{p.label(kept)}, {fourth.count - kept.count} counts behind, never entered: "
                "unordered entry"
            ),
        ),
        p.left_days(5),
        again(kept, fourth),
        again(first, fourth),
        p.left_days(5),
    ]
    fifth = p.make(TokenType.ADD_TIME, days=1, after=fourth.count + 19)
    steps += [
        moved(fifth, 20),
        again(fourth, fifth),
        again(kept, fifth),
        again(third, fifth),
        p.left_days(6),
    ]
    sync = p.make(TokenType.COUNTER_SYNC, after=fifth.count)
    steps += [
        moved(sync, 1),
        again(fifth, sync),
        again(sync, sync),
        p.count_is(sync.count),
        p.left_days(6),
    ]
    return steps
