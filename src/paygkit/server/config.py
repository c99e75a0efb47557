"""Server settings: where the database and the master key are.

Read from the environment (`Settings.from_env`) or given by the CLI:

- `PAYGKIT_DATA_DIR`: the data directory, where the default database and key
  file are; default: the current directory.
- `PAYGKIT_DATABASE_URL`: a SQLAlchemy URL; default `sqlite:///<data dir>/paygkit.db`.
  `postgresql://...` is taken as `postgresql+psycopg://...` (psycopg 3).
- `PAYGKIT_MASTER_KEY`: the master key itself (64 hex characters), or
- `PAYGKIT_MASTER_KEY_FILE`: a file holding it; default `<data dir>/paygkit-master.key`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

DATABASE_FILE = "paygkit.db"
DEFAULT_DATABASE_URL = f"sqlite:///./{DATABASE_FILE}"
DEFAULT_MASTER_KEY_FILE = "paygkit-master.key"
DATA_DIR_ENV = "PAYGKIT_DATA_DIR"
DATABASE_ENV = "PAYGKIT_DATABASE_URL"
MASTER_KEY_ENV = "PAYGKIT_MASTER_KEY"
MASTER_KEY_FILE_ENV = "PAYGKIT_MASTER_KEY_FILE"


def normalise_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` mean psycopg 3; anything else is kept."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    master_key_file: Path = Path(DEFAULT_MASTER_KEY_FILE)
    # The master key given directly (environment); wins over the file.
    master_key_hex: str | None = None
    # Deliver webhooks from a background thread of the server process.
    webhook_worker: bool = True
    data_dir: Path = Path()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        given_dir = overrides.pop("data_dir", None) or env.get(DATA_DIR_ENV) or "."
        # Absolute, so that worker processes and messages name the same place.
        data_dir = Path(str(given_dir)).expanduser().absolute()
        values: dict[str, object] = {
            "data_dir": data_dir,
            "database_url": env.get(DATABASE_ENV) or f"sqlite:///{data_dir / DATABASE_FILE}",
            "master_key_file": env.get(MASTER_KEY_FILE_ENV) or data_dir / DEFAULT_MASTER_KEY_FILE,
            "master_key_hex": env.get(MASTER_KEY_ENV) or None,
        }
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        values["database_url"] = normalise_database_url(str(values["database_url"]))
        values["master_key_file"] = Path(str(values["master_key_file"]))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        return sqlite_path(self.database_url)

    @property
    def master_key_origin(self) -> str:
        """Where the master key is read from, for messages."""
        if self.master_key_hex:
            return MASTER_KEY_ENV
        return str(self.master_key_file)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for worker processes)."""
        env = {
            DATA_DIR_ENV: str(self.data_dir),
            DATABASE_ENV: self.database_url,
            MASTER_KEY_FILE_ENV: str(self.master_key_file),
        }
        if self.master_key_hex:
            env[MASTER_KEY_ENV] = self.master_key_hex
        return env
