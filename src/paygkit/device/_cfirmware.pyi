"""Types of the C device library built for the host (src/paygkit/device/_cfirmware.c)."""

from collections.abc import Callable

from paygkit.device.ports import Memory

_OnFeedback = Callable[[int, int, int], object] | None
# kind, token type, test code limit, units, count, wait seconds
_Outcome = tuple[int, int, int, int, int, int]
# now, active_until, seconds_left, count, invalid, blocked, provisioned, active, payg,
# test_active, tamper, restricted, divider
_Status = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]

class Device:
    def __init__(self, memory: Memory) -> None: ...
    def power_on(
        self,
        rtc: int,
        uptime: int,
        on_feedback: _OnFeedback,
        waiting: bool,
        lock: bool,
        keypad_timeout: int,
        /,
    ) -> int: ...
    def provision(
        self,
        rtc: int,
        uptime: int,
        on_feedback: _OnFeedback,
        serial: bytes,
        key: bytes,
        starting_code: int,
        divider: int,
        restricted: bool,
        test_code: bytes | None,
        count: int,
        /,
    ) -> int: ...
    def enter_token(
        self, rtc: int, uptime: int, on_feedback: _OnFeedback, digits: bytes, /
    ) -> _Outcome: ...
    def press(
        self, rtc: int, uptime: int, on_feedback: _OnFeedback, key: str, /
    ) -> tuple[int, _Outcome | None]: ...
    def poll(self, rtc: int, uptime: int, on_feedback: _OnFeedback, /) -> None: ...
    def status(self, rtc: int, uptime: int, /) -> _Status: ...
    def state_record(self) -> bytes: ...
    @property
    def typing(self) -> bytes: ...
    @property
    def storage_error(self) -> int: ...
    @property
    def halted(self) -> bool: ...
    @property
    def newest_slot(self) -> int: ...
    @property
    def failed_slot(self) -> int: ...
    @property
    def output(self) -> bool: ...

NV_SIZE: int
MAX_TYPED_DIGITS: int
WITH_RESTRICTED: int
WITH_EXTENDED: int
WINDOW_FORWARD: int
WINDOW_COUNTER_SYNC: int
WINDOW_UNORDERED: int
ACCEPT_RESET_TOKEN: int
WITH_TEST_CODE: int
WITH_TAMPER: int
RTC_32BIT: int
TAMPER_TOLERANCE_DIVISOR: int
TAMPER_TOLERANCE_SECONDS: int
WAIT_FORGIVEN: int
WAIT_BASE_SECONDS: int
WAIT_CAP_SECONDS: int
TEST_CODE_ACTIVE_SECONDS: int
TEST_CODE_MAX_USES: int
TEST_CODE_PERIOD_SECONDS: int
OUTCOME_APPLIED: int
OUTCOME_ALREADY_USED: int
OUTCOME_INVALID: int
OUTCOME_BLOCKED: int
OUTCOME_TEST_CODE: int
OUTCOME_MALFORMED: int
OUTCOME_NOT_PROVISIONED: int
OUTCOME_STORAGE_ERROR: int
ADD_TIME: int
SET_TIME: int
DISABLE_PAYG: int
COUNTER_SYNC: int
FEEDBACK_INVALID: int
FEEDBACK_ALREADY_USED: int
FEEDBACK_TIME_CHANGED: int
FEEDBACK_COUNTER_SYNCED: int
FEEDBACK_PAYG_DISABLED: int
FEEDBACK_ENTRY_LOCKED: int
FEEDBACK_TEST_CODE: int
FEEDBACK_STATUS: int
FEEDBACK_TAMPER: int
FEEDBACK_KEY_PRESS: int
LOCKED_WAITING: int
LOCKED_TEST_CODE_LIMIT: int
LOCKED_NOT_PROVISIONED: int
STATUS_SHOWN_UNLIMITED: int
STATUS_SHOWN_TIME_LEFT: int
STATUS_SHOWN_TEST_MODE: int
STATUS_SHOWN_NOT_PROVISIONED: int
STATUS_SHOWN_TAMPER_LOCKED: int
STATUS_SHOWN_INACTIVE: int
KEY_SHOWN_TYPING: int
KEY_SHOWN_START_HINT: int
KEY_SHOWN_KEY_NOT_USED: int
KEY_SHOWN_TOO_MANY_DIGITS: int
KEY_SHOWN_TIMED_OUT: int
PRESS_KEY: int
PRESS_TOKEN: int
PRESS_STATUS: int
PROVISION_OK: int
PROVISION_STORAGE_ERROR: int
STORAGE_OK: int
STORAGE_ERR_NV: int
STORAGE_ERR_STATE: int
STORAGE_ERR_NEWER_LAYOUT: int
STORAGE_ERR_REFUSED: int
STORAGE_ERR_VERIFY: int
STORAGE_ERR_NOT_LOADED: int
