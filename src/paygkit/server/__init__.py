"""The paygkit token server: devices, tokens, payments, roles and audit.

Layers, from the inside out:

- `models` (SQLAlchemy 2 tables) and `migrations` (Alembic, shipped in the package);
- `crypto`: device keys at rest, AES-256-GCM under a master key kept outside the database;
- `services`: plain functions taking a SQLAlchemy `Session` (no HTTP), one transaction each;
  their errors are kinds (classes), answered by each caller in its own way;
- `context`: what the HTTP layers share (database, keyring, clock), found on `app.state`;
- `api` (one router per resource, and the one table of HTTP statuses) and `console`
  (server-rendered pages, a router too): neither imports the other, nor the app;
- `guard`: limits, throttling and authentication before any handler;
- `app`: `create_app` composes the routers, the console and the guard;
  `webhook_delivery` is the delivery worker it starts.

The server imports `paygkit.token`, `paygkit.device` and `paygkit.factory`, never the CLI.
"""

from paygkit.server.config import Settings

__all__ = ["Settings"]
