"""``Workbench``: the whole app in one notebook cell, five tabs over one Pipeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as W
from IPython.display import display

from workbench.build_options import BuildOptions
from workbench.cluster.choice import cluster_executor
from workbench.errors import Busy, Cancelled, ModelError, WorkbenchError
from workbench.model.inspect import ModelInfo
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.sweep import Sweep, SweepResult
from workbench.runs.workspace import Workspace
from workbench.tasks import TaskChoice
from workbench.ui.build_panel import GUESS_TASK, BuildPanel
from workbench.ui.controller import BuildController, Outcome
from workbench.ui.graph_panel import GraphPanel
from workbench.ui.messages import error_html, note_html
from workbench.ui.model_panel import ModelPanel
from workbench.ui.results_panel import ResultsPanel
from workbench.ui.sweep_controller import SweepController, SweepOutcome
from workbench.ui.sweep_panel import SweepPanel
from workbench.ui.tune_controller import TuneController, TuneOutcome
from workbench.workflows.tune import DEFAULT_TIME_BUDGET, TuneResult

TABS = ("Model", "Build", "Results", "Graph", "Sweep")


class Workbench:
    """Model, Build, Results, Graph and Sweep tabs; builds and sweeps run on a background thread, one at a time.

    ``Workbench("model.onnx")`` opens the model at once; runs already in the workspace appear in
    the Results tab, so re-running the cell after a kernel restart shows the earlier runs. ``task``,
    ``metric``, ``budget`` and ``confidence`` preset the Build panel's fields of the same names.
    """

    def __init__(self, model: str | Path | None = None, workspace: str | Path | Workspace | None = None, *,
                 task: str | None = None, metric: Callable[..., float] | str | None = None,
                 budget: float | None = None, confidence: float | None = None) -> None:
        self.pipeline = Pipeline(workspace)
        self.controller = BuildController(self.pipeline, on_progress=self._progress, on_finish=self._finished)
        self.tuner = TuneController(self.pipeline, on_progress=self._progress, on_finish=self._tuned)
        self.model = ModelPanel(self.pipeline, self._opened)
        self.build = BuildPanel(self._start_build, self._cancel_build, self._start_tune)
        TaskChoice(task, metric, budget)  # a bad task, metric or budget is said now, not at the first build
        self.build.task.value = task or GUESS_TASK
        self.build.metric = metric
        self.build.budget.value = "" if budget is None else f"{budget:g}"
        if confidence is not None:  # checked as the options check it, so a typo is said now, not at the first build
            self.build.confidence.value = BuildOptions(confidence=confidence).confidence
        self.results = ResultsPanel(self.pipeline)
        self.graph = GraphPanel()
        self.sweeper = SweepController(self.pipeline, on_progress=self._sweep_progress, on_run=self._sweep_cell,
                                       on_finish=self._sweep_finished)
        self.sweep_panel = SweepPanel(self._start_sweep, self.sweeper.cancel)
        self.last_outcome: Outcome | None = None
        self.last_tune: TuneOutcome | None = None
        self.last_sweep: SweepOutcome | None = None
        self.tabs = W.Tab(children=[self.model.widget, self.build.widget, self.results.widget, self.graph.widget,
                                    self.sweep_panel.widget], titles=TABS)
        header = W.HTML(f"<b>ONNX Workbench</b> <small>workspace: "
                        f"<code>{escape(str(self.pipeline.workspace.root))}</code></small>")
        self.widget = W.VBox([header, self.tabs], layout=W.Layout(width="100%"))
        if model is not None:
            self.model.open(model)

    def _ipython_display_(self) -> None:
        display(self.widget)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running build or sweep has finished and the panels show it (scripts and tests)."""
        return self.controller.wait(timeout) and self.sweeper.wait(timeout) and self.tuner.wait(timeout)

    @property
    def busy(self) -> bool:
        """A build, search or sweep is running: they share the one pipeline, so none may start beside another."""
        return self.controller.busy or self.sweeper.busy or self.tuner.busy or self.pipeline.busy

    def tune(self, options: BuildOptions | None = None, *, time_budget: float = DEFAULT_TIME_BUDGET,
             backends: Sequence[str] | None = None, search_samples: int | None = None) -> TuneResult:
        """Find the fastest variant within the budget, exactly as the Build panel's search button does, and wait.

        ``options`` default to the Build panel's (data, batch, task, metric, budget); the search picks
        precision, recipe and kept nodes, on ``backends`` (default: every one that runs here), judging each trial
        on ``search_samples`` of the search part first (default: all of it). Raises the
        search's error, which the panel shows too.
        """
        self._open_idle_model()
        self._start_tune(options or self.build.options(), time_budget, backends, search_samples=search_samples)
        self.tuner.wait()
        outcome = self.last_tune
        if outcome is None or outcome.result is None:
            raise outcome.error if outcome and outcome.error else Busy("The search did not finish.", "Run it again.")
        return outcome.result

    def _open_idle_model(self) -> str:
        """The open model's path for work started from code, which is refused by raising, not in a panel."""
        if self.model.path is None:
            raise ModelError("No model is open.", "Open one first, e.g. Workbench('model.onnx').")
        if self.busy:
            raise Busy("A build or sweep is already running.", "Wait for it, or click Cancel.")
        return str(self.model.path)

    def _may_start(self, show_message: Callable[[str], None]) -> bool:
        """Whether a button may start work; when not, the clicked panel says why, since nothing raises to a user."""
        if self.model.path is None:
            show_message(error_html("No model is open. Open one in the Model tab first."))
            return False
        if self.busy:
            show_message(error_html("A build or sweep is already running. Wait for it, or click Cancel."))
            return False
        return True

    def _cancel_build(self) -> None:
        self.controller.cancel()
        self.tuner.cancel()

    def _start_tune(self, options: BuildOptions, time_budget: float, backends: Sequence[str] | None = None, *,
                    search_samples: int | None = None) -> None:
        if not self._may_start(self.build.show_message):
            return
        self.build.set_running(True)
        self.results.show_error(None)
        self.tuner.start(str(self.model.path), options, time_budget, backends, search_samples)

    def _tuned(self, outcome: TuneOutcome) -> None:
        self.last_tune = outcome
        if outcome.result is None:
            self.build.show_outcome(Outcome(error=outcome.error, message=outcome.message, details=outcome.details))
            return
        self.build.show_tuned(outcome.result)
        best = outcome.result.recommended
        self.results.refresh(new_run=best.run if best is not None else None)
        if self.model.path is not None:
            self.graph.set_variants(self.model.path, self.results.runs)

    def run(self, options: BuildOptions | None = None, *, profile_layers: bool = True,
            layer_drift: bool = True) -> Run:
        """Build from code exactly as the Build button does (layer profile and drift included), and wait.

        Raises the build's error, which the panels show too.
        """
        path = self._open_idle_model()
        self.build.set_running(True)
        self.results.show_error(None)
        self.controller.start(path, options or BuildOptions(), profile_layers, layer_drift)
        self.wait()
        outcome = self.last_outcome
        if outcome is None or outcome.run is None:
            raise outcome.error if outcome and outcome.error else Busy("The build did not finish.", "Run it again.")
        return outcome.run

    def sweep(self, base: BuildOptions | None = None, **grid: Any) -> SweepResult:
        """Sweep from code exactly as the Run sweep button does, and wait; the panel's table fills too.

        ``grid`` is ``Sweep``'s precisions, prune_methods, prune_ratios and accuracy_budget; raises
        the sweep's error, cancel included, which the panel shows too.
        """
        sweep = Sweep(self._open_idle_model(), base or BuildOptions(), **grid)
        sweep.cells()  # an unusable grid raises here, before anything starts
        self.sweep_panel.set_running(True)
        self.sweeper.start(sweep)
        self.sweeper.wait()
        outcome = self.last_sweep
        if outcome is None or outcome.result is None:
            raise outcome.error if outcome and outcome.error else Busy("The sweep did not finish.", "Run it again.")
        return outcome.result

    def select(self, tab: str) -> None:
        self.tabs.selected_index = TABS.index(tab)

    def _opened(self, path: Path, info: ModelInfo) -> None:
        self.results.show_model(info.digest)
        self.graph.set_variants(path, self.results.runs)
        # The model's name, not its file's: every sample's file is called model.onnx.
        self.build.show_message(note_html(f"Ready to build {info.name} ({path.name})."))
        self.sweep_panel.show_message(note_html(f"Ready to sweep {info.name}: set the grid, then click Run sweep."))

    def _start_build(self, options: BuildOptions, analyses: dict[str, bool]) -> None:
        if not self._may_start(self.build.show_message):
            return
        self.build.set_running(True)
        self.results.show_error(None)
        self.controller.start(str(self.model.path), options, **analyses)

    def _progress(self, event: Any) -> None:
        self.build.show_progress(event)

    def _finished(self, outcome: Outcome) -> None:
        self.last_outcome = outcome
        self.build.show_outcome(outcome)
        if isinstance(outcome.error, Cancelled):
            self.results.error.value = note_html(f"{outcome.error} Nothing partial was kept.")
            return
        if not outcome.ok:
            self.results.show_error(outcome.error if not outcome.details else outcome.message)
            return
        self.results.show_error(outcome.warning or None)
        self.results.refresh(new_run=outcome.run)
        if self.model.path is not None:
            self.graph.set_variants(self.model.path, self.results.runs)
        self.select("Results")

    def _start_sweep(self, options: dict[str, Any]) -> None:
        if not self._may_start(self.sweep_panel.show_message):
            return
        sweep = Sweep(str(self.model.path), **options)
        try:
            sweep.cells()
            executor = cluster_executor(*self.sweep_panel.where())
            if executor is not None:  # here, not on the sweep's thread: Ray sets signal handlers as it starts
                self.sweep_panel.show_message(note_html("Connecting to the Ray cluster..."))
                executor.connect()
        except WorkbenchError as exc:
            self.sweep_panel.show_message(error_html(exc))
            return
        self.sweep_panel.set_running(True)
        self.sweeper.start(sweep, executor)

    def _sweep_progress(self, event: Any) -> None:
        self.sweep_panel.show_progress(event)

    def _sweep_cell(self, run: Run, reused: bool) -> None:
        self.sweep_panel.add_run(run, reused)

    def _sweep_finished(self, outcome: SweepOutcome) -> None:
        """Finished cells are saved even when the sweep stopped early, so the Results tab shows them either way."""
        self.last_sweep = outcome
        self.sweep_panel.show_outcome(outcome)
        self.results.refresh()
        if self.model.path is not None:
            self.graph.set_variants(self.model.path, self.results.runs)
