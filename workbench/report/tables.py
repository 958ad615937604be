"""Reading a run's saved tables and exporting the runs table, whatever format they were saved in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError


def read_table(path: str | Path) -> pd.DataFrame:
    """A table file written beside a run: Parquet, CSV or JSON records, chosen by extension."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".json":
        return pd.read_json(path, orient="records")
    raise WorkbenchError(f"Table '{path.name}' has a format the report does not read.",
                         "Save run tables as .parquet, .csv or .json (records).")


def export_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the runs table as CSV or Parquet (by extension) for a spreadsheet or pandas elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise WorkbenchError("Parquet export needs pyarrow, which is not installed.",
                                 "pip install pyarrow, or export --csv instead.") from exc
    else:
        frame.to_csv(path, index=False)
    return path
