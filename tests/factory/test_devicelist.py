"""The device list: the standard CSV and JSON, the record, and the strict reader's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygkit.factory.devicelist import (
    COLUMNS,
    DeviceListError,
    DeviceRecord,
    Problem,
    device_list_csv,
    device_list_json,
    parse_device_list_csv,
    read_device_list,
    write_device_list,
)
from paygkit.token import derive_starting_code
from tests.conftest import REFERENCE_DIR

pytestmark = pytest.mark.one_firmware("device lists: no device runs")

HEADER = ",".join(COLUMNS)
KEY_A = "bc41ec9530f6dac86b1a29ab82edc5fb"
KEY_B = "dac86b1a29ab82edc5fbbc41ec9530f6"
GOOD_ROW = f"SLT1,516959010,{KEY_A},1,4,0,SuperLight,X20,"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\r\n".join([header, *rows]) + "\r\n"


def only_problem(text: str) -> Problem:
    report = read_device_list(text)
    assert not report.ok
    assert len(report.problems) == 1, [str(p) for p in report.problems]
    return report.problems[0]


def test_reads_the_reference_example() -> None:
    report = read_device_list(REFERENCE_DIR / "example_device_list.csv")
    assert report.ok
    assert report.warnings == ()
    first, second = report.records
    assert first == DeviceRecord(
        serial="SLT220000001",
        starting_code=516959010,
        key=bytes.fromhex(KEY_A),
        count=1,
        time_divider=4,
        restricted=True,
        hardware_model="SuperLight",
        version="X20",
        test_code=None,
    )
    assert (second.serial, second.test_code, second.restricted) == (
        "SLT240000002",
        "999333777",
        False,
    )


def test_written_csv_has_the_reference_header_and_form() -> None:
    # Byte for byte, CRLF line ends included (the reference has no final line end).
    reference = (REFERENCE_DIR / "example_device_list.csv").read_bytes().decode()
    records = read_device_list(reference).records
    assert device_list_csv(records) == reference + "\r\n"


record_strategy = st.builds(
    DeviceRecord,
    serial=st.from_regex(r"[A-Z]{1,5}[0-9]{1,10}", fullmatch=True),
    starting_code=st.integers(0, 999_999_999),
    key=st.binary(min_size=16, max_size=16),
    count=st.integers(0, 2**31 - 1),
    time_divider=st.integers(1, 255),
    restricted=st.just(False),
    hardware_model=st.text(
        st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=10
    ),
    version=st.text("abcXYZ 0123.,\"'", max_size=8).map(str.strip),
    test_code=st.none() | st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)


def _unique(records: list[DeviceRecord]) -> list[DeviceRecord]:
    by_serial = {record.serial: record for record in reversed(records)}
    return [record for record in records if by_serial[record.serial] is record]


@settings(max_examples=60)
@given(st.lists(record_strategy, min_size=1, max_size=8).map(_unique))
def test_csv_and_json_round_trip(records: list[DeviceRecord]) -> None:
    for text in (device_list_csv(records), device_list_json(records)):
        report = read_device_list(text)
        assert report.problems == ()
        assert list(report.records) == records


def test_files_round_trip_and_are_private(tmp_path: Path) -> None:
    record = DeviceRecord("A1", 12, bytes.fromhex(KEY_A), test_code="0042")
    for form in ("csv", "json"):
        path = tmp_path / f"list.{form}"
        write_device_list([record], path, form=form)
        assert path.stat().st_mode & 0o777 == 0o600
        assert read_device_list(path).records == (record,)
        assert read_device_list(str(path)).records == (record,)


def test_record_repr_hides_the_key() -> None:
    record = DeviceRecord("A1", 12, bytes.fromhex(KEY_A))
    assert KEY_A not in repr(record).lower()
    assert record.key_hex == KEY_A
    assert record.params().starting_code == 12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"serial": "A B"}, "serial"),
        ({"starting_code": 10**9}, "starting code"),
        ({"count": -1}, "count"),
        ({"time_divider": 0}, "time divider"),
        ({"key": b"short"}, "16 bytes"),
        ({"test_code": "12a"}, "digits"),
        ({"restricted": True, "test_code": "1259"}, "1-4"),
    ],
)
def test_record_checks_its_values(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "serial": "A1",
        "starting_code": 1,
        "key": bytes.fromhex(KEY_A),
        **kwargs,
    }
    with pytest.raises(DeviceListError, match=message):
        DeviceRecord(**values)  # type: ignore[arg-type]


# --- every problem, with its row and column ----------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (f",516959010,{KEY_A},1,1,0,,,", "Serial Number", "serial number is missing"),
        (f"A B,516959010,{KEY_A},1,1,0,,,", "Serial Number", "'A B' must be"),
        (f"A;B,516959010,{KEY_A},1,1,0,,,", "Serial Number", "letters, digits and . _ : + -"),
        (f"#A1,516959010,{KEY_A},1,1,0,,,", "Serial Number", "starting with a letter or digit"),
        (f"{'S' * 33},516959010,{KEY_A},1,1,0,,,", "Serial Number", "33 characters long"),
        (f"{'S' * 33},516959010,{KEY_A},1,1,0,,,", "Serial Number", "1 to 32"),
        (f"S1,5.17E+08,{KEY_A},1,1,0,,,", "Starting Code", "scientific notation"),
        (f"S1,5.16959E+8,{KEY_A},1,1,0,,,", "Starting Code", "exact code is lost"),
        (f"S1,516959010.0,{KEY_A},1,1,0,,,", "Starting Code", "decimal number"),
        (f'S1,"516,959,010",{KEY_A},1,1,0,,,', "Starting Code", "digit grouping"),
        (f"S1,1234567890,{KEY_A},1,1,0,,,", "Starting Code", "10 digits"),
        (f"S1,-5,{KEY_A},1,1,0,,,", "Starting Code", "negative"),
        (f"S1,abc,{KEY_A},1,1,0,,,", "Starting Code", "not a whole number"),
        ("S1,516959010,,1,1,0,,,", "Key", "key is missing"),
        (f"S1,516959010,{KEY_A[:31]},1,1,0,,,", "Key", "31 hex characters"),
        (f"S1,516959010,{KEY_A}00,1,1,0,,,", "Key", "34 hex characters"),
        (f"S1,516959010,0x{KEY_A},1,1,0,,,", "Key", "0x"),
        (f"S1,516959010,{KEY_A[:-1]}g,1,1,0,,,", "Key", "other than hex"),
        ("S1,516959010,1.23457E+31,1,1,0,,,", "Key", "scientific notation"),
        (f"S1,516959010,{KEY_A},-1,1,0,,,", "Count", "negative"),
        (f"S1,516959010,{KEY_A},1.5,1,0,,,", "Count", "not a whole number"),
        (f"S1,516959010,{KEY_A},2147483648,1,0,,,", "Count", "from 0 to 2147483647"),
        (f"S1,516959010,{KEY_A},1,0,0,,,", "Time Divider", "from 1 to 255"),
        (f"S1,516959010,{KEY_A},1,256,0,,,", "Time Divider", "from 1 to 255"),
        (f"S1,516959010,{KEY_A},1,x,0,,,", "Time Divider", "not a whole number"),
        (f"S1,516959010,{KEY_A},1,1,2,,,", "Restricted Digit Mode", "must be 0"),
        (f"S1,516959010,{KEY_A},1,1,TRUE,,,", "Restricted Digit Mode", "must be 0"),
        (f"S1,516959010,{KEY_A},1,1,0,,,12a4", "Test Code", "digits only"),
        (f"S1,516959010,{KEY_A},1,1,0,,,{'1' * 21}", "Test Code", "at most 20"),
        (f"S1,516959010,{KEY_A},1,1,1,,,5555", "Test Code", "1-4"),
        (f"S1,516959010,{KEY_A},1,1,0,,,9.99E+08", "Test Code", "scientific"),
    ],
)
def test_each_problem_names_row_and_column(row: str, column: str, message: str) -> None:
    problem = only_problem(csv_text(GOOD_ROW.replace("SLT1", "OK1"), row))
    assert (problem.row, problem.column) == (3, column)
    assert message in problem.message
    assert str(problem).startswith(f"row 3, column {column}: ")
    assert KEY_A not in str(problem)


def test_a_key_that_looks_like_scientific_notation_is_a_key() -> None:
    # Found by the 100,000-device benchmark: about one random key in a million is
    # digits with a single 'e'.
    key = "1234567e" + "0" * 24
    report = read_device_list(csv_text(f"S1,516959010,{key},1,1,0,,,"))
    assert report.ok
    assert report.records[0].key.hex() == key


def test_a_key_in_the_wrong_column_is_never_repeated() -> None:
    report = read_device_list(csv_text(f"{KEY_A}Z,{KEY_B},{KEY_A},1,1,0,,,{KEY_B}"))
    text = " ".join(str(p) for p in report.problems)
    assert {p.column for p in report.problems} == {"Serial Number", "Starting Code", "Test Code"}
    assert KEY_A not in text
    assert KEY_B not in text
    assert KEY_B[:16] not in text


def test_all_problems_of_a_row_and_of_the_file_are_reported() -> None:
    report = read_device_list(
        csv_text(GOOD_ROW, f"S2,5.17E+08,{KEY_A[:30]},x,999,7,,,", GOOD_ROW, "S4,1,xyz,,,,,,")
    )
    where = [(p.row, p.column) for p in report.problems]
    assert where == [
        (3, "Key"),
        (3, "Starting Code"),
        (3, "Count"),
        (3, "Time Divider"),
        (3, "Restricted Digit Mode"),
        (5, "Key"),
        (4, "Serial Number"),
    ]
    assert "also on row 2" in report.problems[-1].message
    assert [r.serial for r in report.records] == ["SLT1"]
    assert report.rows == 4


def test_blank_optional_columns_take_the_defaults() -> None:
    report = read_device_list(csv_text(f"S1,516959010,{KEY_A},,,,,,"))
    assert report.ok
    assert report.warnings == ()
    (record,) = report.records
    assert (record.count, record.time_divider, record.restricted, record.test_code) == (
        1,
        1,
        False,
        None,
    )


def test_blank_starting_code_is_derived_from_the_key_with_a_warning() -> None:
    report = read_device_list(csv_text(f"S1,,{KEY_A},,,,,,"))
    assert report.ok
    assert report.records[0].starting_code == derive_starting_code(bytes.fromhex(KEY_A))
    (warning,) = report.warnings
    assert (warning.row, warning.column, warning.severity) == (2, "Starting Code", "warning")


def test_a_lost_leading_zero_is_a_warning_and_the_value_is_kept() -> None:
    report = read_device_list(csv_text(f"S1,12345678,{KEY_A},1,1,0,,,"))
    assert report.ok
    assert report.records[0].starting_code == 12_345_678
    (warning,) = report.warnings
    assert (warning.row, warning.column) == (2, "Starting Code")
    assert "8 digits" in warning.message
    assert "012345678" in warning.message


def test_a_shared_key_is_a_warning() -> None:
    report = read_device_list(csv_text(GOOD_ROW, GOOD_ROW.replace("SLT1", "SLT2")))
    assert report.ok
    (warning,) = report.warnings
    assert (warning.row, warning.column) == (3, "Key")
    assert "row 2" in warning.message


@pytest.mark.parametrize("missing", COLUMNS)
def test_every_missing_column_is_a_problem(missing: str) -> None:
    columns = [c for c in COLUMNS if c != missing]
    index = COLUMNS.index(missing)
    cells = GOOD_ROW.split(",")
    del cells[index]
    report = read_device_list(csv_text(",".join(cells), header=",".join(columns)))
    assert not report.ok
    problem = report.problems[0]
    assert (problem.row, problem.column) == (1, missing)
    assert "missing" in problem.message


def test_header_problems() -> None:
    swapped = list(COLUMNS)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    row = GOOD_ROW.split(",")
    row[0], row[1] = row[1], row[0]
    report = read_device_list(csv_text(",".join(row), header=",".join(swapped)))
    assert report.ok
    assert "standard order" in report.warnings[0].message
    assert report.records[0].serial == "SLT1"

    lower = read_device_list(csv_text(GOOD_ROW + ",x", header=HEADER.lower() + ",Notes"))
    assert lower.ok
    assert any("unknown column 'Notes'" in str(w) for w in lower.warnings)
    assert any("read as 'Serial Number'" in str(w) for w in lower.warnings)

    twice = read_device_list(csv_text(GOOD_ROW + ",x", header=HEADER + ",Key"))
    assert [str(p) for p in twice.problems] == [
        "row 1, column J: the column Key appears twice; keep one"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\r\n\r\n", "empty"),
        (csv_text(GOOD_ROW.replace(",", ";"), header=HEADER.replace(",", ";")), "';'"),
        (csv_text(GOOD_ROW.replace(",", "\t"), header=HEADER.replace(",", "\t")), "tabs"),
        (csv_text(GOOD_ROW + ",extra"), "10 fields but the header has 9"),
        (csv_text('S1,"516959010'), "damaged"),
    ],
)
def test_file_level_problems(text: str, message: str) -> None:
    report = parse_device_list_csv(text)
    assert not report.ok
    assert message in str(report.problems[0])


def test_blank_rows_are_skipped_and_a_bom_is_fine() -> None:
    report = read_device_list("\ufeff" + csv_text(GOOD_ROW, ",,,,,,,,", "", " , ,,,,,,,"))
    assert report.ok
    assert report.rows == 1


def test_surrounding_spaces_are_ignored() -> None:
    report = read_device_list(csv_text(f" S1 , 516959010 , {KEY_A.upper()} ,1, 4 ,0,,, "))
    assert report.ok
    assert report.records[0].key.hex() == KEY_A


def test_raise_for_problems() -> None:
    read_device_list(csv_text(GOOD_ROW)).raise_for_problems()
    report = read_device_list(csv_text(*[f"S{i},x,{KEY_A},1,1,0,,," for i in range(12)]))
    with pytest.raises(
        DeviceListError, match=r"12 problem\(s\): row 2, column Starting Code.*2 more"
    ):
        report.raise_for_problems()


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DeviceListError, match="cannot read"):
        read_device_list(tmp_path / "missing.csv")
    binary = tmp_path / "list.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DeviceListError, match="not UTF-8"):
        read_device_list(binary)


# --- JSON --------------------------------------------------------------------------------------


def _json(*devices: object) -> str:
    return json.dumps({"format": "paygkit-device-list", "version": 1, "devices": list(devices)})


def test_json_problems_name_the_device_and_field() -> None:
    good = DeviceRecord("A1", 5, bytes.fromhex(KEY_A)).json_object()
    report = read_device_list(
        _json(
            good,
            {**good, "serial_number": "A2", "starting_code": 5.17e8},
            {**good, "serial_number": "A3", "key": 123},
            {**good, "serial_number": "A4", "time_divider": 0, "extra": 1},
            {**good},
            "nonsense",
        )
    )
    assert [str(p) for p in report.problems] == [
        "device 2, starting_code: starting_code must be a whole number, not 517000000.0",
        "device 3, key: key must be text (a number loses its leading zeros)",
        "device 4, time_divider: the time divider is 0; it must be from 1 to 255",
        "device 6: each device must be an object with the device fields",
        "device 5, serial_number: serial A1 is also on device 1; every device needs its own serial",
    ]
    assert [str(w) for w in report.warnings] == ["device 4: unknown field 'extra' is ignored"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"format": "other", "devices": []}', "format must be"),
        ('{"format": "paygkit-device-list", "version": 9, "devices": []}', "version 9"),
        ('{"format": "paygkit-device-list", "version": 1}', "devices"),
    ],
)
def test_json_file_problems(text: str, message: str) -> None:
    report = read_device_list(text + "\n")
    assert not report.ok
    assert message in str(report.problems[0])


def test_json_bare_list_and_restricted_bool() -> None:
    item = DeviceRecord("A1", 5, bytes.fromhex(KEY_A)).json_object()
    item["restricted_digit_mode"] = True
    item["starting_code"] = "000000005"
    report = read_device_list(json.dumps([item]))
    assert report.ok
    assert report.records[0].restricted is True
    assert report.records[0].starting_code == 5
