"""Device keys at rest: AES-256-GCM under a master key held outside the database.

Each device key is stored as `nonce || ciphertext+tag` with the key version of
the master key that sealed it.  The associated data binds the ciphertext to
its device serial and key version, so a ciphertext copied onto another device
row, or relabelled with another version, fails to open.

The master key lives in a file (mode 0600) or in `PAYGKIT_MASTER_KEY`.  A key
file holds one line per version, `<version>:<64 hex characters>`; the highest
version seals new keys, older ones still open what they sealed.

A keyring read from a file follows that file: `paygkit server rotate-master-key`
adds a version to the file while servers run, and each server picks it up on
its next seal (a `stat` per seal) or when it meets a row of a version it does
not hold.  Versions are only ever added to a running keyring: a version that
vanished from the file may still seal rows of a server that has not seen the
change yet, so dropping it is `rotate-master-key --drop-old`'s job, which
checks the database first.

The database keeps a check value per version (`check_value`), an HMAC of a
fixed label under the key, so a process can tell at start that it holds the
keys of this database, without the database holding anything that opens them.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
MASTER_KEY_BYTES = 32
MASTER_KEY_ENV = "PAYGKIT_MASTER_KEY"
_LINE = re.compile(r"(?:(\d{1,6}):)?([0-9a-fA-F]{64})")
_CHECK_LABEL = b"paygkit-master-key-check\x00"

log = logging.getLogger("paygkit.server")


class MasterKeyError(ValueError):
    """The master key is missing, malformed, or does not open a stored key.

    `public_message` and `fix` are what an HTTP client is told (the message
    itself may name files and serials, meant for the operator's log).
    """

    public_message = "the server cannot open a stored device key; nothing was changed"
    fix = "the operator must check the server's master key (see the server log)"


class KeyVersionUnavailableError(MasterKeyError):
    """A row was sealed with a master key version this process does not hold."""

    public_message = (
        "restart the server: the master key file changed (a stored key uses a master key "
        "version this server process does not hold); nothing was changed"
    )
    fix = "restart the server, or restore the missing version in the master key file"


class Keyring:
    """The master key versions; the highest seals, all of them open.

    `source` is where the keys came from: a file (followed, see the module
    docstring) or None for keys given directly (`PAYGKIT_MASTER_KEY`, tests).
    """

    def __init__(
        self, keys: Mapping[int, bytes], *, source: Path | None = None, origin: str = ""
    ) -> None:
        if not keys:
            raise MasterKeyError("the master keyring is empty")
        self._keys = dict(keys)
        self.source = source
        # Where the keys were looked for, for messages: a path or the variable's name.
        self.origin = origin or (str(source) if source is not None else "the given keys")
        self._seen = self._stamp()
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show key material
        return f"Keyring(versions={sorted(self._keys)})"

    @property
    def keys(self) -> dict[int, bytes]:
        return dict(self._keys)

    @property
    def current_version(self) -> int:
        return max(self._keys)

    # -- following the key file --------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        if self.source is None:
            return None
        try:
            info = self.source.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def refresh(self, *, force: bool = False) -> None:
        """Add the versions the key file gained since it was read."""
        if self.source is None:
            return
        stamp = self._stamp()
        if stamp is None or (stamp == self._seen and not force):
            return
        with self._lock:
            try:
                text = self.source.read_text(encoding="utf-8")
                fresh = Keyring.parse(text, str(self.source)).keys
            except (OSError, MasterKeyError) as error:
                # A live server keeps the keys it holds rather than fail every request.
                log.error("master key file not reloaded: %s", error)
                return
            changed = [v for v, k in fresh.items() if v in self._keys and k != self._keys[v]]
            if changed:
                log.error(
                    "master key file not reloaded: %s gives other keys for version(s) %s "
                    "than this server started with; restart the server to use them",
                    self.source,
                    changed,
                )
                return
            added = sorted(set(fresh) - set(self._keys))
            if added:
                log.info("master key version(s) %s loaded from %s", added, self.source)
            # A new dict, swapped in: other threads may be iterating over the old one.
            self._keys = {**self._keys, **fresh}
            self._seen = stamp

    def _key(self, version: int, what: str) -> bytes:
        key = self._keys.get(version)
        if key is None:
            self.refresh(force=True)
            key = self._keys.get(version)
        if key is None:
            if self.source is None:
                where = f"{self.origin} (restart the server with that version in it)"
            else:
                where = f"{self.origin}, which was re-read (restore that version from a backup)"
            raise KeyVersionUnavailableError(
                f"{what} was sealed with master key version {version}, which this process "
                f"does not hold (it has {sorted(self._keys)}); looked in {where}"
            )
        return key

    def check_value(self, version: int) -> bytes:
        """The check value of a version: HMAC-SHA256 of a fixed label, never the key."""
        mac = crypto_hmac.HMAC(self._key(version, "a check value"), hashes.SHA256())
        mac.update(_CHECK_LABEL + str(version).encode())
        return mac.finalize()

    @staticmethod
    def _aad(serial: str, version: int) -> bytes:
        return b"paygkit-device-key\x00" + serial.encode() + b"\x00" + str(version).encode()

    def seal(self, serial: str, device_key: bytes) -> tuple[bytes, int]:
        """(nonce || ciphertext, key version) of a 16-byte device key."""
        self.refresh()
        version = self.current_version
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys[version]).encrypt(nonce, device_key, self._aad(serial, version))
        return nonce + sealed, version

    def open(self, serial: str, blob: bytes, version: int) -> bytes:
        key = self._key(version, f"the key of {serial}")
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
        self.refresh()
        version = self.current_version
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._keys[version]).encrypt(nonce, data, self._data_aad(purpose, version))
        return version.to_bytes(4, "big") + nonce + sealed

    def open_data(self, purpose: str, blob: bytes) -> bytes:
        """The data of `seal_data`; MasterKeyError when it was sealed otherwise or altered."""
        version = int.from_bytes(blob[:4], "big")
        if version not in self._keys:
            self.refresh(force=True)
        key = self._keys.get(version)
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

    def with_new_version(self, version: int | None = None) -> Keyring:
        """A copy with one more, random version (`version`, default the next one)."""
        keys = self.keys
        keys[version or self.current_version + 1] = secrets.token_bytes(MASTER_KEY_BYTES)
        return Keyring(keys, origin=self.origin)

    def only_current(self) -> Keyring:
        return Keyring({self.current_version: self._keys[self.current_version]}, origin=self.origin)

    def dump(self) -> str:
        lines = ["# paygkit master key: keep it secret and backed up, outside the database."]
        lines += [f"{version}:{key.hex()}" for version, key in sorted(self._keys.items())]
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
        return cls(keys, origin=source)

    @classmethod
    def generate(cls) -> Keyring:
        return cls({1: secrets.token_bytes(MASTER_KEY_BYTES)})


def _write_temporary(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return temporary


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    os.replace(_write_temporary(path, text), path)


def create_private(path: Path, text: str) -> bool:
    """Like write_private, but only when `path` does not exist yet; whether it was written.

    Two `paygkit server run` started at once on an empty database must not
    both create a key and overwrite each other's.
    """
    temporary = _write_temporary(path, text)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        temporary.unlink()
    return True


def load_keyring(path: Path, hex_key: str | None = None) -> Keyring:
    """The keyring from `hex_key` (environment) if given, else from the file (followed)."""
    if hex_key:
        # The environment variable may hold several versions separated by commas.
        return Keyring.parse(hex_key.replace(",", "\n"), MASTER_KEY_ENV)
    if not path.exists():
        raise MasterKeyError(
            f"no master key: {path} does not exist and {MASTER_KEY_ENV} is not set; "
            "run 'paygkit server init' to create one, give the key file with "
            f"--master-key-file or --data-dir, or set {MASTER_KEY_ENV}"
        )
    parsed = Keyring.parse(path.read_text(encoding="utf-8"), str(path))
    return Keyring(parsed.keys, source=path, origin=str(path))


def ensure_keyring(path: Path, hex_key: str | None = None) -> tuple[Keyring, bool]:
    """The keyring, creating the key file (0600) when there is none; (keyring, created).

    Only for an empty database: see `paygkit.server.services.keys`.
    """
    if hex_key or path.exists():
        return load_keyring(path, hex_key), False
    created = create_private(path, Keyring.generate().dump())
    return load_keyring(path), created


def hash_api_key(api_key: str) -> str:
    """SHA-256 of an API key (the keys are 256-bit random, so no slow hash is needed)."""
    import hashlib

    return hashlib.sha256(api_key.encode()).hexdigest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
