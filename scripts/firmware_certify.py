"""`make firmware-certify`: the device library certified on an emulated Cortex-M0.

Builds the example firmware's test build (firmware/boards/microbit/example.c,
`make -C firmware example-sim`), boots it in QEMU's micro:bit machine with its
UART on a local TCP port, sets it up as a factory would (`paygkit factory
batch` makes one device, `paygkit factory flash` writes it over the UART and
reads it back), then runs `paygkit certify` against it and ends with the
certification's summary.  Exit status: certify's (0 when no case failed).

    .venv/bin/python scripts/firmware_certify.py [--build DIR] [--keep DIR]

The QEMU runner and the way paygkit is run are the firmware tests' own
(tests/firmware/qemu.py, conftest.py), so that the tests and this command do
the same.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.firmware import qemu  # noqa: E402 - after the repository is on the path
from tests.firmware.conftest import paygkit_cli as paygkit  # noqa: E402

PREFIX = "QEMU"


def step(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"{what} failed (exit {done.returncode})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build", type=Path, default=ROOT / "firmware" / "build")
    parser.add_argument("--keep", type=Path, help="keep the device list and logs in this folder")
    args = parser.parse_args(argv)
    qemu.build(args.build.resolve(), target="example-sim")
    elf = args.build.resolve() / "microbit" / "example-sim" / "example.elf"
    with tempfile.TemporaryDirectory(prefix="paygkit-firmware-") as scratch:
        work = args.keep.resolve() if args.keep else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        step(
            paygkit(
                "factory", "batch", "1", "--prefix", PREFIX, "--state-file", "serials.json",
                "-o", "devices.csv", cwd=work,
            ),
            "paygkit factory batch",
        )  # fmt: skip
        serial = (work / "devices.csv").read_text().splitlines()[1].split(",")[0]
        with qemu.boot(elf) as board:
            board.disconnect()  # the UART serves one client: paygkit's link is next
            print(f"booted {elf.relative_to(ROOT) if elf.is_relative_to(ROOT) else elf} "
                  f"in QEMU -M microbit, UART on {board.target}")  # fmt: skip
            flashed = paygkit(
                "factory", "flash", "--csv", "devices.csv", "--port", board.target,
                "--operator", "make firmware-certify", "--log", "flash.jsonl",
                cwd=work, stdin=serial + "\n",
            )  # fmt: skip
            step(flashed, "paygkit factory flash")
            print((flashed.stdout + flashed.stderr).strip())
            certified = paygkit(
                "certify", "--target", board.target, "--csv", "devices.csv", "--serial", serial,
                cwd=work,
            )  # fmt: skip
        sys.stdout.write(certified.stdout)
        sys.stderr.write(certified.stderr)
        return certified.returncode


if __name__ == "__main__":
    sys.exit(main())
