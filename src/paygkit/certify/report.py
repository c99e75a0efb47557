"""Writing a certification report: terminal summary, HTML for people, JUnit XML and JSON.

The HTML page is self-contained (inline style, no script, no link to anything
outside it) and prints cleanly.  JUnit XML puts each suite in a <testsuite>
and each case in a <testcase> with <failure> or <skipped>, the transcript in
<system-out>, so that CI systems show it as test results.  None of them can
hold the key: the report never had it.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from paygkit.certify.cases import SUITES
from paygkit.certify.results import CaseResult, Report, Verdict

JSON_FORMAT = "paygkit-certification-report"
JSON_VERSION = 1

_VERDICT_STYLE = {Verdict.PASSED: "green", Verdict.FAILED: "bold red", Verdict.SKIPPED: "yellow"}
_VERDICT_MARK = {Verdict.PASSED: "PASS", Verdict.FAILED: "FAIL", Verdict.SKIPPED: "SKIP"}
# XML 1.0 has no place for most control characters; a garbled device line may hold some.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("?", text)


def _suite_name(suite: str) -> str:
    return f"{suite}: {SUITES.get(suite, suite)}"


# --- JSON --------------------------------------------------------------------------------------


def report_dict(report: Report) -> dict[str, Any]:
    """The report as JSON data.

    Top level: `format` ("paygkit-certification-report"), `version` (1), `paygkit`,
    `started` (ISO 8601, UTC), `seconds`, `target`, `device` (the HELLO fields
    protocol, model, firmware, simulator), `parameters` (serial, time_divider,
    restricted_digits, starting_count, test_code (whether there is one),
    accepts_reset_token, seed and sequence_length of the random sequence;
    never the key), `entry` ("token" / "keys"), `interactive`, `passed`,
    `summary` (passed, failed, skipped, total, security_failures),
    `server_count`, `device_count`, `notes`, `preparation` (transcript), `cases`.
    Each case: `id`, `suite`, `title`, `checks`, `optional`, `security` (what a
    failing device gives away; "" when the case is not about that),
    `security_failure` (failed, and `security` says what that costs), `status`
    ("passed", "failed", "skipped"), `message`, `seconds`, `count_before`,
    `count_after`,
    `steps` (`action`, `expected`, `observed`, `status` "passed" / "failed" /
    "not run", `setup`) and `transcript` (lines sent "> ..." and received "< ...").
    """
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "paygkit": report.paygkit_version,
        "started": report.started,
        "seconds": round(report.seconds, 6),
        "target": report.target,
        "device": dict(report.device),
        "parameters": dict(report.parameters),
        "entry": report.entry,
        "interactive": report.interactive,
        "passed": report.passed,
        "summary": {**report.totals(), "security_failures": len(report.security_failures())},
        "server_count": report.server_count,
        "device_count": report.device_count,
        "notes": list(report.notes),
        "preparation": list(report.preparation),
        "cases": [case.as_dict() for case in report.cases],
    }


def report_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


# --- JUnit XML ---------------------------------------------------------------------------------


SECURITY_HEADLINE = "SECURITY FAILURE"


def failure_words(case: CaseResult) -> str:
    """Why a failed case failed; for a security case, first what the failure gives away."""
    if case.security_failure:
        return f"{SECURITY_HEADLINE}. {case.security} {case.message}"
    return case.message


def _case_details(case: CaseResult) -> str:
    lines = [case.checks, ""]
    if case.security_failure:
        lines[1:1] = [f"{SECURITY_HEADLINE}: {case.security}", ""]
    for number, step in enumerate(case.steps, 1):
        lines.append(f"{number}. [{step.status}] {step.action}")
        lines.append(f"   expected: {step.expected}")
        if step.observed:
            lines.append(f"   observed: {step.observed}")
    return "\n".join(lines)


def junit_xml(report: Report) -> str:
    """The report as JUnit XML: one <testsuite> per suite, one <testcase> per case."""
    totals = report.totals()
    root = ET.Element(
        "testsuites",
        {
            "name": "paygkit certify",
            "tests": str(totals["total"]),
            "failures": str(totals["failed"]),
            "errors": "0",
            "skipped": str(totals["skipped"]),
            "time": f"{report.seconds:.3f}",
        },
    )
    suites: dict[str, list[CaseResult]] = {}
    for case in report.cases:
        suites.setdefault(case.suite, []).append(case)
    for suite, cases in suites.items():
        element = ET.SubElement(
            root,
            "testsuite",
            {
                "name": _suite_name(suite),
                "tests": str(len(cases)),
                "failures": str(sum(c.verdict is Verdict.FAILED for c in cases)),
                "errors": "0",
                "skipped": str(sum(c.verdict is Verdict.SKIPPED for c in cases)),
                "time": f"{sum(c.seconds for c in cases):.3f}",
                "timestamp": report.started,
            },
        )
        properties = ET.SubElement(element, "properties")
        for name, value in (
            ("target", report.target),
            *(("device." + k, v) for k, v in report.device.items()),
            *(("parameter." + k, str(v)) for k, v in report.parameters.items()),
        ):
            ET.SubElement(properties, "property", {"name": name, "value": _xml_text(str(value))})
        for case in cases:
            testcase = ET.SubElement(
                element,
                "testcase",
                {
                    "classname": f"paygkit.certify.{case.suite}",
                    "name": _xml_text(f"{case.id} {case.title}"),
                    "time": f"{case.seconds:.3f}",
                },
            )
            if case.verdict is Verdict.FAILED:
                kind = "SecurityFailure" if case.security_failure else "CertificationFailure"
                failure = ET.SubElement(
                    testcase,
                    "failure",
                    {"message": _xml_text(failure_words(case)), "type": kind},
                )
                failure.text = _xml_text(_case_details(case))
            elif case.verdict is Verdict.SKIPPED:
                ET.SubElement(testcase, "skipped", {"message": _xml_text(case.message)})
            if case.transcript:
                out = ET.SubElement(testcase, "system-out")
                out.text = _xml_text("\n".join(case.transcript))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


# --- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; }
.passed { color: #176b2c; font-weight: bold; }
.failed { color: #b00020; font-weight: bold; }
.skipped { color: #8a6d00; font-weight: bold; }
.banner { font-size: 1.3em; padding: 0.4em 0.8em; display: inline-block; border: 2px solid; }
.setup { color: #666; }
.security { border: 2px solid #b00020; background: #fdecee; padding: 0.4em 0.6em; }
.why { margin: 0.2em 0 0.5em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em;
      white-space: pre-wrap; word-break: break-all; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.meta dt { font-weight: bold; }
section.case { page-break-inside: avoid; }
@media print {
  body { margin: 1cm; }
  details > pre { display: block; }
  section.case { page-break-inside: avoid; }
}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _meta(items: list[tuple[str, object]]) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    return f'<dl class="meta">{rows}</dl>'


def report_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline style, no script, no links)."""
    totals = report.totals()
    verdict = "PASSED" if report.passed else "FAILED"
    verdict_class = "passed" if report.passed else "failed"
    params = report.parameters
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>paygkit certification: {_e(params.get('serial') or report.target)} "
        f"{verdict}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>paygkit certification report</h1>",
        f'<p><span class="banner {verdict_class}">{verdict}</span> '
        f"{totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped "
        f"of {totals['total']} cases</p>",
        *_security_banner(report),
        "<h2>Device</h2>",
        _meta(
            [
                ("Target", report.target),
                ("Model", report.device.get("model", "-")),
                ("Firmware", report.device.get("firmware", "-")),
                ("Protocol", report.device.get("protocol", "-")),
                ("Simulator", "yes" if report.device.get("simulator") == "1" else "no"),
                ("Serial number", params.get("serial") or "-"),
                ("Time divider", params.get("time_divider")),
                (
                    "Digits",
                    "restricted (keys 1-4)" if params.get("restricted_digits") else "standard",
                ),
                ("Count at start", params.get("starting_count")),
                (
                    "Device count at end",
                    "-" if report.device_count is None else report.device_count,
                ),
                (
                    "Server count at end",
                    "-" if report.server_count is None else report.server_count,
                ),
                (
                    "Random sequence",
                    f"seed {params.get('seed')}, {params.get('sequence_length')} entries",
                ),
                (
                    "Tokens entered",
                    "key by key (KEYS)" if report.entry == "keys" else "whole (TOKEN)",
                ),
                ("Interactive", "yes" if report.interactive else "no"),
                ("Started", report.started),
                ("Duration", f"{report.seconds:.2f} s"),
                ("paygkit", report.paygkit_version),
            ]
        ),
    ]
    if report.server_count is not None:
        parts.append(
            "<p>The server's count for this device is now "
            f"<strong>{_e(report.server_count)}</strong>: store it in the device list before "
            "making more tokens for it.</p>"
        )
    if report.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{_e(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    parts.append("<h2>Summary</h2><table><tr><th>Case</th><th>Title</th><th>Result</th>")
    parts.append("<th>Note</th></tr>")
    for case in report.cases:
        cls = case.verdict.value
        optional = " (optional)" if case.optional else ""
        result = "security failure" if case.security_failure else cls
        parts.append(
            f'<tr><td><a href="#case-{_e(case.id)}">{_e(case.id)}</a></td>'
            f"<td>{_e(case.title)}{optional}</td>"
            f'<td class="{cls}">{_e(result)}</td><td>{_e(case.message)}</td></tr>'
        )
    parts.append("</table>")
    if report.preparation:
        parts.append("<h2>Preparation</h2><details><summary>Transcript</summary><pre>")
        parts.append(_e("\n".join(report.preparation)))
        parts.append("</pre></details>")
    parts.append("<h2>Cases</h2>")
    for case in report.cases:
        parts.append(_case_html(case))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _security_banner(report: Report) -> list[str]:
    failures = report.security_failures()
    if not failures:
        return []
    ids = ", ".join(case.id for case in failures)
    return [
        f'<p class="security"><strong>{SECURITY_HEADLINE}</strong> ({_e(ids)}): the device '
        "gives away days nobody paid for. This is not a difference from the reference to "
        "note and accept: the firmware must be fixed before the device is sold.</p>"
    ]


def _case_html(case: CaseResult) -> str:
    cls = case.verdict.value
    parts = [
        f'<section class="case" id="case-{_e(case.id)}">',
        f'<h3>{_e(case.id)} {_e(case.title)} <span class="{cls}">{_e(cls.upper())}</span></h3>',
        f'<p class="why">{_e(case.checks)}</p>',
    ]
    if case.security_failure:
        parts.append(
            f'<p class="security"><strong>{SECURITY_HEADLINE}.</strong> {_e(case.security)}</p>'
        )
    if case.message:
        parts.append(f'<p class="{cls}">{_e(case.message)}</p>')
    if case.steps:
        parts.append(
            "<table><tr><th>#</th><th>Step</th><th>Expected</th><th>Device</th><th>Result</th></tr>"
        )
        for number, step in enumerate(case.steps, 1):
            row_class = ' class="setup"' if step.setup else ""
            status_class = {"passed": "passed", "failed": "failed"}.get(step.status, "skipped")
            parts.append(
                f'<tr{row_class}><td class="num">{number}</td><td>{_e(step.action)}</td>'
                f"<td>{_e(step.expected)}</td><td><code>{_e(step.observed)}</code></td>"
                f'<td class="{status_class}">{_e(step.status)}</td></tr>'
            )
        parts.append("</table>")
    if case.transcript:
        parts.append("<details><summary>Protocol transcript</summary><pre>")
        parts.append(_e("\n".join(case.transcript)))
        parts.append("</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


# --- terminal ----------------------------------------------------------------------------------


def case_line(case: CaseResult) -> str:
    """One line per finished case, as rich markup (for progress output)."""
    style = _VERDICT_STYLE[case.verdict]
    text = f"[{style}]{_VERDICT_MARK[case.verdict]}[/] {escape(case.id):<4} {escape(case.title)}"
    if case.security_failure:
        text += f"\n       [bold red]{SECURITY_HEADLINE}:[/] [red]{escape(case.security)}[/]"
    if case.message:
        text += f"\n       [{style}]{escape(case.message)}[/]"
    return text


def print_summary(report: Report, console: Console, *, table: bool = True) -> None:
    """The summary: a table of every case (or, without `table`, the failed ones again), the
    totals and the overall verdict."""
    if table:
        rows = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        rows.add_column("Case", no_wrap=True)
        rows.add_column("Title")
        rows.add_column("Result", no_wrap=True)
        rows.add_column("Note")
        for case in report.cases:
            style = _VERDICT_STYLE[case.verdict]
            result = "security failure" if case.security_failure else case.verdict.value
            rows.add_row(
                case.id,
                escape(case.title),
                f"[{style}]{result}[/]",
                escape(case.message),
            )
        console.print(rows)
    else:
        for case in report.failed():
            console.print(case_line(case))
    totals = report.totals()
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(
        f"{verdict}: {totals['passed']} passed, {totals['failed']} failed, "
        f"{totals['skipped']} skipped of {totals['total']} cases in {report.seconds:.2f} s "
        f"({escape(report.target)})"
    )
    security = report.security_failures()
    if security:
        console.print(
            f"[bold red]{SECURITY_HEADLINE}[/] in {', '.join(c.id for c in security)}: the "
            "device gives away days nobody paid for; the firmware must be fixed, this is not "
            "a difference from the reference to accept."
        )
    if report.server_count is not None:
        console.print(
            f"Device count now {report.device_count if report.device_count is not None else '?'}; "
            f"the server's count for this device is {report.server_count} "
            "(store it in the device list)."
        )
