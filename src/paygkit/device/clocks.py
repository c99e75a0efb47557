"""Clock, tick source and feedback adapters for tests and the simulator.

`ManualClock` and `ManualTicks` only move when told to, so a test or a
simulator decides exactly how much time passes, and can make the two
disagree (a stopped, slowed or sped-up RTC).  Normal time passing must
advance both; a power cycle restarts the tick source but not the RTC,
which runs on its backup battery.  The simulator runs on these too, never on
the host's clock, so that every run can be replayed.
"""

from __future__ import annotations

from paygkit.device.ports import Feedback


def _check_seconds(name: str, value: object, *, allow_negative: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number of seconds, not {type(value).__name__}")
    if value < 0 and not allow_negative:
        raise ValueError(
            f"{name} must not be negative, got {value}; to move a clock back, use set()"
        )
    return value


class ManualClock:
    """An RTC that moves only when told to."""

    def __init__(self, start: int = 0) -> None:
        self._now = _check_seconds("start", start, allow_negative=True)

    def now(self) -> int:
        return self._now

    def advance(self, seconds: int) -> None:
        self._now += _check_seconds("seconds", seconds)

    def set(self, t: int) -> None:
        """Set the RTC to any time, also backwards (as a tamperer or a dead battery would)."""
        self._now = _check_seconds("t", t, allow_negative=True)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now})"


class ManualTicks:
    """A tick source (seconds since power-on) that moves only when told to."""

    def __init__(self) -> None:
        self._ticks = 0

    def ticks(self) -> int:
        return self._ticks

    def advance(self, seconds: int) -> None:
        self._ticks += _check_seconds("seconds", seconds)

    def restart(self) -> None:
        """Back to 0, as at power-on."""
        self._ticks = 0

    def __repr__(self) -> str:
        return f"ManualTicks(ticks={self._ticks})"


class RecordingFeedback:
    """A feedback sink that keeps every event, for tests and simulators."""

    def __init__(self) -> None:
        self.events: list[Feedback] = []

    def emit(self, feedback: Feedback) -> None:
        self.events.append(feedback)

    def clear(self) -> None:
        self.events.clear()

    @property
    def last(self) -> Feedback | None:
        return self.events[-1] if self.events else None
