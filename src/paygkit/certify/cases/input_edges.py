"""IN: input edge cases: a digit missing or extra, leading zeros, '*' again, stray digits."""

from __future__ import annotations

from paygkit.certify.cases.case import Suite, standard_only
from paygkit.certify.cases.shared import start_with_add_time, wrong_form_then_token
from paygkit.certify.plan import Plan
from paygkit.certify.steps import Step

SUITE = Suite("IN", "Input edge cases")


@SUITE.case(
    "IN1",
    "A token with a digit missing is refused",
    "A token typed with its last digit missing is refused and changes nothing; the "
    "complete token is then accepted. A device that padded or guessed the missing digit "
    "would accept tokens nobody made.",
)
def _in1(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1)
    return steps + wrong_form_then_token(
        p,
        token,
        token.digits[:-1],
        wrong_what=f"{p.label(token)} with its last digit missing",
        right_what=f"{p.label(token)}, complete",
    )


@SUITE.case(
    "IN2",
    "A token with an extra digit is refused",
    "A token typed with one digit too many is refused and changes nothing; the token as "
    "made is then accepted. A device that ignored extra digits would hide typing "
    "mistakes.",
)
def _in2(p: Plan) -> list[Step]:
    steps, token = start_with_add_time(p, days=1)
    extra = "1" if p.params.restricted else "0"
    return steps + wrong_form_then_token(
        p,
        token,
        token.digits + extra,
        wrong_what=f"{p.label(token)} with an extra digit {extra}",
        right_what=f"{p.label(token)}, as made",
    )


@SUITE.case(
    "IN3",
    "A token starting with 0 is accepted",
    "Tokens are written with their leading zeros. A token that starts with 0 is accepted "
    "as typed; a device that stored the token as a number and counted its digits would "
    "refuse about one token in ten.",
    applies=standard_only,
)
def _in3(p: Plan) -> list[Step]:
    steps: list[Step] = [*p.baseline()]
    token = p.leading_zero_token()
    zeros = len(token.digits) - len(token.digits.lstrip("0"))
    what = f"{p.label(token)}, which starts with {'0' * zeros}"
    steps += [p.applied(token, what=what), p.left(p.seconds(token.units or 0))]
    return steps


@SUITE.case(
    "IN4",
    "Pressing * again starts the token afresh",
    "A false start, then * and the whole token, then #: the token is accepted. Pressing * "
    "is how a customer corrects a mistake on the keypad.",
)
def _in4(p: Plan) -> list[Step]:
    return _typed_among_other_keys(
        p, 5, "*{noise}*{token}#", "A false start ({noise}), * again, then {label}"
    )


@SUITE.case(
    "IN5",
    "Digits typed before * are ignored",
    "Digits pressed before * are not part of the token: the token typed after * is "
    "accepted (reference behaviour).",
)
def _in5(p: Plan) -> list[Step]:
    return _typed_among_other_keys(
        p, 3, "{noise}*{token}#", "Digits {noise} before the *, then {label}"
    )


def _typed_among_other_keys(p: Plan, noise_length: int, keys: str, what: str) -> list[Step]:
    """A 1-day token typed among other keys, which must still be accepted.

    `keys` and `what` are templates: {noise} (digits of an invalid token),
    {token} (the token's digits) and {label} (the token in words).
    """
    steps, token = start_with_add_time(p, days=1)
    noise = p.invalid_token()[:noise_length]
    fields = {"noise": noise, "token": token.digits, "label": p.label(token)}
    entry = p.sequence(keys.format(**fields), what.format(**fields), token)
    return [*steps, entry, p.left_days(1)]
