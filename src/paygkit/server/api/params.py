"""Path, query and header parameters of the API, bounded like the fields they name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query
from pydantic import AfterValidator

from paygkit.server.services import bounds as b

Limit = Annotated[int, Query(ge=1, le=1000)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=b.IDEMPOTENCY_KEY_LENGTH)
]

SerialPath = Annotated[str, Path(min_length=1, max_length=b.SERIAL_LENGTH), AfterValidator(b.clean)]
ModelPath = Annotated[str, Path(min_length=1, max_length=b.MODEL_LENGTH), AfterValidator(b.clean)]
IdPath = Annotated[int, Path(ge=1, le=b.MAX_ID)]
BeforeId = Annotated[int | None, Query(ge=1, le=b.MAX_ID)]
AfterId = Annotated[int | None, Query(ge=0, le=b.MAX_ID - 1)]
SerialQuery = Annotated[
    str | None, Query(max_length=b.SERIAL_LENGTH), AfterValidator(b.clean_optional)
]
AccountQuery = Annotated[
    str | None, Query(max_length=b.ACCOUNT_LENGTH), AfterValidator(b.clean_optional)
]
SearchQuery = Annotated[
    str | None, Query(max_length=b.SEARCH_LENGTH), AfterValidator(b.clean_optional)
]
