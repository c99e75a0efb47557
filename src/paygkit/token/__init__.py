"""OpenPAYGO Token: generate and decode pay-as-you-go tokens.

Pure protocol code: no I/O, no clock, no global state.  The hash chain runs
in a compiled loop when the C extension is built, in pure Python otherwise.

    >>> from paygkit.token import DeviceParams, TokenType, decode, generate
    >>> device = DeviceParams.create("bc41ec9530f6dac86b1a29ab82edc5fb", 516959010)
    >>> token = generate(device, count=1, days=1)
    >>> token.grouped, token.count
    ('588 224 011', 2)
    >>> decode(device, token.grouped, last_count=1).token_type
    <TokenType.ADD_TIME: 'add_time'>
"""

import importlib
from typing import TYPE_CHECKING, Any

from paygkit.token.chain import (
    CBackend,
    ChainBackend,
    PythonBackend,
    default_backend,
    derive_starting_code,
    load_c_backend,
)
from paygkit.token.coding import (
    TokenRequest,
    decode,
    generate,
    generate_batch,
    next_count,
    reset_token,
)
from paygkit.token.digits import (
    EXTENDED_DIGITS,
    RESTRICTED_EXTENDED_DIGITS,
    RESTRICTED_STANDARD_DIGITS,
    STANDARD_DIGITS,
    ParsedToken,
    format_token,
    from_restricted,
    parse_token,
    typed_digits,
)
from paygkit.token.errors import ParameterError, TokenError, TokenFormatError
from paygkit.token.keys import HIDDEN, hide_keys, parse_key
from paygkit.token.model import (
    COUNTER_SYNC_VALUE,
    DISABLE_PAYG_VALUE,
    MAX_ACTIVATION_UNITS,
    MAX_COUNT,
    MAX_STARTING_CODE,
    DecodeResult,
    DecodeWindows,
    DeviceParams,
    GeneratedToken,
    TokenType,
    group_digits,
)
from paygkit.token.units import (
    SECONDS_PER_DAY,
    countdown_text,
    days_number,
    days_text,
    days_to_units,
    duration_text,
    number_text,
    plural,
    units_duration_text,
)

if TYPE_CHECKING:
    from paygkit.token.walkthrough import (
        HashStep,
        RestrictedConversion,
        TokenExplanation,
        ValueExplanation,
        explain,
    )

# The teaching walk-through is imported when first asked for: its classes are a
# tenth of this package's import time, and issuing or checking tokens never needs them.
_EXPLAIN_NAMES = frozenset(
    {"HashStep", "RestrictedConversion", "TokenExplanation", "ValueExplanation", "explain"}
)


def __getattr__(name: str) -> Any:
    if name in _EXPLAIN_NAMES:
        walkthrough = importlib.import_module("paygkit.token.walkthrough")
        # Bound here too, so this runs once.
        globals().update({each: getattr(walkthrough, each) for each in _EXPLAIN_NAMES})
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COUNTER_SYNC_VALUE",
    "DISABLE_PAYG_VALUE",
    "EXTENDED_DIGITS",
    "HIDDEN",
    "MAX_ACTIVATION_UNITS",
    "MAX_COUNT",
    "MAX_STARTING_CODE",
    "RESTRICTED_EXTENDED_DIGITS",
    "RESTRICTED_STANDARD_DIGITS",
    "SECONDS_PER_DAY",
    "STANDARD_DIGITS",
    "CBackend",
    "ChainBackend",
    "DecodeResult",
    "DecodeWindows",
    "DeviceParams",
    "GeneratedToken",
    "HashStep",
    "ParameterError",
    "ParsedToken",
    "PythonBackend",
    "RestrictedConversion",
    "TokenError",
    "TokenExplanation",
    "TokenFormatError",
    "TokenRequest",
    "TokenType",
    "ValueExplanation",
    "countdown_text",
    "days_number",
    "days_text",
    "days_to_units",
    "decode",
    "default_backend",
    "derive_starting_code",
    "duration_text",
    "explain",
    "format_token",
    "from_restricted",
    "generate",
    "generate_batch",
    "group_digits",
    "hide_keys",
    "load_c_backend",
    "next_count",
    "number_text",
    "parse_key",
    "parse_token",
    "plural",
    "reset_token",
    "typed_digits",
    "units_duration_text",
]
