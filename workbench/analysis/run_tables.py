"""Analysis tables kept beside a run's artifact (layer timing, per-layer drift).

Each is a JSON file in the artifact folder, listed in ``Run.tables`` under its key and saved with
the run, so plots, reports and the widgets find it again after a restart without recomputing it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.runs.run import Run
from workbench.runs.workspace import Workspace

LAYERS = "layers"
LAYER_DRIFT = "layer_drift"


def save_run_table(run: Run, key: str, table: pd.DataFrame, workspace: Workspace) -> None:
    path = Path(run.artifact).parent / f"{key}.json"
    table.to_json(path, orient="records", indent=1)
    run.tables[key] = str(path)
    workspace.save_run(run)


def load_run_table(run: Run, key: str) -> pd.DataFrame | None:
    """The saved table, or None when the run never had it computed (or its file is gone)."""
    path = run.tables.get(key)
    if not path or not Path(path).is_file():
        return None
    return pd.read_json(path, orient="records")
