"""The agents' offline app (/agent/) in Debian's headless Chromium, driven by Playwright.

A real server process on a fresh SQLite database with one token book of two
devices for the agent.  Two scenarios, as each costs a browser profile and the
PIN's key derivation: the whole round of a field agent (set up online, go
offline, reload, unlock, hand out two tokens the device accepts, come back
online, sync, see them on the console), and what the phone stores (nothing of
the book, the keys or the tokens in clear; a wrong PIN opens nothing).
Skipped without Chromium or Playwright, failed then with PAYGKIT_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from paygkit.device.firmware import OutcomeKind
from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import ApiKey, AuditEntry, BookHandout
from paygkit.server.processes import start_server_processes, stop_server_processes
from paygkit.server.services import access, books, devices
from paygkit.server.services.common import utc_now
from tests.console.live import chromium, require_chromium
from tests.server.conftest import KEY, STARTING_CODE, make_keys, simulated_device

SERIAL = "TEST220000001"
ACCOUNT = "ACC-1001"
# The second device, for the storage test.
SERIAL2 = "SLT240000002"
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"
PIN = "48291637"
PHONE = {"width": 390, "height": 844}


@dataclass
class Site:
    url_base: str
    db: Database
    keys: dict[str, str]
    book_id: int

    def url(self, path: str) -> str:
        return self.url_base + path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('agent') / 'paygkit.db'}"
    db = Database(url)
    db.migrate()
    keyring = Keyring.generate()
    now = utc_now()
    keys = make_keys(db, now)
    with db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, now)
        for serial, key, account in ((SERIAL, KEY, ACCOUNT), (SERIAL2, KEY2, None)):
            devices.create_device(
                session,
                actor,
                keyring,
                devices.DeviceInput(serial, key, STARTING_CODE, account=account),
                now,
            )
        agent = session.scalar(select(ApiKey.id).where(ApiKey.name == "agent"))
        assert agent is not None
        book = books.create_book(
            session,
            actor,
            books.BookInput(
                agent_key_id=agent,
                serials=[SERIAL, SERIAL2],
                steps=4,
                menu=[Decimal(1), Decimal(7), Decimal(30)],
                value_cap_days=Decimal(300),
                expires_at=now + dt.timedelta(days=30),
                name="North",
            ),
            now,
        )
        book_id = book.id
    processes, (port,) = start_server_processes(url, keyring, 1)
    try:
        yield Site(f"http://127.0.0.1:{port}", db, keys, book_id)
    finally:
        stop_server_processes(processes)
        db.dispose()


@pytest.fixture
def context() -> Iterator[Any]:
    """A fresh Chromium profile per test: no service worker, no storage from another test."""
    with chromium() as browser_context:
        browser_context.set_default_timeout(20_000)
        yield browser_context


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    tab = context.new_page()
    tab.set_viewport_size(PHONE)
    problems: list[str] = []
    # A script error, or a file the CSP refused; not the failed loads of being offline.
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield tab
    tab.close()
    assert problems == []


def set_up(page: Any, site: Site) -> None:
    """The agent's first visit, online: key and PIN; the service worker takes the app."""
    page.goto(site.url("/agent/"))
    page.get_by_label("Agent key").fill(site.keys["agent"])
    page.get_by_label("New PIN", exact=False).fill(PIN)
    page.get_by_label("The PIN again").fill(PIN)
    page.get_by_role("button", name="Get my books").click()
    page.get_by_role("heading", name="Sell time").wait_for()
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")


def unlock(page: Any, pin: str = PIN) -> None:
    page.get_by_label("PIN", exact=True).fill(pin)
    page.get_by_role("button", name="Unlock").click()


def hand_out(page: Any, find: str, days: str, amount: str) -> str:
    """Sell one step: find the device, take the money, read the token shown."""
    page.get_by_label("Serial or customer reference").fill(find)
    page.locator("#devices button").first.click()
    page.get_by_text(f"{days} days" if days != "1" else "1 day", exact=True).click()
    page.get_by_label("Amount received").fill(amount)
    page.get_by_label("Currency").fill("KES")
    page.get_by_role("button", name="Hand out the token").click()
    token = page.locator("#token-digits")
    token.wait_for()
    groups = [g.inner_text() for g in token.locator(".group").all()]
    assert all(len(g) == 3 for g in groups[:-1]), groups
    size = float(token.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert size >= 32, size
    page.get_by_role("button", name="Done").click()
    return "".join(groups)


def test_an_agent_sells_offline_and_syncs_when_back_online(
    page: Any, context: Any, site: Site
) -> None:
    set_up(page, site)
    # Chromium would offer to install it (manifest, icon, service worker).
    cdp = context.new_cdp_session(page)
    assert cdp.send("Page.getInstallabilityErrors") == {"installabilityErrors": []}
    cdp.detach()
    # Offline: the reload comes from the service worker, and the server is out of reach.
    context.set_offline(True)
    page.reload()
    page.get_by_role("heading", name="Unlock").wait_for()
    assert page.locator("#net").inner_text() == "offline"
    reached = page.evaluate("fetch('/health').then(() => 'reached', () => 'failed')")
    assert reached == "failed"
    unlock(page)
    page.get_by_role("heading", name="Sell time").wait_for()

    first = hand_out(page, ACCOUNT.lower(), "7", "350")
    second = hand_out(page, SERIAL, "1", "50")
    assert first != second
    assert page.locator("#queue-count").inner_text() == "2"
    assert page.locator("#queue li").count() == 2

    device = simulated_device()
    for token, units in ((first, 7), (second, 1)):
        outcome = device.enter_token(token)
        assert outcome.kind is OutcomeKind.APPLIED, outcome
        assert outcome.units == units

    # Back online, but the first answer is lost on the way back: the server recorded
    # the hand-outs, the phone keeps them and sends them again, which records nothing twice.
    from playwright.sync_api import expect

    lost: list[int] = []

    def lose_the_first_answer(route: Any) -> None:
        if lost:
            route.continue_()
            return
        route.fetch()
        lost.append(1)
        route.abort()

    page.route("**/books/*/sync", lose_the_first_answer)
    context.set_offline(False)
    # Coming online starts a sync; "Sync now" while one runs does nothing.
    for _ in range(50):
        if page.locator("#queue-count").inner_text() == "0":
            break
        page.get_by_role("button", name="Sync now").click()
        page.wait_for_timeout(200)
    assert lost == [1]
    expect(page.locator("#sync-status")).to_contain_text("Synced at")
    with site.db.read() as session:
        synced = list(session.scalars(select(BookHandout).order_by(BookHandout.count)))
        answers = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == "book.sync")
        ).all()
    assert [(h.count, h.status, h.days) for h in synced] == [
        (2, "recorded", "7"),
        (4, "recorded", "1"),
    ]
    # The answer lost, then the same two again: replayed, which records (and audits)
    # nothing new; the queue emptied on that second answer.
    assert [json.loads(a)["recorded"] for a in answers] == [2]

    # The device's token history on the console shows both, from the book.
    console = context.new_page()
    console.goto(site.url(f"/console/devices/{SERIAL}"))
    console.get_by_label("API key").fill(site.keys["operator"])
    console.get_by_role("button", name="Sign in").click()
    console.wait_for_url(re.compile(rf".*/console/devices/{SERIAL}$"))
    rows = console.locator("#history tbody tr")
    assert rows.count() == 2
    shown = {rows.nth(i).locator("td").first.inner_text().replace(" ", "") for i in range(2)}
    assert shown == {first, second}
    assert "book" in rows.first.inner_text()
    console.close()


def test_the_phone_keeps_nothing_in_clear_and_a_wrong_pin_opens_nothing(
    page: Any, context: Any, site: Site
) -> None:
    set_up(page, site)
    context.set_offline(True)
    handed = hand_out(page, SERIAL2, "30", "900")
    assert page.locator("#queue-count").inner_text() == "1"
    stored = page.evaluate(
        """async () => {
            const local = {};
            for (let i = 0; i < localStorage.length; i++) {
                const name = localStorage.key(i);
                local[name] = localStorage.getItem(name);
            }
            const session = Object.keys(sessionStorage);
            const databases = (await indexedDB.databases()).map(d => d.name);
            const cached = {};
            for (const name of await caches.keys()) {
                const cache = await caches.open(name);
                for (const request of await cache.keys()) {
                    cached[request.url] = await (await cache.match(request)).text();
                }
            }
            return {local, session, databases, cached, cookies: document.cookie};
        }"""
    )
    book = httpx.get(
        site.url(f"/books/{site.book_id}/tokens"),
        headers={"Authorization": f"Bearer {site.keys['agent']}"},
    )
    assert book.status_code == 200
    assert book.headers["cache-control"] == "no-store"
    tokens = {
        token["digits"]
        for device in book.json()["devices"]
        for step in device["steps"]
        for token in step["tokens"]
    }
    assert handed in tokens
    assert len(tokens) >= 10
    text = json.dumps(stored)
    secrets = {KEY, KEY.upper(), KEY2, KEY2.upper(), site.keys["agent"], SERIAL, SERIAL2, ACCOUNT}
    assert [s for s in secrets if s in text] == []
    assert [t for t in tokens if t in text] == []
    # One envelope: the PIN's salt and work factor, and the ciphertext.
    assert list(stored["local"]) == ["paygkit-agent-vault"]
    vault = json.loads(stored["local"]["paygkit-agent-vault"])
    assert vault["kdf"] == "PBKDF2-SHA-256"
    assert vault["iterations"] >= 600_000
    assert len(vault["salt"]) == 24  # 16 random bytes
    assert stored["session"] == []
    assert stored["cookies"] == ""
    assert stored["databases"] == []
    # The service worker keeps the app's own files, never the API's answers.
    assert stored["cached"]
    assert all(re.match(rf"{site.url_base}/agent/", url) for url in stored["cached"])

    page.reload()
    unlock(page, "000000")
    page.get_by_text("Wrong PIN.").wait_for()
    assert page.get_by_role("heading", name="Unlock").is_visible()
    assert page.locator("#queue-count").inner_text() == "0"  # nothing shown of the book
    unlock(page)
    page.get_by_role("heading", name="Sell time").wait_for()
    assert page.locator("#queue-count").inner_text() == "1"
    assert SERIAL2 in page.locator("#queue").inner_text()
