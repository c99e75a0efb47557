"""`paygkit token ...`: generate, decode and explain OpenPAYGO Tokens.

Every command builds a DeviceParams from its options, calls paygkit.token,
and renders the result; input errors (paygkit.token.TokenError) propagate to
the app, which prints them on one line and exits with status 2.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from paygkit.cli.commands import HELP_MARKUP, KEY_ENV, SUBCOMMANDS, PlainHelpGroup
from paygkit.token import (
    DecodeResult,
    DeviceParams,
    GeneratedToken,
    TokenType,
    days_text,
    decode,
    generate,
)

if TYPE_CHECKING:
    from paygkit.token import HashStep, TokenExplanation

app = typer.Typer(
    name="token",
    help=SUBCOMMANDS["token"].help,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
    cls=PlainHelpGroup,
)


class TokenKind(StrEnum):
    """The token types as typed on the command line."""

    add = "add"
    set = "set"
    disable = "disable"
    sync = "sync"

    @property
    def token_type(self) -> TokenType:
        return {
            TokenKind.add: TokenType.ADD_TIME,
            TokenKind.set: TokenType.SET_TIME,
            TokenKind.disable: TokenType.DISABLE_PAYG,
            TokenKind.sync: TokenType.COUNTER_SYNC,
        }[self]


# --- options shared by the commands ------------------------------------------------------

KeyOption = Annotated[
    str,
    typer.Option(
        "--key",
        envvar=KEY_ENV,
        metavar="HEX",
        show_default=False,
        help=(
            f"The device's secret key, 32 hex characters. Prefer setting {KEY_ENV} in the "
            "environment instead of passing it on the command line. Never printed."
        ),
    ),
]
StartingCodeOption = Annotated[
    int | None,
    typer.Option(
        "--starting-code",
        metavar="N",
        show_default=False,
        help="The device's 9-digit starting code; derived from the key when omitted.",
    ),
]
TimeDividerOption = Annotated[
    int,
    typer.Option("--time-divider", metavar="N", help="Value units per day (1 = days, 24 = hours)."),
]
# The former name of --time-divider in the factory, device and certify commands: still
# taken (scripts and printed work instructions use it), no longer shown.
DividerAliasOption = Annotated[
    int | None, typer.Option("--divider", metavar="N", hidden=True, show_default=False)
]


def time_divider_of(time_divider: int, alias: int | None, default: int = 1) -> int:
    """--time-divider, or its hidden alias --divider; both, with different values, refused."""
    if alias is None:
        return time_divider
    if time_divider not in (default, alias):
        raise typer.BadParameter(
            f"--divider {alias} and --time-divider {time_divider} disagree; give "
            "--time-divider only (--divider is its old name)",
            param_hint="'--time-divider'",
        )
    return alias


RestrictedOption = Annotated[
    bool,
    typer.Option("--restricted", help="The device uses the restricted digit set (keys 1-4)."),
]
CountOption = Annotated[
    int,
    typer.Option(
        "--count",
        metavar="N",
        show_default=False,
        help="The count of the last token made for the device (1 for a new device).",
    ),
]
TypeOption = Annotated[
    TokenKind,
    typer.Option("--type", help="What the token does.", case_sensitive=False),
]
DaysOption = Annotated[
    str | None,
    typer.Option(
        "--days",
        metavar="D",
        show_default=False,
        help="Time for add/set tokens, in days (x time divider = units, rounded half to even).",
    ),
]
UnitsOption = Annotated[
    int | None,
    typer.Option(
        "--units", metavar="U", show_default=False, help="Time for add/set tokens, in raw units."
    ),
]
ExtendedOption = Annotated[
    bool,
    typer.Option("--extended", help="Make a 12-digit extended token (values up to 999 999)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON object instead.")]


def _device(
    key: str, starting_code: int | None, time_divider: int, restricted: bool
) -> DeviceParams:
    return DeviceParams.create(
        key, starting_code, time_divider=time_divider, restricted_digits=restricted
    )


def _parse_days(days: str | None) -> Decimal | None:
    if days is None:
        return None
    try:
        value = Decimal(days.strip())
    except InvalidOperation:
        raise typer.BadParameter(
            "must be a number of days such as 7 or 0.5", param_hint="'--days'"
        ) from None
    if not value.is_finite():
        raise typer.BadParameter("must be a finite number of days", param_hint="'--days'")
    # Bounds before any exact arithmetic, so '1e999999999' cannot make a huge integer.
    if value.adjusted() > 6:
        raise typer.BadParameter("is far more days than one token carries", param_hint="'--days'")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -30:
        raise typer.BadParameter("use at most 30 decimal places", param_hint="'--days'")
    return value


def _parse_used_counts(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        counts = tuple(int(part) for part in parts)
    except ValueError:
        raise typer.BadParameter(
            "must be counts separated by commas, such as 2,3,4", param_hint="'--used-counts'"
        ) from None
    if any(count < 0 for count in counts):
        raise typer.BadParameter("counts are never negative", param_hint="'--used-counts'")
    return counts


def _console() -> Console:
    # Made per call so it writes to the current sys.stdout (tests swap it).
    return Console(highlight=False)


def value_text(token_type: TokenType, units: int | None, days: Fraction | None) -> str:
    """What a token carries, for people: '7 units = 7 days', 'Disable PAYG (998)'."""
    if units is None or days is None:
        if token_type is TokenType.DISABLE_PAYG:
            return "PAYG off (value 998)"
        if token_type is TokenType.COUNTER_SYNC:
            return "count only (value 999)"
        return "-"
    unit_word = "unit" if units == 1 else "units"
    return f"{units} {unit_word} = {days_text(days)}"


def _json_days(days: Fraction | None) -> int | float | None:
    if days is None:
        return None
    return days.numerator if days.denominator == 1 else float(days)


def generated_json(token: GeneratedToken) -> dict[str, Any]:
    """The JSON form of a generated token (never contains the key)."""
    return {
        "token": token.digits,
        "grouped": token.grouped,
        "new_count": token.count,
        "type": token.token_type.value,
        "units": token.units,
        "days": _json_days(token.days),
        "time_divider": token.time_divider,
        "extended": token.extended,
        "restricted": token.restricted,
    }


def decoded_json(result: DecodeResult) -> dict[str, Any]:
    """The JSON form of a decode result."""
    return {
        "type": result.token_type.value,
        "accepted": result.accepted,
        "units": result.units,
        "days": _json_days(result.days),
        "count": result.count,
        "last_count": result.last_count,
        "used_counts": list(result.used_counts),
        "extended": result.extended,
    }


def _big_token(grouped: str, title: str = "Token") -> Panel:
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


# --- generate ------------------------------------------------------------------------------


@app.command("generate")
def generate_command(
    key: KeyOption,
    count: CountOption,
    starting_code: StartingCodeOption = None,
    kind: TypeOption = TokenKind.add,
    days: DaysOption = None,
    units: UnitsOption = None,
    time_divider: TimeDividerOption = 1,
    divider: DividerAliasOption = None,
    restricted: RestrictedOption = False,
    extended: ExtendedOption = False,
    as_json: JsonOption = False,
) -> None:
    """Make the next token for a device and print the count to store."""
    device = _device(key, starting_code, time_divider_of(time_divider, divider), restricted)
    token = generate(
        device,
        count=count,
        token_type=kind.token_type,
        days=_parse_days(days),
        units=units,
        extended=extended,
    )
    warning = zero_time_warning(token)
    if as_json:
        typer.echo(json.dumps(generated_json(token)))
        if warning:
            # On stderr: the JSON on stdout stays what scripts parse.
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"Warning: {warning}", style="yellow", markup=False
            )
        return
    console = _console()
    console.print(_big_token(token.grouped))
    console.print(
        _pairs_table(
            [
                ("Type", token.token_type.label),
                ("Value", value_text(token.token_type, token.units, token.days)),
                ("New count", f"{token.count}  (store this as the device's count)"),
                ("Form", _form_text(token.extended, token.restricted)),
            ]
        )
    )
    if warning:
        console.print(f"Warning: {warning}", style="bold yellow", markup=False)


def zero_time_warning(token: GeneratedToken) -> str | None:
    """What a 0-unit token does, said plainly: it is allowed (device makers test with it)
    but easy to make by mistake, and Set Time 0 switches the customer's device off."""
    if token.units != 0:
        return None
    if token.token_type is TokenType.SET_TIME:
        return (
            "Set Time 0 locks the device: its time left becomes 0 and it stays inactive "
            "until it gets a new token. Give --days (or --units) above 0 to set time instead."
        )
    if token.token_type is TokenType.ADD_TIME:
        return (
            "this token gives no time (0 units): the device only moves its count. "
            "Give --days (or --units) above 0 to add time."
        )
    return None


def _form_text(extended: bool, restricted: bool) -> str:
    form = "extended, 12 digits" if extended else "standard, 9 digits"
    if restricted:
        form += ", restricted digits 1-4"
    return form


# --- decode --------------------------------------------------------------------------------


@app.command("decode")
def decode_command(
    token: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN",
            help="The token as typed; groups separated by spaces or dashes are fine "
            "(quote it: '588 224 011').",
            show_default=False,
        ),
    ],
    key: KeyOption,
    last_count: Annotated[
        int,
        typer.Option(
            "--last-count",
            metavar="N",
            show_default=False,
            help="The count the device stored after its last accepted token.",
        ),
    ],
    starting_code: StartingCodeOption = None,
    used_counts: Annotated[
        str,
        typer.Option(
            "--used-counts",
            metavar="1,2,3",
            help="The device's recently used counts, separated by commas.",
        ),
    ] = "",
    time_divider: TimeDividerOption = 1,
    divider: DividerAliasOption = None,
    restricted: RestrictedOption = False,
    accept_reset_token: Annotated[
        bool,
        typer.Option(
            "--accept-reset-token",
            help="The device is configured to take the reset token (Counter Sync at count 0); "
            "paygkit devices refuse it by default.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what a device with this counter state makes of a token.

    Exits with 0 when the device would accept the token and 1 when it would
    refuse it (already used or invalid), so scripts can test the outcome.
    """
    device = _device(key, starting_code, time_divider_of(time_divider, divider), restricted)
    result = decode(
        device,
        token,
        last_count=last_count,
        used_counts=_parse_used_counts(used_counts),
        accept_reset_token=accept_reset_token,
    )
    if as_json:
        typer.echo(json.dumps(decoded_json(result)))
    else:
        _print_decoded(result)
    if not result.accepted:
        raise typer.Exit(1)


def _print_decoded(result: DecodeResult) -> None:
    style = "bold green" if result.accepted else "bold red"
    verdict = "accepted" if result.accepted else "refused"
    console = _console()
    console.print(
        Text.assemble((result.token_type.name, style), f"  ({result.token_type.label}, {verdict})")
    )
    used = ", ".join(str(c) for c in result.used_counts) or "-"
    console.print(
        _pairs_table(
            [
                ("Value", value_text(result.token_type, result.units, result.days)),
                ("Matched count", "-" if result.count is None else str(result.count)),
                ("New last count", str(result.last_count)),
                ("Used counts", used),
                ("Form", "extended, 12 digits" if result.extended else "standard, 9 digits"),
            ]
        )
    )


# --- explain -------------------------------------------------------------------------------


@app.command("explain")
def explain_command(
    key: KeyOption,
    count: CountOption,
    starting_code: StartingCodeOption = None,
    kind: TypeOption = TokenKind.add,
    days: DaysOption = None,
    units: UnitsOption = None,
    time_divider: TimeDividerOption = 1,
    divider: DividerAliasOption = None,
    restricted: RestrictedOption = False,
    extended: ExtendedOption = False,
    steps: Annotated[
        int,
        typer.Option(
            "--steps", metavar="N", min=0, max=1000, help="How many hash steps to show in full."
        ),
    ] = 8,
) -> None:
    """Show step by step how a token is made (for learning the protocol)."""
    # Here, not at the top: the walk-through is paygkit.token's one lazy part.
    from paygkit.token import explain

    device = _device(key, starting_code, time_divider_of(time_divider, divider), restricted)
    story = explain(
        device,
        count=count,
        token_type=kind.token_type,
        days=_parse_days(days),
        units=units,
        extended=extended,
        max_steps_shown=steps,
    )
    render_explanation(_console(), story)


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


def render_explanation(console: Console, story: TokenExplanation) -> None:
    """Print a TokenExplanation as numbered panels and a table of hash steps."""
    width = story.code_digits
    base_width = story.base_digits
    label = story.token_type.label
    console.print(
        Text.assemble(
            ("How this token is made: ", "bold"),
            f"{label}, {_form_text(story.extended, story.restricted)}, backend {story.backend}",
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
