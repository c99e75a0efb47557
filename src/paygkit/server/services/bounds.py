"""The bounds of every kind of input field, in one place.

The API's request models, the console's forms and the CSV importer all check
their fields here, so a value either fits its column on SQLite and PostgreSQL
alike or is refused with a 4xx before any work is done:

- text: no NUL (PostgreSQL refuses it), no lone surrogate (not encodable as
  UTF-8), and no longer than its column (`column_length`);
- ids: 1 to 2^31-1 (PostgreSQL's INTEGER; SQLite would take more, and then
  disagree);
- times: between `MIN_TIME` and `MAX_TIME` (Python's datetime ends at year
  9999, and a day added to 9999-12-31 overflows);
- money and days: finite, at most 6 decimal places, and small enough that
  their text fits the column and arithmetic on them stays cheap.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy import String

from paygkit.server.models import (
    ApiKey,
    CountReport,
    Device,
    IdempotencyRecord,
    Payment,
    Tenant,
)
from paygkit.server.services.common import MAX_TIME, MIN_TIME, InvalidError
from paygkit.token import MAX_COUNT

# PostgreSQL's INTEGER, the type of every id column.
MAX_ID = 2**31 - 1
# An ISO 8601 time is at most 35 characters (with microseconds and an offset).
MAX_TIME_TEXT = 40
# Money: below 10^15 with at most 6 decimals, so its text fits String(40) and a
# price times a divider never becomes a huge computation.
MONEY_PLACES = 6
MAX_MONEY = Decimal(10) ** 15
# Days in one request: far beyond what 20 tokens carry, small enough to compute at once.
MAX_DAYS = Decimal(1_000_000)
MAX_NOTE = 1000


def column_length(attribute: Any) -> int:
    """The length of a String column (the bound of the text stored there)."""
    column_type = attribute.property.columns[0].type
    assert isinstance(column_type, String)
    assert column_type.length is not None
    return int(column_type.length)


SERIAL_LENGTH = column_length(Device.serial)
MODEL_LENGTH = column_length(Device.hardware_model)
VERSION_LENGTH = column_length(Device.version)
ACCOUNT_LENGTH = column_length(Device.account)
TEST_CODE_LENGTH = column_length(Device.test_code)
PROVIDER_LENGTH = column_length(Payment.provider)
TRANSACTION_LENGTH = column_length(Payment.transaction_id)
KEY_NAME_LENGTH = column_length(ApiKey.name)
IDEMPOTENCY_KEY_LENGTH = column_length(IdempotencyRecord.key)
URL_LENGTH = column_length(Tenant.webhook_url)
# Free text with no column limit of its own (a note, a search) still has a bound.
SEARCH_LENGTH = 200
assert column_length(CountReport.source) >= 12


def text_problem(value: str) -> str | None:
    """What makes `value` unstorable as text anywhere (None when it is fine)."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def check_text(
    value: str, what: str, *, max_length: int, min_length: int = 0, fix: str | None = None
) -> str:
    """`value` as given, or InvalidError naming `what` and its bounds (never echoing it)."""
    problem = text_problem(value)
    if problem is None and not min_length <= len(value) <= max_length:
        problem = f"must be {min_length} to {max_length} characters, got {len(value)}"
    if problem is not None:
        raise InvalidError(f"{what} {problem}", fix or "correct the value and send it again")
    return value


def clean(value: str) -> str:
    """A pydantic validator: refuse NUL and lone surrogates (length is the Field's)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"the text {problem}")
    return value


def clean_optional(value: str | None) -> str | None:
    return None if value is None else clean(value)


def check_id(value: int, what: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise InvalidError(f"{what} must be 1 to {MAX_ID}, got {value}"[:200])
    return value


def check_count(value: int, what: str = "the count", fix: str | None = None) -> int:
    """A token count: 0 to the token layer's MAX_COUNT."""
    if not 0 <= value <= MAX_COUNT:
        raise InvalidError(f"{what} must be 0 to {MAX_COUNT}, got {value}", fix)
    return value


def check_time(moment: dt.datetime, what: str) -> dt.datetime:
    if not MIN_TIME <= moment < MAX_TIME:
        raise InvalidError(
            f"{what} must be between {MIN_TIME.date()} and {MAX_TIME.date()}",
            "give a real date, e.g. 2030-01-31",
        )
    return moment


def check_money(amount: Decimal, what: str) -> Decimal:
    """A finite amount of 0 to 10^15 with at most 6 decimal places."""
    if not amount.is_finite() or amount < 0:
        raise InvalidError(f"{what} must be a finite amount of at least 0")
    if amount >= MAX_MONEY:
        raise InvalidError(f"{what} must be below {MAX_MONEY:,.0f}", "e.g. 1.50")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent < -MONEY_PLACES and amount != amount.quantize(Decimal(1).scaleb(-MONEY_PLACES)):
        raise InvalidError(f"{what} has more than {MONEY_PLACES} decimal places")
    return amount


def _text(max_length: int, min_length: int = 0, **field: Any) -> Any:
    return Field(min_length=min_length, max_length=max_length, **field)


# Request fields: the API models and path/query parameters use these types.
SerialText = Annotated[str, _text(SERIAL_LENGTH, 1), AfterValidator(clean)]
ModelText = Annotated[str, _text(MODEL_LENGTH), AfterValidator(clean)]
VersionText = Annotated[str, _text(VERSION_LENGTH), AfterValidator(clean)]
AccountText = Annotated[str, _text(ACCOUNT_LENGTH), AfterValidator(clean)]
TestCodeText = Annotated[str, _text(TEST_CODE_LENGTH), AfterValidator(clean)]
ProviderText = Annotated[str, _text(PROVIDER_LENGTH, 1), AfterValidator(clean)]
TransactionText = Annotated[str, _text(TRANSACTION_LENGTH, 1), AfterValidator(clean)]
KeyNameText = Annotated[str, _text(KEY_NAME_LENGTH, 1), AfterValidator(clean)]
NoteText = Annotated[str, _text(MAX_NOTE), AfterValidator(clean)]
UrlText = Annotated[str, _text(URL_LENGTH, 1), AfterValidator(clean)]
TimeText = Annotated[str, _text(MAX_TIME_TEXT, 1), AfterValidator(clean)]
ShortText = Annotated[str, _text(40), AfterValidator(clean)]
SecretText = Annotated[str, _text(200, 16), AfterValidator(clean)]
HexKeyText = Annotated[str, _text(64), AfterValidator(clean)]
Money = Annotated[
    Decimal, Field(ge=0, lt=MAX_MONEY, max_digits=15 + MONEY_PLACES, decimal_places=MONEY_PLACES)
]
Days = Annotated[Decimal, Field(ge=0, le=MAX_DAYS, max_digits=7 + 6, decimal_places=6)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
