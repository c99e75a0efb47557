"""`paygkit token ...`: generate, decode and explain OpenPAYGO Tokens.

Every command builds a DeviceParams from its options, calls paygkit.token,
and renders the result; input errors (paygkit.token.TokenError) propagate to
the app, which prints them on one line and exits with status 2.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any

import typer

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


# generate and decode print a few lines with click's styles (typer has loaded click
# anyway): rich's console would be about a third of their start-up.  explain, a
# walk-through read once, keeps rich's panels (explain_view).


def _color() -> bool | None:
    """No colour when NO_COLOR is set (no-color.org); else click's choice (a terminal only)."""
    return False if os.environ.get("NO_COLOR") else None


def _echo_pairs(rows: list[tuple[str, str]]) -> None:
    """Label and value on each line, the values aligned two spaces after the longest label."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        typer.echo(typer.style(label.ljust(width), bold=True) + "  " + value, color=_color())


def _echo_warning(warning: str | None) -> None:
    if warning:
        typer.echo(typer.style(f"Warning: {warning}", fg="yellow", bold=True), color=_color())


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
            typer.echo(typer.style(f"Warning: {warning}", fg="yellow"), err=True, color=_color())
        return
    # The token alone on a line, set off by blank lines: read out to a customer, or copied.
    typer.echo(
        "\n" + typer.style(f"    {token.grouped}", fg="green", bold=True) + "\n", color=_color()
    )
    _echo_pairs(
        [
            ("Type", token.token_type.label),
            ("Value", value_text(token.token_type, token.units, token.days)),
            ("New count", f"{token.count}  (store this as the device's count)"),
            ("Form", _form_text(token.extended, token.restricted)),
        ]
    )
    _echo_warning(warning)


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
    verdict = "accepted" if result.accepted else "refused"
    name = typer.style(result.token_type.name, fg="green" if result.accepted else "red", bold=True)
    typer.echo(f"{name}  ({result.token_type.label}, {verdict})", color=_color())
    used = ", ".join(str(c) for c in result.used_counts) or "-"
    _echo_pairs(
        [
            ("Value", value_text(result.token_type, result.units, result.days)),
            ("Matched count", "-" if result.count is None else str(result.count)),
            ("New last count", str(result.last_count)),
            ("Used counts", used),
            ("Form", "extended, 12 digits" if result.extended else "standard, 9 digits"),
        ]
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
    # Here, not at the top: the walk-through is paygkit.token's one lazy part, and its
    # rendering the only one of these commands that needs rich.
    from paygkit.cli.explain_view import new_console, render_explanation
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
    render_explanation(new_console(), story, _form_text(story.extended, story.restricted))
