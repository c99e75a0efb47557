"""G: the general procedure, G1-G12 of the reference test procedure (SPEC section 6).

The G cases follow one another as the reference does (G3 adds to G2's day,
G4A enters G3's token again); `requires` names the cases a case starts from.
"""

from __future__ import annotations

from paygkit.certify.cases.case import HOUR, Suite
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Outcome, Step, Wait
from paygkit.token import TokenType

SUITE = Suite("G", "General procedure (reference G1-G12)")


@SUITE.case(
    "G1",
    "An invalid token is refused",
    "A token that belongs to no count of this device is refused as invalid and changes "
    "nothing. A device that took it, or changed its time or count, could be unlocked by "
    "guessing.",
)
def _g1(p: Plan) -> list[Step]:
    return [
        p.refused(
            p.invalid_token(),
            "An invalid token (right length, belongs to no count of this device)",
            outcomes=frozenset({Outcome.INVALID}),
        ),
        p.unchanged(),
    ]


@SUITE.case(
    "G2",
    "Set Time 1 day",
    "A Set Time token sets the time left to its value, here 1 day from now.",
)
def _g2(p: Plan) -> list[Step]:
    token = p.make(TokenType.SET_TIME, days=1)
    p.memo["G2"] = token
    return [p.applied(token), p.left_days(1)]


@SUITE.case(
    "G3",
    "Add Time 1 day adds to the time left",
    "An Add Time token adds its value to the time left: 1 day after G2's 1 day makes 2. "
    "Customers pay in instalments; each one must add up.",
    requires=("G2",),
)
def _g3(p: Plan) -> list[Step]:
    token = p.make(TokenType.ADD_TIME, days=1)
    p.memo["G3"] = token
    return [p.applied(token), p.left_days(2)]


@SUITE.case(
    "G4A",
    "The same Add Time token again is refused as already used",
    "Entering G3's token a second time is refused as already used and the time left stays "
    "at 2 days. Otherwise one payment could be entered many times. The answer must be "
    "'already used', not 'invalid', so that the customer knows the token was taken.",
    requires=("G2", "G3"),
    security=(
        "One payment can be entered again and again, and each entry "
        "gives its days again: days nobody paid for."
    ),
)
def _g4a(p: Plan) -> list[Step]:
    return [p.already_used(p.memo["G3"]), p.left_days(2)]


@SUITE.case(
    "G4B",
    "An older Set Time token is refused as already used",
    "G2's Set Time token, older than the last token entered, is refused as already used "
    "and the time left stays at 2 days. An old Set Time token entered again would throw "
    "away the time paid for since.",
    requires=("G2", "G3"),
)
def _g4b(p: Plan) -> list[Step]:
    return [p.already_used(p.memo["G2"], what=f"The older {p.label(p.memo['G2'])}"), p.left_days(2)]


@SUITE.case(
    "G5",
    "Set Time 30 days replaces the time left",
    "A Set Time token replaces the time left (2 days) by its value (30 days); it does "
    "not add to it. Servers use Set Time to correct a device's time.",
)
def _g5(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.SET_TIME, days=30)), p.left_days(30)]


@SUITE.case(
    "G6",
    "Set Time 0 deactivates at once",
    "A Set Time token of 0 leaves no time: the device is inactive right away. This is "
    "how a server takes time back.",
)
def _g6(p: Plan) -> list[Step]:
    return _set_time_zero(p)


@SUITE.case(
    "G7",
    "Three Add Time tokens of 995 units add up",
    "995 units, the largest value of a standard token, three times: 995, 1990 then 2985 "
    "units of time left. The device must hold time beyond what one token can carry.",
    requires=("G6",),
)
def _g7(p: Plan) -> list[Step]:
    steps: list[Step] = []
    for n in (1, 2, 3):
        token = p.make(TokenType.ADD_TIME, units=995)
        steps += [p.applied(token), p.left(n * p.seconds(995))]
    return steps


@SUITE.case(
    "G8",
    "21 Set Time tokens, each 30 counts after the last, each in under 5 s",
    "Set Time tokens of 1 to 21 days, each made 30 counts after the previous one, as if "
    "29 tokens in between had been lost. Each is accepted and sets its time, and the "
    "device answers each within 5 seconds: a device must search up to 64 counts ahead "
    "quickly enough for a customer at the keypad.",
)
def _g8(p: Plan) -> list[Step]:
    steps: list[Step] = []
    for days in range(1, 22):
        token = p.make(TokenType.SET_TIME, days=days, after=p.count + 29)
        steps += [p.applied(token, within=5.0), p.left_days(days)]
    return steps


@SUITE.case(
    "G9",
    "Disable PAYG unlocks the device for good",
    "A Disable PAYG token makes the device active without limit: the customer has paid it off.",
)
def _g9(p: Plan) -> list[Step]:
    return _disable_payg(p)


@SUITE.case(
    "G10",
    "Set Time 0 locks a disabled device again",
    "After Disable PAYG, a Set Time token of 0 turns PAYG back on with no time left, so "
    "a device disabled by mistake can be recovered.",
    requires=("G9",),
)
def _g10(p: Plan) -> list[Step]:
    return _set_time_zero(p)


@SUITE.case(
    "G11",
    "Add Time after Disable PAYG leaves the device unlocked",
    "An Add Time token on a device with PAYG disabled does not turn PAYG back on: the "
    "device stays unlocked. Optional in the reference procedure (skip it with --skip G11).",
    optional=True,
)
def _g11(p: Plan) -> list[Step]:
    return [*_disable_payg(p), p.applied(p.make(TokenType.ADD_TIME, units=0)), p.unlimited()]


@SUITE.case(
    "G12",
    "Late days are not counted",
    "With no time left and 48 hours gone by, an Add Time token of 1 day gives exactly 1 "
    "day: the days the device was off are not taken out of the new payment. Against a "
    "simulator the 48 hours take no real time.",
)
def _g12(p: Plan) -> list[Step]:
    return [
        *_set_time_zero(p),
        Wait("Let 48 hours pass with the device switched on", seconds=48 * HOUR),
        p.applied(p.make(TokenType.ADD_TIME, days=1)),
        p.left_days(1),
    ]


def _set_time_zero(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.SET_TIME, days=0)), p.left(0)]


def _disable_payg(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.DISABLE_PAYG)), p.unlimited()]
