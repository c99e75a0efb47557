"""Two phones with one book, partial uploads, retries and replays, in any order (hypothesis).

Whatever the phones hand out and however their syncs arrive, the server ends
with one token record per count (the first value synced there, with its
applied payment), one hand-out row and one payment per hand-out id, and a
replayed sync changes nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import BookHandout, Payment, Role, TokenRecord
from paygkit.server.services import access, books, devices
from paygkit.server.services.common import Actor
from tests.server.conftest import KEY, START, STARTING_CODE, snapshot

MENU = ("1", "7", "30")
STEPS = 4
_serials = itertools.count(1)


@dataclass
class Phone:
    """One phone's copy of the book: where it is for each device, and what it handed out."""

    next_step: dict[str, int] = field(default_factory=dict)
    handed: list[books.HandoutInput] = field(default_factory=list)


class BookMachine(RuleBasedStateMachine):
    db: Database
    keyring: Keyring
    admin: Actor
    agent: Actor

    @initialize()
    def make_book(self) -> None:
        self.serials = [f"BOOK{next(_serials):08d}" for _ in range(2)]
        with self.db.write() as session:
            for serial in self.serials:
                data = devices.DeviceInput(serial=serial, key=KEY, starting_code=STARTING_CODE)
                devices.create_device(session, self.admin, self.keyring, data, START)
            assert self.agent.api_key_id is not None
            book = books.create_book(
                session,
                self.admin,
                books.BookInput(
                    agent_key_id=self.agent.api_key_id,
                    serials=self.serials,
                    steps=STEPS,
                    menu=[Decimal(v) for v in MENU],
                    value_cap_days=Decimal(1000),
                    expires_at=START + dt.timedelta(days=30),
                ),
                START,
            )
            self.book_id = book.id
            payload = books.fetch_book(session, self.agent, self.keyring, book.id, START)
        self.tokens = {
            (d["serial"], s["count"], t["days"]): t["digits"]
            for d in payload["devices"]
            for s in d["steps"]
            for t in s["tokens"]
        }
        self.phones = [Phone(), Phone()]
        self.ids = itertools.count(1)
        # What the server must hold: the first value synced at each (serial, count).
        self.first_value: dict[tuple[str, int], str] = {}
        self.synced: dict[str, books.HandoutInput] = {}
        self.last_batch: list[books.HandoutInput] = []

    @rule(phone=st.integers(0, 1), device=st.integers(0, 1), value=st.sampled_from(MENU))
    def hand_out(self, phone: int, device: int, value: str) -> None:
        copy = self.phones[phone]
        serial = self.serials[device]
        step = copy.next_step.get(serial, 0)
        if step == STEPS:
            return
        copy.next_step[serial] = step + 1
        copy.handed.append(
            books.HandoutInput(
                client_id=f"{self.book_id}-{next(self.ids)}",
                serial=serial,
                count=2 + 2 * step,
                days=Decimal(value),
                amount=Decimal(value),
                currency="KES",
                handed_out_at=START,
            )
        )

    @precondition(lambda self: any(phone.handed for phone in self.phones))
    @rule(phone=st.integers(0, 1), data=st.data())
    def sync(self, phone: int, data: st.DataObject) -> None:
        handed = self.phones[phone].handed or self.phones[1 - phone].handed
        # A partial upload, in any order, with retries of hand-outs sent before.
        batch = data.draw(st.lists(st.sampled_from(handed), min_size=1, max_size=8))
        with self.db.write() as session:
            answer = books.sync_book(session, self.agent, self.keyring, self.book_id, batch, START)
        for item, result in zip(batch, answer["results"], strict=True):
            key = (item.serial, item.count)
            if item.client_id in self.synced:
                assert result["result"] == "replayed"
                continue
            self.synced[item.client_id] = item
            first = self.first_value.setdefault(key, str(item.days))
            if first == str(item.days) and result["result"] == "recorded":
                continue
            expected = "duplicate" if first == str(item.days) else "conflict"
            assert result["result"] == expected, (item, result)
        self.last_batch = batch

    @precondition(lambda self: bool(self.last_batch))
    @rule()
    def replay(self) -> None:
        before = snapshot(self.db)
        with self.db.write() as session:
            answer = books.sync_book(
                session, self.agent, self.keyring, self.book_id, self.last_batch, START
            )
        assert {r["result"] for r in answer["results"]} == {"replayed"}
        assert snapshot(self.db) == before

    @invariant()
    def one_token_per_count_and_one_payment_per_hand_out(self) -> None:
        if not hasattr(self, "book_id"):
            return
        with self.db.read() as session:
            handouts = list(
                session.scalars(select(BookHandout).where(BookHandout.book_id == self.book_id))
            )
            assert sorted(h.client_id for h in handouts) == sorted(self.synced)
            payments = session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.transaction_id.startswith(f"{self.book_id}/"))
            )
            assert payments == len(self.synced)
            for serial in self.serials:
                device = devices.find_device(session, self.admin.tenant_id, serial)
                assert device is not None
                records = list(
                    session.scalars(select(TokenRecord).where(TokenRecord.device_id == device.id))
                )
                counts = sorted(r.count for r in records if r.count is not None)
                assert counts == sorted(c for s, c in self.first_value if s == serial)
                for record in records:
                    assert record.count is not None
                    days = self.first_value[(serial, record.count)]
                    assert record.token == self.tokens[(serial, record.count, days)]
                    payment = session.get(Payment, record.payment_id)
                    assert payment is not None
                    assert payment.status == "applied"


def test_books_hold_whatever_the_phones_and_the_network_do(
    database: Database, keyring: Keyring
) -> None:
    with database.write() as session:
        admin = access.local_actor(session, access.DEFAULT_TENANT, START)
        made = access.create_api_key(session, admin, Role.AGENT, "agent", START).record
        agent = Actor(admin.tenant_id, made.name, Role.AGENT, made.id)
    BookMachine.db = database
    BookMachine.keyring = keyring
    BookMachine.admin = admin
    BookMachine.agent = agent
    run_state_machine_as_test(
        BookMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
