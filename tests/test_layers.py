"""The layering rule, checked on the source: mpc < protocols < parties, inside protocols primitives <
interface < applications, and no import cycle inside a layer.

Every import counts, wherever it is written (module level, inside a function, under TYPE_CHECKING): a
lazy import still makes the lower layer depend on the higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("mpc", "protocols", "parties")  # lowest first: a module may import its own layer and those below
SUBLAYERS = ("protocols.primitives", "protocols.interface", "protocols.applications")  # the same rule inside protocols


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


def imports(path: Path, modules: dict[str, Path], root: Path = ROOT) -> set[str]:
    """Every module of this project that `path` imports, at any level of the file."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import mod` imports the submodule pkg.mod
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.List | ast.Tuple):  # a subprocess's argv: [..., "-m", "pkg.mod", ...]
            words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            found.update(words[i + 1] for i, w in enumerate(words[:-1]) if w == "-m")
    return {m for m in found if m.split(".")[0] in LAYERS}


def layer(module: str) -> tuple[int, int]:
    """(layer, sub-layer): a module of protocols/ outside the sub-packages (its __init__) counts as the top."""
    top = LAYERS.index(module.split(".")[0])
    sub = next((i for i, s in enumerate(SUBLAYERS) if module == s or module.startswith(s + ".")), None)
    if top != LAYERS.index("protocols"):
        return top, 0
    return top, len(SUBLAYERS) if sub is None else sub


def test_the_parser_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: function-level, TYPE_CHECKING and relative imports are all found."""
    pkg = tmp_path / "mpc"
    pkg.mkdir()
    src = pkg / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from parties import cli\n"
                   "def f():\n    import protocols.primitives.core\n    from .ring import x\n")
    assert imports(src, {"parties.cli": src, "mpc.ring": src}, tmp_path) == {"parties.cli", "protocols.primitives.core",
                                                                            "mpc.ring"}


def test_no_layer_imports_a_higher_one() -> None:
    modules = all_modules()
    wrong = [f"{name} imports {dep}" for name, path in modules.items()
             for dep in sorted(imports(path, modules)) if layer(dep) > layer(name)]
    assert not wrong, "lower layers must not import higher ones: " + "; ".join(wrong)


@pytest.mark.parametrize("package", ["mpc", "protocols"])
def test_no_import_cycle_inside(package: str) -> None:
    modules = all_modules()
    graph = {name: {d for d in imports(path, modules) if d.split(".")[0] == package and d in modules and d != name}
             for name, path in modules.items() if name.split(".")[0] == package}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            pytest.fail(f"import cycle in {package}/: " + " -> ".join(cycle))
