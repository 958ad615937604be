"""Build tab: every pipeline option as a widget, the Build/Cancel buttons and the progress bar.

The panel only maps widget values onto one ``BuildOptions``; the controller runs
the build and the panel shows what the controller reports.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as W

from workbench.backends.registry import DEFAULT_BACKEND, availability
from workbench.build_options import BuildOptions
from workbench.data.images import ImagePreprocess
from workbench.errors import Cancelled, DataError
from workbench.glossary import TERMS, help_icon
from workbench.progress import ProgressEvent
from workbench.recipe import Recipe
from workbench.runs import format as fmt
from workbench.tasks import TASKS
from workbench.ui.controller import Outcome
from workbench.ui.messages import error_html, heading_html, note_html
from workbench.vocabulary import (
    CALIBRATION_METHODS,
    CONFIDENCE,
    DEFAULT_QUANTIZER,
    PRECISIONS,
    PRUNE_EFFECTS,
    PRUNE_METHODS,
    QUANTIZERS,
    WEIGHT_ALGORITHMS,
    WEIGHT_BACKUPS,
    WEIGHT_PRECISIONS,
    uses_calibration,
)
from workbench.workflows.tune import TuneResult

NO_PRUNING = "none"
GUESS_TASK = "guess"
LOG_LINES = 40
#: precision choice -> its glossary term (the button's tooltip)
PRECISION_TERMS = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16", "int8": "INT8", "int8-dynamic": "int8-dynamic",
                   "int8-weights": "int8-weights", "int4-weights": "int4-weights",
                   "fp8": "FP8"}

#: Calibration sources: the sample's own calib.npz, a path, an image folder, or labelled noise.
CALIB_BESIDE, CALIB_FILE, CALIB_IMAGES, CALIB_RANDOM = "beside", "file", "images", "random"
CALIB_CHOICES = [
    ("calib.npz beside the model", CALIB_BESIDE),
    (".npz file or .npy folder", CALIB_FILE),
    ("image folder", CALIB_IMAGES),
    ("random (timing only, accuracy meaningless)", CALIB_RANDOM),
]


def wide_layout() -> dict[str, Any]:
    """A Layout per widget: a shared one would hide them all when one field is hidden."""
    return {"style": {"description_width": "130px"}, "layout": W.Layout(width="460px")}


def run_controls() -> tuple[W.Button, W.FloatProgress, W.Label, W.HTML]:
    """The Cancel button, progress bar, step line and status of a panel that runs something slow: the Build and
    Sweep panels show the same ones, which the controllers' progress reports fill."""
    return (W.Button(description="Cancel", icon="stop", disabled=True),
            W.FloatProgress(value=0.0, min=0.0, max=1.0, description="Progress", bar_style="info",
                            layout=W.Layout(width="460px")),
            W.Label("Idle."), W.HTML())


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError as exc:
        raise DataError(f"The {what} '{text}' is not a list of numbers.", "Write numbers separated by commas, "
                        "e.g. 0.485, 0.456, 0.406.") from exc


class BuildPanel:
    """Options for one build; ``on_build`` receives the ``BuildOptions`` and the analyses to run after."""

    def __init__(self, on_build: Callable[[BuildOptions, dict[str, bool]], None],
                 on_cancel: Callable[[], None], on_tune: Callable[..., None] | None = None) -> None:
        status = availability()
        usable = [name for name, s in status.items() if s.available]
        self.backend = W.Dropdown(options=usable, value=DEFAULT_BACKEND if DEFAULT_BACKEND in usable else None,
                                  description="Backend", **wide_layout())
        self.backend_note = W.HTML(unavailable_html({name: s.reason for name, s in status.items() if not s.available}))
        self._backend_status = status
        self.backend_details = W.HTML()
        self.backend.observe(lambda _: self._show_backend_details(), names="value")
        self._show_backend_details()
        self.precision = W.ToggleButtons(options=list(PRECISIONS), value="int8", description="Precision",
                                         tooltips=[TERMS[PRECISION_TERMS[p]] for p in PRECISIONS],
                                         style={"description_width": "130px", "button_width": "auto"})
        # A None value would show as a blank box (ipywidgets' "nothing selected"), so "none" is a string.
        self.prune_method = W.Dropdown(options=[("none", NO_PRUNING), *[(m, m) for m in PRUNE_METHODS]],
                                       value=NO_PRUNING, description="Pruning", **wide_layout())
        self.prune_note = W.HTML()
        self.prune_ratio = W.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.05, description="Prune ratio",
                                         readout_format=".2f", disabled=True, **wide_layout())
        self.calib_source = W.Dropdown(options=CALIB_CHOICES, value=CALIB_BESIDE, description="Calibration data",
                                       **wide_layout())
        self.calib_path = W.Text(placeholder="path to .npz, .npy folder or image folder",
                                 description="Calibration path", **wide_layout())
        self.calib_count = W.BoundedIntText(value=64, min=1, max=4096, description="Random samples", **wide_layout())
        self.image_size = W.Text(placeholder="H, W (blank: the model's)", description="Resize to", **wide_layout())
        self.image_scale = W.FloatText(value=1 / 255, description="Scale", **wide_layout())
        self.image_mean = W.Text(value="0", description="Mean (per channel)", **wide_layout())
        self.image_std = W.Text(value="1", description="Std (per channel)", **wide_layout())
        self.image_layout = W.Dropdown(options=["NCHW", "NHWC"], description="Layout", **wide_layout())
        self.preprocess_box = W.VBox([self.image_size, self.image_scale, self.image_mean, self.image_std,
                                      self.image_layout])
        self._recipe_widgets()
        self.eval_path = W.Text(placeholder="blank: eval.npz beside the model", description="Evaluation data",
                                tooltip="Blank: eval.npz beside the model; or a path, or random (timing only)",
                                **wide_layout())
        self.eval_hint = W.HTML("<small>or the path of an .npz file or .npy folder, or <code>random</code> "
                                "(timing only)</small>")
        self.batch = W.BoundedIntText(value=1, min=1, max=4096, description="Batch", **wide_layout())
        self.repeats = W.BoundedIntText(value=30, min=3, max=10000, description="Timing repeats", **wide_layout())
        # A None value would show as a blank box, so the guess is a string too (options() maps it to None).
        self.task = W.Dropdown(options=[("guess from the outputs", GUESS_TASK), *[(name, name) for name in TASKS]],
                               value=GUESS_TASK, description="Task", **wide_layout())
        self.budget = W.Text(placeholder="blank: the task's default", description="Budget", **wide_layout())
        self.budget_note = W.HTML("<small>" + "; ".join(
            f"{t.name}: {escape(t.rule.format(b=t.budget))}" for t in TASKS.values())
            + "; classification with labels: at most 1 point of accuracy lost</small>")
        #: A user's own metric function (``Workbench(metric=fn)``); it decides instead of the task's.
        self.metric: Callable[..., float] | str | None = None
        self._search_widgets()
        self._action_widgets()

        self.prune_method.observe(lambda _: self._show_prune_note(), names="value")
        self.calib_source.observe(lambda _: self._show_calib_fields(), names="value")
        self.precision.observe(lambda _: self._show_calib_fields(), names="value")
        self.weight_algorithm.observe(lambda _: self._show_calib_fields(), names="value")
        self.build_button.on_click(lambda _: self._build_clicked(on_build))
        if on_tune is not None:
            self.tune_button.on_click(lambda _: self._tune_clicked(on_tune))
        self.cancel_button.on_click(lambda _: on_cancel())
        self.calib_box = W.VBox([self.calib_source, self.calib_path, self.calib_count, self.preprocess_box,
                                 with_help(self.calib_method, "minmax", "entropy", "percentile"), self.quantizer,
                                 self.reduce_range])
        self._show_calib_fields()
        self.widget = W.VBox([
            heading_html_widget("Target"), self.backend, self.backend_details, self.backend_note,
            self.precision, with_help(self.weights_box, *WEIGHT_PRECISIONS), with_help(self.batch, "batch"),
            heading_html_widget("Pruning"), with_help(self.prune_method, "pruning"), self.prune_note,
            self.prune_ratio,
            heading_html_widget("Data"), with_help(self.calib_box, "calibration"), self.eval_path, self.eval_hint,
            heading_html_widget("Judge"), self.task, self.budget, self.budget_note,
            with_help(self.confidence, "confidence"),
            heading_html_widget("Measure"), with_help(self.repeats, "latency", "speed-up"), self.profile_layers,
            self.layer_drift,
            W.HBox([self.build_button, self.cancel_button]),
            W.HBox([self.tune_button, self.time_budget]), with_help(self.search_samples, "search samples"),
            self.bar, self.step, self.status, self.log,
        ])

    def _recipe_widgets(self) -> None:
        """The Recipe's fields: calibration method, quantizer, and the weight-only options."""
        self.calib_method = W.Dropdown(options=list(CALIBRATION_METHODS), description="Calibration method",
                                       **wide_layout())
        self.quantizer = W.Dropdown(options=list(QUANTIZERS), value=DEFAULT_QUANTIZER, description="INT8 quantizer",
                                    **wide_layout())
        self.reduce_range = W.Dropdown(options=[("where this CPU needs them (no VNNI)", None), ("yes", True),
                                                ("no", False)], value=Recipe.reduce_range,
                                       description="7-bit weights", **wide_layout())
        # Weight-only choices (the Recipe's weight options), shown for int8-weights and int4-weights.
        self.block_size = W.Dropdown(options=[16, 32, 64, 128, 256], value=Recipe.block_size,
                                     description="Block size", **wide_layout())
        self.weight_algorithm = W.Dropdown(options=list(WEIGHT_ALGORITHMS), value=Recipe.weight_algorithm,
                                           description="Algorithm", **wide_layout())
        self.int4_ratio = W.FloatSlider(value=Recipe.int4_ratio, min=0.1, max=1.0, step=0.05,
                                        description="Share in 4 bits", **wide_layout())
        self.keep_last = W.Checkbox(value=Recipe.keep_last, description="Keep the last layer", indent=False)
        self.backup = W.Dropdown(options=list(WEIGHT_BACKUPS), value=Recipe.backup, description="Kept layers in",
                                 **wide_layout())
        self.weights_box = W.VBox([self.block_size, self.weight_algorithm, self.int4_ratio, self.keep_last,
                                   self.backup])

    def _search_widgets(self) -> None:
        """The level every verdict is drawn at (a build's and a search's), and how the search spends its time and
        its samples; the bounds keep the level inside [0.5, 1), where an interval can be drawn."""
        self.confidence = W.BoundedFloatText(value=CONFIDENCE, min=0.5, max=0.999, step=0.01,
                                             description="Confidence", **wide_layout())
        self.time_budget = W.BoundedIntText(value=600, min=10, max=86400, description="Search time (s)",
                                            **wide_layout())
        self.search_samples = W.BoundedIntText(value=0, min=0, max=10_000_000, description="Search samples",
                                               tooltip="0: judge every trial on the whole search part",
                                               **wide_layout())
        self.tune_button = W.Button(description="Find the fastest variant within the budget", icon="search",
                                    layout=W.Layout(width="320px"))

    def _action_widgets(self) -> None:
        """What runs after the build, the buttons, and the progress the controller reports."""
        self.profile_layers = W.Checkbox(value=True, description="Profile layers (timing plot)", indent=False)
        self.layer_drift = W.Checkbox(value=True, description="Per-layer drift (drift plot)", indent=False)
        self.build_button = W.Button(description="Build", button_style="primary", icon="play")
        self.cancel_button, self.bar, self.step, self.status = run_controls()
        self.log = W.HTML(layout=W.Layout(width="460px"))
        self._log_lines: list[str] = []
        self._last_step = ""

    def _prune_method(self) -> str | None:
        return None if self.prune_method.value == NO_PRUNING else self.prune_method.value

    def _show_prune_note(self) -> None:
        """Say what the chosen method buys before anyone waits for a build to find out."""
        method = self._prune_method()
        self.prune_ratio.disabled = method is None
        self.prune_note.value = "" if method is None else f"<small>{escape(PRUNE_EFFECTS[method])}</small>"

    def _show_backend_details(self) -> None:
        """The chosen backend's hardware and what each precision will do on it (OpenVINO: AMX, VNNI)."""
        status = self._backend_status.get(self.backend.value)
        lines = status.details if status else ()
        self.backend_details.value = ("<small>" + "<br>".join(escape(line) for line in lines) + "</small>"
                                      if lines else "")

    def _show_calib_fields(self) -> None:
        """Show only the fields the chosen precision and calibration source use."""
        source = self.calib_source.value
        weights = self.precision.value in WEIGHT_PRECISIONS
        self.weights_box.layout.display = None if weights else "none"
        self.int4_ratio.layout.display = self.backup.layout.display = \
            None if self.precision.value == "int4-weights" else "none"
        self.calib_box.layout.display = None if self._calibrated() else "none"
        self.calib_method.layout.display = self.quantizer.layout.display = None if not weights else "none"
        self.calib_path.layout.display = None if source in (CALIB_FILE, CALIB_IMAGES) else "none"
        self.calib_count.layout.display = None if source == CALIB_RANDOM else "none"
        self.preprocess_box.layout.display = None if source == CALIB_IMAGES else "none"

    def _calibrated(self) -> bool:
        return uses_calibration(self.precision.value, self.weight_algorithm.value)

    def _recipe(self) -> Recipe:
        """INT8's quantizer and calibration, or the weight-only choices: each precision's own fields."""
        if self.precision.value not in WEIGHT_PRECISIONS:
            return Recipe(quantizer=self.quantizer.value, calib_method=self.calib_method.value,
                          reduce_range=self.reduce_range.value)
        ratio = self.int4_ratio.value if self.precision.value == "int4-weights" else Recipe.int4_ratio
        return Recipe(block_size=self.block_size.value, weight_algorithm=self.weight_algorithm.value,
                      int4_ratio=round(ratio, 4), keep_last=self.keep_last.value, backup=self.backup.value)

    def options(self) -> BuildOptions:
        """The build the widgets describe (raises DataError on unreadable fields)."""
        method = self._prune_method()
        calib: str | None = None
        preprocess = None
        source = self.calib_source.value
        if self._calibrated() and source != CALIB_BESIDE:
            if source == CALIB_RANDOM:
                calib = f"random:{self.calib_count.value}"
            elif not self.calib_path.value.strip():
                raise DataError("No calibration path given.", "Type the path of the calibration data, "
                                "or choose 'calib.npz beside the model'.")
            else:
                calib = self.calib_path.value.strip()
            if source == CALIB_IMAGES:
                preprocess = self.preprocess()
        return BuildOptions(
            precision=self.precision.value,
            prune_method=method,
            prune_ratio=self.prune_ratio.value if method else 0.0,
            calib=calib,
            recipe=self._recipe(),
            eval=self.eval_path.value.strip() or None,
            preprocess=preprocess,
            backend=self.backend.value,
            batch=self.batch.value,
            repeats=self.repeats.value,
            task=None if self.task.value == GUESS_TASK else self.task.value,
            metric=self.metric,
            budget=self._budget(),
            confidence=self.confidence.value,
        )

    def _budget(self) -> float | None:
        text = self.budget.value.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise DataError(f"Budget '{text}' is not a number.", "Type e.g. 0.99, or leave it blank.") from None

    def analyses(self) -> dict[str, bool]:
        """What runs after the build: ``BuildController.start``'s ``profile_layers`` and ``layer_drift``."""
        return {"profile_layers": self.profile_layers.value, "layer_drift": self.layer_drift.value}

    def preprocess(self) -> ImagePreprocess:
        size = _floats(self.image_size.value, "resize size")
        if size and len(size) != 2:
            raise DataError(f"Resize to '{self.image_size.value}' needs two numbers.", "Write H, W, e.g. 224, 224.")
        return ImagePreprocess(
            size=(int(size[0]), int(size[1])) if size else None,
            scale=self.image_scale.value,
            mean=_floats(self.image_mean.value, "mean") or (0.0,),
            std=_floats(self.image_std.value, "std") or (1.0,),
            layout=self.image_layout.value,
        )

    def _build_clicked(self, on_build: Callable[[BuildOptions, dict[str, bool]], None]) -> None:
        try:
            options = self.options()
        except DataError as exc:
            self.status.value = error_html(exc)
            return
        on_build(options, self.analyses())

    def _tune_clicked(self, on_tune: Callable[..., None]) -> None:
        try:
            options = self.options()
        except DataError as exc:
            self.status.value = error_html(exc)
            return
        on_tune(options, float(self.time_budget.value), search_samples=self.search_samples.value or None)

    def show_tuned(self, result: TuneResult) -> None:
        """The search's pick and how it got there; red when nothing meets the budget."""
        self.set_running(False)
        self.bar.value = 1.0
        best = result.recommended
        self.bar.bar_style = "success" if best is not None else "danger"
        self.step.value = (f"Done: {best.run.label} on {best.backend}, {fmt.comparable_text(best.run)}."
                           if best is not None else "Done: no variant meets the budget.")
        story = f"<pre style='white-space:pre-wrap;font-size:0.85em'>{escape(result.explain())}</pre>"
        self.status.value = (note_html("The search's pick is in the Results tab.") if best is not None
                             else error_html("No variant meets the budget and runs faster than FP32.")) + story

    def set_running(self, running: bool) -> None:
        self.tune_button.disabled = running
        self.build_button.disabled = running
        self.cancel_button.disabled = not running
        if running:
            self.bar.value, self.bar.bar_style = 0.0, "info"
            self.status.value = ""
            self._last_step = ""

    def show_progress(self, event: ProgressEvent) -> None:
        """Called from the build thread: bar and step text; one log line per new step."""
        self.bar.value = max(self.bar.value, event.fraction)
        self.step.value = f"{event.step}: {event.message}" if event.message else event.step
        if event.step != self._last_step:
            self._last_step = event.step
            self.write_log(f"{event.step}: {event.message}")

    def show_outcome(self, outcome: Outcome) -> None:
        self.tune_button.disabled = False
        self.set_running(False)
        if outcome.ok:
            self.bar.value, self.bar.bar_style = 1.0, "success"
            self.step.value = f"Done: {outcome.run.label}, {fmt.speedup_text(outcome.run)}."
            self.status.value = (error_html(outcome.warning) if outcome.warning
                                 else note_html(f"Built {outcome.run.label}. See the Results tab."))
            if outcome.details:
                self.write_log(outcome.details)
        elif isinstance(outcome.error, Cancelled):
            self.bar.bar_style = "warning"
            self.step.value = "Cancelled."
            self.status.value = note_html(f"{outcome.error} Nothing partial was kept.")
        else:
            self.bar.bar_style = "danger"
            self.step.value = "Stopped."
            self.status.value = error_html(outcome.error if not outcome.details else outcome.message)
            if outcome.details:
                self.write_log(outcome.details)

    def write_log(self, text: str) -> None:
        """Newest line first: the box never needs scrolling to show what just happened."""
        self._log_lines = [text, *self._log_lines][:LOG_LINES]
        items = "".join(f"<div style='white-space:pre-wrap'>{escape(line)}</div>" for line in self._log_lines)
        self.log.value = (f"<div class='wb-log' style='max-height:160px;overflow:auto;border:1px solid #ddd;"
                          f"padding:2px 6px;font-family:monospace;font-size:0.85em'>{items}</div>")

    def show_message(self, html: str) -> None:
        self.status.value = html


def unavailable_html(reasons: dict[str, str]) -> str:
    """One short line; each backend's reason (what to install) folded away under it."""
    if not reasons:
        return ""
    items = "".join(f"<li><b>{escape(name)}</b>: {escape(reason)}</li>" for name, reason in reasons.items())
    return (f"<details style='font-size:0.85em;margin-left:134px'><summary>Not available here: "
            f"{escape(', '.join(reasons))} (why?)</summary><ul style='margin:2px 0'>{items}</ul></details>")


def with_help(widget: W.Widget, *terms: str) -> W.HBox:
    """The widget with a "?" beside it that explains it; with several terms (one per choice), each "?" follows
    the name of its choice, so none stands loose."""
    if len(terms) == 1:
        icons = help_icon(terms[0])
    else:
        icons = "<small>" + " · ".join(f"{escape(t)}{help_icon(t)}" for t in terms) + "</small>"
    return W.HBox([widget, W.HTML(icons)], layout=W.Layout(align_items="center"))


def heading_html_widget(text: str) -> W.HTML:
    return W.HTML(heading_html(text))
