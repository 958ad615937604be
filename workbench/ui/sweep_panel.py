"""Sweep tab: the grid (backends x precisions x pruning methods x ratios), the budget, and a table that fills live.

The panel maps widget values onto ``Sweep`` fields and shows what the sweep controller reports;
building, measuring and picking are ``Sweep.run``'s, exactly as for ``workbench sweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd

from workbench.backends.registry import DEFAULT_BACKEND, availability
from workbench.build_options import BuildOptions
from workbench.errors import Cancelled, DataError
from workbench.progress import ProgressEvent
from workbench.runs.format import CELLS, shown_table
from workbench.runs.frame import runs_frame
from workbench.runs.run import Run
from workbench.ui.build_panel import heading_html_widget, run_controls, wide_layout
from workbench.ui.messages import error_html, note_html
from workbench.ui.sweep_controller import SweepOutcome
from workbench.vocabulary import PRECISIONS, PRUNE_METHODS

DEFAULT_PRECISIONS = ("fp32", "fp16", "int8")
RECOMMENDED = "★ recommended"


def parse_ratios(text: str) -> list[float]:
    """Comma-separated pruning ratios in [0, 1); the message says how to write them when they are not."""
    try:
        ratios = [float(item) for item in text.replace(" ", "").split(",") if item]
    except ValueError as exc:
        raise DataError(f"The pruning ratios '{text}' are not a list of numbers.",
                        "Write ratios separated by commas, e.g. 0, 0.25, 0.5 (0 means unpruned).") from exc
    if not ratios:
        raise DataError("No pruning ratio given.", "Write 0 for unpruned variants, or e.g. 0, 0.25, 0.5.")
    outside = [r for r in ratios if not 0 <= r < 1]
    if outside:
        raise DataError(f"The pruning ratio {outside[0]:g} is outside [0, 1).",
                        "Use ratios from 0 (unpruned) up to below 1, e.g. 0, 0.25, 0.5.")
    return ratios


class SweepPanel:
    """Options for one sweep; ``on_sweep`` receives ``Sweep`` keyword arguments (all but the model)."""

    def __init__(self, on_sweep: Callable[[dict[str, Any]], None], on_cancel: Callable[[], None]) -> None:
        usable = [name for name, status in availability().items() if status.available]
        self.backends = W.SelectMultiple(options=usable, value=tuple(b for b in usable if b == DEFAULT_BACKEND),
                                         rows=min(len(usable), 4), description="Backends", **wide_layout())
        self.precisions = W.SelectMultiple(options=list(PRECISIONS), value=DEFAULT_PRECISIONS, rows=len(PRECISIONS),
                                           description="Precisions", **wide_layout())
        self.prune_methods = W.SelectMultiple(options=list(PRUNE_METHODS), value=(), rows=len(PRUNE_METHODS),
                                              description="Pruning methods", **wide_layout())
        self.prune_ratios = W.Text(value="0", placeholder="e.g. 0, 0.25, 0.5 (0 = unpruned)",
                                   description="Pruning ratios", **wide_layout())
        self.accuracy_budget = W.BoundedFloatText(value=0.5, min=0.0, max=100.0, step=0.1,
                                                  description="Budget (points)", **wide_layout())
        self.batch = W.BoundedIntText(value=1, min=1, max=4096, description="Batch", **wide_layout())
        self.repeats = W.BoundedIntText(value=30, min=3, max=10000, description="Timing repeats", **wide_layout())
        self.ray_address = W.Text(value="", placeholder="empty: this machine; auto, HOST:PORT or local",
                                  description="Ray cluster", **wide_layout())
        self.ray_classes = W.Text(value="", placeholder="e.g. cpu-amx, h200 (each cell runs on each)",
                                  description="On classes", **wide_layout())
        self.run_button = W.Button(description="Run sweep", button_style="primary", icon="play")
        self.cancel_button, self.bar, self.step, self.status = run_controls()
        self.recommendation = W.HTML()
        self.table = W.HTML()
        self.log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        self.rows: list[tuple[Run, bool]] = []
        self.failed: list[tuple[str, str]] = []
        self.recommended: str | None = None

        self.run_button.on_click(lambda _: self._run_clicked(on_sweep))
        self.cancel_button.on_click(lambda _: on_cancel())
        self.widget = W.VBox([
            heading_html_widget("Grid"),
            W.HTML("<small>Ctrl-click (⌘-click on a Mac) selects several; Shift-click a range.</small>"),
            self.backends, self.precisions, self.prune_methods, self.prune_ratios,
            heading_html_widget("Pick and measure"), self.accuracy_budget, self.batch, self.repeats,
            heading_html_widget("Where"), self.ray_address, self.ray_classes,
            W.HBox([self.run_button, self.cancel_button]), self.bar, self.step, self.status,
            self.recommendation, self.table, self.log,
        ])

    def where(self) -> tuple[str | None, list[str]]:
        """The Ray cluster's address (None: this machine) and the hardware classes to run every cell on."""
        return self.ray_address.value.strip() or None, [c for c in self.ray_classes.value.split(",") if c.strip()]

    def options(self) -> dict[str, Any]:
        """``Sweep`` keyword arguments; raises DataError, saying what to change, on an unusable grid."""
        if not self.backends.value:
            raise DataError("No backend is selected.", "Select one or more, e.g. onnxruntime-cpu and openvino "
                            "(ctrl- or shift-click to select several).")
        if not self.precisions.value:
            raise DataError("No precision is selected.", "Select one or more, e.g. fp32 and int8 "
                            "(ctrl- or shift-click to select several).")
        ratios = parse_ratios(self.prune_ratios.value)
        if any(r > 0 for r in ratios) and not self.prune_methods.value:
            raise DataError("Pruning ratios above 0 need a pruning method.",
                            "Select one or more pruning methods, or set the ratios to 0.")
        return {
            "base": BuildOptions(batch=self.batch.value, repeats=self.repeats.value),
            "backends": list(self.backends.value),
            "precisions": list(self.precisions.value),
            "prune_methods": list(self.prune_methods.value),
            "prune_ratios": ratios,
            "accuracy_budget": self.accuracy_budget.value,
        }

    def _run_clicked(self, on_sweep: Callable[[dict[str, Any]], None]) -> None:
        try:
            options = self.options()
        except DataError as exc:
            self.status.value = error_html(exc)
            return
        on_sweep(options)

    def set_running(self, running: bool) -> None:
        """While running only Cancel works; a new sweep starts from an empty table."""
        self.run_button.disabled = running
        self.cancel_button.disabled = not running
        if running:
            self.bar.value, self.bar.bar_style = 0.0, "info"
            self.step.value = "Starting."
            self.status.value = self.recommendation.value = self.table.value = ""
            self.rows, self.failed, self.recommended = [], [], None
            self.log.clear_output()

    def show_progress(self, event: ProgressEvent) -> None:
        """Called from the sweep thread: the bar covers the whole grid, the line names the current cell."""
        self.bar.value = max(self.bar.value, event.fraction)
        self.step.value = event.message or event.step

    def add_run(self, run: Run, reused: bool) -> None:
        """Called from the sweep thread as each cell ends: one more table row."""
        self.rows.append((run, reused))
        self._draw_table()

    def show_outcome(self, outcome: SweepOutcome) -> None:
        self.set_running(False)
        if outcome.ok:
            result = outcome.result
            self.failed = list(result.failed)
            self.recommended = result.recommended.run_id if result.recommended else None
            self.bar.value, self.bar.bar_style = 1.0, "warning" if result.failed else "success"
            self.step.value = (f"Done: {len(result.runs)} variants, {len(result.reused)} from the store, "
                               f"{len(result.failed)} failed.")
            picks = result.by_target or {None: (result.recommended, result.reason)}
            self.recommendation.value = "".join(
                note_html(f"{f'On {target}: ' if target else ''}" + (
                    f"Recommended: {best.label} ({best.run_id[:8]}), {reason}." if best
                    else f"No recommendation: {reason}."), warn=best is None)
                for target, (best, reason) in picks.items())
            self.status.value = note_html("The runs are in the Results tab.")
        else:
            self.bar.bar_style = "danger"
            self.step.value = "Stopped."
            if isinstance(outcome.error, Cancelled):
                self.status.value = error_html(
                    f"Sweep cancelled. The {len(self.rows)} finished variants are kept (see the Results tab); "
                    "run the sweep again to build only the rest.")
            else:
                self.status.value = error_html(outcome.error if not outcome.details else outcome.message)
            if outcome.details:
                self.log.append_stderr(outcome.details)
        self._draw_table()

    def show_message(self, html: str) -> None:
        self.status.value = html

    def frame(self) -> pd.DataFrame:
        """The table as shown: finished cells in grid order through the shared formatter (the digits the Results
        tab and the CLI print, under the same human column names), then failed cells with their error."""
        shown = figures_frame([run for run, _ in self.rows])
        shown["origin"] = ["reused" if reused else "built" for _, reused in self.rows]
        shown["note"] = [RECOMMENDED if run.run_id == self.recommended else "" for run, _ in self.rows]
        failed = pd.DataFrame([{"variant": cell, "origin": "failed", "note": error} for cell, error in self.failed],
                              columns=list(shown.columns))
        return pd.concat([shown, failed], ignore_index=True) if len(failed) else shown

    def _draw_table(self) -> None:
        frame = self.frame()
        # Headers on one line and the table scrolling inside the panel, as the Results tab's does.
        self.table.value = "" if frame.empty else SWEEP_STYLE + "<div class='wb-runs-box'>" + frame.to_html(
            index=False, classes="wb-sweep", na_rep="—", border=0) + "</div>"


SWEEP_STYLE = ("<style>.wb-runs-box{overflow-x:auto;max-width:100%}.wb-sweep{border-collapse:collapse;"
               "font-size:0.85em}.wb-sweep th,.wb-sweep td{padding:2px 6px;white-space:nowrap;text-align:right}"
               ".wb-sweep td:first-child,.wb-sweep th:first-child{text-align:left}</style>")

#: The Sweep tab's columns: the Results tab's names and digits, fewer of them.
SWEEP_COLUMNS = ["label", "backend", "hardware_class", "run_id", "latency_ms", "reference_ms", "speedup",
                 "baseline_backend", "speedup_vs_baseline", "accuracy_loss_pts", "loss_basis", "status"]


def figures_frame(runs: list[Run]) -> pd.DataFrame:
    """The finished cells in grid order, written as every other face writes them."""
    shown = shown_table(runs_frame(runs, oldest_first=False), SWEEP_COLUMNS) if runs else pd.DataFrame(
        columns=[CELLS[c][0] for c in SWEEP_COLUMNS])
    shown["run"] = shown["run"].str[:8]
    return shown
