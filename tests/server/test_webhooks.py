"""Webhook: signed deliveries, retries with backoff (fake clock), and a real local receiver."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx

from paygkit.server.webhook_delivery import Dispatcher, RetryPolicy, sign, verify
from tests.server.conftest import Server, snapshot

SECRET = "s3cret-for-the-tests-0123456789"


def configure(server: Server, url: str = "http://127.0.0.1:9/hook") -> None:
    response = server.client.put(
        "/webhook", json={"url": url, "secret": SECRET}, headers=server.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["secret"] == SECRET


def issue(server: Server, days: int = 1) -> dict[str, Any]:
    response = server.client.post(
        "/devices/TEST220000001/tokens",
        json={"type": "add_days", "days": days},
        headers=server.headers(),
    )
    assert response.status_code == 201
    token: dict[str, Any] = response.json()["tokens"][0]
    return token


def test_deliveries_are_signed_and_retried_with_backoff(server: Server) -> None:
    server.add_device(account="ACC-7")
    configure(server)
    token = issue(server, 5)
    received: list[httpx.Request] = []
    answers = iter([500, 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(next(answers))

    policy = RetryPolicy(first_delay=dt.timedelta(seconds=10), max_attempts=5)
    dispatcher = Dispatcher(
        server.db,
        server.keyring,
        clock=server.clock,
        transport=httpx.MockTransport(handler),
        policy=policy,
    )
    assert dispatcher.run_once() == 0  # 500
    assert dispatcher.run_once() == 0  # not due yet: nothing sent
    assert len(received) == 1
    server.clock.advance(seconds=10)
    assert dispatcher.run_once() == 0  # 503, next in 20 s
    server.clock.advance(seconds=19)
    assert dispatcher.run_once() == 0
    assert len(received) == 2
    server.clock.advance(seconds=1)
    assert dispatcher.run_once() == 1
    assert len(received) == 3
    dispatcher.stop()

    request = received[-1]
    body = request.content
    payload = json.loads(body)
    assert payload["digits"] == token["digits"]
    assert payload["serial"] == "TEST220000001"
    assert payload["account"] == "ACC-7"
    assert payload["days"] == "5"
    assert request.headers["X-Paygkit-Event"] == "token.issued"
    signature = request.headers["X-Paygkit-Signature"]
    now = int(server.clock().timestamp())
    assert verify(SECRET.encode(), signature, body, now)
    assert not verify(b"wrong secret", signature, body, now)
    assert not verify(SECRET.encode(), signature, body + b" ", now)
    assert not verify(SECRET.encode(), signature, body, now + 3600)
    deliveries = server.get("/webhook/deliveries").json()["deliveries"]  # type: ignore[attr-defined]
    assert deliveries[0]["status"] == "delivered"
    assert deliveries[0]["attempts"] == 3


def test_a_delivery_fails_for_good_after_max_attempts(server: Server) -> None:
    server.add_device()
    configure(server)
    issue(server)

    def refuse(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    dispatcher = Dispatcher(
        server.db,
        server.keyring,
        clock=server.clock,
        transport=httpx.MockTransport(refuse),
        policy=RetryPolicy(max_attempts=3),
    )
    for _ in range(5):
        dispatcher.run_once()
        server.clock.advance(hours=2)
    dispatcher.stop()
    (delivery,) = server.get("/webhook/deliveries").json()["deliveries"]  # type: ignore[attr-defined]
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    assert "ConnectError" in delivery["last_error"]


def test_no_webhook_no_delivery_and_bad_urls(server: Server) -> None:
    server.add_device()
    issue(server)
    assert server.get("/webhook/deliveries").json()["deliveries"] == []  # type: ignore[attr-defined]
    before = snapshot(server.db)
    for url in ("ftp://x/y", "not a url", "http://"):
        response = server.client.put("/webhook", json={"url": url}, headers=server.headers())
        assert response.status_code == 422
        assert "http(s)" in response.json()["error"]["message"]
    short = server.client.put(
        "/webhook", json={"url": "http://127.0.0.1/x", "secret": "short"}, headers=server.headers()
    )
    assert short.status_code == 422
    assert snapshot(server.db) == before
    configure(server)
    assert server.get("/webhook").json() == {"url": "http://127.0.0.1:9/hook", "configured": True}  # type: ignore[attr-defined]
    assert SECRET not in server.get("/webhook").text  # type: ignore[attr-defined]
    server.client.delete("/webhook", headers=server.headers())
    issue(server)
    assert server.get("/webhook/deliveries").json()["deliveries"] == []  # type: ignore[attr-defined]


def test_real_delivery_to_a_local_http_server(server: Server) -> None:
    got: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        server.add_device()
        configure(server, f"http://127.0.0.1:{httpd.server_address[1]}/sms")
        token = issue(server, 3)
        dispatcher = Dispatcher(server.db, server.keyring, clock=server.clock)  # real network
        assert dispatcher.run_once() == 1
        dispatcher.stop()
    finally:
        httpd.shutdown()
        httpd.server_close()
    ((headers, body),) = got
    assert json.loads(body)["digits"] == token["digits"]
    timestamp = int(headers["X-Paygkit-Signature"].split(",")[0][2:])
    assert headers["X-Paygkit-Signature"] == sign(SECRET.encode(), timestamp, body)
