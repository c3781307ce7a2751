"""The example notebook runs from top to bottom in a Jupyter kernel (every party in the kernel's loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "from_data_to_model.ipynb"


@pytest.mark.timeout(300)
def test_the_notebook_runs_from_data_to_a_scored_model(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "findings: none" in outputs
    assert "ROC AUC on the 100 new customers" in outputs and "largest difference from scikit-learn" in outputs
