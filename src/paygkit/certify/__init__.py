"""Certification: the test procedure for PAYG devices, run through the device protocol.

The procedure (`cases`) is data: each case has an id (G1-G12 and U1-U3 of
the reference procedure, and the IN, RD, TD, EX, CS, XO, WP and RS suites), a
title, a statement of what it checks and why, and steps built from the device
parameters; RS1's steps also from the run's seed (`sequence`).  A case whose
failure gives away time nobody paid for is reported as a security failure.
`Runner` carries the steps out against any device that speaks the protocol
(`paygkit.device.host.open_link`), `sheet` prints them for a person with a
keypad, and `report` writes what happened for people (terminal, HTML) and
machines (JUnit XML, JSON).  The device key never appears in any output.

    >>> from paygkit.certify import CertParams, certify
    >>> params = CertParams.create("bc41ec9530f6dac86b1a29ab82edc5fb", 516959010)
    >>> report = certify("sim:", params, suites=["G"])
    >>> report.passed, report.totals()["passed"]
    (True, 13)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from paygkit.certify.cases import CASES, SUITES, Case, SelectionError, select_cases
from paygkit.certify.params import CertParams, ParamsError, params_from_device_list
from paygkit.certify.results import CaseResult, Report, StepRecord, Verdict
from paygkit.certify.runner import CertificationError, EntryMode, Operator, Runner
from paygkit.device.host import open_link


def certify(
    target: str,
    params: CertParams,
    *,
    suites: Sequence[str] = (),
    skip: Sequence[str] = (),
    entry: EntryMode = "token",
    operator: Operator | None = None,
    timeout: float = 5.0,
    on_case: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run the procedure (or the chosen suites / cases) against the device at `target`."""
    cases = select_cases(suites, skip)
    with open_link(target, timeout=timeout) as link:
        runner = Runner(link, params, entry=entry, operator=operator, on_case=on_case)
        return runner.run(cases)


__all__ = [
    "CASES",
    "SUITES",
    "Case",
    "CaseResult",
    "CertParams",
    "CertificationError",
    "Operator",
    "ParamsError",
    "Report",
    "Runner",
    "SelectionError",
    "StepRecord",
    "Verdict",
    "certify",
    "params_from_device_list",
    "select_cases",
]
