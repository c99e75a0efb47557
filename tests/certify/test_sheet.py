"""The manual sheet for keypad-only devices: tokens in groups of three, what to press, what
the device must do, boxes to tick; no key.  Replaying the printed sheet key by key on a
simulator (waiting period on, as shipped) must give what the sheet says."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import re

import pytest

from paygkit.certify import CertParams, select_cases
from paygkit.certify.sheet import (
    CSV_COLUMNS,
    Sheet,
    _sheet_order,
    build_sheet,
    sheet_csv,
    sheet_html,
    time_needed_text,
)
from paygkit.device.host import DeviceLink
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from tests.certify.test_reports import assert_no_key, check_self_contained_html

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
GROUPED_TOKEN = re.compile(r"^\* \d{3}( \d{3}){2,6} #$")


def sheet_for(**changes: object) -> tuple[CertParams, Sheet]:
    values: dict[str, object] = {"serial": "SLT220000001", "seed": 99, **changes}
    cert = CertParams.create(KEY, STARTING_CODE, **values)  # type: ignore[arg-type]
    return cert, build_sheet(cert, select_cases())


def rows(sheet: Sheet) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(sheet_csv(sheet))))


def test_csv_sheet_has_one_row_per_step_with_grouped_tokens_and_empty_tick_columns() -> None:
    _, sheet = sheet_for()
    text = sheet_csv(sheet)
    assert next(csv.reader(io.StringIO(text))) == list(CSV_COLUMNS)
    table = rows(sheet)
    assert table[0]["Case"] == "START"
    assert table[0]["Expected"] == "The device is at count 1"
    assert table[-1]["Case"] == "END"
    assert f"Store count {sheet.end_count}" in table[-1]["Expected"]
    steps = table[1:-1]
    assert len(steps) == sum(len(case.steps) for case in sheet.cases)
    cases = {row["Case"] for row in steps}
    assert cases >= {"G1", "G12", "U2", "IN3", "WP3", "CS0", "CS3", "CS4", "XO1", "WP5", "RS1"}
    assert "WP6" not in cases  # only a simulator can move the clock of a device that is off
    assert {c: w for c, _, w in sheet.left_out}["WP6"] == (
        "needs a simulator: it moves the clock of a device that is off"
    )
    rs1 = [row for row in steps if row["Case"] == "RS1"]
    assert "seed 99, 40 entries" in rs1[0]["What"]
    assert sum(row["What"].startswith("Entry ") for row in rs1) == 40
    for row in steps:
        assert row["Pass"] == row["Fail"] == row["Notes"] == ""
        assert row["Expected"]
        if row["Do"] == "Type" and row["Case"] not in ("IN1", "IN2", "IN4", "IN5"):
            assert GROUPED_TOKEN.match(row["Keys to type"]), row
        if row["Do"] == "Press #":
            assert row["Keys to type"] == "#"
    short, long = (
        [row["Keys to type"] for row in steps if row["Case"] == case and row["Do"] == "Type"][1]
        for case in ("IN1", "IN2")
    )
    assert re.fullmatch(r"\* \d{3} \d{3} \d{2} #", short)  # a digit missing
    assert re.fullmatch(r"\* \d{3} \d{3} \d{3} 0 #", long)  # an extra 0
    in4 = [row for row in steps if row["Case"] == "IN4" and row["Do"] == "Type"][-1]
    assert re.fullmatch(r"\* \d{3} \d{2} \* \d{3} \d{3} \d{3} #", in4["Keys to type"])
    expected = {row["Expected"].split(":")[0].split(";")[0] for row in steps}
    assert {"Accepted", "Refused as invalid", "Refused as already used"} <= expected
    assert any(row["Do"] == "Wait" and "48 hours" in row["What"] for row in steps)
    assert any(row["Do"] == "Power off/on" for row in steps)
    assert any(row["Do"] == "Power off/on" and "wait 2 hours" in row["What"] for row in steps)
    assert_no_key(text)


def test_restricted_sheet_groups_15_digit_tokens_and_leaves_out_what_a_4_key_pad_cannot_type() -> (
    None
):
    _, sheet = sheet_for(restricted=True, time_divider=4)
    typed = [row["Keys to type"] for row in rows(sheet) if row["Do"] == "Type"]
    tokens = [keys for keys in typed if GROUPED_TOKEN.match(keys)]
    assert tokens
    assert all(len(keys.split()) == 7 for keys in tokens)
    assert all(set(keys) <= set("1234 *#") for keys in typed)
    left_out = {c: w for c, _, w in sheet.left_out}
    assert set(left_out) == {"IN3", "RD2", "RD3", "WP6"}
    assert "keypad has no key" in left_out["RD2"]
    assert "RD1" in {case.id for case in sheet.cases}


def test_html_sheet_is_printable_and_self_contained() -> None:
    _, sheet = sheet_for(time_divider=4)
    text = sheet_html(sheet)
    check_self_contained_html(text)
    assert "@media print" in text
    assert text.count("&#9744;") == 2 * (1 + sum(len(case.steps) for case in sheet.cases))
    for case in sheet.cases:
        assert html.escape(f"{case.id} {case.title}") in text
        assert html.escape(case.checks) in text
    first_token = next(
        step.keys for case in sheet.cases for step in case.steps if step.do == "Type"
    )
    assert first_token in text
    assert "Start at count</dt><dd>1</dd>" in text
    assert f"Store count <strong>{sheet.end_count}</strong>" in text
    assert "SLT220000001" in text
    assert "Not on this sheet" in text
    assert "WP6" in text
    assert_no_key(text)


def test_the_sheet_starts_at_the_device_count() -> None:
    _, sheet = sheet_for(count=40)
    assert sheet.start_count == 40
    assert rows(sheet)[0]["Expected"] == "The device is at count 40"
    assert sheet.end_count > 40


@pytest.mark.parametrize(
    "variant", [{}, {"restricted": True, "time_divider": 4}], ids=["standard", "restricted"]
)
def test_replaying_the_sheet_by_keypad_gives_what_it_says(variant: dict[str, object]) -> None:
    cert, sheet = sheet_for(**variant)
    sim = SimulatedDevice(RamMemory())  # waiting period on: as shipped
    with DeviceLink.for_simulator(sim) as link:
        link.setup(
            serial="SLT220000001",
            starting_code=STARTING_CODE,
            key=bytes.fromhex(KEY),
            time_divider=cert.time_divider,
            restricted=cert.restricted,
        )
        checked = 0
        for row in rows(sheet)[1:-1]:
            expected, keys = row["Expected"], row["Keys to type"].replace(" ", "")
            if row["Do"] == "Type":
                answer = link.keys(keys)
                results = answer.all("RESULT")
                assert len(results) == 1, (row, answer)
                outcome = results[0].value
                if expected.startswith("Accepted"):
                    assert outcome == "APPLIED", row
                elif expected.startswith("Refused as already used"):
                    assert outcome == "ALREADY_USED", row
                elif expected.startswith("Refused as invalid"):
                    assert outcome in ("INVALID", "MALFORMED"), row
                elif expected.startswith("Refused without being checked"):
                    assert outcome == "BLOCKED", row
                else:
                    assert expected.startswith("Refused (as already used, or as invalid)"), row
                    assert outcome in ("ALREADY_USED", "INVALID"), row
                checked += 1
            elif row["Do"] == "Press #":
                status = link.status()
                if expected.startswith("Active, unlimited"):
                    assert status.get("payg") == "off", row
                elif expected.startswith("Active,"):
                    assert status.get("active") == "1", row
                elif expected.startswith("Inactive"):
                    assert status.get("active") == "0", row
            elif row["Do"] == "Wait":
                seconds = 48 * 3600 if "48 hours" in row["What"] else sim.status().blocked_seconds
                link.advance(seconds)
            elif row["Do"] == "Power off/on":
                link.power_off()
                link.advance(2 * 3600 if "2 hours" in row["What"] else 30)
                link.power_on()
        assert checked > 60
        assert link.status().int("count") == sheet.end_count


# --- issue 13: the long waits last, and how long it all takes ---------------------------------


def test_long_waits_come_last_and_the_sheet_says_how_long_it_takes() -> None:
    _, sheet = sheet_for()
    order = [case.id for case in sheet.cases]
    long = [case.id for case in sheet.long_cases]
    assert {"G12", "WP2"} <= set(long)
    # Before: G12 (48 hours) sat in the middle of the G suite, WP2 mid-sheet.
    assert order[-len(long) :] == long
    times = [case.seconds for case in sheet.long_cases]
    assert times == sorted(times)
    by_id = {case.id: case for case in sheet.cases}
    assert by_id["G12"].wait_seconds == 48 * 3600
    # WP2 waits 2, 4, ... 256 minutes, then 512 three times (the reference cap).
    assert by_id["WP2"].wait_seconds == (2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 3 * 512) * 60
    assert by_id["G1"].wait_seconds == 0
    assert 0 < by_id["G1"].seconds < 600
    assert sheet.seconds == sum(case.seconds for case in sheet.cases)
    assert sheet.seconds > sheet.wait_seconds >= (48 + 34) * 3600

    table = rows(sheet)
    assert table[0]["Time"] == f"about {time_needed_text(sheet.seconds)} in all"
    assert "The long waits come last" in table[0]["Notes"]
    first_rows = {row["Case"]: row["Time"] for row in table[1:-1] if row["Step"] == "1"}
    assert first_rows["G12"] == "about 2 days 2 min"
    assert all(row["Time"] == "" for row in table[1:-1] if row["Step"] != "1")

    page = sheet_html(sheet)
    top = page.split("<h2>Before you begin</h2>")[0]
    assert f"about {time_needed_text(sheet.seconds)} in all" in top
    assert "Time per case" in top
    assert 'href="#case-WP2"' in top
    assert html.escape("G12 ") in page
    assert "(about 2 days 2 min)</h2>" in page


def test_a_case_never_comes_before_the_cases_it_requires() -> None:
    cases = select_cases()
    _, sheet = sheet_for()
    placed = {case.id: index for index, case in enumerate(sheet.cases)}
    for case in cases:
        for required in case.requires:
            if case.id in placed and required in placed:
                assert placed[required] < placed[case.id], (required, case.id)


def test_a_dependent_of_a_long_case_follows_it_to_the_end() -> None:
    base = {case.id: case for case in select_cases()}
    dependent = dataclasses.replace(base["G1"], id="G1X", requires=("G12",))
    order = _sheet_order([dependent, base["G12"], base["G2"]], {"G12": 48 * 3600})
    assert [case.id for case in order] == ["G2", "G12", "G1X"]


def test_time_needed_text() -> None:
    assert [time_needed_text(s) for s in (0, 59, 61, 3600, 90000, 48 * 3600 + 30)] == [
        "no time",
        "1 min",
        "2 min",
        "1 h",
        "1 day 1 h",
        "2 days 1 min",
    ]
