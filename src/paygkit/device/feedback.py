"""The product's side of feedback: which LED blinks how often for each kind of feedback.

The firmware core only says what happened, as a `FeedbackKind` and a short
display text; how a device shows it is the product's choice.  This module is
that choice for the reference product, with the LED patterns of the reference
firmware (docs/device-protocol.md, section 4.3).  A product with other LEDs,
a buzzer or a display changes this table, never the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from paygkit.device.ports import Feedback, FeedbackKind, Led


@dataclass(frozen=True, slots=True)
class LedPattern:
    led: Led | None  # None: the LEDs stay dark (the display alone shows it)
    blinks: int


REFERENCE_LED_PATTERNS: Mapping[FeedbackKind, LedPattern] = MappingProxyType(
    {
        FeedbackKind.INVALID: LedPattern(Led.RED, 10),
        FeedbackKind.ALREADY_USED: LedPattern(Led.GREEN, 1),
        FeedbackKind.TIME_CHANGED: LedPattern(Led.GREEN, 2),
        FeedbackKind.COUNTER_SYNCED: LedPattern(Led.GREEN, 3),
        FeedbackKind.PAYG_DISABLED: LedPattern(Led.GREEN, 5),
        FeedbackKind.ENTRY_LOCKED: LedPattern(Led.RED, 1),
        FeedbackKind.TEST_CODE: LedPattern(Led.GREEN, 2),
        FeedbackKind.TAMPER: LedPattern(Led.RED, 3),
        FeedbackKind.KEY_PRESS: LedPattern(None, 0),
    }
)

# '#' answers at a glance whether the appliance may run, so its colour is the
# device's state rather than the kind.
STATUS_ACTIVE = LedPattern(Led.GREEN, 1)
STATUS_INACTIVE = LedPattern(Led.RED, 1)


def reference_feedback(kind: FeedbackKind, text: str, *, active: bool = False) -> Feedback:
    """The signal the reference product gives for `kind` (`active` only matters for STATUS)."""
    if kind is FeedbackKind.STATUS:
        pattern = STATUS_ACTIVE if active else STATUS_INACTIVE
    else:
        pattern = REFERENCE_LED_PATTERNS[kind]
    return Feedback(kind, pattern.led, pattern.blinks, text)
