"""Step shapes that cases of several suites share."""

from __future__ import annotations

from paygkit.certify.plan import Plan
from paygkit.certify.steps import Entry, Step
from paygkit.token import GeneratedToken, TokenType


def start_with_add_time(
    p: Plan,
    *,
    days: int | None = None,
    units: int | None = None,
    after: int | None = None,
    extended: bool = False,
) -> tuple[list[Step], GeneratedToken]:
    """The steps of a known start (Set Time 0), and the Add Time token the case is about.

    The token is made after the start's, so it is the newer of the two.
    """
    steps: list[Step] = [*p.baseline()]
    token = p.make(TokenType.ADD_TIME, days=days, units=units, after=after, extended=extended)
    return steps, token


def wrong_form_then_token(
    p: Plan,
    token: GeneratedToken,
    wrong: str,
    *,
    wrong_what: str,
    right_what: str,
    via: Entry = "auto",
    protocol_only: bool = False,
) -> list[Step]:
    """A wrong form of a 1-day `token` refused without effect, then the token itself accepted.

    The refusal must not use the token up: the same token, typed right, still
    gives its day.
    """
    return [
        p.refused(wrong, wrong_what, via=via, protocol_only=protocol_only),
        p.unchanged(),
        p.applied(token, what=right_what),
        p.left_days(1),
    ]
