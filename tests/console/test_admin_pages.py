"""Device import, the payments orphan queue, the audit log and API keys in the console."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from sqlalchemy import func, select

from paygkit.device.firmware import OutcomeKind
from paygkit.server.models import ApiKey, Device
from tests.console.conftest import ConsoleClient, hidden_fields, text_of
from tests.server.conftest import KEY, Server, simulated_device, snapshot

Browser = Callable[..., ConsoleClient]
SERIAL = "TEST220000001"
HEADER = (
    "Serial Number,Starting Code,Key,Count,Time Divider,Restricted Digit Mode,"
    "Hardware Model,Version,Test Code\n"
)
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"
ROW1 = f"SLT220000001,516959010,{KEY},1,4,1,SuperLight,X20,\n"
ROW2 = f"SLT240000002,432435255,{KEY2},1,4,0,SuperLight,X40,999333777\n"


def audit_rows(console: ConsoleClient, **filters: str) -> str:
    """The text of the audit table for these filters ('' when nothing matches)."""
    page = console.get("/console/audit", params=filters).text
    if '<table id="audit">' not in page:
        return ""
    return text_of(page[page.index('<table id="audit">') : page.index("</table>")])


def device_count(server: Server) -> int:
    with server.db.read() as session:
        return session.scalar(select(func.count()).select_from(Device)) or 0


def upload(console: ConsoleClient, content: bytes, name: str = "batch.csv"):  # type: ignore[no-untyped-def]
    console.get("/console/import")
    return console.client.post(
        "/console/import",
        data={"csrf": console.csrf},
        files={"file": (name, content, "text/csv")},
    )


# --- import ------------------------------------------------------------------------------


def test_import_dry_run_row_by_row_then_confirm(browser: Browser, server: Server) -> None:
    admin = browser("admin")
    page = admin.get("/console/import")
    assert page.status_code == 200
    assert 'type="file"' in page.text
    dry = upload(admin, (HEADER + ROW1 + ROW2).encode())
    assert dry.status_code == 200
    text = text_of(dry.text)
    assert "The file is good: 2 new device(s)" in text
    assert "1 SLT220000001 new" in text
    assert "2 SLT240000002 new" in text
    assert device_count(server) == 0  # a dry run only
    # The page holds the file sealed for the confirmation, never a key in clear.
    for key in (KEY, KEY2):
        assert key not in dry.text
        assert key.upper() not in dry.text
    fields = hidden_fields(dry.text, "/console/import/confirm")
    assert set(fields) == {"csrf", "sealed", "filename"}
    done = admin.post("/console/import/confirm", fields, csrf=False)
    assert done.status_code == 200
    assert "Imported 2 device(s)" in text_of(done.text)
    assert device_count(server) == 2
    # The same file again: nothing to import, no confirmation offered.
    again = upload(admin, (HEADER + ROW1 + ROW2).encode())
    assert "already here, unchanged: there is nothing to import" in text_of(again.text)
    assert "/console/import/confirm" not in again.text
    # Confirming the first dry run a second time imports nothing more.
    twice = admin.post("/console/import/confirm", fields, csrf=False)
    assert twice.status_code == 200
    assert "Imported 0 device(s)" in text_of(twice.text)
    assert device_count(server) == 2


def test_import_problems_are_shown_by_row_and_nothing_can_be_confirmed(
    browser: Browser, server: Server
) -> None:
    admin = browser("admin")
    bad = HEADER + ROW1 + "SLT220000003,5.17E+08,zz,1,4,0,SuperLight,X20,\n" + ROW1
    response = upload(admin, bad.encode())
    assert response.status_code == 200
    text = text_of(response.text)
    assert "This file cannot be imported" in text
    assert "3 Starting Code the starting code '5.17E+08' is in scientific notation" in text
    assert "3 Key the key holds characters other than hex digits" in text
    assert "4 Serial Number serial SLT220000001 is also on row 2" in text
    assert "/console/import/confirm" not in response.text
    assert KEY not in response.text
    assert device_count(server) == 0


def test_import_refuses_empty_binary_and_tampered_files(browser: Browser, server: Server) -> None:
    admin = browser("admin")
    empty = upload(admin, b"")
    assert empty.status_code == 422
    assert "the file is empty" in text_of(empty.text)
    binary = upload(admin, b"\xff\xfe\x00bad")
    assert binary.status_code == 422
    assert "not UTF-8" in text_of(binary.text)
    dry = upload(admin, (HEADER + ROW1).encode())
    fields = hidden_fields(dry.text, "/console/import/confirm")
    blob = bytearray(base64.urlsafe_b64decode(fields["sealed"]))
    blob[-1] ^= 1
    tampered = {**fields, "sealed": base64.urlsafe_b64encode(bytes(blob)).decode()}
    refused = admin.post("/console/import/confirm", tampered, csrf=False)
    assert refused.status_code == 422
    assert "does not belong to your session or was altered" in text_of(refused.text)
    # Another session (even of the same key) cannot confirm it.
    other = browser("admin")
    stolen = other.post("/console/import/confirm", {**fields, "csrf": other.csrf}, csrf=False)
    assert stolen.status_code == 422
    # An hour later the dry run is stale.
    server.clock.advance(minutes=25)
    admin.get("/console/import")
    server.clock.advance(minutes=25)
    admin.get("/console/import")
    server.clock.advance(minutes=15)
    stale = admin.post("/console/import/confirm", fields, csrf=False)
    assert stale.status_code == 422
    assert "over an hour old" in text_of(stale.text)
    assert device_count(server) == 0


def test_only_admins_import(browser: Browser, server: Server) -> None:
    operator = browser("operator")
    before = snapshot(server.db)
    response = upload(operator, (HEADER + ROW1).encode())
    assert response.status_code == 403
    assert "the operator role may not import device lists" in text_of(response.text)
    refused = operator.post("/console/import/confirm", {"sealed": "AAAA", "filename": "x"})
    assert refused.status_code == 403
    after = snapshot(server.db)
    after.pop("console_sessions"), before.pop("console_sessions")
    assert after == before


# --- payments ----------------------------------------------------------------------------


def test_orphan_payment_is_applied_to_a_device(browser: Browser, server: Server) -> None:
    server.add_device(hardware_model="SuperLight")
    server.client.put(
        "/tariffs/SuperLight",
        json={"price_per_day": "50", "currency": "KES"},
        headers=server.headers(),
    )
    body = {
        "provider": "mpesa",
        "transaction_id": "QK7ABC",
        "amount": "350",
        "currency": "KES",
        "account": "UNKNOWN-9",
    }
    paid = server.client.post("/payments", json=body, headers=server.headers("operator"))
    assert paid.status_code == 202
    payment_id = paid.json()["payment"]["id"]
    operator = browser("operator")
    queue = operator.get("/console/payments")
    text = text_of(queue.text)
    assert "Waiting for a device (1)" in text
    assert "350 KES · mpesa QK7ABC" in text
    assert "no device has account UNKNOWN-9" in text
    # A wrong serial is explained.
    wrong = operator.post(f"/console/payments/{payment_id}/confirm", {"serial": "NOPE1"})
    assert wrong.status_code == 404
    assert "no device with serial 'NOPE1'" in text_of(wrong.text)
    operator.get("/console/payments")
    confirm = operator.post(f"/console/payments/{payment_id}/confirm", {"serial": SERIAL})
    assert confirm.status_code == 200
    assert "Apply 350 KES (mpesa QK7ABC) to device TEST220000001" in text_of(confirm.text)
    assert "50 KES a day" in text_of(confirm.text)
    worth = "350 KES at 50 KES a day = 7 days = 7 units at 1 unit a day = 7 days"
    assert worth in text_of(confirm.text)
    fields = hidden_fields(confirm.text, f"/console/payments/{payment_id}/apply")
    applied = operator.post(f"/console/payments/{payment_id}/apply", fields, csrf=False)
    assert applied.status_code == 200
    text = text_of(applied.text)
    assert "applied, 7 day(s)" in text
    assert worth in text
    (token,) = re.findall(r'data-copy="([\d ]+)"', applied.text)
    assert simulated_device().enter_token(token.replace(" ", "")).kind is OutcomeKind.APPLIED
    queue = text_of(operator.get("/console/payments").text)
    assert "Waiting for a device (0)" in queue
    assert token in queue  # in the applied list
    # Applying twice is refused with a reason.
    again = operator.post(f"/console/payments/{payment_id}/apply", fields, csrf=False)
    assert again.status_code == 409
    assert "already applied" in text_of(again.text)


# --- audit log ---------------------------------------------------------------------------


def test_audit_log_with_filters(browser: Browser, server: Server) -> None:
    server.add_device()
    server.add_device("TEST220000002", key=KEY2)
    server.clock.advance(days=1)
    server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 7})
    admin = browser("admin")
    page = admin.get("/console/audit")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "device.create" in text
    assert "token.issue" in text
    assert "console.sign_in" in text
    assert '<option value="token.issue">' in page.text
    only = audit_rows(admin, action="token.issue")
    assert "token.issue" in only
    assert "device.create" not in only
    assert "console." in audit_rows(admin, action="console.")  # a prefix
    target = audit_rows(admin, target="TEST220000002")
    assert "device:TEST220000002" in target
    assert f"device:{SERIAL}" not in target
    who = audit_rows(admin, who="operator")
    assert "token.issue" in who
    assert "device.create" not in who
    day = audit_rows(admin, since="2030-01-02")
    assert "token.issue" in day
    assert "device.create" not in day
    before = audit_rows(admin, until="2030-01-01")
    assert "device.create" in before
    assert "token.issue" not in before
    bad = admin.get("/console/audit", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert "is not a date written YYYY-MM-DD" in text_of(bad.text)
    none = admin.get("/console/audit", params={"action": "nothing.like.this"})
    assert "No entry matches" in text_of(none.text)


def test_audit_log_pages_back(browser: Browser, server: Server) -> None:
    for n in range(55):
        server.add_device(f"T{n:04d}", key=KEY2)
    admin = browser("admin")
    first = admin.get("/console/audit", params={"action": "device.create"})
    assert first.text.count("<tr>") == 50 + 1  # the header row and 50 entries
    link = re.search(r'href="(/console/audit\?[^"]+)">Older entries', first.text)
    assert link is not None
    older = admin.get(link.group(1).replace("&amp;", "&"))
    assert older.text.count("<tr>") == 5 + 1
    assert "device:T0000" in older.text


# --- API keys ----------------------------------------------------------------------------


def test_api_keys_are_created_shown_once_and_revoked(browser: Browser, server: Server) -> None:
    admin = browser("admin")
    page = admin.get("/console/api-keys")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "in use (yours)" in text
    created = admin.post("/console/api-keys", {"role": "operator", "name": "till 3"})
    assert created.status_code == 200
    key = re.search(r'id="new-key">(pgk_[^<]+)<', created.text)
    assert key is not None
    assert "shown only this once" in text_of(created.text)
    listing = admin.get("/console/api-keys")
    assert key.group(1) not in listing.text
    assert "till 3" in listing.text
    # The new key signs in.
    server.keys["till"] = key.group(1)
    till = browser("till")
    assert till.get("/console/devices").status_code == 200
    with server.db.read() as session:
        new_id = session.scalar(select(ApiKey.id).where(ApiKey.name == "till 3"))
    confirm = admin.post(f"/console/api-keys/{new_id}/confirm")
    assert "Revoke key" in text_of(confirm.text)
    fields = hidden_fields(confirm.text, f"/console/api-keys/{new_id}/revoke")
    revoked = admin.post(f"/console/api-keys/{new_id}/revoke", fields, csrf=False)
    assert "is revoked" in text_of(revoked.text)
    assert till.get("/console/devices").status_code == 303
    # An admin cannot revoke its own key here, and bad input is explained.
    with server.db.read() as session:
        own = session.scalar(select(ApiKey.id).where(ApiKey.name == "admin"))
    assert f'action="/console/api-keys/{own}/confirm"' not in revoked.text
    admin.get("/console/api-keys")
    refused = admin.post(f"/console/api-keys/{own}/revoke")
    assert refused.status_code == 409
    assert "cannot revoke itself" in text_of(refused.text)
    for form, message in (
        ({"role": "root", "name": "x"}, "unknown role 'root'"),
        ({"role": "viewer", "name": " "}, "the key name must be 1 to 100 characters"),
    ):
        admin.get("/console/api-keys")
        bad = admin.post("/console/api-keys", form)
        assert bad.status_code == 422
        assert message in text_of(bad.text)
