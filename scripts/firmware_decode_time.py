"""`make -C firmware decode-bench`: worst-case token decode cost on the Cortex-M0.

Builds firmware/boards/microbit/decode_bench.c and runs it in QEMU's micro:bit machine with
`-icount shift=0`: guest time then advances exactly one nanosecond per instruction, so the
microseconds TIMER0 counts are thousands of instructions, the same on any host and under any
load.  For last counts 10, 1,000 and 10,000 the bench decodes an invalid token (the whole
forward window), an invalid Counter Sync token (its wider window) and the valid token of
count N + 2, and counts the hash steps each took.

Instructions are not cycles: the Cortex-M0 takes 2 cycles for a load or store, 3 for a taken
branch, 4 for BL and 1+N for PUSH/POP of N registers (4+N when POP loads the PC).  To weigh
them, a second run traces every instruction of a few hash steps (QEMU's `-singlestep
-d exec,nochain`), each is classed from the ELF's disassembly, and the resulting cycles per
instruction of a hash step convert the decodes' instruction counts.  Flash wait states are
taken as zero (the nRF51 runs from flash at 16 MHz without them); a 48 MHz part with a wait
state would be slower than the 48 MHz column says.

    .venv/bin/python scripts/firmware_decode_time.py [--build DIR] [--runs K] [--json]

--runs K boots the bench K times and fails unless every run printed the same numbers.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.firmware import qemu  # noqa: E402 - after the repository is on the path

ICOUNT = ["-icount", "shift=0"]
CLOCKS_HZ = (16_000_000, 48_000_000)
# The reference's test procedure: every token checked within this.
BUDGET_S = 5.0
# Enough traced steps to average out the fold's data-dependent branch.
TRACED_STEPS = 8

DECODE = re.compile(
    r"DECODE n=(\d+) case=(\w+) kind=(\d+) count=(\d+) steps=(\d+) reps=(\d+) us=(\d+)"
)
STEP = re.compile(r"STEP reps=(\d+) steps=(\d+) us=(\d+) code=\d+")
TRACE = re.compile(r"Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{4} ?)+)\s*\t(\S+)\s*(.*)$")


@dataclass(frozen=True)
class Decode:
    last_count: int
    case: str
    kind: int
    count: int
    steps: int  # hash steps of one decode
    instructions: float  # of one decode

    @property
    def per_step(self) -> float:
        return self.instructions / self.steps if self.steps else 0.0


@dataclass(frozen=True)
class Bench:
    decodes: list[Decode]
    step_instructions: float  # one pgk_next_code call in a loop, from the timer
    lines: list[str]  # the bench's output, for comparing runs


def build(build_dir: Path) -> Path:
    qemu.build(build_dir, target="decode-bench-elf")
    return build_dir / "microbit" / "decode-bench" / "decode_bench.elf"


def bench_lines(elf: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    with qemu.boot(elf, extra=[*ICOUNT, *extra]) as board:
        board.stream.expect("BENCH ")
        while (line := board.stream.read_line(timeout=qemu.ANSWER_TIMEOUT * 4)) != "DONE":
            yield line


def run(elf: Path) -> Bench:
    decodes = []
    step = 0.0
    lines = list(bench_lines(elf))
    for line in lines:
        if found := DECODE.fullmatch(line):
            n, case, kind, count, steps, reps, us = found.groups()
            if int(steps) % int(reps):
                raise SystemExit(f"repeated decodes took different hash steps: {line}")
            decodes.append(
                Decode(
                    int(n), case, int(kind), int(count), int(steps) // int(reps),
                    int(us) * 1000 / int(reps),
                )
            )  # fmt: skip
        elif found := STEP.fullmatch(line):
            reps, _, us = map(int, found.groups())
            step = us * 1000 / reps
        else:
            raise SystemExit(f"unexpected bench line: {line!r}")
    return Bench(decodes, step, lines)


@dataclass(frozen=True)
class Instruction:
    mnemonic: str
    operands: str
    size: int


def disassemble(elf: Path, cross: str) -> tuple[dict[int, Instruction], dict[str, int]]:
    """Every instruction by address, and the function symbols' addresses."""
    text = subprocess.run(
        [f"{cross}objdump", "-d", elf], capture_output=True, text=True, check=True
    ).stdout
    code = {}
    for line in text.splitlines():
        if found := OBJDUMP_LINE.match(line):
            address, raw, mnemonic, operands = found.groups()
            code[int(address, 16)] = Instruction(mnemonic, operands, len(raw.split()) * 2)
    symbols = {}
    table = subprocess.run([f"{cross}nm", elf], capture_output=True, text=True, check=True).stdout
    for line in table.splitlines():
        address, kind, name = line.split()
        if kind in "tT":
            symbols[name] = int(address, 16) & ~1
    return code, symbols


def m0_cycles(insn: Instruction, taken: bool) -> int:
    """Cycles on a Cortex-M0 with zero-wait-state memory (ARM DDI 0432C, table 3-1)."""
    name = insn.mnemonic.split(".")[0]
    registers = 0
    if "{" in insn.operands:
        for item in insn.operands.split("{", 1)[1].split("}", 1)[0].split(","):
            first, _, last = item.strip().partition("-")
            # A range such as r4-r7 counts every register in it.
            registers += int(last.lstrip("r")) - int(first.lstrip("r")) + 1 if last else 1
    if name in ("push", "stmia", "stm", "ldmia", "ldm"):
        return 1 + registers
    if name == "pop":
        return 1 + registers + (3 if "pc" in insn.operands else 0)
    if name.startswith(("ldr", "str")):
        return 2
    if name == "bl":
        return 4
    if name in ("bx", "blx"):
        return 3
    if name == "b" or (name.startswith("b") and len(name) == 3 and name != "bic"):
        return 3 if taken else 1
    if name in ("dsb", "dmb", "isb"):
        return 4
    return 1  # ALU, shifts, moves, compares, and MULS with the nRF51's one-cycle multiplier


@dataclass(frozen=True)
class CycleModel:
    steps: int
    instructions: int
    cycles: int
    classes: dict[str, int]

    @property
    def cpi(self) -> float:
        return self.cycles / self.instructions


def _trace_pcs(log: Path, deadline: float) -> Iterator[int]:
    """The traced program counters as QEMU appends them to log."""
    while not log.exists():
        if time.monotonic() > deadline:
            raise qemu.QemuError("QEMU wrote no trace")
        time.sleep(0.05)
    with log.open() as stream:
        pending = ""
        while True:
            chunk = stream.readline()
            if not chunk:
                if time.monotonic() > deadline:
                    raise qemu.QemuError("the trace stopped before enough hash steps")
                time.sleep(0.05)
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue
            if found := TRACE.match(pending):
                yield int(found[1], 16)
            pending = ""


def cycle_model(elf: Path, cross: str) -> CycleModel:
    """Cycles per instruction of the STEP loop (one pgk_next_code per pass), traced."""
    code, symbols = disassemble(elf, cross)
    entry = symbols["pgk_next_code"]
    classes: dict[str, int] = {}
    instructions = cycles = steps = 0
    with tempfile.TemporaryDirectory(prefix="paygkit-trace-") as scratch:
        log = Path(scratch) / "exec.log"
        # One instruction per translation block and no chaining: every executed
        # instruction is logged, in order.  The STEP loop runs first in the bench.
        extra = [*ICOUNT, "-singlestep", "-d", "exec,nochain", "-D", str(log)]
        with qemu.boot(elf, extra=extra):
            deadline = time.monotonic() + qemu.ANSWER_TIMEOUT
            previous: int | None = None
            entries = 0
            for pc in _trace_pcs(log, deadline):
                if previous is not None and entries >= 2:
                    # Skip the first pass (the loop's set-up); count whole passes.
                    insn = code[previous]
                    taken = pc != previous + insn.size
                    spent = m0_cycles(insn, taken)
                    name = insn.mnemonic.split(".")[0]
                    branch = name.startswith("b") and name not in ("bl", "bx", "blx", "bic")
                    label = f"{name}{'-taken' if branch and taken else ''}"
                    classes[label] = classes.get(label, 0) + 1
                    instructions += 1
                    cycles += spent
                if pc == entry:
                    entries += 1
                    if entries == TRACED_STEPS + 2:
                        break
                previous = pc
            steps = entries - 2
    return CycleModel(steps, instructions, cycles, classes)


def table(bench: Bench, model: CycleModel | None) -> str:
    cpi = model.cpi if model else None
    rows = [
        f"{'last':>6} {'token':<8} {'steps':>6} {'instructions':>12} {'/step':>6}"
        + (f" {'cycles':>11} {'s@16MHz':>8} {'s@48MHz':>8}" if cpi else "")
    ]
    for d in bench.decodes:
        row = (
            f"{d.last_count:>6} {d.case:<8} {d.steps:>6} {d.instructions:>12.0f} {d.per_step:>6.0f}"
        )
        if cpi:
            cycles = d.instructions * cpi
            row += f" {cycles:>11.0f}" + "".join(f" {cycles / hz:>8.3f}" for hz in CLOCKS_HZ)
        rows.append(row)
    rows.append(f"one hash step in a loop: {bench.step_instructions:.0f} instructions")
    if model:
        rows.append(
            f"Cortex-M0 cycles: {model.cpi:.3f} per instruction ({model.cycles / model.steps:.0f} "
            f"per hash step, from {model.instructions} traced instructions of {model.steps} steps; "
            f"{model.instructions / model.steps:.0f} instructions per step)"
        )
        mix = ", ".join(f"{k} {v / model.steps:.0f}" for k, v in sorted(model.classes.items(),
                        key=lambda kv: -kv[1]))  # fmt: skip
        rows.append(f"per step: {mix}")
        # The trace counts instructions one by one, the timer in guest nanoseconds: their
        # agreement is the check that -icount shift=0 gives one instruction per nanosecond.
        rows.append(
            f"traced {model.instructions / model.steps:.1f} instructions per loop pass against "
            f"the timer's {bench.step_instructions:.1f}"
        )
    worst = max(d.instructions for d in bench.decodes) * (cpi or 1.0)
    rows.append(
        f"worst case {worst / CLOCKS_HZ[0]:.3f} s at 16 MHz against the {BUDGET_S:.0f} s budget"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build", type=Path, default=ROOT / "firmware" / "build")
    parser.add_argument("--cross", default=qemu.CROSS)
    parser.add_argument("--runs", type=int, default=1, help="boots that must agree exactly")
    parser.add_argument("--no-cycles", action="store_true", help="skip the traced cycle model")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    elf = build(args.build.resolve())
    bench = run(elf)
    for again in range(1, args.runs):
        other = run(elf)
        if other.lines != bench.lines:
            raise SystemExit(f"run {again + 1} differs from run 1:\n{other.lines}\n{bench.lines}")
    model = None if args.no_cycles else cycle_model(elf, args.cross)
    if args.json:
        out = {
            "decodes": [asdict(d) for d in bench.decodes],
            "step_instructions": bench.step_instructions,
            "cycle_model": asdict(model) if model else None,
            "runs": args.runs,
        }
        print(json.dumps(out, indent=1))
    else:
        if args.runs > 1:
            print(f"{args.runs} runs, identical output")
        print(table(bench, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
