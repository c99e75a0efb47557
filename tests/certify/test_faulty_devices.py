"""A certification suite that cannot fail is worthless: each deliberately faulty device
(tests/certify/faulty.py) must be caught, by the case that checks the behaviour it gets
wrong, while the cases that do not depend on that behaviour still pass."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from paygkit.certify import CertParams, Report, Runner, Verdict, select_cases
from paygkit.device.firmware import Firmware
from paygkit.device.host import DeviceLink
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.state import DeviceConfig
from paygkit.token import DeviceParams, TokenType, decode, generate
from tests.certify import faulty

pytestmark = pytest.mark.first_pass_only(
    reason="which faulty device each case catches does not depend on the token engine"
)

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
# A fixed seed: which cases a faulty device fails must not depend on the run.
SEED = 2024
EVERY_OTHER = frozenset({"*"})
_ALL = {case.id for case in select_cases()}
_WP = {case.id for case in select_cases(["WP"])}


@dataclass(frozen=True)
class Fault:
    name: str
    firmware: type[Firmware]
    caught_by: str
    message: str  # what the failure of `caught_by` must say (a regular expression)
    # Cases that must still pass; EVERY_OTHER: all the applicable cases but `caught_by`.
    must_pass: frozenset[str] = EVERY_OTHER
    params: dict[str, object] = field(default_factory=dict)
    config: DeviceConfig | None = None


FAULTS = [
    Fault(
        "accepts an older Add Time token after a Set Time token",
        faulty.OlderAddAfterSet,
        "U2",
        r"older Add Time .*expected ALREADY_USED.*answered APPLIED",
    ),
    Fault(
        "forgets the waiting period on reboot",
        faulty.ForgetsWaitOnReboot,
        "WP3",
        r"during the waiting period.*expected BLOCKED.*answered APPLIED",
        # Every power cycle during a wait ends it.
        must_pass=frozenset(_ALL - {"WP3", "WP5", "WP6"}),
    ),
    Fault(
        "treats a re-entered token as invalid",
        faulty.ReentryInvalid,
        "G4A",
        r"again\).*expected ALREADY_USED.*answered INVALID",
        # Every case that re-enters a token fails too, and only those.
        must_pass=frozenset(
            _ALL - {"G4A", "G4B", "U2", "U3", "EX3", "CS3", "XO1", "XO2", "XO3", "RS1"}
        ),
    ),
    Fault(
        "ignores the time divider",
        faulty.IgnoresDivider,
        "TD1",
        r"expected 21600 s left, the device shows 86400 s",
        # Only the cases that never check a time above zero can pass.
        must_pass=frozenset({"G1", "G6", "G9", "G10", "U3", "CS3", "CS4", "WP4"}),
        params={"time_divider": 4},
    ),
    Fault(
        "adds instead of setting",
        faulty.AddsInsteadOfSets,
        "G5",
        r"expected 2592000 s left, the device shows 2764800 s",
        # Everything up to G5 and whatever never sets a time over time left.
        must_pass=frozenset({"G1", "G2", "G3", "G4A", "G4B", "G9", "CS3", "CS4", "WP4"}),
    ),
    Fault(
        "cuts off the time left when an invalid token is entered",
        faulty.LocksOnInvalid,
        "G1",
        r"the entry changed the device: active_until 0 -> 1735689600",
    ),
    Fault(
        "counts the days the device was off against the next payment",
        faulty.CountsLateDays,
        "G12",
        r"expected 86400 s left, the device shows 0 s",
    ),
    Fault(
        "accepts the reset token at any count",
        faulty.AcceptsResetToken,
        "CS4",
        r"reset token.*answered APPLIED",
        params={"accepts_reset_token": True},
        config=faulty.reset_token_config(),
    ),
    Fault(
        "keeps the first 9 digits of a longer entry",
        faulty.TruncatesLongTokens,
        "IN2",
        r"extra digit.*answered APPLIED",
    ),
    Fault(
        "takes Counter Sync tokens only 64 counts ahead",
        Firmware,
        "CS2",
        r"Counter Sync .*70 counts ahead.*answered INVALID",
        # The random sequence sends Counter Sync tokens up to 95 counts ahead too.
        must_pass=frozenset(_ALL - {"CS2", "RS1"}),
        config=faulty.small_window_config(counter_sync=64),
    ),
    Fault(
        "lets the waiting period grow past 512 minutes",
        Firmware,
        "WP2",
        r"#12 in a row.*expected a wait of 30720 s \(twice 30720 s.*imposed 61440 s",
        config=faulty.uncapped_wait_config(),
    ),
    Fault(
        "starts the waiting period at the first invalid token",
        Firmware,
        "WP1",
        r"#1 in a row.*expected no waiting period yet, the device imposed 120 s",
        must_pass=frozenset(_ALL - _WP),
        config=faulty.unforgiving_wait_config(),
    ),
    Fault(
        "has no waiting period",
        Firmware,
        "WP1",
        r"#3 in a row.*expected a waiting period to start, the device imposed none",
        must_pass=frozenset(_ALL - {"WP1", "WP2", "WP3", "WP5", "WP6"}),
        config=faulty.no_waiting_period_config(),
    ),
    Fault(
        "does not end the run of invalid tries at a genuine token",
        faulty.KeepsInvalidCount,
        "WP4",
        r"step 3 \(status: No invalid tries counted after the genuine token\): expected 0 "
        r"invalid tries in a row, the device counts [1-9]",
        must_pass=frozenset(_ALL - _WP),
    ),
    Fault(
        "gives a long time instead of disabling PAYG",
        faulty.DisableAsLongTime,
        "G9",
        r"expected PAYG disabled \(payg=off seconds_left=unlimited active=1\); the device "
        r"shows active=1 payg=on",
        must_pass=frozenset(_ALL - {"G9", "G11", "U3", "RS1"}),
    ),
    Fault(
        "has no unordered entry of Add Time tokens",
        Firmware,
        "U1",
        r"expected APPLIED.*answered ALREADY_USED",
        # XO3 and RS1 enter older tokens never entered too.
        must_pass=frozenset(_ALL - {"U1", "XO3", "RS1"}),
        config=faulty.small_window_config(unordered=0),
    ),
    Fault(
        "takes the reset token on a new device, as the reference does",
        Firmware,
        "CS0",
        r"reset token.*count 1.*answered APPLIED",
        config=faulty.reset_token_config(),
    ),
    Fault(
        "follows the reference rule: an old Counter Sync moves the count back",
        faulty.ReferenceRule,
        "XO1",
        r"Counter Sync \(count \d+\) again \(round 2\).*expected ALREADY_USED.*answered APPLIED",
        # It also takes the reset token on a new device and an old Counter Sync anywhere.
        must_pass=frozenset(_ALL - {"CS0", "CS3", "XO1", "XO2", "XO3", "RS1"}),
    ),
    Fault(
        "loses its used counts when an Add Time token moves the count by more than 2",
        faulty.ForgetsUsedCountsAfterJump,
        "XO3",
        r"Add Time 1 day \(count \d+\) again, 6 counts behind.*expected ALREADY_USED.*"
        r"answered APPLIED",
        must_pass=frozenset(_ALL - {"XO3", "RS1"}),
    ),
    Fault(
        "lets its waiting period run on the RTC while it is off",
        faulty.WaitsOnRtcWhileOff,
        "WP5",
        r"during the waiting period.*expected BLOCKED.*answered APPLIED",
        must_pass=frozenset(_ALL - {"WP5", "WP6"}),
    ),
]


# Python-only: the faulty firmware is paygkit's model with a fault planted.  The good devices
# these are compared with run on each firmware.
FAULTY_FIRMWARE = pytest.mark.one_firmware("a faulty firmware is the Python model")


def cert_params(**changes: object) -> CertParams:
    return CertParams.create(KEY, STARTING_CODE, seed=SEED, **changes)  # type: ignore[arg-type]


def certify_device(sim: SimulatedDevice, cert: CertParams, **options: object) -> Report:
    with DeviceLink.for_simulator(sim) as link:
        return Runner(link, cert, **options).run(select_cases())  # type: ignore[arg-type]


def verdicts(report: Report) -> dict[str, Verdict]:
    return {case.id: case.verdict for case in report.cases}


@FAULTY_FIRMWARE
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_a_faulty_device_is_caught_by_the_right_case(fault: Fault) -> None:
    cert = cert_params(**fault.params)
    report = certify_device(faulty.FaultySimulator(fault.firmware, config=fault.config), cert)
    found = verdicts(report)

    assert not report.passed
    assert found[fault.caught_by] is Verdict.FAILED
    assert re.search(fault.message, report.case(fault.caught_by).message), report.case(
        fault.caught_by
    ).message
    ran = {case_id for case_id, verdict in found.items() if verdict is not Verdict.SKIPPED}
    must_pass = ran - {fault.caught_by} if fault.must_pass == EVERY_OTHER else fault.must_pass
    must_pass &= ran  # the suites that do not apply to these parameters are skipped
    assert len(must_pass) >= 8
    wrongly_failed = {case_id for case_id in must_pass if found[case_id] is not Verdict.PASSED}
    assert not wrongly_failed, [(c, report.case(c).message) for c in sorted(wrongly_failed)]


CONTROLS: dict[str, dict[str, object]] = {
    "standard": {},
    "divider 4": {"time_divider": 4},
    "accepts the reset token": {"accepts_reset_token": True},
}


@FAULTY_FIRMWARE
def test_every_fault_is_run_with_parameters_a_good_device_passes() -> None:
    assert all(fault.params in CONTROLS.values() for fault in FAULTS)


@pytest.mark.parametrize("control", CONTROLS, ids=list(CONTROLS))
def test_the_same_parameters_pass_on_a_good_device(control: str) -> None:
    # The control: what catches a fault is the fault, not the parameters or the case.
    cert = cert_params(**CONTROLS[control])
    config = faulty.reset_token_config() if cert.accepts_reset_token else None
    report = certify_device(SimulatedDevice(RamMemory(), config=config), cert)
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    for fault in FAULTS:
        if fault.params == CONTROLS[control]:
            assert verdicts(report)[fault.caught_by] is Verdict.PASSED


@FAULTY_FIRMWARE
def test_dropping_leading_zeros_is_caught_by_in3_and_fails_only_tokens_that_start_with_0() -> None:
    report = certify_device(faulty.FaultySimulator(faulty.DropsLeadingZeros), cert_params())
    assert verdicts(report)["IN3"] is Verdict.FAILED
    assert "answered MALFORMED" in report.case("IN3").message
    for case in report.failed():
        failed_step = next(step for step in case.steps if step.status == "failed")
        # The token typed when the device went wrong started with 0 ("* 086 562 021 #").
        assert re.search(r": \* 0", failed_step.action), (case.id, failed_step.action)


class SlowSession(CommandInterpreter):
    """A device that takes 6 seconds (on the test's clock) to check a token."""

    def __init__(self, sim: SimulatedDevice, clock: list[float]) -> None:
        super().__init__(sim, newline="\r\n")
        self.clock = clock

    def handle_line(self, line: str) -> list[str]:
        if line.upper().startswith("TOKEN"):
            self.clock[0] += 6.0
        return super().handle_line(line)


def test_a_device_too_slow_to_decode_is_caught_by_g8_alone() -> None:
    now = [1000.0]
    sim = SimulatedDevice(RamMemory())
    with DeviceLink.for_interpreter(SlowSession(sim, now)) as link:
        runner = Runner(link, cert_params(), clock=lambda: now[0])
        report = runner.run(select_cases(["G"]))
    assert {c.id for c in report.failed()} == {"G8"}
    assert "took 6.0 s to answer; at most 5 s allowed" in report.case("G8").message


def test_a_new_device_refuses_the_reset_token_and_cs0_checks_it_first() -> None:
    report = certify_device(SimulatedDevice(RamMemory()), cert_params())
    assert report.passed
    assert report.cases[0].id == "CS0"  # first, while the device is new
    assert verdicts(report)["CS0"] is Verdict.PASSED
    assert report.case("CS0").steps[0].observed.startswith("RESULT ALREADY_USED count=0")


def test_a_device_configured_to_take_the_reset_token_leaves_cs0_out_and_passes_cs4() -> None:
    cert = cert_params(accepts_reset_token=True)
    report = certify_device(SimulatedDevice(RamMemory(), config=faulty.reset_token_config()), cert)
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    assert verdicts(report)["CS0"] is Verdict.SKIPPED
    assert "--accepts-reset-token" in report.case("CS0").message
    assert verdicts(report)["CS4"] is Verdict.PASSED


@FAULTY_FIRMWARE
def test_a_failed_case_leaves_a_note_when_later_tokens_start_from_the_device_count() -> None:
    report = certify_device(faulty.FaultySimulator(faulty.AcceptsResetToken), cert_params())
    assert any("counts behind" in note and "from its count, 0" in note for note in report.notes)
    # The server's count still covers every token made, for the device list.
    assert report.server_count is not None
    assert report.server_count > 800


def _minus_one(match: re.Match[str]) -> str:
    return f"{match.group(1)}{int(match.group(2)) - 1}"


Replacement = str | Callable[[re.Match[str]], str]
MISREPORTS: dict[str, tuple[str, str, Replacement, str, str]] = {
    # name: (answer tag, pattern, replacement, case, what its failure says)
    "the count before the token": (
        "RESULT APPLIED", r"( count=)(\d+)", _minus_one, "G2",
        "expected count 3, the device answered 2",
    ),
    "Set Time as Add Time": (
        "RESULT APPLIED", r"type=SET_TIME", "type=ADD_TIME", "G2",
        "expected type SET_TIME, the device applied ADD_TIME",
    ),
    "days instead of units": (
        "RESULT APPLIED", r"( units=)(\d+)", _minus_one, "G2",
        "expected 1 units, the device applied 0",
    ),
    "always active": (
        "STATUS", r" active=0", " active=1", "G6",
        "expected active=0 with 0 s left",
    ),
    "no waiting period in its status": (
        "STATUS", r" blocked=\d+", " blocked=0", "WP1",
        "expected token entry to be blocked (blocked > 0); it is open",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", MISREPORTS, ids=list(MISREPORTS))
def test_a_device_that_misreports_is_caught(name: str) -> None:
    tag, pattern, replacement, case_id, message = MISREPORTS[name]
    session = faulty.RewritingSession(SimulatedDevice(RamMemory()), tag, pattern, replacement)
    with DeviceLink.for_interpreter(session) as link:
        report = Runner(link, cert_params()).run(select_cases([case_id]))
    assert message in report.case(case_id).message


ISSUE_KEY = "a29ab82edc5fbbc41ec9530f6dac86b1"
ISSUE_STARTING_CODE = 123456789
# openpaygo's codes for the token types.
REFERENCE_TYPES = {TokenType.ADD_TIME: 1, TokenType.COUNTER_SYNC: 4}


@FAULTY_FIRMWARE
def test_the_planted_reference_device_decides_as_the_reference_decoder_does() -> None:
    # openpaygo (the reference Python library) is a test-only oracle, never used by paygkit.
    decoder = pytest.importorskip("openpaygo.token_decode").OpenPAYGOTokenDecoder
    params = DeviceParams.create(ISSUE_KEY, ISSUE_STARTING_CODE)
    sync = generate(params, count=1, token_type=TokenType.COUNTER_SYNC)
    first = generate(params, count=sync.count, days=30)
    second = generate(params, count=first.count, days=30)
    paid = generate(params, count=5, days=1)
    high = generate(params, count=27, days=5)
    rollback = [sync, first, second] * 4
    old_add = [high, sync, paid, paid, paid]
    for entries in (rollback, old_add):
        # Count 1 marked used: with no used counts the reference returns None for them and
        # fails on the next older token (a known fault of it, SPEC 3).
        reference_count, reference_used = 1, [1]
        count = 1
        used: tuple[int, ...] = (1,)
        for token in entries:
            _, kind, found, updated = decoder.decode_token(
                token.digits, ISSUE_KEY, reference_count, reference_used, ISSUE_STARTING_CODE
            )
            planted = faulty.reference_rule_decode(
                params, token.digits, last_count=count, used_counts=used
            )
            # Both take every entry: 240 days for the 60 paid, 8 days for the 6 paid.
            assert planted.accepted, (token.count, planted)
            assert (kind, found) == (REFERENCE_TYPES[planted.token_type], planted.count)
            reference_count = found if kind == 4 else max(reference_count, found)
            reference_used = updated
            count, used = planted.last_count, planted.used_counts
    # paygkit's own rule takes each count once.
    state = decode(params, sync.digits, last_count=1)
    taken = [state.count]
    for token in rollback[1:]:
        result = decode(
            params, token.digits, last_count=state.last_count, used_counts=state.used_counts
        )
        if result.accepted:
            taken.append(result.count)
            state = result
    assert taken == [3, 4, 6]
