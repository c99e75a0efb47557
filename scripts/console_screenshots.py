"""Screenshots of the web console's main pages, for the README: docs/console-*.png.

    .venv/bin/python scripts/console_screenshots.py [--out docs]

Starts the token server on a fresh database in a temporary directory (the same
live server as the browser tests), fills it with made-up devices, tokens,
payments and keys, and photographs the pages in Debian's headless Chromium
(/usr/bin/chromium; never a browser downloaded by `playwright install`).
The server's clock is fixed, so the pictures show the same dates every run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.console.live import chromium, chromium_problem, live_server  # noqa: E402

from paygkit.server.models import Role  # noqa: E402
from paygkit.server.services import (  # noqa: E402
    access,
    counts,
    devices,
    payments,
    tokens,
)

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
KEYS = [
    "bc41ec9530f6dac86b1a29ab82edc5fb",
    "dac86b1a29ab82edc5fbbc41ec9530f6",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "11223344556677889900aabbccddeeff",
    "a1b2c3d4e5f60718293a4b5c6d7e8f90",
]


def days(kind: tokens.IssueKind, n: int) -> tokens.IssueSpec:
    return tokens.IssueSpec(kind, days=Decimal(n))


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def seed(db: Any, keyring: Any, clock: Clock) -> dict[str, str]:
    """Made-up devices, tokens, a count report, payments and keys; the API keys by role."""
    keys: dict[str, str] = {}
    start = clock.now
    clock.now = start - dt.timedelta(days=40)
    with db.write() as session:
        admin = access.local_actor(session, access.DEFAULT_TENANT, clock())
        for role, name in (
            (Role.ADMIN, "Grace (admin)"),
            (Role.OPERATOR, "Amina, call centre"),
            (Role.TECHNICIAN, "Joseph, field team"),
            (Role.VIEWER, "Finance dashboard"),
        ):
            keys[role.value] = access.create_api_key(session, admin, role, name, clock()).key
        access.create_api_key(session, admin, Role.OPERATOR, "Till 3, Kisumu shop", clock())
        for n, key in enumerate(KEYS, start=1):
            devices.create_device(
                session,
                admin,
                keyring,
                devices.DeviceInput(
                    f"SLT22000000{n}",
                    key,
                    starting_code=None,
                    time_divider=1,
                    hardware_model="SuperLight",
                    version="X20",
                    account=f"KE-{4410 + n}",
                ),
                clock(),
            )
        devices.set_model_tariff(session, admin, "SuperLight", "50", "KES", clock())
    with db.read() as session:
        operator = access.authenticate(session, keys["operator"])
        technician = access.authenticate(session, keys["technician"])

    def issue(serial: str, spec: tokens.IssueSpec) -> None:
        with db.write() as session:
            tokens.issue_tokens(session, operator, keyring, serial, spec, clock())

    def report(serial: str, count: int) -> None:
        with db.write() as session:
            counts.report_count(
                session,
                technician,
                serial,
                count,
                counts.CountSource.DISPLAY,
                clock(),
                note="visit to the shop",
            )

    def pay(txn: str, amount: str, account: str) -> None:
        data = payments.PaymentInput("mpesa", txn, amount, "KES", clock(), account=account)
        with db.write() as session:
            payments.record_payment(session, operator, keyring, data, clock())

    add = tokens.IssueKind.ADD_DAYS
    events: list[tuple[dt.timedelta, Any]] = [
        (dt.timedelta(days=38, hours=3), lambda: issue("SLT220000001", days(add, 30))),
        (
            dt.timedelta(days=20, hours=5),
            lambda: issue("SLT220000002", days(tokens.IssueKind.SET_DAYS, 30)),
        ),
        (dt.timedelta(days=9, hours=2), lambda: issue("SLT220000001", days(add, 7))),
        (dt.timedelta(days=5, hours=1), lambda: report("SLT220000001", 3)),
        (dt.timedelta(days=3, hours=4), lambda: issue("SLT220000003", days(add, 7))),
        (dt.timedelta(days=2, hours=6), lambda: issue("SLT220000001", days(add, 14))),
        (
            dt.timedelta(days=1, hours=7),
            lambda: issue("SLT220000004", tokens.IssueSpec(tokens.IssueKind.DISABLE_PAYG)),
        ),
        (dt.timedelta(hours=30), lambda: pay("QKL7Z2M1", "350", "KE-4411")),
        (dt.timedelta(hours=6), lambda: pay("QKM2B8W4", "500", "KE-9999")),
        (dt.timedelta(hours=2), lambda: pay("QKM3C1X9", "250", "KE-44I3")),
    ]
    for ago, event in sorted(events, key=lambda e: -e[0]):
        clock.now = start - ago
        event()
    clock.now = start
    return keys


def sign_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/console/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/devices")


def shoot(page: Any, out: Path, name: str, *, full: bool = True) -> None:
    path = out / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=full)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    problem = chromium_problem()
    if problem:
        print(f"cannot take screenshots: {problem}", file=sys.stderr)
        return 2
    clock = Clock(dt.datetime(2030, 3, 14, 9, 30, tzinfo=dt.UTC))
    with tempfile.TemporaryDirectory() as directory, live_server(Path(directory), clock) as server:
        keys = seed(server.db, server.keyring, clock)
        url = server.url
        csv_file = Path(directory) / "batch-2030-03.csv"
        csv_file.write_text(
            "Serial Number,Starting Code,Key,Count,Time Divider,Restricted Digit Mode,"
            "Hardware Model,Version,Test Code\n"
            f"SLT220000001,,{KEYS[0]},1,1,0,SuperLight,X20,\n"
            "SLT220000006,123456789,00112233445566778899aabbccddeeff,1,1,0,SuperLight,X20,\n"
            "SLT220000007,987654321,ffeeddccbbaa99887766554433221100,1,1,0,SuperLight,X20,\n"
            "SLT220000008,555666777,0123456789abcdef0123456789abcdef,1,1,0,SuperLight,X20,\n",
            encoding="utf-8",
        )
        with chromium(viewport=DESKTOP, device_scale_factor=1) as context:
            page = context.new_page()
            page.goto(url + "/console/sign-in")
            shoot(page, out, "sign-in", full=False)

            sign_in(page, url, keys["operator"])
            page.get_by_label("Serial number or customer reference").fill("SLT22")
            page.get_by_role("button", name="Search").click()
            shoot(page, out, "search")

            page.goto(url + "/console/devices/SLT220000001")
            shoot(page, out, "device")

            page.get_by_label("Days to add").fill("7")
            page.get_by_role("button", name="Add days…").click()
            shoot(page, out, "confirm", full=False)
            page.get_by_role("button", name="Issue the token").click()
            shoot(page, out, "token", full=False)

            page.goto(url + "/console/payments")
            shoot(page, out, "payments")

            context.clear_cookies()
            sign_in(page, url, keys["admin"])
            page.goto(url + "/console/import")
            page.get_by_label("Device list from the factory (CSV)").set_input_files(str(csv_file))
            page.get_by_role("button", name="Check the file").click()
            shoot(page, out, "import")

            page.goto(url + "/console/audit")
            shoot(page, out, "audit", full=False)

            page.goto(url + "/console/api-keys")
            shoot(page, out, "api-keys")
            page.close()

        with chromium(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        ) as context:
            page = context.new_page()
            sign_in(page, url, keys["operator"])
            page.goto(url + "/console/devices/SLT220000003")
            page.get_by_label("Days to add").fill("30")
            page.get_by_role("button", name="Add days…").click()
            page.get_by_role("button", name="Issue the token").click()
            shoot(page, out, "phone", full=False)
            page.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
