"""docs/ARCHITECTURE.md's worked example runs: an operation added in one module plus one registration is
reachable as ctx.<name>, securely and emulated, with the same values on every party."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_worked_example_of_adding_an_operation_runs() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert any("Registry([*OPERATIONS" in b for b in blocks)
    for code in blocks:
        exec(compile(code, "docs/ARCHITECTURE.md", "exec"), {"__name__": "architecture"})
