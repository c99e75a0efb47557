"""Encrypted device lists for transport (the spec warns against sending keys in the clear).

AES-256-GCM (authenticated: a wrong password, a wrong key file and any change
to the file are all detected) with a key from a password (scrypt) or from a
32-byte key file.

Container format, version 1 (all integers unsigned, big-endian):

| offset | size | field |
|---|---|---|
| 0 | 8 | magic `PAYGSEAL` |
| 8 | 1 | format version: 1 |
| 9 | 1 | content: 1 = device list CSV, 2 = device list JSON |
| 10 | 1 | key source: 1 = password through scrypt, 2 = key file (the key itself) |
| 11 | 1 | scrypt log2(N) (0 for a key file) |
| 12 | 1 | scrypt r (0 for a key file) |
| 13 | 1 | scrypt p (0 for a key file) |
| 14 | 1 | salt length S (16 for scrypt, 0 for a key file) |
| 15 | S | salt |
| 15+S | 12 | GCM nonce (random) |
| 27+S | rest | ciphertext followed by the 16-byte GCM tag |

The header (bytes 0 to 27+S) is the GCM associated data, so changing any of
it is detected like a change to the ciphertext.  The defaults, scrypt N=2^17,
r=8, p=1 (128 MiB, about a quarter of a second), follow current OWASP advice;
a file asking for more than N=2^20 or 1 GiB is refused before any work.

A key file holds 32 random bytes, raw or as 64 hex characters
(`new_key_file()` writes them raw, readable by the owner only).
"""

from __future__ import annotations

import enum
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from paygkit.factory.devicelist import DeviceListError, DeviceListReport, read_device_list

MAGIC = b"PAYGSEAL"
VERSION = 1
SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
DEFAULT_LOG2_N = 17
DEFAULT_R = 8
DEFAULT_P = 1
MAX_LOG2_N = 20
MAX_SCRYPT_MEMORY = 1 << 30
_FIXED = 15  # header bytes before the salt


class SealError(ValueError):
    """An encrypted list cannot be made or opened; the message says why (no secret in it)."""


class Content(enum.IntEnum):
    CSV = 1
    JSON = 2


class KeySource(enum.IntEnum):
    PASSWORD = 1
    KEY_FILE = 2


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = DEFAULT_LOG2_N
    r: int = DEFAULT_R
    p: int = DEFAULT_P

    def check(self) -> None:
        if not 1 <= self.log2_n <= MAX_LOG2_N or not 1 <= self.r <= 255 or not 1 <= self.p <= 255:
            raise SealError(
                f"scrypt parameters N=2^{self.log2_n} r={self.r} p={self.p} are out of range "
                f"(N up to 2^{MAX_LOG2_N}, r and p 1-255)"
            )
        if 128 * self.r * (1 << self.log2_n) > MAX_SCRYPT_MEMORY:
            raise SealError(
                f"scrypt parameters N=2^{self.log2_n} r={self.r} need more than 1 GiB of memory"
            )


@dataclass(frozen=True)
class Opened:
    """A decrypted container: the plaintext and what it is."""

    data: bytes
    content: Content
    key_source: KeySource

    def __repr__(self) -> str:
        return f"Opened(content={self.content.name}, bytes={len(self.data)})"


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if not password:
        raise SealError("the password is empty; choose a long passphrase")
    kdf = Scrypt(salt=salt, length=KEY_BYTES, n=1 << params.log2_n, r=params.r, p=params.p)
    return kdf.derive(password.encode("utf-8"))


def looks_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(
    data: bytes,
    content: Content,
    *,
    password: str | None = None,
    key: bytes | None = None,
    params: ScryptParams | None = None,
) -> bytes:
    """Encrypt a device list with a password or a 32-byte key (exactly one of them)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if (password is None) == (key is None):
        raise SealError("encrypt with a password or a key file, one of the two")
    if key is not None:
        if len(key) != KEY_BYTES:
            raise SealError(f"the key must be {KEY_BYTES} bytes")
        header = MAGIC + bytes([VERSION, content, KeySource.KEY_FILE, 0, 0, 0, 0])
        secret = key
    else:
        scrypt = params or ScryptParams()
        scrypt.check()
        salt = secrets.token_bytes(SALT_BYTES)
        header = (
            MAGIC
            + bytes(
                [
                    VERSION,
                    content,
                    KeySource.PASSWORD,
                    scrypt.log2_n,
                    scrypt.r,
                    scrypt.p,
                    SALT_BYTES,
                ]
            )
            + salt
        )
        secret = _derive(password or "", salt, scrypt)
    nonce = secrets.token_bytes(NONCE_BYTES)
    header += nonce
    return header + AESGCM(secret).encrypt(nonce, data, header)


def unseal(data: bytes, *, password: str | None = None, key: bytes | None = None) -> Opened:
    """Decrypt a container; SealError says what is wrong (wrong secret, changed, not one)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not data.startswith(MAGIC):
        raise SealError(
            "not a paygkit encrypted device list (the file does not start with PAYGSEAL)"
        )
    if len(data) < _FIXED:
        raise SealError("the encrypted file is truncated")
    version, content_byte, source_byte, log2_n, r, p, salt_length = data[8:_FIXED]
    if version != VERSION:
        raise SealError(
            f"the encrypted file has format version {version}; this paygkit opens version {VERSION}"
        )
    try:
        content = Content(content_byte)
        source = KeySource(source_byte)
    except ValueError:
        raise SealError(
            "the encrypted file's header is damaged (unknown content or key source)"
        ) from None
    nonce_end = _FIXED + salt_length + NONCE_BYTES
    if len(data) < nonce_end + TAG_BYTES:
        raise SealError("the encrypted file is truncated")
    header = data[:nonce_end]
    salt = data[_FIXED : _FIXED + salt_length]
    nonce = data[_FIXED + salt_length : nonce_end]
    if source is KeySource.PASSWORD:
        if password is None:
            raise SealError("this file was encrypted with a password; give the password")
        scrypt = ScryptParams(log2_n, r, p)
        scrypt.check()
        if salt_length != SALT_BYTES:
            raise SealError("the encrypted file's header is damaged (salt length)")
        secret = _derive(password, salt, scrypt)
    else:
        if key is None:
            raise SealError("this file was encrypted with a key file; give the key file")
        if len(key) != KEY_BYTES:
            raise SealError(f"the key must be {KEY_BYTES} bytes")
        secret = key
    try:
        plain = AESGCM(secret).decrypt(nonce, data[nonce_end:], header)
    except InvalidTag:
        what = "password" if source is KeySource.PASSWORD else "key file"
        raise SealError(
            f"cannot decrypt: wrong {what}, or the file was changed or damaged after it was "
            "encrypted (authentication failed); nothing was decrypted"
        ) from None
    return Opened(plain, content, source)


# --- key files ---------------------------------------------------------------------------------


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """A 32-byte key from a file: raw bytes, or 64 hex characters (spaces and line end ignored)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise SealError(f"cannot read the key file {path} ({error.strerror or error})") from None
    if len(data) == KEY_BYTES:
        return data
    try:
        text = data.decode("ascii").strip()
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text)
    except (UnicodeDecodeError, ValueError):
        pass
    raise SealError(
        f"the key file {path} must hold {KEY_BYTES} bytes (or {2 * KEY_BYTES} hex characters); "
        f"it holds {len(data)} bytes. Make one with: paygkit factory new-key-file FILE"
    )


def new_key_file(path: str | os.PathLike[str]) -> None:
    """Write 32 random bytes to a new file, readable by the owner only; never overwrites."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SealError(f"{path} exists; a key file is never overwritten") from None
    except OSError as error:
        raise SealError(f"cannot create the key file {path} ({error.strerror or error})") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(KEY_BYTES))


def open_device_list(
    path: str | os.PathLike[str], *, password: str | None = None, key: bytes | None = None
) -> DeviceListReport:
    """Read a device list file strictly, decrypting it first if it is an encrypted one."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise DeviceListError(
            f"cannot read the device list {path} ({error.strerror or error})"
        ) from None
    if looks_sealed(data):
        if password is None and key is None:
            raise SealError(f"{path} is encrypted; give its password or key file to read it")
        data = unseal(data, password=password, key=key).data
    return read_device_list(data)
