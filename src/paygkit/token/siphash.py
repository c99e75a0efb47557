"""SipHash-2-4 and the two OpenPAYGO chain steps in pure Python.

This is the backend of last resort (no C compiler, or forced for testing), so
the chain steps are written out for their single 8-byte block: the key
schedule is computed once per chain and every round is inlined.  That keeps
the fallback faster than the reference library, whose general SipHash class
allocates per call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

_MASK64 = 0xFFFFFFFFFFFFFFFF
_STD_LIMIT = 999_999_999
_STD_FOLD = 73_741_825
_EXT_LIMIT = 999_999_999_999
_EXT_FOLD = 99_511_627_777

KeyState = tuple[int, int, int, int]


def key_state(key: bytes) -> KeyState:
    """The four SipHash state words after keying, shared by every hash under `key`."""
    if len(key) != 16:
        raise ValueError("the key must be exactly 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    return (
        k0 ^ 0x736F6D6570736575,
        k1 ^ 0x646F72616E646F6D,
        k0 ^ 0x6C7967656E657261,
        k1 ^ 0x7465646279746573,
    )


def _compress(v0: int, v1: int, v2: int, v3: int, rounds: int) -> tuple[int, int, int, int]:
    mask = _MASK64
    for _ in range(rounds):
        v0 = (v0 + v1) & mask
        v1 = ((v1 << 13) | (v1 >> 51)) & mask ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & mask
        v2 = (v2 + v3) & mask
        v3 = ((v3 << 16) | (v3 >> 48)) & mask ^ v2
        v0 = (v0 + v3) & mask
        v3 = ((v3 << 21) | (v3 >> 43)) & mask ^ v0
        v2 = (v2 + v1) & mask
        v1 = ((v1 << 17) | (v1 >> 47)) & mask ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & mask
    return v0, v1, v2, v3


def siphash24(key: bytes, data: bytes) -> int:
    """SipHash-2-4 of `data` under a 16-byte key, as the usual 64-bit integer."""
    v0, v1, v2, v3 = key_state(key)
    whole = len(data) - len(data) % 8
    for offset in range(0, whole, 8):
        word = int.from_bytes(data[offset : offset + 8], "little")
        v3 ^= word
        v0, v1, v2, v3 = _compress(v0, v1, v2, v3, 2)
        v0 ^= word
    last = (len(data) & 0xFF) << 56 | int.from_bytes(data[whole:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _compress(v0, v1, v2, v3, 2)
    v0 ^= last
    v2 ^= 0xFF
    v0, v1, v2, v3 = _compress(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


def std_message(code: int) -> int:
    """The chain message of a standard code: its 4 big-endian bytes twice, as a LE word."""
    swapped = int.from_bytes(code.to_bytes(4, "big"), "little")
    return swapped | swapped << 32


def std_fold(digest: int) -> int:
    """Standard chain: XOR the hash halves, keep bits 2..31, bring under 10^9."""
    folded = ((digest ^ (digest >> 32)) & 0xFFFFFFFF) >> 2
    return folded - _STD_FOLD if folded > _STD_LIMIT else folded


def ext_fold(digest: int) -> int:
    """Extended chain: keep bits 24..63 of the hash, bring under 10^12."""
    top = digest >> 24
    return top - _EXT_FOLD if top > _EXT_LIMIT else top


# The chain walkers below are the fallback's hot loops.  CPython pays for every
# function call and tuple, so each walker is one loop with the whole hash
# inlined; writing eight copies of the round by hand would hide a typo, so the
# loops are assembled once, at import, from the single round text below.
_ROUND = """\
v0 = (v0 + v1) & mask
v1 = ((v1 << 13) | (v1 >> 51)) & mask ^ v0
v0 = ((v0 << 32) | (v0 >> 32)) & mask
v2 = (v2 + v3) & mask
v3 = ((v3 << 16) | (v3 >> 48)) & mask ^ v2
v0 = (v0 + v3) & mask
v3 = ((v3 << 21) | (v3 >> 43)) & mask ^ v0
v2 = (v2 + v1) & mask
v1 = ((v1 << 17) | (v1 >> 47)) & mask ^ v2
v2 = ((v2 << 32) | (v2 >> 32)) & mask
"""

# Turns `code` into the little-endian message word of its chain step.
_STD_MESSAGE = """\
swapped = ((code & 0xFF) << 24) | ((code & 0xFF00) << 8) | ((code >> 8) & 0xFF00) | (code >> 24)
word = swapped | swapped << 32
"""
_EXT_MESSAGE = """\
word = int.from_bytes(code.to_bytes(8, "big"), "little")
"""
# Turns the digest `h` into the next `code`.
_STD_FOLD_TEXT = """\
code = ((h ^ (h >> 32)) & 0xFFFFFFFF) >> 2
if code > 999999999:
    code -= 73741825
"""
_EXT_FOLD_TEXT = """\
code = h >> 24
if code > 999999999999:
    code -= 99511627777
"""


def _step_text(message: str, fold: str) -> str:
    return (
        "v0, v1, v2, v3 = s0, s1, s2, s3\n"
        + message
        + "v3 ^= word\n"
        + _ROUND * 2
        + "v0 ^= word\nv3 ^= 0x0800000000000000\n"
        + _ROUND * 2
        + "v0 ^= 0x0800000000000000\nv2 ^= 0xFF\n"
        + _ROUND * 4
        + "h = v0 ^ v1 ^ v2 ^ v3\n"
        + fold
    )


def _indent(text: str, depth: int) -> str:
    return "".join(" " * depth + line + "\n" for line in text.splitlines())


def _build_walkers(message: str, fold: str) -> tuple[Any, Any]:
    step = _step_text(message, fold)
    walk_source = (
        "def walk(state, code, steps):\n"
        "    s0, s1, s2, s3 = state\n"
        "    mask = 0xFFFFFFFFFFFFFFFF\n"
        "    for _ in range(steps):\n" + _indent(step, 8) + "    return code\n"
    )
    find_source = (
        "def find(state, code, high, divisor, max_count, stop_above):\n"
        "    s0, s1, s2, s3 = state\n"
        "    mask = 0xFFFFFFFFFFFFFFFF\n"
        "    found = []\n"
        "    for count in range(max_count + 1):\n"
        "        if code // divisor == high:\n"
        "            found.append(count)\n"
        "            if count > stop_above:\n"
        "                break\n"
        "        if count == max_count:\n"
        "            break\n" + _indent(step, 8) + "    return found\n"
    )
    namespace: dict[str, Any] = {}
    exec(compile(walk_source + find_source, "<paygkit chain>", "exec"), namespace)
    return namespace["walk"], namespace["find"]


# Built on first use, not at import: compiling them takes milliseconds, and
# only the pure-Python backend needs them.
@cache
def _std_walkers() -> tuple[Any, Any]:
    return _build_walkers(_STD_MESSAGE, _STD_FOLD_TEXT)


@cache
def _ext_walkers() -> tuple[Any, Any]:
    return _build_walkers(_EXT_MESSAGE, _EXT_FOLD_TEXT)


def std_walk(state: KeyState, code: int, steps: int) -> int:
    """Advance a standard (9-digit) chain by `steps` hash steps."""
    result: int = _std_walkers()[0](state, code, steps)
    return result


def std_find(
    state: KeyState, code: int, high: int, max_count: int, stop_above: int | None = None
) -> list[int]:
    """Counts 0..max_count whose standard chain value has `high` above its 3-digit base.

    With `stop_above`, the search ends at the first such count above it.
    """
    stop = max_count if stop_above is None else stop_above
    found: list[int] = _std_walkers()[1](state, code, high, 1000, max_count, stop)
    return found


def ext_walk(state: KeyState, code: int, steps: int) -> int:
    """Advance an extended (12-digit) chain by `steps` hash steps."""
    result: int = _ext_walkers()[0](state, code, steps)
    return result


def ext_find(
    state: KeyState, code: int, high: int, max_count: int, stop_above: int | None = None
) -> list[int]:
    """Counts 0..max_count whose extended chain value has `high` above its 6-digit base.

    With `stop_above`, the search ends at the first such count above it.
    """
    stop = max_count if stop_above is None else stop_above
    found: list[int] = _ext_walkers()[1](state, code, high, 1_000_000, max_count, stop)
    return found
