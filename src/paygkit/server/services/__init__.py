"""The server's use cases: plain functions taking a SQLAlchemy Session.

No HTTP here: each function checks its input, changes the database inside the
caller's transaction, writes the audit entry, and raises a `ServiceError`
(with what is wrong and how to fix it) before changing anything when the
request cannot be honoured.
"""

from paygkit.server.services.common import (
    Actor,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServiceError,
    UnauthorizedError,
)

__all__ = [
    "Actor",
    "ConflictError",
    "ForbiddenError",
    "InvalidError",
    "NotFoundError",
    "ServiceError",
    "UnauthorizedError",
]
