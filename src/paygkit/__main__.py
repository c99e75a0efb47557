"""`python -m paygkit` runs the paygkit command."""

from paygkit.cli.main import app

app()
