"""``Workbench``: the whole app in one notebook cell, four tabs over one Pipeline."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as W
from IPython.display import display

from workbench.errors import Busy, ModelError
from workbench.model.inspect import ModelInfo
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.workspace import Workspace
from workbench.ui.build_panel import BuildPanel
from workbench.ui.controller import BuildController, Outcome
from workbench.ui.graph_panel import GraphPanel
from workbench.ui.messages import error_html, note_html
from workbench.ui.model_panel import ModelPanel
from workbench.ui.results_panel import ResultsPanel

TABS = ("Model", "Build", "Results", "Graph")


class Workbench:
    """Model, Build, Results and Graph tabs; builds run on a background thread.

    ``Workbench("model.onnx")`` opens the model at once; runs already in the workspace appear in
    the Results tab, so re-running the cell after a kernel restart shows the earlier runs.
    """

    def __init__(self, model: str | Path | None = None, workspace: str | Path | Workspace | None = None) -> None:
        self.pipeline = Pipeline(workspace)
        self.controller = BuildController(self.pipeline, on_progress=self._progress, on_finish=self._finished)
        self.model = ModelPanel(self.pipeline, self._opened)
        self.build = BuildPanel(self._start_build, self.controller.cancel)
        self.results = ResultsPanel(self.pipeline)
        self.graph = GraphPanel()
        self.last_outcome: Outcome | None = None
        self.tabs = W.Tab(children=[self.model.widget, self.build.widget, self.results.widget, self.graph.widget],
                          titles=TABS)
        header = W.HTML(f"<b>ONNX Workbench</b> <small>workspace: "
                        f"<code>{escape(str(self.pipeline.workspace.root))}</code></small>")
        self.widget = W.VBox([header, self.tabs], layout=W.Layout(width="100%"))
        if model is not None:
            self.model.open(model)

    def _ipython_display_(self) -> None:
        display(self.widget)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running build has finished and the panels show it (scripts and tests)."""
        return self.controller.wait(timeout)

    def run(self, precision: str = "fp32", **options: Any) -> Run:
        """Build from code exactly as the Build button does (layer profile and drift included), and wait.

        Options are ``Pipeline.run``'s, plus ``profile_layers`` and ``layer_drift``; raises the
        build's error, which the panels show too.
        """
        if self.model.path is None:
            raise ModelError("No model is open.", "Open one first, e.g. Workbench('model.onnx').")
        if self.controller.busy:
            raise Busy("A build is already running.", "Wait for it, or click Cancel.")
        self.build.set_running(True)
        self.results.show_error(None)
        self.controller.start(str(self.model.path), precision=precision, **options)
        self.wait()
        outcome = self.last_outcome
        if outcome is None or outcome.run is None:
            raise outcome.error if outcome and outcome.error else Busy("The build did not finish.", "Run it again.")
        return outcome.run

    def select(self, tab: str) -> None:
        self.tabs.selected_index = TABS.index(tab)

    def _opened(self, path: Path, info: ModelInfo) -> None:
        self.results.show_model(info.digest)
        self.graph.set_variants(path, self.results.runs)
        self.build.show_message(note_html(f"Building from {path.name}."))

    def _start_build(self, options: dict[str, Any]) -> None:
        if self.model.path is None:
            self.build.show_message(error_html("No model is open. Open one in the Model tab first."))
            return
        if self.controller.busy:
            self.build.show_message(error_html("A build is already running. Wait for it, or click Cancel."))
            return
        self.build.set_running(True)
        self.results.show_error(None)
        self.controller.start(str(self.model.path), **options)

    def _progress(self, event: Any) -> None:
        self.build.show_progress(event)

    def _finished(self, outcome: Outcome) -> None:
        self.last_outcome = outcome
        self.build.show_outcome(outcome)
        if not outcome.ok:
            self.results.show_error(outcome.error if not outcome.details else outcome.message)
            return
        self.results.show_error(outcome.warning or None)
        self.results.refresh(new_run=outcome.run)
        if self.model.path is not None:
            self.graph.set_variants(self.model.path, self.results.runs)
        self.select("Results")
