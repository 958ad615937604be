"""Exporting the runs table for a spreadsheet or pandas elsewhere."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError


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
