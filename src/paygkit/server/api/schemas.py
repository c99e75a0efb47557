"""The request bodies of the API; every field's bounds come from `services.bounds`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from paygkit.server.services import books, counts, tokens
from paygkit.server.services import bounds as b


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceCreate(_Body):
    serial: b.SerialText
    key: b.HexKeyText = Field(description="32 hex characters; stored encrypted, never shown again")
    # The token parameters are checked by the token layer, with its own messages.
    starting_code: int | None = Field(None, description="derived from the key when absent")
    count: b.Count = 1
    time_divider: int = 1
    restricted_digits: bool = False
    hardware_model: b.ModelText = ""
    version: b.VersionText = ""
    test_code: b.TestCodeText | None = None
    account: b.AccountText | None = None
    decode_window: int = Field(64, ge=1, le=10_000)


class DeviceUpdate(_Body):
    account: b.AccountText | None = None
    hardware_model: b.ModelText | None = None
    decode_window: int | None = Field(None, ge=1, le=10_000)
    price_per_day: b.Money | None = None
    currency: b.ShortText | None = None


class TokenCreate(_Body):
    type: tokens.IssueKind = Field(
        description="add_days, set_days, active_until, disable_payg or counter_sync"
    )
    days: b.Days | None = Field(None, description="add_days / set_days")
    until: b.TimeText | None = Field(
        None, description="active_until: ISO date (end of day) or time"
    )
    reset: bool = Field(
        False, description="counter_sync only: the reset token (count 0), technicians only"
    )
    lock: bool = Field(
        False,
        description="set_days with days 0 only: Set Time 0, which locks the device at once "
        "(admin or technician, audited as token.lock); without it a request that would lock "
        "the device, or give it no time, is refused",
    )
    on_window: tokens.WindowPolicy = Field(
        tokens.WindowPolicy.WARN,
        description="beyond the device's decode window: warn (default) or refuse",
    )


class CountCreate(_Body):
    count: b.Count
    source: counts.CountSource = counts.CountSource.OTHER
    read_at: b.TimeText | None = None
    note: b.NoteText | None = None
    server_behind: bool = Field(
        False,
        description="confirm a count above the last one issued: this server was restored "
        "from a backup and the device really is ahead (technician or admin, audited)",
    )


class CountWithdraw(_Body):
    reason: b.NoteText = Field(description="why the report is withdrawn (audited)")


class PaymentCreate(_Body):
    provider: b.ProviderText
    transaction_id: b.TransactionText
    amount: b.Money
    currency: b.ShortText
    paid_at: b.TimeText | None = Field(None, description="ISO time of the payment; default: now")
    account: b.AccountText | None = None
    serial: b.SerialText | None = None


class PaymentApply(_Body):
    serial: b.SerialText


class TariffSet(_Body):
    price_per_day: b.Money
    currency: b.ShortText


class WebhookSet(_Body):
    url: b.UrlText
    secret: b.SecretText | None = Field(None, description="HMAC secret; generated when absent")


class ApiKeyCreate(_Body):
    role: b.ShortText
    name: b.KeyNameText


class BookCreate(_Body):
    agent_key_id: int = Field(ge=1, le=b.MAX_ID, description="the agent's API key (role agent)")
    serials: list[b.SerialText] = Field(min_length=1, max_length=books.MAX_BOOK_DEVICES)
    steps: int = Field(
        ge=1, le=books.MAX_STEPS, description="counts reserved per device (K), handed out in order"
    )
    menu: list[b.Days] = Field(
        min_length=1,
        max_length=books.MAX_MENU_VALUES,
        description="days per value, one token per value at each step, e.g. [1, 3, 7, 30]",
    )
    value_cap_days: b.Days = Field(
        description="the most the book may be worth, in days: devices x steps x the largest "
        "value must not exceed it (what a lost phone can give away)"
    )
    expires_at: b.TimeText = Field(description=f"within {books.MAX_BOOK_DAYS} days")
    name: b.ModelText = ""


class HandoutIn(_Body):
    id: str = Field(
        min_length=1,
        max_length=books.CLIENT_ID_LENGTH,
        description="the phone's own id of the hand-out (a UUID): a hand-out sent again with "
        "it is recorded once",
    )
    serial: b.SerialText
    count: b.Count
    days: b.Days
    amount: b.Money
    currency: b.ShortText
    handed_out_at: b.TimeText
    reference: str | None = Field(None, max_length=books.REFERENCE_LENGTH)


class BookSync(_Body):
    handouts: list[HandoutIn] = Field(min_length=1, max_length=books.MAX_SYNC_HANDOUTS)


class BookClose(_Body):
    decision: books.CloseDecision | None = Field(
        None,
        description="needed when steps may have been handed out and are not synced: void "
        "(they were not) or handed_out (they may have been; their sync is still taken)",
    )
    reason: b.NoteText | None = None
