"""Shared fixtures: the published test vectors, both chain backends and both device firmwares."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from paygkit.device.cfirmware import FIRMWARE_ENV, c_firmware_built
from paygkit.token import ChainBackend, PythonBackend, load_c_backend
from tests.reference import REFERENCE_DIR, VECTORS_FILE

TESTS_DIR = Path(__file__).resolve().parent
# The suites that run on every device firmware: paygkit's model and the C device library.
FIRMWARE_SUITES = tuple(TESTS_DIR / name for name in ("device", "factory", "certify"))

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


# -- the device firmwares ----------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "one_firmware(reason): in tests/device, factory and certify, a test that runs once, "
        "not once on each firmware: it runs no device, is about the Python model itself, or "
        "chooses its firmwares itself",
    )


def _firmwares() -> list[Any]:
    built = c_firmware_built()
    if not built and os.environ.get("PAYGKIT_REQUIRE_C_EXT") == "1":
        raise RuntimeError("PAYGKIT_REQUIRE_C_EXT=1 but paygkit.device._cfirmware is not built")
    params: list[Any] = [pytest.param("python", id="pyfw")]
    # make test's second pass is the pure-Python one: there the C library is left out, and
    # its first pass runs each of these tests on both firmwares.
    if os.environ.get("PAYGKIT_PURE_PYTHON") != "1":
        params.append(
            pytest.param(
                "c",
                id="cfw",
                marks=pytest.mark.skipif(not built, reason="the C firmware is not built"),
            )
        )
    return params


FIRMWARES = _firmwares()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "device_firmware" not in metafunc.fixturenames or len(FIRMWARES) < 2:
        return
    if not any(metafunc.definition.path.is_relative_to(suite) for suite in FIRMWARE_SUITES):
        return
    if metafunc.definition.get_closest_marker("one_firmware") is not None:
        return
    metafunc.parametrize("device_firmware", FIRMWARES, indirect=True)


@pytest.fixture(autouse=True)
def device_firmware(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The firmware simulators and test rigs build (`firmware_class()`): the test's parameter
    in the firmware suites, else paygkit's model.  Set in the environment, so that the
    paygkit commands a test starts run on it too."""
    name: str = getattr(request, "param", "python")
    monkeypatch.setenv(FIRMWARE_ENV, name)
    return name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """make test's second pass checks that paygkit works on its pure-Python fallback.  Tests
    whose subject does not change with the token engine (the benchmarks' scripts, the
    certification suite's judgement of faulty devices, the server's and the console's
    refusals of bad input and of roles, which come before any token is made) are marked
    `first_pass_only`: on the fallback they only repeat the first pass, slower, and took
    over a third of its time."""
    if os.environ.get("PAYGKIT_PURE_PYTHON") != "1":
        return
    for item in items:
        marker = item.get_closest_marker("first_pass_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"first pass only: {reason}"))
