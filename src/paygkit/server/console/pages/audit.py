"""The audit log, newest first, filtered by action, target, who and when."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from paygkit.server.console.errors import page_status
from paygkit.server.console.forms import BeforeId, day_start, form_time
from paygkit.server.console.routing import page_router
from paygkit.server.console.transactions import reading
from paygkit.server.console.views import render
from paygkit.server.services import audit
from paygkit.server.services.common import InvalidError, require

AUDIT_PAGE = 50
# Details stored as [before, after] (count.withdraw).
_BEFORE_AFTER = frozenset({"count_issued", "count_reported"})
# An import names up to 1000 serials: the page shows the first ones.
_LIST_SHOWN = 20

router = page_router()


@router.get("/audit")
def audit_page(
    request: Request,
    action: str = "",
    target: str = "",
    who: str = "",
    since: str = "",
    until: str = "",
    before_id: BeforeId = None,
) -> Response:
    with reading(request) as (session, signed, _now):
        require(signed.actor, "audit.read")
        error = None
        start = end = None
        try:
            start = day_start(since, "'from'") if since.strip() else None
            end = form_time(until, "'to'") if until.strip() else None
        except InvalidError as problem:
            error = problem
        entries = (
            audit.list_audit(
                session,
                signed.actor,
                before_id=before_id,
                limit=AUDIT_PAGE,
                newest_first=True,
                action=action.strip() or None,
                target=target.strip() or None,
                who=who.strip() or None,
                since=start,
                until=end,
            )
            if error is None
            else []
        )
        filters = {"action": action, "target": target, "who": who, "since": since}
        filters["until"] = until
        more = None
        if len(entries) == AUDIT_PAGE:
            more = {**{k: v for k, v in filters.items() if v}, "before_id": entries[-1].id}
        return render(
            request,
            "audit.html",
            signed=signed,
            status=page_status(error) if error else 200,
            title="Audit log",
            error=error,
            entries=[
                {**audit.entry_view(e), "detail_lines": detail_lines(e.details)} for e in entries
            ],
            actions=audit.audit_actions(session, signed.actor),
            filters=filters,
            more=more,
        )


def _detail_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if name in _BEFORE_AFTER and len(value) == 2:
            return f"{value[0]} → {value[1]}"
        shown = ", ".join(_detail_value("", v) for v in value[:_LIST_SHOWN])
        extra = len(value) - _LIST_SHOWN
        return shown + (f" … and {extra} more" if extra > 0 else "")
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')}: {_detail_value(k, v)}" for k, v in value.items())
    return str(value)


def detail_lines(text: str) -> list[tuple[str, str]]:
    """An audit entry's details as (name, value) lines for a definition list."""
    try:
        data = json.loads(text)
    except ValueError:
        return [("details", text)] if text else []
    if not isinstance(data, dict):
        return [("details", _detail_value("", data))]
    return [
        (name.replace("_", " "), _detail_value(name, value))
        for name, value in data.items()
        if value is not None and value != [] and value != {}
    ]
