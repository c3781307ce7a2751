"""The README's promises: CI runs its test command, its Python example runs."""

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


def test_topology_example_validates() -> None:
    import yaml

    from mpc.config import parse_topology

    example = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert example is not None
    topo = parse_topology(yaml.safe_load(example.group(1)), "README.md")
    assert topo.emulated_link("bank_a", "bank_b").latency_ms == 25
    assert topo.declared_link("bank_a", "bank_b") is None  # the cost model measures at the hello
