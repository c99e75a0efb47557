"""The certification procedure of SPEC section 6, driven only through device protocol lines.

The simulator is set up and configured by protocol commands (the reference
setup line `#serial;code;key`, `CONFIG waiting=off`), tokens are made by
`paygkit.token.generate` as a server would, and every check reads the
device's answers (RESULT and STATUS lines): nothing here touches the device
object.  The procedure runs for a standard device, a restricted-digit device
(tokens typed on keys 1-4) and a device with a time divider.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from paygkit.device.interpreter import CommandInterpreter
from paygkit.device.memory import RamMemory
from paygkit.device.simulator import SimulatedDevice
from paygkit.token import DeviceParams, GeneratedToken, TokenType, decode, format_token, generate
from tests.device.protocol_host import KEY_HEX, SERIAL, STARTING_CODE, Host, Line

DAY = 86_400
HOUR = 3600


@dataclass(frozen=True)
class Variant:
    name: str
    divider: int = 1
    restricted: bool = False
    by_keypad: bool = False  # type tokens key by key instead of TOKEN lines


VARIANTS = [
    Variant("standard"),
    Variant("standard keypad", by_keypad=True),
    Variant("restricted digits", restricted=True, by_keypad=True),
    Variant("time divider 4", divider=4),
]


class Rig:
    """A certification station: a server that makes tokens, a host that talks to the device."""

    def __init__(self, variant: Variant, *, waiting: bool = False) -> None:
        self.variant = variant
        self.params = DeviceParams.create(
            KEY_HEX,
            STARTING_CODE,
            time_divider=variant.divider,
            restricted_digits=variant.restricted,
        )
        self.host = Host.over(CommandInterpreter(SimulatedDevice(RamMemory())))
        self.count = 1  # the server's count for the device
        if variant.divider == 1 and not variant.restricted:
            answer = self.host.send(f"#{SERIAL};{STARTING_CODE:09d};{KEY_HEX}")
            assert answer[:3] == [
                f"SN:{SERIAL}",
                f"SC:{STARTING_CODE:09d}",
                f"SK:{KEY_HEX.upper()}",
            ]
        else:
            answer = self.host.send(
                f"SETUP serial={SERIAL} code={STARTING_CODE} key={KEY_HEX} "
                f"divider={variant.divider} restricted={int(variant.restricted)}"
            )
            assert answer[3] == (
                f"SETUP divider={variant.divider} restricted={int(variant.restricted)} "
                "test=- count=1"
            )
        assert answer[-1] == "OK SETUP"
        if not waiting:
            assert self.host.ok("CONFIG waiting=off")[0].startswith("CONFIG waiting=off ")

    # -- the server -----------------------------------------------------------------------

    def make(
        self,
        token_type: TokenType = TokenType.ADD_TIME,
        days: int | None = None,
        *,
        count: int | None = None,
    ) -> GeneratedToken:
        """The next token (or one made at `count`), as the server makes it."""
        units = None if days is None else days * self.variant.divider
        token = generate(
            self.params,
            count=self.count if count is None else count,
            token_type=token_type,
            units=units,
        )
        self.count = max(self.count, token.count)
        return token

    def add(self, days: int) -> GeneratedToken:
        return self.make(TokenType.ADD_TIME, days)

    def set(self, days: int) -> GeneratedToken:
        return self.make(TokenType.SET_TIME, days)

    def disable(self) -> GeneratedToken:
        return self.make(TokenType.DISABLE_PAYG)

    # -- the device -----------------------------------------------------------------------

    def enter(self, token: GeneratedToken | str) -> Line:
        digits = token if isinstance(token, str) else token.digits
        if self.variant.by_keypad:
            answer = self.host.keys(f"*{digits}#")
            results = [line for line in answer if line.tag == "RESULT"]
            assert len(results) == 1, answer
            return results[0]
        return self.host.token(digits)

    def applied(self, token: GeneratedToken, token_type: str) -> Line:
        result = self.enter(token)
        assert result.words == ("APPLIED",), (token, result)
        assert result["type"] == token_type
        assert result.int("count") == token.count
        if token.units is not None:
            assert result.int("units") == token.units
        return result

    def refused_as_used(self, token: GeneratedToken) -> None:
        result = self.enter(token)
        assert result.words == ("ALREADY_USED",), (token, result)
        assert result.int("count") == token.count

    def status(self) -> Line:
        return self.host.status()

    def days_left(self) -> float:
        status = self.status()
        assert status["payg"] == "on"
        return status.int("seconds_left") / DAY

    def assert_days_left(self, days: float) -> None:
        status = self.status()
        assert status["payg"] == "on"
        assert status.int("seconds_left") == round(days * DAY), self.host.transcript[-6:]
        assert status["active"] == ("1" if days > 0 else "0")

    def assert_unlimited(self) -> None:
        status = self.status()
        assert (status["payg"], status["seconds_left"], status["active"]) == (
            "off",
            "unlimited",
            "1",
        )


def _an_invalid_token(params: DeviceParams) -> str:
    """A token of the device's form that no count in the device's search window matches."""
    for value in range(123_456_789, 999_999_999, 7_654_321):
        candidate = format_token(value, extended=False, restricted=params.restricted_digits)
        if decode(params, candidate, last_count=1).token_type is TokenType.INVALID:
            return candidate
    raise AssertionError("no invalid token found")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_general_procedure_g1_to_g12(variant: Variant) -> None:
    rig = Rig(variant)

    # G1: an invalid token is refused and changes nothing.
    result = rig.enter(_an_invalid_token(rig.params))
    assert result.words == ("INVALID",)
    assert result["wait"] == "0"  # waiting period off
    status = rig.status()
    assert (status["active"], status["seconds_left"], status["count"]) == ("0", "0", "1")

    # G2: Set Time 1 day.
    g2 = rig.set(1)
    rig.applied(g2, "SET_TIME")
    rig.assert_days_left(1)

    # G3: Add Time 1 day -> 2 days.
    g3 = rig.add(1)
    rig.applied(g3, "ADD_TIME")
    rig.assert_days_left(2)

    # G4A: the same Add Time token again -> already used, still 2 days.
    rig.refused_as_used(g3)
    rig.assert_days_left(2)
    # G4B: the older Set Time token -> already used.
    rig.refused_as_used(g2)
    rig.assert_days_left(2)

    # G5: Set Time 30 days -> 30 days.
    rig.applied(rig.set(30), "SET_TIME")
    rig.assert_days_left(30)

    # G6: Set Time 0 -> inactive at once.
    rig.applied(rig.set(0), "SET_TIME")
    rig.assert_days_left(0)

    # G7: three Add Time tokens of 995 units -> 995, 1990, 2985 units.
    for n in (1, 2, 3):
        token = generate(rig.params, count=rig.count, units=995)
        rig.count = token.count
        rig.applied(token, "ADD_TIME")
        rig.assert_days_left(n * 995 / variant.divider)

    # G8: 21 Set Time tokens of 1..21 days, each made 30 counts after the previous one.
    for days in range(1, 22):
        token = rig.make(TokenType.SET_TIME, days, count=rig.count + 29)
        rig.applied(token, "SET_TIME")
        rig.assert_days_left(days)

    # G9: Disable PAYG -> unlimited.
    rig.applied(rig.disable(), "DISABLE_PAYG")
    rig.assert_unlimited()

    # G10: Set Time 0 -> locked again (PAYG back on, no time).
    rig.applied(rig.set(0), "SET_TIME")
    rig.assert_days_left(0)

    # G11 (optional in the reference): Disable PAYG, then Add Time 0 -> stays unlocked.
    rig.applied(rig.disable(), "DISABLE_PAYG")
    rig.applied(rig.add(0), "ADD_TIME")
    rig.assert_unlimited()

    # G12: Set Time 0, 48 h pass, Add Time 1 day -> exactly 1 day (late days not counted).
    rig.applied(rig.set(0), "SET_TIME")
    rig.assert_days_left(0)
    assert rig.host.one("ADVANCE 48h", "CLOCK").int("ticks") == 48 * HOUR
    rig.applied(rig.add(1), "ADD_TIME")
    rig.assert_days_left(1)
    assert rig.status()["tamper"] == "none"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_u1_add_time_tokens_in_any_order(variant: Variant) -> None:
    rig = Rig(variant)
    first, second, third = rig.add(1), rig.add(2), rig.add(3)
    rig.applied(third, "ADD_TIME")
    rig.applied(first, "ADD_TIME")
    rig.applied(second, "ADD_TIME")
    rig.assert_days_left(6)
    for token in (first, second, third):
        rig.refused_as_used(token)
    rig.assert_days_left(6)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_u2_set_time_makes_older_add_time_obsolete(variant: Variant) -> None:
    rig = Rig(variant)
    older_add, set_time, newer_add = rig.add(1), rig.set(5), rig.add(2)
    rig.applied(set_time, "SET_TIME")
    rig.refused_as_used(older_add)
    rig.applied(newer_add, "ADD_TIME")
    rig.assert_days_left(7)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_u3_disable_payg_makes_older_add_time_obsolete(variant: Variant) -> None:
    rig = Rig(variant)
    older_add, disable = rig.add(1), rig.disable()
    rig.applied(disable, "DISABLE_PAYG")
    rig.refused_as_used(older_add)
    rig.assert_unlimited()


# --- the behaviours the procedure also asks for --------------------------------------------


def test_waiting_period_as_the_reference_firmware_and_across_power_cuts() -> None:
    rig = Rig(Variant("standard"), waiting=True)
    invalid = _an_invalid_token(rig.params)
    expected_waits = [0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512]
    for attempt, minutes in enumerate(expected_waits, start=1):
        result = rig.enter(invalid)
        assert result.words == ("INVALID",)
        assert (result.int("wait"), result.int("invalid")) == (minutes * 60, attempt)
        if minutes:
            # Blocked, also for a genuine token, also after a power cut, until the wait ends.
            blocked = rig.enter(rig.make(days=1, count=1))
            assert blocked.words == ("BLOCKED",)
            assert blocked.int("wait") == minutes * 60
            rig.host.ok("ADVANCE 30")
            # The wait runs on powered-on time only: neither the time off nor a clock moved
            # forward meanwhile takes anything off it (SPEC 4).  The 30 s it ran may be
            # lost to the power cut (the firmware stores the wait now and then).
            rig.host.ok("POWER OFF")
            rig.host.ok(f"ADVANCE {attempt}h")
            rig.host.ok("CLOCK +1d")
            rig.host.ok("POWER ON")
            left = rig.enter(rig.make(days=1, count=1)).int("wait")
            assert minutes * 60 - 30 <= left <= minutes * 60
            rig.host.ok(f"ADVANCE {left}")
    # A genuine token ends the streak.
    rig.applied(rig.add(1), "ADD_TIME")
    assert rig.status()["invalid"] == "0"
    assert rig.enter(invalid)["wait"] == "0"


def test_counter_synchronisation() -> None:
    rig = Rig(Variant("standard"))
    # Tokens made too far ahead of the device (the server lost track) are invalid...
    far = rig.make(TokenType.ADD_TIME, 1, count=90)
    assert rig.enter(far).words == ("INVALID",)
    # ... until a Counter Sync token (accepted up to 100 counts ahead) brings the device along.
    sync = rig.make(TokenType.COUNTER_SYNC, count=80)
    rig.applied(sync, "COUNTER_SYNC")
    assert rig.status().int("count") == sync.count
    rig.assert_days_left(0)
    rig.applied(far, "ADD_TIME")
    rig.assert_days_left(1)


ISSUE_KEY_HEX = "a29ab82edc5fbbc41ec9530f6dac86b1"
ISSUE_STARTING_CODE = 123456789


def test_exactly_once_an_old_counter_sync_token_gives_no_days_again() -> None:
    # The issue "Exactly once": a device at count 1, the server's Counter Sync (count 3),
    # Add 30 days (count 4) and Add 30 days (count 6), entered again and again.
    host = Host.over(CommandInterpreter(SimulatedDevice(RamMemory())))
    assert host.send(f"#{SERIAL};{ISSUE_STARTING_CODE:09d};{ISSUE_KEY_HEX}")[-1] == "OK SETUP"
    host.ok("CONFIG waiting=off")
    params = DeviceParams.create(ISSUE_KEY_HEX, ISSUE_STARTING_CODE)
    sync = generate(params, count=1, token_type=TokenType.COUNTER_SYNC)
    first = generate(params, count=sync.count, days=30)
    second = generate(params, count=first.count, days=30)
    assert [token.count for token in (sync, first, second)] == [3, 4, 6]
    assert [host.token(t.digits).words for t in (sync, first, second)] == [("APPLIED",)] * 3
    for _ in range(3):
        for token in (sync, first, second):
            result = host.token(token.digits)
            assert (result.words, result.int("count")) == (("ALREADY_USED",), token.count)
        status = host.status()
        assert (status.int("count"), status.int("seconds_left")) == (6, 60 * DAY)


def test_restricted_keypad_only_takes_keys_1_to_4() -> None:
    rig = Rig(Variant("restricted digits", restricted=True, by_keypad=True))
    token = rig.add(3)
    assert set(token.digits) <= set("1234")
    assert len(token.digits) == 15
    # Other digit keys typed in between are ignored by a restricted keypad.
    noisy = "*" + "".join(digit + "9" for digit in token.digits) + "#"
    results = [line for line in rig.host.keys(noisy) if line.tag == "RESULT"]
    assert results[0].words == ("APPLIED",)
    rig.assert_days_left(3)


def test_time_divider_counts_units_as_fractions_of_a_day() -> None:
    rig = Rig(Variant("hours", divider=24))
    token = generate(rig.params, count=rig.count, units=5)
    rig.count = token.count
    result = rig.applied(token, "ADD_TIME")
    assert result.int("seconds_left") == 5 * HOUR
    rig.assert_days_left(5 / 24)
