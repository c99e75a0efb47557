"""Delivering the webhook outbox: HMAC-signed POSTs, retried with exponential backoff.

Each delivery is a POST of the JSON payload with the headers

    X-Paygkit-Event: token.issued
    X-Paygkit-Delivery: <delivery id>
    X-Paygkit-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<unix time>.<body>">

keyed by the tenant's webhook secret.  A receiver recomputes the HMAC over the
timestamp and the raw body and refuses old timestamps.  A 2xx answer marks the
delivery done; anything else (or no answer) schedules a retry after 10 s,
20 s, 40 s ... capped at an hour; after `max_attempts` the delivery is marked
failed and stays listed (GET /webhook/deliveries).

Several server processes may run the dispatcher: a delivery is claimed by
moving its next attempt past a lease in a short transaction (with SKIP LOCKED
on PostgreSQL), then sent outside any transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from paygkit.server.crypto import Keyring
from paygkit.server.db import Database
from paygkit.server.models import Tenant, WebhookDelivery
from paygkit.server.services.webhooks import secret_label

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (shipped for receivers written in Python, and for the tests)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


@dataclass
class RetryPolicy:
    first_delay: dt.timedelta = dt.timedelta(seconds=10)
    max_delay: dt.timedelta = dt.timedelta(hours=1)
    max_attempts: int = 10
    lease: dt.timedelta = dt.timedelta(seconds=60)
    timeout_seconds: float = 10.0

    def delay(self, attempts: int) -> dt.timedelta:
        delay: dt.timedelta = self.first_delay * (2 ** max(0, attempts - 1))
        return min(delay, self.max_delay)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Dispatcher:
    """Sends due deliveries.  `run_once` is one pass (tests drive it with a fake clock)."""

    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        *,
        clock: Clock = _utc_now,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        batch: int = 20,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.batch = batch
        self._client = httpx.Client(
            transport=transport, timeout=self.policy.timeout_seconds, follow_redirects=False
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _claim(self) -> list[tuple[int, str, str, bytes, int]]:
        now = self.clock()
        claimed: list[tuple[int, str, str, bytes, int]] = []
        with self.db.read() as session:  # idle passes take no write lock
            due = session.scalar(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .limit(1)
            )
        if due is None:
            return claimed
        with self.db.write() as session:
            query = (
                select(WebhookDelivery)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            for delivery in session.scalars(query):
                tenant = session.get_one(Tenant, delivery.tenant_id)
                delivery.next_attempt_at = now + self.policy.lease
                if tenant.webhook_secret_sealed is None or tenant.webhook_secret_version is None:
                    delivery.status = "failed"
                    delivery.last_error = "the tenant's webhook was removed"
                    continue
                secret = self.keyring.open(
                    secret_label(tenant.id),
                    tenant.webhook_secret_sealed,
                    tenant.webhook_secret_version,
                )
                claimed.append(
                    (delivery.id, delivery.url, delivery.payload, secret, delivery.attempts)
                )
        return claimed

    def _send(self, delivery_id: int, url: str, payload: str, secret: bytes) -> str | None:
        """None when delivered, else what went wrong."""
        body = payload.encode()
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "X-Paygkit-Event": "token.issued",
            "X-Paygkit-Delivery": str(delivery_id),
            "X-Paygkit-Signature": sign(secret, timestamp, body),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def run_once(self) -> int:
        """Send every due delivery once; the number sent successfully."""
        delivered = 0
        for delivery_id, url, payload, secret, attempts in self._claim():
            error = self._send(delivery_id, url, payload, secret)
            now = self.clock()
            with self.db.write() as session:
                delivery = session.get_one(WebhookDelivery, delivery_id)
                delivery.attempts = attempts + 1
                if error is None:
                    delivery.status = "delivered"
                    delivery.delivered_at = now
                    delivery.last_error = None
                    delivered += 1
                else:
                    delivery.last_error = error
                    if delivery.attempts >= self.policy.max_attempts:
                        delivery.status = "failed"
                        log.warning("webhook delivery %s failed for good: %s", delivery_id, error)
                    else:
                        delivery.next_attempt_at = now + self.policy.delay(delivery.attempts)
                        log.info("webhook delivery %s will be retried: %s", delivery_id, error)
        return delivered

    # -- background thread -------------------------------------------------------------

    def start(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.run_once()
                except Exception:  # keep delivering after a database hiccup
                    log.exception("webhook dispatcher pass failed")

        self._thread = threading.Thread(target=loop, name="paygkit-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._client.close()
