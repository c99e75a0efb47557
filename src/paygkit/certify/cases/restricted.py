"""RD: restricted digit mode, for keypads with keys 1-4 only (15-digit tokens)."""

from __future__ import annotations

from paygkit.certify.cases.case import Suite, restricted_only
from paygkit.certify.cases.shared import start_with_add_time, wrong_form_then_token
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step

SUITE = Suite("RD", "Restricted digit mode")


@SUITE.case(
    "RD1",
    "A restricted-digit token typed on keys 1-4 is accepted",
    "In restricted digit mode tokens are 15 digits, each 1-4. Typed key by key, the token "
    "is accepted with its value.",
    applies=restricted_only,
)
def _rd1(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1)
    typed = p.applied(token, what=f"{p.label(token)}, typed key by key", via="keys")
    return [*steps, typed, p.left_days(1)]


@SUITE.case(
    "RD2",
    "A digit other than 1-4 is refused",
    "A restricted token with a 5 in it is not a token of this device: it is refused and "
    "changes nothing, and the right token is then accepted. (Protocol only: the keypad "
    "has no key 5.)",
    applies=restricted_only,
)
def _rd2(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1)
    return steps + wrong_form_then_token(
        p,
        token,
        token.digits[:7] + "5" + token.digits[8:],
        wrong_what=f"{p.label(token)} with its 8th digit changed to 5",
        right_what=f"{p.label(token)}, as made",
        via="token",
        protocol_only=True,
    )


@SUITE.case(
    "RD3",
    "The 9-digit form of a token is refused",
    "The same token written as 9 standard digits is refused by a restricted device; only "
    "the 15-digit form is accepted. A device that took both forms would take tokens from "
    "a server set up for the wrong mode.",
    applies=restricted_only,
)
def _rd3(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1)
    standard = p.standard_form(token.digits)
    return steps + wrong_form_then_token(
        p,
        token,
        standard,
        wrong_what=f"{p.label(token)} in its 9-digit standard form",
        right_what=f"{p.label(token)}, in restricted form",
        via="token",
        # Digits the keypad lacks cannot be typed; one of 1-4 only can.
        protocol_only=bool(set(standard) - set("1234")),
    )
