"""The master key and the database: start-up checks, and rotation safe next to live servers.

The `master_key_versions` table holds a check value per version that sealed
rows (`Keyring.check_value`).  Every command and server process calls
`verify_keyring` at start, which refuses a keyring that

- gives another key for a recorded version (a wrong `PAYGKIT_MASTER_KEY`, a key
  file of another installation), or
- lacks a version some row is sealed with (a key file from before a rotation,
  a lost file replaced by a new one).

Databases from before the table get their check values on their first open
with a keyring that opens their rows.

Rotation (`paygkit server rotate-master-key`): record the new version, then
add it to the key file, then re-seal rows in small transactions.  Servers
follow the key file (see `paygkit.server.crypto`), so while the rotation runs
they keep opening rows of both versions and soon seal with the new one.  The
old versions stay in the file; `drop_old_versions` removes them only when no
row uses them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring, MasterKeyError, constant_time_equal
from paygkit.server.db import Database
from paygkit.server.models import Device, MasterKeyVersion, Tenant
from paygkit.server.services.common import Actor, audit
from paygkit.server.services.webhooks import secret_label

RESEAL_BATCH = 200
RECOVERY_DOC = "docs/server.md, 'Master key: what can go wrong and how to recover'"


def versions_in_use(session: Session) -> set[int]:
    """The master key versions that sealed at least one stored secret."""
    used = set(session.scalars(select(Device.key_version).distinct()))
    used |= {
        v
        for v in session.scalars(select(Tenant.webhook_secret_version).distinct())
        if v is not None
    }
    return used


def recorded_versions(session: Session) -> dict[int, MasterKeyVersion]:
    return {row.version: row for row in session.scalars(select(MasterKeyVersion))}


def versions_needed(session: Session) -> set[int]:
    """The versions this database needs a key for: recorded ones and those rows use.

    Empty only for a database where creating a new master key loses nothing.
    """
    return set(recorded_versions(session)) | versions_in_use(session)


def _open_one_row(session: Session, keyring: Keyring, version: int) -> None:
    """MasterKeyError unless `keyring` opens a row sealed with `version`."""
    device = session.scalars(select(Device).where(Device.key_version == version).limit(1)).first()
    if device is not None:
        keyring.open(device.serial, device.key_sealed, version)
        return
    tenant = session.scalars(
        select(Tenant).where(Tenant.webhook_secret_version == version).limit(1)
    ).first()
    if tenant is not None and tenant.webhook_secret_sealed is not None:
        keyring.open(secret_label(tenant.id), tenant.webhook_secret_sealed, version)


def _record(session: Session, keyring: Keyring, version: int, now: dt.datetime) -> None:
    session.add(
        MasterKeyVersion(version=version, check_value=keyring.check_value(version), created_at=now)
    )


def check_keyring(session: Session, keyring: Keyring, now: dt.datetime) -> list[int]:
    """Refuse a keyring that is not this database's; the versions it recorded now."""
    keyring.refresh()
    loaded = set(keyring.keys)
    recorded = recorded_versions(session)
    for version in sorted(set(recorded) & loaded):
        if not constant_time_equal(keyring.check_value(version), recorded[version].check_value):
            raise MasterKeyError(
                f"master key version {version} from {keyring.origin} is not the key this "
                "database was sealed with (its check value differs): it is another "
                "installation's key or a mistyped one; give this database's key file "
                f"(--master-key-file, --data-dir) or PAYGKIT_MASTER_KEY; see {RECOVERY_DOC}"
            )
    in_use = versions_in_use(session)
    missing = sorted(in_use - loaded)
    if missing:
        raise MasterKeyError(
            f"this database holds keys sealed with master key version(s) "
            f"{', '.join(map(str, missing))}, which {keyring.origin} does not hold (it has "
            f"{', '.join(map(str, sorted(loaded)))}); give the key file that goes with this "
            "database (--master-key-file, --data-dir, PAYGKIT_MASTER_KEY), or add the missing "
            f"version's line from a backup of the key file; see {RECOVERY_DOC}"
        )
    added = []
    # Rows of a database from before check values: proven by opening one per version.
    for version in sorted(in_use - set(recorded)):
        _open_one_row(session, keyring, version)
        _record(session, keyring, version, now)
        added.append(version)
    current = keyring.current_version
    if current not in recorded and current not in added:
        _record(session, keyring, current, now)
        added.append(current)
    return added


def verify_keyring(db: Database, keyring: Keyring, now: dt.datetime) -> list[int]:
    """`check_keyring` in its own transaction (what every process runs at start)."""
    for attempt in range(2):
        try:
            with db.write() as session:
                return check_keyring(session, keyring, now)
        except IntegrityError:
            # Another process recorded the same version at the same moment: check again.
            if attempt:
                raise
    raise AssertionError("unreachable")


# --- rotation ----------------------------------------------------------------------------


def add_version(session: Session, keyring: Keyring, now: dt.datetime) -> Keyring:
    """`keyring` with a new version, recorded in the database (before any file holds it).

    The new number is above every recorded one too, so a version recorded by an
    interrupted rotation whose key never reached the file is not reused.
    """
    recorded = recorded_versions(session)
    version = max([keyring.current_version, *recorded]) + 1
    both = keyring.with_new_version(version)
    _record(session, both, version, now)
    return both


def reseal_batch(session: Session, keyring: Keyring, limit: int = RESEAL_BATCH) -> int:
    """Re-seal up to `limit` secrets not yet under `keyring`'s current version."""
    version = keyring.current_version
    done = 0
    for device in session.scalars(
        select(Device)
        .where(Device.key_version != version)
        .order_by(Device.id)
        .limit(limit)
        .with_for_update()
    ):
        key = keyring.open(device.serial, device.key_sealed, device.key_version)
        device.key_sealed, device.key_version = keyring.seal(device.serial, key)
        done += 1
    for tenant in session.scalars(
        select(Tenant)
        .where(Tenant.webhook_secret_version != version)
        .order_by(Tenant.id)
        .limit(limit)
        .with_for_update()
    ):
        if tenant.webhook_secret_sealed is None or tenant.webhook_secret_version is None:
            continue
        label = secret_label(tenant.id)
        secret = keyring.open(label, tenant.webhook_secret_sealed, tenant.webhook_secret_version)
        tenant.webhook_secret_sealed, tenant.webhook_secret_version = keyring.seal(label, secret)
        done += 1
    return done


def reseal_all(db: Database, keyring: Keyring) -> int:
    """Re-seal every secret under `keyring`'s current version, a batch per transaction.

    Small transactions keep live servers' token requests waiting milliseconds,
    not the length of the whole rotation.  Rows that servers seal under an old
    version meanwhile are picked up by the next batches.
    """
    total = 0
    while True:
        with db.write() as session:
            done = reseal_batch(session, keyring)
        if not done:
            return total
        total += done


def audit_rotation(
    session: Session,
    actor: Actor,
    version: int,
    resealed: int,
    dropped: list[int],
    now: dt.datetime,
) -> None:
    audit(
        session,
        actor,
        "master_key.rotate",
        None,
        now,
        version=version,
        resealed=resealed,
        dropped_versions=dropped,
    )


def drop_old_versions(session: Session, keyring: Keyring, now: dt.datetime) -> list[int]:
    """Mark every version but the current one retired; MasterKeyError while a row uses one.

    The caller rewrites the key file before this transaction commits: on
    PostgreSQL the tables are locked against writers until then, on SQLite the
    write transaction already excludes them.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE devices, tenants IN SHARE MODE"))
    current = keyring.current_version
    still = sorted(versions_in_use(session) - {current})
    if still:
        raise MasterKeyError(
            f"rows are still sealed with master key version(s) {', '.join(map(str, still))}; "
            "nothing was dropped: run `paygkit server rotate-master-key --drop-old` again"
        )
    dropped = []
    for row in recorded_versions(session).values():
        if row.version != current and row.retired_at is None:
            row.retired_at = now
            dropped.append(row.version)
    return sorted(set(dropped) | (set(keyring.keys) - {current}))
