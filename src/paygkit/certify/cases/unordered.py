"""U: unordered entry, U1-U3 of the reference test procedure."""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step
from paygkit.token import TokenType

SUITE = Suite("U", "Unordered entry (reference U1-U3)")


@SUITE.case(
    "U1",
    "Add Time tokens are accepted in any order",
    "Three Add Time tokens of 1, 2 and 3 days, entered third, first, second: all are "
    "accepted and add up to 6 days. Customers receive several tokens and do not always "
    "enter them in the order they were made.",
)
def _u1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    first, second, third = (p.make(TokenType.ADD_TIME, days=d) for d in (1, 2, 3))
    steps += [p.applied(third), p.left_days(3)]
    steps += [p.applied(first), p.left_days(4)]
    steps += [p.applied(second), p.left_days(6)]
    return steps


@SUITE.case(
    "U2",
    "Set Time makes older Add Time tokens obsolete",
    "Add Time 1 day, Set Time 5 days and Add Time 2 days are made in that order; the Set "
    "Time is entered first. The older Add Time is then refused as already used (the Set "
    "Time already accounts for it) and the newer one is accepted: 7 days.",
    security=(
        "The days of an Add Time token that a later Set Time already "
        "accounts for are given a second time: days nobody paid for."
    ),
)
def _u2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    older = p.make(TokenType.ADD_TIME, days=1)
    set_time = p.make(TokenType.SET_TIME, days=5)
    newer = p.make(TokenType.ADD_TIME, days=2)
    steps += [p.applied(set_time), p.left_days(5)]
    steps += [p.already_used(older, what=f"The older {p.label(older)}"), p.left_days(5)]
    steps += [p.applied(newer), p.left_days(7)]
    return steps


@SUITE.case(
    "U3",
    "Disable PAYG makes older Add Time tokens obsolete",
    "Add Time and Disable PAYG are made in that order and the Disable PAYG is entered "
    "first; the older Add Time is then refused as already used.",
)
def _u3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    older = p.make(TokenType.ADD_TIME, days=1)
    disable = p.make(TokenType.DISABLE_PAYG)
    steps += [p.applied(disable), p.unlimited()]
    steps += [p.already_used(older, what=f"The older {p.label(older)}"), p.unlimited()]
    return steps
