"""The device under certification: its token parameters and the count it starts at.

They come from options or from a row of the device list (the factory's CSV,
read by `paygkit.factory.devicelist`).  The key is needed to make the tokens
and is never shown: not in a repr, a message, a report or a sheet.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paygkit.token import (
    MAX_COUNT,
    DeviceParams,
    ParameterError,
    TokenError,
    derive_starting_code,
    parse_key,
)

# The serial a blank simulator is set up with when none is given.
DEFAULT_SERIAL = "CERT00000001"
# Entries of the random sequence (case RS1): quick by default; a release run asks for more.
DEFAULT_SEQUENCE_LENGTH = 40
MAX_SEQUENCE_LENGTH = 2000
# Seeds are written in reports and typed back with --seed: keep them short.
SEED_LIMIT = 1_000_000


def new_seed() -> int:
    """A fresh seed for the random sequence; the report shows it so a run can be replayed."""
    return secrets.randbelow(SEED_LIMIT)


class ParamsError(ValueError):
    """The device parameters are missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class CertParams:
    """What the procedure needs to know about the device (everything a device-list row holds).

    `count` is the count the device must be at when the procedure starts: 1
    for a new device, otherwise the Count column of the device list.
    `serial` None means "do not check it" (a blank device is then set up as
    DEFAULT_SERIAL).  `accepts_reset_token` says the firmware is configured
    to take the reset token (Counter Sync at count 0) as the reference does,
    while its count is below 64; paygkit devices refuse it unless set to.

    `seed` and `sequence_length` shape the random sequence (case RS1): the
    same seed gives the same sequence of entries, so a failure can be
    replayed; a new seed is chosen when none is given.
    """

    key: bytes = field(repr=False)
    starting_code: int
    time_divider: int = 1
    restricted: bool = False
    count: int = 1
    serial: str | None = None
    test_code: str | None = None
    accepts_reset_token: bool = False
    seed: int = field(default_factory=new_seed)
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH

    def __post_init__(self) -> None:
        try:
            self.token_params()
        except TokenError as error:
            raise ParamsError(str(error)) from None
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise ParamsError("the starting count must be a whole number")
        if not 0 <= self.count <= MAX_COUNT - 10_000:
            raise ParamsError(
                f"the starting count must be between 0 and {MAX_COUNT - 10_000} (the procedure "
                f"issues a few thousand counts at most), got {self.count}"
            )
        if self.test_code is not None and not self.test_code.isdigit():
            raise ParamsError("the test code must be digits only")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ParamsError("the seed must be a whole number")
        if not 0 <= self.seed < SEED_LIMIT:
            raise ParamsError(f"the seed must be between 0 and {SEED_LIMIT - 1}, got {self.seed}")
        length = self.sequence_length
        if isinstance(length, bool) or not isinstance(length, int):
            raise ParamsError("the sequence length must be a whole number of entries")
        if not 1 <= length <= MAX_SEQUENCE_LENGTH:
            raise ParamsError(
                f"the sequence length must be between 1 and {MAX_SEQUENCE_LENGTH} entries, "
                f"got {length}"
            )

    @classmethod
    def create(
        cls,
        key: str | bytes,
        starting_code: int | None = None,
        *,
        time_divider: int = 1,
        restricted: bool = False,
        count: int = 1,
        serial: str | None = None,
        test_code: str | None = None,
        accepts_reset_token: bool = False,
        seed: int | None = None,
        sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
    ) -> CertParams:
        """Parameters from option values; the starting code is derived from the key if absent,
        the seed chosen afresh if absent."""
        try:
            raw = parse_key(key)
        except ParameterError as error:
            raise ParamsError(str(error)) from None
        return cls(
            key=raw,
            starting_code=derive_starting_code(raw) if starting_code is None else starting_code,
            time_divider=time_divider,
            restricted=restricted,
            count=count,
            serial=serial,
            test_code=test_code or None,
            accepts_reset_token=accepts_reset_token,
            seed=new_seed() if seed is None else seed,
            sequence_length=sequence_length,
        )

    def token_params(self) -> DeviceParams:
        return DeviceParams(
            key=self.key,
            starting_code=self.starting_code,
            time_divider=self.time_divider,
            restricted_digits=self.restricted,
        )

    def public(self) -> dict[str, Any]:
        """What a report may show about the device: no key, no starting code."""
        return {
            "serial": self.serial,
            "time_divider": self.time_divider,
            "restricted_digits": self.restricted,
            "starting_count": self.count,
            "test_code": self.test_code is not None,
            "accepts_reset_token": self.accepts_reset_token,
            "seed": self.seed,
            "sequence_length": self.sequence_length,
        }


def params_from_device_list(
    path: str | os.PathLike[str],
    serial: str,
    *,
    accepts_reset_token: bool = False,
    seed: int | None = None,
    sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
) -> CertParams:
    """The parameters of device `serial` in a device list (CSV or JSON), read strictly."""
    # Imported here: only this function needs the factory's reader.
    from paygkit.factory.devicelist import DeviceListError, read_device_list

    try:
        # A Path, never a str: the reader takes a str with a comma for the CSV text itself.
        report = read_device_list(Path(path))
        report.raise_for_problems()
    except DeviceListError as error:
        raise ParamsError(str(error)) from None
    for record in report.records:
        if record.serial == serial:
            return CertParams(
                key=record.key,
                starting_code=record.starting_code,
                time_divider=record.time_divider,
                restricted=record.restricted,
                count=record.count,
                serial=record.serial,
                test_code=record.test_code,
                accepts_reset_token=accepts_reset_token,
                seed=new_seed() if seed is None else seed,
                sequence_length=sequence_length,
            )
    raise ParamsError(
        f"serial number {serial!r} is not in {os.fspath(path)} ({len(report.records)} devices); "
        "check the Serial Number column"
    )
