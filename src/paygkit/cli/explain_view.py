"""How `paygkit token explain` shows a token being made: rich panels and a table of hash steps.

Apart from token_cmd so that `generate` and `decode`, which print a few plain lines,
never import rich's console (about a third of their start-up)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paygkit.token import HashStep, TokenExplanation


def new_console() -> Console:
    # Made per call so it writes to the current sys.stdout (tests swap it).
    return Console(highlight=False)


def _big_token(grouped: str, title: str) -> Panel:
    return Panel(
        Text(grouped, style="bold green", justify="center"),
        title=title,
        expand=False,
        padding=(1, 4),
    )


def _pairs_table(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    return table


def _code(value: int, width: int = 0) -> str:
    """A number zero-padded to `width` digits, in groups of three from the right."""
    text = f"{value:0{width}d}"
    head = len(text) % 3
    groups = ([text[:head]] if head else []) + [text[i : i + 3] for i in range(head, len(text), 3)]
    return " ".join(groups)


def _correction(story: TokenExplanation, step: HashStep) -> str:
    return f"- {_code(story.fold_subtract)}" if step.corrected else "none"


def _steps_table(story: TokenExplanation, title: str) -> Table:
    width = story.code_digits
    table = Table(title=title, title_justify="left")
    table.add_column("count", justify="right")
    table.add_column("input code", justify="right", no_wrap=True)
    table.add_column("message (8 bytes, hex)", no_wrap=True)
    table.add_column("SipHash-2-4", no_wrap=True)
    table.add_column("folded", justify="right", no_wrap=True)
    table.add_column("correction", no_wrap=True)
    table.add_column("output code", justify="right", no_wrap=True)
    for step in story.steps:
        table.add_row(
            str(step.count),
            _code(step.input_code, width),
            step.message_hex,
            step.digest_hex,
            _code(step.folded, width),
            _correction(story, step),
            _code(step.output_code, width),
        )
    return table


def render_explanation(console: Console, story: TokenExplanation, form: str) -> None:
    """Print a TokenExplanation as numbered panels and a table of hash steps."""
    width = story.code_digits
    base_width = story.base_digits
    label = story.token_type.label
    console.print(
        Text.assemble(
            ("How this token is made: ", "bold"),
            f"{label}, {form}, backend {story.backend}",
        )
    )

    value = story.value
    console.print(
        Panel(
            _pairs_table(
                [
                    ("Type", label),
                    ("Value", str(value.value)),
                    ("Why", value.note),
                ]
            ),
            title="1. The value",
            title_align="left",
            expand=False,
        )
    )

    modulus = story.modulus
    console.print(
        Panel(
            _pairs_table(
                [
                    ("Starting code", _code(story.starting_code, 9)),
                    (
                        "Its base",
                        f"{story.starting_code_base:0{base_width}d} (the last {base_width} digits)",
                    ),
                    (
                        "Token base",
                        f"({story.starting_code_base:0{base_width}d} + {value.value}) "
                        f"mod {modulus} = {story.token_base:0{base_width}d}",
                    ),
                    (
                        "Masked code",
                        f"{_code(story.masked_starting_code, width)} "
                        f"(the starting code with its base replaced by the token base)",
                    ),
                ]
            ),
            title="2. Hide the value in the starting code",
            title_align="left",
            expand=False,
        )
    )

    console.print(
        Panel(
            _pairs_table(
                [
                    ("Last count", str(story.previous_count)),
                    ("New count", str(story.new_count)),
                    ("Why", story.count_note),
                    (
                        "Cost",
                        f"the masked code is hashed {story.new_count} times, once per count, "
                        "without re-masking between steps",
                    ),
                ]
            ),
            title="3. The count",
            title_align="left",
            expand=False,
        )
    )

    if story.extended:
        rule = (
            "message = the code as 8 bytes big-endian; folded = bits 24..63 of the hash; "
            f"if above {_code(story.fold_limit)} subtract {_code(story.fold_subtract)}"
        )
    else:
        rule = (
            "message = the code as 4 bytes big-endian, twice; folded = (high 32 bits XOR "
            f"low 32 bits) >> 2; if above {_code(story.fold_limit)} subtract "
            f"{_code(story.fold_subtract)}"
        )
    title = "4. The hash chain: next(code) = fold(SipHash-2-4(key, message(code)))"
    table = _steps_table(story, title)
    needed = console.measure(table, options=console.options.update_width(1000)).maximum
    if needed <= console.width:
        console.print(table)
    else:
        # Too narrow for one row per step: one small block per step instead.
        console.print(Text(title, style="italic"))
        for step in story.steps:
            console.print(
                Panel(
                    _pairs_table(
                        [
                            ("input code", _code(step.input_code, width)),
                            ("message", step.message_hex),
                            ("SipHash-2-4", step.digest_hex),
                            ("folded", _code(step.folded, width)),
                            ("correction", _correction(story, step)),
                            ("output code", _code(step.output_code, width)),
                        ]
                    ),
                    title=f"step {step.count}",
                    title_align="left",
                    expand=False,
                )
            )
    console.print(rule)
    if story.steps_skipped:
        console.print(
            f"... {story.steps_skipped} more step(s) not shown (run on the {story.backend} "
            f"backend), up to count {story.new_count}"
        )

    console.print(
        Panel(
            _pairs_table(
                [
                    (
                        "Chain value",
                        f"{_code(story.chain_end, width)} (after {story.new_count} steps)",
                    ),
                    ("Token base", f"{story.token_base:0{base_width}d}"),
                    (
                        "Token value",
                        f"{_code(story.token_value, width)} (its last {base_width} digits "
                        "replaced by the token base)",
                    ),
                ]
            ),
            title="5. Put the base back",
            title_align="left",
            expand=False,
        )
    )

    conversion = story.restricted_conversion
    if conversion is not None:
        pairs = Table(
            show_header=False, box=None, padding=(0, 1), pad_edge=False, collapse_padding=True
        )
        for _ in conversion.pairs:
            pairs.add_column(justify="center")
        pairs.add_row(*conversion.pairs)
        pairs.add_row(*("v" for _ in conversion.pairs))
        pairs.add_row(*conversion.digits, style="bold")
        console.print(
            Panel(
                Group(
                    f"{conversion.value} = {conversion.bits} in {len(conversion.bits)} bits; "
                    "each pair of bits, plus 1, is one digit 1-4:",
                    pairs,
                ),
                title="6. Restricted digits",
                title_align="left",
                expand=False,
            )
        )

    console.print(_big_token(story.grouped, title=f"Token ({label})"))
    console.print(
        f"New count: {story.new_count}  (store this as the device's count; "
        "the same digits as `paygkit token generate`)"
    )
