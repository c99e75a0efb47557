"""Reading the audit log (admins only), with filters; writing it is `common.audit`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from paygkit.server.models import AuditEntry
from paygkit.server.services import bounds
from paygkit.server.services.common import Actor, iso, require


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its % and _ taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_audit(
    session: Session,
    actor: Actor,
    *,
    after_id: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
    newest_first: bool = False,
    action: str | None = None,
    target: str | None = None,
    who: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[AuditEntry]:
    """Entries of the actor's tenant, oldest first (or newest first), filtered.

    `action` matches exactly, or as a prefix when it ends with "." (``token.``);
    `target` and `who` (the acting key's label) match anywhere in the text;
    `since` is inclusive, `until` exclusive.
    """
    require(actor, "audit.read")
    query = select(AuditEntry).where(AuditEntry.tenant_id == actor.tenant_id)
    if after_id is not None:
        # 0 is a fair start ("from the beginning"); the bound is the column's.
        query = query.where(AuditEntry.id > bounds.check_id(after_id + 1, "after_id") - 1)
    if before_id is not None:
        query = query.where(AuditEntry.id < bounds.check_id(before_id, "before_id"))
    for value, what in ((action, "action"), (target, "target"), (who, "who")):
        if value:
            bounds.check_text(value, what, max_length=bounds.SEARCH_LENGTH)
    for moment, what in ((since, "since"), (until, "until")):
        if moment is not None:
            bounds.check_time(moment, what)
    if action:
        if action.endswith("."):
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target.like(_like(target), escape="\\"))
    if who:
        query = query.where(AuditEntry.actor.like(_like(who), escape="\\"))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    order = AuditEntry.id.desc() if newest_first else AuditEntry.id
    return list(session.scalars(query.order_by(order).limit(limit)))


def audit_actions(session: Session, actor: Actor) -> list[str]:
    """The actions found in the tenant's log (for a filter's choices)."""
    require(actor, "audit.read")
    return list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.tenant_id == actor.tenant_id)
            .distinct()
            .order_by(AuditEntry.action)
        )
    )


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "details": json.loads(entry.details),
    }
