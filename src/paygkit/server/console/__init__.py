"""The web console: server-rendered pages for operators, served by the token server.

`router` holds the pages under `/console/`; the app (`paygkit.server.app`)
includes it and mounts `static_files()` at `STATIC_PATH`.  The pages are
Jinja2 templates and one CSS and one JS file shipped in this package: no CDN,
no build step, nothing fetched from the internet.

Every page goes through `paygkit.server.services`, as the API does, so roles,
checks and the audit log are the server's own; the console only decides what
to show, and how each kind of refusal is shown (`errors`).  Sign-in exchanges
an API key for a session (`services.sessions`).

Security, in short:

- Sign-in posts an API key (never in a URL); the server answers with a session
  cookie `paygkit_console` (HttpOnly, SameSite=Strict, Path=/console, and
  Secure when the request came over https, also through a proxy that sets
  X-Forwarded-Proto for uvicorn).  Over plain http the cookie cannot be Secure:
  that is fine on 127.0.0.1, and the sign-in page warns on any other address.
- Every form carries the session's CSRF token, checked on every POST; the
  sign-in form carries a double-submit token (cookie and field).  POSTs whose
  Origin (or Sec-Fetch-Site) says another site sent them are refused.
- Pages are sent with `Cache-Control: no-store`, a Content-Security-Policy that
  allows this server's own CSS and JS only, and may not be framed.

Modules: `router` assembles `pages.*` (one module per part of the menu);
`routing` turns refusals into pages; `transactions` opens one per page as the
signed-in key; `views` renders; `forms` checks form fields; `formatting`
writes times, durations and messages; `errors` maps refusals to pages.
"""

from paygkit.server.console.router import STATIC_NAME, STATIC_PATH, router, static_files
from paygkit.server.console.views import PREFIX

__all__ = ["PREFIX", "STATIC_NAME", "STATIC_PATH", "router", "static_files"]
