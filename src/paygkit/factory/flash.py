"""Flashing devices on the production line, over the device protocol, with read-back.

For each serial number scanned (a barcode reader types it and presses Enter)
or typed, the station looks the device up in the device list, sends its
parameters (`SETUP ...`, or the reference `#serial;code;key` line), reads back
what the device stored (`SN:`, `SC:`, `SK:` and, for `SETUP`, the `SETUP`
line) and compares every field: the serial exactly, the starting code as a
number, the key as bytes (hex in any case), and for `SETUP` the time
divider, restricted mode, test code and count.  A mismatch, a timeout or a
device error is said plainly and the setup is tried again (`retries`).

Every attempt is written to the flashing log (who, when, which port, which
serial, which attempt, the result, a detail), never the key.  A serial that
the log shows flashed already is not flashed again unless `force` is set or
the operator confirms.

A device keeps the first setup it accepts (`ERR ALREADY_PROVISIONED`
afterwards), so a retry after a mismatch or a lost answer usually finds the
device set up already: it is then reported as one to set aside, since what it
holds cannot be checked.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from paygkit.device.host import (
    DEFAULT_TIMEOUT,
    Answer,
    DeviceError,
    DeviceLink,
    LinkError,
    LinkTimeoutError,
    ReadBack,
    open_link,
)
from paygkit.device.serial_number import serial_matches
from paygkit.factory.devicelist import DeviceRecord

LOG_FIELDS = ("time", "operator", "port", "serial", "attempt", "result", "detail")
QUIT_WORDS = frozenset({"q", "quit", "exit", "end"})
YES_WORDS = frozenset({"y", "yes"})
NO_WORDS = frozenset({"", "n", "no"})


def yes_or_no(answer: str) -> bool | None:
    """True for yes, False for no (Enter alone too), None for anything else.

    On a scanning station the operator's next barcode may land on the question:
    a serial is not a "no", so the caller asks again.
    """
    word = _clean_scan(answer).lower()
    if word in YES_WORDS:
        return True
    if word in NO_WORDS:
        return False
    return None


class Result(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"  # the read-back differs from what was sent
    TIMEOUT = "timeout"  # no (complete) answer in time
    LINK_ERROR = "link_error"  # the port failed, closed or gave a garbled answer
    DEVICE_ERROR = "device_error"  # the device answered ERR (other than the cases below)
    REFUSED = "refused"  # the device refused the parameters (ERR BAD_ARGUMENT)
    ALREADY_SET_UP = "already_set_up"  # the device holds a setup already
    UNVERIFIED = "unverified"  # set up by an earlier attempt whose answer was lost
    UNKNOWN_SERIAL = "unknown_serial"  # not in the device list
    SKIPPED = "skipped"  # flashed before; the operator did not confirm

    @property
    def failed(self) -> bool:
        return self is not Result.OK and self is not Result.SKIPPED


# Results after which another attempt can help.
_RETRY = frozenset({Result.MISMATCH, Result.TIMEOUT, Result.LINK_ERROR, Result.DEVICE_ERROR})


# --- comparing the read-back -------------------------------------------------------------------


def compare_read_back(record: DeviceRecord, back: ReadBack, *, reference_form: bool) -> list[str]:
    """The fields the device stored differently from the record (no key value ever shown)."""
    differences: list[str] = []
    if back.serial != record.serial:
        differences.append(f"SN: sent {record.serial}, read back {back.serial}")
    if back.starting_code != record.starting_code:
        differences.append(
            f"SC: sent {record.starting_code:09d}, read back {back.starting_code:09d}"
        )
    if back.key != record.key:
        differences.append("SK: the key read back differs from the key sent")
    if reference_form:
        return differences
    if back.time_divider is None:
        differences.append("the device did not read back divider/restricted/test/count")
        return differences
    if back.time_divider != record.time_divider:
        differences.append(f"divider: sent {record.time_divider}, read back {back.time_divider}")
    if back.restricted != record.restricted:
        differences.append(
            f"restricted: sent {int(record.restricted)}, read back {int(bool(back.restricted))}"
        )
    if back.test_code != record.test_code:
        differences.append(
            f"test: sent {record.test_code or '-'}, read back {back.test_code or '-'}"
        )
    if back.count != record.count:
        differences.append(f"count: sent {record.count}, read back {back.count}")
    return differences


# --- the log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    time: str
    operator: str
    port: str
    serial: str
    attempt: int
    result: Result
    detail: str = ""

    def as_dict(self) -> dict[str, str | int]:
        return {
            "time": self.time,
            "operator": self.operator,
            "port": self.port,
            "serial": self.serial,
            "attempt": self.attempt,
            "result": self.result.value,
            "detail": self.detail,
        }


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FlashLog:
    """The flashing log: JSON Lines, or CSV when the file name ends in .csv; appended, synced.

    Each entry is on disk before the next device is handled, so a crash loses
    nothing that was logged.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[LogEntry] = []  # written in this session
        self._csv = self.path is not None and self.path.suffix.lower() == ".csv"

    def previous(self) -> Iterator[dict[str, str]]:
        """The entries of the log file (from earlier sessions too)."""
        if self.path is None or not self.path.exists():
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise OSError(f"cannot read the flashing log {self.path} ({error})") from None
        if self._csv:
            for row in csv.DictReader(io.StringIO(text)):
                yield {name: str(row.get(name) or "") for name in LOG_FIELDS}
            return
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                raise OSError(
                    f"the flashing log {self.path} is damaged on line {number}; repair it (it "
                    "is the record of which devices were flashed) or use another --log"
                ) from None
            if isinstance(item, dict):
                yield {name: str(item.get(name, "")) for name in LOG_FIELDS}

    def flashed(self) -> dict[str, dict[str, str]]:
        """Serial -> the entry of its last successful flash (log file and this session)."""
        done: dict[str, dict[str, str]] = {}
        for entry in self.previous():
            if entry["result"] == Result.OK.value:
                done[entry["serial"]] = entry
        if self.path is None:
            for logged in self.entries:
                if logged.result is Result.OK:
                    done[logged.serial] = {k: str(v) for k, v in logged.as_dict().items()}
        return done

    def write(self, entry: LogEntry) -> None:
        self.entries.append(entry)
        if self.path is None:
            return
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", encoding="utf-8", newline="") as handle:
            if self._csv:
                writer = csv.DictWriter(handle, LOG_FIELDS, lineterminator="\n")
                if new:
                    writer.writeheader()
                writer.writerow(entry.as_dict())
            else:
                handle.write(json.dumps(entry.as_dict()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


# --- the station -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlashOptions:
    retries: int = 2  # further attempts after the first
    reference_form: bool = False
    force: bool = False
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class FlashOutcome:
    serial: str
    result: Result
    attempts: int
    detail: str = ""


@dataclass
class FlashSummary:
    outcomes: list[FlashOutcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter[Result]:
        return Counter(outcome.result for outcome in self.outcomes)

    @property
    def failed(self) -> list[FlashOutcome]:
        return [outcome for outcome in self.outcomes if outcome.result.failed]


def _clean_scan(line: str) -> str:
    # Barcode readers may add control characters (STX/ETX) around the code.
    return "".join(ch for ch in line if " " <= ch <= "~").strip()


class PortError(LinkError):
    """The station's port cannot be opened: no attempt on any device can succeed."""


class FlashStation:
    """Flashes devices one after the other through one port.

    `say(text, style)` reports to the operator (style: "ok", "error", "warn",
    "info"); `confirm(question)` asks a yes/no question.
    """

    def __init__(
        self,
        records: Iterable[DeviceRecord],
        *,
        port: str,
        operator: str,
        log: FlashLog,
        options: FlashOptions | None = None,
        say: Callable[[str, str], None] | None = None,
        confirm: Callable[[str], bool] | None = None,
        link_factory: Callable[[], DeviceLink] | None = None,
    ) -> None:
        self.records = {record.serial: record for record in records}
        self.port = port
        self.operator = operator
        self.log = log
        self.options = options or FlashOptions()
        self._say = say or (lambda text, style: None)
        self._confirm = confirm or (lambda question: False)
        self._link_factory = link_factory or (lambda: open_link(port, timeout=self.options.timeout))
        self._link: DeviceLink | None = None
        self._flashed = log.flashed()
        self._set_up_already = False
        self._port_failed = False

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def __enter__(self) -> FlashStation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get_link(self) -> DeviceLink:
        if self._link is None or self._link.closed:
            try:
                self._link = self._link_factory()
            except LinkError as error:
                raise PortError(
                    f"cannot open the port {self.port}: {error}; check the cable and --port"
                ) from None
        return self._link

    def connect(self) -> None:
        """Open the port now: a wrong or missing port is said before any serial is scanned."""
        self._get_link()

    def _record(self, serial: str, attempt: int, result: Result, detail: str) -> None:
        self.log.write(
            LogEntry(utc_now(), self.operator, self.port, serial, attempt, result, detail)
        )

    def lookup(self, scanned: str) -> DeviceRecord | None:
        """The device a scan names (either case; None when unknown or only its case differs
        from two serials)."""
        matches = serial_matches(scanned, self.records)
        return self.records[matches[0]] if len(matches) == 1 else None

    def run(self, lines: Iterable[str]) -> FlashSummary:
        """Flash a device for each serial read from `lines`, until they end or 'quit'."""
        summary = FlashSummary()
        for line in lines:
            scanned = _clean_scan(line)
            if not scanned:
                continue
            if scanned.lower() in QUIT_WORDS:
                break
            summary.outcomes.append(self.flash(scanned))
        return summary

    def flash(self, scanned: str) -> FlashOutcome:
        """Flash the device with this serial (as scanned or typed)."""
        record = self.lookup(scanned)
        if record is None:
            detail = f"{scanned} is not in the device list ({len(self.records)} devices)"
            self._say(f"{detail}; check the label and the list", "error")
            self._record(scanned, 0, Result.UNKNOWN_SERIAL, detail)
            return FlashOutcome(scanned, Result.UNKNOWN_SERIAL, 0, detail)
        serial = record.serial
        before = self._flashed.get(serial)
        if before is not None and not self.options.force:
            question = (
                f"{serial} was flashed already ({before.get('time', '?')} by "
                f"{before.get('operator') or '?'} on {before.get('port') or '?'}). "
                f"Flash {serial} again? yes: send its setup to the device on the port again; "
                "no: skip it"
            )
            if not self._confirm(question):
                detail = "flashed before; not confirmed"
                self._say(f"{serial}: skipped ({detail})", "warn")
                self._record(serial, 0, Result.SKIPPED, detail)
                return FlashOutcome(serial, Result.SKIPPED, 0, detail)
        attempts = self.options.retries + 1
        result, detail = Result.LINK_ERROR, ""
        previous: tuple[Result, str] | None = None
        self._set_up_already = False
        for attempt in range(1, attempts + 1):
            result, detail = self._attempt(record, previous)
            previous = (result, detail)
            self._record(serial, attempt, result, detail)
            if result is Result.OK:
                self._flashed[serial] = {
                    "time": utc_now(),
                    "operator": self.operator,
                    "port": self.port,
                }
                self._say(f"{serial}: OK, read-back matches (attempt {attempt})", "ok")
                return FlashOutcome(serial, result, attempt, detail)
            # A device that holds a setup refuses every further attempt, and a port that
            # cannot be opened will not open on the next try either.
            final = (
                result not in _RETRY
                or attempt == attempts
                or self._set_up_already
                or self._port_failed
            )
            label = "FAILED" if final else f"attempt {attempt} of {attempts} failed"
            self._say(f"{serial}: {label}: {result.value}: {detail}", "error")
            if final:
                break
        return FlashOutcome(serial, result, attempt, detail)

    def _attempt(
        self, record: DeviceRecord, previous: tuple[Result, str] | None
    ) -> tuple[Result, str]:
        self._port_failed = False
        try:
            link = self._get_link()
        except PortError as error:
            self._port_failed = True
            return Result.LINK_ERROR, str(error)
        try:
            if not self.options.reference_form:
                hello = link.hello()
                if hello.get("provisioned") == "1":
                    return self._already_set_up(link, record, previous)
                answer = link.setup(
                    serial=record.serial,
                    starting_code=record.starting_code,
                    key=record.key,
                    time_divider=record.time_divider,
                    restricted=record.restricted,
                    test_code=record.test_code,
                    count=record.count,
                )
            else:
                answer = link.reference_setup(record.serial, record.starting_code, record.key)
            return self._check(record, answer)
        except DeviceError as error:
            if error.code == "ALREADY_PROVISIONED":
                return self._already_set_up(link, record, previous)
            if error.code == "BAD_ARGUMENT":
                return Result.REFUSED, f"the device refused the parameters: {error.text}"
            return Result.DEVICE_ERROR, f"the device answered ERR {error.code} {error.text}"
        except LinkError as error:
            kind = Result.TIMEOUT if isinstance(error, LinkTimeoutError) else Result.LINK_ERROR
            return kind, str(error)

    def _check(self, record: DeviceRecord, answer: Answer) -> tuple[Result, str]:
        try:
            back = answer.read_back()
        except LinkError as error:
            return Result.MISMATCH, str(error)
        differences = compare_read_back(record, back, reference_form=self.options.reference_form)
        if differences:
            return Result.MISMATCH, "read-back differs: " + "; ".join(differences)
        return Result.OK, "read-back matches"

    def _already_set_up(
        self, link: DeviceLink, record: DeviceRecord, previous: tuple[Result, str] | None
    ) -> tuple[Result, str]:
        self._set_up_already = True
        holder = "?"
        # A reference device may not know STATUS.
        with contextlib.suppress(LinkError, DeviceError):
            holder = link.status().get("serial") or "?"
        if previous is not None and holder in (record.serial, "?"):
            # The device kept an earlier attempt of this session and refuses another.
            if previous[0] is Result.MISMATCH:
                return Result.MISMATCH, (
                    f"{previous[1]}; the device kept those values and refuses another setup: "
                    "set it aside"
                )
            return Result.UNVERIFIED, (
                f"the device took an earlier attempt (it holds {holder}) but what it stored "
                "could not be read back; set it aside for checking"
            )
        return Result.ALREADY_SET_UP, (
            f"the device on the port is already set up (as {holder}) and keeps its key; "
            "connect a blank device"
        )
