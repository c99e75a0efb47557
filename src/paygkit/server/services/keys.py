"""Master key rotation: re-seal every device key and webhook secret under a new version."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.crypto import Keyring
from paygkit.server.models import Device, Tenant
from paygkit.server.services.common import Actor, audit
from paygkit.server.services.webhooks import secret_label


def reseal_all(session: Session, old: Keyring, new: Keyring, actor: Actor, now: dt.datetime) -> int:
    """Re-encrypt every stored secret under `new`'s current version; the number of devices."""
    devices = 0
    for device in session.scalars(select(Device).with_for_update()):
        key = old.open(device.serial, device.key_sealed, device.key_version)
        device.key_sealed, device.key_version = new.seal(device.serial, key)
        devices += 1
    for tenant in session.scalars(select(Tenant).with_for_update()):
        if tenant.webhook_secret_sealed is not None and tenant.webhook_secret_version is not None:
            label = secret_label(tenant.id)
            secret = old.open(label, tenant.webhook_secret_sealed, tenant.webhook_secret_version)
            tenant.webhook_secret_sealed, tenant.webhook_secret_version = new.seal(label, secret)
    audit(
        session,
        actor,
        "master_key.rotate",
        None,
        now,
        devices=devices,
        version=new.current_version,
    )
    return devices
