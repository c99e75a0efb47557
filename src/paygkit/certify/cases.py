"""The certification procedure: every case, what it checks and why, and its steps.

The general cases G1-G12 and the unordered-entry cases U1-U3 are those of the
reference test procedure (SPEC section 6).  The other suites check the
behaviours the specification asks for besides: the waiting period (WP),
counter synchronisation (CS), restricted digit mode (RD), the time divider
(TD), extended tokens (EX) and input edge cases (IN); and the rule paygkit
devices follow where the reference loses money (SPEC 3.1): each count is
accepted once in a device's life (XO), also in random orders of entry (RS).

A case is data: an id, a title, a statement in plain words, and a function
that builds its steps from a `Plan` (which makes the tokens and keeps the
count).  The G cases follow one another as the reference does (G3 adds to
G2's day); every other case starts from a state it sets itself, so that a
failure elsewhere does not spill into it.  A case whose failure gives away
time nobody paid for says so in `security`, and the report shows its failure
as a security failure, not as a difference from the reference.

Outside the WP suite no case enters more than two invalid tokens without a
genuine token in between, so the procedure also runs on a device whose
waiting period cannot be switched off (the reference forgives two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from paygkit.certify.params import CertParams
from paygkit.certify.plan import NotApplicableError, Plan
from paygkit.certify.sequence import random_sequence
from paygkit.certify.steps import (
    Check,
    Enter,
    Outcome,
    PowerCycle,
    Step,
    Wait,
    Waiting,
)
from paygkit.token import GeneratedToken, TokenType

HOUR = 3600
DAY = 24 * HOUR
FORWARD_WINDOW = 64

SUITES: dict[str, str] = {
    "G": "General procedure (reference G1-G12)",
    "U": "Unordered entry (reference U1-U3)",
    "IN": "Input edge cases",
    "RD": "Restricted digit mode",
    "TD": "Time divider",
    "EX": "Extended tokens",
    "CS": "Counter synchronisation",
    "XO": "Exactly once",
    "WP": "Waiting period",
    "RS": "Random sequences",
}


class SelectionError(ValueError):
    """A --suite / --skip name that is neither a suite nor a case."""


def _always(params: CertParams) -> str | None:
    return None


def _restricted_only(params: CertParams) -> str | None:
    if params.restricted:
        return None
    return (
        "not applicable: the device uses standard digits "
        "(certify a restricted model with --restricted)"
    )


def _standard_only(params: CertParams) -> str | None:
    if not params.restricted:
        return None
    return "not applicable: restricted-digit tokens are typed with keys 1-4 and have no 0"


def _refuses_reset(params: CertParams) -> str | None:
    if not params.accepts_reset_token:
        return None
    return (
        "not applicable: the firmware is configured to take the reset token while its count "
        "is below 64, as the reference does (--accepts-reset-token); CS4 checks that it is "
        "refused after that"
    )


@dataclass(frozen=True)
class Case:
    """One case of the procedure.

    `checks`: what it checks and why, in plain words.  `requires`: cases whose
    end state it starts from (selected along with it).  `applies`: None, or
    why the case does not apply to these device parameters.  `security`: for
    a case whose failure gives away time nobody paid for, what a failing
    device loses, in plain words (the report shows it with the failure).
    `seeded`: the steps come from the run's seed; a failure names it.
    """

    id: str
    suite: str
    title: str
    checks: str
    build: Callable[[Plan], list[Step]]
    applies: Callable[[CertParams], str | None] = _always
    requires: tuple[str, ...] = ()
    optional: bool = False
    security: str = ""
    seeded: bool = False


# --- G: the general procedure -----------------------------------------------------------------


def _g1(p: Plan) -> list[Step]:
    return [
        p.refused(
            p.invalid_token(),
            "An invalid token (right length, belongs to no count of this device)",
            outcomes=frozenset({Outcome.INVALID}),
        ),
        p.unchanged(),
    ]


def _g2(p: Plan) -> list[Step]:
    token = p.make(TokenType.SET_TIME, days=1)
    p.memo["G2"] = token
    return [p.applied(token), p.left_days(1)]


def _g3(p: Plan) -> list[Step]:
    token = p.make(TokenType.ADD_TIME, days=1)
    p.memo["G3"] = token
    return [p.applied(token), p.left_days(2)]


def _g4a(p: Plan) -> list[Step]:
    return [p.already_used(p.memo["G3"]), p.left_days(2)]


def _g4b(p: Plan) -> list[Step]:
    return [p.already_used(p.memo["G2"], what=f"The older {p.label(p.memo['G2'])}"), p.left_days(2)]


def _g5(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.SET_TIME, days=30)), p.left_days(30)]


def _g6(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.SET_TIME, days=0)), p.left(0)]


def _g7(p: Plan) -> list[Step]:
    steps: list[Step] = []
    for n in (1, 2, 3):
        token = p.make(TokenType.ADD_TIME, units=995)
        steps += [p.applied(token), p.left(n * p.seconds(995))]
    return steps


def _g8(p: Plan) -> list[Step]:
    steps: list[Step] = []
    for days in range(1, 22):
        token = p.make(TokenType.SET_TIME, days=days, after=p.count + 29)
        steps += [p.applied(token, within=5.0), p.left_days(days)]
    return steps


def _g9(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.DISABLE_PAYG)), p.unlimited()]


def _g10(p: Plan) -> list[Step]:
    return [p.applied(p.make(TokenType.SET_TIME, days=0)), p.left(0)]


def _g11(p: Plan) -> list[Step]:
    return [
        p.applied(p.make(TokenType.DISABLE_PAYG)),
        p.unlimited(),
        p.applied(p.make(TokenType.ADD_TIME, units=0)),
        p.unlimited(),
    ]


def _g12(p: Plan) -> list[Step]:
    return [
        p.applied(p.make(TokenType.SET_TIME, days=0)),
        p.left(0),
        Wait("Let 48 hours pass with the device switched on", seconds=48 * HOUR),
        p.applied(p.make(TokenType.ADD_TIME, days=1)),
        p.left_days(1),
    ]


# --- U: unordered entry ------------------------------------------------------------------------


def _u1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    first, second, third = (p.make(TokenType.ADD_TIME, days=d) for d in (1, 2, 3))
    steps += [p.applied(third), p.left_days(3)]
    steps += [p.applied(first), p.left_days(4)]
    steps += [p.applied(second), p.left_days(6)]
    return steps


def _u2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    older = p.make(TokenType.ADD_TIME, days=1)
    set_time = p.make(TokenType.SET_TIME, days=5)
    newer = p.make(TokenType.ADD_TIME, days=2)
    steps += [p.applied(set_time), p.left_days(5)]
    steps += [p.already_used(older, what=f"The older {p.label(older)}"), p.left_days(5)]
    steps += [p.applied(newer), p.left_days(7)]
    return steps


def _u3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    older = p.make(TokenType.ADD_TIME, days=1)
    disable = p.make(TokenType.DISABLE_PAYG)
    steps += [p.applied(disable), p.unlimited()]
    steps += [p.already_used(older, what=f"The older {p.label(older)}"), p.unlimited()]
    return steps


# --- IN: input edge cases ----------------------------------------------------------------------


def _in1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    steps += [
        p.refused(token.digits[:-1], f"{p.label(token)} with its last digit missing"),
        p.unchanged(),
        p.applied(token, what=f"{p.label(token)}, complete"),
        p.left_days(1),
    ]
    return steps


def _in2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    extra = "1" if p.params.restricted else "0"
    steps += [
        p.refused(token.digits + extra, f"{p.label(token)} with an extra digit {extra}"),
        p.unchanged(),
        p.applied(token, what=f"{p.label(token)}, as made"),
        p.left_days(1),
    ]
    return steps


def _in3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.leading_zero_token()
    zeros = len(token.digits) - len(token.digits.lstrip("0"))
    what = f"{p.label(token)}, which starts with {'0' * zeros}"
    steps += [p.applied(token, what=what), p.left(p.seconds(token.units or 0))]
    return steps


def _in4(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    slip = p.invalid_token()[:5]
    keys = f"*{slip}*{token.digits}#"
    what = f"A false start ({slip}), * again, then {p.label(token)}"
    steps += [p.sequence(keys, what, token), p.left_days(1)]
    return steps


def _in5(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    stray = p.invalid_token()[:3]
    keys = f"{stray}*{token.digits}#"
    what = f"Digits {stray} before the *, then {p.label(token)}"
    steps += [p.sequence(keys, what, token), p.left_days(1)]
    return steps


# --- RD: restricted digit mode -----------------------------------------------------------------


def _rd1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    steps += [p.applied(token, what=f"{p.label(token)}, typed key by key", via="keys")]
    steps.append(p.left_days(1))
    return steps


def _rd2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    bad = token.digits[:7] + "5" + token.digits[8:]
    steps += [
        p.refused(
            bad,
            f"{p.label(token)} with its 8th digit changed to 5",
            via="token",
            protocol_only=True,
        ),
        p.unchanged(),
        p.applied(token, what=f"{p.label(token)}, as made"),
        p.left_days(1),
    ]
    return steps


def _rd3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1)
    standard = p.standard_form(token.digits)
    steps += [
        p.refused(
            standard,
            f"{p.label(token)} in its 9-digit standard form",
            via="token",
            protocol_only=bool(set(standard) - set("1234")),
        ),
        p.unchanged(),
        p.applied(token, what=f"{p.label(token)}, in restricted form"),
        p.left_days(1),
    ]
    return steps


# --- TD: time divider --------------------------------------------------------------------------


def _td1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, units=1)
    steps += [p.applied(token), p.left(p.seconds(1))]
    return steps


def _td2(p: Plan) -> list[Step]:
    units = p.divider + p.divider // 2 if p.divider > 1 else 3
    token = p.make(TokenType.SET_TIME, units=units)
    return [p.applied(token), p.left(p.seconds(units))]


def _td3(p: Plan) -> list[Step]:
    first = p.make(TokenType.SET_TIME, units=1)
    second = p.make(TokenType.ADD_TIME, units=2)
    return [
        p.applied(first),
        p.left(p.seconds(1)),
        p.applied(second),
        p.left(p.seconds(1) + p.seconds(2)),
    ]


# --- EX: extended tokens -----------------------------------------------------------------------


def _ex1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, units=1000, extended=True)
    steps += [p.applied(token), p.left(p.seconds(1000))]
    return steps


def _ex2(p: Plan) -> list[Step]:
    token = p.make(TokenType.SET_TIME, days=2, extended=True)
    return [p.applied(token), p.left_days(2)]


def _ex3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1, extended=True)
    steps += [p.applied(token), p.left_days(1), p.already_used(token), p.left_days(1)]
    return steps


# --- CS: counter synchronisation ---------------------------------------------------------------


def _cs0(p: Plan) -> list[Step]:
    if p.device_count >= FORWARD_WINDOW:
        raise NotApplicableError(
            f"the device is at count {p.device_count}; past count 63 every device refuses the "
            "reset token (CS4), so this case needs a new device: run it first"
        )
    return [
        p.refused(
            p.reset_token(),
            f"The reset token (Counter Sync at count 0), the device at count {p.device_count}",
            outcomes=frozenset({Outcome.ALREADY_USED, Outcome.INVALID}),
        ),
        p.unchanged(),
    ]


def _cs1(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=1, after=p.device_count + FORWARD_WINDOW - 2)
    ahead = token.count - p.device_count
    steps += [
        p.applied(token, what=f"{p.label(token)}, {ahead} counts ahead of the device"),
        p.left_days(1),
    ]
    return steps


def _cs2(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    start = p.device_count
    far = p.make(TokenType.ADD_TIME, days=1, after=start + 78)
    sync = p.make(TokenType.COUNTER_SYNC, after=start + 68)
    steps += [
        p.refused(
            far.digits,
            f"{p.label(far)}, {far.count - start} counts ahead: beyond the window",
            outcomes=frozenset({Outcome.INVALID}),
        ),
        p.unchanged(),
        p.applied(sync, what=f"{p.label(sync)}, {sync.count - start} counts ahead"),
        p.count_is(sync.count),
        p.applied(far, what=f"{p.label(far)}, now within the window"),
        p.left_days(1),
    ]
    return steps


def _cs3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.ensure_count(100)]
    sync = p.make(TokenType.COUNTER_SYNC)
    steps += [
        p.applied(sync, what=f"{p.label(sync)}, the next count: the device syncs forward"),
        p.count_is(sync.count),
        p.already_used(sync, what=f"The same {p.label(sync)} again, at the device's count"),
        p.unchanged(),
    ]
    top = sync.count
    for behind in (20, 70):
        old = p.make(TokenType.COUNTER_SYNC, after=top - behind - 1)
        steps += [
            p.already_used(old, what=f"{p.label(old)}, {top - old.count} counts behind the device"),
            p.unchanged(),
            p.count_is(top),
        ]
    return steps


def _cs4(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.ensure_count(FORWARD_WINDOW + 6)]
    steps += [
        p.refused(
            p.reset_token(),
            f"The reset token (Counter Sync at count 0), the device at count {p.device_count}",
            outcomes=frozenset({Outcome.ALREADY_USED, Outcome.INVALID}),
        ),
        p.unchanged(),
    ]
    return steps


# --- XO: exactly once --------------------------------------------------------------------------


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


def _xo3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]

    def again(token: GeneratedToken, top: GeneratedToken) -> Enter:
        behind = top.count - token.count
        where = "the same count" if behind == 0 else f"{behind} counts behind"
        return p.already_used(token, what=f"{p.label(token)} again, {where}")

    first = p.make(TokenType.ADD_TIME, days=1)
    steps += [p.applied(first), p.left_days(1), again(first, first), p.left_days(1)]
    second = p.make(TokenType.ADD_TIME, days=1, after=first.count + 1)
    kept = p.make(TokenType.ADD_TIME, days=1, after=second.count + 1)
    steps += [
        p.applied(second, what=f"{p.label(second)}: the count moves by 2"),
        again(first, second),
        again(second, second),
        p.left_days(2),
    ]
    third = p.make(TokenType.ADD_TIME, days=1, after=second.count + 3)
    steps += [
        p.applied(third, what=f"{p.label(third)}: the count moves by 4"),
        again(first, third),
        again(second, third),
        p.left_days(3),
    ]
    fourth = p.make(TokenType.ADD_TIME, days=1, after=third.count + 7)
    steps += [
        p.applied(fourth, what=f"{p.label(fourth)}: the count moves by 8"),
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
        p.applied(fifth, what=f"{p.label(fifth)}: the count moves by 20"),
        again(fourth, fifth),
        again(kept, fifth),
        again(third, fifth),
        p.left_days(6),
    ]
    sync = p.make(TokenType.COUNTER_SYNC, after=fifth.count)
    steps += [
        p.applied(sync, what=f"{p.label(sync)}: the count moves by 1"),
        again(fifth, sync),
        again(sync, sync),
        p.count_is(sync.count),
        p.left_days(6),
    ]
    return steps


# --- WP: waiting period ------------------------------------------------------------------------


def _invalid_run(p: Plan, *, first: int = 1) -> list[Step]:
    """Three invalid tokens in a row: the first two forgiven, the third starts a wait."""
    invalid = p.invalid_token()
    steps: list[Step] = []
    for n in range(first, 4):
        steps.append(
            p.refused(
                invalid,
                f"An invalid token, #{n} in a row",
                outcomes=frozenset({Outcome.INVALID}),
                invalid=n,
                wait="positive" if n == 3 else "zero",
            )
        )
    return steps


def _fresh_start(p: Plan) -> list[Step]:
    # The genuine token goes first, while the waiting period is still off where it can be:
    # it also clears a wait an earlier failed case left behind.
    genuine = p.genuine()
    return [
        p.applied(genuine, what=f"{p.label(genuine)}: start with no invalid tries", setup=True),
        Waiting(True),
    ]


def _wp1(p: Plan) -> list[Step]:
    steps = [*_fresh_start(p), *_invalid_run(p)]
    genuine = p.genuine()
    steps += [
        p.blocked(genuine),
        Check("Entry blocked: the waiting period runs", blocked="positive"),
        Wait(
            "Wait until the waiting period has ended (reference: 2 minutes)", until_unblocked=True
        ),
    ]
    steps += [
        p.applied(genuine, what=f"{p.label(genuine)}, after the wait"),
        Check("Entry open, no invalid tries counted", blocked="zero", invalid=0),
        Waiting(False, cleanup=True),
    ]
    return steps


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
    steps += [
        Wait(
            "Wait until the waiting period has ended (reference: 512 minutes)", until_unblocked=True
        ),
        p.applied(genuine, what=f"{p.label(genuine)}, after the wait"),
        Waiting(False, cleanup=True),
    ]
    return steps


def _wp3(p: Plan) -> list[Step]:
    steps = [*_fresh_start(p), *_invalid_run(p)]
    genuine = p.genuine()
    steps += [
        PowerCycle("Switch the device off, wait 30 seconds, switch it on again", off_seconds=30),
        p.blocked(genuine),
        Check("Entry still blocked after the power cycle", blocked="positive"),
        Wait("Wait until the waiting period has ended", until_unblocked=True),
        p.applied(genuine, what=f"{p.label(genuine)}, after the wait"),
        Waiting(False, cleanup=True),
    ]
    return steps


def _wp4(p: Plan) -> list[Step]:
    invalid = p.invalid_token()
    steps = [*_fresh_start(p)]
    first, second = p.genuine(), p.genuine()
    steps += [
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
    return steps


def _blocked_after(p: Plan, power_cycle: PowerCycle) -> list[Step]:
    """Three invalid tokens, a power cycle, and the wait must still be running."""
    steps = [*_fresh_start(p), *_invalid_run(p)]
    genuine = p.genuine()
    steps += [
        power_cycle,
        p.blocked(genuine),
        Check("Entry still blocked after the power cycle", blocked="positive"),
        Wait("Wait until the waiting period has ended", until_unblocked=True),
        p.applied(genuine, what=f"{p.label(genuine)}, after the wait"),
        Waiting(False, cleanup=True),
    ]
    return steps


def _wp5(p: Plan) -> list[Step]:
    return _blocked_after(
        p,
        PowerCycle("Switch the device off, wait 2 hours, switch it on again", off_seconds=2 * HOUR),
    )


def _wp6(p: Plan) -> list[Step]:
    return _blocked_after(
        p,
        PowerCycle(
            "Switch the device off, move its clock 1 day forward, switch it on again",
            rtc_forward=DAY,
        ),
    )


# --- the procedure -----------------------------------------------------------------------------

_GUESSING = (
    "The waiting period is what makes guessing tokens hopeless. A customer who can cut it "
    "short {how} can try tokens far faster, and a guessed token gives days nobody paid for."
)

_DIVIDER_NOTE = (
    " With a time divider of 1 a unit is a day, so this case cannot tell a device that "
    "ignores the divider: certify each model with the divider it ships with."
)

CASES: tuple[Case, ...] = (
    Case(
        "CS0",
        "CS",
        "The reset token is refused on a new device",
        "The reset token (a Counter Sync token at count 0) would put the device back to its "
        "first count, so that every token it ever received works again. paygkit devices refuse "
        "it, also on a new device, where the reference still accepts it. This case runs first, "
        "while the device's count is below 64. A firmware configured to take the reset token "
        "is certified with --accepts-reset-token, which leaves this case out.",
        _cs0,
        applies=_refuses_reset,
        security=(
            "Anyone who learns the reset token can put the device back to "
            "count 0, and every token the customer ever entered then gives its days again, "
            "days nobody paid for."
        ),
    ),
    Case(
        "G1",
        "G",
        "An invalid token is refused",
        "A token that belongs to no count of this device is refused as invalid and changes "
        "nothing. A device that took it, or changed its time or count, could be unlocked by "
        "guessing.",
        _g1,
    ),
    Case(
        "G2",
        "G",
        "Set Time 1 day",
        "A Set Time token sets the time left to its value, here 1 day from now.",
        _g2,
    ),
    Case(
        "G3",
        "G",
        "Add Time 1 day adds to the time left",
        "An Add Time token adds its value to the time left: 1 day after G2's 1 day makes 2. "
        "Customers pay in instalments; each one must add up.",
        _g3,
        requires=("G2",),
    ),
    Case(
        "G4A",
        "G",
        "The same Add Time token again is refused as already used",
        "Entering G3's token a second time is refused as already used and the time left stays "
        "at 2 days. Otherwise one payment could be entered many times. The answer must be "
        "'already used', not 'invalid', so that the customer knows the token was taken.",
        _g4a,
        requires=("G2", "G3"),
        security=(
            "One payment can be entered again and again, and each entry "
            "gives its days again: days nobody paid for."
        ),
    ),
    Case(
        "G4B",
        "G",
        "An older Set Time token is refused as already used",
        "G2's Set Time token, older than the last token entered, is refused as already used "
        "and the time left stays at 2 days. An old Set Time token entered again would throw "
        "away the time paid for since.",
        _g4b,
        requires=("G2", "G3"),
    ),
    Case(
        "G5",
        "G",
        "Set Time 30 days replaces the time left",
        "A Set Time token replaces the time left (2 days) by its value (30 days); it does "
        "not add to it. Servers use Set Time to correct a device's time.",
        _g5,
    ),
    Case(
        "G6",
        "G",
        "Set Time 0 deactivates at once",
        "A Set Time token of 0 leaves no time: the device is inactive right away. This is "
        "how a server takes time back.",
        _g6,
    ),
    Case(
        "G7",
        "G",
        "Three Add Time tokens of 995 units add up",
        "995 units, the largest value of a standard token, three times: 995, 1990 then 2985 "
        "units of time left. The device must hold time beyond what one token can carry.",
        _g7,
        requires=("G6",),
    ),
    Case(
        "G8",
        "G",
        "21 Set Time tokens, each 30 counts after the last, each in under 5 s",
        "Set Time tokens of 1 to 21 days, each made 30 counts after the previous one, as if "
        "29 tokens in between had been lost. Each is accepted and sets its time, and the "
        "device answers each within 5 seconds: a device must search up to 64 counts ahead "
        "quickly enough for a customer at the keypad.",
        _g8,
    ),
    Case(
        "G9",
        "G",
        "Disable PAYG unlocks the device for good",
        "A Disable PAYG token makes the device active without limit: the customer has paid it off.",
        _g9,
    ),
    Case(
        "G10",
        "G",
        "Set Time 0 locks a disabled device again",
        "After Disable PAYG, a Set Time token of 0 turns PAYG back on with no time left, so "
        "a device disabled by mistake can be recovered.",
        _g10,
        requires=("G9",),
    ),
    Case(
        "G11",
        "G",
        "Add Time after Disable PAYG leaves the device unlocked",
        "An Add Time token on a device with PAYG disabled does not turn PAYG back on: the "
        "device stays unlocked. Optional in the reference procedure (skip it with --skip G11).",
        _g11,
        optional=True,
    ),
    Case(
        "G12",
        "G",
        "Late days are not counted",
        "With no time left and 48 hours gone by, an Add Time token of 1 day gives exactly 1 "
        "day: the days the device was off are not taken out of the new payment. Against a "
        "simulator the 48 hours take no real time.",
        _g12,
    ),
    Case(
        "U1",
        "U",
        "Add Time tokens are accepted in any order",
        "Three Add Time tokens of 1, 2 and 3 days, entered third, first, second: all are "
        "accepted and add up to 6 days. Customers receive several tokens and do not always "
        "enter them in the order they were made.",
        _u1,
    ),
    Case(
        "U2",
        "U",
        "Set Time makes older Add Time tokens obsolete",
        "Add Time 1 day, Set Time 5 days and Add Time 2 days are made in that order; the Set "
        "Time is entered first. The older Add Time is then refused as already used (the Set "
        "Time already accounts for it) and the newer one is accepted: 7 days.",
        _u2,
        security=(
            "The days of an Add Time token that a later Set Time already "
            "accounts for are given a second time: days nobody paid for."
        ),
    ),
    Case(
        "U3",
        "U",
        "Disable PAYG makes older Add Time tokens obsolete",
        "Add Time and Disable PAYG are made in that order and the Disable PAYG is entered "
        "first; the older Add Time is then refused as already used.",
        _u3,
    ),
    Case(
        "IN1",
        "IN",
        "A token with a digit missing is refused",
        "A token typed with its last digit missing is refused and changes nothing; the "
        "complete token is then accepted. A device that padded or guessed the missing digit "
        "would accept tokens nobody made.",
        _in1,
    ),
    Case(
        "IN2",
        "IN",
        "A token with an extra digit is refused",
        "A token typed with one digit too many is refused and changes nothing; the token as "
        "made is then accepted. A device that ignored extra digits would hide typing "
        "mistakes.",
        _in2,
    ),
    Case(
        "IN3",
        "IN",
        "A token starting with 0 is accepted",
        "Tokens are written with their leading zeros. A token that starts with 0 is accepted "
        "as typed; a device that stored the token as a number and counted its digits would "
        "refuse about one token in ten.",
        _in3,
        applies=_standard_only,
    ),
    Case(
        "IN4",
        "IN",
        "Pressing * again starts the token afresh",
        "A false start, then * and the whole token, then #: the token is accepted. Pressing * "
        "is how a customer corrects a mistake on the keypad.",
        _in4,
    ),
    Case(
        "IN5",
        "IN",
        "Digits typed before * are ignored",
        "Digits pressed before * are not part of the token: the token typed after * is "
        "accepted (reference behaviour).",
        _in5,
    ),
    Case(
        "RD1",
        "RD",
        "A restricted-digit token typed on keys 1-4 is accepted",
        "In restricted digit mode tokens are 15 digits, each 1-4. Typed key by key, the token "
        "is accepted with its value.",
        _rd1,
        applies=_restricted_only,
    ),
    Case(
        "RD2",
        "RD",
        "A digit other than 1-4 is refused",
        "A restricted token with a 5 in it is not a token of this device: it is refused and "
        "changes nothing, and the right token is then accepted. (Protocol only: the keypad "
        "has no key 5.)",
        _rd2,
        applies=_restricted_only,
    ),
    Case(
        "RD3",
        "RD",
        "The 9-digit form of a token is refused",
        "The same token written as 9 standard digits is refused by a restricted device; only "
        "the 15-digit form is accepted. A device that took both forms would take tokens from "
        "a server set up for the wrong mode.",
        _rd3,
        applies=_restricted_only,
    ),
    Case(
        "TD1",
        "TD",
        "One unit is a day divided by the time divider",
        "An Add Time token of 1 unit gives 1 day divided by the time divider (6 hours with a "
        "divider of 4)." + _DIVIDER_NOTE,
        _td1,
    ),
    Case(
        "TD2",
        "TD",
        "Set Time in units that are not whole days",
        "A Set Time token of one and a half days' worth of units sets exactly that much time."
        + _DIVIDER_NOTE,
        _td2,
    ),
    Case(
        "TD3",
        "TD",
        "Units add up",
        "Set Time 1 unit then Add Time 2 units: three units of time left." + _DIVIDER_NOTE,
        _td3,
    ),
    Case(
        "EX1",
        "EX",
        "An extended Add Time token carries more than 995 units",
        "Extended tokens (12 digits, 20 restricted) carry values up to 999 999; an Add Time "
        "of 1000 units is accepted with its value. Extended tokens are not part of the "
        "standard: skip the suite (--skip EX) if the firmware does not take them.",
        _ex1,
        optional=True,
    ),
    Case(
        "EX2",
        "EX",
        "An extended Set Time token sets the time",
        "An extended Set Time token of 2 days sets 2 days left, replacing the time there was: "
        "a device that takes extended tokens must treat their Set Time as it treats the "
        "standard one.",
        _ex2,
        optional=True,
    ),
    Case(
        "EX3",
        "EX",
        "An extended token is accepted once only",
        "An extended token entered a second time is refused as already used: extended tokens "
        "share the device's count with standard ones and must be protected against being "
        "entered twice in the same way.",
        _ex3,
        optional=True,
    ),
    Case(
        "CS1",
        "CS",
        "A token up to 64 counts ahead is accepted",
        "When tokens are lost (never entered), the next one is further ahead of the device's "
        "count. A token 63-64 counts ahead is still accepted.",
        _cs1,
    ),
    Case(
        "CS2",
        "CS",
        "Counter Sync brings a device forward",
        "A token made more than 64 counts ahead is refused as invalid. A Counter Sync token, "
        "which a device takes up to 100 counts ahead, moves the device's count forward; the "
        "refused token is then accepted. This is how a server recovers a device left behind.",
        _cs2,
    ),
    Case(
        "CS3",
        "CS",
        "A Counter Sync token below the device's count is refused",
        "A Counter Sync token is taken only above the device's count. Entered again at the "
        "device's count, or made 20 or 70 counts behind it, it is refused as already used and "
        "changes nothing: the count stays where it is. The reference takes one up to 64 counts "
        "behind and moves the count back, after which the tokens above it can be entered again "
        "(see XO1); a paygkit device never moves its count back.",
        _cs3,
        security=(
            "A device that moves its count back on an old Counter Sync token "
            "takes the Add Time tokens above it again, and each gives its days again: days "
            "nobody paid for."
        ),
    ),
    Case(
        "CS4",
        "CS",
        "The reset token is refused past its window",
        "The reset token (Counter Sync at count 0) is refused once the device's count is 64 or "
        "more, also on a firmware configured to take it on a new device. A device that accepted "
        "it later could be put back to count 0 by anyone who learnt the token, and every old "
        "token would work again.",
        _cs4,
        security=(
            "Anyone who learns the reset token can put the device back to "
            "count 0, and every token the customer ever entered then gives its days again, "
            "days nobody paid for."
        ),
    ),
    Case(
        "XO1",
        "XO",
        "An old Counter Sync token cannot replay the Add Time tokens after it",
        "A customer keeps a Counter Sync token and the two Add Time tokens of 30 days made "
        "after it, and enters all three, then the same three again, four rounds. The first "
        "round gives 60 days; every later entry is refused as already used, the count stays at "
        "the last Add Time's, and the time left stays at the 60 days paid for. A device built "
        "on the reference decoder gives 240 days after four rounds, and more with each round.",
        _xo1,
        security=(
            "Not a difference from the reference: a customer who kept one old Counter Sync token "
            "gets the same Add Time tokens' days again and again, without limit: days nobody "
            "paid for. A device built on the reference decoder has this hole; its firmware must "
            "follow the exactly-once rule (SPEC 3.1)."
        ),
    ),
    Case(
        "XO2",
        "XO",
        "An old Counter Sync token cannot reopen older Add Time tokens",
        "An Add Time token of 5 days made 26 counts ahead is entered; then an older Counter "
        "Sync token and an older Add Time token of 1 day, made between them, three times. The "
        "Counter Sync is refused and the count stays; the Add Time, more than 16 counts behind, "
        "is refused as already used each time: 5 days left. The reference moves the count back "
        "to the Counter Sync and then takes the 1-day token three times.",
        _xo2,
        security=(
            "An old Counter Sync token lets the customer enter an old Add "
            "Time token as many times as they like, each time for days nobody paid for."
        ),
    ),
    Case(
        "XO3",
        "XO",
        "Tokens are accepted once, however far the count has moved",
        "Add Time tokens are entered again after the device's count moved by 1, 2, 4, 8 and "
        "20 counts: within the 16 counts below the device's count, where older tokens may "
        "still be entered once, and beyond. Each is refused as already used; a token never "
        "entered within those 16 counts is accepted once, then refused. A device that loses "
        "track of its used counts when the count jumps takes paid tokens again.",
        _xo3,
        security=(
            "Add Time tokens already entered are taken again after the count "
            "has moved, and each gives its days again: days nobody paid for."
        ),
    ),
    Case(
        "WP1",
        "WP",
        "Invalid tokens start a waiting period",
        "After three invalid tokens in a row (the first two forgiven, as the reference does) "
        "entry is blocked: even a genuine token is refused unchecked until the wait is over; "
        "then it is accepted. This makes guessing tokens too slow to succeed.",
        _wp1,
        security=(
            "Without a waiting period nothing slows down guessing tokens, "
            "and a guessed token gives days nobody paid for."
        ),
    ),
    Case(
        "WP2",
        "WP",
        "The waiting period doubles, up to 512 minutes",
        "Each further invalid token doubles the wait (reference: 2, 4, 8 ... minutes), up to "
        "512 minutes, where it stays. Against a simulator the hours of waiting take no real "
        "time.",
        _wp2,
    ),
    Case(
        "WP3",
        "WP",
        "The waiting period survives a power cycle",
        "A device switched off and on during its waiting period is still blocked afterwards. "
        "Otherwise pulling the battery would undo the protection against guessing.",
        _wp3,
        security=_GUESSING.format(how="by switching the device off and on"),
    ),
    Case(
        "WP4",
        "WP",
        "A genuine token ends the run of invalid tokens",
        "After a genuine token the count of invalid tries starts again from zero, so a "
        "customer who mistypes now and then is never blocked.",
        _wp4,
    ),
    Case(
        "WP5",
        "WP",
        "The waiting period does not run while the device is off",
        "Three invalid tokens start a 2-minute wait; the device is then switched off for 2 "
        "hours. Switched on again it is still blocked: the wait runs only on the device's own "
        "powered-on time, not on its clock, so a long power-off does not end it.",
        _wp5,
        security=_GUESSING.format(how="by switching the device off for a while"),
    ),
    Case(
        "WP6",
        "WP",
        "Moving the clock forward while off does not end the waiting period",
        "Three invalid tokens start a 2-minute wait; the device's clock is then moved a day "
        "forward while it is off. Switched on again it is still blocked. Only a simulator can "
        "move the clock: on a real device the case is left out.",
        _wp6,
        security=_GUESSING.format(how="by moving the clock forward while the device is off"),
    ),
    Case(
        "RS1",
        "RS",
        "Tokens entered in random orders get the answers of the paygkit model",
        "Genuine tokens of every type (Add Time, Set Time, Disable PAYG, Counter Sync) are made "
        "in count order as a server makes them, some counts skipped as when tokens are lost, "
        "and entered in a random order: out of order, again, after the count jumped by 1, 2, 4 "
        "or more, old Counter Sync tokens. After each entry the answer, the count and the time "
        "left (or unlimited) must be those of paygkit's model of the protocol. The run's seed "
        "is in the report: the same seed (--seed) gives the same sequence again; "
        "--sequence-length makes it longer for a release run.",
        random_sequence,
        seeded=True,
    ),
)

_BY_ID = {case.id: case for case in CASES}


def case_by_id(case_id: str) -> Case:
    return _BY_ID[case_id]


def _names(words: Iterable[str]) -> list[str]:
    names: list[str] = []
    for word in words:
        names += [part.strip().upper() for part in word.split(",") if part.strip()]
    return names


def select_cases(
    include: Sequence[str] = (), exclude: Sequence[str] = (), cases: Sequence[Case] = CASES
) -> list[Case]:
    """The cases to run, in procedure order: suites or case ids, comma separated or repeated.

    A selected case brings the cases it starts from (`requires`).  Excluding
    wins over including.
    """
    by_id = {case.id: case for case in cases}

    def expand(name: str) -> set[str]:
        if name in by_id:
            return {name}
        if name in SUITES:
            return {case.id for case in cases if case.suite == name}
        raise SelectionError(
            f"{name!r} is neither a suite ({', '.join(SUITES)}) nor a case id (G1, U2, WP3, ...)"
        )

    chosen: set[str] = set()
    for name in _names(include) or list(SUITES):
        chosen |= expand(name)
    pending = list(chosen)
    while pending:
        for required in by_id[pending.pop()].requires:
            if required not in chosen:
                chosen.add(required)
                pending.append(required)
    for name in _names(exclude):
        chosen -= expand(name)
    return [case for case in cases if case.id in chosen]
