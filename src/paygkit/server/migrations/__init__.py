"""Alembic migrations of the token server (applied by `paygkit server init` and on start)."""
