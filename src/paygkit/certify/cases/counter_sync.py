"""CS: counter synchronisation: how far ahead a device looks, and the reset token.

CS0 needs a new device (count below 64): the registry runs it before every
other case.
"""

from __future__ import annotations

from paygkit.certify.cases.case import Suite
from paygkit.certify.cases.shared import start_with_add_time
from paygkit.certify.params import CertParams
from paygkit.certify.plan import NotApplicableError, Plan
from paygkit.certify.steps import Outcome, Step
from paygkit.token import DecodeWindows, TokenType

SUITE = Suite("CS", "Counter synchronisation")

# The reference's window ahead of the device's count; the reset token is taken only below it.
FORWARD_WINDOW = DecodeWindows().forward

_RESET_TOKEN_LOSS = (
    "Anyone who learns the reset token can put the device back to "
    "count 0, and every token the customer ever entered then gives its days again, "
    "days nobody paid for."
)


def _refuses_reset(params: CertParams) -> str | None:
    if not params.accepts_reset_token:
        return None
    return (
        "not applicable: the firmware is configured to take the reset token while its count "
        "is below 64, as the reference does (--accepts-reset-token); CS4 checks that it is "
        "refused after that"
    )


def _reset_token_refused(p: Plan) -> list[Step]:
    return [
        p.refused(
            p.reset_token(),
            f"The reset token (Counter Sync at count 0), the device at count {p.device_count}",
            outcomes=frozenset({Outcome.ALREADY_USED, Outcome.INVALID}),
        ),
        p.unchanged(),
    ]


@SUITE.case(
    "CS0",
    "The reset token is refused on a new device",
    "The reset token (a Counter Sync token at count 0) would put the device back to its "
    "first count, so that every token it ever received works again. paygkit devices refuse "
    "it, also on a new device, where the reference still accepts it. This case runs first, "
    "while the device's count is below 64. A firmware configured to take the reset token "
    "is certified with --accepts-reset-token, which leaves this case out.",
    applies=_refuses_reset,
    security=_RESET_TOKEN_LOSS,
)
def _cs0(p: Plan) -> list[Step]:
    if p.device_count >= FORWARD_WINDOW:
        raise NotApplicableError(
            f"the device is at count {p.device_count}; past count 63 every device refuses the "
            "reset token (CS4), so this case needs a new device: run it first"
        )
    return _reset_token_refused(p)


@SUITE.case(
    "CS1",
    "A token up to 64 counts ahead is accepted",
    "When tokens are lost (never entered), the next one is further ahead of the device's "
    "count. A token 63-64 counts ahead is still accepted.",
)
def _cs1(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1, after=p.device_count + FORWARD_WINDOW - 2)
    ahead = token.count - p.device_count
    steps += [
        p.applied(token, what=f"{p.label(token)}, {ahead} counts ahead of the device"),
        p.left_days(1),
    ]
    return steps


@SUITE.case(
    "CS2",
    "Counter Sync brings a device forward",
    "A token made more than 64 counts ahead is refused as invalid. A Counter Sync token, "
    "which a device takes up to 100 counts ahead, moves the device's count forward; the "
    "refused token is then accepted. This is how a server recovers a device left behind.",
)
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


@SUITE.case(
    "CS3",
    "A Counter Sync token below the device's count is refused",
    "A Counter Sync token is taken only above the device's count. Entered again at the "
    "device's count, or made 20 or 70 counts behind it, it is refused as already used and "
    "changes nothing: the count stays where it is. The reference takes one up to 64 counts "
    "behind and moves the count back, after which the tokens above it can be entered again "
    "(see XO1); a paygkit device never moves its count back.",
    security=(
        "A device that moves its count back on an old Counter Sync token "
        "takes the Add Time tokens above it again, and each gives its days again: days "
        "nobody paid for."
    ),
)
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


@SUITE.case(
    "CS4",
    "The reset token is refused past its window",
    "The reset token (Counter Sync at count 0) is refused once the device's count is 64 or "
    "more, also on a firmware configured to take it on a new device. A device that accepted "
    "it later could be put back to count 0 by anyone who learnt the token, and every old "
    "token would work again.",
    security=_RESET_TOKEN_LOSS,
)
def _cs4(p: Plan) -> list[Step]:
    return [*p.ensure_count(FORWARD_WINDOW + 6), *_reset_token_refused(p)]
