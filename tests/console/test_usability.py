"""What issue 13 found on the console: the customer reference set on the device page,
pages of devices beyond the first 50, dates written YYYY-MM-DD, warnings in an agent's
words and audit details as readable lines."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select

from paygkit.server.models import AuditEntry, Device
from tests.console.conftest import BOTH_DATABASES, ConsoleClient, text_of
from tests.server.conftest import Server

Browser = Callable[..., ConsoleClient]
SERIAL = "TEST220000001"
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"


def account_of(server: Server, serial: str = SERIAL) -> str | None:
    with server.db.read() as session:
        return session.scalar(select(Device.account).where(Device.serial == serial))


def audit_details(server: Server, action: str) -> list[dict[str, object]]:
    import json

    with server.db.read() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        )
        return [{"actor": r.actor, **json.loads(r.details)} for r in rows]


def device_links(page: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="/console/devices/([^"]+)">', page)


# --- the customer reference ---------------------------------------------------------------


@BOTH_DATABASES
def test_an_admin_sets_and_removes_the_customer_reference(browser: Browser, server: Server) -> None:
    server.add_device()
    admin = browser("admin")
    page = admin.get(f"/console/devices/{SERIAL}")
    assert f'action="/console/devices/{SERIAL}/account"' in page.text
    answer = admin.post(f"/console/devices/{SERIAL}/account", {"account": "  ACC-4242 "})
    assert answer.status_code == 200
    text = text_of(answer.text)
    assert "Customer reference set to ACC-4242." in text
    assert "Customer ACC-4242" in text
    assert account_of(server) == "ACC-4242"
    # Found by it, and audited as the API's PATCH /devices/{serial} is.
    found = admin.get("/console/devices", params={"q": "acc-4242"})
    assert found.headers["location"] == f"/console/devices/{SERIAL}"
    (entry,) = audit_details(server, "device.update")
    assert entry["account"] == "ACC-4242"
    assert str(entry["actor"]).startswith("admin")
    # An empty field removes it.
    removed = admin.post(f"/console/devices/{SERIAL}/account", {"account": ""})
    assert "Customer reference removed" in text_of(removed.text)
    assert account_of(server) is None
    assert [e["account"] for e in audit_details(server, "device.update")] == ["ACC-4242", None]


def test_a_bad_customer_reference_is_refused_with_the_reason(
    browser: Browser, server: Server
) -> None:
    server.add_device(account="ACC-1")
    admin = browser("admin")
    admin.get(f"/console/devices/{SERIAL}")
    refused = admin.post(f"/console/devices/{SERIAL}/account", {"account": "A" * 500})
    assert refused.status_code == 422
    text = text_of(refused.text)
    assert "the account must be 0 to" in text
    assert "correct the value and send it again" in text
    assert account_of(server) == "ACC-1"
    assert audit_details(server, "device.update") == []


def test_only_an_admin_may_change_the_customer_reference(browser: Browser, server: Server) -> None:
    server.add_device(account="ACC-1")
    for role in ("operator", "technician", "viewer"):
        user = browser(role)
        page = user.get(f"/console/devices/{SERIAL}")
        assert "/account" not in page.text, role
        forged = user.post(f"/console/devices/{SERIAL}/account", {"account": "ACC-2"})
        assert forged.status_code == 403, role
        text = text_of(forged.text)
        assert f"the {role} role may not create or change devices" in text
        assert "use an API key with the role admin" in text
    assert account_of(server) == "ACC-1"


# --- pages of devices ---------------------------------------------------------------------


def test_devices_are_listed_page_by_page(browser: Browser, server: Server) -> None:
    for n in range(55):
        server.add_device(f"T{n:04d}", key=KEY2)
    viewer = browser("viewer")
    first = viewer.get("/console/devices")
    assert device_links(first.text) == [f"T{n:04d}" for n in range(50)]
    assert "55 device(s); devices 1 to 50 by serial." in text_of(first.text)
    assert 'rel="prev"' not in first.text
    link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert link is not None
    second = viewer.get(link.group(1).replace("&amp;", "&"))
    assert device_links(second.text) == [f"T{n:04d}" for n in range(50, 55)]
    assert "devices 51 to 55 by serial" in text_of(second.text)
    assert 'rel="next"' not in second.text
    assert 'href="/console/devices" rel="prev"' in second.text
    # Past the last page: said, with the way back.
    past = viewer.get("/console/devices", params={"page": "9"})
    assert past.status_code == 200
    assert "There is no page 9: there are 55 device(s), 50 a page." in text_of(past.text)
    assert 'href="/console/devices">Go to the first page' in past.text
    # Not a page number: refused with the reason.
    for bad in ("0", "x"):
        refused = viewer.get("/console/devices", params={"page": bad})
        assert refused.status_code == 422
        assert "the form is incomplete or not valid" in text_of(refused.text)


def test_search_results_page_by_page(browser: Browser, server: Server) -> None:
    for n in range(51):
        server.add_device(f"T{n:04d}", key=KEY2)
    server.add_device("OTHER1", key=KEY2)
    viewer = browser("viewer")
    first = viewer.get("/console/devices", params={"q": "t0"})
    assert len(device_links(first.text)) == 50
    showing = text_of(first.text[first.text.index('<p id="showing">') :])
    assert showing.startswith(
        "Devices 1 to 50 whose serial or customer reference starts with t0 ; more on the next page."
    )
    link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert link is not None
    assert link.group(1) == "/console/devices?q=t0&amp;page=2"
    # One device on the second page: shown there, not opened as the only match.
    second = viewer.get("/console/devices", params={"q": "t0", "page": "2"})
    assert second.status_code == 200
    assert device_links(second.text) == ["T0050"]
    assert 'href="/console/devices?q=t0" rel="prev"' in second.text


# --- dates ----------------------------------------------------------------------------


def test_dates_are_typed_and_shown_as_year_month_day(browser: Browser, server: Server) -> None:
    server.add_device()
    server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 7})
    admin = browser("admin")
    operator = browser("operator")
    device_page = operator.get(f"/console/devices/{SERIAL}").text
    audit_page = admin.get("/console/audit").text
    # No locale-shaped date picker: text fields that ask for YYYY-MM-DD.
    for page, names in ((device_page, ["until"]), (audit_page, ["since", "until"])):
        assert 'type="date"' not in page
        for name in names:
            field = re.search(rf'<input id="{name}" name="{name}"[^>]*>', page)
            assert field is not None, name
            assert 'type="text"' in field.group(0)
            assert r'pattern="\d{4}-\d{2}-\d{2}"' in field.group(0)
            assert 'placeholder="YYYY-MM-DD"' in field.group(0)
    # Every date shown is written year-month-day.
    assert "Active until 2030-01-08 12:00 UTC" in text_of(device_page)
    assert "397 287 017 Add time 7 2 2030-01-01 12:00 UTC" in text_of(device_page)
    # An ISO date is taken; a locale's date is refused in plain words.
    operator.get(f"/console/devices/{SERIAL}")
    taken = operator.post(
        f"/console/devices/{SERIAL}/confirm", {"type": "active_until", "until": "2030-01-31"}
    )
    assert taken.status_code == 200
    assert "Keep the device active until 2030-02-01 00:00 UTC" in text_of(taken.text)
    refused = operator.post(
        f"/console/devices/{SERIAL}/confirm", {"type": "active_until", "until": "01/31/2030"}
    )
    assert refused.status_code == 422
    assert "the date '01/31/2030' is not a date written YYYY-MM-DD" in text_of(refused.text)
    audit = admin.get("/console/audit", params={"since": "31.12.2029"})
    assert audit.status_code == 422
    assert "is not a date written YYYY-MM-DD" in text_of(audit.text)


# --- warnings in plain words --------------------------------------------------------------


def test_count_warnings_name_no_api_path(browser: Browser, server: Server) -> None:
    # A device taking tokens at most 4 counts past the last one it showed.
    server.add_device(decode_window=4)
    for _ in range(2):
        server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 1})
    operator = browser("operator")
    issued = operator.issue(SERIAL, type="add_days", days="1")
    assert issued.status_code == 200
    warned = text_of(issued.text)
    assert "it accepts tokens up to count 5 only" in warned
    assert "report the count shown by the device, or issue a Counter Sync token" in warned
    page = text_of(operator.get(f"/console/devices/{SERIAL}").text)
    assert "the device is 5 counts behind" in page
    assert "issue a Counter Sync token" in page
    for text in (warned, page):
        assert "counter_sync" not in text
        assert "POST /" not in text
    # The services word their warnings once, for the API and the console alike.
    answer = server.post(
        f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 1}
    )
    body = answer.json()  # type: ignore[attr-defined]
    assert any("issue a Counter Sync token" in w for w in body["warnings"])


def test_a_warning_close_to_the_window_is_in_plain_words(browser: Browser, server: Server) -> None:
    # Each Add Time token moves the count 2: the 4th is 7 counts past the factory's 1.
    server.add_device(decode_window=9)
    for _ in range(3):
        server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 1})
    issued = text_of(browser("operator").issue(SERIAL, type="add_days", days="1").text)
    assert (
        "only 2 more counts before the device refuses tokens (it takes tokens at most 9 counts "
        "past the last count it showed)"
    ) in issued
    assert "decode window" not in issued


def test_a_count_above_the_issued_one_names_the_box_to_tick(
    browser: Browser, server: Server
) -> None:
    server.add_device()
    operator = browser("operator")
    operator.get(f"/console/devices/{SERIAL}")
    refused = operator.post(
        f"/console/devices/{SERIAL}/counts", {"count": "9", "source": "display"}
    )
    assert refused.status_code == 409
    text = text_of(refused.text)
    # The refusal names the confirmation in the words of the box on the device page
    # (shown to the roles that may tick it), not by the API's field.
    assert "report it again confirming that the server is behind" in text
    assert "server_behind" not in text.replace('name="server_behind"', "")


# --- audit details --------------------------------------------------------------------


def test_audit_details_are_lines_of_name_and_value(browser: Browser, server: Server) -> None:
    server.add_device()
    server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 7})
    admin = browser("admin")
    admin.get(f"/console/devices/{SERIAL}")
    admin.post(f"/console/devices/{SERIAL}/account", {"account": "ACC-9"})
    page = admin.get("/console/audit").text
    table = page[page.index('<table id="audit">') : page.index("</table>")]
    assert "<dt>account</dt><dd>ACC-9</dd>" in table
    assert "<dt>source</dt><dd>api</dd>" in table
    assert "<dt>counts</dt><dd>2</dd>" in table
    # A nested value reads as "name: value" pairs, never as JSON.
    assert re.search(r"<dt>request</dt><dd>[^<]*type: add_days[^<]*</dd>", table)
    assert "{" not in text_of(table)
    assert "&#34;" not in table
    assert "&quot;" not in table


def test_audit_details_of_a_withdrawn_count_read_as_before_and_after(
    browser: Browser, server: Server
) -> None:
    server.add_device()
    server.post(f"/devices/{SERIAL}/tokens", "operator", json={"type": "add_days", "days": 7})
    technician = browser("technician")
    technician.get(f"/console/devices/{SERIAL}")
    technician.post(f"/console/devices/{SERIAL}/counts", {"count": "2", "source": "display"})
    report_id = server.get(f"/devices/{SERIAL}/counts").json()["reports"][0]["id"]  # type: ignore[attr-defined]
    withdrawn = server.post(
        f"/devices/{SERIAL}/counts/{report_id}/withdraw", json={"reason": "misread"}
    )
    assert withdrawn.status_code == 200, withdrawn.text  # type: ignore[attr-defined]
    page = browser("admin").get("/console/audit", params={"action": "count.withdraw"}).text
    assert "<dt>count reported</dt><dd>2 → 1</dd>" in page
    assert "<dt>reason</dt><dd>misread</dd>" in page
