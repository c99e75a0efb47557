"""The device under certification: its token parameters and the count it starts at.

They come from options or from a row of the device list (the factory's CSV,
read by `paygkit.factory.devicelist`).  The key is needed to make the tokens
and is never shown: not in a repr, a message, a report or a sheet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paygkit.token import DeviceParams, ParameterError, TokenError, parse_key
from paygkit.token.protocol import MAX_COUNT, derive_starting_code

# The serial a blank simulator is set up with when none is given.
DEFAULT_SERIAL = "CERT00000001"


class ParamsError(ValueError):
    """The device parameters are missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class CertParams:
    """What the procedure needs to know about the device (everything a device-list row holds).

    `count` is the count the device must be at when the procedure starts: 1
    for a new device, otherwise the Count column of the device list.
    `serial` None means "do not check it" (a blank device is then set up as
    DEFAULT_SERIAL).  `refuses_reset_token` says the firmware is configured
    to refuse the reset token (Counter Sync at count 0) at any count.
    """

    key: bytes = field(repr=False)
    starting_code: int
    time_divider: int = 1
    restricted: bool = False
    count: int = 1
    serial: str | None = None
    test_code: str | None = None
    refuses_reset_token: bool = False

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
        refuses_reset_token: bool = False,
    ) -> CertParams:
        """Parameters from option values; the starting code is derived from the key if absent."""
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
            refuses_reset_token=refuses_reset_token,
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
            "refuses_reset_token": self.refuses_reset_token,
        }


def params_from_device_list(
    path: str | os.PathLike[str], serial: str, *, refuses_reset_token: bool = False
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
                refuses_reset_token=refuses_reset_token,
            )
    raise ParamsError(
        f"serial number {serial!r} is not in {os.fspath(path)} ({len(report.records)} devices); "
        "check the Serial Number column"
    )
