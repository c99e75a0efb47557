"""The subcommands of `paygkit`: where each lives and what its help says.

`paygkit.cli.main` lists them in its help from here and imports a
subcommand's module only when that subcommand runs (see `LazySubcommands`),
so each module takes its own help text from here too: one text, two uses.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from typer import _click as click  # the click typer is built on (typer vendors it)
from typer.core import TyperGroup

KEY_ENV = "PAYGKIT_KEY"
FACTORY_PASSWORD_ENV = "PAYGKIT_FACTORY_PASSWORD"
# Every app's help is plain text in click's layout (rich_markup_mode=None), not
# typer's rich panels: drawing those cost about the import of typer and rich
# again at each --help, which made `paygkit --help` twice that import.
HELP_MARKUP = None


class PlainHelpGroup(TyperGroup):
    """A group whose plain help lists each command with its help's first paragraph.

    Click's own list cuts a command's help at its first full stop or where the
    line ends ("... if there...", "(e.g."); the list here wraps the whole
    paragraph instead, as typer's rich panels did.
    """

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            text = inspect.cleandoc(command.short_help or command.help or "").partition("\f")[0]
            rows.append((name, " ".join(text.split("\n\n", 1)[0].split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@dataclass(frozen=True, slots=True)
class Subcommand:
    module: str
    attribute: str  # the module's Typer app
    help: str
    # A group of commands (`paygkit device simulate`), even of one; else the app's only
    # command is the subcommand itself (`paygkit certify`).
    group: bool = True

    @property
    def summary(self) -> str:
        """The first paragraph, as the list of commands shows it."""
        return self.help.split("\n\n", 1)[0]


SUBCOMMANDS = {
    "certify": Subcommand(
        "paygkit.cli.certify_cmd",
        "app",
        "Certify a device: run the test procedure (G1-G12, U1-U3 and the IN, RD, TD, EX, "
        "CS, XO, WP and RS suites) through the device protocol, or print it as a sheet with "
        "--manual.\n\n"
        "Exit status 0 when no case failed, 1 when one did, 2 when the run could not start.",
        group=False,
    ),
    "demo": Subcommand(
        "paygkit.cli.demo_cmd",
        "app",
        "Run a token round trip on the first published test device.",
        group=False,
    ),
    "token": Subcommand(
        "paygkit.cli.token_cmd",
        "app",
        "Generate, decode and explain OpenPAYGO Tokens.\n\n"
        "The device key can be given with --key or, better, in the environment "
        f"variable {KEY_ENV}, so that it stays out of shell history and process "
        "lists. The key is never printed.",
    ),
    "device": Subcommand(
        "paygkit.cli.device_cmd",
        "app",
        "A simulated PAYG device: interactive, or served over stdio, TCP or a pty.",
    ),
    "factory": Subcommand(
        "paygkit.cli.factory_cmd",
        "app",
        "Factory tools: make device parameters in batches, check device lists, encrypt "
        "them for transport, and flash devices over the device protocol.\n\n"
        f"Passwords are read from {FACTORY_PASSWORD_ENV} or asked for; keys are never "
        "printed.",
    ),
    "server": Subcommand(
        "paygkit.cli.server_cmd",
        "app",
        "The token server: devices, tokens, payments, roles and audit over HTTP. "
        "SQLite (./paygkit.db) by default, PostgreSQL with --database or "
        "PAYGKIT_DATABASE_URL.",
    ),
}
