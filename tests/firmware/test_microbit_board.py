"""The micro:bit board port runs in QEMU: UART, clock, NV storage, and NV across a reset.

Builds firmware/boards/microbit/bringup.c with the firmware Makefile into a temporary
directory and drives it over its UART (tests/firmware/qemu.py).  Skipped without the ARM
toolchain or QEMU, unless PAYGKIT_REQUIRE_FIRMWARE=1.  Time is never assumed to pass at
any rate: the tests wait for the clock to move, with a bound only against a hang.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.firmware import qemu

PONG = re.compile(r"PONG (\d+) (\d+)")
BOOT = re.compile(r"BOOT microbit nv=(\d+)")


@pytest.fixture(scope="module")
def bringup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    qemu.require_tools()
    return qemu.build(tmp_path_factory.mktemp("firmware-build"))


@pytest.fixture
def board(bringup: Path) -> Iterator[qemu.QemuBoard]:
    with qemu.boot(bringup) as running:
        line = running.stream.expect("BOOT ")
        assert BOOT.fullmatch(line), line
        yield running


def ask(board: qemu.QemuBoard, command: str) -> str:
    board.stream.write_line(command)
    return board.stream.read_line()


def ping(board: qemu.QemuBoard) -> tuple[int, int]:
    answer = ask(board, "PING")
    found = PONG.fullmatch(answer)
    assert found, answer
    return int(found[1]), int(found[2])


def wait_for(board: qemu.QemuBoard, done: Callable[[int, int], bool], what: str) -> tuple[int, int]:
    """PING until done(ticks, seconds); the bound only catches a clock that never moves."""
    deadline = time.monotonic() + qemu.ANSWER_TIMEOUT
    while True:
        ticks, seconds = ping(board)
        if done(ticks, seconds):
            return ticks, seconds
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still PONG {ticks} {seconds}")
        time.sleep(0.05)


def test_ping_answers_with_the_clock(board: qemu.QemuBoard) -> None:
    # One timer drives both.  The firmware reads the ticks, then the seconds: each
    # seconds figure lies between the ticks read before it and those read after it.
    ticks, seconds = ping(board)
    later_ticks, _ = ping(board)
    assert ticks // 1000 <= seconds <= later_ticks // 1000


def test_ticks_and_seconds_advance(board: qemu.QemuBoard) -> None:
    ticks, seconds = ping(board)
    later_ticks, _ = wait_for(board, lambda t, s: t > ticks, "ticks do not advance")
    assert later_ticks > ticks
    _, later_seconds = wait_for(board, lambda t, s: s > seconds, "seconds do not advance")
    assert later_seconds > seconds


def test_nv_write_then_read(board: qemu.QemuBoard) -> None:
    assert ask(board, "NVR") == "NVR -"  # QEMU's flash starts blank in every run
    assert ask(board, "NVW 00ff5aa5c3") == "OK NVW 5"
    assert ask(board, "NVR") == "NVR 00ff5aa5c3"
    # Flash writes only clear bits: ff over 00 needs the page erase NVW does first.
    assert ask(board, "NVW ff00") == "OK NVW 2"
    assert ask(board, "NVR") == "NVR ff00"


def test_nv_longer_than_one_chunk_and_unaligned(board: qemu.QemuBoard) -> None:
    data = bytes(range(7, 7 + 83)).hex()
    assert ask(board, f"NVW {data}") == "OK NVW 83"
    assert ask(board, "NVR") == f"NVR {data}"


def test_nv_survives_a_reset(board: qemu.QemuBoard) -> None:
    assert ask(board, "NVW 0badc0de") == "OK NVW 4"
    assert ask(board, "RESET") == "OK RESET"
    line = board.stream.expect("BOOT ")
    assert line == "BOOT microbit nv=4"
    assert ask(board, "NVR") == "NVR 0badc0de"
    wait_for(board, lambda t, s: t > 0, "the clock does not run after the reset")


def test_library_nv_port_keeps_the_halves_in_their_own_pages(board: qemu.QemuBoard) -> None:
    # pgk_port.h: the store erases one 512-byte half at a time and may read or write
    # across the middle; erasing one half must leave the other as it was.
    assert ask(board, "PNE 0") == "OK PNE"
    assert ask(board, "PNE 512") == "OK PNE"
    assert ask(board, "PNW 510 aabbccdd") == "OK PNW"
    assert ask(board, "PNR 508 8") == "PNR ffffaabbccddffff"
    assert ask(board, "PNE 512") == "OK PNE"
    assert ask(board, "PNR 508 8") == "PNR ffffaabbffffffff"
    assert ask(board, "PNW 510 00") == "OK PNW"  # a write clears bits without an erase
    assert ask(board, "PNR 510 2") == "PNR 00bb"
    assert ask(board, "PNW 510 ff") == "ERR PNW"  # setting them again needs one
    assert ask(board, "PNE 0") == "OK PNE"
    assert ask(board, "PNR 510 2") == "PNR ffff"


def test_library_nv_port_refuses_what_the_store_never_asks(board: qemu.QemuBoard) -> None:
    assert ask(board, "PNR 1020 4") == "PNR " + "00" * 4  # never erased: QEMU starts at 0
    assert ask(board, "PNR 1022 4") == "ERR PNR"  # past PGK_NV_SIZE
    assert ask(board, "PNE 100") == "ERR PNE"  # not the start of a half
    assert ask(board, "PNW 1024 00") == "ERR PNW"


def test_bad_lines_are_answered(board: qemu.QemuBoard) -> None:
    assert ask(board, "HELLO") == "ERR HELLO"
    assert ask(board, "NVW 0g") == "ERR BAD_HEX"
    assert ask(board, "NVW " + "00" * 150) == "ERR LINE_TOO_LONG"
    assert ping(board)  # still answering


def test_runs_in_8_kb_of_ram(tmp_path: Path) -> None:
    # The library's smallest targets have 8 KB of RAM: linked so that data, bss and the
    # stack all lie in the first 8 KB (or the link fails), the program must still work.
    qemu.require_tools()
    elf = qemu.build(tmp_path, "RAM_SIZE=8192")
    with qemu.boot(elf) as small:
        assert BOOT.fullmatch(small.stream.expect("BOOT "))
        assert ask(small, "NVW 5a") == "OK NVW 1"
        assert ask(small, "NVR") == "NVR 5a"
        assert ping(small)


def test_missing_tools_skip_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "TOOLS", ("paygkit-no-such-arm-gcc",))
    monkeypatch.delenv(qemu.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="paygkit-no-such-arm-gcc"):
        qemu.require_tools()
    monkeypatch.setenv(qemu.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="paygkit-no-such-arm-gcc"):
        qemu.require_tools()


def test_firmware_size_reports_what_size_counts(bringup: Path) -> None:
    script = qemu.ROOT / "scripts" / "firmware_size.py"
    run = subprocess.run(
        [sys.executable, str(script), str(bringup)],
        capture_output=True,
        text=True,
        timeout=qemu.BUILD_TIMEOUT,
        check=True,
    )
    lines = run.stdout.splitlines()
    found = re.fullmatch(r"flash_bytes=(\d+) ram_bytes=(\d+)", lines[-1])
    assert found, lines[-1]
    text, data, bss = (
        subprocess.run(
            [f"{qemu.CROSS}size", "-B", str(bringup)],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[1]
        .split()[:3]
    )
    assert int(found[1]) == int(text) + int(data)
    assert int(found[2]) == int(data) + int(bss)
    # The deepest thread path starts at the reset handler and goes through main.
    thread = next(line for line in lines if "thread:" in line)
    assert "Reset_Handler > main" in thread
    stack = next(line for line in lines if line.strip().startswith("stack_bytes="))
    assert int(stack.split("=")[1]) > 0


def test_library_size_ends_with_the_budgeted_product_build(tmp_path: Path) -> None:
    """make firmware-size's last part: each budget next to its figure, then the product's line."""
    qemu.require_tools()
    make = ["make", "-C", str(qemu.FIRMWARE), "--no-print-directory", f"BUILD={tmp_path}"]
    run = subprocess.run(
        [*make, f"PYTHON={sys.executable}", "library-size"],
        capture_output=True,
        text=True,
        timeout=qemu.BUILD_TIMEOUT,
        check=True,
    )
    lines = run.stdout.splitlines()
    found = re.fullmatch(r"flash_bytes=(\d+) ram_bytes=(\d+)", lines[-1])
    assert found, lines[-1]
    budgets = lines[lines.index("== budgets") + 1 : -1]
    verdicts = {line.split("  ")[1].strip(): line for line in budgets}
    assert set(verdicts) == {
        "decoder with SipHash",
        "decoder + device logic + storage",
        "everything with the protocol",
        "RAM: state and buffers",
        "worst-case stack",
    }
    for label, limit in (("everything with the protocol", "7,168"), ("RAM", "512")):
        line = next(line for key, line in verdicts.items() if key.startswith(label))
        assert f"<= {limit}: " in line
        assert "protocol.elf" in line
    # The last line is the product probe's: its library bytes and its RAM.
    product = lines.index(f"== {tmp_path}/library-size/product/protocol.elf")
    library = next(line for line in lines[product:] if "library_bytes=" in line)
    assert int(found[1]) == int(library.split("=")[1])
    assert f"{int(found[1]):,} bytes" in verdicts["everything with the protocol"]
    assert f"{int(found[2]):,} bytes" in verdicts["RAM: state and buffers"]
    # Its one call through a pointer is followed: the stack figure is a bound.
    assert "(at most)" in verdicts["worst-case stack"]
    assert ": met" in verdicts["decoder with SipHash"]
