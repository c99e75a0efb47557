"""Plain statements: a Core statement compiled once per dialect, run on the driver's cursor.

The token issue path is the server's one hot path.  Through SQLAlchemy's
execution machinery each of its statements cost three times the driver's own
work, and the ORM's unit of work more than all the statements together.  So
the path keeps SQLAlchemy for what it does well here, writing the SQL for the
dialect (the statement is declared once, in Core, against the models' tables)
and the types' conversions (their public bind and result processors), and
hands the compiled text to the DBAPI cursor of the connection the caller's
transaction already holds.  Nothing else changes: same transaction, same
locks, same constraints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # The order of the parameters for a positional paramstyle (SQLite's "?"), else None.
    positions: tuple[str, ...] | None
    binds: tuple[tuple[str, Processor], ...]
    results: tuple[Processor, ...]


class PlainStatement:
    """`statement` (with named bind parameters), compiled for each dialect it meets."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        known = self._by_dialect.get(dialect.name)
        if known is not None:
            return known
        compiled = self.statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        binds = tuple(
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in compiled.binds.items()
        )
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            # A SELECT's columns, or an INSERT's or UPDATE's RETURNING columns.
            for column in getattr(self.statement, "exported_columns", ())
        )
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        made = _Compiled(compiled.string, positions, binds, results)
        self._by_dialect[dialect.name] = made
        return made

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> Any:
        """Run with `values` (by bind name) in `connection`'s transaction; the DBAPI cursor."""
        compiled = self._compiled(connection.dialect)
        converted = {
            name: values[name] if process is None else process(values[name])
            for name, process in compiled.binds
        }
        parameters: Sequence[Any] | Mapping[str, Any] = (
            converted
            if compiled.positions is None
            else tuple(converted[name] for name in compiled.positions)
        )
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(compiled.sql, parameters)
        return cursor

    def first(self, connection: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row of a SELECT or RETURNING, its values converted by the column types."""
        cursor = self.execute(connection, values)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        processors = self._by_dialect[connection.dialect.name].results
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, processors, strict=True)
        )

    def run(self, connection: Connection, values: Mapping[str, Any]) -> None:
        """Run a statement that returns no rows."""
        self.execute(connection, values).close()
