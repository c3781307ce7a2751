"""The documentation site: it builds with warnings as errors, every Python block in it runs, every
topology in it validates, every `mpc` command line in it names real commands and options, and it speaks
of features, not of issue numbers or milestones."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from parties.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
TEXTS = {p.name: p.read_text() for p in PAGES} | {"README.md": (ROOT / "README.md").read_text()}


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_python_blocks_run(page: str) -> None:
    """Every block runs; a sketch with `...` placeholders (the architecture's outline of a protocol) is
    compiled, so that its syntax at least is checked."""
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", TEXTS[page], re.S)):
        compiled = compile(code, f"docs/{page} (block {i + 1})", "exec")
        if not re.search(r"^\s*\.\.\.\s*$|=\.\.\.", code, re.M):
            exec(compiled, {"__name__": "docs"})


def test_topologies_validate() -> None:
    from mpc.config import parse_topology

    found = 0
    for page, text in TEXTS.items():
        for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
            data = yaml.safe_load(block)
            if isinstance(data, dict) and ("parties" in data or "deployment" in data):
                parse_topology(data, page)
                found += 1
    assert found


def _command_lines(text: str) -> list[str]:
    """`mpc ...` lines of code blocks and inline code (continuation lines joined)."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        lines += [ln.strip().removeprefix("$ ") for ln in joined.splitlines() if ln.strip().removeprefix("$ ")
                  .startswith("mpc ")]
    lines += [m.replace("\n", " ") for m in re.findall(r"`(mpc [^`]+)`", text)]
    return lines


def _check(line: str) -> str | None:
    """What is wrong with an mpc command line (None: its commands and options exist)."""
    words = line.split("#")[0].replace("[", " ").replace("]", " ").replace("\\|", "|").split()[1:]
    command: click.Command = cli
    ctx = click.Context(cli)
    for word in words:
        if word.startswith("-"):
            name = word.split("=")[0]
            known = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
            if name not in known and name not in ("--help", "-h") and not name.startswith("--op,"):
                return f"{line}: {name} is not an option of {command.name}"
        elif isinstance(command, click.Group):
            sub = command.get_command(ctx, word)
            if sub is None:
                return None if word.isupper() else f"{line}: no command {word}"
            command = sub
    return None


def test_command_lines_name_real_commands_and_options() -> None:
    problems = [p for text in TEXTS.values() for line in _command_lines(text) if (p := _check(line))]
    assert not problems, "\n".join(problems)
    assert _check("mpc lanch CONFIG") and _check("mpc launch CONFIG --porgram x")  # the check can fail


def test_no_issue_numbers_or_internal_targets() -> None:
    pattern = re.compile(r"\bissue \d+|\bissues? #?\d+|\bmilestone\b|#\d{1,4}\b", re.I)
    found = [f"{page}: {m.group(0)}" for page, text in TEXTS.items() for m in pattern.finditer(text)]
    assert not found, found


def test_no_fixed_ports_in_python_examples() -> None:
    for page, text in TEXTS.items():
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            assert not re.search(r"ports=\[\d", block), f"{page}: an example on fixed ports (use free_ports)"


@pytest.mark.timeout(300)
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    mkdocs = [sys.executable, "-m", "mkdocs"]
    assert shutil.which(sys.executable)
    res = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, env={"NO_MKDOCS_2_WARNING": "1",
                                                                         "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "run_async" in api and "TreeEnsemble" in api  # the reference is generated from the docstrings


def test_the_navigation_takes_pages_it_does_not_know(tmp_path: Path) -> None:
    """Pages added later appear without editing mkdocs.yml: known ones in order, others after them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_nav", ROOT / "scripts" / "docs_nav.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    for name in ("index.md", "serve.md", "cli.md", "zebra.md"):
        (tmp_path / name).write_text(f"# {name}\n")
    nav = hook.on_config({"docs_dir": str(tmp_path)})["nav"]
    assert nav == [{"Home": "index.md"}, {"Serving": "serve.md"}, {"Command line": "cli.md"}, "zebra.md"]
