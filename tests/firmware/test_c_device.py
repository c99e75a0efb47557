"""The C device logic (firmware/lib/pgk_device.c) against paygkit's Firmware model.

The same random runs of events (keys, whole tokens of every kind, garbage,
replays, time passing, RTC jumps, power cycles, setting changes, factory
setup, the test code) go to paygkit's `Firmware` on manual clocks and to the
C device in firmware/host/device_harness.c.  After every event both must
agree on the outcome, the feedback (kind and what it shows), the status,
the output switch and the non-volatile memory, byte for byte: so the C
device saves exactly when paygkit saves, and paygkit reads the C device's
memory as the model's own state.  The 80 published vectors go through both.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from paygkit.device.clocks import ManualClock, ManualTicks, RecordingFeedback
from paygkit.device.firmware import (
    Firmware,
    OutcomeKind,
    ProvisioningError,
    Status,
    TokenOutcome,
    display_time,
)
from paygkit.device.memory import RamMemory
from paygkit.device.ports import FeedbackKind
from paygkit.device.state import DeviceConfig, TamperFlag, TamperResponse, WaitingPeriod
from paygkit.device.storage import StateStore
from paygkit.token import DeviceParams, TokenType, generate, reset_token
from tests.firmware.conftest import (
    HOST_DIR,
    LIBRARY_DIR,
    SMALL_WINDOWS,
    WORKSHOP_DEFINES,
    Compiler,
    HostProgram,
)
from tests.reference import VECTORS_FILE

SOURCES = (
    HOST_DIR / "device_harness.c",
    LIBRARY_DIR / "pgk_device.c",
    LIBRARY_DIR / "pgk_token.c",
    LIBRARY_DIR / "pgk_siphash.c",
    LIBRARY_DIR / "pgk_storage.c",
)
KEY = "bc41ec9530f6dac86b1a29ab82edc5fb"
STARTING_CODE = 516959010
T0 = 1_700_000_000
# A build with PGK_RTC_32BIT (the reference product build, reference_harness) keeps
# RTC times in 32 bits and takes RTC values in 0 .. 2^32 - 2^16 only (pgk_port.h);
# paygkit takes any integer.  The generated runs start at T0 and move the RTC by at most
# some 10^7 seconds, far inside that range; Pair checks every step stays in it, so a run
# that left it would fail loudly rather than compare the two outside the domain that
# build promises.  test_rtc_near_the_top_of_its_range runs at the other end, above 2^31,
# where a signed 32-bit slip would show.
RTC_MAX = 2**32 - 2**16
# The reference product build of firmware/Makefile's library-size target, with the
# micro:bit's NOR flash: no extended tokens, no layout-1 reading, 32-bit RTC times.
REFERENCE_DEFINES = {
    "PGK_WITH_RESTRICTED": 1,
    "PGK_WITH_EXTENDED": 0,
    "PGK_NV_NEEDS_ERASE": 1,
    "PGK_STORAGE_READ_VERSION_1": 0,
    "PGK_RTC_32BIT": 1,
}
NV_SIZE = 1024

# The C enums, in their order (pgk_device.h, pgk_token.h).
OUTCOME_KINDS = (
    OutcomeKind.APPLIED,
    OutcomeKind.ALREADY_USED,
    OutcomeKind.INVALID,
    OutcomeKind.BLOCKED,
    OutcomeKind.TEST_CODE,
    OutcomeKind.MALFORMED,
    OutcomeKind.NOT_PROVISIONED,
)
TOKEN_TYPES = (
    TokenType.ADD_TIME,
    TokenType.SET_TIME,
    TokenType.DISABLE_PAYG,
    TokenType.COUNTER_SYNC,
)
FEEDBACK_KINDS = (
    FeedbackKind.INVALID,
    FeedbackKind.ALREADY_USED,
    FeedbackKind.TIME_CHANGED,
    FeedbackKind.COUNTER_SYNCED,
    FeedbackKind.PAYG_DISABLED,
    FeedbackKind.ENTRY_LOCKED,
    FeedbackKind.TEST_CODE,
    FeedbackKind.STATUS,
    FeedbackKind.TAMPER,
    FeedbackKind.KEY_PRESS,
)
TAMPER_NAMES = (
    (TamperFlag.RTC_SLOW, "RTC slow or stopped"),
    (TamperFlag.RTC_FAST, "RTC fast"),
    (TamperFlag.RTC_BACKWARDS, "RTC set back"),
)
STATUS_TEXTS = (
    "Active, unlimited",
    "Active, {} left",
    "Test mode",
    "Not provisioned",
    "Locked: clock tamper",
    "Inactive",
)
KEY_TEXTS = (
    "*{typing}",
    "Press * to start a token",
    "Key {key} not used: keys 1-4 only",
    "At most 20 digits",
    "Entry timed out",
)


def event_text(kind: int, detail: int, value: int, *, typing: str, key: str) -> str:
    """What paygkit's display shows for a C feedback event (MALFORMED: its prefix)."""
    feedback = FEEDBACK_KINDS[kind]
    wait = f", wait {display_time(value)}" if value else ""
    if feedback is FeedbackKind.INVALID:
        return ("Not a token: " if detail else "Invalid token") + wait
    if feedback is FeedbackKind.ALREADY_USED:
        return "Already used"
    if feedback is FeedbackKind.TIME_CHANGED:
        return ("Set " if detail else "+") + display_time(value)
    if feedback is FeedbackKind.COUNTER_SYNCED:
        return "Counter synced"
    if feedback is FeedbackKind.PAYG_DISABLED:
        return "PAYG disabled"
    if feedback is FeedbackKind.ENTRY_LOCKED:
        return (f"Wait {display_time(value)}", f"Test code limit{wait}", "Not provisioned")[detail]
    if feedback is FeedbackKind.TEST_CODE:
        return f"Test {display_time(value)}"
    if feedback is FeedbackKind.STATUS:
        return STATUS_TEXTS[detail].format(display_time(value))
    if feedback is FeedbackKind.TAMPER:
        names = ", ".join(text for flag, text in TAMPER_NAMES if flag & value)
        return f"Clock tamper ({names})" + (": locked until Set Time" if detail else "")
    return KEY_TEXTS[detail].format(typing=typing, key=key)


def matches_text(expected: str, py_text: str, c_kind: int, c_detail: int) -> bool:
    if FEEDBACK_KINDS[c_kind] is FeedbackKind.INVALID and c_detail:
        # paygkit names the format error in words; the C device only says which kind.
        prefix, _, wait = expected.partition(", wait")
        return py_text.startswith(prefix) and py_text.endswith(wait and ", wait" + wait)
    return py_text == expected


# -- the two devices -----------------------------------------------------------------


@dataclass
class Step:
    """What one event did, in a form both devices give."""

    what: str
    events: list[tuple[int, str]]
    state: dict[str, str] | None  # None while off
    memory: bytes


class CDevice:
    def __init__(self, harness: HostProgram) -> None:
        self._harness = harness

    def ask(self, request: str, *, key: str = "") -> tuple[str, list[tuple[int, int, int]], Any]:
        answer = self._harness.ask(request)
        words = answer.split(" ")
        assert words[0] == "ok", answer
        what, events_text = words[1], words[2].removeprefix("ev=")
        events = []
        if events_text != "-":
            for event in events_text.split(";"):
                kind, detail, value = map(int, event.split("."))
                events.append((kind, detail, value))
        state = None if words[3] == "off" else dict(w.split("=", 1) for w in words[3:])
        return what, events, state

    def memory(self) -> bytes:
        return bytes.fromhex(self._harness.ask("dump-nv"))


def config_of(base: DeviceConfig, waiting: bool, lock: bool, timeout: int) -> DeviceConfig:
    return replace(
        base,
        waiting_period=WaitingPeriod(enabled=waiting),
        tamper_response=TamperResponse.LOCK if lock else TamperResponse.REPORT,
        keypad_timeout_seconds=timeout,
    )


@dataclass
class PyDevice:
    clock: ManualClock = field(default_factory=lambda: ManualClock(T0))
    ticks: ManualTicks = field(default_factory=ManualTicks)
    memory: RamMemory = field(default_factory=lambda: RamMemory(NV_SIZE))
    feedback: RecordingFeedback = field(default_factory=RecordingFeedback)
    config: DeviceConfig = field(default_factory=DeviceConfig)
    firmware: Firmware | None = None

    def power_on(self) -> None:
        self.ticks.restart()
        self.firmware = Firmware(
            clock=self.clock,
            ticks=self.ticks,
            memory=self.memory,
            feedback=self.feedback,
            config=self.config,
        )


def outcome_text(outcome: TokenOutcome) -> str:
    kind = OUTCOME_KINDS.index(outcome.kind)
    token_type = TOKEN_TYPES.index(outcome.token_type) if outcome.token_type in TOKEN_TYPES else 0
    limit = int(outcome.message.startswith("Test code limit"))
    return (
        f"outcome={kind},{token_type},{outcome.units or 0},{outcome.count or 0},"
        f"{outcome.wait_seconds},{limit}"
    )


def status_fields(status: Status, *, output: bool) -> dict[str, str]:
    return {
        "now": str(status.now),
        "active": str(int(status.active)),
        "payg": str(int(status.payg_enabled)),
        "left": str(-1 if status.seconds_left is None else status.seconds_left),
        "until": str(status.active_until),
        "count": str(status.count),
        "used": ",".join(map(str, status.used_counts)) or "-",
        "invalid": str(status.invalid_attempts),
        "blocked": str(status.blocked_seconds),
        "tamper": str(int(status.tamper)),
        "test": str(int(status.test_active)),
        "typing": status.typing or "-",
        "restricted": str(int(status.restricted_digits)),
        "divider": str(status.time_divider),
        "provisioned": str(int(status.provisioned)),
        "serial": status.serial or "-",
        "out": str(int(output)),
    }


class Pair:
    """Both devices, fed the same events and compared after each."""

    def __init__(
        self,
        harness: HostProgram,
        base: DeviceConfig | None = None,
        *,
        flash: bool = False,
        start: int = T0,
        extended: bool = True,
    ) -> None:
        # On NOR flash (PGK_NV_NEEDS_ERASE) the store erases a half before
        # rewriting it, so the bytes past a record differ from paygkit's
        # in-place memory: there the states read back are compared instead.
        self.flash = flash
        # False for a build without extended tokens: generated ones are then standard.
        self.extended = extended
        self.c = CDevice(harness)
        self.base = base if base is not None else DeviceConfig()
        self.py = PyDevice(config=self.base, clock=ManualClock(start))
        self.c.ask("power off")
        self.c.ask("wipe")
        self.c.ask(f"rtc {start}")
        self.c.ask("config 1 0 30")
        self.entered: list[str] = []
        self.steps = 0
        self.run("power on")

    @property
    def firmware(self) -> Firmware:
        assert self.py.firmware is not None
        return self.py.firmware

    def _py(self, request: str) -> str:
        """Carry out `request` on the model; what it did, as the harness says it."""
        py = self.py
        command, *args = request.split(" ")
        if command == "power":
            if args[0] == "off":
                py.firmware = None
            elif py.firmware is None:
                py.power_on()
                return "power=0"
            return "-"
        if command == "config":
            waiting, lock, timeout = map(int, args)
            py.config = config_of(self.base, bool(waiting), bool(lock), timeout)
            if py.firmware is not None:
                py.power_on()
                return "power=0"
            return "-"
        if command == "advance":
            py.clock.advance(int(args[0]))
            if py.firmware is not None:
                py.ticks.advance(int(args[0]))
                py.firmware.poll()
            return "-"
        if command == "rtc":
            py.clock.set(int(args[0]))
            if py.firmware is not None:
                py.firmware.poll()
            return "-"
        if command == "status":
            return "-"
        if py.firmware is None:
            return "refused-off"
        if command == "poll":
            py.firmware.poll()
            return "-"
        if command == "key":
            result = py.firmware.press(args[0])
            if isinstance(result, TokenOutcome):
                return outcome_text(result)
            return "status" if isinstance(result, Status) else "key"
        if command == "token":
            return outcome_text(py.firmware.enter_token("" if args[0] == "-" else args[0]))
        if command == "setup":
            serial, code, key, divider, restricted, test_code, count = args
            try:
                py.firmware.provision(
                    serial=serial,
                    starting_code=int(code),
                    key=key,
                    time_divider=int(divider),
                    restricted_digits=bool(int(restricted)),
                    test_code=None if test_code == "-" else test_code,
                    count=int(count),
                )
            except ProvisioningError:
                return "setup=refused"
            return "setup=0"
        raise AssertionError(request)

    def run(self, request: str) -> Step:
        self.steps += 1
        key = request[4:] if request.startswith("key ") else ""
        c_what, c_events, c_state = self.c.ask(request)
        py_what = self._py(request)
        context = f"step {self.steps}: {request}"
        assert 0 <= self.py.clock.now() <= RTC_MAX, f"{context}: the RTC left the C domain"
        if py_what == "setup=refused":
            assert c_what not in ("setup=0",), context
        else:
            assert c_what == py_what, context
        py_events = list(self.py.feedback.events)
        self.py.feedback.clear()
        typing = c_state["typing"].strip("-") if c_state else ""
        assert [FEEDBACK_KINDS[k] for k, _, _ in c_events] == [e.kind for e in py_events], (
            context,
            c_events,
            py_events,
        )
        for (kind, detail, value), py_event in zip(c_events, py_events, strict=True):
            expected = event_text(kind, detail, value, typing=typing, key=key)
            assert matches_text(expected, py_event.text, kind, detail), (
                context,
                expected,
                py_event.text,
            )
        record_events = currently_in_test_context()
        if c_what.startswith("outcome=") and record_events:
            note_event(f"outcome {OUTCOME_KINDS[int(c_what[8])].value}")
        for kind, _, _ in c_events if record_events else ():
            note_event(f"feedback {FEEDBACK_KINDS[kind].value}")
        memory = self.c.memory()
        if self.flash:
            c_stored = StateStore(RamMemory(data=memory)).load()
            assert c_stored == StateStore(RamMemory(data=self.py.memory.data)).load(), context
        else:
            assert memory == self.py.memory.data, context
        if self.py.firmware is None:
            assert c_state is None, context
        else:
            assert c_state is not None, context
            status = self.firmware.status()
            expected_state = status_fields(status, output=status.active)
            got = {k: c_state[k] for k in expected_state}
            assert got == expected_state, context
            assert (c_state["storage"], c_state["halted"]) == ("0", "0"), context
        return Step(c_what, [(k, str(v)) for k, _, v in c_events], c_state, memory)

    def stored_state_matches(self) -> None:
        """paygkit reads the C device's memory as the model's own state."""
        if self.py.firmware is None:
            return
        c_state = StateStore(RamMemory(data=self.c.memory())).load()
        assert c_state == self.firmware._state


@pytest.fixture(scope="module")
def device_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    program = compile_host_program(
        "device_harness", SOURCES, {"PGK_WITH_RESTRICTED": 1, "PGK_WITH_EXTENDED": 1}
    )
    harness = HostProgram(program, tmp_path_factory.mktemp("device_harness") / "stderr.txt")
    yield harness
    harness.close()


# A workshop build: small windows (every window edge is near) and the reset token taken.
WORKSHOP_CONFIG = DeviceConfig(windows=SMALL_WINDOWS, accept_reset_token=True)


@pytest.fixture(scope="module")
def workshop_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    program = compile_host_program("device_harness_workshop", SOURCES, WORKSHOP_DEFINES)
    harness = HostProgram(program, tmp_path_factory.mktemp("device_workshop") / "stderr.txt")
    yield harness
    harness.close()


# -- random runs -----------------------------------------------------------------------

SERIALS = ("TEST220000001", "SLT-1", "a.b_c:d+e", "X" * 32)
BAD_SERIALS = ("-X", "X" * 33, "A/B")


@dataclass(frozen=True)
class Setup:
    serial: str
    divider: int
    restricted: bool
    test_code: str | None
    count: int


@dataclass(frozen=True)
class TokenEvent:
    token_type: TokenType
    offset: int  # issued at the device's last count + offset
    value: int
    extended: bool
    by_keys: bool
    corrupt: int | None  # a digit position to change, or None


setups = st.builds(
    Setup,
    serial=st.sampled_from(SERIALS),
    divider=st.sampled_from((1, 1, 24, 7, 255)),
    restricted=st.booleans(),
    test_code=st.sampled_from((None, "1234", "4321123")),
    count=st.sampled_from((0, 1, 1, 2, 7)),
)
token_events = st.builds(
    TokenEvent,
    token_type=st.sampled_from(
        (TokenType.ADD_TIME,) * 4 + (TokenType.SET_TIME,) * 2 + TOKEN_TYPES[2:]
    ),
    offset=st.one_of(st.integers(-3, 3), st.integers(-20, 70)),
    value=st.one_of(st.integers(0, 30), st.integers(0, 995)),
    extended=st.integers(0, 5).map(lambda n: n == 0),
    by_keys=st.booleans(),
    corrupt=st.one_of(st.none(), st.none(), st.integers(0, 19)),
)
events = st.one_of(
    *(token_events,) * 8,
    setups,
    # Exact edges too: the keypad timeout, the test code period, wait checkpoints.
    st.tuples(
        st.just("advance"),
        st.one_of(
            st.integers(0, 90),
            st.integers(0, 100_000),
            st.sampled_from((1, 29, 30, 31, 60, 61, 120, 3570, 3599, 3600)),
        ),
    ),
    # The RTC alone: just inside and outside the tamper tolerance, and far.
    st.tuples(
        st.just("rtc"),
        st.one_of(st.integers(-200_000, 200_000), st.sampled_from((-61, -60, 0, 60, 61, 62))),
    ),
    st.tuples(st.just("keys"), st.text("*#0123456789", max_size=12)),
    st.tuples(st.just("garbage"), st.text("0123456789", max_size=22)),
    st.just(("power",)),
    st.just(("replay",)),
    st.just(("reset",)),
    st.just(("test_code",)),
    st.just(("poll",)),
    st.tuples(st.just("config"), st.booleans(), st.booleans(), st.sampled_from((1, 5, 30, 600))),
    st.tuples(st.just("bad_setup"), st.sampled_from(BAD_SERIALS)),
)


def make_token(pair: Pair, event: TokenEvent) -> str | None:
    provisioning = pair.firmware.provisioning
    if provisioning is None:
        return None
    params = DeviceParams(
        key=provisioning.key,
        starting_code=provisioning.starting_code,
        time_divider=provisioning.time_divider,
        restricted_digits=provisioning.restricted_digits,
    )
    count = max(0, pair.firmware.status().count + event.offset)
    extended = event.extended and pair.extended
    value = event.value if extended else min(event.value, 995)
    if extended:
        value = value * 1009 % 1_000_000
    units = value if event.token_type in TOKEN_TYPES[:2] else None
    token = generate(
        params, count=count, token_type=event.token_type, units=units, extended=extended
    ).digits
    if event.corrupt is not None:
        position = event.corrupt % len(token)
        keys = "1234" if provisioning.restricted_digits else "0123456789"
        replacement = keys[(keys.index(token[position]) + 1) % len(keys)]
        token = token[:position] + replacement + token[position + 1 :]
    return token


def type_keys(pair: Pair, keys: str) -> None:
    for key in keys:
        pair.run(f"key {key}")


def play(pair: Pair, event: object) -> None:
    if isinstance(event, Setup):
        test_code = event.test_code or "-"
        pair.run(
            f"setup {event.serial} {STARTING_CODE} {KEY} {event.divider} "
            f"{int(event.restricted)} {test_code} {event.count}"
        )
        return
    if isinstance(event, TokenEvent):
        if pair.py.firmware is None:
            pair.run("power on")
        token = make_token(pair, event)
        if token is None:
            pair.run("token 123456789")
            return
        pair.entered.append(token)
        if event.by_keys:
            type_keys(pair, f"*{token}#")
        else:
            pair.run(f"token {token}")
        return
    assert isinstance(event, tuple)
    name = event[0]
    if name == "advance":
        pair.run(f"advance {event[1]}")
    elif name == "rtc":
        pair.run(f"rtc {pair.py.clock.now() + event[1]}")
    elif name == "keys":
        if pair.py.firmware is not None:
            type_keys(pair, event[1])
    elif name == "garbage":
        digits = event[1]
        if not pair.extended and len(digits) in (12, 20):
            # An extended token's length: paygkit would decode it, a build without
            # extended tokens refuses it unread.  One digit less is garbage to both.
            digits = digits[:-1]
        pair.run(f"token {digits or '-'}")
    elif name == "power":
        pair.run("power off" if pair.py.firmware is not None else "power on")
    elif name == "replay":
        if pair.entered:
            pair.run(f"token {pair.entered[len(pair.entered) // 2]}")
    elif name == "reset":
        provisioning = pair.firmware.provisioning if pair.py.firmware else None
        if provisioning is not None:
            params = DeviceParams(
                key=provisioning.key,
                starting_code=provisioning.starting_code,
                restricted_digits=provisioning.restricted_digits,
            )
            pair.run(f"token {reset_token(params).digits}")
    elif name == "test_code":
        provisioning = pair.firmware.provisioning if pair.py.firmware else None
        if provisioning is not None and provisioning.test_code is not None:
            type_keys(pair, f"*{provisioning.test_code}#")
    elif name == "poll":
        pair.run("poll")
    elif name == "config":
        pair.run(f"config {int(event[1])} {int(event[2])} {event[3]}")
    elif name == "bad_setup":
        pair.run(f"setup {event[1]} {STARTING_CODE} {KEY} 1 0 - 1")


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.one_of(st.none(), setups, setups, setups),
    run=st.lists(events, min_size=15, max_size=60),
)
def test_same_as_the_model(
    device_harness: HostProgram, first: Setup | None, run: list[object]
) -> None:
    pair = Pair(device_harness)
    if first is not None:
        play(pair, first)
    for event in run:
        play(pair, event)
    pair.stored_state_matches()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=setups, run=st.lists(events, min_size=15, max_size=60))
def test_same_as_the_model_in_a_workshop_build(
    workshop_harness: HostProgram, first: Setup, run: list[object]
) -> None:
    pair = Pair(workshop_harness, WORKSHOP_CONFIG)
    play(pair, first)
    for event in run:
        play(pair, event)
    pair.stored_state_matches()


@pytest.fixture(scope="module")
def flash_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    program = compile_host_program(
        "device_harness_flash",
        SOURCES,
        {"PGK_WITH_RESTRICTED": 1, "PGK_WITH_EXTENDED": 1, "PGK_NV_NEEDS_ERASE": 1},
    )
    harness = HostProgram(program, tmp_path_factory.mktemp("device_flash") / "stderr.txt")
    yield harness
    harness.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=setups, run=st.lists(events, min_size=15, max_size=60))
def test_same_as_the_model_on_flash(
    flash_harness: HostProgram, first: Setup, run: list[object]
) -> None:
    """The build for NOR flash (the micro:bit's), which erases before it writes."""
    pair = Pair(flash_harness, flash=True)
    play(pair, first)
    for event in run:
        play(pair, event)
    pair.stored_state_matches()


@pytest.fixture(scope="module")
def reference_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    program = compile_host_program("device_harness_reference", SOURCES, REFERENCE_DEFINES)
    harness = HostProgram(program, tmp_path_factory.mktemp("device_reference") / "stderr.txt")
    yield harness
    harness.close()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(first=setups, run=st.lists(events, min_size=15, max_size=60))
def test_same_as_the_model_reference_build(
    reference_harness: HostProgram, first: Setup, run: list[object]
) -> None:
    """The reference product build (32-bit RTC times, the size budget's build)."""
    pair = Pair(reference_harness, flash=True, extended=False)
    play(pair, first)
    for event in run:
        play(pair, event)
    pair.stored_state_matches()


def test_waiting_period_and_tamper_scenario(device_harness: HostProgram) -> None:
    """A run that surely reaches the long paths: waits, checkpoints, tamper, lock, Set Time."""
    pair = Pair(device_harness)
    pair.run("config 1 1 30")
    pair.run(f"setup TEST1 {STARTING_CODE} {KEY} 1 0 1234 1")
    for _ in range(6):
        pair.run("token 111111111")
        pair.run("advance 30")
    for _ in range(40):
        pair.run("advance 61")
    pair.run("power off")
    pair.run("advance 5000")
    pair.run("power on")
    for _ in range(10):
        pair.run("advance 200")
    pair.run(f"rtc {pair.py.clock.now() + 10_000}")
    pair.run(f"rtc {pair.py.clock.now() - 50_000}")
    type_keys(pair, "#")
    for _ in range(7):
        type_keys(pair, "*1234#")
    device = DeviceParams.create(KEY, STARTING_CODE)
    count = pair.firmware.status().count
    set_time = generate(device, count=count, token_type=TokenType.SET_TIME, units=3).digits
    pair.run("advance 3000")
    pair.run(f"token {set_time}")
    pair.run("advance 4000")
    type_keys(pair, "#")
    pair.stored_state_matches()
    assert pair.firmware.status().tamper is TamperFlag.NONE


def test_test_code_limit_edges(device_harness: HostProgram) -> None:
    pair = Pair(device_harness)
    pair.run(f"setup TEST1 {STARTING_CODE} {KEY} 1 1 4321 1")
    for _ in range(5):
        pair.run("token 4321")
        pair.run("advance 10")
    pair.run("token 4321")  # the sixth within the hour: refused
    pair.run("advance 3549")  # the first use is now 3599 s old: still refused
    pair.run("token 4321")
    pair.run("advance 1")  # exactly one period: that use no longer counts
    step = pair.run("token 4321")
    assert step.what.startswith("outcome=4,")
    pair.run(f"rtc {pair.py.clock.now() - 30}")  # uses stamped after the RTC still count
    for _ in range(3):
        pair.run("token 4321")
    pair.stored_state_matches()


def test_rtc_near_the_top_of_its_range(reference_harness: HostProgram) -> None:
    """The 32-bit RTC times at the top of their range (above 2^31, as from 2038 on):
    provisioning, time tokens, the test code and its limit, tamper both ways."""
    pair = Pair(reference_harness, flash=True, extended=False, start=RTC_MAX - 100_000)
    pair.run(f"setup TEST1 {STARTING_CODE} {KEY} 1 0 1234 1")
    device = DeviceParams.create(KEY, STARTING_CODE)
    pair.run(f"token {generate(device, count=1, days=2).digits}")
    for _ in range(6):
        pair.run("token 1234")
        pair.run("advance 7")
    pair.run("advance 3600")
    pair.run("token 1234")
    pair.run(f"rtc {pair.py.clock.now() + 5_000}")
    pair.run(f"rtc {pair.py.clock.now() - 20_000}")
    pair.run("power off")
    pair.run("advance 40000")
    pair.run("power on")
    pair.run("token 111111111")
    pair.run(f"token {generate(device, count=3, token_type=TokenType.SET_TIME, units=1).digits}")
    pair.run(f"rtc {RTC_MAX}")
    type_keys(pair, "#")
    pair.stored_state_matches()


def test_storage_failure_leaves_the_stored_state(device_harness: HostProgram) -> None:
    """A save that fails gives no feedback and no effect; the device runs on what is stored."""
    pair = Pair(device_harness)
    pair.run(f"setup TEST1 {STARTING_CODE} {KEY} 1 0 - 1")
    device = DeviceParams.create(KEY, STARTING_CODE)
    token = generate(device, count=1, days=3).digits
    before = pair.c.memory()
    device_harness.ask("fail-write 3")
    what, events, state = pair.c.ask(f"token {token}")
    assert what.startswith("outcome=7,")
    assert events == []
    assert state is not None
    assert state["count"] == "1"
    assert state["storage"] != "0"
    assert state["halted"] == "0"
    assert (
        StateStore(RamMemory(data=pair.c.memory())).load()
        == StateStore(RamMemory(data=before)).load()
    )
    what, events, state = pair.c.ask(f"token {token}")
    assert what == "outcome=0,0,3,2,0,0"
    assert state is not None
    assert state["count"] == "2"


def test_memory_of_newer_firmware_halts_the_device(device_harness: HostProgram) -> None:
    """A record of a newer layout: no state to run on, so nothing runs (paygkit raises)."""
    pair = Pair(device_harness)
    pair.run(f"setup TEST1 {STARTING_CODE} {KEY} 1 0 - 1")
    memory = pair.c.memory()
    slot = 0 if memory[0] == 0x50 else 512
    length = int.from_bytes(memory[slot + 6 : slot + 8], "little")
    record = bytearray(memory[slot : slot + 12 + length])
    record[4] = 3
    record += zlib.crc32(record).to_bytes(4, "little")
    device_harness.ask(f"poke {slot} {record.hex()}")
    device_harness.ask("power off")
    what, _, state = pair.c.ask("power on")
    assert what == "power=-3"
    assert state is not None
    assert (state["halted"], state["out"], state["active"]) == ("1", "0", "0")
    assert pair.c.ask("token 123456789")[0].startswith("outcome=7,")
    assert pair.c.ask("key *")[1] == []
    assert pair.c.memory()[slot : slot + len(record)] == record


def test_smallest_build(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Without tamper checks, test code, restricted or extended tokens: still a PAYG device."""
    program = compile_host_program(
        "device_harness_smallest",
        SOURCES,
        {
            "PGK_WITH_TAMPER": 0,
            "PGK_WITH_TEST_CODE": 0,
            "PGK_WITH_RESTRICTED": 0,
            "PGK_WITH_EXTENDED": 0,
        },
    )
    harness = HostProgram(program, tmp_path_factory.mktemp("smallest") / "stderr.txt")
    device = CDevice(harness)
    device.ask("power on")
    assert device.ask(f"setup S1 {STARTING_CODE} {KEY} 1 0 1234 1")[0] == "setup=4"
    assert device.ask(f"setup S1 {STARTING_CODE} {KEY} 1 1 - 1")[0] == "setup=6"
    assert device.ask(f"setup S1 {STARTING_CODE} {KEY} 1 0 - 1")[0] == "setup=0"
    params = DeviceParams.create(KEY, STARTING_CODE)
    what, events, state = device.ask(f"token {generate(params, count=1, days=2).digits}")
    assert what == "outcome=0,0,2,2,0,0"
    assert state["left"] == str(2 * 86400)
    extended = generate(params, count=2, units=5, extended=True).digits
    assert device.ask(f"token {extended}")[0].startswith("outcome=5,")  # MALFORMED here
    what, events, state = device.ask(f"rtc {T0 - 100_000}")
    assert events == []
    assert state["tamper"] == "0"
    harness.close()


# -- the published vectors ---------------------------------------------------------------


def test_published_vectors(device_harness: HostProgram) -> None:
    rows = [json.loads(line) for line in VECTORS_FILE.read_text().splitlines() if line]
    assert len(rows) == 80
    for number, row in enumerate(rows):
        pair = Pair(device_harness)
        pair.run(
            f"setup {row['serial_number']} {row['starting_code']} {row['key']} 1 "
            f"{int(row['restricted_digit_set'])} - {row['count']}"
        )
        if number % 2:
            step = type_keys_and_last(pair, f"*{row['token']}#")
        else:
            step = pair.run(f"token {row['token']}")
        token_type = TokenType[row["token_type"]]
        units = row["value_raw"] if token_type in TOKEN_TYPES[:2] else 0
        assert step.what == (
            f"outcome=0,{TOKEN_TYPES.index(token_type)},{units},{row['new_count']},0,0"
        ), row
        assert step.state is not None
        assert step.state["count"] == str(row["new_count"])
        again = pair.run(f"token {row['token']}")
        assert again.what.startswith("outcome=1,"), row
        pair.stored_state_matches()


def type_keys_and_last(pair: Pair, keys: str) -> Step:
    steps = [pair.run(f"key {key}") for key in keys]
    return steps[-1]
