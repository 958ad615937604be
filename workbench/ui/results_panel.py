"""Results tab: every run of the open model as a sortable table, chosen runs compared in plots.

The table and each plot are produced by the analysis package; this panel only asks for them
again when the runs, the selection or the sort order change.
"""

from __future__ import annotations

import re
from html import escape

import ipywidgets as W
import pandas as pd

from workbench.glossary import COLUMN_TERMS, with_help
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.ui import figures
from workbench.ui.messages import error_html, note_html
from workbench.ui.plot_slot import PlotSlot

#: How many of the newest runs are compared when nobody has chosen yet.
DEFAULT_COMPARED = 3


#: Rows of variants that miss their task's budget (or are broken): never the pick, never missed.
MISSED_STYLE = "color: #c62828; background: #fdecea"


class ResultsPanel:
    """Runs table + selection + plot slots + the place where build errors are explained."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.model_digest: str | None = None
        self.runs: list[Run] = []
        self.error = W.HTML()
        self.sort_by = W.Dropdown(description="Sort by", options=[], layout=W.Layout(width="260px"))
        self.descending = W.ToggleButton(value=False, description="descending", icon="sort")
        self.table = W.HTML(layout=W.Layout(width="100%", overflow="auto"))  # scrolls inside the panel
        self.compare = W.SelectMultiple(description="Compare", options=[], rows=5,
                                        layout=W.Layout(width="520px"))
        self.slots = [
            PlotSlot("Layer timing", figures.layer_timing),
            PlotSlot("Drift", figures.drift),
            PlotSlot("Latency vs drift (Pareto front)", figures.pareto),
        ]
        self.sort_by.observe(lambda _: self._draw_table(), names="value")
        self.descending.observe(lambda _: self._draw_table(), names="value")
        self.compare.observe(lambda _: self._draw_plots(), names="value")
        self.widget = W.VBox([
            self.error,
            W.HBox([self.sort_by, self.descending]),
            self.table,
            self.compare,
            *[slot.widget for slot in self.slots],
        ])
        self.show_error(None)

    def show_model(self, model_digest: str) -> None:
        self.model_digest = model_digest
        self.refresh()

    def refresh(self, new_run: Run | None = None) -> None:
        """Re-read the runs from the workspace (so other processes' runs appear too)."""
        if self.model_digest is None:
            return
        self.runs = self.pipeline.runs(self.model_digest)
        chosen = [rid for rid in self.compare.value if any(r.run_id == rid for r in self.runs)]
        if new_run is not None:
            chosen = [new_run.run_id, *[rid for rid in chosen if rid != new_run.run_id]]
        if not chosen:
            chosen = [r.run_id for r in self.runs[-DEFAULT_COMPARED:]]
        self.compare.options = [(f"{r.label} · {r.run_id[:8]}", r.run_id) for r in reversed(self.runs)]
        self.compare.value = tuple(chosen)
        self._draw_table()
        self._draw_plots()

    def frame(self) -> pd.DataFrame:
        """The table as shown, in the chosen order: the same cells the CLI and the report print."""
        return figures.table_frame(self.runs, self.sort_by.value, self.descending.value)

    def _draw_table(self) -> None:
        if not self.runs:
            self.table.value = note_html("No runs of this model yet: set the options in the Build tab and click Build.")
            return
        columns = list(figures.SORT_KEYS)
        if list(self.sort_by.options) != columns:
            self.sort_by.options = columns
            self.sort_by.value = "built"
        self.table.value = runs_table_html(self.frame())

    def selected(self) -> list[Run]:
        by_id = {r.run_id: r for r in self.runs}
        return [by_id[rid] for rid in self.compare.value if rid in by_id]

    def _draw_plots(self) -> None:
        selected = self.selected()
        for slot in self.slots:
            slot.update(self.runs if slot.make is figures.pareto else selected)

    def show_error(self, message: str | BaseException | None) -> None:
        self.error.value = error_html(message) if message else ""


_TABLE_STYLE = ("<style>.wb-runs-box{overflow-x:auto;max-width:100%}.wb-runs{border-collapse:collapse;"
                "font-size:0.85em}.wb-runs th,.wb-runs td{padding:2px 6px;white-space:nowrap;text-align:right}"
                ".wb-runs td:first-child,.wb-runs th:first-child{text-align:left}</style>")


def runs_table_html(frame: pd.DataFrame) -> str:
    """The table in a box that scrolls sideways inside the panel, every variant that misses its budget (or is
    broken) in red by its own status, and a "?" on each header with a glossary entry."""
    frame = frame.reset_index(drop=True)
    missed = frame["status"].str.startswith(("MISSES", "BROKEN")) if "status" in frame else \
        pd.Series(False, index=frame.index)
    styled = frame.style.apply(lambda row: [MISSED_STYLE if missed[row.name] else ""] * len(row), axis=1)
    table = styled.hide(axis="index").set_table_attributes('class="wb-runs"').to_html()
    for column in frame.columns:
        if column in COLUMN_TERMS:
            table = re.sub(f"(<th [^>]*>){re.escape(escape(column))}</th>",
                           lambda m, c=column: f"{m.group(1)}{with_help(c)}</th>", table, count=1)
    return f"{_TABLE_STYLE}<div class='wb-runs-box'>{table}</div>"
