"""Flashing devices over the device protocol on real ptys: the simulator for the real thing,
scripted fake devices for read-back mismatches, silence and lost answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from paygkit.device.host import ReadBack, open_link
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from paygkit.factory.batch import BatchSpec, CountStart, make_batch
from paygkit.factory.devicelist import DeviceRecord, read_device_list, write_device_list
from paygkit.factory.flash import (
    FlashLog,
    FlashOptions,
    FlashStation,
    PortError,
    Result,
    compare_read_back,
    yes_or_no,
)
from paygkit.token import generate
from tests.device.servers import pty_simulator, scripted_pty

KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
RECORD = DeviceRecord(
    "SLT1", 516959010, bytes.fromhex(KEY_HEX), count=3, time_divider=4, test_code="98765432"
)


def station(
    records: list[DeviceRecord] | tuple[DeviceRecord, ...],
    port: str,
    log: Path | None,
    *,
    confirm: Callable[[str], bool] | None = None,
    said: list[str] | None = None,
    **options: object,
) -> FlashStation:
    return FlashStation(
        records,
        port=port,
        operator="alice",
        log=FlashLog(log),
        options=FlashOptions(**options),  # type: ignore[arg-type]
        say=(lambda text, style: said.append(f"{style}: {text}")) if said is not None else None,
        confirm=confirm,
    )


def log_entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_no_key(text: str, records: list[DeviceRecord] | tuple[DeviceRecord, ...]) -> None:
    for record in records:
        assert record.key.hex() not in text.lower()


# --- the simulator on a real pty ---------------------------------------------------------------


@pytest.mark.parametrize("reference_form", [False, True])
def test_flash_then_a_token_from_the_csv_row_is_accepted(
    tmp_path: Path, reference_form: bool
) -> None:
    spec = BatchSpec(
        3,
        "SLT22",
        digits=7,
        time_divider=1 if reference_form else 4,
        count_start=CountStart.ONE if reference_form else CountStart.RANDOM,
        test_code=None if reference_form else "98765432",
    )
    csv_path = tmp_path / "devices.csv"
    write_device_list(make_batch(spec).records, csv_path)
    records = read_device_list(csv_path).records
    target = records[1]
    log = tmp_path / "flash.jsonl"
    said: list[str] = []
    with pty_simulator() as (path, sim):
        with station(records, path, log, said=said, reference_form=reference_form) as flasher:
            summary = flasher.run([f"{target.serial}\r\n"])
        assert [(o.serial, o.result, o.attempts) for o in summary.outcomes] == [
            (target.serial, Result.OK, 1)
        ]
        # The device now takes a token made from the CSV row alone, through the protocol.
        token = generate(target.params(), count=target.count, days=2)
        with open_link(path) as link:
            result = link.token(token.grouped)
            assert result.value == "APPLIED"
            assert result.int("count") == token.count
            assert result.int("units") == 2 * target.time_divider
            status = link.status()
        assert status.get("serial") == target.serial
        assert status.int("divider") == target.time_divider
        assert sim.provisioning is not None
        assert sim.provisioning.test_code == target.test_code
    (entry,) = log_entries(log)
    assert entry["serial"] == target.serial
    assert entry["operator"] == "alice"
    assert entry["port"] == path
    assert entry["result"] == "ok"
    assert entry["attempt"] == 1
    assert str(entry["time"]).endswith("Z")
    assert_no_key(log.read_text() + " ".join(said), records)
    assert said == [f"ok: {target.serial}: OK, read-back matches (attempt 1)"]


def test_a_device_already_set_up_is_not_retried(tmp_path: Path) -> None:
    sim = SimulatedDevice(RamMemory())
    sim.provision(serial="OTHER", starting_code=1, key=bytes(16))
    said: list[str] = []
    with pty_simulator(sim) as (path, _), station([RECORD], path, None, said=said) as flasher:
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.ALREADY_SET_UP, 1)
    assert "already set up (as OTHER)" in outcome.detail
    assert said[-1].startswith("error: SLT1: FAILED: already_set_up")
    assert sim.provisioning is not None
    assert sim.provisioning.serial == "OTHER"


def test_reference_form_on_a_set_up_device(tmp_path: Path) -> None:
    sim = SimulatedDevice(RamMemory())
    sim.provision(serial="OTHER", starting_code=1, key=bytes(16))
    with (
        pty_simulator(sim) as (path, _),
        station([RECORD], path, None, reference_form=True) as flasher,
    ):
        outcome = flasher.flash("SLT1")
    assert outcome.result is Result.ALREADY_SET_UP


def test_refused_parameters_are_not_retried(tmp_path: Path) -> None:
    # A restricted device list row with a test code the device cannot store is caught by
    # the record itself; a device may still refuse (here: a serial of 33 characters is
    # refused by the host before sending, so use a simulator that refuses count).
    def answer(line: str) -> bytes:
        if line == "HELLO":
            return b"HELLO protocol=1 simulator=0 provisioned=0\r\nOK HELLO\r\n"
        return b"ERR BAD_ARGUMENT count is too high for this firmware\r\n"

    with scripted_pty(answer) as (path, received), station([RECORD], path, None) as flasher:
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.REFUSED, 1)
    assert "count is too high" in outcome.detail
    assert [line.split()[0] for line in received] == ["HELLO", "SETUP"]


# --- scripted devices --------------------------------------------------------------------------


class FakeDevice:
    """Answers HELLO, SETUP and STATUS; `change` alters the read-back it gives.

    `locks`: once set up, it refuses another SETUP (the paygkit protocol); without,
    it takes every SETUP (like the reference firmware, or a fresh device per scan).
    """

    def __init__(
        self, change: Callable[[dict[str, str]], None] | None = None, *, locks: bool = False
    ) -> None:
        self.change = change
        self.locks = locks
        self.setups = 0
        self.silent_setups = 0  # SETUPs stored without an answer (a lost answer)
        self.provisioned: str | None = None

    def __call__(self, line: str) -> bytes | None:
        word = line.split()[0].upper()
        if word == "HELLO":
            flag = "1" if self.provisioned and self.locks else "0"
            return f"HELLO protocol=1 simulator=0 provisioned={flag}\r\nOK HELLO\r\n".encode()
        if word == "STATUS":
            return f"STATUS serial={self.provisioned or '-'}\r\nOK STATUS\r\n".encode()
        if word == "SETUP":
            if self.provisioned and self.locks:
                return b"ERR ALREADY_PROVISIONED already set up\r\n"
            self.setups += 1
            args = dict(word.split("=", 1) for word in line.split()[1:])
            self.provisioned = args["serial"]
            if self.silent_setups:
                self.silent_setups -= 1
                return None
            values = {
                "SN": args["serial"],
                "SC": f"{int(args['code']):09d}",
                "SK": args["key"].upper(),
                "divider": args.get("divider", "1"),
                "restricted": args.get("restricted", "0"),
                "test": args.get("test", "-"),
                "count": args.get("count", "1"),
            }
            if self.change is not None:
                self.change(values)
            return (
                f"\r\nSN:{values['SN']}\r\nSC:{values['SC']}\r\nSK:{values['SK']}\r\n\r\n"
                f"SETUP divider={values['divider']} restricted={values['restricted']} "
                f"test={values['test']} count={values['count']}\r\nOK SETUP\r\n"
            ).encode()
        return b"ERR UNKNOWN_COMMAND no\r\n"


def _wrong_code(values: dict[str, str]) -> None:
    values["SC"] = f"{int(values['SC']) + 1:09d}"


def _wrong_key(values: dict[str, str]) -> None:
    values["SK"] = "00" + values["SK"][2:]


def _wrong_count(values: dict[str, str]) -> None:
    values["count"] = "1"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (_wrong_code, "SC: sent 516959010, read back 516959011"),
        (_wrong_key, "SK: the key read back differs from the key sent"),
        (_wrong_count, "count: sent 3, read back 1"),
    ],
)
def test_a_wrong_read_back_is_retried_then_reported(
    tmp_path: Path, change: Callable[[dict[str, str]], None], detail: str
) -> None:
    device = FakeDevice(change)
    log = tmp_path / "flash.jsonl"
    said: list[str] = []
    with (
        scripted_pty(device) as (path, received),
        station([RECORD], path, log, said=said, retries=2) as flasher,
    ):
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.MISMATCH, 3)
    assert device.setups == 3
    assert detail in outcome.detail
    entries = log_entries(log)
    assert [(e["attempt"], e["result"]) for e in entries] == [
        (1, "mismatch"),
        (2, "mismatch"),
        (3, "mismatch"),
    ]
    assert all(detail in str(e["detail"]) for e in entries)
    assert said[0].startswith("error: SLT1: attempt 1 of 3 failed: mismatch: read-back differs")
    assert said[-1].startswith("error: SLT1: FAILED: mismatch")
    assert_no_key(log.read_text() + " ".join(said), [RECORD])
    assert any(line.startswith("SETUP serial=SLT1 ") for line in received)


def test_case_of_the_key_read_back_does_not_matter(tmp_path: Path) -> None:
    def lower(values: dict[str, str]) -> None:
        values["SK"] = values["SK"].lower()
        values["SC"] = str(int(values["SC"]))  # compared as a number

    with scripted_pty(FakeDevice(lower)) as (path, _), station([RECORD], path, None) as flasher:
        assert flasher.flash("SLT1").result is Result.OK


def test_a_silent_device_times_out(tmp_path: Path) -> None:
    log = tmp_path / "flash.jsonl"
    with (
        scripted_pty(lambda line: None) as (path, received),
        station([RECORD], path, log, retries=1, timeout=0.3) as flasher,
    ):
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.TIMEOUT, 2)
    assert "no answer from" in outcome.detail
    assert [e["result"] for e in log_entries(log)] == ["timeout", "timeout"]
    assert received == ["HELLO", "HELLO"]


def test_a_wrong_read_back_on_a_device_that_locks(tmp_path: Path) -> None:
    device = FakeDevice(_wrong_code, locks=True)
    with scripted_pty(device) as (path, _), station([RECORD], path, None) as flasher:
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.MISMATCH, 2)
    assert device.setups == 1
    assert "SC: sent 516959010, read back 516959011" in outcome.detail
    assert "refuses another setup: set it aside" in outcome.detail


def test_a_lost_setup_answer_leaves_the_device_unverified(tmp_path: Path) -> None:
    device = FakeDevice(locks=True)
    device.silent_setups = 1
    with (
        scripted_pty(device) as (path, _),
        station([RECORD], path, None, retries=2, timeout=0.3) as flasher,
    ):
        outcome = flasher.flash("SLT1")
    assert (outcome.result, outcome.attempts) == (Result.UNVERIFIED, 2)
    assert "set it aside" in outcome.detail


def test_the_same_serial_is_not_flashed_twice_without_confirmation(tmp_path: Path) -> None:
    log = tmp_path / "flash.jsonl"
    device = FakeDevice()  # a fresh device for every scan
    questions: list[str] = []

    def decline(question: str) -> bool:
        questions.append(question)
        return False

    with scripted_pty(device) as (path, _):
        with station([RECORD], path, log, confirm=decline) as flasher:
            first = flasher.flash("SLT1")
            second = flasher.flash("SLT1")
        assert (first.result, second.result) == (Result.OK, Result.SKIPPED)
        assert device.setups == 1
        assert "SLT1 was flashed already" in questions[0]
        assert "by alice" in questions[0]
        assert (
            "Flash SLT1 again? yes: send its setup to the device on the port again"
            in (questions[0])
        )
        # A later session reads the log: still asked; a yes flashes again.
        with station([RECORD], path, log, confirm=lambda q: True) as flasher:
            assert flasher.flash("SLT1").result is Result.OK
        assert device.setups == 2
        # --force: no question at all.
        with station([RECORD], path, log, confirm=decline, force=True) as flasher:
            assert flasher.flash("SLT1").result is Result.OK
        assert device.setups == 3
        assert len(questions) == 1
    assert [e["result"] for e in log_entries(log)] == ["ok", "skipped", "ok", "ok"]


def test_without_a_log_file_the_session_still_remembers(tmp_path: Path) -> None:
    device = FakeDevice()
    with scripted_pty(device) as (path, _), station([RECORD], path, None) as flasher:
        results = [o.result for o in flasher.run(["SLT1", "SLT1"]).outcomes]
    assert results == [Result.OK, Result.SKIPPED]


def test_scanned_input_unknown_serials_and_quit(tmp_path: Path) -> None:
    log = tmp_path / "flash.csv"
    other = DeviceRecord("SLT2", 1, bytes(16))
    device = FakeDevice()
    with scripted_pty(device) as (path, _), station([RECORD, other], path, log) as flasher:
        summary = flasher.run(
            ["\x02SLT1\x03\r\n", "\n", "   \n", "nope\n", "slt2\n", "quit\n", "SLT1\n"]
        )
    assert [(o.serial, o.result) for o in summary.outcomes] == [
        ("SLT1", Result.OK),
        ("nope", Result.UNKNOWN_SERIAL),
        ("SLT2", Result.OK),
    ]
    assert [o.serial for o in summary.failed] == ["nope"]
    # The log as CSV: a header and one row per attempt.
    lines = log.read_text().splitlines()
    assert lines[0] == "time,operator,port,serial,attempt,result,detail"
    assert [line.split(",")[3:6] for line in lines[1:]] == [
        ["SLT1", "1", "ok"],
        ["nope", "0", "unknown_serial"],
        ["SLT2", "1", "ok"],
    ]
    assert FlashLog(log).flashed().keys() == {"SLT1", "SLT2"}


def test_a_port_that_cannot_be_opened_is_not_retried(tmp_path: Path) -> None:
    with station([RECORD], str(tmp_path / "no-such-tty"), None, retries=2) as flasher:
        outcome = flasher.flash("SLT1")
    # Opening it again at once cannot help: one attempt, said plainly.
    assert (outcome.result, outcome.attempts) == (Result.LINK_ERROR, 1)
    assert "no such port" in outcome.detail
    assert "check the cable and --port" in outcome.detail


def test_the_port_is_checked_before_any_serial(tmp_path: Path) -> None:
    port = str(tmp_path / "no-such-tty")
    with station([RECORD], port, None) as flasher, pytest.raises(PortError) as raised:
        flasher.connect()
    assert f"cannot open the port {port}" in str(raised.value)
    device = FakeDevice()
    with scripted_pty(device) as (path, _), station([RECORD], path, None) as flasher:
        flasher.connect()
        assert flasher.flash("SLT1").result is Result.OK


@pytest.mark.parametrize(
    ("answer", "meaning"),
    [
        ("y\n", True),
        ("YES\r\n", True),
        ("n\n", False),
        ("no\n", False),
        ("\n", False),  # Enter alone: the default, no
        ("SLT2\n", None),  # a scanned serial is no answer: asked again
        ("\x02SLT1\x03\r\n", None),
        ("yess\n", None),
    ],
)
def test_yes_or_no(answer: str, meaning: bool | None) -> None:
    assert yes_or_no(answer) is meaning


def test_compare_read_back_checks_every_field() -> None:
    key = RECORD.key
    good = ReadBack("SLT1", 516959010, key, 4, False, "98765432", 3)
    assert compare_read_back(RECORD, good, reference_form=False) == []
    bad = ReadBack("SLT9", 5, bytes(16), 1, True, None, 7)
    assert compare_read_back(RECORD, bad, reference_form=False) == [
        "SN: sent SLT1, read back SLT9",
        "SC: sent 516959010, read back 000000005",
        "SK: the key read back differs from the key sent",
        "divider: sent 4, read back 1",
        "restricted: sent 0, read back 1",
        "test: sent 98765432, read back -",
        "count: sent 3, read back 7",
    ]
    three = ReadBack("SLT1", 516959010, key)
    assert compare_read_back(RECORD, three, reference_form=True) == []
    assert compare_read_back(RECORD, three, reference_form=False) == [
        "the device did not read back divider/restricted/test/count"
    ]
