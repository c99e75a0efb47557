"""`paygkit server book ...`: a book made, shown, synced and closed from the terminal."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from paygkit.server.crypto import load_keyring
from paygkit.server.db import Database
from paygkit.server.services import access, books
from tests.server.test_cli import REFERENCE_CSV, run

SERIAL = "SLT240000002"


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def fetch_as_agent(tmp_path: Path, key: str, book_id: int) -> None:
    """What the agent's phone does over the API (agents only), on the same database."""
    db = Database(f"sqlite:///{tmp_path / 'paygkit.db'}")
    try:
        keyring = load_keyring(tmp_path / "paygkit-master.key", None)
        with db.write() as session:
            agent = access.authenticate(session, key)
            now = dt.datetime.now(dt.UTC)
            books.fetch_book(session, agent, keyring, book_id, now)
    finally:
        db.dispose()


def test_a_book_from_the_terminal(tmp_path: Path) -> None:
    assert run("init").exit_code == 0
    assert run("import", str(REFERENCE_CSV)).exit_code == 0
    made = run("api-key", "create", "--role", "agent", "--name", "Amina")
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    agent_id = re.search(r"agent key (\d+)", made.output)
    assert agent_id is not None
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=14)).date().isoformat()
    args = ["--agent", agent_id.group(1), "--serial", SERIAL, "--steps", "3"]
    args += ["--menu", "1,7,30", "--expires", expires]
    over = run("book", "create", *args, "--cap", "50")
    assert over.exit_code == 2
    assert "above its cap of 50 days" in over.output
    created = run("book", "create", *args, "--cap", "90", "--name", "North", "--json")
    assert created.exit_code == 0, created.output
    book = json.loads(created.output)
    assert book["value_days"] == "90"
    assert book["status"] == "open"
    refused = run("token", SERIAL, "--days", "1")
    assert refused.exit_code == 2
    assert f"token book {book['id']}" in refused.output
    assert "paygkit server book close" in refused.output

    listed = run("book", "list")
    assert listed.exit_code == 0
    assert "agent Amina" in listed.output
    assert "3 step(s)" in listed.output

    fetch_as_agent(tmp_path, key, book["id"])
    handouts = tmp_path / "handouts.json"
    when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    item = {
        "id": "paper-1",
        "serial": SERIAL,
        "count": 2,
        "days": 7,
        "amount": 350,
        "currency": "KES",
        "handed_out_at": when,
        "reference": "receipt 17",
    }
    handouts.write_text(json.dumps({"handouts": [item]}))
    synced = run("book", "sync", str(book["id"]), str(handouts))
    assert synced.exit_code == 0, synced.output
    assert "paper-1: recorded" in synced.output
    again = run("book", "sync", str(book["id"]), str(handouts))
    assert "paper-1: replayed" in again.output
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "x"}]')
    assert run("book", "sync", str(book["id"]), str(bad)).exit_code == 2

    shown = run("book", "show", str(book["id"]))
    assert shown.exit_code == 0
    assert f"{SERIAL}  2:7d 4:- 6:-" in shown.output
    assert "hand-out paper-1" in shown.output

    undecided = run("book", "close", str(book["id"]))
    assert undecided.exit_code == 2
    assert "void" in undecided.output
    assert run("book", "close", str(book["id"]), "--decision", "maybe").exit_code == 2
    closed = run("book", "close", str(book["id"]), "--decision", "void", "--reason", "round over")
    assert closed.exit_code == 0, closed.output
    assert "decision void: round over" in closed.output
    assert "Set Time" in closed.output
    issued = run("token", SERIAL, "--days", "1", "--json")
    assert issued.exit_code == 0, issued.output
    assert json.loads(issued.output)["tokens"][0]["count"] == 8
    assert "No book was due" in run("book", "expire").output
    everything = created.output + shown.output + synced.output
    assert "dac86b1a29ab82edc5fbbc41ec9530f6" not in everything
