"""The shipped spline tables are exact integers that the fitting script recomputes, and parties whose
tables differ stop at the hello naming them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from protocols.interface import function_tables, functions
from protocols.primitives.gates import Piecewise

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("function_tables_script", ROOT / "scripts" / "function_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_tables_are_what_the_script_computes() -> None:
    """The fit (floating point, numpy and libm) runs here, in the test, never in a party: the shipped module
    must be exactly its output (regenerate with `python scripts/function_tables.py` if the fit changes)."""
    script = _script()
    computed = script.compute_tables()
    assert computed == function_tables.TABLES
    assert script.render(computed) == (ROOT / "protocols" / "interface" / "function_tables.py").read_text()


def test_tables_are_integers_for_every_supported_frac_bits() -> None:
    def integers(t: Piecewise) -> bool:
        values = [*t.breaks, *t.centers, *t.scales, *(c for out in t.coeffs for row in out for c in row)]
        return all(type(v) is int for v in values)

    assert all(integers(t) for t in function_tables.TABLES.values())
    for frac in range(functions.MIN_FRAC, functions.MAX_FRAC + 1):
        assert functions.sigmoid_table(frac) is function_tables.TABLES[("sigmoid", frac)]
        assert functions.exp_table(frac, 0).name == "exp0" and functions.norm_table("log", frac).name == "norm_log"
    with pytest.raises(ValueError, match="need frac_bits between 10 and 16; the topology's frac_bits is 20"):
        functions.sigmoid_table(20)


def test_no_floating_point_fit_at_run_time() -> None:
    """functions.py neither fits nor calls libm: np.polyfit and the float functions live in the script."""
    source = (ROOT / "protocols" / "interface" / "functions.py").read_text()
    for banned in ("polyfit", "np.exp", "np.log", "math.log", "math.exp", "np.tanh", "np.sqrt"):
        assert banned not in source, banned
