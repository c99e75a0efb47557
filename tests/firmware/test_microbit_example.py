"""The example firmware in QEMU: set up by `paygkit factory flash`, certified by `paygkit certify`.

The whole of `make firmware-certify` (scripts/firmware_certify.py): the device library on an
emulated Cortex-M0, driven over its UART by paygkit's own tools, unchanged.  Skipped without
the ARM toolchain or QEMU, unless PAYGKIT_REQUIRE_FIRMWARE=1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware import qemu

SCRIPT = qemu.ROOT / "scripts" / "firmware_certify.py"


def test_the_example_firmware_is_set_up_and_certified_in_qemu(tmp_path: Path) -> None:
    qemu.require_tools()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--build", str(tmp_path / "build"), "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "read-back matches" in done.stdout
    assert "PASSED" in done.stdout
    assert " 0 failed" in done.stdout
    # What the factory wrote is what the device answered with, in the station's log.
    assert (tmp_path / "flash.jsonl").read_text().strip()


@pytest.mark.parametrize("target", ["example", "example-sim"])
def test_both_builds_of_the_example_link(tmp_path: Path, target: str) -> None:
    qemu.require_tools()
    qemu.build(tmp_path, target=target)
    assert (tmp_path / "microbit" / target / "example.elf").is_file()
