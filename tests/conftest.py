"""Shared fixtures: the published test vectors and both chain backends."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from paygkit.token import ChainBackend, PythonBackend, load_c_backend
from tests.reference import REFERENCE_DIR, VECTORS_FILE

__all__ = ["REFERENCE_DIR", "VECTORS_FILE", "load_vectors"]


def load_vectors() -> list[dict[str, Any]]:
    with VECTORS_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _backends() -> list[Any]:
    compiled = load_c_backend()
    if compiled is None and os.environ.get("PAYGKIT_REQUIRE_C_EXT") == "1":
        raise RuntimeError("PAYGKIT_REQUIRE_C_EXT=1 but paygkit.token._chain is not built")
    params: list[Any] = [pytest.param(PythonBackend(), id="python")]
    if os.environ.get("PAYGKIT_PURE_PYTHON") != "1":
        params.append(
            pytest.param(
                compiled,
                id="c",
                marks=pytest.mark.skipif(compiled is None, reason="C extension not built"),
            )
        )
    return params


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> ChainBackend:
    """Each test using this runs once per available backend."""
    backend: ChainBackend = request.param
    return backend
