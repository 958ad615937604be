"""A run's per-layer drift table kept beside its artifact, so plots survive a kernel restart.

Kept the same way ``profile_run`` keeps the layer table: a JSON file in the artifact folder,
listed in ``Run.tables`` and saved with the run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run

KEY = "layer_drift"


def save_drift_table(run: Run, table: pd.DataFrame, pipeline: Pipeline) -> None:
    path = Path(run.artifact).parent / f"{KEY}.json"
    table.to_json(path, orient="records", indent=1)
    run.tables[KEY] = str(path)
    pipeline.workspace.save_run(run)


def load_drift_table(run: Run) -> pd.DataFrame | None:
    path = run.tables.get(KEY)
    if not path or not Path(path).is_file():
        return None
    return pd.read_json(path, orient="records")
