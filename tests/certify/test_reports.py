"""The reports: JSON and JUnit XML for machines, HTML and the terminal for people; each case
passed / failed / skipped with what was sent and what the device answered, never the key."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from rich.console import Console

from paygkit.certify import CertParams, Report, Runner, Verdict, select_cases
from paygkit.certify.report import (
    JSON_FORMAT,
    junit_xml,
    print_summary,
    report_dict,
    report_html,
    report_json,
)
from paygkit.device.firmware import Firmware
from paygkit.device.host import DeviceLink
from tests.certify import faulty

pytestmark = pytest.mark.one_firmware(
    "reports of faulty devices, which are the Python model with a fault planted"
)

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010


SEED = 4711


def run_faulty(firmware: type[Firmware], suites: list[str]) -> Report:
    sim = faulty.FaultySimulator(firmware)
    cert = CertParams.create(KEY, STARTING_CODE, serial="SLT220000001", seed=SEED)
    with DeviceLink.for_simulator(sim) as link:
        return Runner(link, cert).run(select_cases(suites))


@pytest.fixture(scope="module")
def report() -> Report:
    """A run with passes, a failure (U2, a security failure) and skips (not applicable)."""
    return run_faulty(faulty.OlderAddAfterSet, ["G", "U", "RD", "CS"])


@pytest.fixture(scope="module")
def reference_report() -> Report:
    """A device built on the reference decoder, through the exactly-once cases."""
    return run_faulty(faulty.ReferenceRule, ["XO", "RS"])


@pytest.fixture(scope="module")
def plain_failure() -> Report:
    """A failure that gives nothing away: the time divider ignored."""
    sim = faulty.FaultySimulator(faulty.IgnoresDivider)
    cert = CertParams.create(KEY, STARTING_CODE, time_divider=4, seed=SEED)
    with DeviceLink.for_simulator(sim) as link:
        return Runner(link, cert).run(select_cases(["TD1"]))


def assert_no_key(text: str) -> None:
    assert KEY not in text
    assert KEY.upper() not in text
    assert "sk:bc41" not in text.lower()


def test_the_fixture_has_every_verdict(report: Report) -> None:
    found = {case.verdict for case in report.cases}
    assert found == {Verdict.PASSED, Verdict.FAILED, Verdict.SKIPPED}
    assert [c.id for c in report.failed()] == ["U2"]


def test_json_report_fields(report: Report) -> None:
    data = json.loads(report_json(report))
    assert data["format"] == JSON_FORMAT
    assert data["version"] == 1
    assert data["passed"] is False
    assert data["summary"] == {
        "passed": sum(c.verdict is Verdict.PASSED for c in report.cases),
        "failed": 1,
        "skipped": sum(c.verdict is Verdict.SKIPPED for c in report.cases),
        "total": len(report.cases),
        "security_failures": 1,
    }
    assert data["target"] == "sim:"
    assert data["device"]["simulator"] == "1"
    assert data["parameters"] == {
        "serial": "SLT220000001",
        "time_divider": 1,
        "restricted_digits": False,
        "starting_count": 1,
        "test_code": False,
        "accepts_reset_token": False,
        "seed": SEED,
        "sequence_length": 40,
    }
    # CS3's old Counter Sync tokens are made below the server's count: it does not move.
    assert (data["server_count"], data["device_count"]) == (
        report.server_count,
        report.device_count,
    )
    assert data["server_count"] == data["device_count"] > 700
    assert isinstance(data["started"], str)
    assert data["started"].endswith("+00:00")
    case_fields = {
        "id", "suite", "title", "checks", "optional", "security", "security_failure",
        "status", "message", "seconds", "count_before", "count_after", "steps", "transcript",
    }  # fmt: skip
    for case in data["cases"]:
        assert set(case) == case_fields
        assert case["status"] in ("passed", "failed", "skipped")
        for step in case["steps"]:
            assert set(step) == {"action", "expected", "observed", "status", "setup"}
    u2 = next(case for case in data["cases"] if case["id"] == "U2")
    assert u2["security_failure"] is True
    assert "given a second time: days nobody paid for" in u2["security"]
    assert all(not case["security_failure"] for case in data["cases"] if case["id"] != "U2")
    failed = [step for step in u2["steps"] if step["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["observed"].startswith("RESULT APPLIED type=ADD_TIME")
    assert "not run" in {step["status"] for step in u2["steps"]}
    assert any(line.startswith("> TOKEN ") for line in u2["transcript"])
    assert any(line.startswith("< RESULT APPLIED") for line in u2["transcript"])
    assert report_dict(report) == data


def test_junit_xml_is_well_formed_and_counts_match(report: Report) -> None:
    text = junit_xml(report)
    root = ET.fromstring(text)
    totals = report.totals()
    assert root.tag == "testsuites"
    assert root.get("tests") == str(totals["total"])
    assert root.get("failures") == "1"
    assert root.get("skipped") == str(totals["skipped"])
    suites = root.findall("testsuite")
    assert [s.get("name", "").split(":")[0] for s in suites] == ["CS", "G", "U", "RD"]
    assert sum(int(s.get("tests", "0")) for s in suites) == totals["total"]
    cases = root.findall("testsuite/testcase")
    assert len(cases) == totals["total"]
    assert sum(len(s.findall("testcase")) for s in suites) == totals["total"]
    for suite in suites:
        listed = suite.findall("testcase")
        assert suite.get("tests") == str(len(listed))
        assert suite.get("failures") == str(sum(c.find("failure") is not None for c in listed))
        assert suite.get("skipped") == str(sum(c.find("skipped") is not None for c in listed))
    failures = root.findall(".//failure")
    assert len(failures) == 1
    u2 = failures[0]
    assert "expected ALREADY_USED" in (u2.get("message") or "")
    assert (u2.get("message") or "").startswith("SECURITY FAILURE. The days of an Add Time")
    assert u2.get("type") == "SecurityFailure"
    assert "observed: RESULT APPLIED" in (u2.text or "")
    failing_case = root.find(".//testcase[failure]")
    assert failing_case is not None
    assert failing_case.get("name", "").startswith("U2 ")
    assert failing_case.get("classname") == "paygkit.certify.U"
    out = failing_case.find("system-out")
    assert out is not None
    assert "> TOKEN" in (out.text or "")
    skipped = root.findall(".//skipped")
    assert all(s.get("message") for s in skipped)
    properties = {p.get("name"): p.get("value") for p in root.findall(".//property")}
    assert properties["target"] == "sim:"
    assert_no_key(text)


def test_junit_xml_survives_control_characters_in_a_device_answer(report: Report) -> None:
    report.cases[0].transcript.append("< RESULT \x01garbled\x1b")
    try:
        ET.fromstring(junit_xml(report))
    finally:
        report.cases[0].transcript.pop()


class _Structure(HTMLParser):
    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1:] == [tag], (tag, self.stack[-5:])
        self.stack.pop()


def check_self_contained_html(text: str) -> _Structure:
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.stack == []
    assert not parser.tags & {"script", "link", "img", "iframe", "object"}
    for name, value in parser.attributes:
        assert name != "src"
        if name == "href":
            assert value is not None
            assert value.startswith("#")
    assert "http://" not in text
    assert "https://" not in text
    assert "@import" not in text
    assert "url(" not in text
    return parser


def test_html_report_is_self_contained_and_tells_what_happened(report: Report) -> None:
    text = report_html(report)
    check_self_contained_html(text)
    assert "FAILED" in text
    assert "SLT220000001" in text
    for case in report.cases:
        assert f'id="case-{case.id}"' in text
    u2 = report.case("U2")
    assert u2.message.replace("'", "&#x27;") in text or u2.message in text
    assert "&gt; TOKEN" in text
    assert "&lt; RESULT APPLIED" in text
    assert "Set Time makes older Add Time tokens obsolete" in text
    assert report.case("U2").checks.split(".")[0] in text
    assert '<p class="security"><strong>SECURITY FAILURE</strong> (U2)' in text
    assert "security failure</td>" in text
    assert "seed 4711, 40 entries" in text
    assert_no_key(text)


def test_terminal_summary(report: Report) -> None:
    out = io.StringIO()
    print_summary(report, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "FAILED: " in text
    assert "1 failed" in text
    for case in report.cases:
        assert case.id in text
    assert "store it in the device list" in text
    assert_no_key(text)
    assert "SECURITY FAILURE in U2: the device gives away days nobody paid for" in text
    short = io.StringIO()
    print_summary(report, Console(file=short, width=200, color_system=None), table=False)
    assert "FAIL U2" in short.getvalue()
    assert "SECURITY FAILURE: The days of an Add Time" in short.getvalue()
    assert "PASS" not in short.getvalue()


def test_a_reference_decoder_fails_as_a_security_failure_not_a_difference(
    reference_report: Report,
) -> None:
    xo1 = reference_report.case("XO1")
    assert xo1.verdict is Verdict.FAILED
    assert xo1.security_failure
    # The failure names the replayed token and what the device did with it...
    assert re.search(r"Counter Sync \(count \d+\) again \(round 2\)", xo1.message)
    assert "expected ALREADY_USED" in xo1.message
    assert "answered APPLIED" in xo1.message
    # ... and every report says what that costs, in plain words.
    words = "customer who kept one old Counter Sync token gets the same Add Time tokens' days"
    assert words in xo1.security
    assert xo1.security.startswith("Not a difference from the reference")
    data = report_dict(reference_report)
    assert data["summary"]["security_failures"] == len(reference_report.security_failures()) >= 3
    assert {"XO1", "XO2"} <= {c.id for c in reference_report.security_failures()}
    junit = ET.fromstring(junit_xml(reference_report))
    xo1_case = junit.find(".//testcase[@name='XO1 " + xo1.title + "']")
    assert xo1_case is not None
    failure = xo1_case.find("failure")
    assert failure is not None
    assert failure.get("type") == "SecurityFailure"
    assert "SECURITY FAILURE: Not a difference from the reference" in (failure.text or "")
    html = report_html(reference_report)
    assert "must be fixed before the device is sold" in html
    out = io.StringIO()
    print_summary(reference_report, Console(file=out, width=300, color_system=None))
    assert "SECURITY FAILURE in XO1, XO2" in out.getvalue()
    assert "not a difference from the reference to accept" in out.getvalue()


def test_a_random_sequence_failure_names_the_seed_and_the_first_diverging_entry(
    reference_report: Report,
) -> None:
    rs1 = reference_report.case("RS1")
    assert rs1.verdict is Verdict.FAILED
    assert not rs1.security_failure  # a divergence may cost either side: the steps say which
    assert re.search(r"^step \d+ \(enter Entry \d+ of 40: ", rs1.message), rs1.message
    assert rs1.message.endswith(
        f"(random sequence seed {SEED}: paygkit certify --seed {SEED} enters the same "
        "sequence again)"
    )
    failed = [step for step in rs1.steps if step.status == "failed"]
    assert len(failed) == 1
    first = rs1.steps.index(failed[0])
    assert all(step.status == "passed" for step in rs1.steps[:first])
    assert all(step.status == "not run" for step in rs1.steps[first + 1 :])
    assert f"seed {SEED}, 40 entries" in rs1.steps[0].action


def test_a_failure_that_gives_nothing_away_is_not_called_a_security_failure(
    plain_failure: Report,
) -> None:
    assert [c.id for c in plain_failure.failed()] == ["TD1"]
    assert not plain_failure.security_failures()
    for text in (report_json(plain_failure), junit_xml(plain_failure), report_html(plain_failure)):
        assert "SECURITY FAILURE" not in text
        assert "SecurityFailure" not in text


def test_no_report_holds_the_key_even_the_setup_transcript(report: Report) -> None:
    assert any(line.startswith("> SETUP") for line in report.preparation)
    assert "< SK:<hidden>" in report.preparation
    for text in (report_json(report), junit_xml(report), report_html(report), repr(report)):
        assert_no_key(text)
