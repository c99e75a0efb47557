"""Building and driving the C device library's host programs (firmware/host).

The programs are compiled once per session with the sanitizers on, so that
any undefined behaviour or bad memory access in the library fails the test
that caused it instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from paygkit.token import DecodeWindows

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
LIBRARY_DIR = FIRMWARE_DIR / "lib"
HOST_DIR = FIRMWARE_DIR / "host"
FIRMWARE_TESTS = Path(__file__).resolve().parent

HOST_CFLAGS = (
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-g",
)
TOKEN_CORE_SOURCES = (
    HOST_DIR / "token_harness.c",
    LIBRARY_DIR / "pgk_token.c",
    LIBRARY_DIR / "pgk_siphash.c",
)

# The windows of each harness build, as paygkit's DecodeWindows: the C library
# fixes them at compile time, paygkit takes them per device.
DEFAULT_WINDOWS = DecodeWindows()
# Small windows make random token sequences cross every window edge often.
SMALL_WINDOWS = DecodeWindows(forward=8, counter_sync=12, unordered=4)
# A workshop build: every token form, SMALL_WINDOWS, and the reset token accepted.
WORKSHOP_DEFINES = {
    "PGK_WITH_RESTRICTED": 1,
    "PGK_WITH_EXTENDED": 1,
    "PGK_WINDOW_FORWARD": SMALL_WINDOWS.forward,
    "PGK_WINDOW_COUNTER_SYNC": SMALL_WINDOWS.counter_sync,
    "PGK_WINDOW_UNORDERED": SMALL_WINDOWS.unordered,
    "PGK_ACCEPT_RESET_TOKEN": 1,
}

Compiler = Callable[[str, Sequence[Path], Mapping[str, int]], Path]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run once, in make test's first pass: the C library answers the same whichever
    backend paygkit's side uses (the backends are held equal by tests/token), and on
    the fallback these comparisons alone took minutes."""
    if os.environ.get("PAYGKIT_PURE_PYTHON") != "1":
        return
    skip = pytest.mark.skip(reason="the C device library is checked in the first pass only")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(FIRMWARE_TESTS):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def compile_host_program(tmp_path_factory: pytest.TempPathFactory) -> Compiler:
    """A function building a host program (name, sources, -D options) once per session.

    Skips when gcc is missing, unless PAYGKIT_REQUIRE_C_EXT=1, which makes it a failure.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        if os.environ.get("PAYGKIT_REQUIRE_C_EXT") == "1":
            pytest.fail("PAYGKIT_REQUIRE_C_EXT=1 but gcc is not installed")
        pytest.skip("gcc is not installed: the C device library cannot be built")
    out_dir = tmp_path_factory.mktemp("firmware-host")
    built: dict[str, Path] = {}

    def build(name: str, sources: Sequence[Path], defines: Mapping[str, int]) -> Path:
        if name in built:
            return built[name]
        program = out_dir / name
        command = [
            gcc,
            *HOST_CFLAGS,
            f"-I{LIBRARY_DIR}",
            *(f"-D{option}={value}" for option, value in defines.items()),
            *map(str, sources),
            "-o",
            str(program),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        built[name] = program
        return program

    return build


class HostProgram:
    """A running line-oriented host program: one request line in, one answer line out."""

    def __init__(self, program: Path, log: Path) -> None:
        self._log = log
        self._log_file = log.open("w")
        # LeakSanitizer needs ptrace, which containers often forbid; the
        # library allocates nothing, so there is no leak to look for.
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        self._process = subprocess.Popen(
            [str(program)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            text=True,
            bufsize=1,
            env=env,
        )

    def ask(self, request: str) -> str:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        try:
            self._process.stdin.write(request + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass
        answer = self._process.stdout.readline()
        if not answer:
            self._process.wait(timeout=10)
            pytest.fail(
                f"the host program stopped (exit {self._process.returncode}) on {request!r}:\n"
                + self._log.read_text()
            )
        if answer.startswith("error"):
            pytest.fail(f"the host program refused {request!r}: {answer.strip()}")
        return answer.strip()

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        code = self._process.wait(timeout=10)
        self._log_file.close()
        if code != 0:
            pytest.fail(f"the host program exited with {code}:\n{self._log.read_text()}")


def _token_harness(
    compile_host_program: Compiler,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    defines: Mapping[str, int],
) -> Iterator[HostProgram]:
    program = compile_host_program(name, TOKEN_CORE_SOURCES, defines)
    harness = HostProgram(program, tmp_path_factory.mktemp(name) / "stderr.txt")
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def token_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    """The token core with every token form, the default windows and no reset token."""
    yield from _token_harness(
        compile_host_program,
        tmp_path_factory,
        "token_harness",
        {"PGK_WITH_RESTRICTED": 1, "PGK_WITH_EXTENDED": 1},
    )


@pytest.fixture(scope="session")
def small_window_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    """Every token form, SMALL_WINDOWS, and the reset token accepted (a workshop build)."""
    yield from _token_harness(
        compile_host_program,
        tmp_path_factory,
        "token_harness_small_windows",
        WORKSHOP_DEFINES,
    )


@pytest.fixture(scope="session")
def standard_only_harness(
    compile_host_program: Compiler, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostProgram]:
    """The smallest build: 9-digit tokens only (PGK_WITH_RESTRICTED 0, no extended tokens)."""
    yield from _token_harness(
        compile_host_program,
        tmp_path_factory,
        "token_harness_standard_only",
        {"PGK_WITH_RESTRICTED": 0, "PGK_WITH_EXTENDED": 0},
    )


def paygkit_cli(*args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    """`paygkit ARGS` as a user runs it, in `cwd`; its exit status is the caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", "paygkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        check=False,
    )
