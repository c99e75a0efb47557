"""The certification procedure: every case, what it checks and why, and its steps.

The general cases G1-G12 and the unordered-entry cases U1-U3 are those of the
reference test procedure (SPEC section 6).  The other suites check the
behaviours the specification asks for besides: the waiting period (WP),
counter synchronisation (CS), restricted digit mode (RD), the time divider
(TD), extended tokens (EX) and input edge cases (IN); and the rule paygkit
devices follow where the reference loses money (SPEC 3.1): each count is
accepted once in a device's life (XO), also in random orders of entry (RS).

Each suite is a module of this package, where every case is declared next to
the function that builds its steps (`case.Suite.case`).  This module puts
them in procedure order and selects among them.  Every case but the G cases
starts from a state it sets itself, so that a failure elsewhere does not
spill into it.  A case whose failure gives away time nobody paid for says so
in `security`, and the report shows its failure as a security failure, not
as a difference from the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from paygkit.certify.cases import (
    counter_sync,
    divider,
    exactly_once,
    extended,
    general,
    input_edges,
    random_order,
    restricted,
    unordered,
    waiting,
)
from paygkit.certify.cases.case import Case

__all__ = ["CASES", "SUITES", "Case", "SelectionError", "select_cases"]

_SUITES_IN_ORDER = (
    general.SUITE,
    unordered.SUITE,
    input_edges.SUITE,
    restricted.SUITE,
    divider.SUITE,
    extended.SUITE,
    counter_sync.SUITE,
    exactly_once.SUITE,
    waiting.SUITE,
    random_order.SUITE,
)
# CS0 needs the device's count below 64, so it runs before any case moves the count.
_RUNS_FIRST = ("CS0",)

SUITES: dict[str, str] = {suite.id: suite.name for suite in _SUITES_IN_ORDER}

_DECLARED = [case for suite in _SUITES_IN_ORDER for case in suite.cases]
CASES: tuple[Case, ...] = (
    *(case for case in _DECLARED if case.id in _RUNS_FIRST),
    *(case for case in _DECLARED if case.id not in _RUNS_FIRST),
)


class SelectionError(ValueError):
    """A --suite / --skip name that is neither a suite nor a case."""


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
