"""Alembic environment: runs on the connection given by paygkit.server.db.Database.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from paygkit.server.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


given = config.attributes.get("connection")
if isinstance(given, Connection):
    _run(given)
else:  # `alembic` command line: sqlalchemy.url from the ini file
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or run 'paygkit server init'")
    with create_engine(url).connect() as connection:
        _run(connection)
        connection.commit()
