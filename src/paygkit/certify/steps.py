"""The steps a certification case is made of.

Steps are plain data: the runner (`paygkit.certify.runner`) carries them out
through the device protocol and compares the answers, and the manual sheet
(`paygkit.certify.sheet`) prints the same steps for a person with a keypad.
Each step carries its expectation in machine form and in plain words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from paygkit.token import group_digits

# The wait the reference firmware never exceeds: 512 minutes.
WAIT_CAP_SECONDS = 512 * 60


class Outcome(enum.StrEnum):
    """The outcome word of a protocol RESULT line."""

    APPLIED = "APPLIED"
    ALREADY_USED = "ALREADY_USED"
    INVALID = "INVALID"
    MALFORMED = "MALFORMED"
    BLOCKED = "BLOCKED"


# Not a token of this device, or not a token at all: either answer is a refusal
# that counts as an invalid try (docs/device-protocol.md 4.1).
REFUSED = frozenset({Outcome.INVALID, Outcome.MALFORMED})

WaitRule = Literal["any", "zero", "positive", "doubled"]
Entry = Literal["auto", "token", "keys"]


@dataclass(frozen=True)
class Expect:
    """What the RESULT line of an entry must say.

    `outcomes`: the acceptable outcomes.  `token_type`, `units`, `count`: the
    fields of an APPLIED (or, for `count`, ALREADY_USED) line.  `wait`: for
    INVALID / BLOCKED, the `wait=` field must be 0, above 0, or (`doubled`)
    twice the previous wait the device reported in this case, at most 512
    minutes.  `invalid`: the `invalid=` field (invalid tries in a row).
    `text`: the expectation in plain words.
    """

    outcomes: frozenset[Outcome]
    text: str
    token_type: str | None = None
    units: int | None = None
    count: int | None = None
    wait: WaitRule = "any"
    invalid: int | None = None


@dataclass(frozen=True)
class Enter:
    """Type something on the keypad: a token (between * and #) or an exact key sequence.

    `keys` holds the token's digits, or with `sequence` the keys exactly as
    pressed (`*`, `#` included), sent with KEYS.  `via` forces TOKEN or KEYS
    ("auto": the runner's choice).  `within`: seconds the device may take to
    answer.  `protocol_only`: cannot be typed on the device's own keypad (a
    digit it has no key for), so the manual sheet leaves the step out.
    `setup`: the step brings the device to a known state before the check.
    `snapshot`: read the status first, for a following `Check(unchanged=True)`.
    """

    keys: str
    what: str
    expect: Expect
    sequence: bool = False
    via: Entry = "auto"
    within: float | None = None
    protocol_only: bool = False
    setup: bool = False
    snapshot: bool = False


@dataclass(frozen=True)
class Check:
    """Read the status (`STATUS`, or `#` on the keypad) and compare it.

    `seconds_left`: the activation time left, PAYG on (compared exactly on a
    simulator, within the seconds that passed on a real device).
    `unlimited`: PAYG disabled.  `unchanged`: count, PAYG, activation end and
    used counts as before the last entry.  `blocked`: the waiting period.
    `invalid`: invalid tries in a row.
    """

    text: str
    seconds_left: int | None = None
    unlimited: bool = False
    count: int | None = None
    unchanged: bool = False
    blocked: Literal["any", "zero", "positive"] = "any"
    invalid: int | None = None
    setup: bool = False


@dataclass(frozen=True)
class Wait:
    """Let time pass with the device on: `seconds`, or until the waiting period has ended."""

    text: str
    seconds: int = 0
    until_unblocked: bool = False


@dataclass(frozen=True)
class PowerCycle:
    """Switch the device off, let `off_seconds` pass, switch it on again.

    `rtc_forward`: while the device is off, also move its RTC this many
    seconds forward, as someone with access to the clock chip could.  Only a
    simulator can do that (CLOCK); on a real device the case does not apply.
    """

    text: str
    off_seconds: int = 0
    rtc_forward: int = 0


@dataclass(frozen=True)
class Waiting:
    """Switch the waiting period on or off (simulator, or a certification build of the firmware).

    A device that cannot switch it has it on (the production firmware); the
    step is then a no-op.  `cleanup`: run even when the case failed.
    """

    enabled: bool
    cleanup: bool = False

    @property
    def text(self) -> str:
        state = "on" if self.enabled else "off"
        return f"Waiting period {state} (CONFIG waiting={state})"


Step = Enter | Check | Wait | PowerCycle | Waiting


def needs_time(steps: list[Step]) -> bool:
    return any(isinstance(step, Wait) for step in steps)


def needs_power(steps: list[Step]) -> bool:
    return any(isinstance(step, PowerCycle) for step in steps)


def needs_clock(steps: list[Step]) -> bool:
    """Whether a step moves the device's RTC by itself (only a simulator allows it)."""
    return any(isinstance(step, PowerCycle) and step.rtc_forward for step in steps)


def keys_words(keys: str, *, sequence: bool) -> str:
    """What to press, digits in groups of three: '* 588 224 011 #'."""
    if not sequence:
        return f"* {group_digits(keys)} #"
    out: list[str] = []
    digits = ""
    for key in keys:
        if key.isdigit():
            digits += key
            continue
        if digits:
            out.append(group_digits(digits))
            digits = ""
        out.append(key)
    if digits:
        out.append(group_digits(digits))
    return " ".join(out)


def step_action(step: Step) -> str:
    """What the step does, in plain words (with the keys to press for an entry)."""
    if isinstance(step, Enter):
        return f"Enter {step.what}: {keys_words(step.keys, sequence=step.sequence)}"
    if isinstance(step, Check):
        return "Read the status"
    return step.text


def step_expected(step: Step) -> str:
    """What the device must do, in plain words."""
    if isinstance(step, Enter):
        return step.expect.text
    if isinstance(step, Check):
        return step.text
    if isinstance(step, Wait):
        return "Time passes; the device stays on"
    if isinstance(step, PowerCycle):
        return "The device starts again from what it stored"
    return "The setting is taken"
