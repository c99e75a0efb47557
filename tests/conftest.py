"""Shared fixtures: the published test vectors and both chain engines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from paygkit.token import ChainEngine, PythonEngine, load_c_engine

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"
VECTORS_FILE = REFERENCE_DIR / "test_tokens.jsonl"


def load_vectors() -> list[dict[str, Any]]:
    with VECTORS_FILE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _engines() -> list[Any]:
    compiled = load_c_engine()
    if compiled is None and os.environ.get("PAYGKIT_REQUIRE_C_EXT") == "1":
        raise RuntimeError("PAYGKIT_REQUIRE_C_EXT=1 but paygkit.token._chain is not built")
    params: list[Any] = [pytest.param(PythonEngine(), id="python")]
    if os.environ.get("PAYGKIT_PURE_PYTHON") != "1":
        params.append(
            pytest.param(
                compiled,
                id="c",
                marks=pytest.mark.skipif(compiled is None, reason="C extension not built"),
            )
        )
    return params


@pytest.fixture(params=_engines())
def engine(request: pytest.FixtureRequest) -> ChainEngine:
    """Each test using this runs once per available engine."""
    engine: ChainEngine = request.param
    return engine
