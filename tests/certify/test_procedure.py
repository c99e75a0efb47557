"""The certification procedure against the good simulator: every case passes, in every
device variant, and the procedure's definitions, selection and preparation hold."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import pytest

from paygkit.certify import (
    CASES,
    SUITES,
    CertificationError,
    CertParams,
    Report,
    Runner,
    SelectionError,
    Verdict,
    certify,
    select_cases,
)
from paygkit.certify.params import ParamsError
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Enter, PowerCycle, Waiting
from paygkit.device.host import DeviceLink
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from paygkit.device.state import DeviceConfig
from paygkit.token import TokenType, decode

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
SEED = 2024
CASE_BY_ID = {case.id: case for case in CASES}


def params(**changes: object) -> CertParams:
    values: dict[str, object] = {"seed": SEED, **changes}
    return CertParams.create(KEY, STARTING_CODE, **values)  # type: ignore[arg-type]


def run_on(
    sim: SimulatedDevice, cert: CertParams, *, cases: Sequence[str] = (), **options: object
) -> Report:
    with DeviceLink.for_simulator(sim) as link:
        return Runner(link, cert, **options).run(select_cases(cases))  # type: ignore[arg-type]


def verdicts(report: Report) -> dict[str, Verdict]:
    return {case.id: case.verdict for case in report.cases}


# --- the definitions --------------------------------------------------------------------------


def test_every_case_has_an_id_a_title_and_a_plain_statement() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    reference = [f"G{n}" for n in (1, 2, 3)] + ["G4A", "G4B"] + [f"G{n}" for n in range(5, 13)]
    assert [*reference, "U1", "U2", "U3"] == [i for i in ids if re.fullmatch(r"[GU]\d+[AB]?", i)]
    for case in CASES:
        assert case.suite in SUITES
        assert case.id.startswith(case.suite)
        assert case.title
        assert not case.title[0].islower()
        # A statement says what is checked and why: whole sentences, more than a title.
        assert len(case.checks) > len(case.title) + 40, case.id
        assert case.checks.endswith((".", ")")), case.id
    for suite in ("WP", "CS", "XO", "RD", "TD", "EX", "IN"):
        assert sum(case.suite == suite for case in CASES) >= 3, suite
    # The cases a failing device loses money in say what it loses, as a security failure.
    security = {case.id for case in CASES if case.security}
    assert {"G4A", "U2", "CS0", "CS3", "CS4", "XO1", "XO2", "XO3", "WP5", "WP6"} <= security
    for case in CASES:
        if case.security:
            assert case.security[0].isupper(), case.id
            assert "nobody paid for" in case.security, case.id
    assert CASE_BY_ID["XO1"].security.startswith("Not a difference from the reference: ")
    assert [case.id for case in CASES if case.seeded] == ["RS1"]


def test_a_plan_builds_every_case_from_the_device_parameters_alone() -> None:
    # Building is pure: the same parameters give the same tokens, and the counts only grow.
    first = Plan(params(time_divider=4))
    second = Plan(params(time_divider=4))
    for case in CASES:
        if case.applies(first.params) is None:
            assert case.build(first) == case.build(second), case.id
    assert first.issued == second.issued > 800


def test_the_reset_token_is_counter_sync_at_count_zero() -> None:
    for restricted in (False, True):
        plan = Plan(params(restricted=restricted))
        reset = plan.reset_token()
        refused = decode(plan.device, reset, last_count=1)
        assert (refused.token_type, refused.count) == (TokenType.ALREADY_USED, 0)
        new = decode(plan.device, reset, last_count=1, accept_reset_token=True)
        assert (new.token_type, new.count, new.last_count) == (TokenType.COUNTER_SYNC, 0, 0)
        late = decode(plan.device, reset, last_count=64, accept_reset_token=True)
        assert (late.token_type, late.count) == (TokenType.ALREADY_USED, 0)


def test_the_random_sequence_is_the_same_for_the_same_seed_and_another_for_another() -> None:
    rs1 = CASE_BY_ID["RS1"]
    first = rs1.build(Plan(params(seed=7)))
    assert first == rs1.build(Plan(params(seed=7)))
    assert first != rs1.build(Plan(params(seed=8)))
    longer = rs1.build(Plan(params(seed=7, sequence_length=100)))
    entries = [step for step in longer if isinstance(step, Enter) and not step.setup]
    assert len(entries) == 100
    assert entries[0].what.startswith("Entry 1 of 100: ")
    # The seed is in the first step, so a sheet or a report shows it.
    assert isinstance(longer[0], Enter)
    assert "seed 7, 100 entries" in longer[0].what


def test_the_random_sequence_enters_every_kind_of_token_in_every_kind_of_order() -> None:
    entries = [
        step
        for step in CASE_BY_ID["RS1"].build(Plan(params(sequence_length=300)))
        if isinstance(step, Enter) and not step.setup
    ]
    types = {step.expect.token_type for step in entries}
    assert {"ADD_TIME", "SET_TIME", "DISABLE_PAYG", "COUNTER_SYNC"} <= types
    outcomes = [next(iter(step.expect.outcomes)) for step in entries]
    assert {"APPLIED", "ALREADY_USED", "INVALID"} <= set(outcomes)
    whats = " | ".join(step.what for step in entries)
    for words in ("again", "never entered", "1 count ahead", "Counter Sync"):
        assert words in whats, words
    assert re.search(r"Counter Sync \(count \d+\), again, \d+ counts behind", whats)
    # Never a third invalid try before a token is accepted: no waiting period starts.
    invalid_since_applied = 0
    for outcome in outcomes:
        invalid_since_applied = 0 if outcome == "APPLIED" else invalid_since_applied
        invalid_since_applied += outcome == "INVALID"
        assert invalid_since_applied <= 2


@pytest.mark.first_pass_only(
    reason="many seeds of the same procedure; on the fallback the random sequence runs once "
    "(test_the_random_sequence_enters_every_kind_of_token_in_every_kind_of_order)"
)
def test_the_random_sequence_agrees_with_the_good_simulator_for_many_seeds() -> None:
    for seed in range(12):
        variant = {"time_divider": 7} if seed % 3 == 1 else {}
        if seed % 3 == 2:
            variant = {"restricted": True, "accepts_reset_token": True}
        cert = params(seed=seed, sequence_length=120, **variant)
        config = DeviceConfig(accept_reset_token=cert.accepts_reset_token)
        report = run_on(SimulatedDevice(RamMemory(), config=config), cert, cases=["RS1"])
        assert report.passed, (seed, report.case("RS1").message)


def test_the_invalid_token_matches_no_count_the_procedure_reaches() -> None:
    plan = Plan(params())
    invalid = plan.invalid_token()
    assert len(invalid) == 9
    assert decode(plan.device, invalid, last_count=20_000).token_type is TokenType.INVALID


def test_outside_wp_no_case_enters_more_than_two_invalid_tokens_in_a_row() -> None:
    # So the procedure also runs where the waiting period cannot be switched off.
    plan = Plan(params())
    for case in CASES:
        if case.suite == "WP" or case.applies(plan.params) is not None:
            continue
        run = 0
        for step in case.build(plan):
            if isinstance(step, Enter):
                refused = step.expect.outcomes.isdisjoint({"APPLIED", "ALREADY_USED", "BLOCKED"})
                run = run + 1 if refused else 0
                assert run <= 2, case.id


def test_wp_cases_switch_the_waiting_period_on_and_back_off_even_on_failure() -> None:
    plan = Plan(params())
    for case in CASES:
        if case.applies(plan.params) is not None:
            continue
        steps = case.build(plan)
        switches = [step for step in steps if isinstance(step, Waiting)]
        if case.suite == "WP":
            assert isinstance(steps[0], Enter)  # a genuine token first: no invalid tries
            assert steps[1] == switches[0] == Waiting(True)
            assert switches[-1] == Waiting(False, cleanup=True)
            assert steps[-1] == switches[-1]
        else:
            assert not switches, case.id


def test_time_and_power_are_steps_of_their_own() -> None:
    plan = Plan(params())
    needs = {
        case.id: {type(step).__name__ for step in case.build(plan)} & {"Wait", "PowerCycle"}
        for case in CASES
        if case.applies(plan.params) is None
    }
    assert needs["G12"] == {"Wait"}
    assert needs["WP3"] == {"Wait", "PowerCycle"}
    assert needs["WP4"] == set()
    timed = {"G12", "WP1", "WP2", "WP3", "WP5", "WP6"}
    assert {case for case, kinds in needs.items() if kinds} == timed
    # WP5 is switched off for hours; WP6 has its clock moved, which only a simulator can do.
    wp5, wp6 = (
        next(step for step in CASE_BY_ID[case].build(plan) if isinstance(step, PowerCycle))
        for case in ("WP5", "WP6")
    )
    assert (wp5.off_seconds, wp5.rtc_forward) == (2 * 3600, 0)
    assert wp6.rtc_forward == 86_400


# --- selection --------------------------------------------------------------------------------


def test_selection_by_suite_and_id_keeps_procedure_order_and_brings_prerequisites() -> None:
    assert [c.id for c in select_cases(["wp"])] == ["WP1", "WP2", "WP3", "WP4", "WP5", "WP6"]
    assert [c.id for c in select_cases(["RS1", "xo"])] == ["XO1", "XO2", "XO3", "RS1"]
    assert [c.id for c in select_cases(["G4A"])] == ["G2", "G3", "G4A"]
    assert [c.id for c in select_cases(["td,U2", "CS1"])] == ["U2", "TD1", "TD2", "TD3", "CS1"]
    everything = select_cases([], ["EX", "G11"])
    assert "G11" not in [c.id for c in everything]
    assert not any(c.suite == "EX" for c in everything)
    assert len(select_cases()) == len(CASES)
    with pytest.raises(SelectionError, match="'XY' is neither a suite"):
        select_cases(["XY"])


# --- the good device passes ------------------------------------------------------------------

VARIANTS: dict[str, dict[str, object]] = {
    "standard": {},
    "divider 4": {"time_divider": 4},
    "divider 7": {"time_divider": 7},  # 86400 / 7 is not whole: rounding
    "restricted": {"restricted": True},
    "restricted divider 24": {"restricted": True, "time_divider": 24},
}


@pytest.mark.parametrize("variant", VARIANTS, ids=list(VARIANTS))
def test_the_good_simulator_passes_every_applicable_case(variant: str) -> None:
    cert = params(**VARIANTS[variant])
    report = certify("sim:", cert)
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    skipped = {c.id for c in report.cases if c.verdict is Verdict.SKIPPED}
    if cert.restricted:
        assert skipped == {"IN3"}
    else:
        assert skipped == {"RD1", "RD2", "RD3"}
    assert not report.security_failures()
    # The random sequence ends with the device at the server's count: the next token works.
    assert report.server_count == report.device_count
    for case in report.cases:
        if case.verdict is Verdict.PASSED:
            assert case.steps, case.id
            assert all(step.status == "passed" for step in case.steps), case.id
            sent = [line for line in case.transcript if line.startswith(("> TOKEN", "> KEYS"))]
            assert sent, case.id
    # The server's count and the device's agree at the end; the device was set up at count 1.
    assert report.server_count == report.device_count
    assert report.cases[1].count_before == 1


def test_key_by_key_entry_passes_too() -> None:
    report = certify("sim:", params(time_divider=4), entry="keys", suites=["G", "U", "IN", "EX"])
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    g2 = report.case("G2")
    assert any(line.startswith("> KEYS *") for line in g2.transcript)


def test_g12_takes_48_simulated_hours_and_no_real_time() -> None:
    report = certify("sim:", params(), suites=["G12"])
    g12 = report.case("G12")
    assert g12.verdict is Verdict.PASSED
    assert "> ADVANCE 172800" in g12.transcript


def test_the_count_is_tracked_from_case_to_case() -> None:
    report = certify("sim:", params(), suites=["G", "U", "CS"])
    ran = [c for c in report.cases if c.verdict is Verdict.PASSED]
    for before, after in itertools.pairwise(ran):
        assert after.count_before == before.count_after
    # CS3's old Counter Sync tokens leave the count where its forward one put it.
    cs3 = report.case("CS3")
    forward = next(line for line in cs3.transcript if line.startswith("< RESULT APPLIED"))
    assert f"count={cs3.count_after} " in forward + " "
    assert report.server_count == report.device_count


def test_a_device_that_received_tokens_is_certified_from_its_count() -> None:
    cert = params(count=57)
    report = certify("sim:", cert)  # a blank simulator is set up at count 57
    assert report.passed
    assert report.cases[1].count_before == 57


# --- preparation ------------------------------------------------------------------------------


def provisioned_sim(**setup: object) -> SimulatedDevice:
    sim = SimulatedDevice(RamMemory())
    values: dict[str, object] = {
        "serial": "SLT220000001",
        "starting_code": STARTING_CODE,
        "key": bytes.fromhex(KEY),
    }
    sim.provision(**{**values, **setup})  # type: ignore[arg-type]
    return sim


@pytest.mark.parametrize(
    ("setup", "cert", "message"),
    [
        ({"count": 12}, params(), r"at count 12, but the procedure starts at count 1.*--count 12"),
        ({"time_divider": 4}, params(), "time divider 4, the parameters say 1"),
        ({"restricted_digits": True}, params(), "restricted digits"),
        ({}, params(serial="SLT220000002"), "is SLT220000001, not SLT220000002"),
    ],
)
def test_a_device_that_does_not_match_its_parameters_is_not_certified(
    setup: dict[str, object], cert: CertParams, message: str
) -> None:
    with pytest.raises(CertificationError, match=message) as caught:
        run_on(provisioned_sim(**setup), cert)
    assert KEY not in str(caught.value)


def test_a_set_up_device_with_matching_parameters_is_certified_as_it_is() -> None:
    report = run_on(provisioned_sim(), params(serial="SLT220000001"))
    assert report.passed
    assert not any(line.startswith("> SETUP") for line in report.preparation)


def test_parameters_are_checked_with_messages_that_name_the_problem() -> None:
    with pytest.raises(ParamsError, match="32 hex characters"):
        CertParams.create("abc")
    with pytest.raises(ParamsError, match="time divider"):
        params(time_divider=0)
    with pytest.raises(ParamsError, match="starting count"):
        params(count=-1)
    assert KEY not in repr(params())


def test_a_powered_off_simulator_is_switched_on() -> None:
    sim = SimulatedDevice(RamMemory())
    sim.power_off()
    report = run_on(sim, params())
    assert report.passed
    assert "> POWER ON" in report.preparation


def test_the_package_example_runs() -> None:
    import doctest

    import paygkit.certify

    assert doctest.testmod(paygkit.certify).failed == 0


class _RecordingLink:
    """Just enough of a DeviceLink to see the read timeout of each command."""

    target = "fake:"
    timeout = 5.0
    transcript = None

    def __init__(self) -> None:
        self.timeouts: dict[str, float | None] = {}
        self.count = 0  # the count the next RESULT line reports

    def command(self, line: str, *, check: bool = True, timeout: float | None = None) -> object:
        from paygkit.device.host import Answer, AnswerLine

        self.timeouts[line.split()[0]] = timeout
        result = f"RESULT APPLIED type=SET_TIME units=1 count={self.count} seconds_left=86400"
        word = line.split()[0]
        return Answer((AnswerLine.parse(result),), AnswerLine.parse(f"OK {word}"))


def test_a_timed_entry_waits_longer_than_its_limit_so_a_slow_device_fails_the_step() -> None:
    link = _RecordingLink()
    runner = Runner(link, params())  # type: ignore[arg-type]
    plan = Plan(params())
    timed, untimed = plan.make(TokenType.SET_TIME, days=1), plan.make(TokenType.SET_TIME, days=1)
    link.count = timed.count
    runner._execute(plan.applied(timed, within=5.0))
    assert link.timeouts["TOKEN"] == 15.0
    link.count = untimed.count
    runner._execute(plan.applied(untimed))
    assert link.timeouts["TOKEN"] is None
