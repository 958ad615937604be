"""Every workbench notebook runs headless, offline, top to bottom, on a copy in a temp folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

NAMES = [
    "quickstart",
    "workshop_1_quantization",
    "workshop_2_layer_profile",
    "workshop_3_pruning",
    "workshop_4_breaking_layer",
    "tensorrt_profile_explorer",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / f"{name}.ipynb"
    shutil.copy(NOTEBOOKS / copy.name, copy)
    monkeypatch.setenv("WORKBENCH_SAMPLES", str(REPO / "sample_models"))
    monkeypatch.delenv("WORKBENCH_TRTEXEC_DATA", raising=False)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(notebook, timeout=170, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    shown = [c for c in notebook.cells if c.cell_type == "code" and not c.source.startswith(("from", "import"))]
    assert all(c.outputs for c in shown), "a cell that should show something showed nothing"
