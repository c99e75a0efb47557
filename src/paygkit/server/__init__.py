"""The paygkit token server: devices, tokens, payments, roles and audit.

Layers, from the inside out:

- `models` (SQLAlchemy 2 tables) and `migrations` (Alembic, shipped in the package);
- `crypto`: device keys at rest, AES-256-GCM under a master key kept outside the database;
- `services`: plain functions taking a SQLAlchemy `Session` (no HTTP), one transaction each;
- `api`: the FastAPI application (`create_app`), and `webhooks` (the delivery worker).

The server imports `paygkit.token`, `paygkit.device` and `paygkit.factory`, never the CLI.
"""

from paygkit.server.config import Settings

__all__ = ["Settings"]
