"""Device keys at rest: AES-256-GCM under a master key held outside the database.

Each device key is stored as `nonce || ciphertext+tag` with the key version of
the master key that sealed it.  The associated data binds the ciphertext to
its device serial and key version, so a ciphertext copied onto another device
row, or relabelled with another version, fails to open.

The master key lives in a file (mode 0600) or in `PAYGKIT_MASTER_KEY`.  A key
file holds one line per version, `<version>:<64 hex characters>`; the highest
version seals new keys, older ones still open what they sealed until
`paygkit server rotate-master-key` has re-encrypted every device.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
MASTER_KEY_BYTES = 32
_LINE = re.compile(r"(?:(\d{1,6}):)?([0-9a-fA-F]{64})")


class MasterKeyError(ValueError):
    """The master key is missing, malformed, or does not open a stored key."""


@dataclass(frozen=True)
class Keyring:
    """The master key versions; the highest seals, all of them open."""

    keys: dict[int, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise MasterKeyError("the master keyring is empty")

    def __repr__(self) -> str:  # never show key material
        return f"Keyring(versions={sorted(self.keys)})"

    @property
    def current_version(self) -> int:
        return max(self.keys)

    @staticmethod
    def _aad(serial: str, version: int) -> bytes:
        return b"paygkit-device-key\x00" + serial.encode() + b"\x00" + str(version).encode()

    def seal(self, serial: str, device_key: bytes) -> tuple[bytes, int]:
        """(nonce || ciphertext, key version) of a 16-byte device key."""
        version = self.current_version
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[version]).encrypt(nonce, device_key, self._aad(serial, version))
        return nonce + sealed, version

    def open(self, serial: str, blob: bytes, version: int) -> bytes:
        key = self.keys.get(version)
        if key is None:
            raise MasterKeyError(
                f"the key of device {serial} was sealed with master key version {version}, "
                f"which this server does not have (it has {sorted(self.keys)}); "
                "restore that version in the master key file"
            )
        try:
            return AESGCM(key).decrypt(
                bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:]), self._aad(serial, version)
            )
        except InvalidTag:
            raise MasterKeyError(
                f"the stored key of device {serial} does not open with master key version "
                f"{version}: wrong master key, or the database row was altered"
            ) from None

    @staticmethod
    def _data_aad(purpose: str, version: int) -> bytes:
        return b"paygkit-data\x00" + purpose.encode() + b"\x00" + str(version).encode()

    def seal_data(self, purpose: str, data: bytes) -> bytes:
        """`version (4 bytes) || nonce || ciphertext` of any data, bound to `purpose`.

        For data the server hands out and takes back (e.g. a device list held by
        the web console between its dry run and its confirmation).
        """
        version = self.current_version
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[version]).encrypt(nonce, data, self._data_aad(purpose, version))
        return version.to_bytes(4, "big") + nonce + sealed

    def open_data(self, purpose: str, blob: bytes) -> bytes:
        """The data of `seal_data`; MasterKeyError when it was sealed otherwise or altered."""
        version = int.from_bytes(blob[:4], "big")
        key = self.keys.get(version)
        if key is None or len(blob) < 4 + NONCE_BYTES + 16:
            raise MasterKeyError("sealed data from another server or master key version")
        try:
            return AESGCM(key).decrypt(
                bytes(blob[4 : 4 + NONCE_BYTES]),
                bytes(blob[4 + NONCE_BYTES :]),
                self._data_aad(purpose, version),
            )
        except InvalidTag:
            raise MasterKeyError(
                "sealed data that was altered, or sealed for another use"
            ) from None

    def with_new_version(self) -> Keyring:
        keys = dict(self.keys)
        keys[self.current_version + 1] = secrets.token_bytes(MASTER_KEY_BYTES)
        return Keyring(keys)

    def only_current(self) -> Keyring:
        return Keyring({self.current_version: self.keys[self.current_version]})

    def dump(self) -> str:
        lines = ["# paygkit master key: keep it secret and backed up, outside the database."]
        lines += [f"{version}:{key.hex()}" for version, key in sorted(self.keys.items())]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        keys: dict[int, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.fullmatch(line)
            if match is None:
                raise MasterKeyError(
                    f"{source}, line {number}: expected 64 hex characters, optionally after "
                    "'<version>:'"
                )
            version = int(match.group(1) or 1)
            keys[version] = bytes.fromhex(match.group(2))
        if not keys:
            raise MasterKeyError(f"{source} holds no master key")
        return cls(keys)

    @classmethod
    def generate(cls) -> Keyring:
        return cls({1: secrets.token_bytes(MASTER_KEY_BYTES)})


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def load_keyring(path: Path, hex_key: str | None = None) -> Keyring:
    """The keyring from `hex_key` (environment) if given, else from the file."""
    if hex_key:
        # The environment variable may hold several versions separated by commas.
        return Keyring.parse(hex_key.replace(",", "\n"), "PAYGKIT_MASTER_KEY")
    if not path.exists():
        raise MasterKeyError(
            f"no master key: {path} does not exist; run 'paygkit server init' to create one, "
            "or set PAYGKIT_MASTER_KEY"
        )
    return Keyring.parse(path.read_text(encoding="utf-8"), str(path))


def ensure_keyring(path: Path, hex_key: str | None = None) -> tuple[Keyring, bool]:
    """The keyring, creating the key file (0600) when there is none; (keyring, created)."""
    if hex_key or path.exists():
        return load_keyring(path, hex_key), False
    keyring = Keyring.generate()
    write_private(path, keyring.dump())
    return keyring, True


def hash_api_key(api_key: str) -> str:
    """SHA-256 of an API key (the keys are 256-bit random, so no slow hash is needed)."""
    import hashlib

    return hashlib.sha256(api_key.encode()).hexdigest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
