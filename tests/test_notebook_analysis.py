"""The analysis notebook runs headless from top to bottom and shows every figure."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis_plots.ipynb"


def test_analysis_notebook_runs(tmp_path: Path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 5
    titles = [o["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"] for o in figures]
    assert titles == ["Top 12 layers by time", "Time by op type", "Layers across variants",
                      "Per-layer drift along the graph", "Latency versus drift"]
