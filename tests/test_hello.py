"""What the parties compare at the hello besides the topology: the library's version and code, and the
public tables the protocols use. Parties as processes, one of them running another copy of the library."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpc.library import code_digest, library_agreement
from protocols.interface.context import secure
from protocols.interface.functions import public_tables
from tests.test_programs import _topology

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "async def one(ctx):\n    return 1\n"


def _library_copy(tmp_path: Path) -> Path:
    """mpc, protocols and parties copied to a folder of their own: run from there, they are imported first."""
    copy = tmp_path / "copy"
    for package in ("mpc", "protocols", "parties"):
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _run_with(tmp_path: Path, copy: Path) -> dict[str, str]:
    """Every party of a fresh topology, bank_b from `copy`: each one's stderr (each must fail)."""
    topo = _topology(tmp_path)
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    procs = {name: subprocess.Popen([sys.executable, "-m", "parties", "run", str(topo), "--party", name,
                                     "--program", f"{prog}:one"], cwd=copy if name == "bank_b" else ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("bank_a", "bank_b", "helper")}
    errors = {}
    for name, p in procs.items():
        _, stderr = p.communicate(timeout=90)
        assert p.returncode != 0, (name, stderr)
        errors[name] = stderr
    return errors


def test_the_hello_carries_the_library_and_the_tables() -> None:
    assert library_agreement() == {"mpc": f"0.1.0 (code sha256 {code_digest()[:16]})"}
    tables = public_tables()
    assert {"table sigmoid", "table exp8", "table norm_reciprocal_signed", "table log_m",
            "table comparison costs"} <= set(tables)
    assert getattr(secure(lambda ctx: None), "agreement") == tables  # noqa: B009  # every secure program's


@pytest.mark.parametrize("change", ["version", "table"])
def test_parties_on_another_version_or_other_tables_stop_at_the_hello(tmp_path: Path, change: str) -> None:
    copy = _library_copy(tmp_path)
    if change == "version":
        init = copy / "mpc" / "version.py"
        init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.1.1"'))
    else:  # one breakpoint of sigmoid's table at 16 fractional bits moved by one unit
        tables = copy / "protocols" / "interface" / "function_tables.py"
        text = tables.read_text()
        old = "('sigmoid', 16): Piecewise('sigmoid', (-524288,"
        assert old in text
        tables.write_text(text.replace(old, "('sigmoid', 16): Piecewise('sigmoid', (-524287,"))
    errors = _run_with(tmp_path, copy)
    noticed = errors["bank_a"]  # bank_a compares bank_b's hello with its own
    assert "bank_b runs with different settings (" in noticed, noticed
    mine = f"0.1.0 (code sha256 {code_digest()[:16]})"
    if change == "version":
        assert f"mpc: {mine} here, 0.1.1 (code sha256 " in noticed, noticed
    else:
        assert f"mpc: {mine} here, 0.1.0 (code sha256 " in noticed, noticed  # the code differs too
        assert f"table sigmoid: {public_tables()['table sigmoid']} here, sha256 " in noticed, noticed
        assert "table tanh" not in noticed  # only what differs is named
    assert all("Traceback" not in e for e in errors.values())
