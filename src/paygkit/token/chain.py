"""Chain backends: the compiled C loop and the pure-Python fallback.

Both backends expose the same operations, so the token code never cares
which one runs.  The C backend is chosen when the extension was built, unless
the environment variable PAYGKIT_PURE_PYTHON is set to 1 (how CI runs the
whole suite on the fallback too).  Any call can also name its backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from paygkit.token import siphash as _py

if TYPE_CHECKING:
    from array import array

_Token = TypeVar("_Token")

FORCE_PURE_PYTHON_ENV = "PAYGKIT_PURE_PYTHON"


class ChainBackend(Protocol):
    """The hot loops of the protocol: SipHash and the two hash chains."""

    name: str

    def siphash24(self, key: bytes, data: bytes) -> int: ...

    def std_walk(self, key: bytes, code: int, steps: int) -> int: ...

    def std_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]: ...

    def ext_walk(self, key: bytes, code: int, steps: int) -> int: ...

    def ext_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]: ...

    def std_walk_many(
        self, keys: bytes, codes: Sequence[int], steps: Sequence[int], threads: int
    ) -> list[int]:
        """Advance many independent standard chains; keys holds 16 bytes per chain."""
        ...


class PythonBackend:
    """Pure-Python backend: always available, slowest."""

    name = "python"

    def siphash24(self, key: bytes, data: bytes) -> int:
        return _py.siphash24(key, data)

    def std_walk(self, key: bytes, code: int, steps: int) -> int:
        return _py.std_walk(_py.key_state(key), code, steps)

    def std_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None
    ) -> list[int]:
        """As ChainBackend.std_find; with stop_above, ends after the first count above it."""
        return _py.std_find(_py.key_state(key), code, high, max_count, stop_above)

    def ext_walk(self, key: bytes, code: int, steps: int) -> int:
        return _py.ext_walk(_py.key_state(key), code, steps)

    def ext_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None
    ) -> list[int]:
        """As ChainBackend.ext_find; with stop_above, ends after the first count above it."""
        return _py.ext_find(_py.key_state(key), code, high, max_count, stop_above)

    def std_walk_many(
        self, keys: bytes, codes: Sequence[int], steps: Sequence[int], threads: int
    ) -> list[int]:
        # Threads would not help: the GIL serialises pure-Python hashing.
        return [
            _py.std_walk(_py.key_state(keys[16 * i : 16 * i + 16]), code, n)
            for i, (code, n) in enumerate(zip(codes, steps, strict=True))
        ]


class CompiledChain(Protocol):
    """What CBackend needs of the extension module; its stub (_chain.pyi) has the rest."""

    def siphash24(self, key: bytes, data: bytes, /) -> int: ...

    def std_walk(self, key: bytes, code: int, steps: int, /) -> int: ...

    def ext_walk(self, key: bytes, code: int, steps: int, /) -> int: ...

    def std_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None, /
    ) -> list[int]: ...

    def ext_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None, /
    ) -> list[int]: ...

    def std_walk_batch(
        self,
        keys: bytes,
        codes: array[int],
        steps: array[int],
        out: array[int],
        threads: int = 1,
        kernel: str | None = None,
    ) -> None: ...

    def generate_one(
        self,
        device: object,
        count: object,
        token_type: object,
        days: object,
        units: object,
        extended: object,
        device_class: type,
        token_class: type[_Token],
        token_types: tuple[object, object, object, object],
        /,
    ) -> _Token | None: ...

    def units_maker(
        self,
        device_class: type,
        token_class: type[_Token],
        token_types: tuple[object, object, object, object],
        /,
    ) -> Callable[[object, object, object, object, object], _Token | None]: ...

    def generate_batch(
        self,
        requests: Sequence[object],
        threads: int,
        plan_request: Callable[[int, Any], tuple[int, int]],
        request_class: type,
        device_class: type,
        token_class: type[_Token],
        token_types: tuple[object, object, object, object],
        /,
    ) -> list[_Token]: ...


class CBackend:
    """The compiled chain loop (paygkit.token._chain)."""

    name = "c"

    def __init__(self, module: CompiledChain) -> None:
        self._chain = module
        # paygkit.token.coding.generate in C for the usual request, else None
        # (see CompiledChain.generate_one; not part of ChainBackend).  Bound to
        # the C function itself: a method around it cost a third of a token.
        self.generate_one = module.generate_one

    def siphash24(self, key: bytes, data: bytes) -> int:
        return self._chain.siphash24(key, data)

    def std_walk(self, key: bytes, code: int, steps: int) -> int:
        return self._chain.std_walk(key, code, steps)

    def std_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None
    ) -> list[int]:
        """As ChainBackend.std_find; with stop_above, ends after the first count above it."""
        return self._chain.std_find(key, code, high, max_count, stop_above)

    def ext_walk(self, key: bytes, code: int, steps: int) -> int:
        return self._chain.ext_walk(key, code, steps)

    def ext_find(
        self, key: bytes, code: int, high: int, max_count: int, stop_above: int | None = None
    ) -> list[int]:
        """As ChainBackend.ext_find; with stop_above, ends after the first count above it."""
        return self._chain.ext_find(key, code, high, max_count, stop_above)

    def std_walk_many(
        self, keys: bytes, codes: Sequence[int], steps: Sequence[int], threads: int
    ) -> list[int]:
        count = len(codes)
        if len(steps) != count or len(keys) != 16 * count:
            raise ValueError("need 16 key bytes, one code and one step count per chain")
        from array import array  # only batches need it: not imported with the package

        out = array("I", bytes(4 * count))
        # The kernel splits the chains over its own threads (a few hundred
        # chains at least each), with the GIL released.
        self._chain.std_walk_batch(keys, array("I", codes), array("I", steps), out, threads)
        return out.tolist()

    def units_maker(
        self,
        device_class: type,
        token_class: type[_Token],
        token_types: tuple[object, object, object, object],
    ) -> Callable[[object, object, object, object, object], _Token | None]:
        """generate_one(device, count, token_type, None, units, extended, <these three>) in C.

        The classes are bound once, so a call passes only the request and
        reaches C without a Python frame (not part of ChainBackend).
        """
        return self._chain.units_maker(device_class, token_class, token_types)

    def generate_batch(
        self,
        requests: Sequence[object],
        threads: int,
        plan_request: Callable[[int, Any], tuple[int, int]],
        classes: tuple[type, type, type[_Token]],
        token_types: tuple[object, object, object, object],
    ) -> list[_Token]:
        """paygkit.token.coding.generate_batch in C (see there; not part of ChainBackend).

        `classes` are the request, device and token classes; `plan_request`
        checks a request the C code does not check itself.
        """
        request_class, device_class, token_class = classes
        return self._chain.generate_batch(
            requests, threads, plan_request, request_class, device_class, token_class, token_types
        )


def load_c_backend() -> CBackend | None:
    """The compiled backend, or None when the extension was not built."""
    try:
        from paygkit.token import _chain
    except ImportError:
        return None
    return CBackend(_chain)


@lru_cache(maxsize=1)
def default_backend() -> ChainBackend:
    """The backend used when a call names none: C when built and not disabled."""
    if os.environ.get(FORCE_PURE_PYTHON_ENV) == "1":
        return PythonBackend()
    compiled = load_c_backend()
    return compiled if compiled is not None else PythonBackend()


def derive_starting_code(key: bytes, backend: ChainBackend | None = None) -> int:
    """The starting code of a device that has none: the key hashed under itself."""
    return _py.std_fold((backend or default_backend()).siphash24(key, key))
