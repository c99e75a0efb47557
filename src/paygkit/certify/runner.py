"""Running the procedure against a device, through the device protocol only.

The runner talks to the device over a `paygkit.device.host.DeviceLink`
(TOKEN, KEYS, STATUS; on a simulator also ADVANCE, CLOCK, POWER and CONFIG)
and compares every answer with the step's expectation.

Before the cases it checks the device: a blank one is set up with the
parameters; a set-up one must show the same time divider, digit mode and
serial, and must be at the count the procedure starts from.  It switches the
waiting period off where it can (simulator, certification build); where it
cannot, the procedure still works (see `paygkit.certify.cases`).

Time: on a simulator, time stands still unless the runner moves it, so time
left is compared to the second and G12's 48 hours are one ADVANCE.  On a real
device (HELLO simulator=0) a case that needs time to pass or a power cycle
asks the operator (when one is given) or is skipped, and time left is
compared within the seconds that have passed since the time was set.  A
case that moves the device's clock by itself (WP6) runs on a simulator only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, NoReturn, Protocol

from paygkit import __version__
from paygkit.certify.cases import Case
from paygkit.certify.params import DEFAULT_SEQUENCE_LENGTH, DEFAULT_SERIAL, CertParams
from paygkit.certify.plan import NotApplicableError, Plan
from paygkit.certify.results import CaseResult, Report, StepRecord, Verdict
from paygkit.certify.steps import (
    WAIT_CAP_SECONDS,
    Check,
    Enter,
    Expect,
    Outcome,
    PowerCycle,
    Step,
    Wait,
    Waiting,
    needs_clock,
    needs_power,
    needs_time,
    step_action,
    step_expected,
)
from paygkit.device.firmware import OutcomeKind
from paygkit.device.host import Answer, DeviceError, DeviceLink, LinkError
from paygkit.device.serial_number import serial_matches
from paygkit.device.wire import (
    PROTOCOL_VERSION,
    UNLIMITED,
    AnswerLine,
    ErrLine,
    ErrorCode,
    ResultLine,
    StatusLine,
)
from paygkit.token import SECONDS_PER_DAY, TokenType, decode, duration_text

EntryMode = Literal["token", "keys"]


class Operator(Protocol):
    """A person at the device, for what the protocol cannot do on a real device."""

    def perform(self, instruction: str) -> bool:
        """Ask for `instruction` to be done; True once done, False to skip the case."""
        ...


class CertificationError(Exception):
    """The device cannot be certified as it is (wrong count, other parameters, no protocol).

    The message says what is wrong and how to fix it; it never holds the key.
    """


class _StepFailedError(Exception):
    def __init__(self, message: str, observed: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.observed = observed


class _OperatorSkipError(Exception):
    pass


def _fail(message: str, observed: str = "") -> NoReturn:
    raise _StepFailedError(message, observed)


class Runner:
    """Runs cases against one device and collects a `Report`.

    `entry`: how tokens are entered, whole (TOKEN) or key by key (KEYS).
    `operator`: asked to let time pass or to power-cycle a real device; without
    one such cases are skipped.  `clock`: monotonic seconds (tests replace it).
    `on_case`: called with each finished case (progress output).
    `count_from_device`: start from the count the device shows (STATUS) instead of
    refusing a device at another count than `params.count`.
    """

    def __init__(
        self,
        link: DeviceLink,
        params: CertParams,
        *,
        entry: EntryMode = "token",
        operator: Operator | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_case: Callable[[CaseResult], None] | None = None,
        count_from_device: bool = False,
    ) -> None:
        self.link = link
        self.params = params
        self.entry = entry
        self.operator = operator
        self.clock = clock
        self.on_case = on_case
        self.plan = Plan(params)
        self.simulator = False
        self.waiting_switchable = False
        self.notes: list[str] = []
        self.device: dict[str, str] = {}
        self._lines: list[str] = []
        self._anchor = clock()
        self._snapshot: StatusLine | None = None
        self._last_wait = 0
        self._aborted: str | None = None
        self.count_from_device = count_from_device
        # Set when the device refuses a genuine token before accepting any: with a wrong
        # key every case would fail the same way, so the rest are not run.
        self.stopped: str | None = None
        self._stopped_at = ""
        self._case_id = ""
        self._accepted = False
        # Dividers that do not divide a day leave a second of rounding per token
        # to the firmware's choice.
        self._slack = 0 if SECONDS_PER_DAY % params.time_divider == 0 else 4

    # -- the run ------------------------------------------------------------------------------

    def run(self, cases: Sequence[Case]) -> Report:
        """Prepare the device, run `cases` in order, and report.  CertificationError if the
        device cannot be certified as it is; LinkError if the link fails while preparing."""
        started = datetime.now(UTC).replace(microsecond=0).isoformat()
        begin = time.perf_counter()
        report = Report(
            target=self.link.target,
            device={},
            parameters=self.params.public(),
            entry=self.entry,
            interactive=self.operator is not None,
            started=started,
            paygkit_version=__version__,
        )
        previous = self.link.transcript
        self.link.transcript = self._log
        try:
            self._lines = report.preparation
            self.prepare()
            report.device = dict(self.device)
            report.parameters = self.params.public()  # the count may come from the device
            for case in cases:
                result = self._run_case(case)
                report.cases.append(result)
                if self.on_case is not None:
                    self.on_case(result)
            self._lines = []
            if self.stopped is not None:
                self.notes.append(f"Stopped: {self.stopped}.")
            report.server_count = self.plan.issued
            if self._aborted is None:
                try:
                    report.device_count = _number(self._status(), "count")
                except (_StepFailedError, LinkError):
                    report.device_count = None
        finally:
            self.link.transcript = previous
        report.notes = list(self.notes)
        report.seconds = time.perf_counter() - begin
        return report

    def _log(self, line: str) -> None:
        self._lines.append(line)

    # -- preparation --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Identify the device, set it up if blank, and check it is the one the parameters say.

        CertificationError when it cannot be certified as it is.
        """
        try:
            self._prepare()
        except _StepFailedError as error:
            raise CertificationError(error.message) from None

    def _prepare(self) -> None:
        try:
            hello = self.link.hello()
        except DeviceError as error:
            raise CertificationError(
                f"{self.link.target} refused HELLO ({error.code}); is it a paygkit protocol device?"
            ) from None
        if hello.protocol != PROTOCOL_VERSION:
            raise CertificationError(
                f"{self.link.target} speaks protocol {hello.get('protocol')!r}; this paygkit "
                f"certifies devices of protocol {PROTOCOL_VERSION} (docs/device-protocol.md)"
            )
        self.simulator = hello.simulator is True
        self.device = {
            name: hello.fields[name]
            for name in ("protocol", "model", "firmware", "simulator")
            if name in hello.fields
        }
        if self.simulator and hello.power is False:
            self._prepare_command("POWER ON")
            hello = self.link.hello()
        if hello.provisioned is False:
            self._setup()
        status = self._prepare_status()
        self._check_identity(status)
        answer = self.link.command("CONFIG waiting=off", check=False)
        if answer.ok:
            self.waiting_switchable = True
            self.notes.append("The waiting period was switched off for the procedure (CONFIG).")
        elif (
            isinstance(answer.final, ErrLine) and answer.final.error_code is ErrorCode.NOT_SUPPORTED
        ):
            self.notes.append(
                "The waiting period cannot be switched off on this device: it stays on. Outside "
                "the WP suite the procedure never enters more than two invalid tokens in a row."
            )
        else:
            raise CertificationError(f"the device refused CONFIG waiting=off: {answer.final}")
        status = self._prepare_status()
        blocked = _number(status, "blocked")
        if blocked:
            raise CertificationError(
                f"token entry on the device is blocked for {duration_text(blocked)} (the "
                "waiting period after invalid tokens); run the procedure when it has ended"
            )
        if _number(status, "invalid") and not self.waiting_switchable:
            self.notes.append(
                f"The device starts with {status.get('invalid')} invalid tries in a row; the "
                "first invalid token of the procedure may start a waiting period."
            )
        if self.simulator:
            self.notes.append(
                "Simulator: time is moved with ADVANCE and compared to the second; power "
                "cycles use POWER OFF / POWER ON."
            )
        elif self.operator is not None:
            self.notes.append(
                "Real device, interactive: the operator is asked to let time pass and to "
                "switch the device off and on; time left is compared within the seconds "
                "that passed."
            )
        else:
            self.notes.append(
                "Real device: cases that need time to pass or a power cycle are skipped (run "
                "with --interactive to be asked to do them); time left is compared within the "
                "seconds that passed."
            )
        self._anchor = self.clock()

    def _prepare_command(self, line: str) -> Answer:
        answer = self.link.command(line, check=False)
        if not answer.ok:
            raise CertificationError(f"the device refused {line.split()[0]}: {answer.final}")
        return answer

    def _prepare_status(self) -> StatusLine:
        line = self._prepare_command("STATUS").first_of(StatusLine)
        if line is None:
            raise CertificationError("the device answered STATUS without a STATUS line")
        return line

    def _setup(self) -> None:
        params = self.params
        serial = params.serial or DEFAULT_SERIAL
        try:
            answer = self.link.setup(
                serial=serial,
                starting_code=params.starting_code,
                key=params.key,
                time_divider=params.time_divider,
                restricted=params.restricted,
                test_code=params.test_code,
                count=params.count,
            )
            back = answer.read_back()
        except DeviceError as error:
            raise CertificationError(
                f"the blank device refused the setup: {error.code} {error.text}"
            ) from None
        except ValueError as error:
            raise CertificationError(f"cannot set up the device: {error}") from None
        wrong = [
            name
            for name, same in (
                ("serial number", back.serial == serial),
                ("starting code", back.starting_code == params.starting_code),
                ("key", back.key == params.key),
                ("time divider", back.time_divider in (None, params.time_divider)),
                ("digit mode", back.restricted in (None, params.restricted)),
                ("count", back.count in (None, params.count)),
            )
            if not same
        ]
        if wrong:
            raise CertificationError(
                f"the device read back a different {', '.join(wrong)} than was sent: its "
                "memory does not keep the setup; it cannot be certified"
            )
        self.notes.append(f"The device was blank: set up as {serial} with the parameters given.")

    def _check_identity(self, status: StatusLine) -> None:
        params = self.params
        if status.provisioned is False:
            raise CertificationError("the device is still not set up after SETUP")
        # A serial is typed or scanned in either case (serial_number.serial_matches).
        if (
            params.serial is not None
            and status.serial is not None
            and not serial_matches(params.serial, [status.serial])
        ):
            raise CertificationError(
                f"the device is {status.get('serial')}, not {params.serial}: connect the right "
                "device or give its serial number"
            )
        divider = status.divider
        if divider is not None and divider != params.time_divider:
            raise CertificationError(
                f"the device has time divider {divider}, the parameters say "
                f"{params.time_divider}: check --time-divider (or the device list's Time Divider)"
            )
        restricted = status.restricted
        if restricted is not None and restricted != params.restricted:
            mode = "restricted" if restricted else "standard"
            raise CertificationError(
                f"the device uses {mode} digits, the parameters say otherwise: check "
                "--restricted (or the device list's Restricted Digit Mode)"
            )
        count = _number(status, "count")
        if count != params.count and self.count_from_device:
            # A certified device is left at a high count; the next run starts from there.
            self.params = dataclasses.replace(params, count=count)
            self.plan = Plan(self.params)
            self.notes.append(
                f"The device is at count {count} (read with STATUS): the procedure starts there."
            )
        elif count != params.count:
            raise CertificationError(
                f"the device is at count {count}, but the procedure starts at count "
                f"{params.count}: a new device is at count 1; for a device that has received "
                f"tokens give its current count (--count {count}), or leave --count out to "
                "start from the count the device shows"
            )

    # -- one case -----------------------------------------------------------------------------

    def _run_case(self, case: Case) -> CaseResult:
        result = CaseResult(
            case.id, case.suite, case.title, case.checks, case.optional, security=case.security
        )
        self._lines = result.transcript
        self._case_id = case.id
        begin = time.perf_counter()
        try:
            self._case(case, result)
        except LinkError as error:
            result.verdict = Verdict.FAILED
            result.message = f"the link to the device failed: {error}"
            self._aborted = str(error)
        result.seconds = time.perf_counter() - begin
        return result

    def _skip(self, result: CaseResult, reason: str) -> None:
        result.verdict = Verdict.SKIPPED
        result.message = reason

    def _case(self, case: Case, result: CaseResult) -> None:
        if self._aborted is not None:
            return self._skip(result, "not run: the link to the device failed in an earlier case")
        if self.stopped is not None:
            return self._skip(
                result,
                f"not run: the run stopped at {self._stopped_at}, where the device refused a "
                "genuine token (the key or the starting code is probably wrong)",
            )
        reason = case.applies(self.params)
        if reason is not None:
            return self._skip(result, reason)
        try:
            status = self._status()
            count = _number(status, "count")
            blocked = _number(status, "blocked") if status.blocked is not None else 0
        except _StepFailedError as error:
            result.verdict = Verdict.FAILED
            result.message = error.message
            return None
        if blocked:
            # Only a real device gets here: an operator skipped the end of a waiting period.
            return self._skip(
                result,
                f"not run: token entry on the device is blocked for {duration_text(blocked)} "
                "(a waiting period left by an earlier case)",
            )
        result.count_before = count
        lag = self.plan.sync(count)
        if lag:
            self.notes.append(
                f"Before {case.id} the device was {lag} counts behind the tokens made so far "
                f"(it refused tokens it should have taken, or went back); the next tokens were "
                f"made from its count, {count}."
            )
        plan = self.plan.fork()
        try:
            steps = case.build(plan)
        except NotApplicableError as error:
            return self._skip(result, f"not applicable: {error}")
        missing = self._missing(steps)
        if missing is not None:
            return self._skip(result, missing)
        self.plan = plan
        result.steps = [
            StepRecord(step_action(step), step_expected(step), setup=_is_setup(step))
            for step in steps
        ]
        self._last_wait = 0
        failure: str | None = None
        skipped: str | None = None
        for number, (step, record) in enumerate(zip(steps, result.steps, strict=True), 1):
            cleanup = isinstance(step, Waiting) and step.cleanup
            if (failure is not None or skipped is not None) and not cleanup:
                continue
            try:
                record.observed = self._execute(step)
                record.status = "passed"
            except _StepFailedError as error:
                record.status = "failed"
                record.observed = error.observed
                if failure is None and skipped is None:
                    kind = "setup step" if record.setup else "step"
                    failure = f"{kind} {number} ({_short(step)}): {error.message}"
            except _OperatorSkipError as error:
                skipped = f"skipped by the operator at step {number}: {error}"
        try:
            result.count_after = _number(self._status(), "count")
        except _StepFailedError:
            result.count_after = None
        if failure is not None:
            result.verdict = Verdict.FAILED
            result.message = failure
            if case.seeded:
                result.message += self._replay_words()
        elif skipped is not None:
            self._skip(result, skipped)
        else:
            result.verdict = Verdict.PASSED
        return None

    def _replay_words(self) -> str:
        params = self.params
        length = ""
        if params.sequence_length != DEFAULT_SEQUENCE_LENGTH:
            length = f" --sequence-length {params.sequence_length}"
        return (
            f" (random sequence seed {params.seed}: paygkit certify --seed {params.seed}"
            f"{length} enters the same sequence again)"
        )

    def _missing(self, steps: list[Step]) -> str | None:
        """Why the case cannot run on this device as driven, or None."""
        if needs_clock(steps) and not self.simulator:
            return (
                "not applicable on a real device: needs its clock moved forward while it is "
                "off, which only a simulator can do (CLOCK); run the case on the firmware's "
                "simulator"
            )
        if self.simulator or self.operator is not None:
            return None
        wanted: list[str] = []
        longest = max((step.seconds for step in steps if isinstance(step, Wait)), default=0)
        if needs_time(steps):
            wanted.append(
                f"time to pass ({duration_text(longest)})"
                if longest
                else "time to pass (the waiting period)"
            )
        if needs_power(steps):
            wanted.append("a power cycle")
        if not wanted:
            return None
        return (
            f"SKIPPED on a real device: needs {' and '.join(wanted)}, which the protocol cannot "
            "do on a real device; run with --interactive to be asked, or certify on a simulator"
        )

    # -- steps --------------------------------------------------------------------------------

    def _execute(self, step: Step) -> str:
        if isinstance(step, Enter):
            return self._enter(step)
        if isinstance(step, Check):
            return self._check(step)
        if isinstance(step, Wait):
            return self._wait(step)
        if isinstance(step, PowerCycle):
            return self._power_cycle(step)
        return self._waiting(step)

    def _command(self, line: str, *, timeout: float | None = None) -> Answer:
        answer = self.link.command(line, check=False, timeout=timeout)
        if not answer.ok:
            _fail(f"the device refused {line.split()[0]}: {answer.final}", str(answer.final))
        return answer

    def _status(self) -> StatusLine:
        line = self._command("STATUS").first_of(StatusLine)
        if line is None:
            _fail("the device answered STATUS without a STATUS line")
        return line

    def _enter(self, step: Enter) -> str:
        if step.snapshot:
            self._snapshot = self._status()
        if step.sequence:
            line = f"KEYS {step.keys}"
        elif step.via == "token" or (step.via == "auto" and self.entry == "token"):
            line = f"TOKEN {step.keys}"
        else:
            line = f"KEYS *{step.keys}#"
        # A device slower than allowed must fail its step, not time the link out.
        timeout = None if step.within is None else max(self.link.timeout, 3 * step.within)
        began = self.clock()
        answer = self._command(line, timeout=timeout)
        elapsed = self.clock() - began
        results = answer.all_of(ResultLine)
        if len(results) != 1:
            _fail(f"expected one RESULT line, the device sent {len(results)}", str(answer.final))
        result = results[0]
        observed = str(result)
        if result.outcome is OutcomeKind.APPLIED:
            self._accepted = True
        elif self._refused_genuine(step, result):
            self._stopped_at = self._case_id
            self.stopped = (
                f"the device refused a genuine token ({step.what}) as INVALID and has accepted "
                "none in this run: the key or the starting code is probably wrong (check --key "
                "and --starting-code, or the device list row)"
            )
        _compare_result(
            step.expect,
            result,
            observed,
            self._last_wait,
            lambda count: _also_a_token_at(self.params, step.keys, count),
        )
        if result.outcome in (OutcomeKind.INVALID, OutcomeKind.MALFORMED):
            wait = _number(result, "wait")
            if wait:
                self._last_wait = wait
        if step.within is not None and elapsed > step.within:
            _fail(
                f"the device took {elapsed:.1f} s to answer; at most {step.within:g} s allowed",
                observed,
            )
        if result.outcome is OutcomeKind.APPLIED:
            self._move_anchor(result)
        return observed

    def _refused_genuine(self, step: Enter, result: ResultLine) -> bool:
        """A token made to be applied, refused as not a token of this device, while no
        token of the run has been applied yet (a device that took one has the right key)."""
        wanted = step.expect.outcomes
        return (
            result.outcome is OutcomeKind.INVALID
            and Outcome.APPLIED in wanted
            and Outcome.INVALID not in wanted
            and not self._accepted
        )

    def _move_anchor(self, result: ResultLine) -> None:
        """Remember when the countdown last started, for the tolerance on a real device."""
        if result.type is TokenType.SET_TIME:
            self._anchor = self.clock()
        elif result.type is TokenType.ADD_TIME:
            units, left = result.units, result.seconds_left
            if units is not None and isinstance(left, int):
                duration = units * SECONDS_PER_DAY // self.params.time_divider
                if left <= duration + self._slack + 1:
                    self._anchor = self.clock()

    def _tolerance(self) -> int:
        if self.simulator:
            return self._slack
        return math.ceil(max(0.0, self.clock() - self._anchor)) + 2 + self._slack

    def _check(self, step: Check) -> str:
        status = self._status()
        observed = " ".join(
            f"{name}={status.fields[name]}"
            for name in (
                "active",
                "payg",
                "seconds_left",
                "count",
                "used",
                "invalid",
                "blocked",
            )
            if name in status.fields
        )
        if step.seconds_left is not None:
            if status.payg is not True:
                _fail(
                    f"expected PAYG on with {step.text.lower()}; the device shows {observed}",
                    observed,
                )
            left = _number(status, "seconds_left")
            tolerance = self._tolerance()
            low = step.seconds_left - tolerance
            high = step.seconds_left + self._slack
            if not low <= left <= high:
                margin = f" (within {tolerance} s)" if tolerance else ""
                _fail(
                    f"expected {step.seconds_left} s left{margin}, the device shows {left} s "
                    f"({_signed(left - step.seconds_left)} s)",
                    observed,
                )
            active = left > 0
            if status.active not in (active, None) and status.test is not True:
                _fail(
                    f"expected active={int(active)} with {left} s left; the device shows "
                    f"{observed}",
                    observed,
                )
        if step.unlimited:
            shown = (status.payg, status.seconds_left, status.active)
            if shown != (False, UNLIMITED, True):
                _fail(
                    "expected PAYG disabled (payg=off seconds_left=unlimited active=1); the "
                    f"device shows {observed}",
                    observed,
                )
        if step.count is not None and _number(status, "count") != step.count:
            _fail(f"expected count {step.count}, the device shows {status.get('count')}", observed)
        if step.unchanged:
            before = self._snapshot
            if before is None:
                _fail("no status was read before the entry")
            changed = [
                name
                for name in ("count", "payg", "active_until", "used")
                if getattr(before, name) != getattr(status, name)
            ]
            if changed:
                detail = ", ".join(
                    f"{name} {before.get(name)} -> {status.get(name)}" for name in changed
                )
                _fail(f"the entry changed the device: {detail}", observed)
        blocked = _number(status, "blocked") if step.blocked != "any" else 0
        if step.blocked == "positive" and blocked <= 0:
            _fail("expected token entry to be blocked (blocked > 0); it is open", observed)
        if step.blocked == "zero" and blocked != 0:
            _fail(f"expected token entry open; it is blocked for {blocked} s", observed)
        if step.invalid is not None and _number(status, "invalid") != step.invalid:
            _fail(
                f"expected {step.invalid} invalid tries in a row, the device counts "
                f"{status.get('invalid')}",
                observed,
            )
        return observed

    def _wait(self, step: Wait) -> str:
        seconds = step.seconds
        if step.until_unblocked:
            seconds = _number(self._status(), "blocked")
            if seconds == 0:
                return "entry already open: nothing to wait for"
        if self.simulator:
            self._command(f"ADVANCE {seconds}")
            return f"simulated clock moved {duration_text(seconds)} (ADVANCE {seconds})"
        if step.until_unblocked:
            instruction = (
                f"The device's keypad is blocked for {duration_text(seconds)}: wait that long "
                "with the device switched on"
            )
        else:
            instruction = step.text
        self._ask(instruction)
        return "operator confirmed: " + instruction

    def _power_cycle(self, step: PowerCycle) -> str:
        if self.simulator:
            self._command("POWER OFF")
            # While off only the RTC moves: the tick source starts again at power-on.
            if step.off_seconds:
                self._command(f"ADVANCE {step.off_seconds}")
            done = f"POWER OFF, {step.off_seconds} s"
            if step.rtc_forward:
                self._command(f"CLOCK +{step.rtc_forward}")
                done += f", clock moved {step.rtc_forward} s forward"
            self._command("POWER ON")
            return f"{done}, POWER ON"
        self._ask(step.text)
        return "operator confirmed: " + step.text

    def _waiting(self, step: Waiting) -> str:
        state = "on" if step.enabled else "off"
        if not self.waiting_switchable:
            return f"cannot be switched on this device: left as shipped (on); wanted {state}"
        self._command(f"CONFIG waiting={state}")
        return f"waiting period {state}"

    def _ask(self, instruction: str) -> None:
        if self.operator is None:
            raise _OperatorSkipError(f"needs an operator: {instruction}")
        if not self.operator.perform(instruction):
            raise _OperatorSkipError(instruction)


def _also_a_token_at(params: CertParams, digits: str, count: int) -> bool:
    """Whether these digits are also a token of this device at `count`.

    A device answers an already-used token with the lowest count at which its digits
    match (paygkit.token.decode).  The code part of a standard token has about a million
    values, so over the hundreds of counts below the device's, a token made at one count
    matches another now and then: that answer is right, not a fault."""
    if count < 1:
        return False
    device = params.token_params()
    try:
        found = decode(
            device,
            digits,
            last_count=count - 1,
            # Every count of the unordered window below is taken, so the first count that
            # can answer is `count` itself.
            used_counts=range(max(0, count - device.windows.unordered), count),
        )
    except ValueError:
        return False
    return found.count == count


def _compare_result(
    expect: Expect,
    result: ResultLine,
    observed: str,
    last_wait: int,
    also_a_token_at: Callable[[int], bool],
) -> None:
    outcome = result.outcome
    # The procedure names outcomes by their protocol word, the name of OutcomeKind.
    if outcome is None or outcome.name not in expect.outcomes:
        wanted = " or ".join(sorted(expect.outcomes))
        _fail(f"expected {wanted} ({expect.text}); the device answered {result.value}", observed)
    if outcome is OutcomeKind.APPLIED:
        wanted_type = None if expect.token_type is None else TokenType[expect.token_type]
        if wanted_type is not None and result.type is not wanted_type:
            _fail(
                f"expected type {expect.token_type}, the device applied {result.get('type')}",
                observed,
            )
        if expect.units is not None and _number(result, "units") != expect.units:
            _fail(
                f"expected {expect.units} units, the device applied {result.get('units')}", observed
            )
    counted = outcome in (OutcomeKind.APPLIED, OutcomeKind.ALREADY_USED)
    if (
        expect.count is not None
        and counted
        and _number(result, "count") != expect.count
        and not (outcome is OutcomeKind.ALREADY_USED and also_a_token_at(_number(result, "count")))
    ):
        _fail(
            f"expected count {expect.count}, the device answered {result.get('count')}",
            observed,
        )
    if outcome in (OutcomeKind.INVALID, OutcomeKind.MALFORMED, OutcomeKind.BLOCKED):
        wait = _number(result, "wait")
        if expect.wait == "zero" and wait != 0:
            _fail(f"expected no waiting period yet, the device imposed {wait} s", observed)
        if expect.wait == "positive" and wait <= 0:
            _fail("expected a waiting period to start, the device imposed none", observed)
        if expect.wait == "doubled":
            doubled = min(2 * last_wait, WAIT_CAP_SECONDS) if last_wait else None
            if doubled is None or wait != doubled:
                _fail(
                    f"expected a wait of {doubled} s (twice {last_wait} s, at most "
                    f"{WAIT_CAP_SECONDS} s), the device imposed {wait} s",
                    observed,
                )
    refused = outcome in (OutcomeKind.INVALID, OutcomeKind.MALFORMED)
    if expect.invalid is not None and refused and _number(result, "invalid") != expect.invalid:
        _fail(
            f"expected invalid={expect.invalid} (invalid tries in a row), the device "
            f"answered {result.get('invalid')}",
            observed,
        )


def _number(line: AnswerLine, name: str) -> int:
    """A whole-number field of an answer line; a failed step if it is missing or not a number
    (`seconds_left=unlimited`)."""
    value = getattr(line, name, None)
    if not isinstance(value, int) or isinstance(value, bool):
        shown = "no" if value is None else f"{line.get(name)!r} as"
        _fail(f"the device's {line.tag} line has {shown} {name}", str(line))
    return value


def _signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def _short(step: Step) -> str:
    if isinstance(step, Enter):
        return f"enter {step.what}"
    if isinstance(step, Check):
        return "status: " + step.text
    return step.text


def _is_setup(step: Step) -> bool:
    return isinstance(step, Enter | Check) and step.setup
