"""What can go wrong on the host side of the device protocol."""

from __future__ import annotations


class LinkError(Exception):
    """The link failed: could not open, timed out, closed, or a garbled answer.

    The message names the target and what to check.
    """


class LinkTimeoutError(LinkError):
    """The device did not answer (completely) within the timeout."""


class DeviceError(Exception):
    """The device answered `ERR <code> <text>`."""

    def __init__(self, code: str, text: str, *, target: str = "", command: str = "") -> None:
        where = f"{target}: " if target else ""
        what = f"{command} refused: " if command else ""
        super().__init__(f"{where}{what}{code} {text}".strip())
        self.code = code
        self.text = text
