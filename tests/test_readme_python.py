"""The README's Python examples that stand on their own run as written and print what they say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# "print(x)  # 60: why" promises that the line prints 60; a comment that starts
# with a word in lower case only explains.
PROMISE = re.compile(r"^print\(.*\)\s+#\s*([0-9A-Z][^:\n]*)", re.MULTILINE)


def _blocks() -> list[str]:
    # A block that uses names it does not define (e.g. a `fleet` of the
    # reader's own) is an excerpt, not a program.
    return [b for b in BLOCK.findall(README.read_text()) if "fleet" not in b]


@pytest.mark.parametrize("code", _blocks(), ids=lambda code: code.splitlines()[0][:40])
def test_readme_python_example_runs(code: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    printed = out.getvalue().splitlines()
    for promised in PROMISE.findall(code):
        assert any(line.strip() == promised.strip() for line in printed), (promised, printed)
