"""The C device protocol (firmware/lib/pgk_protocol.c on the C device) against paygkit's.

The same byte stream goes to paygkit's `CommandInterpreter` on a
`SimulatedDevice` (in this process) and to firmware/host/protocol_harness.c
(the C device serving the protocol on stdin/stdout, its clocks moved only by
the simulator commands); the answers must be the same bytes.  Sessions mix
setups, genuine tokens by keypad and by TOKEN, replays, junk, the test code,
time passing, a tampered clock, settings, power cuts and wipes.  A device
build (no simulator commands) is held against paygkit's interpreter on a bare
`Firmware` the same way.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygkit.device.clocks import ManualClock, ManualTicks
from paygkit.device.commands import SetupCommand
from paygkit.device.firmware import Firmware
from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.ports import Feedback
from paygkit.device.simulator import DEFAULT_RTC_START, SimulatedDevice
from paygkit.token import DeviceParams, TokenType, generate
from tests.firmware.conftest import HOST_DIR, LIBRARY_DIR, Compiler, paygkit_cli
from tests.firmware.test_c_wire import command_lines

KEY = bytes.fromhex("bc41ec9530f6dac86b1a29ab82edc5fb")
STARTING_CODE = 516959010
SERIAL = "TEST220000001"
PROTOCOL_SOURCES = (
    HOST_DIR / "protocol_harness.c",
    LIBRARY_DIR / "pgk_protocol.c",
    LIBRARY_DIR / "pgk_wire.c",
    LIBRARY_DIR / "pgk_device.c",
    LIBRARY_DIR / "pgk_storage.c",
    LIBRARY_DIR / "pgk_token.c",
    LIBRARY_DIR / "pgk_siphash.c",
)
# paygkit's firmware takes every token form: so does the C device under test.
DEFINES = {"PGK_WITH_RESTRICTED": 1, "PGK_WITH_EXTENDED": 1}


@pytest.fixture(scope="module")
def simulator_program(compile_host_program: Compiler) -> Path:
    return compile_host_program(
        "protocol_harness_sim", PROTOCOL_SOURCES, {**DEFINES, "PGK_WITH_SIM_CONTROLS": 1}
    )


@pytest.fixture(scope="module")
def small_program(compile_host_program: Compiler) -> Path:
    """The smallest protocol: codes without messages, no display texts, no EVENT lines."""
    return compile_host_program(
        "protocol_harness_small",
        PROTOCOL_SOURCES,
        {
            **DEFINES,
            "PGK_WITH_SIM_CONTROLS": 1,
            "PGK_PROTOCOL_MESSAGES": 0,
            "PGK_PROTOCOL_TEXTS": 0,
            "PGK_PROTOCOL_EVENTS": 0,
        },
    )


@pytest.fixture(scope="module")
def product_program(compile_host_program: Compiler) -> Path:
    """The protocol as the product build ships it (firmware/Makefile's PRODUCT_PROTOCOL): no
    simulator commands, codes without messages, no texts or EVENT lines, answers held in the
    line buffer's free part (PGK_PROTOCOL_OUT_BUFFER=0), 32-bit RTC times."""
    return compile_host_program(
        "protocol_harness_product",
        PROTOCOL_SOURCES,
        {
            **DEFINES,
            "PGK_WITH_SIM_CONTROLS": 0,
            "PGK_PROTOCOL_MESSAGES": 0,
            "PGK_PROTOCOL_TEXTS": 0,
            "PGK_PROTOCOL_EVENTS": 0,
            "PGK_PROTOCOL_OUT_BUFFER": 0,
            "PGK_RTC_32BIT": 1,
        },
    )


@pytest.fixture(scope="module")
def device_program(compile_host_program: Compiler) -> Path:
    return compile_host_program(
        "protocol_harness_device", PROTOCOL_SOURCES, {**DEFINES, "PGK_WITH_SIM_CONTROLS": 0}
    )


def run_c(program: Path, script: bytes) -> bytes:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    done = subprocess.run(
        [str(program)], input=script, capture_output=True, env=env, timeout=60, check=False
    )
    problems = done.stderr.decode(errors="replace")
    assert done.returncode == 0, problems
    assert not problems
    return done.stdout


def run_simulator(script: bytes) -> bytes:
    return CommandInterpreter(SimulatedDevice()).feed(script)


class _Queue:
    def __init__(self) -> None:
        self.pending: list[Feedback] = []

    def emit(self, feedback: Feedback) -> None:
        self.pending.append(feedback)

    def drain_feedback(self) -> list[Feedback]:
        pending, self.pending = self.pending, []
        return pending


def run_device(script: bytes) -> bytes:
    queue = _Queue()
    firmware = Firmware(
        clock=ManualClock(DEFAULT_RTC_START),
        ticks=ManualTicks(),
        memory=RamMemory(),
        feedback=queue,
    )
    return CommandInterpreter(firmware, feedback=queue).feed(script)


_TEXT = re.compile(rb' text="(?:\\.|[^"\\])*"$')


def without_words(answer: bytes) -> bytes:
    """An answer as the smallest build gives it: what hosts read, not what people read."""
    kept = []
    for line in answer.split(b"\n"):
        if line.startswith((b"EVENT ", b"HELP ")):
            continue
        if line.startswith(b"ERR "):
            line = b" ".join(line.split(b" ")[:2])
        kept.append(_TEXT.sub(b' text=""', line))
    return b"\n".join(kept)


def check(
    program: Path,
    lines: list[str],
    *,
    simulator: bool = True,
    ends: str = "\n",
    small: bool = False,
) -> None:
    script = "".join(line + ends for line in lines).encode("latin-1")
    expected = run_simulator(script) if simulator else run_device(script)
    got = run_c(program, script)
    if small:
        expected = without_words(expected)
        got = without_words(got)
    if got != expected:
        expected_lines = expected.decode("latin-1").splitlines()
        got_lines = got.decode("latin-1").splitlines()
        for index, (want, have) in enumerate(zip(expected_lines, got_lines, strict=False)):
            assert have == want, f"answer line {index} differs; sent {lines!r}"
        assert got_lines == expected_lines, f"sent {lines!r}"


def _printable(data: bytes) -> str:
    """Random bytes as one line: no line ends (the splitter's own tests cover them)."""
    return data.replace(b"\n", b"").replace(b"\r", b"").decode("latin-1")


EXAMPLE = [
    "HELLO",
    f"#{SERIAL};{STARTING_CODE};{KEY.hex()}",
    "TOKEN 588 224 011",
    "TOKEN 588 224 011",
    "ADVANCE 1d",
    "STATUS",
    "FLASH",
    "HELP",
    "QUIT",
    "STATUS",
]


def test_the_documented_conversation(simulator_program: Path) -> None:
    check(simulator_program, EXAMPLE)
    check(simulator_program, EXAMPLE, ends="\r\n")


def test_the_documented_conversation_on_a_device(device_program: Path) -> None:
    check(device_program, EXAMPLE, simulator=False)


def test_simulator_controls(simulator_program: Path) -> None:
    check(
        simulator_program,
        [
            f"SETUP serial={SERIAL} code={STARTING_CODE} key={KEY.hex()} divider=4 test=1234",
            "SETUP serial=X code=1 key=" + "0" * 32,
            "KEYS *397287017#",
            "TOKEN 1234",
            "ADVANCE 2h",
            "CLOCK",
            "CLOCK -1h",
            "CLOCK +3d",
            "CLOCK 0",
            "CLOCK -1",
            "ADVANCE 3650d",
            "CLOCK 4102444800",
            "ADVANCE 1",
            "CONFIG",
            "CONFIG waiting=off tamper=lock keypad_timeout=5",
            "STATUS",
            "POWER",
            "POWER OFF",
            "KEYS 1",
            "TOKEN 1",
            "SETUP serial=X code=1 key=" + "0" * 32,
            "ADVANCE 5h",
            "POWER ON",
            "RESET",
            "WIPE",
            "STATUS",
            "HELLO",
            "SETUP serial=X code=1 key=" + "0" * 32 + " restricted=1 test=1259",
            "SETUP serial=X code=1 key=" + "0" * 32 + " restricted=1 test=1234 count=7",
            "STATUS",
        ],
    )


def test_lines_the_splitter_cuts(simulator_program: Path) -> None:
    check(
        simulator_program,
        ["x" * 256, "HELLO " + "x" * 251, "y" * 257, " " * 400, "KEYS 12\x083", "bad\x00", "\x7f"],
    )


def test_a_key_shaped_serial_is_hidden(simulator_program: Path) -> None:
    digits_key = "0123456789" * 3 + "01"
    for key in (KEY.hex(), digits_key):
        check(
            simulator_program,
            [
                f"SETUP serial={key.upper()} code=1 key={key}",
                "STATUS",
                f"SETUP serial=A code=1 key={key}",
                "WIPE",
                f"SETUP serial=ABCDEF0123456789AB code=1 key={key}",
                f"#X;123456789;{key}",
            ],
        )


# --- random sessions -----------------------------------------------------------------------

_TYPES = [TokenType.ADD_TIME, TokenType.SET_TIME, TokenType.DISABLE_PAYG, TokenType.COUNTER_SYNC]
_JUNK = [
    "", "  ", "HELP", "HELLO", "STATUS", "QUIT", "FLASH", "KEYS", "KEYS #", "KEYS *#", "KEYS *1x",
    "TOKEN", "TOKEN abc", "TOKEN -123456789", "TOKEN 12--34", "TOKEN 123 456 78", "#", "#a;b;c",
    "TOKEN 1234 5678 9012 3456 7890 12", "SETUP serial=A", "CONFIG bogus=1", "POWER up",
    "x" * 300,
]  # fmt: skip
_DURATIONS = ["1", "29", "31", "59", "61", "90s", "2m", "5m", "1h", "13h", "1d", "40d", "3650d"]


@st.composite
def sessions(draw: st.DrawFn) -> list[str]:
    restricted = draw(st.booleans())
    divider = draw(st.sampled_from([1, 1, 2, 4, 24, 7]))
    digits = "1234" if restricted else "0123456789"
    test_code = draw(st.none() | st.text(alphabet=digits, min_size=1, max_size=20))
    count = draw(st.sampled_from([1, 1, 0, 5, 40]))
    device = DeviceParams.create(
        KEY.hex(), STARTING_CODE, time_divider=divider, restricted_digits=restricted
    )
    setup = SetupCommand(
        serial=SERIAL,
        starting_code=STARTING_CODE,
        key=KEY,
        time_divider=divider,
        restricted_digits=restricted,
        test_code=test_code,
        count=count,
    )
    lines: list[str] = []
    form = draw(st.sampled_from(["full", "full", "reference", "none"]))
    if form == "full":
        lines.append(setup.format())
    elif form == "reference":
        lines.append(setup.format_reference())
        device = DeviceParams.create(KEY.hex(), STARTING_CODE)
        digits, restricted, test_code, count = "0123456789", False, None, 1
    for _ in range(draw(st.integers(1, 25))):
        step = draw(
            st.sampled_from(
                ["token", "token", "token", "keys", "junk", "digits", "partial", "test", "time",
                 "clock", "config", "power", "status", "setup"]
            )
        )  # fmt: skip
        if step in ("token", "keys"):
            kind = draw(st.sampled_from(_TYPES))
            extended = draw(st.booleans()) if kind in _TYPES[:2] else False
            units = draw(
                st.integers(0, 999_999 if extended else 995).filter(lambda u: u not in (998, 999))
            )
            made = generate(
                device,
                count=draw(st.integers(max(count - 20, 0), count + 70)),
                token_type=kind,
                units=units if kind in _TYPES[:2] else None,
                extended=extended,
            )
            if step == "token":
                lines.append(f"TOKEN {made.grouped}")
            else:
                split = draw(st.integers(0, len(made.digits)))
                lines.append(f"KEYS *{made.digits[:split]}")
                lines.append(f"KEYS {made.digits[split:]}#")
        elif step == "junk":
            lines.append(draw(st.sampled_from(_JUNK)))
        elif step == "digits":
            typed = draw(st.text(alphabet=digits + "05", min_size=1, max_size=21))
            lines.append(
                draw(st.sampled_from([f"TOKEN {typed}", f"KEYS *{typed}#", f"KEYS {typed}"]))
            )
        elif step == "partial":
            # A token left half typed, for the keypad timeout and typing= to show.
            lines.append(f"KEYS *{draw(st.text(alphabet=digits, max_size=8))}")
        elif step == "test":
            lines.append(f"TOKEN {test_code or '1234'}")
        elif step == "time":
            lines.append(f"ADVANCE {draw(st.sampled_from(_DURATIONS))}")
        elif step == "clock":
            sign = draw(st.sampled_from(["+", "-"]))
            lines.append(f"CLOCK {sign}{draw(st.sampled_from(_DURATIONS))}")
        elif step == "config":
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            "CONFIG waiting=off",
                            "CONFIG waiting=on",
                            "CONFIG tamper=lock",
                            "CONFIG tamper=report",
                            "CONFIG keypad_timeout=5",
                            "CONFIG",
                        ]
                    )
                )
            )
        elif step == "power":
            lines.append(draw(st.sampled_from(["POWER OFF", "POWER ON", "RESET", "WIPE"])))
        elif step == "status":
            lines.append(draw(st.sampled_from(["STATUS", "KEYS #", "HELLO"])))
        else:
            lines.append(setup.format())
    return lines


@settings(
    max_examples=int(os.environ.get("PGK_PROTOCOL_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=sessions(), ends=st.sampled_from(["\n", "\r\n", "\r"]))
def test_random_sessions(simulator_program: Path, lines: list[str], ends: str) -> None:
    check(simulator_program, lines, ends=ends)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=sessions())
def test_random_sessions_on_the_smallest_build(small_program: Path, lines: list[str]) -> None:
    check(small_program, lines, small=True)


def test_the_smallest_build_answers_with_codes(small_program: Path) -> None:
    check(small_program, [*EXAMPLE[:-2], "SETUP x", "CLOCK -1h", "HELP"], small=True)
    answer = run_c(small_program, b"FLASH\nHELP\nTOKEN 1\n").decode()
    assert answer.splitlines()[:3] == ["ERR UNKNOWN_COMMAND", "HELP HELLO", "HELP HELP"]
    assert 'RESULT NOT_PROVISIONED text=""' in answer


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=sessions())
def test_random_sessions_on_a_device(device_program: Path, lines: list[str]) -> None:
    check(device_program, lines, simulator=False)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=sessions())
def test_random_sessions_on_the_product_build(product_program: Path, lines: list[str]) -> None:
    check(product_program, lines, simulator=False, small=True)


def test_the_documented_conversation_on_the_product_build(product_program: Path) -> None:
    check(product_program, EXAMPLE, simulator=False, small=True)
    check(product_program, EXAMPLE, simulator=False, ends="\r\n", small=True)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(lines=st.lists(command_lines() | st.binary(max_size=60).map(_printable), max_size=6))
def test_command_lines_on_the_product_build(product_program: Path, lines: list[str]) -> None:
    """Every sort of command line test_c_wire.py parses, through the product build's
    parser (which checks SETUP's values as it reads them and shares one refusal for
    every argument): the same ERR codes and answers as paygkit's."""
    check(product_program, lines, simulator=False, small=True)


@pytest.mark.parametrize("ends", ["\n", "\r\n"])
def test_long_lines_on_the_product_build(product_program: Path, ends: str) -> None:
    """The product build writes its answers into the line buffer's free part: a line that
    fills all 256 bytes leaves it one byte, and the answers are still paygkit's."""
    lines = [
        f"{word}{' ' * (length - len(word))}"
        for word in ("STATUS", "HELLO", "HELP", "BOGUS")
        for length in (200, 254, 255, 256, 257)
    ]
    check(
        product_program,
        [*EXAMPLE[:3], *lines, "x" * 300, "STATUS"],
        simulator=False,
        ends=ends,
        small=True,
    )


# --- paygkit's host tools on the C device --------------------------------------------------


@pytest.fixture
def c_device_port(simulator_program: Path, tmp_path: Path) -> Iterator[Path]:
    """The C device serving the protocol on a pty, as `device simulate --serve pty:PATH` does."""
    link = tmp_path / "c-device"
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    process = subprocess.Popen(
        [str(simulator_program), "--pty", str(link)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    process.stdout.readline()  # the pty's path, once the link is made
    try:
        yield link
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
        assert not errors, errors.decode(errors="replace")


def test_paygkit_certify_passes_the_c_device(c_device_port: Path, tmp_path: Path) -> None:
    done = paygkit_cli(
        "certify",
        "--target",
        f"pty:{c_device_port}",
        "--serial",
        SERIAL,
        "--key",
        KEY.hex(),
        "--starting-code",
        str(STARTING_CODE),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASSED" in done.stdout
    assert " 0 failed" in done.stdout


@pytest.mark.parametrize("reference", [False, True])
def test_paygkit_factory_flash_sets_up_the_c_device(
    c_device_port: Path, tmp_path: Path, reference: bool
) -> None:
    batch = paygkit_cli(
        "factory", "batch", "2", "--prefix", "SLT22", "--state-file", "serials.json",
        "--divider", "1" if reference else "4", "-o", "batch.csv", cwd=tmp_path,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stdout + batch.stderr
    serial = (tmp_path / "batch.csv").read_text().splitlines()[1].split(",")[0]
    extra = ["--reference-form"] if reference else []
    flash = ["factory", "flash", "--csv", "batch.csv", "--port", str(c_device_port), *extra]
    done = paygkit_cli(*flash, "--operator", "t", "--log", "a.jsonl", stdin=serial, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "read-back matches" in done.stdout + done.stderr
    again = paygkit_cli(*flash, "--operator", "t", "--log", "b.jsonl", stdin=serial, cwd=tmp_path)
    assert "already_set_up" in again.stdout + again.stderr, again.stderr
