"""The manual procedure: a printable sheet for devices that only have a keypad.

The same cases and steps as the automatic run, made from the same parameters,
written for a person: each step says what to press (tokens in groups of three),
what the device must do, and has boxes to tick.  The cases with long waits (G12's
48 hours, WP2's waiting periods of up to 512 minutes) come last, after the cases
they start from, and the sheet says how long each case and the whole sheet take.
Steps only the protocol can do (a digit the keypad has no key for, switching
the waiting period) are left out, and so are cases made of them and cases
only a simulator can do (moving the clock of a device that is off).  The
sheet says which count the device must start at and which count the server
must store afterwards.  It never holds the key.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass

from paygkit.certify.cases import SUITES, Case
from paygkit.certify.params import CertParams
from paygkit.certify.plan import NotApplicableError, Plan
from paygkit.certify.steps import (
    Check,
    Enter,
    Outcome,
    PowerCycle,
    Step,
    Wait,
    Waiting,
    keys_words,
    needs_clock,
)
from paygkit.device.state import WaitingPeriod
from paygkit.token import duration_text

CSV_COLUMNS = (
    "Case",
    "Title",
    "Step",
    "Do",
    "What",
    "Keys to type",
    "Expected",
    "Pass",
    "Fail",
    "Notes",
    "Time",  # last: sheets read by column position keep working
)


# Hands-on time for a step at the keypad: reading it, typing up to 15 digits, looking at
# the LED and ticking a box.  An estimate, for planning the day.
STEP_SECONDS = 20
# A case that waits this long or more goes to the end of the sheet: the operator does the
# quick cases first and leaves the long waits running (overnight, or at the next visit).
LONG_WAIT_SECONDS = 3600


@dataclass(frozen=True)
class SheetStep:
    number: int
    do: str  # Type, Press #, Wait, Power off/on
    what: str
    keys: str  # what to press, digits grouped by three ("" when nothing is pressed)
    expected: str
    setup: bool = False


@dataclass(frozen=True)
class SheetCase:
    id: str
    suite: str
    title: str
    checks: str
    optional: bool
    steps: tuple[SheetStep, ...]
    seconds: int = 0  # about how long the case takes: waits and power cycles, plus steps
    wait_seconds: int = 0  # of which waiting (reference waiting periods)


@dataclass(frozen=True)
class Sheet:
    serial: str | None
    time_divider: int
    restricted: bool
    start_count: int
    end_count: int
    cases: tuple[SheetCase, ...]
    left_out: tuple[tuple[str, str, str], ...]  # (id, title, why)

    @property
    def seconds(self) -> int:
        """About how long the whole sheet takes."""
        return sum(case.seconds for case in self.cases)

    @property
    def wait_seconds(self) -> int:
        return sum(case.wait_seconds for case in self.cases)

    @property
    def long_cases(self) -> tuple[SheetCase, ...]:
        return tuple(case for case in self.cases if case.wait_seconds >= LONG_WAIT_SECONDS)


def time_needed_text(seconds: int) -> str:
    """An estimate of time for a person planning a run: '2 days 1 h', '8 h 32 min', '14 min'.

    Whole minutes, rounded up, and the two largest units: nobody plans by the second.
    """
    return duration_text(seconds, parts=2, round_up_to=60)


def _step_seconds(steps: Sequence[Step]) -> tuple[int, int]:
    """(all, waiting) seconds for these steps, with the reference waiting periods."""
    period = WaitingPeriod()
    invalid = 0
    total = waiting = 0
    for step in steps:
        if isinstance(step, Enter):
            total += STEP_SECONDS
            if step.expect.invalid is not None:
                invalid = step.expect.invalid
            elif Outcome.APPLIED in step.expect.outcomes:
                invalid = 0
        elif isinstance(step, Check):
            total += STEP_SECONDS
        elif isinstance(step, Wait):
            # Until unblocked: at most the wait the last invalid token started.
            seconds = period.seconds_after(invalid) if step.until_unblocked else step.seconds
            total += seconds
            waiting += seconds
        elif isinstance(step, PowerCycle):
            total += STEP_SECONDS + step.off_seconds
            waiting += step.off_seconds
    return total, waiting


def _sheet_order(cases: Sequence[Case], waits: dict[str, int]) -> list[Case]:
    """Quick cases in procedure order, then the long waits, shortest first.

    A case never goes before a case it requires: it is at least as late as they are.
    """
    by_id = {case.id: case for case in cases}
    position = {case.id: index for index, case in enumerate(cases)}
    keys: dict[str, int] = {}

    def key(case: Case) -> int:
        if case.id not in keys:
            own = waits.get(case.id, 0)
            keys[case.id] = own if own >= LONG_WAIT_SECONDS else 0
            for required in case.requires:
                if required in by_id:
                    keys[case.id] = max(keys[case.id], key(by_id[required]))
        return keys[case.id]

    pending = sorted(cases, key=lambda case: (key(case), position[case.id]))
    placed: list[Case] = []
    done: set[str] = set()
    while pending:
        # The first case whose requirements are on the sheet already (a tie in the sort
        # key can put a dependent first when it is listed first).
        index = next(
            (
                i
                for i, case in enumerate(pending)
                if all(r in done or r not in by_id for r in case.requires)
            ),
            0,  # requirements in a circle: nothing can go first, keep the order
        )
        case = pending.pop(index)
        placed.append(case)
        done.add(case.id)
    return placed


def _sheet_step(number: int, step: Step) -> SheetStep | None:
    if isinstance(step, Enter):
        return SheetStep(
            number,
            "Type",
            step.what,
            keys_words(step.keys, sequence=step.sequence),
            step.expect.text,
            step.setup,
        )
    if isinstance(step, Check):
        return SheetStep(number, "Press #", "Show the status", "#", step.text, step.setup)
    if isinstance(step, Wait):
        return SheetStep(number, "Wait", step.text, "", "Time passes; keep the device on")
    if isinstance(step, PowerCycle):
        return SheetStep(
            number, "Power off/on", step.text, "", "The device starts again from what it stored"
        )
    return None


def build_sheet(params: CertParams, cases: Sequence[Case]) -> Sheet:
    """The sheet for these device parameters: every case that can be done by hand.

    The tokens depend on the order (each is made after the ones before it), so the
    sheet is made once to learn each case's waits, then again in the sheet's order.
    """
    first = _build_sheet(params, cases)
    waits = {case.id: case.wait_seconds for case in first.cases}
    ordered = _sheet_order(cases, waits)
    if [case.id for case in ordered] == [case.id for case in cases]:
        return first
    return _build_sheet(params, ordered)


def _build_sheet(params: CertParams, cases: Sequence[Case]) -> Sheet:
    plan = Plan(params)
    built: list[SheetCase] = []
    left_out: list[tuple[str, str, str]] = []
    for case in cases:
        reason = case.applies(params)
        if reason is not None:
            left_out.append((case.id, case.title, reason))
            continue
        fork = plan.fork()
        try:
            steps = case.build(fork)
        except NotApplicableError as error:
            left_out.append((case.id, case.title, f"not applicable: {error}"))
            continue
        if any(isinstance(step, Enter) and step.protocol_only for step in steps):
            left_out.append(
                (case.id, case.title, "needs the device protocol: the keypad has no key for it")
            )
            continue
        if needs_clock(steps):
            left_out.append(
                (
                    case.id,
                    case.title,
                    "needs a simulator: it moves the clock of a device that is off",
                )
            )
            continue
        plan = fork
        rows: list[SheetStep] = []
        for step in steps:
            if isinstance(step, Waiting):
                continue  # the device keeps its waiting period as shipped
            row = _sheet_step(len(rows) + 1, step)
            if row is not None:
                rows.append(row)
        seconds, wait_seconds = _step_seconds(
            [step for step in steps if not isinstance(step, Waiting)]
        )
        built.append(
            SheetCase(
                case.id,
                case.suite,
                case.title,
                case.checks,
                case.optional,
                tuple(rows),
                seconds=seconds,
                wait_seconds=wait_seconds,
            )
        )
    return Sheet(
        serial=params.serial,
        time_divider=params.time_divider,
        restricted=params.restricted,
        start_count=params.count,
        end_count=plan.issued,
        cases=tuple(built),
        left_out=tuple(left_out),
    )


def _instructions(sheet: Sheet) -> list[str]:
    start = (
        "a new device"
        if sheet.start_count == 1
        else f"the count in the device list ({sheet.start_count})"
    )
    return [
        f"The device must be at count {sheet.start_count} when you start ({start}). The "
        "tokens on this sheet work only for this device and only in this order: do the "
        "cases top to bottom, without other tokens in between.",
        "Type a token as * then its digits then #. Press # alone to see the status. Tick "
        "Pass or Fail for each step; if a step fails, note what the device did and go on "
        "with the next case.",
        "The LED patterns are those of the reference firmware; a device with a display "
        "shows the same in words.",
        "Leave the waiting period as shipped: apart from the WP cases, the sheet never has "
        "more than two invalid tokens in a row.",
        f"When you are done, the server's count for this device is {sheet.end_count}: store "
        "it in the device list before making tokens for the device.",
        time_summary(sheet),
    ]


def time_summary(sheet: Sheet) -> str:
    """How long the sheet takes, and where the long waits are."""
    text = (
        f"Time needed: about {time_needed_text(sheet.seconds)} in all, "
        f"{time_needed_text(sheet.wait_seconds)} of it waiting (each case says its own; "
        f"typing and checking counted at {STEP_SECONDS} seconds a step)."
    )
    long = sheet.long_cases
    if long:
        text += (
            " The long waits come last: "
            + ", ".join(f"{case.id} about {time_needed_text(case.seconds)}" for case in long)
            + ": start them when you can leave the device for that long."
        )
    return text


# --- CSV ---------------------------------------------------------------------------------------


def sheet_csv(sheet: Sheet) -> str:
    """The sheet as CSV: one row per step, empty Pass / Fail / Notes columns to fill in.

    Time: the whole sheet's on the START row, each case's on its first step.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerow(
        [
            "START",
            "Before you begin",
            "0",
            "Press #",
            "Show the status",
            "#",
            f"The device is at count {sheet.start_count}",
            "",
            "",
            time_summary(sheet),
            f"about {time_needed_text(sheet.seconds)} in all",
        ]
    )
    for case in sheet.cases:
        for step in case.steps:
            what = step.what + (" (setup)" if step.setup else "")
            writer.writerow(
                [
                    case.id,
                    case.title,
                    step.number,
                    step.do,
                    what,
                    step.keys,
                    step.expected,
                    "",
                    "",
                    "",
                    f"about {time_needed_text(case.seconds)}" if step.number == 1 else "",
                ]
            )
    writer.writerow(
        [
            "END",
            "When you are done",
            "0",
            "Record",
            "The server's count",
            "",
            f"Store count {sheet.end_count} for this device in the device list",
            "",
            "",
            "",
            "",
        ]
    )
    return out.getvalue()


# --- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #000; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.2em; }
p.why { margin: 0 0 0.4em; font-size: 0.9em; }
table { border-collapse: collapse; width: 100%; margin-bottom: 0.6em; }
th, td { border: 1px solid #444; padding: 0.25em 0.4em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.keys { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 1.1em;
          white-space: nowrap; font-weight: bold; }
td.tick { text-align: center; width: 3em; font-size: 1.2em; }
tr.setup td { color: #444; }
.notes { border-bottom: 1px solid #888; height: 1.6em; margin-bottom: 1em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dl.meta dt { font-weight: bold; }
section.case { page-break-inside: avoid; }
@media print {
  body { margin: 1cm; }
  tr { page-break-inside: avoid; }
  thead { display: table-header-group; }
}
"""

_BOX = "&#9744;"  # an empty ballot box to tick


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def sheet_html(sheet: Sheet) -> str:
    """The sheet as one printable, self-contained HTML page."""
    digits = "restricted, keys 1-4" if sheet.restricted else "standard"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Certification sheet {_e(sheet.serial or '')}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>paygkit certification sheet (manual procedure)</h1>",
        '<dl class="meta">',
        f"<dt>Device</dt><dd>{_e(sheet.serial or '(serial not given)')}</dd>",
        f"<dt>Time divider</dt><dd>{_e(sheet.time_divider)}</dd>",
        f"<dt>Digits</dt><dd>{_e(digits)}</dd>",
        f"<dt>Start at count</dt><dd>{_e(sheet.start_count)}</dd>",
        f"<dt>Server count after</dt><dd>{_e(sheet.end_count)}</dd>",
        f"<dt>Time needed</dt><dd>about {_e(time_needed_text(sheet.seconds))} in all, "
        f"{_e(time_needed_text(sheet.wait_seconds))} of it waiting</dd>",
        "<dt>Tested by / date</dt><dd>______________________________</dd>",
        "</dl>",
        "<ul>",
        *(f"<li>{_e(text)}</li>" for text in _instructions(sheet)),
        "</ul>",
        *_time_table(sheet),
        "<h2>Before you begin</h2>",
        "<table><thead><tr><th>Do</th><th>Keys to type</th><th>Expected</th>"
        "<th>Pass</th><th>Fail</th></tr></thead>",
        f'<tr><td>Press #</td><td class="keys">#</td><td>The device is at count '
        f"{_e(sheet.start_count)} (check in the device list or with the factory tool)</td>"
        f'<td class="tick">{_BOX}</td><td class="tick">{_BOX}</td></tr></table>',
    ]
    current_suite = None
    for case in sheet.cases:
        if case.suite != current_suite:
            current_suite = case.suite
            parts.append(f"<h2>{_e(SUITES.get(case.suite, case.suite))}</h2>")
        parts.append(_case_html(case))
    if sheet.left_out:
        parts.append("<h2>Not on this sheet</h2><ul>")
        parts += [
            f"<li><strong>{_e(case_id)}</strong> {_e(title)}: {_e(why)}</li>"
            for case_id, title, why in sheet.left_out
        ]
        parts.append("</ul>")
    parts.append(
        f"<h2>When you are done</h2><p>Store count <strong>{_e(sheet.end_count)}</strong> "
        "for this device in the device list.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _time_table(sheet: Sheet) -> list[str]:
    rows = [
        f'<tr><td><a href="#case-{_e(case.id)}">{_e(case.id)}</a></td><td>{_e(case.title)}</td>'
        f"<td>about {_e(time_needed_text(case.seconds))}</td>"
        f"<td>{_e(time_needed_text(case.wait_seconds)) if case.wait_seconds else '-'}</td></tr>"
        for case in sheet.cases
    ]
    return [
        "<h2>Time per case</h2>",
        "<table><thead><tr><th>Case</th><th>Title</th><th>Time</th><th>Of it waiting</th>"
        "</tr></thead>",
        *rows,
        f"<tr><th></th><th>All cases</th><th>about {_e(time_needed_text(sheet.seconds))}</th>"
        f"<th>{_e(time_needed_text(sheet.wait_seconds))}</th></tr></table>",
    ]


def _case_html(case: SheetCase) -> str:
    optional = " (optional)" if case.optional else ""
    parts = [
        f'<section class="case" id="case-{_e(case.id)}">',
        f"<h2>{_e(case.id)} {_e(case.title)}{optional} "
        f"(about {_e(time_needed_text(case.seconds))})</h2>",
        f'<p class="why">{_e(case.checks)}</p>',
        "<table><thead><tr><th>#</th><th>Do</th><th>What</th><th>Keys to type</th>"
        "<th>Expected</th><th>Pass</th><th>Fail</th></tr></thead>",
    ]
    for step in case.steps:
        row_class = ' class="setup"' if step.setup else ""
        what = step.what + (" (setup)" if step.setup else "")
        parts.append(
            f"<tr{row_class}><td>{step.number}</td><td>{_e(step.do)}</td><td>{_e(what)}</td>"
            f'<td class="keys">{_e(step.keys)}</td><td>{_e(step.expected)}</td>'
            f'<td class="tick">{_BOX}</td><td class="tick">{_BOX}</td></tr>'
        )
    parts.append('</table><div class="notes">Notes:</div></section>')
    return "\n".join(parts)
