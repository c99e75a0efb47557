"""EX: extended tokens (12 digits, 20 restricted), which carry up to 999 999 units.

Not part of the standard: a firmware that does not take them is certified
with `--skip EX`.
"""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.cases.shared import start_with_add_time
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step
from paygkit.token import TokenType

SUITE = Suite("EX", "Extended tokens")


@SUITE.case(
    "EX1",
    "An extended Add Time token carries more than 995 units",
    "Extended tokens (12 digits, 20 restricted) carry values up to 999 999; an Add Time "
    "of 1000 units is accepted with its value. Extended tokens are not part of the "
    "standard: skip the suite (--skip EX) if the firmware does not take them.",
    optional=True,
)
def _ex1(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, units=1000, extended=True)
    steps += [p.applied(token), p.left(p.seconds(1000))]
    return steps


@SUITE.case(
    "EX2",
    "An extended Set Time token sets the time",
    "An extended Set Time token of 2 days sets 2 days left, replacing the time there was: "
    "a device that takes extended tokens must treat their Set Time as it treats the "
    "standard one.",
    optional=True,
)
def _ex2(p: Plan) -> list[Step]:
    token = p.make(TokenType.SET_TIME, days=2, extended=True)
    return [p.applied(token), p.left_days(2)]


@SUITE.case(
    "EX3",
    "An extended token is accepted once only",
    "An extended token entered a second time is refused as already used: extended tokens "
    "share the device's count with standard ones and must be protected against being "
    "entered twice in the same way.",
    optional=True,
)
def _ex3(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1, extended=True)
    steps += [p.applied(token), p.left_days(1), p.already_used(token), p.left_days(1)]
    return steps
