"""TD: the time divider: a value unit is a day divided by it."""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.cases.shared import start_with_add_time
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step
from paygkit.token import TokenType

SUITE = Suite("TD", "Time divider")

_DIVIDER_NOTE = (
    " With a time divider of 1 a unit is a day, so this case cannot tell a device that "
    "ignores the divider: certify each model with the divider it ships with."
)


@SUITE.case(
    "TD1",
    "One unit is a day divided by the time divider",
    "An Add Time token of 1 unit gives 1 day divided by the time divider (6 hours with a "
    "divider of 4)." + _DIVIDER_NOTE,
)
def _td1(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, units=1)
    steps += [p.applied(token), p.left(p.seconds(1))]
    return steps


@SUITE.case(
    "TD2",
    "Set Time in units that are not whole days",
    "A Set Time token of one and a half days' worth of units sets exactly that much time."
    + _DIVIDER_NOTE,
)
def _td2(p: Plan) -> list[Step]:
    units = p.divider + p.divider // 2 if p.divider > 1 else 3
    token = p.make(TokenType.SET_TIME, units=units)
    return [p.applied(token), p.left(p.seconds(units))]


@SUITE.case(
    "TD3",
    "Units add up",
    "Set Time 1 unit then Add Time 2 units: three units of time left." + _DIVIDER_NOTE,
)
def _td3(p: Plan) -> list[Step]:
    first = p.make(TokenType.SET_TIME, units=1)
    second = p.make(TokenType.ADD_TIME, units=2)
    return [
        p.applied(first),
        p.left(p.seconds(1)),
        p.applied(second),
        p.left(p.seconds(1) + p.seconds(2)),
    ]
