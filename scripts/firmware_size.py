"""Flash, RAM, largest symbols and worst-case stack of firmware ELF files.

    python3 scripts/firmware_size.py [--cross arm-none-eabi-] [--top 12] MAIN.elf [OTHER.elf ...]

For each ELF: the sections as `size` counts them (flash = text + data, the initial values
of data being stored in flash; RAM = data + bss, static RAM without the stack), its largest
symbols (`nm --size-sort`), and a worst-case stack estimate.  The last line is
`flash_bytes=N ram_bytes=M` for the first ELF (or the one --last names), for scripts to read.

--modules adds the flash each input object takes, from the linker map next to the ELF
(NAME.map, as -Wl,-Map writes it); with -ffunction-sections that is exact per function, so
it tells a module's share apart from the run-time code (libc, libgcc) it pulls in.  Objects
named by --scaffold (a size probe's start-up, stubs and main) are left out of the
`library_bytes=N` line printed for each ELF, which is then what the library costs a product;
with --modules, the flash of --budget and of the last line is that figure.

--budget "LABEL=ELF:METRIC:LIMIT" (repeatable; METRIC flash, ram or stack) prints a table of
each figure next to its limit, met or not (a limit of 0: reported, no budget).

The stack estimate walks the call graph taken from the disassembly (`bl` calls and tail
branches), so library code such as libgcc's division helpers counts too.  A function's
frame comes from GCC's -fstack-usage files (*.su) found under the ELF's directory (or
--su-dir), else from its code (every push and sub sp in it).  The thread's worst case is the
deepest path from Reset_Handler; an interrupt adds its own deepest path plus the 32 bytes
the Cortex-M0 pushes on entry.  Interrupts are taken not to nest (all at one priority, the
reset default).  Recursion, calls through pointers and dynamic frames cannot be bounded
this way: they are reported, and the figure is then a lower bound, unless --indirect names
every function a pointer call can reach (the caller's calls through pointers then count as
calls to those).
"""

from __future__ import annotations

import argparse
import bisect
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

EXCEPTION_FRAME = 32  # r0-r3, r12, lr, pc, xPSR stacked by the Cortex-M0 on entry

_FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
_INSTRUCTION = re.compile(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$")
_TARGET = re.compile(r"([0-9a-f]+) <")
_REGISTERS = re.compile(r"\{([^}]*)\}")
_SUB_SP = re.compile(r"sp,\s*#(\d+)")
_CLONE = re.compile(r"\.\d+$")


@dataclass
class Function:
    name: str
    calls: set[str] = field(default_factory=set)
    indirect: bool = False
    pushed: int = 0  # every push and sub sp in the body, for code without a *.su entry


@dataclass
class Stack:
    depth: int
    path: list[str]
    problems: list[str]


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def berkeley_size(cross: str, elf: Path) -> tuple[int, int, int]:
    _, values = run(f"{cross}size", "-B", str(elf)).splitlines()[:2]
    text, data, bss = (int(value) for value in values.split()[:3])
    return text, data, bss


def largest_symbols(cross: str, elf: Path, top: int) -> list[tuple[int, str, str]]:
    symbols = []
    for line in run(f"{cross}nm", "--size-sort", "-S", "--radix=d", str(elf)).splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4:
            symbols.append((int(parts[1]), parts[2], parts[3]))
    return sorted(symbols, reverse=True)[:top]


def disassemble(cross: str, elf: Path) -> dict[str, Function]:
    """Functions by name with what they call, resolved by address.

    objdump names a branch target after the nearest symbol, which may be a linker-script
    constant that happens to equal the address; addresses are matched to function starts
    instead, and a branch inside the function it is in is no call.
    """
    functions: dict[str, Function] = {}
    starts: list[tuple[int, str]] = []
    branches: list[tuple[Function, str, int]] = []
    current: Function | None = None
    text = run(f"{cross}objdump", "-d", "--no-show-raw-insn", str(elf))
    for line in text.splitlines():
        header = _FUNCTION.match(line)
        if header:
            current = functions.setdefault(header[2], Function(header[2]))
            starts.append((int(header[1], 16), header[2]))
            continue
        instruction = _INSTRUCTION.match(line)
        if current is None or not instruction:
            continue
        mnemonic, operands = instruction[1], instruction[2]
        # Summed over the whole body, not just the prologue: hand-written code (libgcc)
        # may push late or twice, and an over-estimate is the safe side.
        if mnemonic == "push":
            registers = _REGISTERS.search(operands)
            current.pushed += 4 * len(registers[1].split(",")) if registers else 0
        elif mnemonic.startswith("sub") and operands.startswith("sp"):
            amount = _SUB_SP.search(operands)
            current.pushed += int(amount[1]) if amount else 0
        target = _TARGET.match(operands)
        if mnemonic in ("bl", "b", "b.n", "b.w") and target:
            branches.append((current, mnemonic, int(target[1], 16)))
        elif mnemonic == "blx" or (mnemonic.startswith("bx") and "lr" not in operands):
            current.indirect = True
    starts.sort()
    for caller, mnemonic, address in branches:
        index = bisect.bisect_right(starts, (address, "\uffff")) - 1
        if index < 0:
            continue
        start, callee = starts[index]
        if callee == caller.name:
            continue  # a loop or a jump inside the function
        if mnemonic == "bl" or address == start:
            # A plain branch to another function's start is a tail call: counted as a
            # call, which over-estimates by the caller's frame.
            caller.calls.add(callee)
    return functions


def stack_usage(directories: list[Path]) -> tuple[dict[str, int], set[str]]:
    """Frame sizes by function name from *.su files, and the names with dynamic frames."""
    frames: dict[str, int] = {}
    dynamic: set[str] = set()
    for directory in directories:
        for su in sorted(directory.rglob("*.su")):
            for line in su.read_text().splitlines():
                where, size, kind = line.rsplit("\t", 2)
                name = where.rsplit(":", 1)[-1]
                # Two static functions of one name in two files: take the larger frame.
                frames[name] = max(frames.get(name, 0), int(size))
                if "dynamic" in kind and "bounded" not in kind:
                    dynamic.add(name)
    return frames, dynamic


def deepest(
    name: str,
    functions: dict[str, Function],
    frames: dict[str, int],
    dynamic: set[str],
    memo: dict[str, Stack],
    active: set[str],
    targets: dict[str, set[str]],
) -> Stack:
    if name in memo:
        return memo[name]
    function = functions.get(name)
    key = _CLONE.sub("", name)
    if function is None:
        return Stack(0, [name], [f"{name}: not in the image, frame unknown"])
    frame = frames.get(key, frames.get(name, function.pushed))
    problems = []
    calls = set(function.calls)
    if function.indirect and key in targets:
        calls |= targets[key]
    elif function.indirect:
        problems.append(f"{name}: calls through a pointer, not followed")
    if key in dynamic:
        problems.append(f"{name}: dynamic frame, counted at its static part")
    best = Stack(0, [], [])
    active.add(name)
    for callee in sorted(calls):
        if callee in active:
            problems.append(f"{name} -> {callee}: recursion, not bounded")
            continue
        below = deepest(callee, functions, frames, dynamic, memo, active, targets)
        problems.extend(below.problems)
        if below.depth > best.depth or not best.path:
            best = below
    active.discard(name)
    result = Stack(frame + best.depth, [name, *best.path], sorted(set(problems)))
    memo[name] = result
    return result


def handlers(cross: str, elf: Path, functions: dict[str, Function]) -> list[str]:
    """The exception handlers in the image, one name per address (weak aliases share one)."""
    by_address: dict[str, str] = {}
    for line in run(f"{cross}nm", str(elf)).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtW" and parts[2].endswith("Handler"):
            by_address.setdefault(parts[0], parts[2])
            if parts[2] in functions:
                by_address[parts[0]] = parts[2]  # the name objdump used for the code
    return sorted(name for name in by_address.values() if name != "Reset_Handler")


_MAP_OUTPUT = re.compile(r"^(\.\S+)\s+0x[0-9a-f]+\s+0x[0-9a-f]+")
# An input section: its name alone on a line when long (the numbers follow on the next),
# else name, address, size and the object on one line.
_MAP_NAME_ALONE = re.compile(r"^ (\.\S+|COMMON)\s*$")
_MAP_INPUT = re.compile(r"^ (?:\.\S+|COMMON)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
_MAP_CONTINUED = re.compile(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*)$")
# The output sections whose contents are stored in flash (.data: its initial values).
_FLASH_OUTPUTS = (".text", ".ARM.exidx", ".data")


def module_sizes(map_file: Path) -> dict[str, int]:
    """Flash bytes by input object (an archive member as ARCHIVE(MEMBER)), from a GNU ld map.

    Alignment padding (*fill*) belongs to no object and is left out, so the sum can fall a
    few bytes short of the flash figure.
    """
    sizes: dict[str, int] = {}
    output = None
    pending = False  # an input section name on a line of its own; its numbers follow
    started = False
    for line in map_file.read_text().splitlines():
        if not started:
            started = line.startswith("Linker script and memory map")
            continue
        heading = _MAP_OUTPUT.match(line)
        if heading or (line and not line[0].isspace()):
            output = heading[1] if heading else line.split()[0]
            pending = False
            continue
        if _MAP_NAME_ALONE.match(line):
            pending = True
            continue
        entry = _MAP_INPUT.match(line) or (pending and _MAP_CONTINUED.match(line))
        pending = False
        if not entry or output not in _FLASH_OUTPUTS or not int(entry[1], 16):
            continue
        # "dir/lib.a(member.o)" is named "lib.a(member.o)", "dir/file.o" "file.o".
        where = entry[2]
        archive, paren, member = where.partition("(")
        name = Path(archive).name + paren + member
        sizes[name] = sizes.get(name, 0) + int(entry[1], 16)
    return sizes


def report_modules(elf: Path, scaffold: list[str]) -> int | None:
    """Prints the flash by module; returns library_bytes (None without a map)."""
    map_file = elf.with_suffix(".map")
    if not map_file.exists():
        print(f"   no {map_file.name}: link with -Wl,-Map=... for the sizes by module")
        return None
    sizes = module_sizes(map_file)
    print("   flash by module (linker map):")
    library = 0
    for name, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        left_out = name in scaffold
        library += 0 if left_out else size
        print(f"   {size:>8}  {name}{'  (probe, not counted)' if left_out else ''}")
    print(f"   library_bytes={library}")
    return library


@dataclass
class Figures:
    flash: int
    ram: int
    stack: int
    stack_bound: str  # "at most", or "at least" when some calls could not be followed


def report(
    elf: Path, cross: str, top: int, su_dirs: list[Path], targets: dict[str, set[str]]
) -> Figures:
    text, data, bss = berkeley_size(cross, elf)
    flash, ram = text + data, data + bss
    print(f"== {elf}")
    print(f"   {'text':>8} {'data':>8} {'bss':>8}   {'flash':>8} {'ram':>8}")
    print(f"   {text:>8} {data:>8} {bss:>8}   {flash:>8} {ram:>8}")
    if top > 0:
        print(f"   largest symbols ({cross}nm --size-sort):")
        for size, kind, name in largest_symbols(cross, elf, top):
            print(f"   {size:>8}  {kind}  {name}")

    functions = disassemble(cross, elf)
    frames, dynamic = stack_usage(su_dirs or [elf.parent])
    memo: dict[str, Stack] = {}
    thread = deepest("Reset_Handler", functions, frames, dynamic, memo, set(), targets)
    worst_irq: tuple[int, str, Stack] | None = None
    for handler in handlers(cross, elf, functions):
        stack = deepest(handler, functions, frames, dynamic, memo, set(), targets)
        if worst_irq is None or stack.depth > worst_irq[0]:
            worst_irq = (stack.depth, handler, stack)
    print("   worst-case stack:")
    print(f"   {thread.depth:>8}  thread: {' > '.join(thread.path)}")
    total = thread.depth
    problems = list(thread.problems)
    if worst_irq is not None:
        depth, _, stack = worst_irq
        total += depth + EXCEPTION_FRAME
        print(f"   {depth + EXCEPTION_FRAME:>8}  interrupt: {' > '.join(stack.path)} (+32 entry)")
        problems.extend(stack.problems)
    bound = "at least" if problems else "at most"
    print(f"   {total:>8}  in all ({bound})")
    for problem in sorted(set(problems)):
        print(f"             ! {problem}")
    print(f"   stack_bytes={total}")
    return Figures(flash, ram, total, bound)


@dataclass
class Budget:
    label: str
    elf: Path
    metric: str
    limit: int


def parse_budget(text: str) -> Budget:
    label, _, rest = text.partition("=")
    elf, metric, limit = rest.rsplit(":", 2)
    if not label or metric not in ("flash", "ram", "stack") or not limit.isdigit():
        raise argparse.ArgumentTypeError(f"not LABEL=ELF:flash|ram|stack:LIMIT: {text!r}")
    return Budget(label, Path(elf), metric, int(limit))


def report_budgets(budgets: list[Budget], figures: dict[Path, Figures]) -> None:
    print("== budgets")
    width = max(len(budget.label) for budget in budgets)
    for budget in budgets:
        got = figures[budget.elf]
        value = getattr(got, budget.metric)
        unit = "bytes"
        if budget.metric == "stack":
            unit = f"bytes ({got.stack_bound})"
        if budget.limit == 0:
            verdict = "reported"
        else:
            verdict = f"<= {budget.limit:,}: " + ("met" if value <= budget.limit else "NOT MET")
        print(f"   {budget.label:<{width}}  {value:>7,} {unit}  {verdict}  ({budget.elf.name})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("elves", nargs="+", type=Path, metavar="ELF")
    parser.add_argument("--cross", default="arm-none-eabi-", help="tool prefix")
    parser.add_argument("--top", type=int, default=12, help="how many symbols to list")
    parser.add_argument(
        "--su-dir", type=Path, action="append", default=[], help="where the *.su files are"
    )
    parser.add_argument(
        "--modules", action="store_true", help="flash by input object, from NAME.map"
    )
    parser.add_argument(
        "--scaffold",
        action="append",
        default=[],
        metavar="OBJECT",
        help="an object (file name) --modules leaves out of library_bytes",
    )
    parser.add_argument(
        "--budget",
        action="append",
        default=[],
        type=parse_budget,
        metavar="LABEL=ELF:METRIC:LIMIT",
        help="a figure to show against its limit (METRIC: flash, ram or stack)",
    )
    parser.add_argument("--last", type=Path, help="the ELF of the last line (default: the first)")
    parser.add_argument(
        "--indirect",
        action="append",
        default=[],
        metavar="CALLER=CALLEE",
        help="the function CALLER calls through a pointer (one option per target it can have)",
    )
    args = parser.parse_args(argv)
    targets: dict[str, set[str]] = {}
    for pair in args.indirect:
        caller, _, callee = pair.partition("=")
        if not caller or not callee:
            parser.error(f"--indirect takes CALLER=CALLEE, not {pair!r}")
        targets.setdefault(caller, set()).add(callee)
    figures: dict[Path, Figures] = {}
    for elf in args.elves:
        figures[elf] = report(elf, args.cross, args.top, args.su_dir, targets)
        if args.modules:
            library = report_modules(elf, args.scaffold)
            if library is not None:
                figures[elf].flash = library
    for budget in args.budget:
        if budget.elf not in figures:
            parser.error(f"--budget names {budget.elf}, which is not among the ELF files")
    if args.budget:
        report_budgets(args.budget, figures)
    last = figures[args.last] if args.last else figures[args.elves[0]]
    print(f"flash_bytes={last.flash} ram_bytes={last.ram}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
