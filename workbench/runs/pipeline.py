"""The one pipeline behind the CLI, the widgets and the Python API.

model → (prune) → precision variant → backend engine → latency beside the FP32 reference
+ drift on the evaluation set → Run, saved in the workspace. Identical specs are served from
the workspace instead of being rebuilt.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench.backends.base import Backend
from workbench.backends.error_text import error_text
from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions, DataSource
from workbench.data.dataset import Dataset
from workbench.data.images import ImagePreprocess
from workbench.data.loaders import load_data
from workbench.data.validate import validate_dataset
from workbench.errors import BuildError, Busy, DataError, WorkbenchError
from workbench.files import write_json_atomically
from workbench.measure.drift import compare_engines
from workbench.measure.footprint import file_megabytes, first_batch, loaded_with_rss
from workbench.measure.latency import (
    MAX_TIMING_S,
    CannotReach,
    LatencyStats,
    speedup_interval,
    speedup_spread,
    time_rounds,
)
from workbench.measure.machine_load import load_note, watch_machine_load
from workbench.memory.guard import ENGINES, check_batch_within_eval, check_timing_fits
from workbench.model.inspect import ModelInfo, inspect_model
from workbench.model.loader import load_model
from workbench.precision.nncf_accuracy import DEFAULT_MAX_DROP
from workbench.precision.quantizers import NATIVE_AC_QUANTIZER, NATIVE_QUANTIZERS, artifact_name
from workbench.precision.variants import build_variant
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs.build_lock import LOCK_FILE, hold, timing_lock_path
from workbench.runs.disk import full_disk_named
from workbench.runs.environment import environment
from workbench.runs.inputs import Inputs
from workbench.runs.prune_step import PRUNED_LAYERS, pruned_source
from workbench.runs.run import TIMING_CAPPED, TIMING_STOPPED, Run
from workbench.runs.spec import Digests, RunSpec
from workbench.runs.workspace import CALIBRATION_DIR, Workspace
from workbench.scratch import build_scratch
from workbench.tasks import TaskChoice, rejudge, task_score
from workbench.tasks.classification import margin_note
from workbench.tasks.custom import load_metric
from workbench.tasks.registry import get_task
from workbench.vocabulary import uses_calibration

#: Timing goes on past the requested repeats until this much time has passed: a model that runs in
#: 0.1 ms needs thousands of rounds before its median stops moving between two runs.
MIN_TIMING_S = 1.0
#: Beside an INT8 artifact: the graph its quantizer saw (pruned, opset-upgraded, pre-processed).
QUANTIZED_FROM = "quantized_from.onnx"
#: The precisions whose runs record it.
QUANTIZED = ("int8", "int8-dynamic")


def sibling_data(model_path: Path, name: str) -> Path | None:
    """``calib.npz``/``eval.npz`` beside the model (the sample layout), used when none is given."""
    candidate = model_path.parent / f"{name}.npz"
    return candidate if candidate.is_file() else None


class Pipeline:
    """Builds and measures runs in one workspace; one build at a time per pipeline."""

    def __init__(self, workspace: Workspace | str | Path | None = None,
                 target: Mapping[str, str] | None = None) -> None:
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        #: ``hardware_class`` and ``machine`` on a cluster node (workbench.cluster): part of every run's identity.
        self.target = dict(target or {})
        self._lock = threading.Lock()
        #: Each model's inspection (its FLOPs need shape inference) by file digest: a search asks for it every trial.
        self._inspected: dict[str, ModelInfo] = {}
        #: (backend, model digest) pairs whose unchanged model already loaded: a search builds many variants of one
        #: model, and compiling a large model only to check it loads costs seconds and its weights' memory each time.
        self._loadable: set[tuple[str, str]] = set()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def inspect(self, model: str | Path) -> ModelInfo:
        return inspect_model(load_model(model))

    def load_data(self, source: DataSource, info: ModelInfo, role: str,
                  preprocess: ImagePreprocess | None = None) -> Dataset:
        data = source if isinstance(source, Dataset) else load_data(source, info.inputs, preprocess)
        return validate_dataset(data, info.inputs, role)

    def runs(self, model_digest: str | None = None) -> list[Run]:
        runs = self.workspace.runs()
        return [r for r in runs if model_digest is None or r.spec.model_digest == model_digest]

    def run(
        self,
        model: str | Path,
        options: BuildOptions | None = None,
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> Run:
        """Build (or fetch from the workspace) and measure one variant; raises WorkbenchError.

        ``force`` rebuilds even when an identical run is stored. The options' ``task`` (guessed from
        the outputs when None), ``metric`` and ``budget`` decide how the variant is judged, at the options'
        ``confidence``; the verdict is stored with the run as ``drift["task"]``.
        """
        if options is not None and not isinstance(options, BuildOptions):
            raise TypeError(f"Pipeline.run takes a BuildOptions, not {type(options).__name__}: "
                            "e.g. Pipeline().run(model, BuildOptions('int8', batch=8)).")
        options = options or BuildOptions()
        choice = TaskChoice(options.task, options.metric, options.budget, options.confidence)
        if not self._lock.acquire(blocking=False):
            raise Busy("A build is already running.", "Wait for it to finish or cancel it first.")
        progress_ = Progress(progress, cancel)
        try:
            # The workspace's build lock first: what the later steps clean up on failure is then surely ours.
            with hold(self.workspace.root / LOCK_FILE, f"building {Path(model).name}", progress_), \
                    build_scratch(self.workspace.scratch_dir), self.workspace.unsaved_removed_on_failure(), \
                    full_disk_named(self.workspace.root):
                return self._run(model, options, force, progress_, choice)
        except MemoryError as exc:
            raise WorkbenchError("The build ran out of memory.",
                                 "Use fewer calibration samples or a smaller batch.") from exc
        finally:
            self._lock.release()

    def _inputs(self, model: str | Path, calib: DataSource, eval_: DataSource, wants_calib: bool,
                preprocess: ImagePreprocess | None) -> Inputs:
        loaded = load_model(model)
        info = self._inspected.get(loaded.digest) or self._inspected.setdefault(loaded.digest, inspect_model(loaded))
        calib = calib if calib is not None else (sibling_data(loaded.path, "calib") if wants_calib else None)
        eval_ = eval_ if eval_ is not None else sibling_data(loaded.path, "eval")
        if eval_ is None:
            raise DataError(
                "No evaluation data: latency and drift need inputs to run the model on.",
                "Pass --eval PATH (an .npz with one array per input and optional labels), "
                "or --eval random for timing on synthetic data.",
            )
        calib_data = self.load_data(calib, info, "calibration", preprocess) if calib is not None else None
        eval_data = self.load_data(eval_, info, "evaluation", preprocess)
        return Inputs(loaded, info, calib_data, eval_data)

    def _run(self, model: str | Path, options: BuildOptions, force: bool, progress: Progress,
             choice: TaskChoice) -> Run:
        progress.report("load", 0.0, "loading the model and data")
        check_native_backend(options)
        precision, batch = options.precision, options.batch
        backend = get_backend(options.backend, options.backend_options).for_workspace(self.workspace.root)
        backend.check_precision(precision)
        hint_note = backend.precision_hint(precision)
        wants_calib = uses_calibration(precision, options.recipe.weight_algorithm) or (
            options.pruned and options.repair)
        inputs = self._inputs(model, options.calib, options.eval, wants_calib, options.preprocess)
        first_dim = inputs.info.inputs[0].shape[0] if inputs.info.inputs[0].shape else None
        if isinstance(first_dim, int) and first_dim not in (batch, -1, 0):
            raise DataError(f"The model's batch size is fixed at {first_dim}; batch {batch} cannot run.",
                            f"Use --batch {first_dim}, or re-export the model with a dynamic batch dim.")
        options = with_accuracy_control_drop(options, choice)
        spec = RunSpec.from_options(options, Digests(inputs.model.digest, inputs.info.name,
                                                     inputs.calib.digest if inputs.calib else None,
                                                     inputs.eval.digest))
        spec = dataclasses.replace(spec, **self.target)
        backend = backend.for_weights(sparse_2of4=spec.prune_method == "2:4")
        cached = self._cached(spec, choice, force or self._retime(spec, options.timing_bar))
        if cached is not None:
            progress.report("done", 1.0, "identical run found in the workspace")
            return cached
        check_batch_within_eval(batch, len(inputs.eval), inputs.eval.label)
        check_timing_fits(inputs.model.proto, timing_feed(inputs.eval, batch), batch,
                          engines=ENGINES + (backend.name != backend.baseline_backend))
        if choice.metric is not None:
            load_metric(choice.metric)  # runs the user's module: only now, after every other check passed
        built = self._build(inputs, options, spec, backend, hint_note, choice, force, progress)
        inputs.model = inputs.model.without_weight_values()  # built: the engines read the files, not these weights
        measured = _measure(inputs, options, spec, backend, built.artifact, choice, progress)
        run = _record(inputs, options, spec, backend, built, measured)
        self.workspace.save_run(run)
        progress.report("done", 1.0, f"{run.label}: {run.speedup:.2f}x vs FP32 on {backend.name}")
        return run

    def _cached(self, spec: RunSpec, choice: TaskChoice, force: bool) -> Run | None:
        """The stored run of this spec, re-judged by the budget and confidence asked now, unless it must be rebuilt."""
        cached = self.workspace.load_run(spec.run_id)
        # A run stored before runs recorded the graph their quantizer saw is rebuilt once, so every INT8 run has it.
        recorded = cached is not None and (cached.quantized_from is not None or spec.precision not in QUANTIZED)
        if not recorded or not cached.artifact_exists or force or task_score(cached.drift) is None:
            return None
        cached.drift["task"] = rejudge(cached.drift, choice.budget, choice.confidence).to_dict()
        cached.measurement = {**cached.measurement, "budget": choice.budget, "confidence": choice.confidence}
        return cached

    def _retime(self, spec: RunSpec, bar: float | None) -> bool:
        """Whether a stored run whose timing a search stopped early must be timed in full: asked for outside a
        search, or by a search whose bar it may reach (one whose cap cut it short only outside a search: a search
        that reaches it again takes the rounds it has)."""
        cached = self.workspace.load_run(spec.run_id)
        if cached is None or not cached.timing_stopped_early:
            return False
        return bar is None or (cached.comparable_speedup >= bar and not cached.timing_capped)

    def _build(self, inputs: Inputs, options: BuildOptions, spec: RunSpec, backend: Backend, hint_note: str | None,
               choice: TaskChoice, force: bool, progress: Progress) -> _Built:
        """The variant's file (pruned first where asked), built or reused from the workspace, and its notes."""
        precision = options.precision
        artifact_dir = self.workspace.artifact_dir(spec.artifact_key)
        name = artifact_name(precision, spec.quantizer, dict(spec.quant_options).get("weight_writer"))
        built = _Built(artifact_dir / name, inputs.info.flops / 1e9)
        built.notes += [f"{role} data converted to the model's types ({data.cast_from})"
                        for role, data in (("calibration", inputs.calib), ("evaluation", inputs.eval))
                        if data is not None and data.cast_from]
        source = inputs.model.path
        if spec.prune_key is not None:
            pruned = pruned_source(inputs, spec, self.workspace.pruned_dir(spec.prune_key),
                                   progress.slice(0.02, 0.15), reuse=not force)
            built.notes += pruned.notes
            source, built.gflops, built.tables[PRUNED_LAYERS] = pruned.path, pruned.gflops, str(pruned.layers_table)
        built.notes += option_notes(options, backend, hint_note)
        seen = artifact_dir / QUANTIZED_FROM
        unrecorded = precision in QUANTIZED and not hint_note and not seen.is_file()
        if not built.artifact.is_file() or force or unrecorded:
            # The model itself first: an op the backend cannot run is the model's problem, not the variant's.
            if (backend.name, inputs.model.digest) not in self._loadable:
                backend.load(inputs.model.path).close()
                self._loadable.add((backend.name, inputs.model.digest))
            variant = build_variant(
                source, built.artifact, "fp32" if hint_note else precision, options.recipe,
                check=backend.check_loadable, target=backend.quant_target, calib=inputs.calib,
                cache_dir=self.workspace.root / CALIBRATION_DIR, keep_seen=seen,
                probe=inputs.calib if inputs.calib is not None else inputs.eval, task=choice.task,
                weight_runtime=backend.weight_runtime, finish_fp8=backend.finish_fp8,
                time_cap_s=options.build_time_cap, progress=progress.slice(0.15, 0.55),
            )
            built.notes += [] if hint_note else variant.notes
            write_json_atomically(artifact_dir / "build.json", {"spec": spec.to_dict(), "notes": built.notes})
        else:
            built.notes.append("variant reused from the workspace cache")
        if inputs.eval.is_random:
            built.notes.append("evaluated on RANDOM data: latency is meaningful, accuracy and drift are not")
        built.quantized_from = seen if seen.is_file() else None
        return built


@dataclass
class _Built:
    """What building the variant left: its file, the graph its quantizer saw, its FLOPs, tables and notes."""

    artifact: Path
    gflops: float
    quantized_from: Path | None = None
    tables: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Measured:
    """The timing rounds, their statistics, the drift and what loading each engine cost."""

    rounds: dict
    latency: dict[str, LatencyStats]
    drift: dict
    rss_mb: dict
    load: dict
    notes: list[str]


def option_notes(options: BuildOptions, backend: Backend, hint_note: str | None) -> list[str]:
    """What the run's notes say about choices this precision or backend treats specially."""
    notes = [hint_note] if hint_note else []
    if options.precision in QUANTIZED and backend.int8_accuracy_only:
        notes.append(f"INT8 on {backend.name} measures accuracy, not speed: {backend.int8_accuracy_only}")
    shaping = options.recipe.options_for(options.precision)
    unused = {k: v for k, v in options.recipe.options().items() if k not in shaping}
    if unused:
        notes.append(f"--quant-option {', '.join(f'{k}={v}' for k, v in unused.items())} ignored: "
                     f"it does not shape a {options.precision} file")
    return notes


def _measure(inputs: Inputs, options: BuildOptions, spec: RunSpec, backend: Backend, artifact: Path,
             choice: TaskChoice, progress: Progress) -> _Measured:
    """FP32 and the variant (and the device's default engine's FP32 on another engine) timed in the same
    rounds, then the variant judged against FP32 on the evaluation data."""
    batch, precision = options.batch, options.precision
    timing = progress.slice(0.55, 0.8)
    timing.report("time", 0.0, "loading engines")
    notes: list[str] = []
    # FP32 of the unchanged file is its own reference: one engine (a second copy of its weights would double the
    # run's memory on a large model), timed once, so its speed-up is 1 by construction, not by noise.
    itself = spec.exact
    with ExitStack() as stack:
        feed = timing_feed(inputs.eval, batch)
        engines, rss_mb = {}, {}
        for name, path, runs_as in (("reference", inputs.model.path, "fp32"), ("variant", artifact, precision)):
            if itself and name == "variant":
                engines[name], rss_mb[name] = engines["reference"], rss_mb["reference"]
                continue
            run_once = first_batch(feed) if name == "reference" else variant_first_batch(feed, precision, backend.name)
            engines[name], rss_mb[name] = loaded_with_rss(
                lambda path=path, runs_as=runs_as: stack.enter_context(backend.for_precision(runs_as).load(path)),
                run_once)
        if backend.name != backend.baseline_backend:
            # FP32 on the device's default engine, timed in blocks alternating with the others' rounds
            # (workbench.measure.latency): the cross-engine figure every backend's runs share.
            engines["baseline"] = stack.enter_context(get_backend(backend.baseline_backend).load(inputs.model.path))
        # Settings a backend chose for speed must leave the results alone: checked on the evaluation data.
        notes += engines["variant"].check_options(engines["reference"], inputs.eval, batch)
        with hold(timing_lock_path(), f"timing {spec.model_name}", timing), watch_machine_load() as load:
            yardstick = "baseline" if "baseline" in engines else "reference"
            stop = None if options.timing_bar is None else CannotReach(
                options.timing_bar, yardstick, "reference" if itself else "variant")
            timed = {name: engine for name, engine in engines.items() if not (itself and name == "variant")}
            cap = options.timing_cap if options.timing_cap is not None else MAX_TIMING_S
            rounds = time_rounds(timed, feed, warmup=options.warmup, repeats=options.repeats, min_seconds=MIN_TIMING_S,
                                 max_seconds=cap, progress=timing, apart=("baseline",), stop=stop)
            rounds.setdefault("variant", rounds["reference"])
        if "baseline" in engines:  # only timed: its weights need not stay beside the two the evaluation runs
            engines.pop("baseline").close()
        if options.timing_cap is not None and not (stop is not None and stop.fired) and \
                len(rounds["reference"]) < options.repeats:
            notes.append(f"{TIMING_STOPPED}: after {len(rounds['reference'])} of {options.repeats} rounds, "
                         f"{TIMING_CAPPED} of {options.timing_cap:g} s of timing per trial")
        if stop is not None and stop.fired:
            notes.append(f"{TIMING_STOPPED}: after {len(rounds['variant'])} rounds even its fastest was below the "
                         f"{options.timing_bar:.2f}x a faster variant of the search already reached")
        latency = {name: LatencyStats.from_samples(ms, options.warmup, batch) for name, ms in rounds.items()}
        drift = compare_engines(engines["reference"], engines["variant"], inputs.eval, batch, choice,
                                progress.slice(0.8, 1.0))
        notes += engines["variant"].execution_notes()
        # An FP32 reference timed differently (e.g. without CUDA graphs) changes the speed-up: say so.
        notes += [f"FP32 reference: {n}" for n in engines["reference"].execution_notes() if n not in notes]
    return _Measured(rounds, latency, drift, rss_mb, load, notes)


def variant_first_batch(feed: dict[str, np.ndarray], precision: str, backend: str) -> Callable[[object], object]:
    """The built variant's first batch. A file the engine loads can still fail when it runs (a quantizer that
    broke an index computation gives a Gather out of bounds): that is the build's failure, said in the
    engine's words with what to do, not an unexpected error; no stored run is touched."""
    infer = first_batch(feed)

    def run_once(engine: object) -> object:
        try:
            return infer(engine)
        except WorkbenchError:
            raise
        except Exception as exc:  # engines raise their own types; the text is what the user needs
            raise BuildError(
                f"The {precision} variant was built and loads on {backend}, but its first inference fails: "
                f"{error_text(str(exc))}",
                "Try another precision, quantizer or calibration method, or keep the named node in FP32 "
                "(--exclude); the FP32 model is unaffected.",
            ) from exc
    return run_once


def _record(inputs: Inputs, options: BuildOptions, spec: RunSpec, backend: Backend, built: _Built,
            measured: _Measured) -> Run:
    """The run as stored: every figure once, from the measurement."""
    latency, rounds = measured.latency, measured.rounds
    baseline = latency.get("baseline", latency["reference"])
    notes = built.notes + measured.notes + task_notes(measured.drift)
    notes += [note for note in [load_note(measured.load)] if note]
    return Run(
        run_id=spec.run_id,
        spec=spec,
        artifact=str(built.artifact),
        model_path=str(inputs.model.path.absolute()),
        latency_ms=latency["variant"].to_dict(),
        reference_latency_ms=latency["reference"].to_dict(),
        speedup=latency["reference"].median / latency["variant"].median,
        speedup_spread=speedup_spread(rounds["reference"], rounds["variant"]),
        speedup_interval=speedup_interval(rounds.get("baseline", rounds["reference"]), rounds["variant"]),
        baseline_latency_ms=baseline.to_dict(),
        speedup_vs_baseline=baseline.median / latency["variant"].median,
        baseline_backend=backend.baseline_backend,
        drift=measured.drift,
        calib_source=inputs.calib.label if inputs.calib else None,
        eval_source=inputs.eval.label,
        notes=notes,
        model_gflops=built.gflops,
        tables=built.tables,
        file_mb=file_megabytes(built.artifact),
        reference_file_mb=file_megabytes(inputs.model.path),
        engine_rss_mb=measured.rss_mb["variant"],
        reference_rss_mb=measured.rss_mb["reference"],
        environment={**environment(), "machine_load": measured.load},
        measurement={"warmup": options.warmup, "repeats": options.repeats, "budget": options.budget,
                     "confidence": options.confidence},
        quantized_from=str(built.quantized_from) if built.quantized_from else None,
    )


def task_notes(drift: dict) -> list[str]:
    """The task verdict as build notes; a broken variant is said so in words, never a silent success."""
    score = task_score(drift)
    how = f"guessed: {score.details.get('task_reason')}" if score.guessed else "as set"
    notes = [f"judged as {score.task} ({how}): {score.verdict}"]
    if score.broken:
        notes.append(f"BROKEN variant: {score.broken}; do not use it")
    margins = margin_note(score.details) if score.task == "classification" and not score.met else None
    if margins:
        notes.append(margins)
    return notes


def with_accuracy_control_drop(options: BuildOptions, choice: TaskChoice) -> BuildOptions:
    """For NNCF's accuracy control without a ``max_drop`` of its own, the largest drop it may leave: what the
    budget allows below FP32 (the task's default budget when none is set), so the budget keys the file."""
    if options.precision != "int8" or options.recipe.quantizer != NATIVE_AC_QUANTIZER or \
            options.recipe.max_drop is not None:
        return options
    budget = choice.budget if choice.budget is not None else (get_task(choice.task).budget if choice.task else None)
    drop = 1.0 - budget if budget is not None and 0 < budget <= 1 else DEFAULT_MAX_DROP
    return options.with_recipe(max_drop=round(drop, 6))


def check_native_backend(options: BuildOptions) -> None:
    """The OpenVINO-native variant is an OpenVINO IR file: only the OpenVINO backends run it."""
    if options.precision == "int8" and options.recipe.quantizer in NATIVE_QUANTIZERS \
            and not options.backend.startswith("openvino"):
        raise WorkbenchError(f"The OpenVINO-native INT8 variant is OpenVINO IR, which {options.backend} cannot run.",
                             "Use --backend openvino, or --quantizer nncf for the portable ONNX file.")


def timing_feed(data: Dataset, batch: int) -> dict[str, np.ndarray]:
    """The first ``batch`` samples, tiled when the set is smaller than one batch."""
    reps = -(-batch // max(len(data), 1))
    feed = {}
    for name, array in data.inputs.items():
        axis = data.axis(name)
        if axis is None:  # a scalar: fed whole
            feed[name] = array
            continue
        tiled = np.concatenate([array] * reps, axis=axis) if reps > 1 else array
        feed[name] = np.ascontiguousarray(tiled[(slice(None),) * axis + (slice(0, batch),)])
    return feed
