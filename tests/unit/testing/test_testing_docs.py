"""docs/testing.md stays true: its ```python blocks run, in order, in one namespace.

Blocks fenced ```py are shown but not run here (the pytest plugin's examples need a
pytest session; tests/integration/test_testing_plugin.py runs the same usage).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_the_testing_guide_runs_as_written() -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) >= 10
    namespace: dict[str, object] = {"__name__": "testing_guide"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"block {number} of {DOC.name} failed: {exc!r}\n{block}")
