"""The web console: server-rendered pages for operators, served by the token server.

`install_console(app, context)` adds the pages under `/console/` to the
token server's FastAPI application (`paygkit.server.api.create_app` does it).
The pages are Jinja2 templates and one CSS and one JS file shipped in this
package: no CDN, no build step, nothing fetched from the internet.

Every page goes through `paygkit.server.services`, as the API does, so roles,
checks and the audit log are the server's own; the console only decides what
to show.  Sign-in exchanges an API key for a session (`services.sessions`).
"""

from paygkit.server.console.pages import PREFIX, install_console

__all__ = ["PREFIX", "install_console"]
