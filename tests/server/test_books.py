"""Token books (issue 16): each invariant through the API, on SQLite and PostgreSQL.

An agent gets a book of tokens made ahead of time, hands steps out offline and
syncs them later; every count is handed out at most once across books and
online issuing, every working token is paid for and known once synced, and
syncs are idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from paygkit.device.firmware import OutcomeKind
from paygkit.server.models import BookHandout, Payment, TokenRecord, WebhookDelivery
from paygkit.server.services import access, books, tokens
from paygkit.server.services.common import ConflictError, ForbiddenError
from tests.server.conftest import KEY, STARTING_CODE, Server, simulated_device, snapshot

SERIAL = "TEST220000001"
OTHER = "TEST220000002"
UNTIL = "2030-01-20T12:00:00Z"


def agent_id(server: Server, name: str = "agent") -> int:
    keys = server.get("/api-keys").json()["api_keys"]  # type: ignore[attr-defined]
    return next(k["id"] for k in keys if k["name"] == name)


def new_agent(server: Server, name: str) -> tuple[int, dict[str, str]]:
    made = server.post("/api-keys", json={"role": "agent", "name": name}).json()  # type: ignore[attr-defined]
    return made["id"], {"Authorization": f"Bearer {made['key']}"}


def make_book(server: Server, role: str = "admin", **fields: Any) -> Any:
    body = {
        "agent_key_id": agent_id(server),
        "serials": [SERIAL],
        "steps": 4,
        "menu": [1, 3, 7, 30],
        "value_cap_days": 1000,
        "expires_at": UNTIL,
        "name": "round 1",
        **fields,
    }
    return server.post("/books", role, json=body)


def created_book(server: Server, **fields: Any) -> dict[str, Any]:
    response = make_book(server, **fields)
    assert response.status_code == 201, response.text
    book: dict[str, Any] = response.json()
    return book


def fetch(server: Server, book_id: int, role: str = "agent") -> Any:
    return server.get(f"/books/{book_id}/tokens", role)


def handout(
    number: int, count: int, days: float = 7, serial: str = SERIAL, **fields: Any
) -> dict[str, Any]:
    return {
        "id": f"h-{number}",
        "serial": serial,
        "count": count,
        "days": days,
        "amount": 7,
        "currency": "KES",
        "handed_out_at": "2030-01-01T09:00:00Z",
        **fields,
    }


def sync(server: Server, book_id: int, *items: dict[str, Any], role: str = "agent") -> Any:
    return server.post(f"/books/{book_id}/sync", role, json={"handouts": list(items)})


def token_of(payload: dict[str, Any], serial: str, count: int, days: str) -> str:
    device = next(d for d in payload["devices"] if d["serial"] == serial)
    step = next(s for s in device["steps"] if s["count"] == count)
    digits: str = next(t["digits"] for t in step["tokens"] if t["days"] == days)
    return digits


def rows(server: Server, model: Any) -> list[Any]:
    with server.db.read() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def issue(server: Server, serial: str = SERIAL, role: str = "admin") -> Any:
    return server.post(f"/devices/{serial}/tokens", role, json={"type": "add_days", "days": 2})


def test_a_book_reserves_counts_and_its_tokens_work_on_the_device(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    assert book["status"] == "open"
    assert book["value_days"] == "120"  # 1 device x 4 steps x 30 days
    steps = book["device_steps"][0]["steps"]
    assert [s["count"] for s in steps] == [2, 4, 6, 8]
    device = server.get(f"/devices/{SERIAL}").json()  # type: ignore[attr-defined]
    assert device["last_count_issued"] == 8

    answer = fetch(server, book["id"])
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    text = json.dumps(payload)
    # No key, no starting code, nothing of the master key: only digits.
    assert KEY not in text
    assert KEY.upper() not in text
    assert str(STARTING_CODE) not in text
    for master in server.keyring.keys.values():
        assert master.hex() not in text.lower()
    assert "key" not in {k for d in payload["devices"] for k in d}
    assert payload["book"]["expires_at"] == UNTIL
    assert payload["book"]["value_cap_days"] == "1000"
    steps = payload["devices"][0]["steps"]
    assert [len(s["tokens"]) for s in steps] == [4, 4, 4, 4]

    # Steps entered out of order all work; the other values at a used count do not.
    device_sim = simulated_device(count=1)
    for count, days in ((4, "3"), (2, "7"), (8, "30"), (6, "1")):
        outcome = device_sim.enter_token(token_of(payload, SERIAL, count, days))
        assert outcome.kind is OutcomeKind.APPLIED, (count, outcome)
    other_value = device_sim.enter_token(token_of(payload, SERIAL, 2, "30"))
    assert other_value.kind is OutcomeKind.ALREADY_USED


def test_only_the_books_agent_fetches_it_and_an_agent_reads_nothing_else(
    server: Server,
) -> None:
    server.add_device()
    book = created_book(server)
    for role in ("admin", "operator", "technician", "viewer"):
        refused = fetch(server, book["id"], role)
        assert refused.status_code == 403, role
    _, stranger = new_agent(server, "another agent")
    hidden = server.client.get(f"/books/{book['id']}/tokens", headers=stranger)
    assert hidden.status_code == 404
    assert server.client.get("/books", headers=stranger).json()["books"] == []
    assert server.client.get(f"/books/{book['id']}", headers=stranger).status_code == 404
    assert [b["id"] for b in server.get("/books", "agent").json()["books"]] == [book["id"]]  # type: ignore[attr-defined]
    for method, path, body in (
        ("post", f"/devices/{SERIAL}/tokens", {"type": "add_days", "days": 1}),
        ("get", f"/devices/{SERIAL}", None),
        ("get", f"/devices/{SERIAL}/tokens", None),
        ("get", "/payments", None),
        ("post", "/books", {}),
        ("post", f"/books/{book['id']}/close", {}),
        ("post", "/books/expire", None),
        ("get", "/api-keys", None),
    ):
        answer = server.client.request(method, path, json=body, headers=server.headers("agent"))
        assert answer.status_code in (403, 422), (path, answer.text)
        if answer.status_code == 403:
            assert "the agent role may not" in answer.json()["error"]["message"]
    for role in ("technician", "viewer"):
        assert make_book(server, role).status_code == 403


def test_online_issuing_is_refused_while_the_book_is_open(server: Server) -> None:
    server.add_device(hardware_model="M1")
    server.client.put(
        "/tariffs/M1", json={"price_per_day": 1, "currency": "KES"}, headers=server.headers()
    )
    book = created_book(server)
    before = snapshot(server.db)
    refused = issue(server)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert f"token book {book['id']}" in error["message"]
    assert "agent" in error["message"]
    assert f"/books/{book['id']}/close" in error["fix"]
    assert "sync" in error["fix"]
    assert error["details"]["agent"] == "agent"
    assert snapshot(server.db) == before
    # A payment for the device waits as an orphan, and cannot be applied by hand either.
    paid = server.post(
        "/payments",
        json={
            "provider": "p",
            "transaction_id": "t1",
            "serial": SERIAL,
            "amount": 5,
            "currency": "KES",
        },
    )
    assert paid.status_code == 202, paid.text  # type: ignore[attr-defined]
    payment = paid.json()["payment"]  # type: ignore[attr-defined]
    assert f"token book {book['id']}" in payment["orphan_reason"]
    apply = server.post(f"/payments/{payment['id']}/apply", json={"serial": SERIAL})
    assert apply.status_code == 409  # type: ignore[attr-defined]

    fetch(server, book["id"])
    sync(server, book["id"], handout(1, 2))
    closed = server.post(
        f"/books/{book['id']}/close", json={"decision": "void", "reason": "round over"}
    )
    assert closed.status_code == 200, closed.text  # type: ignore[attr-defined]
    # Online issuing resumes after the book's counts: none is made twice.
    after = issue(server)
    assert after.status_code == 201, after.text
    assert after.json()["tokens"][0]["count"] == 10
    applied = server.post(f"/payments/{payment['id']}/apply", json={"serial": SERIAL})
    assert applied.status_code == 200  # type: ignore[attr-defined]
    counts = [r.count for r in rows(server, TokenRecord)]
    assert len(counts) == len(set(counts))


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        ({"steps": books.MAX_STEPS + 1}, 422, "steps"),
        ({"steps": 0}, 422, "steps"),
        ({"menu": []}, 422, "menu"),
        ({"menu": [1, 1]}, 422, "twice"),
        ({"menu": [1, 2, 3, 4, 5, 6, 7]}, 422, "menu"),
        ({"menu": [996], "value_cap_days": 10000}, 422, "995 time units"),
        ({"value_cap_days": 119}, 422, "above its cap of 119 days"),
        ({"expires_at": "2029-12-31"}, 422, "expires"),
        ({"expires_at": "2030-06-01"}, 422, "within 92 days"),
        ({"serials": []}, 422, "serials"),
        ({"serials": [SERIAL, SERIAL]}, 422, "twice"),
        ({"serials": ["NOPE00001"]}, 404, "no device"),
        ({"agent_key_id": 1}, 404, "no agent key"),
        ({"agent_key_id": 2**31}, 422, "agent_key_id"),
        ({"name": "x" * 101}, 422, "name"),
    ],
)
def test_a_bad_book_is_refused_before_any_change(
    server: Server, fields: dict[str, Any], status: int, words: str
) -> None:
    server.add_device()
    before = snapshot(server.db)
    refused = make_book(server, **fields)
    assert refused.status_code == status, refused.text  # type: ignore[attr-defined]
    assert words in refused.json()["error"]["message"]  # type: ignore[attr-defined]
    assert snapshot(server.db) == before


def test_a_book_never_pushes_a_device_past_its_decode_window(server: Server) -> None:
    server.add_device(decode_window=10)
    for _ in range(2):
        assert issue(server).status_code == 201  # count 1 -> 4, never reported
    # Steps at 6, 8, 10, 12: 12 - 1 > 10.
    refused = make_book(server, steps=4)
    assert refused.status_code == 409, refused.text
    assert "decode window of 10" in refused.json()["error"]["message"]
    assert created_book(server, steps=3)["device_steps"][0]["steps"][-1]["count"] == 10


def test_a_device_is_on_one_open_book_at_a_time(server: Server) -> None:
    server.add_device()
    created_book(server)
    agent2, _ = new_agent(server, "agent two")
    refused = make_book(server, agent_key_id=agent2)
    assert refused.status_code == 409
    assert "in book" in refused.json()["error"]["message"]


def test_a_hand_out_becomes_a_token_and_a_payment_once(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    payload = fetch(server, book["id"]).json()
    first = sync(server, book["id"], handout(1, 2, reference="MPESA-1"))
    assert first.status_code == 200, first.text
    result = first.json()["results"][0]
    assert result["result"] == "recorded"
    assert result["flags"] == []
    assert result["token"].replace(" ", "") == token_of(payload, SERIAL, 2, "7")
    records = rows(server, TokenRecord)
    assert [(r.count, r.units, r.source) for r in records] == [(2, 7, "book")]
    payments = rows(server, Payment)
    assert [(p.status, p.amount, p.currency, p.provider) for p in payments] == [
        ("applied", "7", "KES", "token-book")
    ]
    assert records[0].payment_id == payments[0].id
    device = server.get(f"/devices/{SERIAL}").json()  # type: ignore[attr-defined]
    assert device["active_until"] == "2030-01-08T09:00:00Z"

    # The same hand-out again, alone or with a new one (a retry, a partial upload).
    before = snapshot(server.db)
    again = sync(server, book["id"], handout(1, 2, reference="MPESA-1"))
    assert again.json()["results"][0]["result"] == "replayed"
    assert snapshot(server.db) == before
    both = sync(server, book["id"], handout(1, 2, reference="MPESA-1"), handout(2, 4, 3))
    assert [r["result"] for r in both.json()["results"]] == ["replayed", "recorded"]
    assert len(rows(server, TokenRecord)) == 2
    assert len(rows(server, Payment)) == 2
    # The same id with other content: refused, the first stands.
    changed = sync(server, book["id"], handout(1, 2, 30))
    assert changed.json()["results"][0]["result"] == "refused"
    assert "other content" in changed.json()["results"][0]["reason"]
    assert len(rows(server, TokenRecord)) == 2


def test_two_phones_with_one_book(server: Server) -> None:
    """The same step twice: the same token (duplicate) or another value (conflict); one
    token record per count, and the second money waits for a person."""
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    sync(server, book["id"], handout(1, 2, 7))
    answer = sync(server, book["id"], handout(2, 2, 7), handout(3, 2, 30)).json()
    assert [r["result"] for r in answer["results"]] == ["duplicate", "conflict"]
    assert "works once" in answer["results"][0]["note"]
    assert "only the first entered works" in answer["results"][1]["note"]
    assert [r.count for r in rows(server, TokenRecord)] == [2]
    payments = rows(server, Payment)
    assert [p.status for p in payments] == ["applied", "orphan", "orphan"]
    assert "replace" in (payments[2].orphan_reason or "")
    view = server.get(f"/books/{book['id']}").json()  # type: ignore[attr-defined]
    assert view["handouts"] == {"recorded": 1, "duplicate": 1, "conflict": 1}


def test_skipped_and_bad_hand_outs(server: Server) -> None:
    server.add_device()
    server.add_device(OTHER)
    book = created_book(server)
    fetch(server, book["id"])
    results = sync(
        server,
        book["id"],
        handout(1, 6),
        handout(2, 3),
        handout(3, 12),
        handout(4, 2, 5),
        handout(5, 2, serial=OTHER),
        handout(6, 2, amount=0),
    ).json()["results"]
    assert [r["result"] for r in results] == [
        "recorded",
        "refused",
        "refused",
        "refused",
        "refused",
        "recorded",
    ]
    assert results[0]["flags"] == ["skipped"]
    assert "counts 2, 4" in results[0]["note"]
    assert "not a step" in results[1]["reason"]
    assert "not a step" in results[2]["reason"]
    assert "not on the book's menu" in results[3]["reason"]
    assert "not on token book" in results[4]["reason"]
    assert results[5]["flags"] == ["unpaid"]
    assert sorted(r.count for r in rows(server, TokenRecord)) == [2, 6]


def test_a_sync_is_bounded_before_any_work(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    before = snapshot(server.db)
    too_many = [handout(n, 2) for n in range(books.MAX_SYNC_HANDOUTS + 1)]
    for items in (
        too_many,
        [],
        [handout(1, 2, id="x" * 65)],
        [handout(1, 2, currency="KESH")],
        [handout(1, 2, amount=-1)],
        [handout(1, 2, handed_out_at="yesterday")],
        [handout(1, 2, days=1e9)],
        [handout(1, -1)],
        [handout(1, 2, id="\x00")],
    ):
        refused = sync(server, book["id"], *items)
        assert refused.status_code == 422, (items[:1], refused.text)
    assert sync(server, 2**31, handout(1, 2)).status_code == 422
    assert sync(server, 999, handout(1, 2)).status_code == 404
    assert snapshot(server.db) == before


def test_closing_needs_a_decision_once_the_agent_fetched_the_book(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    sync(server, book["id"], handout(1, 2))
    before = snapshot(server.db)
    undecided = server.post(f"/books/{book['id']}/close", json={})
    assert undecided.status_code == 409  # type: ignore[attr-defined]
    error = undecided.json()["error"]  # type: ignore[attr-defined]
    assert error["details"]["possibly_handed_out"] == [{"serial": SERIAL, "counts": [4, 6, 8]}]
    assert "void" in error["fix"]
    assert "handed_out" in error["fix"]
    no_reason = server.post(f"/books/{book['id']}/close", json={"decision": "void"})
    assert no_reason.status_code == 422  # type: ignore[attr-defined]
    assert snapshot(server.db) == before
    closed = server.post(
        f"/books/{book['id']}/close", json={"decision": "void", "reason": "phone lost"}
    ).json()  # type: ignore[attr-defined]
    assert closed["book"]["status"] == "closed"
    assert closed["book"]["close_decision"] == "void"
    assert "Set Time" in closed["warnings"][0]
    entry = server.get("/audit", params={"action": "book.close"}).json()["entries"][0]  # type: ignore[attr-defined]
    assert entry["details"]["decision"] == "void"
    assert entry["details"]["reason"] == "phone lost"
    assert entry["details"]["possibly_handed_out"] == [{"serial": SERIAL, "counts": [4, 6, 8]}]
    again = server.post(f"/books/{book['id']}/close", json={"decision": "void", "reason": "x"})
    assert again.status_code == 409  # type: ignore[attr-defined]

    # A hand-out synced after closing is taken (the token may work) and flagged.
    late = sync(server, book["id"], handout(2, 4)).json()["results"][0]
    assert late["result"] == "recorded"
    assert {"after_close", "voided"} <= set(late["flags"])
    assert sorted(r.count for r in rows(server, TokenRecord)) == [2, 4]
    assert issue(server).json()["tokens"][0]["count"] == 10


def test_a_book_never_fetched_gives_its_counts_back(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    closed = server.post(f"/books/{book['id']}/close", json={})
    assert closed.status_code == 200, closed.text  # type: ignore[attr-defined]
    assert issue(server).json()["tokens"][0]["count"] == 2
    # Nothing of it can be synced: none of its tokens left the server.
    refused = sync(server, book["id"], handout(1, 2)).json()["results"][0]
    assert refused["result"] == "refused"
    assert "never fetched" in refused["reason"]


def test_a_fully_synced_book_closes_without_a_decision(server: Server) -> None:
    server.add_device()
    book = created_book(server, steps=2)
    fetch(server, book["id"])
    sync(server, book["id"], handout(1, 2), handout(2, 4))
    closed = server.post(f"/books/{book['id']}/close", json={})
    assert closed.status_code == 200, closed.text  # type: ignore[attr-defined]
    assert closed.json()["book"]["close_decision"] is None  # type: ignore[attr-defined]


def test_books_expire(server: Server) -> None:
    server.add_device()
    server.add_device(OTHER)
    book = created_book(server, serials=[SERIAL, OTHER])
    fetch(server, book["id"])
    server.clock.advance(days=20)
    assert server.get(f"/books/{book['id']}").json()["status"] == "expired"  # type: ignore[attr-defined]
    refused = fetch(server, book["id"])
    assert refused.status_code == 409
    assert "expired" in refused.json()["error"]["message"]
    # The first path to meet the device lets it go; issuing continues after the book.
    assert issue(server).json()["tokens"][0]["count"] == 10
    late = sync(server, book["id"], handout(1, 2, handed_out_at="2030-01-21T10:00:00Z"))
    assert late.json()["results"][0]["flags"] == ["after_expiry"]
    expired = server.post("/books/expire").json()  # type: ignore[attr-defined]
    assert expired == {"expired": [book["id"]]}
    assert server.post("/books/expire").json() == {"expired": []}  # type: ignore[attr-defined]
    view = server.get(f"/books/{book['id']}").json()  # type: ignore[attr-defined]
    assert view["status"] == "expired"
    assert view["close_decision"] == "handed_out"
    assert issue(server, OTHER).json()["tokens"][0]["count"] == 10
    assert [
        b["id"] for b in server.get("/books", params={"status": "expired"}).json()["books"]
    ] == [  # type: ignore[attr-defined]
        book["id"]
    ]


def test_a_step_the_device_moved_past_is_dead(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    # The device shows count 24 (a technician's reading; the server was behind).
    reported = server.post(
        f"/devices/{SERIAL}/counts",
        json={"count": 24, "server_behind": True, "read_at": "2030-01-01T10:00:00Z"},
    )
    assert reported.status_code == 201, reported.text  # type: ignore[attr-defined]
    # Handed out after that reading: the token could not work any more.
    answer = sync(server, book["id"], handout(1, 8, handed_out_at="2030-01-01T11:00:00Z")).json()
    result = answer["results"][0]
    assert result["result"] == "recorded"
    assert "dead" in result["flags"]
    assert answer["dead_steps"] == [{"serial": SERIAL, "counts": [2, 4, 6]}]
    payments = rows(server, Payment)
    assert payments[0].status == "orphan"
    assert "replace" in (payments[0].orphan_reason or "")
    assert rows(server, TokenRecord)[0].payment_id is None
    steps = fetch(server, book["id"]).json()["devices"][0]["steps"]
    assert [s["status"] for s in steps] == ["dead", "dead", "dead", "handed_out"]
    assert [len(s["tokens"]) for s in steps] == [0, 0, 0, 1]


def test_book_events_reach_the_webhook_outbox(server: Server) -> None:
    server.add_device()
    server.client.put("/webhook", json={"url": "http://127.0.0.1:9/x"}, headers=server.headers())
    book = created_book(server)
    fetch(server, book["id"])
    sync(server, book["id"], handout(1, 2))
    server.post(f"/books/{book['id']}/close", json={"decision": "handed_out", "reason": "end"})
    events = [json.loads(d.payload) for d in rows(server, WebhookDelivery)]
    assert [e["event"] for e in events] == [
        "book.created",
        "token.issued",
        "book.synced",
        "book.closed",
    ]
    assert events[0]["serials"] == [SERIAL]
    assert events[1]["count"] == 2
    actions = [e["action"] for e in server.get("/audit").json()["entries"]]  # type: ignore[attr-defined]
    assert actions[-5:] == ["book.create", "book.fetch", "token.issue", "book.sync", "book.close"]


def test_staff_may_sync_a_book_on_the_agents_behalf(server: Server) -> None:
    server.add_device()
    book = created_book(server)
    fetch(server, book["id"])
    assert sync(server, book["id"], handout(1, 2), role="operator").status_code == 200
    for role in ("technician", "viewer"):
        assert sync(server, book["id"], handout(2, 4), role=role).status_code == 403


def test_concurrent_syncs_of_one_book_record_each_hand_out_once(server: Server) -> None:
    """Two phones (and their retries) syncing the same hand-outs at the same moment."""
    server.add_device()
    server.add_device(OTHER)
    book = created_book(server, serials=[SERIAL, OTHER])
    fetch(server, book["id"])
    items = [handout(n, 2 + 2 * (n % 4), serial=(SERIAL, OTHER)[n // 4]) for n in range(8)]
    with server.db.read() as session:
        actor = access.authenticate(session, server.keys["agent"])
    barrier = threading.Barrier(6, timeout=60)

    def one(number: int) -> list[str]:
        mine = items[number % 2 :: 1] if number % 3 else list(reversed(items))
        checked = [
            books.HandoutInput(
                client_id=i["id"],
                serial=i["serial"],
                count=i["count"],
                days=books.Decimal(7),
                amount=books.Decimal(7),
                currency="KES",
                handed_out_at=dt.datetime(2030, 1, 2, 9, tzinfo=dt.UTC),
            )
            for i in mine
        ]
        barrier.wait()
        with server.db.write() as session:
            answer = books.sync_book(
                session, actor, server.keyring, book["id"], checked, server.clock()
            )
        return [r["result"] for r in answer["results"]]

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(one, range(6)))
    assert all(set(o) <= {"recorded", "replayed"} for o in outcomes)
    assert sum(o.count("recorded") for o in outcomes) == 8
    assert len(rows(server, TokenRecord)) == 8
    assert len(rows(server, Payment)) == 8
    assert len(rows(server, BookHandout)) == 8
    with server.db.read() as session:
        pairs = session.execute(select(TokenRecord.device_id, TokenRecord.count)).all()
        assert len(set(pairs)) == 8
        assert session.scalar(select(func.count()).select_from(Payment)) == 8


def test_the_local_admin_may_not_fetch_a_book(server: Server) -> None:
    """The terminal's admin holds the keys anyway; the book's copy is still the agent's."""
    server.add_device()
    book = created_book(server)
    with server.db.write() as session:
        local = access.local_actor(session, access.DEFAULT_TENANT, server.clock())
        with pytest.raises(ForbiddenError):
            books.fetch_book(session, local, server.keyring, book["id"], server.clock())


def test_an_agent_signed_in_to_the_console_is_refused_every_page(server: Server) -> None:
    """The console is for staff: an agent key signs in, and reads nothing of the fleet."""
    from fastapi.testclient import TestClient

    from tests.console.conftest import ConsoleClient

    server.add_device()
    console = ConsoleClient(server, TestClient(server.client.app, follow_redirects=False))
    console.sign_in("agent")
    for path in (
        "/console/devices",
        f"/console/devices/{SERIAL}",
        "/console/payments",
        "/console/books",
    ):
        assert console.get(path).status_code == 403, path
    for path in ("/console/audit", "/console/api-keys", "/console/import"):
        assert console.get(path).status_code == 403, path


def test_the_money_of_a_hand_out_is_checked_against_the_tariff(server: Server) -> None:
    server.add_device(hardware_model="M1")
    server.client.put(
        "/tariffs/M1", json={"price_per_day": 50, "currency": "KES"}, headers=server.headers()
    )
    book = created_book(server)
    fetch(server, book["id"])
    results = sync(
        server,
        book["id"],
        handout(1, 2, amount=350),
        handout(2, 4, amount=100),
        handout(3, 6, amount=350, currency="USD"),
    ).json()["results"]
    assert [r["flags"] for r in results] == [[], ["underpaid"], ["currency_differs"]]
    assert "100 KES for 7 days at 50 KES a day" in results[1]["note"]
    # Flagged, not refused: the tokens are in customers' hands and their money is known.
    assert [p.status for p in rows(server, Payment)] == ["applied"] * 3


def test_the_book_payments_provider_is_kept_for_books(server: Server) -> None:
    server.add_device()
    refused = server.post(
        "/payments",
        json={
            "provider": "token-book",
            "transaction_id": "1/h-1",
            "serial": SERIAL,
            "amount": 5,
            "currency": "KES",
        },
    )
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert "token book" in refused.json()["error"]["message"]  # type: ignore[attr-defined]


def test_online_issuing_racing_a_new_book_never_shares_a_count(server: Server) -> None:
    """Tokens issued online while a book is made for the device: each count once."""
    server.add_device()
    with server.db.read() as session:
        operator = access.authenticate(session, server.keys["operator"])
        admin = access.authenticate(session, server.keys["admin"])
    barrier = threading.Barrier(5, timeout=60)
    spec = tokens.IssueSpec(tokens.IssueKind.ADD_DAYS, days=books.Decimal(1))

    def online(_: int) -> int | None:
        barrier.wait()
        try:
            with server.db.write() as session:
                outcome = tokens.issue_tokens(
                    session, operator, server.keyring, SERIAL, spec, server.clock()
                )
        except ConflictError:
            return None
        count: int = outcome.body["tokens"][0]["count"]
        return count

    def book(_: int) -> tuple[int, int]:
        barrier.wait()
        data = books.BookInput(
            agent_key_id=agent_id(server),
            serials=[SERIAL],
            steps=4,
            menu=[books.Decimal(7)],
            value_cap_days=books.Decimal(100),
            expires_at=server.clock() + dt.timedelta(days=5),
        )
        with server.db.write() as session:
            made = books.create_book(session, admin, data, server.clock())
            view = books.book_view(session, made, server.clock(), detail=True)
        steps = view["device_steps"][0]["steps"]
        return steps[0]["count"], steps[-1]["count"]

    with ThreadPoolExecutor(5) as pool:
        booked = pool.submit(book, 0)
        issued = list(pool.map(online, range(4)))
        first, last = booked.result()
    made = [c for c in issued if c is not None]
    refused = issued.count(None)
    # Issued before the book: below its counts; after it: refused, naming the book.
    assert all(c < first for c in made)
    assert len(made) + refused == 4
    assert last == first + 6
    counts = [r.count for r in rows(server, TokenRecord)]
    assert sorted(counts) == sorted(made)


def test_the_console_refuses_to_issue_for_a_device_in_an_open_book(server: Server) -> None:
    from fastapi.testclient import TestClient

    from tests.console.conftest import ConsoleClient, text_of

    server.add_device()
    book = created_book(server)
    console = ConsoleClient(server, TestClient(server.client.app, follow_redirects=False))
    console.sign_in("operator")
    before = snapshot(server.db)
    answer = console.issue(SERIAL, type="add_days", days="1")
    assert answer.status_code == 409, text_of(answer.text)
    assert f"token book {book['id']}" in text_of(answer.text)
    assert snapshot(server.db)["tokens"] == before["tokens"]
