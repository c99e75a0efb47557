"""What a case is, the suite it belongs to, and when it applies to a device.

A case is data: an id, a title, a statement in plain words, and a function
that builds its steps from a `Plan` (which makes the tokens and keeps the
count).  Each suite's module declares its cases with `Suite.case` right
above the function that builds them, so a case reads in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from paygkit.certify.params import CertParams
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step
from paygkit.token import SECONDS_PER_DAY

HOUR = 3600
DAY = SECONDS_PER_DAY

Build = Callable[[Plan], list[Step]]
Applies = Callable[[CertParams], str | None]


def always(params: CertParams) -> str | None:
    return None


def restricted_only(params: CertParams) -> str | None:
    if params.restricted:
        return None
    return (
        "not applicable: the device uses standard digits "
        "(certify a restricted model with --restricted)"
    )


def standard_only(params: CertParams) -> str | None:
    if not params.restricted:
        return None
    return "not applicable: restricted-digit tokens are typed with keys 1-4 and have no 0"


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
    build: Build
    applies: Applies = always
    requires: tuple[str, ...] = ()
    optional: bool = False
    security: str = ""
    seeded: bool = False


@dataclass
class Suite:
    """A suite's id and name, and its cases in the order they are declared."""

    id: str
    name: str
    cases: list[Case] = field(default_factory=list)

    def case(
        self,
        case_id: str,
        title: str,
        checks: str,
        *,
        applies: Applies = always,
        requires: tuple[str, ...] = (),
        optional: bool = False,
        security: str = "",
        seeded: bool = False,
    ) -> Callable[[Build], Build]:
        """Declare the case the decorated function builds; the function is returned as it is."""

        def declare(build: Build) -> Build:
            self.cases.append(
                Case(
                    case_id,
                    self.id,
                    title,
                    checks,
                    build,
                    applies=applies,
                    requires=requires,
                    optional=optional,
                    security=security,
                    seeded=seeded,
                )
            )
            return build

        return declare
