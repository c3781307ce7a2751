"""Users' own programs from the CLI: a file or a module, typed parameters, and agreement on the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from parties.programs import bind_params, find_program, program_setup
from tests.conftest import free_ports

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = '''
from pathlib import Path

import numpy as np


async def total(ctx, scale: float = 1.0, n: int = 3, tag: str = "x", out: Path | None = None):
    """Both banks' vectors added and scaled."""
    a = np.arange(n, dtype=float) if ctx.name == "bank_a" else None
    b = np.ones(n) if ctx.name == "bank_b" else None
    x = await ctx.input("bank_a", a)
    y = await ctx.input("bank_b", b)
    z = await ctx.reveal((x + y) * scale)
    return None if z is None else z.tolist()  # the helper learns nothing


async def ids(party: "Party") -> str:
    return party.name


def not_async(ctx):
    return 1
'''


def _topology(tmp_path: Path) -> Path:
    names = ("bank_a", "bank_b", "helper")
    parties = [{"name": n, "role": "helper" if n == "helper" else "compute", "host": "127.0.0.1", "port": p}
               for n, p in zip(names, free_ports(3), strict=True)]
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "deployment": {"parties": parties}, "session": {"timeout_s": 20}}))
    return path


def mpc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parties", *args], capture_output=True, text=True, timeout=90, cwd=cwd)


def test_parameters_are_typed_by_annotation_and_checked(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    spec = f"{prog}:total"
    assert bind_params(spec, {"scale": "2", "n": "4", "out": "a/b"}) == {"scale": 2.0, "n": 4, "out": Path("a/b")}
    with pytest.raises(ValueError, match="scale: expected float, got x$"):
        bind_params(spec, {"scale": "x"})
    with pytest.raises(ValueError, match=r"has no parameter nn \(did you mean n\?\); its parameters: scale=1.0, n=3, "
                                         "tag=x, out=None"):
        bind_params(spec, {"nn": "1"})
    with pytest.raises(ValueError, match="must be an async function"):
        find_program(f"{prog}:not_async")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        find_program(f"{prog}:nope")
    with pytest.raises(ValueError, match="does not exist"):
        find_program(f"{tmp_path / 'missing.py'}:total")
    assert find_program(spec).is_secure and not find_program(f"{prog}:ids").is_secure


def test_the_code_is_part_of_what_parties_agree_on(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    first = program_setup(f"{prog}:total", {"scale": "2"})
    assert first == program_setup(f"{prog}:total", {"scale": "2.0", "n": "3"})  # defaults = explicit
    other = tmp_path / "elsewhere" / "prog.py"  # another host's path, same code: same program
    other.parent.mkdir()
    other.write_text(PROGRAM)
    assert program_setup(f"{other}:total", {"scale": "2"}) == first
    changed = tmp_path / "changed" / "prog.py"
    changed.parent.mkdir()
    changed.write_text(PROGRAM.replace("* scale", "* scale * 2"))
    assert program_setup(f"{changed}:total", {"scale": "2"})["program code"] != first["program code"]


def test_launch_a_program_file_written_outside_the_repository(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    res = mpc("launch", str(_topology(tmp_path)), "--program", f"{prog}:total", "-p", "scale=2", "-p", "n=4",
              "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    results = {p["name"]: p["result"] for p in json.loads(res.stdout)["parties"]}
    assert results["bank_a"] == results["bank_b"] == [2.0, 4.0, 6.0, 8.0]
    assert results["helper"] is None


def test_a_module_function_runs_and_bad_parameters_stop_before_start(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "stats.py").write_text(PROGRAM)
    topo = _topology(tmp_path)
    res = mpc("launch", str(topo), "--program", "mypkg.stats:total", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["parties"][0]["result"] == [1.0, 2.0, 3.0]
    res = mpc("launch", str(topo), "--program", "mypkg.stats:total", "-p", "n=three", cwd=tmp_path)
    assert res.returncode == 2 and "n: expected int, got three" in res.stderr
    assert "session" not in res.stderr  # no party was started


def test_parties_running_different_code_stop_naming_the_difference(tmp_path: Path) -> None:
    topo = _topology(tmp_path)
    procs = {}
    for name in ("bank_a", "bank_b", "helper"):
        folder = tmp_path / name
        folder.mkdir()
        code = PROGRAM.replace("* scale", "* scale * 2") if name == "bank_b" else PROGRAM
        (folder / "prog.py").write_text(code)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "parties", "run", str(topo), "--party", name, "--program",
             f"{folder}/prog.py:total"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = {}
    for name, p in procs.items():
        _, stderr = p.communicate(timeout=60)
        assert p.returncode != 0
        errors[name] = stderr
    assert "runs with different settings" in errors["bank_a"] and "program code" in errors["bank_a"]
    assert "bank_b" in errors["bank_a"]


def test_a_bad_input_value_stops_every_party_at_once_with_its_reason(tmp_path: Path) -> None:
    """The owner's value is checked at its ctx.input call: the owner reports it, the others are told at
    once (they used to wait for a share that never came, then time out)."""
    prog = tmp_path / "bad.py"
    prog.write_text("import numpy as np\n\n\nasync def bad(ctx):\n"
                    "    a = await ctx.input('bank_a', np.array([1e15, 2.0]) if ctx.name == 'bank_a' else None)\n"
                    "    b = await ctx.input('bank_b', np.array([1.0, 2.0]) if ctx.name == 'bank_b' else None)\n"
                    "    return await ctx.reveal(a + b)\n")
    res = mpc("launch", str(_topology(tmp_path)), "--program", f"{prog}:bad", cwd=tmp_path)
    assert res.returncode == 1
    assert "error: launch failed: bank_a: input: value out of fixed-point range" in res.stderr
    assert "bank_a aborted, saying: \"bank_a failed with ValueError" in res.stderr
    assert "timed out" not in res.stderr


def test_path_parameters_are_each_partys_own_and_never_sent(tmp_path: Path) -> None:
    """A `Path` parameter names a party's own file: it may differ between parties and is not part of what
    the hello carries (it used to be sent to every peer unless listed in own_params)."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    mine = program_setup(f"{prog}:total", {"scale": "2", "out": "/secret/bank_a/out.csv"})
    theirs = program_setup(f"{prog}:total", {"scale": "2", "out": "/elsewhere/b.csv"})
    assert mine == theirs
    assert not any("secret" in value or "out=" in value for value in mine.values())
    assert "scale=2.0" in mine["program"] and "tag='x'" in mine["program"]  # the others are still agreed


HELPER_PROGRAM = '''
import helperlib


async def scaled(ctx, n: int = 4):
    a = [float(i) for i in range(n)] if ctx.name == "bank_a" else None
    x = await ctx.input("bank_a", a)
    z = await ctx.reveal(x * helperlib.scale())
    return None if z is None else z.tolist()
'''


def test_parties_running_a_different_helper_module_stop_naming_it(tmp_path: Path) -> None:
    """The program file is the same on every host, but bank_b's `helperlib` (imported from the program's
    directory) returns 3.0 instead of 2.0: the hello names the module (this ran to garbage, exit 0)."""
    topo = _topology(tmp_path)
    procs = {}
    for name in ("bank_a", "bank_b", "helper"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "prog.py").write_text(HELPER_PROGRAM)
        (folder / "helperlib.py").write_text(f"def scale():\n    return {3.0 if name == 'bank_b' else 2.0}\n")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "parties", "run", str(topo), "--party", name, "--program",
             f"{folder}/prog.py:scaled"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = {}
    for name, p in procs.items():
        _, stderr = p.communicate(timeout=60)
        assert p.returncode != 0, stderr
        errors[name] = stderr
    assert "runs with different settings (program module helperlib: sha256 " in errors["bank_a"], errors["bank_a"]
    assert "program code" not in errors["bank_a"]  # the entry file is the same: only the module is named
    same = program_setup(f"{tmp_path / 'bank_a' / 'prog.py'}:scaled", {})
    assert same["program module helperlib"].startswith("sha256 ")
