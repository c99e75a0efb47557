"""Certifying a device that is not a simulator (HELLO simulator=0): over real TCP and a real
pty, with the time- and power-dependent cases skipped, or done by an operator, and with
time that really passes while the procedure runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from paygkit.certify import CertParams, Report, Runner, Verdict, certify, select_cases
from paygkit.device.host import DeviceLink
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.serve import PtyEndpoint, serve_pty
from paygkit.device.simulator import SimulatedDevice
from tests.certify import faulty

KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
TIME_CASES = {"G12", "WP1", "WP2", "WP3", "WP5"}
# Moves the clock of a device that is off: a simulator only, operator or not.
CLOCK_CASES = {"WP6"}


def cert(**changes: object) -> CertParams:
    values: dict[str, object] = {"seed": 31, **changes}
    return CertParams.create(KEY, STARTING_CODE, **values)  # type: ignore[arg-type]


def verdicts(report: Report) -> dict[str, Verdict]:
    return {case.id: case.verdict for case in report.cases}


def test_over_tcp_time_and_power_cases_are_skipped_with_a_clear_mark() -> None:
    sim = SimulatedDevice(RamMemory())  # its waiting period stays on: a production build
    with faulty.tcp_server(lambda: faulty.device_session(sim)) as target:
        report = certify(target, cert())

    assert report.device["simulator"] == "0"
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    skipped = {c.id: c.message for c in report.cases if c.verdict is Verdict.SKIPPED}
    assert set(skipped) >= TIME_CASES | CLOCK_CASES
    assert set(skipped) - TIME_CASES - CLOCK_CASES == {"RD1", "RD2", "RD3"}  # not applicable
    assert skipped["G12"].startswith("SKIPPED on a real device: needs time to pass (2 days)")
    assert "needs time to pass (the waiting period) and a power cycle" in skipped["WP3"]
    assert "--interactive" in skipped["WP1"]
    assert skipped["WP6"].startswith("not applicable on a real device: needs its clock moved")
    # Nothing was sent for a skipped case: no token of it reached the device.
    assert not [line for line in report.case("G12").transcript if line.startswith("> TOKEN")]
    # The waiting period could not be switched off, and the procedure passed with it on.
    assert any("cannot be switched off" in note for note in report.notes)
    assert "> CONFIG waiting=off" in report.preparation
    assert any(line.startswith("< ERR NOT_SUPPORTED") for line in report.preparation)
    assert verdicts(report)["WP4"] is Verdict.PASSED  # needs no time: it runs


class ScriptedOperator:
    """Does what it is asked on the simulator behind the 'real' device, and notes it."""

    def __init__(self, sim: SimulatedDevice, *, refuse: str | None = None) -> None:
        self.sim = sim
        self.refuse = refuse
        self.asked: list[str] = []

    def perform(self, instruction: str) -> bool:
        self.asked.append(instruction)
        if self.refuse is not None and self.refuse in instruction:
            return False
        if "switch it on again" in instruction:
            self.sim.power_off()
            self.sim.advance(2 * 3600 if "wait 2 hours" in instruction else 30)
            self.sim.power_on()
        elif "48 hours" in instruction:
            self.sim.advance(48 * 3600)
        elif "blocked for" in instruction:
            self.sim.advance(self.sim.status().blocked_seconds)
        else:  # pragma: no cover - an instruction this operator does not know
            return False
        return True


def run_real(sim: SimulatedDevice, params: CertParams, **options: object) -> Report:
    with DeviceLink.for_interpreter(faulty.device_session(sim)) as link:
        return Runner(link, params, **options).run(select_cases())  # type: ignore[arg-type]


def test_interactive_the_operator_lets_time_pass_and_cycles_the_power() -> None:
    sim = SimulatedDevice(RamMemory())
    operator = ScriptedOperator(sim)
    report = run_real(sim, cert(), operator=operator)
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    assert report.interactive
    assert {c.id for c in report.cases if c.verdict is Verdict.PASSED} >= TIME_CASES
    assert "Let 48 hours pass with the device switched on" in operator.asked
    assert "Switch the device off, wait 30 seconds, switch it on again" in operator.asked
    assert "Switch the device off, wait 2 hours, switch it on again" in operator.asked
    # Nobody is asked to move the clock: the case is not applicable on a real device.
    assert verdicts(report)["WP6"] is Verdict.SKIPPED
    assert not any("clock" in ask for ask in operator.asked)
    assert any(
        ask.startswith("The device's keypad is blocked for 2 min:") for ask in operator.asked
    )
    wp3 = report.case("WP3")
    assert any("operator confirmed: Switch the device off" in s.observed for s in wp3.steps)


def test_interactive_a_faulty_device_is_still_caught_by_the_operator_run_cases() -> None:
    sim = faulty.FaultySimulator(faulty.ForgetsWaitOnReboot)
    report = run_real(sim, cert(), operator=ScriptedOperator(sim))
    assert {c.id for c in report.failed()} == {"WP3", "WP5"}
    # A wait that runs while the device is off is found with the operator's long power-off.
    sim = faulty.FaultySimulator(faulty.WaitsOnRtcWhileOff)
    report = run_real(sim, cert(), operator=ScriptedOperator(sim))
    assert {c.id for c in report.failed()} == {"WP5"}


def test_interactive_a_case_the_operator_skips_is_skipped_and_the_rest_still_run() -> None:
    sim = SimulatedDevice(RamMemory())
    operator = ScriptedOperator(sim, refuse="blocked for 2 min:")
    report = run_real(sim, cert(), operator=operator)
    found = verdicts(report)
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    assert found["WP1"] is Verdict.SKIPPED
    assert "skipped by the operator at step" in report.case("WP1").message
    # WP1 left the keypad blocked; the next case says so instead of failing on it.
    assert found["WP2"] is Verdict.SKIPPED
    assert "blocked" in report.case("WP2").message
    assert found["G12"] is Verdict.PASSED


def test_time_that_passes_on_a_real_device_is_tolerated_but_not_a_wrong_time() -> None:
    # Each command line takes one second of the device's time and of the runner's clock.
    now = [0.0]

    def tick() -> None:
        now[0] += 1.0

    sim = SimulatedDevice(RamMemory())
    session = faulty.TickingSession(sim, 1, tick)
    with DeviceLink.for_interpreter(session) as link:
        report = Runner(link, cert(), clock=lambda: now[0]).run(select_cases())
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    g3 = report.case("G3").steps[-1]
    left = int(g3.observed.split("seconds_left=")[1].split()[0])
    assert 172_800 - 60 < left < 172_800  # seconds really passed between token and status

    wrong = faulty.FaultySimulator(faulty.IgnoresDivider)
    session = faulty.TickingSession(wrong, 1, tick)
    with DeviceLink.for_interpreter(session) as link:
        report = Runner(link, cert(time_divider=4), clock=lambda: now[0]).run(select_cases(["TD"]))
    assert verdicts(report)["TD1"] is Verdict.FAILED


@pytest.fixture
def pty_device() -> Iterator[tuple[str, SimulatedDevice]]:
    sim = SimulatedDevice(RamMemory())
    stop = threading.Event()
    opened: list[PtyEndpoint] = []
    ready = threading.Event()

    def on_ready(endpoint: PtyEndpoint) -> None:
        opened.append(endpoint)
        ready.set()

    thread = threading.Thread(
        target=serve_pty,
        kwargs={
            "interpreter": CommandInterpreter(sim, newline="\r\n"),
            "stop": stop,
            "ready": on_ready,
        },
        daemon=True,
    )
    thread.start()
    assert ready.wait(20), "the pty server did not start"
    try:
        yield opened[0].path, sim
    finally:
        stop.set()
        thread.join(20)


def test_a_simulator_served_on_a_pty_is_certified_like_a_serial_device(
    pty_device: tuple[str, SimulatedDevice],
) -> None:
    pytest.importorskip("serial")
    path, _ = pty_device
    report = certify(path, cert(time_divider=4), suites=["G1", "G4B", "U", "WP3"])
    assert report.passed, [(c.id, c.message) for c in report.failed()]
    assert report.device["simulator"] == "1"
    assert verdicts(report)["WP3"] is Verdict.PASSED  # POWER OFF / ON through the pty
    assert report.target == path
