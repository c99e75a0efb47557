"""Encrypted device lists: round trips, wrong secrets, tampering, and the container layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from paygkit.factory.devicelist import DeviceRecord, device_list_csv, device_list_json
from paygkit.factory.sealed import (
    MAGIC,
    Content,
    KeySource,
    ScryptParams,
    SealError,
    new_key_file,
    open_device_list,
    read_key_file,
    seal,
    unseal,
)

pytestmark = pytest.mark.one_firmware("sealed device lists: no device runs")

FAST = ScryptParams(log2_n=10, r=8, p=1)  # the format allows any; tests need speed
KEY_HEX = "bc41ec9530f6dac86b1a29ab82edc5fb"
RECORDS = [DeviceRecord(f"S{i}", 100_000_000 + i, bytes.fromhex(KEY_HEX)) for i in range(3)]
PLAIN = device_list_csv(RECORDS).encode()
FILE_KEY = bytes(range(32))


def test_password_round_trip_and_layout() -> None:
    sealed = seal(PLAIN, Content.CSV, password="correct horse", params=FAST)
    # The documented layout: magic, version, content, key source, scrypt N r p, salt, nonce.
    assert sealed[:8] == MAGIC
    assert list(sealed[8:15]) == [1, Content.CSV, KeySource.PASSWORD, 10, 8, 1, 16]
    assert len(sealed) == 15 + 16 + 12 + len(PLAIN) + 16
    assert KEY_HEX.encode() not in sealed
    assert PLAIN[:20] not in sealed
    opened = unseal(sealed, password="correct horse")
    assert (opened.data, opened.content, opened.key_source) == (
        PLAIN,
        Content.CSV,
        KeySource.PASSWORD,
    )
    assert KEY_HEX not in repr(opened)
    # Salt and nonce are fresh each time.
    assert seal(PLAIN, Content.CSV, password="correct horse", params=FAST) != sealed


def test_key_file_round_trip() -> None:
    data = device_list_json(RECORDS).encode()
    sealed = seal(data, Content.JSON, key=FILE_KEY)
    assert list(sealed[8:15]) == [1, Content.JSON, KeySource.KEY_FILE, 0, 0, 0, 0]
    assert len(sealed) == 15 + 12 + len(data) + 16
    assert unseal(sealed, key=FILE_KEY).data == data


def test_default_parameters_are_strong() -> None:
    sealed = seal(b"x", Content.CSV, password="pw")
    assert list(sealed[11:14]) == [17, 8, 1]
    assert unseal(sealed, password="pw").data == b"x"


def test_wrong_password_or_key() -> None:
    sealed = seal(PLAIN, Content.CSV, password="right", params=FAST)
    with pytest.raises(SealError, match="wrong password, or the file was changed"):
        unseal(sealed, password="wrong")
    with pytest.raises(SealError, match="encrypted with a password"):
        unseal(sealed, key=FILE_KEY)
    keyed = seal(PLAIN, Content.CSV, key=FILE_KEY)
    with pytest.raises(SealError, match="wrong key file"):
        unseal(keyed, key=bytes(32))
    with pytest.raises(SealError, match="encrypted with a key file"):
        unseal(keyed, password="right")


@pytest.mark.parametrize("source", ["password", "key"])
def test_any_changed_byte_is_detected(source: str) -> None:
    if source == "password":
        sealed = seal(PLAIN, Content.CSV, password="pw", params=FAST)
        secret: dict[str, object] = {"password": "pw"}
    else:
        sealed = seal(PLAIN, Content.CSV, key=FILE_KEY)
        secret = {"key": FILE_KEY}
    for position in range(8, len(sealed)):
        changed = bytearray(sealed)
        changed[position] ^= 0x01
        with pytest.raises(SealError):
            unseal(bytes(changed), **secret)  # type: ignore[arg-type]
    with pytest.raises(SealError, match=r"truncated|changed"):
        unseal(sealed[:-1], **secret)  # type: ignore[arg-type]
    with pytest.raises(SealError, match="changed"):
        unseal(sealed + b"\x00", **secret)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Serial Number,...", "not a paygkit encrypted"),
        (MAGIC + b"\x01", "truncated"),
        (MAGIC + bytes([2, 1, 1, 10, 8, 1, 16]) + bytes(60), "format version 2"),
        (MAGIC + bytes([1, 9, 1, 10, 8, 1, 16]) + bytes(60), "damaged"),
        (MAGIC + bytes([1, 1, 1, 30, 8, 1, 16]) + bytes(60), "out of range"),
        (MAGIC + bytes([1, 1, 1, 20, 16, 1, 16]) + bytes(60), "1 GiB"),
    ],
)
def test_not_a_container_or_a_hostile_header(data: bytes, message: str) -> None:
    with pytest.raises(SealError, match=message):
        unseal(data, password="pw")


def test_seal_needs_exactly_one_secret() -> None:
    with pytest.raises(SealError, match="one of the two"):
        seal(b"x", Content.CSV)
    with pytest.raises(SealError, match="one of the two"):
        seal(b"x", Content.CSV, password="a", key=FILE_KEY)
    with pytest.raises(SealError, match="32 bytes"):
        seal(b"x", Content.CSV, key=b"short")
    with pytest.raises(SealError, match="empty"):
        seal(b"x", Content.CSV, password="", params=FAST)


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "transport.key"
    new_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    key = read_key_file(path)
    assert len(key) == 32
    with pytest.raises(SealError, match="never overwritten"):
        new_key_file(path)
    assert read_key_file(path) == key
    as_hex = tmp_path / "hex.key"
    as_hex.write_text(FILE_KEY.hex() + "\n")
    assert read_key_file(as_hex) == FILE_KEY
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"too short")
    with pytest.raises(SealError, match="must hold 32 bytes"):
        read_key_file(bad)
    with pytest.raises(SealError, match="cannot read"):
        read_key_file(tmp_path / "missing.key")


def test_open_device_list_reads_plain_and_encrypted(tmp_path: Path) -> None:
    plain = tmp_path / "list.csv"
    plain.write_bytes(PLAIN)
    assert open_device_list(plain).records == tuple(RECORDS)
    sealed = tmp_path / "list.csv.enc"
    sealed.write_bytes(seal(PLAIN, Content.CSV, key=FILE_KEY))
    assert open_device_list(sealed, key=FILE_KEY).records == tuple(RECORDS)
    with pytest.raises(SealError, match="is encrypted"):
        open_device_list(sealed)
