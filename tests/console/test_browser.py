"""The console in a real browser: Debian's headless Chromium, driven by Playwright.

A real server process (uvicorn on 127.0.0.1, a port it picks itself, started
by `paygkit.server.processes`) on a fresh SQLite database, and Chromium from
/usr/bin/chromium with a fresh profile (see live.py).  Without Chromium or
Playwright these tests are skipped, or fail when PAYGKIT_REQUIRE_BROWSER=1 (as
`make test` sets it).

Few scenarios, as each costs some page loads: sign in, find a device, issue a
token, see it in the history and enter it on a simulated device (on a phone's
screen too); a viewer cannot issue; an admin imports a device list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from paygkit.device.firmware import OutcomeKind
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import Device, TokenRecord
from paygkit.server.processes import start_server_processes, stop_server_processes
from paygkit.server.services import access, devices
from paygkit.server.services.common import utc_now
from tests.console.live import chromium, require_chromium
from tests.server.conftest import KEY, STARTING_CODE, make_keys, simulated_device

SERIAL = "TEST220000001"
ACCOUNT = "ACC-1001"
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    url_base: str
    db: Database
    keys: dict[str, str]

    def url(self, path: str) -> str:
        return self.url_base + path

    def tokens(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(func.count()).select_from(TokenRecord)) or 0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A token server process (uvicorn, 127.0.0.1, a port of its choosing) on a fresh SQLite."""
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'paygkit.db'}"
    db = Database(url)
    db.migrate()
    keyring = Keyring.generate()
    keys = make_keys(db, utc_now())
    with db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, utc_now())
        devices.create_device(
            session,
            actor,
            keyring,
            devices.DeviceInput(
                SERIAL, KEY, STARTING_CODE, account=ACCOUNT, hardware_model="SuperLight"
            ),
            utc_now(),
        )
    processes, (port,) = start_server_processes(url, keyring, 1)
    try:
        yield Site(f"http://127.0.0.1:{port}", db, keys)
    finally:
        stop_server_processes(processes)
        db.dispose()


@pytest.fixture(scope="module")
def context(site: Site) -> Iterator[Any]:
    """One Chromium for the module; each test starts with no cookies."""
    with chromium(permissions=["clipboard-read", "clipboard-write"]) as browser_context:
        browser_context.set_default_timeout(15_000)
        yield browser_context


def unexpected(message: Any) -> bool:
    """A console error, but for the 403 of a refused request, which the tests make on purpose."""
    return bool(message.type == "error" and "status of 403" not in message.text)


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    context.clear_cookies()
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if unexpected(m) else None)
    tab.on("pageerror", lambda e: problems.append(str(e)))
    yield tab
    tab.close()
    # No script error, no refused CSS or JS (the CSP would report it here).
    assert problems == []


def sign_in(page: Any, site: Site, role: str) -> None:
    page.goto(site.url("/console/"))
    assert page.title().startswith("Sign in")
    page.get_by_label("API key").fill(site.keys[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console/devices$"))
    assert page.locator(".who-name").inner_text() == role


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_operator_finds_a_device_issues_a_token_and_the_device_accepts_it(
    page: Any, site: Site
) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, site, "operator")
    # Find the device by its customer reference: the only match opens its page.
    page.get_by_label("Serial number or customer reference").fill(ACCOUNT.lower())
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(site.url(f"/console/devices/{SERIAL}"))
    assert page.get_by_role("heading", level=1).inner_text() == f"Device {SERIAL}"
    assert page.locator("#device-state").inner_text() == "No time issued yet"
    assert fits_the_screen(page)
    # Add 7 days: the form, then the confirmation.
    page.get_by_label("Days to add").fill("7")
    page.get_by_role("button", name="Add days…").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Confirm the token"
    assert "Add 7 day(s)" in page.locator(".confirm-what").inner_text()
    assert site.tokens() == 0
    page.get_by_role("button", name="Issue the token").click()
    token = page.locator(".token").first
    assert token.inner_text() == "397 287 017"
    assert [g.inner_text() for g in token.locator(".group").all()] == ["397", "287", "017"]
    size = float(token.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert size >= 32, size  # large, on a phone too
    assert fits_the_screen(page)
    # The copy button puts the token on the clipboard, as it is read out.
    from playwright.sync_api import expect

    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copy-status")).to_have_text("Copied to the clipboard")
    assert page.evaluate("navigator.clipboard.readText()") == "397 287 017"
    # The device accepts what the page showed.
    outcome = simulated_device().enter_token(token.inner_text().replace(" ", ""))
    assert outcome.kind is OutcomeKind.APPLIED
    assert outcome.units == 7
    # Back on the device page: the token in the history, the status moved on.
    page.get_by_role("link", name="Back to the device").click()
    row = page.locator("#history tbody tr").first
    assert row.locator("td").first.inner_text() == "397 287 017"
    assert "operator" in row.inner_text()
    assert page.locator("#device-state").inner_text() == "Active"
    assert page.locator("#count-issued").inner_text() == "2"
    assert page.locator("#days-left").inner_text().startswith("6 days 23 h")
    assert site.tokens() == 1
    # Sign out: back to the sign-in page, and the device page asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/console/sign-in\?signed_out=1$"))
    page.goto(site.url(f"/console/devices/{SERIAL}"))
    assert page.title().startswith("Sign in")


def test_a_viewer_sees_no_form_and_the_server_refuses_a_forged_one(page: Any, site: Site) -> None:
    sign_in(page, site, "viewer")
    page.goto(site.url(f"/console/devices/{SERIAL}"))
    assert page.get_by_role("heading", name="Token history").is_visible()
    assert page.get_by_role("heading", name="Issue a token").count() == 0
    assert page.locator("form[data-form]").count() == 0
    assert page.get_by_role("link", name="API keys").count() == 0
    assert page.get_by_role("link", name="Audit log").count() == 0
    before = site.tokens()
    # A form the page does not offer, sent from the page itself with its CSRF token.
    answer = page.evaluate(
        """async (serial) => {
            const form = new FormData();
            form.append("csrf", document.querySelector("input[name=csrf]").value);
            form.append("type", "add_days");
            form.append("days", "30");
            form.append("idempotency_key", "forged-by-a-viewer");
            const url = `/console/devices/${serial}/tokens`;
            const r = await fetch(url, {method: "POST", body: form});
            return {status: r.status, text: await r.text()};
        }""",
        SERIAL,
    )
    assert answer["status"] == 403
    assert "the viewer role may not issue time tokens" in answer["text"]
    assert site.tokens() == before


def test_an_admin_imports_a_device_list(page: Any, site: Site, tmp_path: Path) -> None:
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text(
        "Serial Number,Starting Code,Key,Count,Time Divider,Restricted Digit Mode,"
        "Hardware Model,Version,Test Code\n"
        f"SLT240000002,432435255,{KEY2},1,4,0,SuperLight,X40,999333777\n"
        f"{SERIAL},{STARTING_CODE},{KEY},1,1,0,SuperLight,,\n",
        encoding="utf-8",
    )
    sign_in(page, site, "admin")
    page.get_by_role("link", name="Import").click()
    page.get_by_label("Device list from the factory (CSV)").set_input_files(str(csv_file))
    page.get_by_role("button", name="Check the file").click()
    rows = page.locator("#rows tbody tr")
    assert rows.count() == 2
    assert "new" in rows.nth(0).inner_text()
    assert "unchanged" in rows.nth(1).inner_text()
    with site.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 1
    page.get_by_role("button", name="Import 1 device(s)").click()
    assert "Imported 1 device(s)" in page.locator(".alert-ok").inner_text()
    page.get_by_role("link", name="Devices").click()
    page.get_by_label("Serial number or customer reference").fill("SLT24")
    page.keyboard.press("Enter")
    page.wait_for_url(site.url("/console/devices/SLT240000002"))
    assert "time divider 4" in page.locator(".sub").inner_text()


def test_the_token_history_reads_on_a_phone_without_sideways_scrolling(
    page: Any, site: Site
) -> None:
    import httpx

    for days in (1, 2):
        answer = httpx.post(
            site.url(f"/devices/{SERIAL}/tokens"),
            json={"type": "add_days", "days": days},
            headers={"Authorization": f"Bearer {site.keys['operator']}"},
        )
        assert answer.status_code == 201, answer.text
    page.set_viewport_size({"width": 375, "height": 812})
    sign_in(page, site, "viewer")
    page.goto(site.url(f"/console/devices/{SERIAL}"))
    table = page.locator("#history")
    assert table.locator("tbody tr").count() >= 2
    assert fits_the_screen(page)
    # Nor does the table scroll inside its box: each row stacks its cells, each labelled.
    wrap = page.locator("#history").locator("xpath=..")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    head = page.locator("#history thead").bounding_box()
    assert head is not None
    assert head["height"] <= 1  # kept for screen readers, out of sight
    issued = table.locator("tbody tr").first.locator("td[data-label=Issued]")
    label = issued.evaluate("e => getComputedStyle(e, '::before').content")
    assert label == '"Issued"'
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", issued.inner_text())
    box = issued.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 375
    # On a wide screen it stays a table with its header row.
    page.set_viewport_size({"width": 1280, "height": 800})
    wide = page.locator("#history thead").bounding_box()
    assert wide is not None
    assert wide["height"] > 10
    assert issued.evaluate("e => getComputedStyle(e).display") == "table-cell"
