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

from paygkit.token.codec import ParsedToken, format_token, parse_token
from paygkit.token.engine import CEngine, ChainEngine, PythonEngine, default_engine, load_c_engine
from paygkit.token.errors import ParameterError, TokenError, TokenFormatError
from paygkit.token.explain import (
    HashStep,
    RestrictedConversion,
    TokenExplanation,
    ValueExplanation,
    explain,
)
from paygkit.token.model import (
    DecodeResult,
    DecodeWindows,
    DeviceParams,
    GeneratedToken,
    TokenType,
    group_digits,
    parse_key,
)
from paygkit.token.protocol import (
    TokenRequest,
    days_to_units,
    decode,
    derive_starting_code,
    generate,
    generate_batch,
    next_count,
    reset_token,
)

__all__ = [
    "CEngine",
    "ChainEngine",
    "DecodeResult",
    "DecodeWindows",
    "DeviceParams",
    "GeneratedToken",
    "HashStep",
    "ParameterError",
    "ParsedToken",
    "PythonEngine",
    "RestrictedConversion",
    "TokenError",
    "TokenExplanation",
    "TokenFormatError",
    "TokenRequest",
    "TokenType",
    "ValueExplanation",
    "days_to_units",
    "decode",
    "default_engine",
    "derive_starting_code",
    "explain",
    "format_token",
    "generate",
    "generate_batch",
    "group_digits",
    "load_c_engine",
    "next_count",
    "parse_key",
    "parse_token",
    "reset_token",
]
