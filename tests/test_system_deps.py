"""`make test` installs the system packages its tests need (as root), or stops with the command.

scripts/system-deps is run with names that do not exist for the C compiler, Chromium, and
the firmware's cross compiler and QEMU, and with an `id` and an `apt-get` of the test's own
first on PATH, so nothing is installed and being root or not is the test's choice.
`make test` is run with MAKE=true, so that once the packages are there it stops instead of
running the suite again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "system-deps"
MISSING = {
    "CC": "paygkit-no-such-cc",
    "PAYGKIT_CHROMIUM": "/nonexistent/paygkit/chromium",
    "PAYGKIT_ARM_GCC": "paygkit-no-such-arm-none-eabi-gcc",
    "PAYGKIT_QEMU_ARM": "paygkit-no-such-qemu-system-arm",
}
FIRMWARE = {"gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"}
COMMAND = re.compile(r"run as root first: (apt-get install -y [a-z0-9 .+-]+?) \(")


def fake_system(tmp_path: Path, uid: int) -> tuple[dict[str, str], Path]:
    """An environment where `id -u` says uid and apt-get only writes down what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt-get.log"
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    for tool in ("id", "apt-get"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, **MISSING, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return env, log


def system_deps(*groups: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *groups],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_not_root_stops_at_once_with_the_exact_command(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=1000)
    run = system_deps("test", env=env)
    assert run.returncode == 1
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    found = COMMAND.search(line)
    assert found, line
    packages = found.group(1).removeprefix("apt-get install -y ").split()
    assert {"gcc", "chromium"} | FIRMWARE <= set(packages)
    assert len(packages) == len(set(packages))
    assert not log.exists()  # nothing installed, nothing asked of apt


def test_root_installs_what_is_missing(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=0)
    run = system_deps("build", "test", env=env)
    assert run.returncode == 0, run.stderr
    update, install = log.read_text().splitlines()
    assert update == "update -qq"
    assert install.startswith("install -y -qq ")
    packages = install.removeprefix("install -y -qq ").split()
    assert {"gcc", "chromium"} <= set(packages)
    assert packages.count("gcc") == 1  # asked for by both groups, installed once
    assert "installing the missing system packages" in run.stdout


def test_build_needs_no_browser(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=1000)
    env["CC"] = "sh"  # a compiler that exists; Chromium still does not
    run = system_deps("build", env=env)
    assert "chromium" not in run.stderr
    assert not log.exists()


def fake_tool(tmp_path: Path, name: str, output: str = "") -> str:
    """A command on the fake system's PATH that prints output; its name."""
    tool = tmp_path / "bin" / name
    tool.write_text(f'#!/bin/sh\necho "{output}"\n')
    tool.chmod(0o755)
    return name


def test_firmware_is_the_cross_toolchain_and_qemu_only(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=1000)
    fake_tool(tmp_path, "make")  # the firmware group asks for make too, where it is missing
    run = system_deps("firmware", env=env)
    assert run.returncode == 1
    found = COMMAND.search(run.stderr)
    assert found, run.stderr
    assert set(found.group(1).removeprefix("apt-get install -y ").split()) == FIRMWARE
    assert not log.exists()


def test_firmware_as_root_installs_it_once_with_test(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=0)
    run = system_deps("firmware", "test", env=env)
    assert run.returncode == 0, run.stderr
    _, install = log.read_text().splitlines()
    packages = install.removeprefix("install -y -qq ").split()
    assert set(packages) >= FIRMWARE
    assert all(packages.count(name) == 1 for name in FIRMWARE)


def test_firmware_without_newlib_asks_for_newlib_only(tmp_path: Path) -> None:
    # A cross gcc that exists but finds no libc_nano.a prints the bare name back.
    env, log = fake_system(tmp_path, uid=1000)
    fake_tool(tmp_path, "make")
    env["PAYGKIT_ARM_GCC"] = fake_tool(tmp_path, "paygkit-fake-arm-gcc", "libc_nano.a")
    env["PAYGKIT_QEMU_ARM"] = "sh"  # an emulator that exists
    run = system_deps("firmware", env=env)
    found = COMMAND.search(run.stderr)
    assert found, run.stderr
    assert found.group(1) == "apt-get install -y libnewlib-arm-none-eabi"
    assert not log.exists()


def test_nothing_missing_is_silent(tmp_path: Path) -> None:
    env, log = fake_system(tmp_path, uid=1000)
    fake_tool(tmp_path, "make")
    # A cross gcc whose libc_nano.a is any file that exists.
    env["PAYGKIT_ARM_GCC"] = fake_tool(tmp_path, "paygkit-fake-arm-gcc", str(SCRIPT))
    env["PAYGKIT_QEMU_ARM"] = "sh"
    run = system_deps("firmware", env=env)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert not log.exists()


def test_unknown_group_is_a_usage_error(tmp_path: Path) -> None:
    env, _ = fake_system(tmp_path, uid=1000)
    assert system_deps("everything", env=env).returncode == 2


make = shutil.which("make")


@pytest.mark.skipif(make is None, reason="make is not installed")
def test_make_test_checks_the_system_first(tmp_path: Path) -> None:
    assert make is not None
    # Not root, Chromium missing: make test stops before lint with the command to run.
    env, log = fake_system(tmp_path, uid=1000)
    run = subprocess.run(
        [make, "-C", str(ROOT), "--no-print-directory", "test", "MAKE=true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0
    assert COMMAND.search(run.stderr), run.stderr
    assert "chromium" in run.stderr
    assert "ruff" not in run.stdout + run.stderr
    # Root: it installs them and goes on (to `true` here, the suite in real life).
    (tmp_path / "root").mkdir()
    env, log = fake_system(tmp_path / "root", uid=0)
    run = subprocess.run(
        [make, "-C", str(ROOT), "--no-print-directory", "test", "MAKE=true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "chromium" in log.read_text()


def test_ci_runs_make_test_and_leaves_the_packages_to_it() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == "make test"
    assert "apt-get" not in ci  # one place installs packages: scripts/system-deps
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:\n", 1)[1].splitlines()
    assert "scripts/system-deps test" in test_recipe[0]
