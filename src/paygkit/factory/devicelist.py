"""The device list: the standard CSV (and a JSON form), a record type, a writer, a strict reader.

The CSV is the file factories hand to the token server (SPEC section 5, the
reference `example_device_list.csv`): comma separated, UTF-8, a header row,
every column present, in this order:

    Serial Number,Starting Code,Key,Count,Time Divider,Restricted Digit Mode,
    Hardware Model,Version,Test Code

The reader is strict: `read_device_list()` returns a `DeviceListReport` with
the records of the good rows and a `Problem` for every fault, naming the row
(as a spreadsheet numbers it: the header is row 1, the first device row 2) and
the column.  A file with problems must not be imported (`report.ok` is False);
warnings do not stop it.  Rules:

- `Serial Number`: required; 1-32 printable ASCII characters without spaces
  or ';' (what a device stores); unique in the file.
- `Starting Code`: a whole number 0..999999999.  Spreadsheet damage is named:
  `5.17E+08` (scientific notation: the exact code is lost), `516959010.0`,
  `516,959,010`.  A code of fewer than 9 digits is read as it stands (the
  value does not change) with a warning, since that is how a spreadsheet shows
  a code whose leading zeros it dropped.  Blank: derived from the key (SPEC
  2.3), with a warning.
- `Key`: required; exactly 32 hex characters (either case).  A key is never
  repeated in a message.  The same key on several devices is a warning (the
  spec allows one key per batch, but one per device is the recommendation).
- `Count`: a whole number 0..2^31-1; blank -> 1.
- `Time Divider`: a whole number 1..255; blank -> 1.
- `Restricted Digit Mode`: 0 or 1; blank -> 0.
- `Hardware Model`, `Version`: free text, may be blank.
- `Test Code`: blank (none) or 1-20 digits, only 1-4 on a restricted device.

Surrounding spaces of a value are ignored; a row of empty fields is skipped.

The JSON form carries the same records:
`{"format": "paygkit-device-list", "version": 1, "devices": [{...}, ...]}` with
the fields `serial_number`, `starting_code` (number), `key` (hex),
`count`, `time_divider`, `restricted_digit_mode` (0/1), `hardware_model`,
`version`, `test_code` (text or null); problems there name the device (1 for
the first) and the field.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paygkit.device.serial_number import serial_problem
from paygkit.token import (
    MAX_COUNT,
    MAX_STARTING_CODE,
    DecodeWindows,
    DeviceParams,
    derive_starting_code,
    hide_keys,
)

COLUMNS: tuple[str, ...] = (
    "Serial Number",
    "Starting Code",
    "Key",
    "Count",
    "Time Divider",
    "Restricted Digit Mode",
    "Hardware Model",
    "Version",
    "Test Code",
)
JSON_FIELDS: dict[str, str] = {
    "Serial Number": "serial_number",
    "Starting Code": "starting_code",
    "Key": "key",
    "Count": "count",
    "Time Divider": "time_divider",
    "Restricted Digit Mode": "restricted_digit_mode",
    "Hardware Model": "hardware_model",
    "Version": "version",
    "Test Code": "test_code",
}
JSON_FORMAT = "paygkit-device-list"
JSON_VERSION = 1

MAX_TEST_CODE_DIGITS = 20

_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+[.,][0-9]*")
_GROUPED = re.compile(r"[0-9]{1,3}(?:[ ,.'\u00a0][0-9]{3})+")

Severity = Literal["error", "warning"]


class DeviceListError(ValueError):
    """A device list cannot be used; the message names the problems (never a key)."""


# --- the record --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One device of the list: its identity, its token parameters and its batch settings."""

    serial: str
    starting_code: int
    key: bytes = field(repr=False)
    count: int = 1
    time_divider: int = 1
    restricted: bool = False
    hardware_model: str = ""
    version: str = ""
    test_code: str | None = None

    def __post_init__(self) -> None:
        problem = (
            serial_problem(self.serial)
            or _int_problem("starting code", self.starting_code, 0, MAX_STARTING_CODE)
            or _int_problem("count", self.count, 0, MAX_COUNT)
            or _int_problem("time divider", self.time_divider, 1, 255)
        )
        if problem is None and (not isinstance(self.key, bytes) or len(self.key) != 16):
            problem = "the key must be 16 bytes"
        if problem is None and not isinstance(self.restricted, bool):
            problem = "restricted must be True or False"
        if problem is None and self.test_code is not None:
            problem = bad_test_code(self.test_code, self.restricted)
        if problem is not None:
            raise DeviceListError(f"device {self.serial!r}: {problem}")

    @property
    def key_hex(self) -> str:
        return self.key.hex()

    def params(self, windows: DecodeWindows | None = None) -> DeviceParams:
        """The token parameters of this device (for paygkit.token.generate / decode)."""
        return DeviceParams(
            key=self.key,
            starting_code=self.starting_code,
            time_divider=self.time_divider,
            restricted_digits=self.restricted,
            windows=windows if windows is not None else DecodeWindows(),
        )

    def csv_row(self) -> list[str]:
        """The row in COLUMNS order; the starting code written with its 9 digits."""
        return [
            self.serial,
            f"{self.starting_code:09d}",
            self.key.hex(),
            str(self.count),
            str(self.time_divider),
            "1" if self.restricted else "0",
            self.hardware_model,
            self.version,
            self.test_code or "",
        ]

    def json_object(self) -> dict[str, Any]:
        return {
            "serial_number": self.serial,
            "starting_code": self.starting_code,
            "key": self.key.hex(),
            "count": self.count,
            "time_divider": self.time_divider,
            "restricted_digit_mode": 1 if self.restricted else 0,
            "hardware_model": self.hardware_model,
            "version": self.version,
            "test_code": self.test_code,
        }


def _int_problem(name: str, value: object, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"the {name} must be a whole number from {low} to {high}"
    return None


def bad_test_code(code: object, restricted: bool) -> str | None:
    if not isinstance(code, str) or not _DIGITS.fullmatch(code):
        return "the test code must be digits only"
    if len(code) > MAX_TEST_CODE_DIGITS:
        return (
            f"the test code has {len(code)} digits; a keypad takes at most {MAX_TEST_CODE_DIGITS}"
        )
    if restricted and set(code) - set("1234"):
        return "a restricted-digit device has keys 1-4 only, so its test code must use 1-4"
    return None


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One fault (or warning) of a device list, with where it is.

    `row`: in a CSV the spreadsheet row (header = 1, first device = 2), in JSON
    the device number (first = 1); None for the file as a whole.  `column`: the
    CSV column or JSON field; None for the whole row.
    """

    row: int | None
    column: str | None
    message: str
    severity: Severity = "error"
    row_label: str = "row"

    @property
    def where(self) -> str:
        parts = []
        if self.row is not None:
            parts.append(f"{self.row_label} {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column}" if self.row_label == "row" else self.column)
        return ", ".join(parts) or "file"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class DeviceListReport:
    """What a strict read found: the good records, the problems and the warnings."""

    records: tuple[DeviceRecord, ...]
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()
    rows: int = 0  # device rows read (blank rows not counted)
    form: str = "csv"

    @property
    def ok(self) -> bool:
        """True when the list has no problems (warnings allowed): it may be imported."""
        return not self.problems

    def raise_for_problems(self, limit: int = 10) -> None:
        """DeviceListError naming the first `limit` problems, if there are any."""
        if self.ok:
            return
        shown = "; ".join(str(problem) for problem in self.problems[:limit])
        more = len(self.problems) - limit
        tail = f"; and {more} more" if more > 0 else ""
        raise DeviceListError(
            f"the device list has {len(self.problems)} problem(s): {shown}{tail}; "
            "fix them (paygkit factory verify shows all of them)"
        )

    def __repr__(self) -> str:
        return (
            f"DeviceListReport(records={len(self.records)}, problems={len(self.problems)}, "
            f"warnings={len(self.warnings)}, form={self.form!r})"
        )


class _Collector:
    def __init__(self, row_label: str, names: Mapping[str, str] | None = None) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.row_label = row_label
        self.names = names  # standard column -> the name shown (JSON field names)

    def _column(self, column: str | None) -> str | None:
        if column is None or self.names is None:
            return column
        return self.names.get(column, column)

    def error(self, row: int | None, column: str | None, message: str) -> None:
        self.problems.append(Problem(row, self._column(column), message, "error", self.row_label))

    def warn(self, row: int | None, column: str | None, message: str) -> None:
        self.warnings.append(Problem(row, self._column(column), message, "warning", self.row_label))


# --- field checks ------------------------------------------------------------------------------


class _BadValueError(Exception):
    pass


def _whole_number(text: str, what: str, low: int, high: int, *, blank: int | None) -> int:
    if not text:
        if blank is None:
            raise _BadValueError(f"the {what} is missing")
        return blank
    if _DIGITS.fullmatch(text):
        value = int(text)
        if low <= value <= high:
            return value
        raise _BadValueError(f"the {what} is {value}; it must be from {low} to {high}")
    if _SCIENTIFIC.fullmatch(text):
        raise _BadValueError(
            f"the {what} '{text}' is in scientific notation (a spreadsheet changed it); write "
            "it as a whole number"
        )
    if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
        raise _BadValueError(f"the {what} is negative ({text}); it must be from {low} to {high}")
    raise _BadValueError(f"the {what} '{_short(text)}' is not a whole number from {low} to {high}")


def _short(text: str, limit: int = 24) -> str:
    """A value for a message: key-shaped runs of hex blanked out, then cut short."""
    text = hide_keys(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _starting_code(text: str) -> tuple[int | None, str | None]:
    """(value, warning); value None means derive it from the key."""
    if not text:
        return None, "the starting code is blank; it is derived from the key (SPEC 2.3)"
    if _DIGITS.fullmatch(text):
        if len(text) > 9:
            raise _BadValueError(
                f"the starting code has {len(text)} digits; it is a 9-digit number (0-999999999)"
            )
        if len(text) < 9:
            return int(text), (
                f"the starting code '{text}' has {len(text)} digits, not 9; read as "
                f"{int(text):09d} (a spreadsheet drops leading zeros; the value is the same, "
                "but keep the column as text)"
            )
        return int(text), None
    if _SCIENTIFIC.fullmatch(text):
        raise _BadValueError(
            f"the starting code '{text}' is in scientific notation: a spreadsheet rounded it "
            "and the exact code is lost; take it from the original list, with the column "
            "formatted as text"
        )
    if _DECIMAL.fullmatch(text):
        raise _BadValueError(
            f"the starting code '{_short(text)}' is written as a decimal number (a spreadsheet "
            "changed it); write the 9 digits only"
        )
    if _GROUPED.fullmatch(text):
        raise _BadValueError(
            f"the starting code '{_short(text)}' has digit grouping; write the 9 digits only"
        )
    if text.startswith("-"):
        raise _BadValueError("the starting code is negative; it must be from 0 to 999999999")
    raise _BadValueError(
        f"the starting code '{_short(text)}' is not a whole number from 0 to 999999999"
    )


def _key(text: str) -> bytes:
    if not text:
        raise _BadValueError("the key is missing; every device needs its 32-hex-character key")
    # First: a good key may look like a number in scientific notation ("1234e5678...").
    if len(text) == 32 and _HEX.fullmatch(text):
        return bytes.fromhex(text)
    if text[:2].lower() == "0x":
        raise _BadValueError("the key starts with 0x; write the 32 hex characters only")
    if _SCIENTIFIC.fullmatch(text):
        raise _BadValueError(
            "the key is in scientific notation: a spreadsheet took it for a number and the key "
            "is lost; take it from the original list, with the column formatted as text"
        )
    if not _HEX.fullmatch(text):
        raise _BadValueError("the key holds characters other than hex digits (0-9, a-f)")
    if len(text) != 32:
        hint = ""
        if len(text) < 32 and text.isdigit():
            hint = " (a spreadsheet may have taken it for a number and dropped leading zeros)"
        elif len(text) == 31:
            hint = " (a leading zero may have been dropped)"
        raise _BadValueError(f"the key has {len(text)} hex characters; a key has 32{hint}")
    return bytes.fromhex(text)


def _restricted(text: str) -> bool:
    if not text or text == "0":
        return False
    if text == "1":
        return True
    raise _BadValueError(
        f"the restricted digit mode is '{_short(text)}'; it must be 0 (standard keypad) "
        "or 1 (keys 1-4)"
    )


def _test_code(text: str, restricted: bool) -> str | None:
    if not text:
        return None
    if _SCIENTIFIC.fullmatch(text):
        raise _BadValueError(
            f"the test code '{text}' is in scientific notation (a spreadsheet changed it); "
            "take it from the original list"
        )
    problem = bad_test_code(text, restricted)
    if problem is not None:
        raise _BadValueError(problem)
    return text


def _check_row(
    values: Mapping[str, str], row: int, out: _Collector, present: set[str]
) -> DeviceRecord | None:
    """A record from the values of one row (standard column -> stripped text), or None."""
    before = len(out.problems)
    parsed: dict[str, Any] = {}

    def take(column: str, check: Callable[[str], Any]) -> None:
        try:
            parsed[column] = check(values.get(column, ""))
        except _BadValueError as bad:
            out.error(row, column, str(bad))

    serial = values.get("Serial Number", "")
    if not serial:
        out.error(row, "Serial Number", "the serial number is missing")
    else:
        problem = serial_problem(serial)
        if problem is not None:
            out.error(
                row,
                "Serial Number",
                problem.replace("the serial number", f"'{_short(serial, 40)}'"),
            )
        else:
            parsed["Serial Number"] = serial
    take("Key", _key)
    try:
        code, note = _starting_code(values.get("Starting Code", ""))
        parsed["Starting Code"] = code
        # Short codes are normal in JSON numbers; in a CSV they hint at a spreadsheet.
        short = code is not None and out.row_label == "device"
        if note is not None and "Starting Code" in present and not short:
            out.warn(row, "Starting Code", note)
    except _BadValueError as bad:
        out.error(row, "Starting Code", str(bad))
    take("Count", lambda t: _whole_number(t, "count", 0, MAX_COUNT, blank=1))
    take("Time Divider", lambda t: _whole_number(t, "time divider", 1, 255, blank=1))
    take("Restricted Digit Mode", _restricted)
    restricted = parsed.get("Restricted Digit Mode", False)
    take("Test Code", lambda t: _test_code(t, restricted))
    if len(out.problems) > before:
        return None
    key: bytes = parsed["Key"]
    code = parsed["Starting Code"]
    return DeviceRecord(
        serial=parsed["Serial Number"],
        starting_code=derive_starting_code(key) if code is None else code,
        key=key,
        count=parsed["Count"],
        time_divider=parsed["Time Divider"],
        restricted=restricted,
        hardware_model=values.get("Hardware Model", ""),
        version=values.get("Version", ""),
        test_code=parsed["Test Code"],
    )


def _check_across(records: list[tuple[int, DeviceRecord]], out: _Collector) -> list[DeviceRecord]:
    """Duplicate serials (problems, every later row) and shared keys (warnings)."""
    first_serial: dict[str, int] = {}
    first_key: dict[bytes, int] = {}
    good: list[DeviceRecord] = []
    for row, record in records:
        seen = first_serial.get(record.serial)
        if seen is not None:
            out.error(
                row,
                "Serial Number",
                f"serial {record.serial} is also on {out.row_label} {seen}; "
                "every device needs its own serial",
            )
            continue
        first_serial[record.serial] = row
        key_row = first_key.setdefault(record.key, row)
        if key_row != row:
            out.warn(
                row,
                "Key",
                f"the same key as {out.row_label} {key_row}; one key per device is safer",
            )
        good.append(record)
    return good


# --- CSV ---------------------------------------------------------------------------------------


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def parse_device_list_csv(text: str) -> DeviceListReport:
    """Read the CSV text of a device list, strictly (see the module documentation)."""
    out = _Collector("row")
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        out.error(None, None, "the file is empty; a device list starts with the header row")
        return DeviceListReport((), tuple(out.problems), form="csv")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as error:
        out.error(
            reader.line_num,
            None,
            f"the CSV is damaged ({error}); check the quotes on this line",
        )
        return DeviceListReport((), tuple(out.problems), form="csv")
    header = [cell.strip() for cell in rows[0]]
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        separator = "';'" if ";" in header[0] else "tabs"
        out.error(
            1,
            None,
            f"the columns are separated by {separator}; save the list as comma-separated "
            "CSV (UTF-8)",
        )
        return DeviceListReport((), tuple(out.problems), form="csv")
    index: dict[str, int] = {}
    by_lower = {column.lower(): column for column in COLUMNS}
    for position, name in enumerate(header):
        column = by_lower.get(name.lower())
        where = f"{_column_letter(position)}"
        if column is None:
            if name:
                out.warn(1, where, f"unknown column '{_short(name, 40)}' is ignored")
            continue
        if column in index:
            out.error(1, where, f"the column {column} appears twice; keep one")
            continue
        if name != column:
            out.warn(1, where, f"the column '{name}' is read as '{column}'")
        index[column] = position
    for column in COLUMNS:
        if column not in index:
            default = {
                "Count": " (blank values are 1)",
                "Time Divider": " (blank values are 1)",
                "Restricted Digit Mode": " (blank values are 0)",
            }.get(column, "")
            out.error(
                1,
                column,
                f"the column {column} is missing; every column of the standard list must be "
                f"present, even if empty{default}",
            )
    if not out.problems and [c for c in COLUMNS if c in index] != sorted(
        index, key=index.__getitem__
    ):
        out.warn(1, None, "the columns are not in the standard order: " + ",".join(COLUMNS))
    if "Serial Number" not in index or "Key" not in index:
        return DeviceListReport((), tuple(out.problems), tuple(out.warnings), form="csv")
    present = set(index)
    checked: list[tuple[int, DeviceRecord]] = []
    count = 0
    # The reader's line numbers count physical lines; a spreadsheet numbers records.
    for row_number, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if len(cells) != len(header):
            out.error(
                row_number,
                None,
                f"the row has {len(cells)} fields but the header has {len(header)}; "
                "every row needs every column (a value with a comma must be quoted)",
            )
            continue
        values = {column: cells[position].strip() for column, position in index.items()}
        record = _check_row(values, row_number, out, present)
        if record is not None:
            checked.append((row_number, record))
    good = _check_across(checked, out)
    if count == 0:
        out.warn(None, None, "the list holds no devices")
    return DeviceListReport(
        tuple(good), tuple(out.problems), tuple(out.warnings), rows=count, form="csv"
    )


def device_list_csv(records: Iterable[DeviceRecord]) -> str:
    """The standard CSV text: header, then one row per device, CRLF line ends."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(record.csv_row() for record in records)
    return buffer.getvalue()


# --- JSON --------------------------------------------------------------------------------------


def device_list_json(
    records: Iterable[DeviceRecord], *, batch: Mapping[str, Any] | None = None
) -> str:
    """The JSON form; `batch` adds a description of the batch (never a key)."""
    document: dict[str, Any] = {"format": JSON_FORMAT, "version": JSON_VERSION}
    if batch is not None:
        document["batch"] = dict(batch)
    document["devices"] = [record.json_object() for record in records]
    return json.dumps(document, indent=1) + "\n"


def _json_text(value: object, column: str) -> str:
    """A JSON value as the CSV text it stands for; _BadValueError for the wrong type."""
    if value is None:
        return ""
    if isinstance(value, bool):
        if column == "Restricted Digit Mode":
            return "1" if value else "0"
        raise _BadValueError("must be a number or text, not true/false")
    if isinstance(value, int):
        if column in ("Key", "Test Code"):
            raise _BadValueError("must be text (a number loses its leading zeros)")
        return str(value)
    if isinstance(value, float):
        raise _BadValueError(f"must be a whole number, not {value!r}")
    if isinstance(value, str):
        return value.strip()
    raise _BadValueError(f"must be a number or text, not {type(value).__name__}")


def parse_device_list_json(text: str) -> DeviceListReport:
    """Read the JSON form of a device list, strictly."""
    names = JSON_FIELDS
    out = _Collector("device", names)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        out.error(None, None, f"not valid JSON ({error.msg} at line {error.lineno})")
        return DeviceListReport((), tuple(out.problems), form="json")
    devices: object
    if isinstance(document, list):
        devices = document
    elif isinstance(document, dict):
        if document.get("format") != JSON_FORMAT:
            out.error(None, "format", f"not a device list: format must be '{JSON_FORMAT}'")
            return DeviceListReport((), tuple(out.problems), form="json")
        if document.get("version") != JSON_VERSION:
            out.error(
                None,
                "version",
                f"version {document.get('version')!r}; this paygkit reads version {JSON_VERSION}",
            )
            return DeviceListReport((), tuple(out.problems), form="json")
        devices = document.get("devices")
    else:
        devices = None
    if not isinstance(devices, list):
        out.error(None, "devices", "the list of devices is missing ('devices': [...])")
        return DeviceListReport((), tuple(out.problems), form="json")
    known = set(names.values())
    field_to_column = {value: key for key, value in names.items()}
    checked: list[tuple[int, DeviceRecord]] = []
    for number, item in enumerate(devices, start=1):
        if not isinstance(item, dict):
            out.error(number, None, "each device must be an object with the device fields")
            continue
        unknown = sorted(set(item) - known)
        for name in unknown:
            out.warn(number, None, f"unknown field '{_short(str(name), 40)}' is ignored")
        values: dict[str, str] = {}
        bad = False
        for field_name, column in field_to_column.items():
            try:
                values[column] = _json_text(item.get(field_name), column)
            except _BadValueError as error:
                out.error(number, column, f"{field_name} {error}")
                bad = True
        if bad:
            continue
        record = _check_row(values, number, out, set(COLUMNS))
        if record is not None:
            checked.append((number, record))
    good = _check_across(checked, out)
    return DeviceListReport(
        tuple(good), tuple(out.problems), tuple(out.warnings), rows=len(devices), form="json"
    )


# --- entry points ------------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DeviceListError(
            f"{name} is not UTF-8 text (byte {error.start}); save it as CSV UTF-8 "
            "(or it may be an encrypted list: paygkit factory decrypt)"
        ) from None


def parse_device_list(text: str) -> DeviceListReport:
    """Read device-list text, CSV or JSON (told apart by the first character)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        return parse_device_list_json(text)
    return parse_device_list_csv(text)


def read_device_list(source: str | bytes | os.PathLike[str]) -> DeviceListReport:
    """Read a device list strictly: a path (Path, or a str without a line break), or its text.

    CSV or JSON, told apart by the content.  Raises DeviceListError only when
    the file cannot be read at all; everything wrong inside it is in the report.
    """
    if isinstance(source, bytes):
        return parse_device_list(_decode(source, "the device list"))
    if isinstance(source, str) and ("\n" in source or "\r" in source or "," in source):
        return parse_device_list(source)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DeviceListError(
            f"cannot read the device list {path} ({error.strerror or error})"
        ) from None
    return parse_device_list(_decode(data, str(path)))


def write_device_list(
    records: Iterable[DeviceRecord],
    path: str | os.PathLike[str],
    *,
    form: Literal["csv", "json"] = "csv",
) -> None:
    """Write a device list file (readable by the owner only: it holds keys)."""
    text = device_list_csv(records) if form == "csv" else device_list_json(records)
    write_private(Path(path), text.encode("utf-8"))


def write_private(path: Path, data: bytes) -> None:
    """Write a file that holds secrets: created with mode 0600, replaced atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
