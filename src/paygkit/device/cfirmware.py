"""The C device library (firmware/lib) as a paygkit firmware: `CFirmware`, the API of `Firmware`.

`CFirmware` runs the library's device logic, the code a product links
(docs/embedded.md), compiled for the host as the extension
`paygkit.device._cfirmware`: tokens are decoded, effects computed, waits,
tamper and the test code handled and the state saved by the C code, on the
same ports as `Firmware` (clock, tick source, `Memory`, feedback sink).  This
class only converts: Python values to the library's arguments, and its
codes back to paygkit's objects, with the texts `Firmware` shows (from
paygkit.device.firmware and keypad, so each text has one home).  Given the
same events, the two give the same outcomes, feedback, status and memory
bytes (tests/device and tests/firmware hold them side by side), so a state
file passes between them either way.

Where C and Python could differ, this class makes them agree:
    * A Python exception raised by the memory or the feedback sink (a power
      cut, a closed file) is raised from the call, as `Firmware` raises it;
      from it on, the C call writes and signals nothing more (see
      _cfirmware.c).  A save that did not read back raises the StorageError
      `Firmware` raises.  After a failure the library reloads what the memory
      holds, which is the state `Firmware` keeps; if even that read fails the
      device stops, and every later call raises StorageError until a new
      CFirmware is built over the memory (a power-on).
    * A memory the library cannot load (a newer layout, values it refuses)
      raises the error paygkit's StateStore gives for it, with its words.
    * Token text is made digits here (`typed_digits`); the library takes
      digits only.  What it refuses as malformed is named as paygkit names it.
    * Settings: the library takes the waiting period on/off, the tamper
      response and the keypad timeout at power-on; the decode windows, the
      waiting period's steps, the tamper tolerances, the test code's limits
      and the reset token are compiled in (firmware/lib/pgk_config.h, set in
      setup.py).  A DeviceConfig that asks for others is refused with
      ValueError; `DeviceConfig(accept_reset_token=True)` runs the workshop
      build, `_cfirmware_workshop`.
    * `backend` is accepted for the same signature; the C code decodes.

Choosing a firmware: `firmware_class("python" | "c")`; None is the
environment variable PAYGKIT_FIRMWARE, else "python".  The simulator and
`paygkit device simulate --firmware` take the same names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from paygkit.device.feedback import reference_feedback
from paygkit.device.firmware import (
    ALREADY_USED_TEXT,
    INVALID_TEXT,
    NOT_PROVISIONED_TEXT,
    Firmware,
    OutcomeKind,
    ProvisioningError,
    Status,
    TokenOutcome,
    applied_text,
    check_config,
    check_provisioning,
    malformed_text,
    refused_text,
    status_text,
    tamper_text,
    test_code_limit_text,
    test_code_text,
    wait_text,
)
from paygkit.device.keypad import (
    MAX_TYPED_DIGITS,
    START_HINT,
    TIMED_OUT_TEXT,
    TOO_MANY_DIGITS_TEXT,
    check_key,
    key_not_used_text,
    typing_text,
)
from paygkit.device.ports import Clock, FeedbackKind, FeedbackSink, Memory, TickSource
from paygkit.device.state import (
    DeviceConfig,
    DeviceState,
    Provisioning,
    TamperFlag,
    TamperResponse,
    WaitingPeriod,
)
from paygkit.device.storage import StateStore, StorageError, decode_record, read_back_error
from paygkit.token import (
    ChainBackend,
    DecodeWindows,
    TokenFormatError,
    TokenType,
    parse_token,
    typed_digits,
)

try:
    from paygkit.device import _cfirmware
except ImportError:  # built without a C compiler: only the Python firmware runs
    _cfirmware = None  # type: ignore[assignment]
try:
    from paygkit.device import _cfirmware_workshop
except ImportError:
    _cfirmware_workshop = None  # type: ignore[assignment]

FIRMWARE_ENV: Final = "PAYGKIT_FIRMWARE"
FIRMWARES: Final = ("python", "c")
DEFAULT_FIRMWARE: Final = "python"


class CFirmwareUnavailableError(RuntimeError):
    """The C firmware was asked for, but its extension is not built."""


def c_firmware_built() -> bool:
    """Whether this paygkit was built with the C device library (both of its builds)."""
    return _cfirmware is not None and _cfirmware_workshop is not None


def _library(accept_reset_token: bool) -> ModuleType:
    library = _cfirmware_workshop if accept_reset_token else _cfirmware
    if library is None:
        name = "_cfirmware_workshop" if accept_reset_token else "_cfirmware"
        raise CFirmwareUnavailableError(
            f"the C firmware (paygkit.device.{name}) is not built: paygkit was installed "
            "without a C compiler. Install gcc and reinstall paygkit (make install), or use "
            "the Python firmware"
        )
    return library


def build_config(library: Any, config: DeviceConfig) -> DeviceConfig:
    """`config` with the settings a build of the library compiles in (the rest are config's)."""
    return dataclasses.replace(
        config,
        windows=DecodeWindows(
            forward=library.WINDOW_FORWARD,
            counter_sync=library.WINDOW_COUNTER_SYNC,
            unordered=library.WINDOW_UNORDERED,
        ),
        waiting_period=WaitingPeriod(
            enabled=config.waiting_period.enabled,
            forgiven=library.WAIT_FORGIVEN,
            base_seconds=library.WAIT_BASE_SECONDS,
            cap_seconds=library.WAIT_CAP_SECONDS,
        ),
        tamper_tolerance_ratio=1 / library.TAMPER_TOLERANCE_DIVISOR,
        tamper_tolerance_seconds=library.TAMPER_TOLERANCE_SECONDS,
        test_code_active_seconds=library.TEST_CODE_ACTIVE_SECONDS,
        test_code_max_uses=library.TEST_CODE_MAX_USES,
        test_code_period_seconds=library.TEST_CODE_PERIOD_SECONDS,
        accept_reset_token=bool(library.ACCEPT_RESET_TOKEN),
    )


def _check_build(library: Any, config: DeviceConfig) -> None:
    built = build_config(library, config)
    if built != config:
        differ = [
            field.name
            for field in dataclasses.fields(DeviceConfig)
            if getattr(built, field.name) != getattr(config, field.name)
        ]
        raise ValueError(
            f"the C firmware has {', '.join(differ)} compiled in (firmware/lib/pgk_config.h) "
            "as the default DeviceConfig has them, and these settings ask for others; only the "
            "waiting period on or off, the tamper response, the keypad timeout and the reset "
            "token can be chosen. Use the Python firmware for other settings"
        )
    if config.keypad_timeout_seconds > 0xFFFF:
        raise ValueError("the C firmware's keypad timeout is at most 65535 seconds")


class _Codes:
    """The library's codes as paygkit's values, looked up by their C names."""

    def __init__(self, library: Any) -> None:
        def named(prefix: str) -> dict[int, str]:
            # Every code of one C enum or #define family, by its name without the prefix.
            return {
                getattr(library, name): name.removeprefix(prefix)
                for name in dir(library)
                if name.startswith(prefix)
            }

        self.outcome = {
            code: OutcomeKind[name]
            for code, name in named("OUTCOME_").items()
            if name in OutcomeKind.__members__
        }
        self.token_type = {
            getattr(library, kind.name): kind
            for kind in (
                TokenType.ADD_TIME,
                TokenType.SET_TIME,
                TokenType.DISABLE_PAYG,
                TokenType.COUNTER_SYNC,
            )
        }
        self.feedback = {code: FeedbackKind[name] for code, name in named("FEEDBACK_").items()}
        self.locked = named("LOCKED_")
        self.status_shown = named("STATUS_SHOWN_")
        self.key_shown = named("KEY_SHOWN_")
        self.storage_ok: int = library.STORAGE_OK
        self.verify_failed: int = library.STORAGE_ERR_VERIFY
        self.outcome_storage_error: int = library.OUTCOME_STORAGE_ERROR
        self.provision_ok: int = library.PROVISION_OK
        self.provision_storage_error: int = library.PROVISION_STORAGE_ERROR
        self.press_token: int = library.PRESS_TOKEN
        self.press_status: int = library.PRESS_STATUS


_CODES: dict[int, _Codes] = {}


def _codes(library: Any) -> _Codes:
    codes = _CODES.get(id(library))
    if codes is None:
        codes = _CODES[id(library)] = _Codes(library)
    return codes


class CFirmware:
    """The C device library running one PAYG device, with the API of `Firmware`.

    Constructing it is powering it on; power off/on is dropping it and
    building a new one over the same memory and RTC, with a restarted tick
    source.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        ticks: TickSource,
        memory: Memory,
        feedback: FeedbackSink | None = None,
        config: DeviceConfig | None = None,
        backend: ChainBackend | None = None,
    ) -> None:
        self._config = config if config is not None else DeviceConfig()
        check_config(self._config)
        library: Any = _library(self._config.accept_reset_token)
        _check_build(library, self._config)
        self._codes = _codes(library)
        self._clock = clock
        self._ticks = ticks
        self._feedback = feedback
        # The size check, and the words for a memory the library cannot load.
        self._store = StateStore(memory)
        self._device = library.Device(memory)
        self._record = b""
        self._state = DeviceState()
        self._key = ""  # the key being pressed, for its feedback's text
        self._entry: tuple[str, TokenFormatError | None] = ("", None)
        self._last_text = ""  # the text of the call's last signal: a token's outcome message
        loaded = self._call(
            self._device.power_on,
            self._config.waiting_period.enabled,
            self._config.tamper_response is TamperResponse.LOCK,
            self._config.keypad_timeout_seconds,
            # A failed load is the memory's to explain, below.
            check_storage=False,
        )
        if loaded != self._codes.storage_ok:
            self._store.load()  # raises paygkit's error for what the memory holds
            raise StorageError(
                f"the C firmware cannot load the device memory (pgk_storage_result {loaded}), "
                "although paygkit's storage reads it"
            )
        if self._device.storage_error:  # saving the tamper flags found at power-on failed
            raise self._storage_error()

    # -- the factory ---------------------------------------------------------------

    def provision(
        self,
        *,
        serial: str,
        starting_code: int,
        key: bytes | str,
        time_divider: int = 1,
        restricted_digits: bool = False,
        test_code: str | None = None,
        count: int = 1,
    ) -> Provisioning:
        """Factory setup: write identity and token parameters over a fresh state.

        Everything is checked before anything is written, so refused data
        leaves the stored state as it was.
        """
        wanted = check_provisioning(
            serial=serial,
            starting_code=starting_code,
            key=key,
            time_divider=time_divider,
            restricted_digits=restricted_digits,
            test_code=test_code,
            count=count,
            windows=self._config.windows,
        )
        self._check_running()
        result = self._call(
            self._device.provision,
            wanted.serial.encode("ascii"),
            wanted.key,
            wanted.starting_code,
            wanted.time_divider,
            wanted.restricted_digits,
            None if wanted.test_code is None else wanted.test_code.encode("ascii"),
            count,
        )
        if result == self._codes.provision_storage_error:
            raise self._storage_error()
        if result != self._codes.provision_ok:
            raise ProvisioningError(
                f"the C firmware refused the factory data (pgk_provision_result {result})"
            )
        provisioning = self._state.provisioning
        assert provisioning is not None
        return provisioning

    @property
    def provisioning(self) -> Provisioning | None:
        return self._state.provisioning

    @property
    def config(self) -> DeviceConfig:
        return self._config

    # -- token entry ---------------------------------------------------------------

    def enter_token(self, text: str) -> TokenOutcome:
        """Enter a whole token (digits; single spaces or dashes between groups are fine)."""
        if not isinstance(text, str):
            raise TypeError(f"a token is entered as text, not {type(text).__name__}")
        self._check_running()
        try:
            digits = typed_digits(text)
            self._entry = (digits, None)
        except TokenFormatError as error:
            # Not digits: the library must count an invalid try, after its own checks,
            # and a letter is what it surely refuses.
            digits = "x"
            self._entry = (text, error)
        # Longer than any token is malformed at any length; the library counts its length
        # in a byte.
        digits = digits[: MAX_TYPED_DIGITS + 1]
        return self._outcome(self._call(self._device.enter_token, digits.encode("ascii")))

    # -- keypad --------------------------------------------------------------------

    def press(self, key: str) -> TokenOutcome | Status | None:
        """One key of the keypad: '*', '#' or a digit.

        Returns the outcome when '#' ends a token, the status when '#' is
        pressed with nothing typed, and None for every other key.
        """
        check_key(key)
        self._check_running()
        self._key = key
        if key == "#":
            self._entry = (self._device.typing.decode("ascii"), None)
        pressed, outcome = self._call(self._device.press, key)
        if pressed == self._codes.press_token:
            assert outcome is not None
            return self._outcome(outcome)
        if pressed == self._codes.press_status:
            return self.status()
        return None

    # -- status and housekeeping ---------------------------------------------------

    def status(self) -> Status:
        """The device's status now.  Only reads: no write, no feedback, no tamper check."""
        (
            now,
            active_until,
            seconds_left,
            count,
            invalid_attempts,
            blocked_seconds,
            provisioned,
            active,
            payg_enabled,
            test_active,
            tamper,
            restricted_digits,
            time_divider,
        ) = self._device.status(self._clock.now(), self._ticks.ticks())
        provisioning = self._state.provisioning
        return Status(
            serial=provisioning.serial if provisioning is not None else None,
            provisioned=bool(provisioned),
            now=now,
            active=bool(active),
            payg_enabled=bool(payg_enabled),
            seconds_left=None if seconds_left < 0 else seconds_left,
            active_until=active_until,
            count=count,
            used_counts=self._state.used_counts,
            invalid_attempts=invalid_attempts,
            blocked_seconds=blocked_seconds,
            tamper=TamperFlag(tamper),
            test_active=bool(test_active),
            typing=self._device.typing.decode("ascii"),
            restricted_digits=bool(restricted_digits),
            time_divider=time_divider,
        )

    def poll(self) -> None:
        """Periodic housekeeping (the firmware's main loop): keypad timeout, tamper check,
        waiting-period checkpoint."""
        self._check_running()
        self._call(self._device.poll)

    # -- internals -----------------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, check_storage: bool = True) -> Any:
        """One library call at this instant; raises what a port raised, or a failed save."""
        self._last_text = ""
        try:
            result = method(self._clock.now(), self._ticks.ticks(), self._signal, *args)
        finally:
            self._reread_state()
        # The library clears storage_error at the start of every call that may save.
        if check_storage and self._device.storage_error != 0:
            raise self._storage_error()
        return result

    def _reread_state(self) -> None:
        # The state in RAM, as the store's record: decoded by paygkit's storage, so that
        # provisioning and used counts come out exactly as Firmware keeps them.
        record = self._device.state_record()
        if record != self._record:
            self._state = decode_record(record)[1]
            self._record = record

    def _check_running(self) -> None:
        if self._device.halted:
            raise StorageError(
                "the C firmware stopped after its memory failed, as a device does rather than "
                "run on a state it cannot read; power it on again (build a new firmware over "
                "the memory)"
            )

    def _storage_error(self) -> StorageError:
        code = self._device.storage_error
        if code == self._codes.verify_failed:
            return read_back_error(self._device.failed_slot)
        return StorageError(f"the device memory failed (pgk_storage_result {code})")

    def _outcome(self, raw: tuple[int, int, int, int, int, int]) -> TokenOutcome:
        kind_code, type_code, _, units, count, wait = raw
        if kind_code == self._codes.outcome_storage_error:
            raise self._storage_error()
        kind = self._codes.outcome[kind_code]
        message = self._last_text
        if kind is OutcomeKind.APPLIED:
            token_type = self._codes.token_type[type_code]
            return TokenOutcome(
                kind,
                token_type=token_type,
                units=units if token_type.carries_value else None,
                count=count,
                message=message,
            )
        if kind is OutcomeKind.ALREADY_USED:
            return TokenOutcome(kind, count=count, message=message)
        if kind in (OutcomeKind.BLOCKED, OutcomeKind.INVALID, OutcomeKind.MALFORMED):
            return TokenOutcome(kind, wait_seconds=wait, message=message)
        return TokenOutcome(kind, message=message)

    def _signal(self, kind_code: int, detail: int, value: int) -> None:
        """The library's pgk_port_feedback: the signal `Firmware` gives for the same event."""
        codes = self._codes
        kind = codes.feedback[kind_code]
        active = False
        if kind is FeedbackKind.INVALID:
            text = refused_text(self._malformed_text() if detail else INVALID_TEXT, value)
        elif kind is FeedbackKind.ALREADY_USED:
            text = ALREADY_USED_TEXT
        elif kind is FeedbackKind.TIME_CHANGED:
            text = applied_text(TokenType.SET_TIME if detail else TokenType.ADD_TIME, value)
        elif kind is FeedbackKind.COUNTER_SYNCED:
            text = applied_text(TokenType.COUNTER_SYNC, 0)
        elif kind is FeedbackKind.PAYG_DISABLED:
            text = applied_text(TokenType.DISABLE_PAYG, 0)
        elif kind is FeedbackKind.ENTRY_LOCKED:
            locked = codes.locked[detail]
            if locked == "WAITING":
                text = wait_text(value)
            elif locked == "TEST_CODE_LIMIT":
                text = test_code_limit_text(value)
            else:
                text = NOT_PROVISIONED_TEXT
        elif kind is FeedbackKind.TEST_CODE:
            text = test_code_text(value)
        elif kind is FeedbackKind.STATUS:
            shown = codes.status_shown[detail]
            active = shown in ("UNLIMITED", "TIME_LEFT", "TEST_MODE")
            text = status_text(
                active=active,
                seconds_left=None if shown == "UNLIMITED" else value,
                provisioned=shown != "NOT_PROVISIONED",
                tamper_locked=shown == "TAMPER_LOCKED",
            )
        elif kind is FeedbackKind.TAMPER:
            text = tamper_text(TamperFlag(value), locked=bool(detail))
        else:
            text = self._key_text(codes.key_shown[detail])
        if kind is not FeedbackKind.KEY_PRESS:
            self._last_text = text
        if self._feedback is not None:
            self._feedback.emit(reference_feedback(kind, text, active=active))

    def _key_text(self, shown: str) -> str:
        if shown == "TYPING":
            return typing_text(self._device.typing.decode("ascii"))
        if shown == "START_HINT":
            return START_HINT
        if shown == "KEY_NOT_USED":
            return key_not_used_text(self._key)
        if shown == "TOO_MANY_DIGITS":
            return TOO_MANY_DIGITS_TEXT
        return TIMED_OUT_TEXT

    def _malformed_text(self) -> str:
        """Why the entry the library refused as malformed is not a token, in paygkit's words."""
        text, error = self._entry
        if error is None:
            provisioning = self._state.provisioning
            restricted = provisioning is not None and provisioning.restricted_digits
            try:
                parse_token(text, restricted=restricted)
            except TokenFormatError as refused:
                error = refused
            else:  # pragma: no cover - the library and parse_token refuse the same entries
                error = TokenFormatError("the C firmware cannot read it")
        return malformed_text(error)

    def __repr__(self) -> str:
        provisioning = self._state.provisioning
        serial = provisioning.serial if provisioning is not None else None
        return f"CFirmware(serial={serial!r})"


# -- choosing a firmware -------------------------------------------------------------


def default_firmware() -> str:
    """The firmware a simulator runs when none is named: $PAYGKIT_FIRMWARE, else python."""
    return os.environ.get(FIRMWARE_ENV) or DEFAULT_FIRMWARE


def firmware_class(name: str | None = None) -> type[Firmware] | type[CFirmware]:
    """The firmware called `name` ("python" or "c"; None: `default_firmware()`).

    CFirmwareUnavailableError when "c" is asked for and its extension is not built.
    """
    chosen = default_firmware() if name is None else name
    if chosen == "python":
        return Firmware
    if chosen == "c":
        _library(False)
        _library(True)
        return CFirmware
    source = f" (from {FIRMWARE_ENV})" if name is None else ""
    raise ValueError(
        f"there is no firmware {chosen!r}{source}: choose one of {', '.join(FIRMWARES)}"
    )
