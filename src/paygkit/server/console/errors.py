"""The console's own refusals, and how each kind of refusal is answered as a page."""

from __future__ import annotations

from paygkit.server.services.common import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
    answer_for_kind,
)


class CsrfError(ServiceError):
    """A form that did not come from this console, or has expired."""


class ServerFaultError(ServiceError):
    """The server, not the person at the console, is at fault."""


# The page's status and title for each kind; a kind not listed answers as its nearest base.
PAGE_ANSWERS: dict[type[ServiceError], tuple[int, str]] = {
    ServiceError: (400, "Cannot do that"),
    InvalidError: (422, "Cannot do that"),
    ConflictError: (409, "Cannot do that"),
    NotFoundError: (404, "Not found"),
    ForbiddenError: (403, "Not allowed"),
    CsrfError: (403, "Not allowed"),
    UnauthorizedError: (401, "Please sign in"),
    ServerFaultError: (500, "Cannot do that"),
}


def _answer(error: ServiceError) -> tuple[int, str]:
    return answer_for_kind(PAGE_ANSWERS, error)


def page_status(error: ServiceError) -> int:
    return _answer(error)[0]


def page_title(error: ServiceError) -> str:
    return _answer(error)[1]


def csrf_refused() -> CsrfError:
    return CsrfError(
        "this form has expired or did not come from this console; nothing was changed",
        "go back, reload the page and send the form again",
    )
