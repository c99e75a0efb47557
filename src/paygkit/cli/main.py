"""The `paygkit` application: the `token` commands, `demo` and `--version`.

Input errors end the program with one red line on stderr and exit status 2,
never a traceback, and no message ever contains a key.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer import _click as click  # the click typer is built on (typer vendors it)
from typer.core import TyperCommand

from paygkit import __version__
from paygkit.cli.commands import HELP_MARKUP, KEY_ENV, SUBCOMMANDS, PlainHelpGroup, Subcommand

USAGE_EXIT_CODE = 2


def _fail(message: str, hint: str | None = None) -> None:
    """Print one red line on stderr (no wrapping, no markup from the message)."""
    # On the way out only: each costs the start-up of every command that succeeds.
    from rich.console import Console
    from rich.markup import escape

    from paygkit.token import hide_keys

    text = hide_keys(message.strip().replace("\n", " "))
    if hint:
        text += f" ({hint})"
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]Error: {escape(text)}[/]")


def _is_token_error(error: Exception) -> bool:
    """A bad key, count or token given to a command (the token layer's TokenError).

    Looked up only if a command imported the token layer: the root command must
    not import it for all the commands that never do.
    """
    token = sys.modules.get("paygkit.token")
    return token is not None and isinstance(error, token.TokenError)


def _click_failure(error: Exception) -> tuple[str, str | None, int] | None:
    """Message, hint and exit code of a click/typer usage error, else None.

    Duck-typed so it works whether typer vendors click or depends on it.
    """
    format_message = getattr(error, "format_message", None)
    exit_code = getattr(error, "exit_code", None)
    if not callable(format_message) or not isinstance(exit_code, int):
        return None
    ctx = getattr(error, "ctx", None)
    command_path = getattr(ctx, "command_path", None)
    hint = f"see '{command_path} --help'" if isinstance(command_path, str) else None
    return str(format_message()), hint, exit_code


class LazySubcommands(PlainHelpGroup):
    """A group whose subcommands are imported when one is run, not before.

    `paygkit --help` and `paygkit token ...` would otherwise import the device
    simulator, the factory, certification and the server (SQLAlchemy, FastAPI)
    first: most of the start-up time of every command.  The list in the help
    shows each subcommand's one-line help from `paygkit.cli.commands`.
    """

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*SUBCOMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperCommand(cmd_name, short_help=entry.summary)
        return _load(cmd_name, entry)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _load(name: str, entry: Subcommand) -> click.Command:
    app = getattr(importlib.import_module(entry.module), entry.attribute)
    command = typer.main.get_group(app) if entry.group else typer.main.get_command(app)
    command.name = name
    return command


class OneLineErrorGroup(LazySubcommands):
    """The top-level group: turns input errors into one line and exit status 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(
                args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra
            )
        try:
            result = super().main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )
        except typer.Abort:
            _fail("aborted")
            sys.exit(1)
        except Exception as error:
            if _is_token_error(error):
                _fail(str(error))
                sys.exit(USAGE_EXIT_CODE)
            failure = _click_failure(error)
            if failure is None:
                raise
            message, hint, exit_code = failure
            if type(error).__name__ == "NoArgsIsHelpError":
                # The help has been printed already (or is the message).
                if message.strip():
                    typer.echo(message)
                sys.exit(0)
            _fail(message, hint)
            sys.exit(exit_code)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="paygkit",
    cls=OneLineErrorGroup,
    help=(
        "paygkit: an open toolkit for pay-as-you-go devices built on OpenPAYGO Token.\n\n"
        f"Commands that need a device key read it from --key or from the environment "
        f"variable {KEY_ENV}; keys are never printed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paygkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """paygkit: OpenPAYGO Token tools for pay-as-you-go devices."""
