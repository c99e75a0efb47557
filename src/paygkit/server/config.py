"""Server settings: where the database and the master key are.

Read from the environment (`Settings.from_env`) or given by the CLI:

- `PAYGKIT_DATABASE_URL`: a SQLAlchemy URL; default `sqlite:///./paygkit.db`.
  `postgresql://...` is taken as `postgresql+psycopg://...` (psycopg 3).
- `PAYGKIT_MASTER_KEY`: the master key itself (64 hex characters), or
- `PAYGKIT_MASTER_KEY_FILE`: a file holding it; default `./paygkit-master.key`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///./paygkit.db"
DEFAULT_MASTER_KEY_FILE = "paygkit-master.key"
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


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    master_key_file: Path = Path(DEFAULT_MASTER_KEY_FILE)
    # The master key given directly (environment); wins over the file.
    master_key_hex: str | None = None
    # Deliver webhooks from a background thread of the server process.
    webhook_worker: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "database_url": normalise_database_url(env.get(DATABASE_ENV) or DEFAULT_DATABASE_URL),
            "master_key_file": Path(env.get(MASTER_KEY_FILE_ENV) or DEFAULT_MASTER_KEY_FILE),
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

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for worker processes)."""
        env = {DATABASE_ENV: self.database_url, MASTER_KEY_FILE_ENV: str(self.master_key_file)}
        if self.master_key_hex:
            env[MASTER_KEY_ENV] = self.master_key_hex
        return env
