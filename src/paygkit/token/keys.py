"""Device keys: how one is written, and how text is kept free of them.

The one home of the key rules: `parse_key` for reading a key, `hide_keys` for
every message, log line or answer that repeats what a person or a host sent
(a key pasted into the wrong field is still the real secret).
"""

from __future__ import annotations

import re

from paygkit.token.errors import ParameterError

KEY_BYTES = 16
HIDDEN = "<hidden>"

_HEX_KEY = re.compile(r"[0-9a-fA-F]{32}")
# A run of 16 or more hex characters with a letter in it: a whole key or most
# of one.  Pure digit runs are left alone, since tokens and counts are digits.
KEY_LIKE = re.compile(r"(?=[0-9]*[a-fA-F])[0-9a-fA-F]{16,}")


def hide_keys(text: str) -> str:
    """`text` with every key-shaped run of hex replaced by `<hidden>`."""
    return KEY_LIKE.sub(HIDDEN, text)


def parse_key(key: str | bytes) -> bytes:
    """A device key from its 32 hex characters (or 16 raw bytes).

    The message of a refused key never repeats the key, since even a mistyped
    key is mostly the real secret.
    """
    if isinstance(key, bytes | bytearray):
        if len(key) != KEY_BYTES:
            raise ParameterError(f"a raw key must be {KEY_BYTES} bytes, got {len(key)} bytes")
        return bytes(key)
    if not isinstance(key, str):
        raise ParameterError(f"the key must be 32 hex characters, not a {type(key).__name__}")
    if _HEX_KEY.fullmatch(key):
        return bytes.fromhex(key)
    if len(key) != 2 * KEY_BYTES:
        raise ParameterError(
            f"the key must be 32 hex characters (16 bytes), got {len(key)} characters; "
            "copy the Key column of the device list in full"
        )
    raise ParameterError(
        "the key must be 32 hex characters (0-9, a-f); it contains other characters"
    )
