"""``workbench tune``: the fastest variant that keeps the task metric within its budget.

What Intel Neural Compressor's accuracy-aware tuning and ``polygraphy debug precision`` aim at,
done on the ONNX graph and mapped to ONNX node names, every try a stored run:

0. **Screen**, on every backend, what costs one trial each: the backend's FP32, the precisions it
   runs from the FP32 file by a setting (OpenVINO's BF16 on a CPU with AVX-512 BF16 or AMX), plain
   dynamic INT8 and plain static INT8, and on OpenVINO the OpenVINO-native INT8 variant (NNCF on
   OpenVINO's own model, stored as IR; when it misses, only node fall-back follows, in ONNX node
   names mapped to its ignored scope). Speed-ups are against FP32 on the default backend, timed in
   the same rounds, so trials on different engines compare. Then only the INT8 searches that could
   still beat the best passing variant found so far are run, the most promising first.
1. **Recipes** for each precision the backend can speed up: static INT8 with MinMax; the same with
   the fragile nodes kept in FP32 (Softmax, LayerNorm, GELU, Sigmoid, Exp, the first conv, the
   classifier Gemm, a detector's last layers before its decode), the likeliest pass; only the
   convolutions and matrix products quantized; percentile and entropy calibration, NNCF's
   post-training quantization; then the best calibration with
   the fragile nodes kept, per-tensor scales, S8 symmetric activations. Dynamic INT8 (models with
   weight MatMuls) per channel and per tensor.
2. **Node fall-back** from the closest recipe that still misses and is still faster than FP32 and
   the best pass (fall-back only slows a variant down): candidates are only the nodes whose
   exclusion changes the built file (the ones the quantizer touched). They are measured in
   contiguous groups (so a 150-layer detector stays affordable), ranked by what each group recovers
   of the task metric, and kept greedily until the budget is met; then every kept group is split
   in halves that go back to INT8 while the budget still holds, so each node left in FP32 pays.

Calibration ranges and the quantization pre-pass are computed once per model and data and reused
by every trial (``precision.calibration``). A time budget stops the search between trials.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from workbench.backends.base import Backend
from workbench.backends.registry import availability, get_backend
from workbench.build_options import DEFAULT_BACKEND, BuildOptions
from workbench.errors import Busy, Cancelled, WorkbenchError
from workbench.precision.int8 import prepared_model
from workbench.precision.quantizers import NATIVE_AC_QUANTIZER, NATIVE_LABEL, NATIVE_QUANTIZER, NATIVE_QUANTIZERS
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.workspace import CALIBRATION_DIR
from workbench.tasks import task_score
from workbench.tasks.classification import margin_note
from workbench.workflows.tune_graph import (
    changed_by_exclusion,
    fragile_nodes,
    has_weight_matmul,
    quantized_by_native,
)
from workbench.workflows.tune_trials import NamedRecipe, Trial, TuneResult

if TYPE_CHECKING:
    from workbench.cluster.ray_executor import RayExecutor

DEFAULT_TIME_BUDGET = 600.0
#: Candidates are first measured in this many contiguous groups.
GROUPS = 8
#: Timed rounds for trials that rank candidates (the pick's own timing is whatever trial found it).
RANKING_REPEATS = 10
#: Calibration methods tried after MinMax, in this order.
CALIBRATION_METHODS = ("percentile", "entropy")
#: Precisions a backend may run from the FP32 file by a setting (``Backend.precision_hint``).
HINT_PRECISIONS = ("bf16", "fp16")
#: An INT8 search is worth its time only where its screened variants are this much faster than the best
#: passing variant already found: recipes and fall-back keep or lose speed, they rarely add it.
PROMISE = 1.05


def searchable_backends() -> list[str]:
    """Every registered backend that runs on this machine (new backends join through the registry)."""
    return [name for name, status in availability().items() if status.available]


def precisions_for(backend: str, model: onnx.ModelProto) -> list[str]:
    """The precisions worth trying on a backend, cheapest first: those it runs from the FP32 file by a
    setting where its hardware has them (no file to build); dynamic INT8 where the model has weight
    MatMul/Gemm layers (ONNX Runtime runs them on integer kernels); static INT8; FP16 files on GPUs. No INT8
    where the backend runs it for accuracy only (``Backend.int8_accuracy_only``): it cannot be the fastest."""
    instance = get_backend(backend)
    found = [precision for precision in HINT_PRECISIONS if _runs_by_hint(instance, precision)]
    if instance.int8_accuracy_only is None:  # INT8 that cannot be faster is not worth a trial (ask with precisions)
        if backend.startswith("onnxruntime") and has_weight_matmul(model):
            found.append("int8-dynamic")
        found.append("int8")
    if instance.quant_target == "tensorrt":
        found.append("fp16")
    return found


def _runs_by_hint(backend: Backend, precision: str) -> bool:
    try:
        return backend.precision_hint(precision) is not None
    except WorkbenchError:  # the hardware lacks it: nothing to screen
        return False


def compute_only(recipe: NamedRecipe) -> NamedRecipe:
    """``recipe`` with only convolutions and matrix products quantized (fewer Q/DQ pairs: often faster too)."""
    return recipe.derive("compute ops only", ops="compute")


#: NNCF on OpenVINO's own model, stored as OpenVINO IR: screened on the OpenVINO backends beside the portable file.
NATIVE_RECIPE = NamedRecipe(NATIVE_LABEL, "int8", Recipe(quantizer=NATIVE_QUANTIZER))
#: NNCF's accuracy-aware quantization of the same model (time-capped): tried when the native variant misses.
NATIVE_AC_RECIPE = NamedRecipe(f"{NATIVE_LABEL} accuracy control", "int8", Recipe(quantizer=NATIVE_AC_QUANTIZER))


def _label(nodes: Sequence[str]) -> str:
    if len(nodes) == 1:
        return nodes[0]
    return f"{len(nodes)} nodes {nodes[0]} .. {nodes[-1]}"


class _Search:
    def __init__(self, model: Path, base: BuildOptions, pipeline: Pipeline, time_budget: float,
                 progress: Progress) -> None:
        self.model = model
        self.base = base
        self.pipeline = pipeline
        self.started = time.monotonic()
        self.time_budget = time_budget
        self.progress = progress
        self.trials: list[Trial] = []
        self.steps: list[str] = []
        self.notes: list[str] = []
        self.out_of_time = False
        self.deadline = self.started + time_budget
        self.task: str | None = base.task

    @cached_property
    def model_graph(self) -> onnx.ModelProto:
        """The model without its weights' values: what every backend's screen reads, loaded once."""
        return onnx.load(str(self.model), load_external_data=False)

    # -- one trial -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def trial(self, step: str, description: str, recipe: NamedRecipe, kept: Sequence[str] = ()) -> Trial | None:
        if time.monotonic() >= self.deadline:
            if not self.out_of_time:
                self.notes.append(f"time budget reached ({self.time_budget:g} s in all, shared by the searches); "
                                  f"the search on {self.base.backend} stopped there")
            self.out_of_time = True
            return None
        fraction = min(0.99, self.elapsed() / self.time_budget)
        passing = sum(t.met for t in self.trials)
        left = max(0.0, self.time_budget - self.elapsed())
        said = (f"trial {len(self.trials) + 1} ({len(self.trials)} done, {passing} meet the budget; "
                f"{left:.0f} s of the {self.time_budget:g} s budget left): {description}")
        self.progress.report("tune", fraction, said)
        started = time.monotonic()
        options = recipe.options(self.base, tuple(kept))
        if step in ("rank", "check"):  # these trials are judged by the metric first; fewer timing rounds do
            options = options.replace(repeats=min(options.repeats, RANKING_REPEATS))
        try:
            # The trial's own steps, under the search's bar: a long build or timing round is never silent.
            run = self.pipeline.run(self.model, options, cancel=self.progress.cancel, progress=lambda event: (
                self.progress.report(f"tune {event.step}", fraction, f"{said} · {event.message}")))
        except (Cancelled, Busy):
            raise
        except WorkbenchError as exc:
            self.notes.append(f"{description} on {self.base.backend}: not built: {exc}")
            return None
        known = next((t for t in self.trials if t.run.run_id == run.run_id), None)
        if known is not None:  # the same file and settings reached again: one trial, not two
            return known
        trial = Trial(step, description, recipe, tuple(kept), run, time.monotonic() - started)
        self.trials.append(trial)
        return trial

    def _bought(self, before: Trial, after: Trial, what: str) -> None:
        self.steps.append(f"{what}: {after.score.metric} {before.score.value:.4f} -> {after.score.value:.4f}, "
                          f"speed {before.speedup:.2f}x -> {after.speedup:.2f}x ({after.backend})")

    # -- recipes ---------------------------------------------------------------------------------
    def plain_static(self) -> Trial | None:
        plain = self.trial("recipe", "static INT8, MinMax, per-channel", NamedRecipe("default", "int8"))
        if plain is None and not self.out_of_time:  # e.g. per-channel scales this opset cannot express
            plain = self.trial("recipe", "static INT8, MinMax, per-tensor", NamedRecipe(
                "per-tensor", "int8", Recipe(per_channel=False)))
        return plain

    def static_recipes(self, plain: Trial, tried: list[Trial]) -> Trial | None:
        """Recipes from the plain static INT8 trial on, until one meets the budget (every try joins ``tried``)."""
        default = plain.recipe
        # The fragile nodes first: the likeliest pass (a detector's head, a transformer's Softmax/LayerNorm).
        passed = self.fragile_recipe(plain, plain, tried)
        if passed is not None:
            return passed
        # Only the layers INT8 kernels speed up: a detector's output that concatenates pixel boxes with
        # [0, 1] scores, or a transformer's residual adds, then keep their own precision.
        recipes = [("only convolutions and matrix products quantized", compute_only(default))]
        recipes += [(f"{method} calibration instead of MinMax", default.derive(f"{method} calibration",
                                                                               calib_method=method))
                    for method in CALIBRATION_METHODS]
        # NNCF last: it collects its own statistics (no cached ranges), and its files ran slower than
        # FP32 on ONNX Runtime's CPU kernels for a YOLOX-style detector.
        recipes.append(("NNCF's quantizer instead of ONNX Runtime's", default.derive("NNCF", quantizer="nncf")))
        passed = self.first_that_pays(recipes, plain, tried)
        if passed is not None:
            return passed
        # NNCF picks its own scales: the variants below are ONNX Runtime's, on its best calibration.
        best = max([t for t in tried if t.recipe.recipe.quantizer != "nncf"], key=Trial.rank_key)
        if best is not plain:
            passed = self.fragile_recipe(best, plain, tried)
            if passed is not None:
                return passed
        variants = [("per-tensor scales", best.recipe.derive("per-tensor", per_channel=False)),
                    ("S8 symmetric activations", best.recipe.derive("S8 symmetric", activations="s8",
                                                                    symmetric=True))]
        return self.first_that_pays(variants, plain, tried)

    def first_that_pays(self, recipes: Sequence[tuple[str, NamedRecipe]], plain: Trial,
                        tried: list[Trial]) -> Trial | None:
        """Try ``recipes`` in order; the first that meets the budget faster than FP32 ends the recipe search."""
        kind = "dynamic" if plain.recipe.precision == "int8-dynamic" else "static"
        for what, recipe in recipes:
            trial = self.trial("recipe", f"{kind} INT8, {recipe.name}", recipe)
            if trial is not None:
                tried.append(trial)
                if trial.pays:
                    self._bought(plain, trial, what)
                    return trial
        return None

    def fragile_recipe(self, base: Trial, plain: Trial, tried: list[Trial]) -> Trial | None:
        """``base``'s recipe with the fragile nodes kept in FP32; when it passes, those that do not pay go back."""
        fragile = self.fragile(base)
        if fragile is None:
            return None
        reasons, nodes = fragile
        recipe = base.recipe.derive("fragile kept FP32", exclude_nodes=tuple(nodes))
        trial = self.trial("recipe", f"static INT8, {recipe.name}", recipe)
        if trial is None:
            return None
        tried.append(trial)
        if not trial.met:
            return None
        self._bought(plain, trial, f"kept FP32: {reasons}")
        kept = list(nodes)
        return self.check(base.recipe, (), kept, kept, trial, try_whole=False)

    def fragile(self, built: Trial) -> tuple[str, list[str]] | None:
        """The fragile nodes this build actually quantized, with the reasons they were picked."""
        prepared, built_model = self.graphs(built)
        changed = set(changed_by_exclusion(prepared, built_model))
        chosen: dict[str, list[str]] = {}
        for reason, nodes in fragile_nodes(prepared, self.task).items():
            hit = [n for n in nodes if n in changed]
            if hit:
                chosen[reason] = hit
        if not chosen:
            return None
        nodes = list(dict.fromkeys(n for hit in chosen.values() for n in hit))
        return "; ".join(f"{reason} ({len(hit)})" for reason, hit in chosen.items()), nodes

    def plain_dynamic(self) -> Trial | None:
        return self.trial("recipe", "dynamic INT8, per-channel", NamedRecipe("dynamic", "int8-dynamic"))

    def dynamic_recipes(self, plain: Trial, tried: list[Trial]) -> Trial | None:
        recipe = NamedRecipe("dynamic per-tensor", "int8-dynamic", Recipe(per_channel=False))
        return self.first_that_pays([("per-tensor weight scales", recipe)], plain, tried)

    # -- node fall-back --------------------------------------------------------------------------
    def graphs(self, trial: Trial) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        prepared, _ = prepared_model(Path(trial.run.model_path), self.pipeline.workspace.root / CALIBRATION_DIR)
        return (onnx.load(str(prepared), load_external_data=False),
                onnx.load(trial.run.artifact, load_external_data=False))

    def quantized_nodes(self, trial: Trial) -> list[str]:
        """The nodes a trial's build quantized, in ONNX names: only these can be kept in FP32."""
        if trial.recipe.recipe.quantizer == NATIVE_QUANTIZER:
            return quantized_by_native(self.model_graph, trial.run.artifact)
        return changed_by_exclusion(*self.graphs(trial))

    def fall_back(self, start: Trial) -> Trial | None:
        """Keep the fewest quantized nodes in FP32 that bring ``start`` within the budget."""
        base_kept = tuple(start.kept)
        candidates = [n for n in self.quantized_nodes(start) if n not in start.kept_nodes]
        if not candidates:
            self.notes.append(f"{start.recipe.name}: no quantized node left to keep in FP32")
            return None
        size = -(-len(candidates) // min(GROUPS, len(candidates)))
        groups = [candidates[i:i + size] for i in range(0, len(candidates), size)]
        measured = []
        for group in groups:
            trial = self.trial("rank", f"{start.recipe.name}: keep {_label(group)} in FP32", start.recipe,
                               base_kept + tuple(group))
            if trial is None:
                break
            measured.append((group, trial))
        if self.out_of_time:
            return None
        helpful = [(g, t) for g, t in measured if t.score.value > start.score.value]
        helpful.sort(key=lambda item: item[1].rank_key(), reverse=True)
        if not helpful:
            self.notes.append(f"{start.recipe.name}: no group of quantized nodes kept in FP32 improved "
                              f"{start.score.metric}")
            return None
        kept_groups: list[list[str]] = []
        current = start
        for group, alone in helpful:
            kept_groups.append(group)
            nodes = [n for g in kept_groups for n in g]
            trial = alone if len(kept_groups) == 1 else self.trial(
                "greedy", f"{start.recipe.name}: keep {len(nodes)} nodes in FP32", start.recipe,
                base_kept + tuple(nodes))
            if trial is None:
                return None
            self._bought(current, trial, f"kept {_label(group)} in FP32")
            current = trial
            if trial.met:
                break
            if trial.speedup <= max(1.0, self.best_speedup()):
                self.notes.append(f"{start.recipe.name}: stopped keeping groups in FP32 at {trial.speedup:.2f}x, "
                                  "no faster than FP32 or the best pass")
                return trial
        if not current.met:
            self.notes.append(f"{start.recipe.name}: even with every helpful group in FP32 the budget is missed")
            return current
        kept = [n for g in kept_groups for n in g]
        for index, group in enumerate(reversed(kept_groups)):
            # The group that alone did most is needed as a whole; only its halves can go back.
            whole = index < len(kept_groups) - 1
            current = self.check(start.recipe, base_kept, kept, group, current, try_whole=whole)
        return current

    def check(self, recipe: NamedRecipe, base_kept: tuple[str, ...], kept: list[str], part: list[str], current: Trial,
              try_whole: bool = True) -> Trial:
        """Send ``part`` (or, failing that, each half of it) back to INT8 while the budget still holds."""
        if not part or self.out_of_time:
            return current
        if try_whole:
            remaining = [n for n in kept if n not in part]
            trial = self.trial("check", f"{recipe.name}: does {_label(part)} still pay?", recipe,
                               base_kept + tuple(remaining))
            if trial is not None and trial.met:
                self._bought(current, trial, f"with {_label(part)} back in INT8 the budget still holds")
                kept[:] = remaining
                return trial
            if len(part) == 1:
                return current
        half = len(part) // 2
        current = self.check(recipe, base_kept, kept, part[:half], current)
        return self.check(recipe, base_kept, kept, part[half:], current)

    # -- screen and search -----------------------------------------------------------------------
    def best_speedup(self) -> float:
        """The fastest passing trial's speed-up so far; 0 while none passes (any search may still find one)."""
        return max([t.speedup for t in self.trials if t.pays], default=0.0)

    def screen(self, backend: str, precisions: Sequence[str] | None) -> tuple[Run | None, list[tuple[Trial, float]]]:
        """The backend's FP32 and one plain trial per precision; returns the INT8 trials that miss, each with
        the best speed-up its search may start from (static INT8 is also tried with only the compute layers
        quantized: fewer Q/DQ pairs can make it the faster of the two)."""
        self.base = self.base.replace(backend=backend)
        try:
            baseline = self.pipeline.run(self.model, self.base.replace(precision="fp32", recipe=Recipe()),
                                         cancel=self.progress.cancel)
        except (Cancelled, Busy):
            raise
        except WorkbenchError as exc:
            self.notes.append(f"{backend}: FP32 baseline failed: {exc}")
            return None, []
        self.task = self.task or task_score(baseline.drift).task
        if backend != DEFAULT_BACKEND:  # another engine's FP32 may itself be the fastest answer
            self.trials.append(Trial("screen", "FP32", NamedRecipe("fp32", "fp32"), (), baseline, 0.0))
        missed = []
        accuracy_only = get_backend(backend).int8_accuracy_only
        if precisions is None and accuracy_only:
            self.notes.append(f"{backend}: INT8 not tried, {accuracy_only} (ask for it with --precisions int8)")
        for precision in precisions or precisions_for(backend, self.model_graph):
            if precision == "int8":
                plain = self.plain_static()
            elif precision == "int8-dynamic":
                plain = self.plain_dynamic()
            else:
                plain = self.trial("recipe", precision.upper(), NamedRecipe(precision, precision))
            if plain is None or plain.pays or not precision.startswith("int8"):
                continue
            potential = plain.speedup
            if precision == "int8":
                compute = self.trial("recipe", "static INT8, compute ops only", compute_only(plain.recipe))
                if compute is not None and not compute.pays:
                    potential = max(potential, compute.speedup)
            missed.append((plain, potential))
        if backend.startswith("openvino") and "int8" in (precisions or precisions_for(backend, self.model_graph)):
            # OpenVINO's own quantizer on its own model: the file a user of OpenVINO's tools would get.
            native = self.trial("recipe", f"static INT8, {NATIVE_LABEL} (NNCF on OpenVINO's model)", NATIVE_RECIPE)
            if native is not None and not native.pays:
                missed.append((native, native.speedup))
        return baseline, missed

    def refine_native(self, native: Trial) -> None:
        """NNCF chose the native variant's recipe: NNCF's own accuracy control (judged by the task, capped in
        time), then, where it misses or is slower, the workbench's node fall-back on the native variant."""
        self.base = self.base.replace(task=self.task)  # what NNCF's accuracy control validates by
        control = self.trial("recipe", f"static INT8, {NATIVE_AC_RECIPE.name}", NATIVE_AC_RECIPE)
        if control is not None and control.pays:
            self._bought(native, control, "NNCF's accuracy control on OpenVINO's model")
            if control.speedup >= native.speedup / PROMISE:
                return  # the fall-back could only slow the native variant to about the same speed
        if not self.out_of_time and native.speedup > max(1.0, self.best_speedup()) * PROMISE:
            self.fall_back(native)

    def refine(self, plain: Trial) -> None:
        """Recipes, then node fall-back, from a plain INT8 trial that missed."""
        self.base = self.base.replace(backend=plain.backend)
        self.out_of_time = False
        if plain.recipe.recipe.quantizer == NATIVE_QUANTIZER:
            self.refine_native(plain)
            return
        tried = [plain]
        recipes = self.static_recipes if plain.recipe.precision == "int8" else self.dynamic_recipes
        if recipes(plain, tried) is not None or self.out_of_time:
            return
        # Fall-back only slows a variant down: it starts from the closest recipe that still has speed to give.
        floor = max(1.0, self.best_speedup()) * PROMISE
        starts = [t for t in tried if not t.met and t.speedup > floor]
        if not starts:
            self.notes.append(f"{plain.description} on {plain.backend}: node fall-back skipped, no recipe that "
                              f"misses runs faster than {floor:.2f}x (FP32 or the best pass, and 5%)")
            return
        self.fall_back(max(starts, key=Trial.rank_key))


def portable_if_as_fast(best: Trial, passing: Sequence[Trial], notes: list[str]) -> Trial:
    """The fastest portable (ONNX) pick instead of an OpenVINO-native IR that is not measurably faster: within
    the native run's own speed-up spread, the file that runs on every backend is the better answer."""
    if best.recipe.recipe.quantizer not in NATIVE_QUANTIZERS:
        return best
    portable = [t for t in passing if t.recipe.recipe.quantizer not in NATIVE_QUANTIZERS]
    if not portable:
        return best
    closest = max(portable, key=lambda t: t.speedup)
    if closest.speedup < best.speedup - (best.run.speedup_spread or 0.0):
        return best
    notes.append(f"the {NATIVE_LABEL} variant ({best.speedup:.2f}x) is not measurably faster than the portable "
                 f"{closest.run.spec.precision} file ({closest.speedup:.2f}x, within its spread of "
                 f"{best.run.speedup_spread or 0.0:.2f}): the portable file is the pick")
    return closest


def closest_note(trials: Sequence[Trial]) -> str | None:
    """Where no trial qualifies, the measurably faster one nearest the budget, and for a classifier whether
    the classes it changed are those FP32 itself barely decides (then no reduced precision may keep them)."""
    faster = [t for t in trials if t.speedup > 1.0 and not t.run.within_noise and not t.met and not t.score.broken]
    if not faster:
        return None
    closest = max(faster, key=lambda t: (t.score.value, t.speedup))
    why = margin_note(closest.score.details) if closest.score.task == "classification" else None
    return (f"closest: {closest.run.run_id} on {closest.backend}, {closest.run.spec.precision} "
            f"({closest.recipe.name}), {closest.speedup:.2f}x at {closest.short_metric()} "
            f"(budget {closest.score.rule})" + (f"; {why}" if why else ""))


def pick_step(best: Trial) -> str:
    """The last step names the pick itself, so no earlier step can be read as describing it: which trial won,
    which nodes it keeps in FP32, and why it won (the fastest trial that meets the budget and pays)."""
    kept = best.kept_nodes
    shown = f": {_label(kept)}" if kept else ""
    return (f"picked {best.run.label} on {best.backend} ({best.recipe.name}), {len(kept)} node(s) kept in FP32{shown}:"
            f" the fastest trial that meets the budget, {best.speedup:.2f}x")


def tune(
    model: str | Path,
    options: BuildOptions | None = None,
    *,
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    time_budget: float = DEFAULT_TIME_BUDGET,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    executor: RayExecutor | None = None,
) -> TuneResult:
    """Search recipes, then node fall-back, on every backend that runs here (or ``backends``).

    ``options`` give the data, batch, task, metric and budget; the search sets precision, recipe
    and kept nodes itself. The pick is the fastest trial that meets the budget and beats FP32.
    With a cluster ``executor`` of one hardware class the whole search runs on a node of that class
    (``RayExecutor.run_tune`` tunes several classes at once).
    """
    options = options or BuildOptions()
    if time_budget <= 0:
        raise WorkbenchError(f"Time budget {time_budget:g} s leaves no time to search.", "Give seconds > 0.")
    pipeline = pipeline or Pipeline()
    if executor is not None:
        return tuned_on(executor, model, options, pipeline, progress, cancel,
                        backends=backends, precisions=precisions, time_budget=time_budget)
    progress_ = Progress(progress, cancel)
    search = _Search(Path(model), options, pipeline, time_budget, progress_)
    baselines: dict[str, Run] = {}
    names = list(backends or searchable_backends())
    for name in names:
        get_backend(name)  # an unknown or missing backend is the user's to fix, said at once
    missed: list[tuple[Trial, float]] = []
    for backend in names:
        baseline, misses = search.screen(backend, precisions)
        if baseline is not None:
            baselines[backend] = baseline
        missed += misses
    if not baselines:  # nothing to compare against: an error to fix, not "no variant meets the budget"
        raise WorkbenchError(f"The FP32 baseline failed on every backend searched, so nothing was tuned: "
                             f"{'; '.join(note.rstrip('.') for note in search.notes)}.",
                             "Fix what the message says (the model or its data) and run tune again.")
    # The fastest INT8 first: its search has the most speed to spend on accuracy.
    missed.sort(key=lambda item: item[1], reverse=True)
    for index, (plain, potential) in enumerate(missed):
        if potential <= search.best_speedup() * PROMISE:
            search.notes.append(f"{plain.description} on {plain.backend}: not searched, its fastest screened "
                                f"variant ({potential:.2f}x) cannot beat the {search.best_speedup():.2f}x found")
            continue
        # Each search gets an equal share of the time left, so the first cannot starve the others.
        left = search.started + time_budget - time.monotonic()
        search.deadline = time.monotonic() + max(0.0, left) / (len(missed) - index)
        search.refine(plain)
    passing = [t for t in search.trials if t.pays]
    best = max(passing, key=lambda t: t.speedup) if passing else None
    if best is not None:
        best = portable_if_as_fast(best, passing, search.notes)
    if best is None:
        met = [t for t in search.trials if t.met]
        search.notes.append("no variant meets the budget and runs faster than FP32" if not met else
                            "variants that meet the budget run no measurably faster than FP32 here")
        closest = closest_note(search.trials)
        if closest:
            search.notes.append(closest)
    if best is not None:
        search.steps.append(pick_step(best))
    progress_.report("done", 1.0, "search finished")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return TuneResult(best, search.trials, baselines, search.elapsed(), peak, search.steps, search.notes)


def tuned_on(executor: RayExecutor, model: str | Path, options: BuildOptions, pipeline: Pipeline,
             progress: ProgressCallback | None, cancel: CancelToken | None, **search: object) -> TuneResult:
    """The search on a node of the executor's one hardware class, its runs stored in ``pipeline``'s workspace."""
    if len(executor.targets) != 1:
        raise WorkbenchError(f"tune() returns one result, for one hardware class; {len(executor.targets)} were "
                             "named.", "Give one class, or call executor.run_tune(...) for a result per class.")
    outcome = executor.run_tune(str(model), options, search, pipeline, progress, cancel)[executor.targets[0]]
    if isinstance(outcome, str):
        raise WorkbenchError(f"The tune on {executor.targets[0]} failed: {outcome}", "Fix what it says and run again.")
    return outcome
