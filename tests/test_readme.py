"""The README's promises: its first screen is short, CI runs its test command, its Python example runs.
(The documentation site's pages are checked by tests/test_docs.py.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    setup = re.search(r"```bash\n(.*?)```", README, re.S)
    assert setup is not None
    commands = [line.split("#")[0].strip() for line in setup.group(1).strip().splitlines()]
    assert len(commands) == 2, "the first screen gives exactly two set-up commands"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_the_readme_is_a_first_screen_and_points_to_the_docs() -> None:
    assert len(README.splitlines()) < 200
    for link in re.findall(r"\]\((docs/[^)#]+)", README):
        assert (ROOT / link).is_file(), link
