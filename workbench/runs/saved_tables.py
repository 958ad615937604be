"""Tables kept beside a run's artifact (layer timing, per-layer drift, what pruning did).

Each is a file in the artifact folder, listed in ``Run.tables`` under its key and saved with the
run, so plots, reports and the widgets find it again after a restart without recomputing it.
``read_table`` is the one reader for all of them, whatever format they were written in.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.files import write_atomically
from workbench.runs.run import Run
from workbench.runs.workspace import Workspace

LAYERS = "layers"
LAYER_DRIFT = "layer_drift"


def save_run_table(run: Run, key: str, table: pd.DataFrame, workspace: Workspace) -> None:
    path = Path(run.artifact).parent / f"{key}.json"
    write_atomically(path, lambda tmp: table.to_json(tmp, orient="records", indent=1))
    run.tables[key] = str(path)
    workspace.save_run(run)


def load_run_table(run: Run, key: str) -> pd.DataFrame | None:
    """The saved table, or None when the run never had it computed (or its file is gone)."""
    path = run.tables.get(key)
    if not path or not Path(path).is_file():
        return None
    return read_table(path)


def read_table(path: str | Path) -> pd.DataFrame:
    """A table file written beside a run: Parquet, CSV or JSON records, chosen by extension."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".json":
        return pd.read_json(path, orient="records")
    raise WorkbenchError(f"Table '{path.name}' has a format the workbench does not read.",
                         "Save run tables as .parquet, .csv or .json (records).")
