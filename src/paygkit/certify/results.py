"""What a certification run found: per case a verdict, the steps and the protocol transcript.

The transcript holds the lines as sent and received, with the key blanked out
by the link (`paygkit.device.host`); nothing here ever holds a key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

StepStatus = Literal["passed", "failed", "not run"]


class Verdict(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class StepRecord:
    """One step as carried out: what it did, what was expected, what the device showed."""

    action: str
    expected: str
    observed: str = ""
    status: StepStatus = "not run"
    setup: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "expected": self.expected,
            "observed": self.observed,
            "status": self.status,
            "setup": self.setup,
        }


@dataclass
class CaseResult:
    """The outcome of one case.  `message`: why it failed or was skipped.

    `security`: for a case whose failure gives away time nobody paid for,
    what a failing device loses, in plain words (empty for other cases).
    """

    id: str
    suite: str
    title: str
    checks: str
    optional: bool = False
    security: str = ""
    verdict: Verdict = Verdict.SKIPPED
    message: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    seconds: float = 0.0
    count_before: int | None = None
    count_after: int | None = None

    @property
    def security_failure(self) -> bool:
        """Failed, and the failure gives away time nobody paid for."""
        return self.verdict is Verdict.FAILED and bool(self.security)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suite": self.suite,
            "title": self.title,
            "checks": self.checks,
            "optional": self.optional,
            "security": self.security,
            "security_failure": self.security_failure,
            "status": self.verdict.value,
            "message": self.message,
            "seconds": round(self.seconds, 6),
            "count_before": self.count_before,
            "count_after": self.count_after,
            "steps": [step.as_dict() for step in self.steps],
            "transcript": list(self.transcript),
        }


@dataclass
class Report:
    """A whole run: the device, its parameters (no key), the notes and every case."""

    target: str
    device: dict[str, str]
    parameters: dict[str, Any]
    entry: str
    interactive: bool
    started: str
    paygkit_version: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    preparation: list[str] = field(default_factory=list)
    cases: list[CaseResult] = field(default_factory=list)
    server_count: int | None = None  # the count the server must continue from
    device_count: int | None = None  # the count the device reported at the end

    def totals(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for case in self.cases:
            counts[case.verdict.value] += 1
        counts["total"] = len(self.cases)
        return counts

    @property
    def passed(self) -> bool:
        """True when no case failed (skipped cases do not fail a run)."""
        return all(case.verdict is not Verdict.FAILED for case in self.cases)

    def failed(self) -> list[CaseResult]:
        return [case for case in self.cases if case.verdict is Verdict.FAILED]

    def security_failures(self) -> list[CaseResult]:
        """The failed cases that give away time nobody paid for."""
        return [case for case in self.cases if case.security_failure]

    def case(self, case_id: str) -> CaseResult:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise KeyError(case_id)
