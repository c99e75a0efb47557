"""What a role cannot do is not shown, and the server refuses it anyway."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.console.conftest import ConsoleClient, text_of
from tests.server.conftest import Server, snapshot

pytestmark = pytest.mark.first_pass_only(
    reason="what a role may see and do is decided before any token is made"
)

Browser = Callable[..., ConsoleClient]
SERIAL = "TEST220000001"
ROLES = ("admin", "operator", "technician", "viewer")

# What each role sees on a device page (the form of each kind, and the count report).
FORMS = {
    "admin": {"add_days", "set_days", "active_until", "disable_payg", "lock", "count"},
    "operator": {"add_days", "set_days", "active_until", "disable_payg", "count"},
    "technician": {"counter_sync", "reset", "lock", "count"},
    "viewer": set(),
}
NAV = {
    "admin": {"Devices", "Payments", "Import", "Audit log", "API keys"},
    "operator": {"Devices", "Payments"},
    "technician": {"Devices", "Payments"},
    "viewer": {"Devices", "Payments"},
}


def forms_on(page: str) -> set[str]:
    kinds = set().union(*FORMS.values()) - {"reset", "count"}
    shown = {kind for kind in kinds if f'data-form="{kind}"' in page}
    if 'name="reset"' in page:
        shown.add("reset")
    if f'action="/console/devices/{SERIAL}/counts"' in page:
        shown.add("count")
    return shown


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_only_what_it_may_do(browser: Browser, server: Server, role: str) -> None:
    server.add_device()
    server.post("/payments", "operator", json=orphan_payment())
    console = browser(role)
    page = console.get(f"/console/devices/{SERIAL}")
    assert page.status_code == 200
    assert forms_on(page.text) == FORMS[role]
    nav = page.text[page.text.index("<nav") : page.text.index("</nav>")]
    assert {name for name in NAV["admin"] if f">{name}</a>" in nav} == NAV[role]
    assert f'class="role role-{role}"' in page.text
    payments = console.get("/console/payments")
    assert payments.status_code == 200
    apply_form = 'action="/console/payments/1/confirm"' in payments.text
    assert apply_form == (role in ("admin", "operator"))


def orphan_payment() -> dict[str, str]:
    return {
        "provider": "mpesa",
        "transaction_id": "T1",
        "amount": "100",
        "currency": "KES",
        "account": "NOBODY",
    }


# (method, path, form, roles allowed): what a forged form would ask.
ACTIONS = [
    ("post", f"/console/devices/{SERIAL}/confirm", {"type": "add_days", "days": "1"}, "ao"),
    ("post", f"/console/devices/{SERIAL}/tokens", {"type": "set_days", "days": "1"}, "ao"),
    ("post", f"/console/devices/{SERIAL}/tokens", {"type": "disable_payg"}, "ao"),
    ("post", f"/console/devices/{SERIAL}/tokens", {"type": "counter_sync"}, "t"),
    ("post", f"/console/devices/{SERIAL}/tokens", {"type": "counter_sync", "reset": "1"}, "t"),
    ("post", f"/console/devices/{SERIAL}/counts", {"count": "1"}, "aot"),
    ("post", "/console/payments/1/confirm", {"serial": SERIAL}, "ao"),
    ("post", "/console/payments/1/apply", {"serial": SERIAL}, "ao"),
    ("get", "/console/import", {}, "a"),
    ("get", "/console/audit", {}, "a"),
    ("get", "/console/api-keys", {}, "a"),
    ("post", "/console/api-keys", {"role": "admin", "name": "mine now"}, "a"),
    ("post", "/console/api-keys/1/confirm", {}, "a"),
    ("post", "/console/api-keys/1/revoke", {}, "a"),
]


@pytest.mark.parametrize("role", ROLES)
def test_the_server_refuses_what_a_role_may_not_do(
    browser: Browser, server: Server, role: str
) -> None:
    server.add_device()
    server.post("/payments", "operator", json=orphan_payment())
    console = browser(role)
    for method, path, form, allowed in ACTIONS:
        if role[0] in allowed:
            continue
        before = snapshot(server.db)
        if method == "get":
            response = console.get(path)
        else:
            response = console.post(path, {**form, "idempotency_key": "forged-1"})
        assert response.status_code == 403, (role, path, form)
        text = text_of(response.text)
        assert f"the {role} role may not" in text, text
        assert "use an API key with the role" in text
        after = snapshot(server.db)
        after.pop("console_sessions"), before.pop("console_sessions")
        assert after == before, (role, path)


def test_a_technician_issues_the_reset_token(browser: Browser, server: Server) -> None:
    server.add_device()
    issued = browser("technician").issue(SERIAL, type="counter_sync", reset="1")
    assert issued.status_code == 200
    text = text_of(issued.text)
    assert "reset token, count 0" in text
    assert "Never give this token to a customer" in text
