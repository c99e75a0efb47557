"""Devices: create, read, change, import from the factory CSV, key export; the key never shows."""

from __future__ import annotations

import csv
import io
import logging

import pytest

from paygkit.device.serial_number import SERIAL_MAX_LENGTH, SERIAL_RULE
from paygkit.server.services import access, devices
from paygkit.server.services.devices import DeviceInput
from paygkit.token import DeviceParams, parse_key
from tests.reference import EXAMPLE_DEVICE_LIST
from tests.server.conftest import KEY, START, STARTING_CODE, Server, snapshot

REFERENCE_CSV = EXAMPLE_DEVICE_LIST
HEADER = (
    "Serial Number,Starting Code,Key,Count,Time Divider,Restricted Digit Mode,"
    "Hardware Model,Version,Test Code\n"
)
KEY2 = "dac86b1a29ab82edc5fbbc41ec9530f6"
ROW1 = f"SLT220000001,516959010,{KEY},1,4,1,SuperLight,X20,\n"
ROW2 = f"SLT240000002,432435255,{KEY2},1,4,0,SuperLight,X40,999333777\n"


def upload(server: Server, text: str, *, dry_run: bool = False, role: str = "admin"):  # type: ignore[no-untyped-def]
    return server.client.post(
        "/devices/import",
        content=text.encode(),
        params={"dry_run": str(dry_run).lower()},
        headers={**server.headers(role), "Content-Type": "text/csv"},
    )


def test_create_get_list_and_update(server: Server) -> None:
    created = server.add_device(account="ACC-1", hardware_model="SuperLight")
    assert created["serial"] == "TEST220000001"
    assert created["last_count_issued"] == created["last_count_reported"] == 1
    assert "key" not in created
    assert "key_sealed" not in created
    got = server.get("/devices/TEST220000001", "viewer").json()  # type: ignore[attr-defined]
    assert got["starting_code"] == STARTING_CODE
    assert got["account"] == "ACC-1"
    server.add_device("TEST220000002", key=KEY2)
    listed = server.client.get("/devices", params={"limit": 1}, headers=server.headers()).json()
    assert [d["serial"] for d in listed["devices"]] == ["TEST220000001"]
    rest = server.client.get(
        "/devices", params={"after": listed["next_after"]}, headers=server.headers()
    ).json()
    assert [d["serial"] for d in rest["devices"]] == ["TEST220000002"]
    by_account = server.client.get(
        "/devices", params={"account": "ACC-1"}, headers=server.headers()
    ).json()
    assert len(by_account["devices"]) == 1
    patched = server.client.patch(
        "/devices/TEST220000001",
        json={"account": "ACC-9", "price_per_day": "0.5", "currency": "kes", "decode_window": 32},
        headers=server.headers(),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["tariff"] == {"price_per_day": "0.5", "currency": "KES"}
    assert patched.json()["decode_window"] == 32


def test_starting_code_is_derived_from_the_key_when_absent(server: Server) -> None:
    response = server.client.post(
        "/devices", json={"serial": "X1", "key": KEY}, headers=server.headers()
    )
    assert response.status_code == 201
    from paygkit.token import derive_starting_code

    assert response.json()["starting_code"] == derive_starting_code(bytes.fromhex(KEY))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"serial": "A/B", "key": KEY}, "serial number"),
        ({"serial": "OK1", "key": KEY[:-1]}, "32 hex characters"),
        ({"serial": "OK1", "key": "zz" * 16}, "other characters"),
        ({"serial": "OK1", "key": KEY, "starting_code": 10**9}, "starting code"),
        ({"serial": "OK1", "key": KEY, "time_divider": 0}, "time divider"),
        ({"serial": "OK1", "key": KEY, "count": -1}, "count"),
        ({"serial": "OK1", "key": KEY, "test_code": "12a"}, "test code"),
        # The factory's rule: a keypad takes at most 20 digits (the server once took 30).
        ({"serial": "OK1", "key": KEY, "test_code": "1" * 21}, "at most 20"),
        ({"serial": "OK1", "key": KEY, "restricted_digits": True, "test_code": "125"}, "1-4"),
        ({"serial": "OK1"}, "key"),
    ],
)
def test_bad_devices_are_refused_without_echoing_the_key(
    server: Server, body: dict[str, object], expected: str
) -> None:
    before = snapshot(server.db)
    response = server.client.post("/devices", json=body, headers=server.headers())
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]["message"]
    assert KEY[:-1] not in response.text
    assert "zz" * 16 not in response.text
    assert snapshot(server.db) == before


def test_duplicate_device_is_refused(server: Server) -> None:
    server.add_device()
    before = snapshot(server.db)
    again = server.client.post(
        "/devices", json={"serial": "TEST220000001", "key": KEY2}, headers=server.headers()
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["error"]["message"]
    assert snapshot(server.db) == before


def test_import_dry_run_then_import_then_idempotent_reimport(server: Server) -> None:
    text = REFERENCE_CSV.read_text()
    before = snapshot(server.db)
    dry = upload(server, text, dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["ok"]
    assert report["dry_run"]
    assert report["new"] == 2
    assert report["imported"] == 0
    assert [d["status"] for d in report["devices"]] == ["new", "new"]
    assert snapshot(server.db) == before

    done = upload(server, text).json()
    assert done["ok"]
    assert done["imported"] == 2
    device = server.get("/devices/SLT220000001").json()  # type: ignore[attr-defined]
    assert (device["time_divider"], device["restricted_digits"]) == (4, True)
    assert device["hardware_model"] == "SuperLight"

    again = upload(server, text).json()
    assert again["ok"]
    assert again["imported"] == 0
    assert again["unchanged"] == 2
    assert [d["status"] for d in again["devices"]] == ["unchanged", "unchanged"]
    audit = server.get("/audit").json()["entries"]  # type: ignore[attr-defined]
    imports = [e for e in audit if e["action"] == "device.import"]
    assert len(imports) == 2
    assert imports[0]["details"]["new"] == 2


def test_import_refuses_duplicates_and_bad_rows_as_a_whole(server: Server) -> None:
    upload(server, HEADER + ROW1)
    changed = ROW1.replace(",X20,", ",X21,")
    bad = f"SLT2,51695901x,{KEY2},1,1,0,,,\n"
    before = snapshot(server.db)
    response = upload(server, HEADER + changed + ROW2 + bad)
    assert response.status_code == 422, response.text
    body = response.json()
    assert "nothing was imported" in body["error"]["message"]
    report = body["report"]
    statuses = {d["serial"]: d["status"] for d in report["devices"]}
    assert statuses == {"SLT220000001": "refused", "SLT240000002": "new"}
    refused = next(d for d in report["devices"] if d["status"] == "refused")
    assert "duplicate" in refused["message"]
    assert "Version" in refused["message"]
    assert report["problems"]
    assert report["problems"][0]["row"] == 4
    assert report["problems"][0]["column"] == "Starting Code"
    assert snapshot(server.db) == before
    assert KEY not in response.text
    assert KEY2 not in response.text

    dup_in_file = upload(server, HEADER + ROW2 + ROW2, dry_run=True).json()
    assert not dup_in_file["ok"]
    assert dup_in_file["problems"]


def test_import_of_an_empty_or_foreign_file(server: Server) -> None:
    for text in ("", "hello world", "a,b,c\n1,2,3\n"):
        response = upload(server, text)
        assert response.status_code == 422, (text, response.text)
        assert response.json()["report"]["problems"]


def test_key_export_is_admin_only_and_audited(server: Server) -> None:
    server.add_device()
    for role in ("operator", "technician", "viewer"):
        assert server.post("/devices/export-keys", role).status_code == 403  # type: ignore[attr-defined]
    response = server.post("/devices/export-keys")
    assert response.status_code == 200  # type: ignore[attr-defined]
    text = response.text  # type: ignore[attr-defined]
    assert text.startswith("Serial Number,Starting Code,Key,")
    assert f"TEST220000001,{STARTING_CODE},{KEY},1,1,0" in text
    assert response.headers["cache-control"] == "no-store"  # type: ignore[attr-defined]
    audit = server.get("/audit").json()["entries"]  # type: ignore[attr-defined]
    assert audit[-1]["action"] == "device.export_keys"
    assert audit[-1]["details"] == {"devices": 1}
    assert KEY not in str(audit)
    # The export imports into another server unchanged.
    again = upload(server, text).json()
    assert again["ok"]
    assert again["unchanged"] == 1


def test_the_key_never_appears_in_responses_or_logs(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    server.add_device(hardware_model="M1")
    server.client.put(
        "/tariffs/M1", json={"price_per_day": "1", "currency": "USD"}, headers=server.headers()
    )
    calls = [
        ("get", "/devices/TEST220000001", None),
        ("get", "/devices", None),
        ("post", "/devices/TEST220000001/tokens", {"type": "add_days", "days": 3}),
        ("post", "/devices/TEST220000001/tokens", {"type": "counter_sync"}),
        ("get", "/devices/TEST220000001/tokens", None),
        ("post", "/devices/TEST220000001/counts", {"count": 2}),
        ("get", "/devices/TEST220000001/counts", None),
        (
            "post",
            "/payments",
            {
                "provider": "p",
                "transaction_id": "1",
                "serial": "TEST220000001",
                "amount": "5",
                "currency": "USD",
            },
        ),
        ("get", "/payments", None),
        ("get", "/audit", None),
        ("post", "/devices", {"serial": "TEST220000001", "key": KEY}),
        ("post", "/devices", {"serial": "BAD/", "key": KEY}),
        ("post", "/devices", {"serial": "X2", "key": KEY + "0"}),
        ("post", "/devices", {"serial": "X2", "key": KEY, "bogus": KEY}),
    ]
    for method, path, body in calls:
        response = server.client.request(method, path, json=body, headers=server.headers())
        texts.append(response.text)
    texts.append(upload(server, HEADER + ROW1.replace("SLT", "TEST"), dry_run=True).text)
    texts.append(server.client.get("/openapi.json").text)
    everything = "\n".join(texts + [r.getMessage() for r in caplog.records])
    assert KEY not in everything
    assert KEY.upper() not in everything
    assert bytes.fromhex(KEY).hex() not in everything


def test_formulas_are_neutralised_in_the_key_export_and_import_back_unchanged(
    server: Server,
) -> None:
    formula, sum_ = "=cmd|' /C calc'!A0", "@SUM(1+1)"
    server.add_device(hardware_model=formula, version=sum_)
    text = server.post("/devices/export-keys").text  # type: ignore[attr-defined]
    row = next(csv.reader(io.StringIO(text.splitlines()[1])))
    # OWASP CSV injection: the spreadsheet shows the apostrophe-led cell as text.
    assert (row[6], row[7]) == ("'" + formula, "'" + sum_)
    again = upload(server, text).json()
    assert again["ok"], again
    assert again["unchanged"] == 1


# --- the serial rule: one grammar for new serials, every stored serial still reachable --------

LEGACY_SERIAL = "OLD-" + "7" * 36  # 40 characters: taken by the server's old rule, not by devices


def test_new_serials_follow_the_one_serial_grammar(server: Server) -> None:
    longest = "A" * SERIAL_MAX_LENGTH
    server.add_device(longest)
    for serial in ("A" * (SERIAL_MAX_LENGTH + 1), "#A1", "-A1", "A B"):
        refused = server.client.post(
            "/devices", json={"serial": serial, "key": KEY2}, headers=server.headers()
        )
        assert refused.status_code == 422, (serial, refused.text)
        assert refused.json()["error"]["fix"] == "use " + SERIAL_RULE
    report = upload(server, HEADER + ROW1.replace("SLT220000001", "S" * 33), dry_run=True).json()
    assert not report["ok"]
    assert report["problems"][0]["column"] == "Serial Number"


def test_a_device_stored_under_the_old_serial_rule_stays_usable(server: Server) -> None:
    """Serials of 33-64 characters, registered before the one grammar, are never locked out:
    lookups take any stored serial, only new serials are checked against the grammar."""
    legacy = DeviceInput(
        serial=LEGACY_SERIAL, key=KEY, starting_code=STARTING_CODE, hardware_model="SuperLight"
    )
    with server.db.write() as session:
        actor = access.local_actor(session, access.DEFAULT_TENANT, START)
        params = DeviceParams.create(parse_key(KEY), STARTING_CODE)
        session.add(devices.new_device_row(actor, server.keyring, legacy, params, START))
    path = f"/devices/{LEGACY_SERIAL}"
    assert server.get(path).status_code == 200  # type: ignore[attr-defined]
    issued = server.post(f"{path}/tokens", json={"type": "add_days", "days": 1})
    assert issued.status_code == 201, issued.text  # type: ignore[attr-defined]
    counted = server.post(f"{path}/counts", json={"count": 2, "source": "display"})
    assert counted.status_code == 201, counted.text  # type: ignore[attr-defined]
    tariff = {"price_per_day": "50", "currency": "KES"}
    server.client.put("/tariffs/SuperLight", json=tariff, headers=server.headers())
    payment = {"provider": "mpesa", "amount": "100", "currency": "KES"}
    paid = server.post(
        "/payments", json={**payment, "transaction_id": "T1", "serial": LEGACY_SERIAL}
    )
    assert paid.status_code == 201, paid.text  # type: ignore[attr-defined]
    assert paid.json()["payment"]["status"] == "applied"  # type: ignore[attr-defined]
    # A serial outside the grammar that names no device is refused with the rule, as before.
    unknown = server.post(
        "/payments", json={**payment, "transaction_id": "T2", "serial": "OLD-" + "8" * 36}
    )
    assert unknown.status_code == 422, unknown.text  # type: ignore[attr-defined]
    assert unknown.json()["error"]["fix"] == "use " + SERIAL_RULE  # type: ignore[attr-defined]
