"""The `paygkit` command line: a thin typer + rich layer over paygkit.token.

The entry point is `paygkit.cli.main:app`; the `token` commands live in
`paygkit.cli.token_cmd`.  No protocol logic lives here.
"""
