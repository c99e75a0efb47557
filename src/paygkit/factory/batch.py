"""Batch provisioning: the parameters of N new devices.

Each device gets a 16-byte key and a 9-digit starting code from the operating
system's CSPRNG (`secrets`), a starting count, and a serial number: a brand
prefix plus zero-padded digits continuing from the last serial issued for
that prefix.

Serial numbers.  The last number issued per prefix is kept in a small JSON
state file (`SerialRegistry`).  A batch locks the file, reserves its whole
range and writes the new last number (atomically) *before* any device is
made, so two batches never share a serial, even when run at the same time; a
batch that fails afterwards leaves a gap, never an overlap.  The number of
digits is fixed per prefix by the first batch ("one format everywhere").

Starting codes are drawn from 100000000..999999999: nine digits with no
leading zero, so a spreadsheet cannot drop one (0.15 bits of the 29.9 are
given up for it).

Test code.  A batch may share one test code (SPEC 4).  A device compares
typed digits with its test code *before* decoding them as a token, so a test
code that equals one of the device's tokens would swallow that token.  The
test code "collides" with a device when some count from 0 up to the device's
starting count + `test_code_counts` has a token, of any value, equal to it:

- A test code whose length is not a token length of the device (standard
  keypad: 9 or 12 digits; restricted: 15 or 20) can never collide; nothing is
  checked.  `--test-code auto` makes such a code (8 digits).
- Otherwise each device's chain is searched with the token backend's `find`
  (one pass over the counts, all values at once, as a device decodes).  A
  device whose fresh parameters collide gets new ones (a new starting code,
  and a new key unless the key is shared) until none does, so the CSV never
  holds a colliding device.  About one device in 1000 is redrawn with the
  default 1000 counts.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from paygkit.device.serial_number import SERIAL_MAX_LENGTH, SERIAL_RULE, is_serial_number
from paygkit.factory.devicelist import DeviceRecord, bad_test_code
from paygkit.token import (
    MAX_COUNT,
    ChainBackend,
    TokenFormatError,
    default_backend,
    parse_token,
)

try:  # POSIX only; elsewhere the state file is not locked.
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_DIGITS = 8
DEFAULT_TEST_CODE_COUNTS = 1000
MAX_BATCH = 10_000_000
AUTO_TEST_CODE_DIGITS = 8
STATE_FORMAT = "paygkit-serials"
STATE_VERSION = 1
_MAX_REDRAWS = 1000
_STANDARD_MODULUS = 1000
_EXTENDED_MODULUS = 1_000_000


class BatchError(ValueError):
    """A batch cannot be made as asked; the message says why and what to change."""


class CountStart(enum.Enum):
    ONE = "1"
    RANDOM = "random"  # 1-10, so that a device's count does not tell its age


class RandomSource(Protocol):
    """Where the secrets come from (tests pass a predictable one)."""

    def key(self) -> bytes: ...

    def below(self, limit: int) -> int: ...


class SecretsSource:
    """The operating system's CSPRNG, through `secrets`."""

    def key(self) -> bytes:
        return secrets.token_bytes(16)

    def below(self, limit: int) -> int:
        return secrets.randbelow(limit)


@dataclass(frozen=True)
class BatchSpec:
    """What to make: how many devices, how their serials look, their settings."""

    quantity: int
    prefix: str
    digits: int = DEFAULT_DIGITS
    count_start: CountStart = CountStart.ONE
    time_divider: int = 1
    restricted: bool = False
    hardware_model: str = ""
    version: str = ""
    test_code: str | None = None
    shared_key: bool = False
    test_code_counts: int = DEFAULT_TEST_CODE_COUNTS

    def check(self) -> None:
        if isinstance(self.quantity, bool) or not 1 <= self.quantity <= MAX_BATCH:
            raise BatchError(f"the number of devices must be from 1 to {MAX_BATCH:,}")
        # A prefix is good when the serials it starts are: try it with one digit.
        if not is_serial_number(self.prefix + "0"):
            raise BatchError(
                "the serial prefix must make serial numbers of "
                + SERIAL_RULE.replace("(e.g. SLT220000001)", "(e.g. prefix SLT22)")
            )
        if not 1 <= self.digits <= 18:
            raise BatchError("the serial number's digits must be from 1 to 18")
        if len(self.prefix) + self.digits > SERIAL_MAX_LENGTH:
            raise BatchError(
                f"prefix + digits make serials of {len(self.prefix) + self.digits} characters; "
                f"a device stores at most {SERIAL_MAX_LENGTH}"
            )
        if not 1 <= self.time_divider <= 255:
            raise BatchError("the time divider must be from 1 to 255")
        if self.test_code is not None:
            problem = bad_test_code(self.test_code, self.restricted)
            if problem is not None:
                raise BatchError(problem)
        if not 0 <= self.test_code_counts <= 100_000:
            raise BatchError("the counts checked against the test code must be 0 to 100000")


@dataclass(frozen=True)
class Batch:
    """The devices made, and what the operator must know about them."""

    records: tuple[DeviceRecord, ...]
    first_number: int
    warnings: tuple[str, ...] = ()
    test_code_note: str = ""
    redrawn: int = 0  # devices given new parameters because the test code collided

    @property
    def first_serial(self) -> str:
        return self.records[0].serial

    @property
    def last_serial(self) -> str:
        return self.records[-1].serial

    def description(self) -> dict[str, Any]:
        """What the JSON output says about the batch (no key)."""
        first = self.records[0]
        return {
            "devices": len(self.records),
            "first_serial": self.first_serial,
            "last_serial": self.last_serial,
            "time_divider": first.time_divider,
            "restricted_digit_mode": int(first.restricted),
            "hardware_model": first.hardware_model,
            "version": first.version,
            "shared_key": len({r.key for r in self.records}) == 1 and len(self.records) > 1,
            "test_code_check": self.test_code_note or None,
            "made": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


# --- serial numbers ----------------------------------------------------------------------------


def format_serial(prefix: str, number: int, digits: int) -> str:
    return f"{prefix}{number:0{digits}d}"


class SerialRegistry:
    """The last serial number issued per prefix, in a JSON file shared by every batch.

    `reserve()` holds an exclusive lock on `<file>.lock` while it reads the file
    and writes the new last number, so concurrent batches take turns.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise BatchError(
                f"cannot lock the serial state file {self.path} ({error.strerror or error})"
            ) from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _load(self) -> dict[str, Any]:
        fix = f"restore {self.path} from a backup; never delete it (serials would repeat)"
        if not self.path.exists():
            return {"format": STATE_FORMAT, "version": STATE_VERSION, "prefixes": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BatchError(f"cannot read the serial state file: {error}; {fix}") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise BatchError(f"{self.path} is not a paygkit serial state file; {fix}")
        if data.get("version") != STATE_VERSION:
            raise BatchError(f"{self.path} has version {data.get('version')!r}; {fix}")
        prefixes = data.get("prefixes")
        if not isinstance(prefixes, dict):
            raise BatchError(f"{self.path}: 'prefixes' must be an object; {fix}")
        for prefix, entry in prefixes.items():
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("last"), int)
                or not isinstance(entry.get("digits"), int)
            ):
                raise BatchError(f"{self.path}: the entry of prefix {prefix!r} is damaged; {fix}")
        return data

    def last(self, prefix: str) -> tuple[int, int] | None:
        """(last number issued, digits) for a prefix, or None if none was issued."""
        entry = self._load()["prefixes"].get(prefix)
        return None if entry is None else (entry["last"], entry["digits"])

    def reserve(self, prefix: str, digits: int, quantity: int, first: int | None = None) -> int:
        """Reserve `quantity` numbers for `prefix`; returns the first.  `first` jumps ahead."""
        with self._locked():
            data = self._load()
            entry = data["prefixes"].get(prefix)
            last = 0 if entry is None else entry["last"]
            if entry is not None and entry["digits"] != digits:
                raise BatchError(
                    f"serials with prefix {prefix} have {entry['digits']} digits (state file "
                    f"{self.path}); use --digits {entry['digits']} so every serial has one format"
                )
            start = last + 1 if first is None else first
            if start <= last:
                raise BatchError(
                    f"serial {format_serial(prefix, start, digits)} was issued already: the last "
                    f"serial with prefix {prefix} is {format_serial(prefix, last, digits)}; "
                    f"start at {last + 1} or later"
                )
            end = start + quantity - 1
            _check_fits(prefix, end, digits)
            data["prefixes"][prefix] = {
                "last": end,
                "digits": digits,
                "updated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            _write_atomically(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
            return start


def _check_fits(prefix: str, end: int, digits: int) -> None:
    if end >= 10**digits:
        raise BatchError(
            f"the serials would run past {format_serial(prefix, 10**digits - 1, digits)}; "
            "use a new prefix or more digits"
        )


def _write_atomically(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --- the test code -----------------------------------------------------------------------------


def can_collide(test_code: str, restricted: bool) -> bool:
    """False when the code's length is not a token length of such a device (no check needed)."""
    try:
        parse_token(test_code, restricted=restricted)
    except TokenFormatError:
        return False
    return True


def collisions_with_test_code(
    record: DeviceRecord,
    test_code: str,
    *,
    counts: int = DEFAULT_TEST_CODE_COUNTS,
    backend: ChainBackend | None = None,
) -> list[int]:
    """The counts (0 .. record.count + counts) at which a token of this device equals the code.

    Any value counts, even a reserved one: the test is whether a device would
    read these digits as one of its tokens.  Empty for a code of a length that
    is not a token length of the device.
    """
    try:
        parsed = parse_token(test_code, restricted=record.restricted)
    except TokenFormatError:
        return []
    chain = backend or default_backend()
    modulus = _EXTENDED_MODULUS if parsed.extended else _STANDARD_MODULUS
    code = record.starting_code
    start = code - code % modulus + parsed.value % modulus
    find = chain.ext_find if parsed.extended else chain.std_find
    return list(find(record.key, start, parsed.value // modulus, record.count + counts))


def auto_test_code(restricted: bool, rng: RandomSource | None = None) -> str:
    """A random test code that is not a token length (8 digits), so it can never collide."""
    source = rng or SecretsSource()
    alphabet = "1234" if restricted else "123456789"
    return "".join(alphabet[source.below(len(alphabet))] for _ in range(AUTO_TEST_CODE_DIGITS))


# --- making a batch ----------------------------------------------------------------------------


def _starting_code(rng: RandomSource) -> int:
    return 100_000_000 + rng.below(900_000_000)


def make_batch(
    spec: BatchSpec,
    *,
    state_file: str | os.PathLike[str] | None = None,
    first_number: int | None = None,
    rng: RandomSource | None = None,
    backend: ChainBackend | None = None,
    progress: Callable[[int], None] | None = None,
) -> Batch:
    """Make the parameters of `spec.quantity` devices.

    With a `state_file` the serials continue from the last one issued (or
    start at `first_number`, which must be higher); without one they start at
    `first_number` or 1 and a warning says they are not recorded.
    `progress(done)` is called now and then with the number of devices made.
    """
    spec.check()
    source = rng or SecretsSource()
    chain = backend or default_backend()
    warnings: list[str] = []
    if first_number is not None and first_number < 0:
        raise BatchError("the first serial number must not be negative")
    if state_file is not None:
        first = SerialRegistry(state_file).reserve(
            spec.prefix, spec.digits, spec.quantity, first_number
        )
    else:
        first = 1 if first_number is None else first_number
        _check_fits(spec.prefix, first + spec.quantity - 1, spec.digits)
        warnings.append(
            "no serial state file: serial numbers start at "
            f"{format_serial(spec.prefix, first, spec.digits)} and are not recorded; use "
            "--state-file so that batches never overlap"
        )
    shared = source.key() if spec.shared_key else None
    if shared is not None:
        warnings.append(
            "one key for the whole batch: whoever learns the key of one device can make "
            "tokens for all of them; prefer one key per device"
        )
    check_code = spec.test_code is not None and can_collide(spec.test_code, spec.restricted)
    note = ""
    if spec.test_code is not None:
        if check_code:
            note = (
                f"checked against every token of counts 0 to count+{spec.test_code_counts} "
                "of each device"
            )
        else:
            note = (
                f"a code of {len(spec.test_code)} digits is not a token length, so it cannot "
                "collide with a token"
            )
    records: list[DeviceRecord] = []
    redrawn = 0
    for index in range(spec.quantity):
        count = 1 if spec.count_start is CountStart.ONE else 1 + source.below(10)
        serial = format_serial(spec.prefix, first + index, spec.digits)
        for attempt in range(_MAX_REDRAWS):
            record = DeviceRecord(
                serial=serial,
                starting_code=_starting_code(source),
                key=shared if shared is not None else source.key(),
                count=min(count, MAX_COUNT),
                time_divider=spec.time_divider,
                restricted=spec.restricted,
                hardware_model=spec.hardware_model,
                version=spec.version,
                test_code=spec.test_code,
            )
            if not check_code or not collisions_with_test_code(
                record, spec.test_code or "", counts=spec.test_code_counts, backend=chain
            ):
                break
            redrawn += attempt == 0
        else:  # pragma: no cover - would take a broken random source
            raise BatchError(
                f"no parameters for {serial} avoid the test code after {_MAX_REDRAWS} draws; "
                "choose another test code"
            )
        records.append(record)
        if progress is not None and (index + 1) % 1000 == 0:
            progress(index + 1)
    if progress is not None:
        progress(spec.quantity)
    return Batch(tuple(records), first, tuple(warnings), note, redrawn)
