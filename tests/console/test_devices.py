"""Device search, the device page, and issuing every kind of token through the console."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from paygkit.device.firmware import OutcomeKind
from paygkit.server.models import TokenRecord
from paygkit.token import TokenType
from tests.console.conftest import BOTH_DATABASES, ConsoleClient, hidden_fields, text_of
from tests.server.conftest import KEY, Server, simulated_device, snapshot

Browser = Callable[..., ConsoleClient]
SERIAL = "TEST220000001"
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"


def shown_tokens(page: str) -> list[str]:
    """The large tokens of a result page, as shown: groups of three."""
    return [
        " ".join(re.findall(r'<span class="group">(\d+)</span>', block))
        for block in re.findall(r'<p class="token"[^>]*>(.*?)</p>', page)
    ]


def token_count(server: Server) -> int:
    with server.db.read() as session:
        return session.scalar(select(func.count()).select_from(TokenRecord)) or 0


def test_search_by_serial_prefix_and_customer_reference(browser: Browser, server: Server) -> None:
    server.add_device(SERIAL, account="ACC-7731")
    server.add_device("TEST220000002", key=KEY2, account="ACC-7732")
    server.add_device("OTHER1", key=KEY2)
    viewer = browser("viewer")
    # Every device when nothing is asked.
    listing = viewer.get("/console/devices")
    assert listing.status_code == 200
    assert "3 device(s)" in text_of(listing.text)
    # One match: straight to its page; case does not matter.
    for query in (SERIAL, SERIAL.lower(), "ACC-7731", "other"):
        response = viewer.get("/console/devices", params={"q": query})
        assert response.status_code == 303, query
        assert response.headers["location"].startswith("/console/devices/")
    assert viewer.get("/console/devices", params={"q": "acc-7731"}).headers["location"] == (
        f"/console/devices/{SERIAL}"
    )
    # Several: a list.
    several = viewer.get("/console/devices", params={"q": "TEST22"})
    assert several.status_code == 200
    assert "2 device(s) whose serial or customer reference starts with" in text_of(several.text)
    assert f'href="/console/devices/{SERIAL}"' in several.text
    by_account = viewer.get("/console/devices", params={"q": "ACC-77"})
    assert "TEST220000002" in by_account.text
    # None: says so, with a hint; the query is shown escaped.
    none = viewer.get("/console/devices", params={"q": "<b>NOPE%_"})
    assert none.status_code == 200
    assert "No device's serial or customer reference starts with" in text_of(none.text)
    assert "<b>NOPE" not in none.text
    assert "&lt;b&gt;NOPE%_" in none.text


@BOTH_DATABASES
def test_device_page_shows_status_and_history(browser: Browser, server: Server) -> None:
    server.add_device(account="ACC-1", hardware_model="SuperLight")
    viewer = browser("viewer")
    page = viewer.get(f"/console/devices/{SERIAL}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Customer ACC-1" in text
    assert "No time issued yet" in text
    assert "Last count issued 1" in text
    assert "Last count reported 1 (factory)" in text
    assert "No token issued yet" in text
    server.post(f"/devices/{SERIAL}/tokens", json={"type": "add_days", "days": 7})
    server.clock.advance(days=2, hours=3)  # the session idles out: sign in again
    text = text_of(browser("viewer").get(f"/console/devices/{SERIAL}").text)
    assert "State Active" in text
    assert "Active until 2030-01-08 12:00 UTC" in text
    assert "Days left 4 days 21 h left" in text
    assert "PAYG on" in text
    assert "Last count issued 2" in text
    assert "397 287 017 Add time 7 2 2030-01-01 12:00 UTC admin" in text
    server.clock.advance(days=10)
    text = text_of(browser("viewer").get(f"/console/devices/{SERIAL}").text)
    assert "State Locked" in text
    assert "expired 5 days 3 h ago" in text
    # The key never appears, in any form.
    assert KEY not in page.text
    assert KEY.upper() not in page.text


def test_unknown_device_is_a_clear_404(browser: Browser) -> None:
    response = browser("viewer").get("/console/devices/NOPE1")
    assert response.status_code == 404
    assert "no device with serial 'NOPE1'" in text_of(response.text)


@BOTH_DATABASES
def test_issue_a_token_with_a_confirmation_and_enter_it_on_a_device(
    browser: Browser, server: Server
) -> None:
    server.add_device()
    operator = browser("operator")
    operator.get(f"/console/devices/{SERIAL}")
    confirm = operator.post(f"/console/devices/{SERIAL}/confirm", {"type": "add_days", "days": "7"})
    assert confirm.status_code == 200
    assert "Add 7 day(s) to the device's time" in text_of(confirm.text)
    assert token_count(server) == 0  # nothing before the confirmation
    fields = hidden_fields(confirm.text, f"/console/devices/{SERIAL}/tokens")
    assert fields["idempotency_key"].startswith("console-")
    issued = operator.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
    assert issued.status_code == 200
    assert shown_tokens(issued.text) == ["397 287 017"]
    assert 'data-copy="397 287 017"' in issued.text
    assert "active until 2030-01-08 12:00 UTC" in text_of(issued.text)
    outcome = simulated_device().enter_token("397287017")
    assert outcome.kind is OutcomeKind.APPLIED
    assert outcome.units == 7
    # The confirmation sent twice (double click, reload) shows the same token again.
    again = operator.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
    assert shown_tokens(again.text) == ["397 287 017"]
    assert "already done" in text_of(again.text)
    assert token_count(server) == 1
    # In the history, issued by the operator from the console.
    history = server.get(f"/devices/{SERIAL}/tokens").json()["tokens"]  # type: ignore[attr-defined]
    assert [(t["token"], t["source"]) for t in history] == [("397 287 017", "console")]
    assert history[0]["issued_by"].startswith("operator")
    assert "397 287 017" in operator.get(f"/console/devices/{SERIAL}").text


def test_every_kind_in_order_is_accepted_by_a_simulated_device(
    browser: Browser, server: Server
) -> None:
    server.add_device()
    operator = browser("operator")
    forms = [
        ({"type": "add_days", "days": "7"}, "Add 7 day(s)"),
        ({"type": "set_days", "days": "30"}, "Set the device's time to 30 day(s) from now"),
        ({"type": "active_until", "until": "2030-03-01"}, "until 2030-03-02 00:00 UTC"),
        ({"type": "add_days", "days": "1,5"}, "Add 1.5 day(s)"),
        ({"type": "disable_payg"}, "Disable PAYG"),
        ({"type": "set_days", "days": "0", "lock": "1"}, "Lock the device now (Set Time 0)"),
        ({"type": "counter_sync"}, "Counter sync"),
    ]
    technician = browser("technician")  # Counter Sync and the lock: a technician's tasks
    made: list[str] = []
    for form, summary in forms:
        user = technician if form["type"] == "counter_sync" or "lock" in form else operator
        user.get(f"/console/devices/{SERIAL}")
        confirm = user.post(f"/console/devices/{SERIAL}/confirm", form)
        assert confirm.status_code == 200, text_of(confirm.text)
        assert summary in text_of(confirm.text)
        fields = hidden_fields(confirm.text, f"/console/devices/{SERIAL}/tokens")
        issued = user.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
        assert issued.status_code == 200, text_of(issued.text)
        made += shown_tokens(issued.text)
    assert len(made) == len(forms)
    device = simulated_device()
    for token in made:
        outcome = device.enter_token(token.replace(" ", ""))
        assert outcome.kind is OutcomeKind.APPLIED, (token, outcome)
    issued_count = server.get(f"/devices/{SERIAL}").json()["last_count_issued"]  # type: ignore[attr-defined]
    assert device.status().count == issued_count
    assert outcome.token_type is TokenType.COUNTER_SYNC


def test_more_than_995_days_shows_several_tokens_in_order(browser: Browser, server: Server) -> None:
    server.add_device()
    issued = browser("admin").issue(SERIAL, type="add_days", days="2000")
    assert issued.status_code == 200
    assert len(shown_tokens(issued.text)) == 3
    text = text_of(issued.text)
    assert "3 tokens for" in text
    assert "in this order" in text
    assert "Token 1" in text
    assert "Token 3" in text


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"type": "add_days", "days": "abc"}, "the number of days must be a number, not 'abc'"),
        ({"type": "add_days", "days": ""}, "enter the number of days"),
        ({"type": "set_days", "days": "-3"}, "between 0 and 100000"),
        ({"type": "add_days", "days": "NaN"}, "between 0 and 100000"),
        ({"type": "active_until", "until": ""}, "choose the date"),
        ({"type": "active_until", "until": "31/01/2030"}, "is not a date written YYYY-MM-DD"),
        ({"type": "make_money"}, "choose what to issue"),
        ({"type": "add_days", "days": "99999"}, "at most 20 are issued at once"),
    ],
)
def test_bad_input_is_explained_and_changes_nothing(
    browser: Browser, server: Server, form: dict[str, str], message: str
) -> None:
    server.add_device()
    operator = browser("operator")
    before = snapshot(server.db)
    operator.get(f"/console/devices/{SERIAL}")
    response = operator.post(f"/console/devices/{SERIAL}/confirm", form)
    if response.status_code == 200:  # refused only when the tokens are made
        fields = hidden_fields(response.text, f"/console/devices/{SERIAL}/tokens")
        response = operator.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
    assert response.status_code == 422
    text = text_of(response.text)
    assert message in text
    assert 'role="alert"' in response.text
    # The device page is shown again, with its forms, for another try.
    if "confirm" in str(response.url):
        assert "Issue a token" in text
    after = snapshot(server.db)
    after.pop("console_sessions"), before.pop("console_sessions")
    assert after == before


def test_count_reports_from_the_device_page(browser: Browser, server: Server) -> None:
    server.add_device()
    server.post(f"/devices/{SERIAL}/tokens", json={"type": "add_days", "days": 7})
    technician = browser("technician")
    page = technician.get(f"/console/devices/{SERIAL}")
    assert 'name="server_behind"' in page.text
    before = snapshot(server.db)
    refused = technician.post(
        f"/console/devices/{SERIAL}/counts",
        {"count": "5", "source": "display", "note": "seen at the kiosk"},
    )
    assert refused.status_code == 409
    assert "the device cannot show count 5" in text_of(refused.text)
    after = snapshot(server.db)
    after.pop("console_sessions"), before.pop("console_sessions")
    assert after == before
    # Confirmed as a server behind the device (restored from a backup): recorded.
    response = technician.post(
        f"/console/devices/{SERIAL}/counts",
        {"count": "5", "source": "display", "note": "seen at the kiosk", "server_behind": "1"},
    )
    assert response.status_code == 200
    text = text_of(response.text)
    assert "Count 5 recorded." in text
    assert "the device shows count 5, above the last count issued here (2)" in text
    assert "Last count reported 5" in text
    assert "seen at the kiosk" in text
    bad = technician.post(f"/console/devices/{SERIAL}/counts", {"count": "five"})
    assert bad.status_code == 422
    assert "the count must be a whole number" in text_of(bad.text)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"type": "add_days", "days": "0.1"},
            "0.1 days = 0.4 units at 4 units a day, rounded to 0 units = no time: the token "
            "would add no time",
        ),
        ({"type": "add_days", "days": "0"}, "the token would add no time"),
        ({"type": "set_days", "days": "0"}, "which locks the device at once"),
        ({"type": "active_until", "until": "2020-01-01"}, "is not in the future"),
    ],
)
def test_a_token_worth_nothing_or_locking_is_refused_before_the_confirmation(
    browser: Browser, server: Server, form: dict[str, str], message: str
) -> None:
    server.add_device(time_divider=4)
    operator = browser("operator")
    operator.get(f"/console/devices/{SERIAL}")
    before = snapshot(server.db)
    refused = operator.post(f"/console/devices/{SERIAL}/confirm", form)
    assert refused.status_code == 422
    assert message in text_of(refused.text)
    assert 'action="/console/devices/TEST220000001/tokens"' not in refused.text
    # Sent straight to the issuing route (a forged or stale form): refused all the same.
    forged = operator.post(f"/console/devices/{SERIAL}/tokens", form)
    assert forged.status_code == 422
    assert snapshot(server.db) == before


def test_the_confirmation_and_the_result_show_units_and_rounding(
    browser: Browser, server: Server
) -> None:
    server.add_device(time_divider=4)
    operator = browser("operator")
    operator.get(f"/console/devices/{SERIAL}")
    confirm = operator.post(
        f"/console/devices/{SERIAL}/confirm", {"type": "add_days", "days": "0.3"}
    )
    assert confirm.status_code == 200
    expected = "0.3 days = 1.2 units at 4 units a day, rounded to 1 unit = 6 h"
    assert expected in text_of(confirm.text)
    fields = hidden_fields(confirm.text, f"/console/devices/{SERIAL}/tokens")
    issued = operator.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
    assert issued.status_code == 200
    assert expected in text_of(issued.text)


def test_an_operator_may_not_lock_but_a_technician_may(browser: Browser, server: Server) -> None:
    server.add_device()
    lock = {"type": "set_days", "days": "0", "lock": "1"}
    operator = browser("operator")
    assert 'data-form="lock"' not in operator.get(f"/console/devices/{SERIAL}").text
    refused = operator.post(f"/console/devices/{SERIAL}/confirm", lock)
    assert refused.status_code == 403
    assert "may not lock a device" in text_of(refused.text)
    technician = browser("technician")
    technician.get(f"/console/devices/{SERIAL}")
    confirm = technician.post(f"/console/devices/{SERIAL}/confirm", lock)
    assert confirm.status_code == 200
    assert "Lock the device now" in text_of(confirm.text)
    fields = hidden_fields(confirm.text, f"/console/devices/{SERIAL}/tokens")
    assert fields["lock"] == "1"
    issued = technician.post(f"/console/devices/{SERIAL}/tokens", fields, csrf=False)
    assert issued.status_code == 200
    history = server.get(f"/devices/{SERIAL}/tokens").json()["tokens"]  # type: ignore[attr-defined]
    assert [(t["type"], t["units"]) for t in history] == [("set_time", 0)]
