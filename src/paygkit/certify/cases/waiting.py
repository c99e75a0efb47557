"""WP: the waiting period after invalid tokens, which makes guessing tokens hopeless.

Each case switches the waiting period on where it can be switched (and off
again at the end, also after a failure).  Outside this suite no case enters
more than two invalid tokens without a genuine token in between, so the
procedure also runs on a device whose waiting period cannot be switched off.
"""

from __future__ import annotations

from paygkit.certify.cases.case import DAY, HOUR, Suite
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Check, Outcome, PowerCycle, Step, Wait, Waiting
from paygkit.token import GeneratedToken

SUITE = Suite("WP", "Waiting period")

_GUESSING = (
    "The waiting period is what makes guessing tokens hopeless. A customer who can cut it "
    "short {how} can try tokens far faster, and a guessed token gives days nobody paid for."
)


def _fresh_start(p: Plan) -> list[Step]:
    # The genuine token goes first, while the waiting period is still off where it can be:
    # it also clears a wait an earlier failed case left behind.
    genuine = p.genuine()
    return [
        p.applied(genuine, what=f"{p.label(genuine)}: start with no invalid tries", setup=True),
        Waiting(True),
    ]


def _invalid_run(p: Plan) -> list[Step]:
    """Three invalid tokens in a row: the first two forgiven, the third starts a wait."""
    invalid = p.invalid_token()
    return [
        p.refused(
            invalid,
            f"An invalid token, #{n} in a row",
            outcomes=frozenset({Outcome.INVALID}),
            invalid=n,
            wait="positive" if n == 3 else "zero",
        )
        for n in (1, 2, 3)
    ]


def _wait_it_out(p: Plan, genuine: GeneratedToken, text: str) -> list[Step]:
    """Wait until entry is open again; the genuine token is then accepted."""
    return [
        Wait(text, until_unblocked=True),
        p.applied(genuine, what=f"{p.label(genuine)}, after the wait"),
    ]


@SUITE.case(
    "WP1",
    "Invalid tokens start a waiting period",
    "After three invalid tokens in a row (the first two forgiven, as the reference does) "
    "entry is blocked: even a genuine token is refused unchecked until the wait is over; "
    "then it is accepted. This makes guessing tokens too slow to succeed.",
    security=(
        "Without a waiting period nothing slows down guessing tokens, "
        "and a guessed token gives days nobody paid for."
    ),
)
def _wp1(p: Plan) -> list[Step]:
    steps = [*_fresh_start(p), *_invalid_run(p)]
    genuine = p.genuine()
    return [
        *steps,
        p.blocked(genuine),
        Check("Entry blocked: the waiting period runs", blocked="positive"),
        *_wait_it_out(p, genuine, "Wait until the waiting period has ended (reference: 2 minutes)"),
        Check("Entry open, no invalid tries counted", blocked="zero", invalid=0),
        Waiting(False, cleanup=True),
    ]


@SUITE.case(
    "WP2",
    "The waiting period doubles, up to 512 minutes",
    "Each further invalid token doubles the wait (reference: 2, 4, 8 ... minutes), up to "
    "512 minutes, where it stays. Against a simulator the hours of waiting take no real "
    "time.",
)
def _wp2(p: Plan) -> list[Step]:
    steps = [*_fresh_start(p), *_invalid_run(p)]
    invalid = p.invalid_token()
    for n in range(4, 14):
        steps += [
            Wait("Wait until the waiting period has ended", until_unblocked=True),
            p.refused(
                invalid,
                f"An invalid token, #{n} in a row",
                outcomes=frozenset({Outcome.INVALID}),
                invalid=n,
                wait="doubled",
            ),
        ]
    genuine = p.genuine()
    return [
        *steps,
        *_wait_it_out(
            p, genuine, "Wait until the waiting period has ended (reference: 512 minutes)"
        ),
        Waiting(False, cleanup=True),
    ]


def _blocked_after(p: Plan, power_cycle: PowerCycle) -> list[Step]:
    """Three invalid tokens, a power cycle, and the wait must still be running."""
    steps = [*_fresh_start(p), *_invalid_run(p)]
    genuine = p.genuine()
    return [
        *steps,
        power_cycle,
        p.blocked(genuine),
        Check("Entry still blocked after the power cycle", blocked="positive"),
        *_wait_it_out(p, genuine, "Wait until the waiting period has ended"),
        Waiting(False, cleanup=True),
    ]


@SUITE.case(
    "WP3",
    "The waiting period survives a power cycle",
    "A device switched off and on during its waiting period is still blocked afterwards. "
    "Otherwise pulling the battery would undo the protection against guessing.",
    security=_GUESSING.format(how="by switching the device off and on"),
)
def _wp3(p: Plan) -> list[Step]:
    return _blocked_after(
        p, PowerCycle("Switch the device off, wait 30 seconds, switch it on again", off_seconds=30)
    )


@SUITE.case(
    "WP4",
    "A genuine token ends the run of invalid tokens",
    "After a genuine token the count of invalid tries starts again from zero, so a "
    "customer who mistypes now and then is never blocked.",
)
def _wp4(p: Plan) -> list[Step]:
    invalid = p.invalid_token()
    steps = [*_fresh_start(p)]
    first, second = p.genuine(), p.genuine()
    return [
        *steps,
        Check("No invalid tries counted after the genuine token", invalid=0),
        p.refused(invalid, "An invalid token", outcomes=frozenset({Outcome.INVALID}), invalid=1),
        p.applied(first),
        Check("No invalid tries counted", invalid=0),
        p.refused(
            invalid,
            "The invalid token again",
            outcomes=frozenset({Outcome.INVALID}),
            invalid=1,
            wait="zero",
        ),
        p.applied(second),
        Waiting(False, cleanup=True),
    ]


@SUITE.case(
    "WP5",
    "The waiting period does not run while the device is off",
    "Three invalid tokens start a 2-minute wait; the device is then switched off for 2 "
    "hours. Switched on again it is still blocked: the wait runs only on the device's own "
    "powered-on time, not on its clock, so a long power-off does not end it.",
    security=_GUESSING.format(how="by switching the device off for a while"),
)
def _wp5(p: Plan) -> list[Step]:
    return _blocked_after(
        p,
        PowerCycle("Switch the device off, wait 2 hours, switch it on again", off_seconds=2 * HOUR),
    )


@SUITE.case(
    "WP6",
    "Moving the clock forward while off does not end the waiting period",
    "Three invalid tokens start a 2-minute wait; the device's clock is then moved a day "
    "forward while it is off. Switched on again it is still blocked. Only a simulator can "
    "move the clock: on a real device the case is left out.",
    security=_GUESSING.format(how="by moving the clock forward while the device is off"),
)
def _wp6(p: Plan) -> list[Step]:
    return _blocked_after(
        p,
        PowerCycle(
            "Switch the device off, move its clock 1 day forward, switch it on again",
            rtc_forward=DAY,
        ),
    )
