"""Chain backends: the compiled C loop and the pure-Python fallback.

Both backends expose the same operations, so the token code never cares
which one runs.  The C backend is chosen when the extension was built, unless
the environment variable PAYGKIT_PURE_PYTHON is set to 1 (how CI runs the
whole suite on the fallback too).  Any call can also name its backend.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import pairwise
from types import ModuleType
from typing import Protocol

from paygkit.token import siphash as _py

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

    def std_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        return _py.std_find(_py.key_state(key), code, high, max_count)

    def ext_walk(self, key: bytes, code: int, steps: int) -> int:
        return _py.ext_walk(_py.key_state(key), code, steps)

    def ext_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        return _py.ext_find(_py.key_state(key), code, high, max_count)

    def std_walk_many(
        self, keys: bytes, codes: Sequence[int], steps: Sequence[int], threads: int
    ) -> list[int]:
        # Threads would not help: the GIL serialises pure-Python hashing.
        return [
            _py.std_walk(_py.key_state(keys[16 * i : 16 * i + 16]), code, n)
            for i, (code, n) in enumerate(zip(codes, steps, strict=True))
        ]


class CBackend:
    """The compiled chain loop (paygkit.token._chain)."""

    name = "c"

    # Below this many chains a second thread costs more than it saves.
    _MIN_CHAINS_PER_THREAD = 256

    def __init__(self, module: ModuleType) -> None:
        self._chain = module

    def siphash24(self, key: bytes, data: bytes) -> int:
        result: int = self._chain.siphash24(key, data)
        return result

    def std_walk(self, key: bytes, code: int, steps: int) -> int:
        result: int = self._chain.std_walk(key, code, steps)
        return result

    def std_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        found: list[int] = self._chain.std_find(key, code, high, max_count)
        return found

    def ext_walk(self, key: bytes, code: int, steps: int) -> int:
        result: int = self._chain.ext_walk(key, code, steps)
        return result

    def ext_find(self, key: bytes, code: int, high: int, max_count: int) -> list[int]:
        found: list[int] = self._chain.ext_find(key, code, high, max_count)
        return found

    def std_walk_many(
        self, keys: bytes, codes: Sequence[int], steps: Sequence[int], threads: int
    ) -> list[int]:
        count = len(codes)
        if len(steps) != count or len(keys) != 16 * count:
            raise ValueError("need 16 key bytes, one code and one step count per chain")
        code_array = array("I", codes)
        step_array = array("I", steps)
        out = array("I", bytes(4 * count))
        threads = max(1, min(threads, count // self._MIN_CHAINS_PER_THREAD))
        if threads == 1:
            self._chain.std_walk_batch(keys, code_array, step_array, out)
            return out.tolist()
        # The kernel releases the GIL, so slices run truly in parallel.
        bounds = [count * part // threads for part in range(threads + 1)]
        keys_view, codes_view = memoryview(keys), memoryview(code_array)
        steps_view, out_view = memoryview(step_array), memoryview(out)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = [
                pool.submit(
                    self._chain.std_walk_batch,
                    keys_view[16 * lo : 16 * hi],
                    codes_view[lo:hi],
                    steps_view[lo:hi],
                    out_view[lo:hi],
                )
                for lo, hi in pairwise(bounds)
            ]
            for job in jobs:
                job.result()
        return out.tolist()


def load_c_backend() -> CBackend | None:
    """The compiled backend, or None when the extension was not built."""
    try:
        from paygkit.token import _chain  # type: ignore[attr-defined]
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
