"""Types of the compiled chain loop (src/paygkit/token/_chain.c)."""

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from _typeshed import ReadableBuffer, WriteableBuffer

_Token = TypeVar("_Token")

def siphash24(key: ReadableBuffer, data: ReadableBuffer, /) -> int: ...
def std_walk(key: ReadableBuffer, code: int, steps: int, /) -> int: ...
def ext_walk(key: ReadableBuffer, code: int, steps: int, /) -> int: ...
def std_find(
    key: ReadableBuffer, code: int, high: int, max_count: int, stop_above: int | None = None, /
) -> list[int]: ...
def ext_find(
    key: ReadableBuffer, code: int, high: int, max_count: int, stop_above: int | None = None, /
) -> list[int]: ...
def std_walk_batch(
    keys: ReadableBuffer,
    codes: ReadableBuffer,
    steps: ReadableBuffer,
    out: WriteableBuffer,
    threads: int = 1,
    kernel: str | None = None,
) -> None: ...
def batch_kernels() -> list[str]: ...
def lockstep_walk(steps: int, kernel: str | None = None, /) -> int: ...
def generate_one(
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
    device_class: type,
    token_class: type[_Token],
    token_types: tuple[object, object, object, object],
    /,
) -> Callable[[object, object, object, object, object], _Token | None]: ...
def generate_batch(
    requests: Sequence[object],
    threads: int,
    plan_request: Callable[[int, Any], tuple[int, int]],
    request_class: type,
    device_class: type,
    token_class: type[_Token],
    token_types: tuple[object, object, object, object],
    /,
) -> list[_Token]: ...
