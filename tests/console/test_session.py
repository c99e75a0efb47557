"""Console sign-in, session cookie, expiry, sign-out and CSRF."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from paygkit.server.models import AuditEntry, ConsoleSession
from paygkit.server.services import access, sessions
from tests.console.conftest import BOTH_DATABASES, ConsoleClient, hidden_fields, text_of
from tests.server.conftest import Server, snapshot

Browser = Callable[..., ConsoleClient]


def test_pages_need_a_session_and_send_back_to_the_page_asked(browser: Browser) -> None:
    anonymous = browser()
    for path in ("/console/", "/console/devices", "/console/audit", "/console/api-keys"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/sign-in?next=")
    response = anonymous.get("/console/devices?q=SLT")
    assert response.headers["location"] == "/console/sign-in?next=/console/devices%3Fq%3DSLT"
    # The site root and /console lead to the console.
    assert anonymous.get("/").headers["location"] == "/console/"
    assert anonymous.get("/console").headers["location"] == "/console/"


@BOTH_DATABASES
def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_a_hash(
    browser: Browser, server: Server
) -> None:
    console = browser()
    page = console.get("/console/sign-in")
    assert page.status_code == 200
    assert 'type="password"' in page.text
    token = hidden_fields(page.text)["signin_token"]
    response = console.post(
        "/console/sign-in",
        {"api_key": server.keys["operator"], "signin_token": token, "next_url": "/console/audit"},
        csrf=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/audit"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("paygkit_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower()
    assert "path=/console" in cookie.lower()
    assert "secure" not in attributes  # plain http: a Secure cookie would not come back
    value = cookie.split(";")[0].split("=", 1)[1]
    with server.db.read() as session:
        (record,) = session.scalars(select(ConsoleSession))
        assert record.token_hash != value
        assert len(record.token_hash) == 64
        actions = [e.action for e in session.scalars(select(AuditEntry))]
    assert "console.sign_in" in actions
    assert server.keys["operator"] not in str(snapshot(server.db))


def test_over_https_the_cookie_is_secure(browser: Browser, server: Server) -> None:
    console = browser(https=True)
    token = hidden_fields(console.get("/console/sign-in").text)["signin_token"]
    response = console.post(
        "/console/sign-in",
        {"api_key": server.keys["viewer"], "signin_token": token},
        csrf=False,
    )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("paygkit_console=")
    )
    assert "; secure" in cookie.lower()


def test_a_plain_http_address_other_than_loopback_gets_a_warning(browser: Browser) -> None:
    page = browser().get("/console/sign-in")
    # TestClient's host is "testserver": not loopback, not https.
    assert "not served over HTTPS" in page.text
    local = browser().client.get("http://127.0.0.1/console/sign-in")
    assert "not served over HTTPS" not in local.text


def test_a_wrong_or_revoked_key_is_refused_without_showing_it(
    browser: Browser, server: Server
) -> None:
    console = browser()
    for presented in ("pgk_not-a-key-at-all-0123456789", ""):
        token = hidden_fields(console.get("/console/sign-in").text)["signin_token"]
        response = console.post(
            "/console/sign-in", {"api_key": presented, "signin_token": token}, csrf=False
        )
        assert response.status_code == 401
        if presented:
            assert presented not in response.text
            assert "the API key is not known" in text_of(response.text)
        else:
            assert "no API key given" in text_of(response.text)
        assert "paygkit_console=" not in response.headers.get("set-cookie", "")
    with server.db.write() as session:
        actor = access.authenticate(session, server.keys["admin"])
        viewer_id = access.authenticate(session, server.keys["viewer"]).api_key_id
        assert viewer_id is not None
        access.revoke_api_key(session, actor, viewer_id, server.clock())
    token = hidden_fields(console.get("/console/sign-in").text)["signin_token"]
    response = console.post(
        "/console/sign-in", {"api_key": server.keys["viewer"], "signin_token": token}, csrf=False
    )
    assert response.status_code == 401
    assert "revoked" in text_of(response.text)


def test_sign_in_without_its_form_token_is_refused(browser: Browser, server: Server) -> None:
    console = browser()
    console.get("/console/sign-in")
    response = console.post(
        "/console/sign-in",
        {"api_key": server.keys["admin"], "signin_token": "forged"},
        csrf=False,
    )
    assert response.status_code == 403
    assert "sign-in form had expired" in text_of(response.text)
    with server.db.read() as session:
        assert list(session.scalars(select(ConsoleSession))) == []


def test_next_url_never_leaves_the_console(browser: Browser, server: Server) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/docs", "/console\\x"):
        console = browser()
        token = hidden_fields(console.get("/console/sign-in").text)["signin_token"]
        response = console.post(
            "/console/sign-in",
            {"api_key": server.keys["admin"], "signin_token": token, "next_url": target},
            csrf=False,
        )
        assert response.headers["location"] == "/console/", target


def test_sign_out_ends_the_session_on_the_server(browser: Browser, server: Server) -> None:
    console = browser("operator")
    cookie = console.client.cookies.get("paygkit_console")
    assert cookie
    response = console.post("/console/sign-out")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?signed_out=1"
    assert 'paygkit_console=""' in response.headers["set-cookie"]
    assert "You are signed out" in console.get(response.headers["location"]).text
    # The old cookie, replayed, no longer opens anything.
    replay = browser()
    replay.client.cookies.set("paygkit_console", cookie, path="/console")
    assert replay.get("/console/devices").status_code == 303
    with server.db.read() as session:
        actions = [e.action for e in session.scalars(select(AuditEntry))]
    assert "console.sign_out" in actions


def test_sessions_idle_out_and_end_after_their_lifetime(browser: Browser, server: Server) -> None:
    console = browser("viewer")
    server.clock.advance(minutes=29)
    assert console.get("/console/devices").status_code == 200  # activity keeps it alive
    server.clock.advance(minutes=29)
    assert console.get("/console/devices").status_code == 200
    server.clock.advance(minutes=31)
    expired = console.get("/console/devices")
    assert expired.status_code == 303
    assert expired.headers["location"].startswith("/console/sign-in")
    # However active, a session ends LIFETIME after sign-in.
    console = browser("viewer")
    steps = int(sessions.LIFETIME / sessions.IDLE) * 2 + 2
    for _ in range(steps):
        server.clock.advance(seconds=sessions.IDLE.total_seconds() / 2)
        page = console.get("/console/devices")
    assert page.status_code == 303
    # A POST after expiry shows the sign-in page and changes nothing.
    server.add_device()
    before = snapshot(server.db)
    response = console.post(
        "/console/devices/TEST220000001/confirm", {"type": "add_days", "days": "7"}
    )
    assert response.status_code == 401
    assert "session has ended" in text_of(response.text)
    assert snapshot(server.db) == before


def test_revoking_the_key_ends_its_sessions(browser: Browser, server: Server) -> None:
    operator = browser("operator")
    admin = browser("admin")
    page = admin.get("/console/api-keys")
    with server.db.read() as session:
        operator_id = access.authenticate(session, server.keys["operator"]).api_key_id
    confirm = admin.post(f"/console/api-keys/{operator_id}/confirm")
    assert confirm.status_code == 200
    assert "Revoke key" in text_of(confirm.text)
    assert page.status_code == 200
    revoked = admin.post(f"/console/api-keys/{operator_id}/revoke")
    assert revoked.status_code == 200
    assert "is revoked" in text_of(revoked.text)
    assert operator.get("/console/devices").status_code == 303


@BOTH_DATABASES
def test_every_post_needs_the_session_csrf_token(browser: Browser, server: Server) -> None:
    server.add_device()
    operator = browser("operator")
    other = browser("operator")
    before = snapshot(server.db)
    for token in ("", "forged", other.csrf):
        for path, form in (
            ("/console/devices/TEST220000001/confirm", {"type": "add_days", "days": "7"}),
            (
                "/console/devices/TEST220000001/tokens",
                {"type": "add_days", "days": "7", "idempotency_key": "x"},
            ),
            ("/console/devices/TEST220000001/counts", {"count": "3"}),
            ("/console/sign-out", {}),
        ):
            response = operator.post(path, {**form, "csrf": token})
            assert response.status_code == 403, (path, token)
            assert "did not come from this console" in text_of(response.text)
    assert snapshot(server.db) == before
    # Still signed in: the refused sign-out did nothing.
    assert operator.get("/console/devices").status_code == 200


def test_a_post_from_another_site_is_refused(browser: Browser, server: Server) -> None:
    server.add_device()
    operator = browser("operator")
    before = snapshot(server.db)
    form = {"type": "add_days", "days": "7", "idempotency_key": "x"}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = operator.post("/console/devices/TEST220000001/tokens", form, headers=headers)
        assert response.status_code == 403
    assert snapshot(server.db) == before
    same = operator.post(
        "/console/devices/TEST220000001/tokens", form, headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 200


def test_pages_carry_security_headers_and_the_assets_are_local(browser: Browser) -> None:
    console = browser("viewer")
    page = console.get("/console/devices")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert "http://" not in page.text
    assert "https://" not in page.text
    for asset in ("/console/static/console.css", "/console/static/console.js"):
        response = console.get(asset)
        assert response.status_code == 200
        assert len(response.content) > 500
