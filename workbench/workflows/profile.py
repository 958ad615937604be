"""Profile one variant end to end: where its time goes, layer by layer, and what the layers miss.

The variant is built (or fetched from the cache) by the one Pipeline, then loaded twice through
its backend's own ``load``, exactly as a run loads it (session and provider options, I/O binding,
precision hint), once with ``profile_dir`` so the backend's profiler is on: a plain engine for the
end-to-end median and a profiled one whose ``end_profiling()`` gives the per-layer table (ONNX
Runtime's trace, OpenVINO's counters, TensorRT's ``IProfiler``). They are timed in interleaved
rounds, so both see the same machine state, and the warm-up runs are dropped from the table.

On ONNX Runtime's CPU provider both use the same number of intra-op threads, one by default:
with ORT's profiler on, kernels no longer spread over the intra-op pool (measured on a 16-core
CPU: digits_resnet FP32 0.59 ms plain with the default pool, 7.8 ms profiled; ORT issue #18600 reports the same), so a
multi-threaded plain session and a profiled one time two different programs. ``threads=0``
keeps ORT's default pool for both; the gap table then shows the difference as the profiler's
own cost.

The layer sum never equals the end-to-end time. The gap is split into what can be measured:
one-off slow kernel calls (a run's summed kernel time minus the sum of per-layer medians: a
kernel that stalls once per run, e.g. a thread-pool worker descheduled on a busy machine,
lands in a different layer each run, so the per-layer medians drop it while every run pays
it), ORT's executor between kernels (the ``model_run`` span minus the kernels), the Python binding
and copies around ``run()`` (the profiled engine's own time minus ``model_run``) and the
profiler's own cost (profiled minus plain end-to-end; it can be slightly negative from noise).
On millisecond-scale models these fixed per-run costs are a visible share; on larger ones they
fade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import onnx
import pandas as pd

from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.measure.latency import measure_latency
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs.pipeline import Pipeline, sibling_data, timing_feed
from workbench.runs.run import Run
from workbench.runs.saved_tables import LAYERS, load_run_table, save_run_table
from workbench.scratch import temp_folder

#: Timing-only evaluation inputs when a model comes without eval data.
RANDOM_EVAL = "random:16"


@dataclass
class LayerProfile:
    """The layer table beside the end-to-end median, with the gap between them accounted for."""

    layers: pd.DataFrame
    end_to_end_ms: float
    profiled_end_to_end_ms: float
    session_ms: float
    kernel_run_ms: float
    batch: int
    warmup: int
    repeats: int
    model_path: str
    precision: str
    run_id: str | None = None
    threads: int = 1
    notes: list[str] = field(default_factory=list)
    #: What runs between the profiled kernels (ORT's executor; for OpenVINO, all it does outside its counters).
    executor: str = "ORT executor between kernels"

    @property
    def layer_sum_ms(self) -> float:
        return float(self.layers["time_ms"].sum())

    @property
    def ratio(self) -> float:
        """Layer sum over the end-to-end median: 1.0 means the table explains all the time."""
        return self.layer_sum_ms / self.end_to_end_ms if self.end_to_end_ms > 0 else float("nan")

    def gap_table(self) -> pd.DataFrame:
        """Components that add up to the end-to-end median: kernels and the time outside them."""
        rows = [
            ("kernels (layer sum)", self.layer_sum_ms),
            ("one-off slow kernel calls", self.kernel_run_ms - self.layer_sum_ms),
            (self.executor, self.session_ms - self.kernel_run_ms),
            ("Python binding and copies around run()", self.profiled_end_to_end_ms - self.session_ms),
            ("minus the profiler's own cost", self.end_to_end_ms - self.profiled_end_to_end_ms),
        ]
        frame = pd.DataFrame(rows, columns=["component", "time_ms"])
        frame["share"] = frame["time_ms"] / self.end_to_end_ms
        return frame

    def to_dict(self) -> dict:
        """The JSON the CLI prints: figures first, then every layer."""
        layers = self.layers.astype(object).where(self.layers.notna(), None)
        return {
            "model": self.model_path,
            "precision": self.precision,
            "run_id": self.run_id,
            "batch": self.batch,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "threads": self.threads,
            "end_to_end_ms": self.end_to_end_ms,
            "layer_sum_ms": self.layer_sum_ms,
            "ratio": self.ratio,
            "session_ms": self.session_ms,
            "kernel_run_ms": self.kernel_run_ms,
            "profiled_end_to_end_ms": self.profiled_end_to_end_ms,
            "outside_kernels_ms": self.end_to_end_ms - self.layer_sum_ms,
            "gap": self.gap_table().to_dict(orient="records"),
            "notes": self.notes,
            "layers": layers.to_dict(orient="records"),
        }


def profile_model(
    model: str | Path,
    options: BuildOptions | None = None,
    *,
    threads: int = 1,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> LayerProfile:
    """Build the variant ``options`` describe through the pipeline (cached by spec), then profile it.

    Without eval data (none given, none beside the model) it times on random inputs.
    """
    options = options or BuildOptions()
    pipeline = pipeline or Pipeline()
    outer = Progress(progress, cancel)
    if options.eval is None and sibling_data(Path(model), "eval") is None:
        options = options.replace(eval=RANDOM_EVAL)
    run = pipeline.run(model, options, progress=outer.slice(0.0, 0.5).as_callback(), cancel=outer.cancel)
    return profile_run(run, options, threads=threads, pipeline=pipeline,
                       progress=outer.slice(0.5, 1.0).as_callback(), cancel=outer.cancel)


def profile_run(
    run: Run,
    options: BuildOptions | None = None,
    *,
    threads: int = 1,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> LayerProfile:
    """Profile a finished run's artifact on its backend and batch; saves the table with the run.

    ``options`` supplies the eval data and the warm-up and timed runs (the defaults when None).
    """
    options = options or BuildOptions()
    warmup, repeats = options.warmup, options.repeats
    pipeline = pipeline or Pipeline()
    progress_ = Progress(progress, cancel)
    if not run.artifact_exists:
        raise WorkbenchError(f"The model file of run {run.run_id} is gone: {run.artifact}.",
                             "Build the run again (workbench run ... --force).")
    model_path = Path(run.model_path)
    source = options.eval if options.eval is not None else (sibling_data(model_path, "eval") or RANDOM_EVAL)
    # An OpenVINO IR artifact has the inputs of the ONNX model it was read from.
    info = pipeline.inspect(run.model_path if Path(run.artifact).suffix == ".xml" else run.artifact)
    data = pipeline.load_data(source, info, "evaluation", options.preprocess)
    feed = timing_feed(data, run.spec.batch)
    # The run's own backend, set up as the run's build set it up: the same options, precision hint,
    # workspace cache and weights; the profile differs from the run only in the profiler being on.
    backend = (get_backend(run.spec.backend, dict(run.spec.backend_options))
               .for_precision(run.spec.precision).for_workspace(pipeline.workspace.root)
               .for_weights(sparse_2of4=run.spec.prune_method == "2:4").for_profiling(threads))
    progress_.report("profile", 0.0, "loading plain and profiled engines")
    artifact = Path(run.artifact)
    source_model = onnx.load(str(model_path), load_external_data=False) if model_path.is_file() else None
    with temp_folder("wb-profile-") as tmp, backend.load(artifact) as plain, \
            backend.load(artifact, Path(tmp)) as profiled:
        latency = measure_latency({"plain": plain, "profiled": profiled}, feed, warmup=warmup, repeats=repeats,
                                  progress=progress_.slice(0.0, 0.9))
        measured = profiled.end_profiling(warmup, run.spec.batch, source_model)
    profiled_ms = latency["profiled"].median
    profile = LayerProfile(
        layers=measured.layers,
        end_to_end_ms=latency["plain"].median,
        profiled_end_to_end_ms=profiled_ms,
        # Without a runtime span of its own, the profiled engine's time stands in: the gap then shows
        # everything outside the kernels as one row.
        session_ms=measured.session_ms if measured.session_ms is not None else profiled_ms,
        kernel_run_ms=measured.kernel_run_ms,
        batch=run.spec.batch,
        warmup=warmup,
        repeats=latency["plain"].repeats,
        model_path=run.artifact,
        precision=run.spec.precision,
        run_id=run.run_id,
        threads=getattr(backend, "threads", 0),
        notes=[f"eval data: {data.label}"] if data.is_random else [],
        executor=executor_label(run.spec.backend),
    )
    profile.notes += overlap_notes(profile)
    save_layer_table(run, measured.layers, pipeline)
    progress_.report("done", 1.0, f"layer sum {profile.layer_sum_ms:.3f} ms of {profile.end_to_end_ms:.3f} ms")
    return profile


def executor_label(backend: str) -> str:
    """The gap row between the layer sum and the engine's own time, in the words of that engine."""
    if backend.startswith("onnxruntime"):
        return "ORT executor between kernels"
    return f"{backend} outside its layer counters (negative: counters that overlap)"


def overlap_notes(profile: LayerProfile) -> list[str]:
    """Why a layer sum can exceed the end-to-end time, said where it does."""
    if profile.layer_sum_ms <= profile.end_to_end_ms:
        return []
    if profile.layer_sum_ms > profile.session_ms and not profile.executor.startswith("ORT"):
        return [f"the layer sum ({profile.layer_sum_ms:.3f} ms) exceeds the engine's own time "
                f"({profile.session_ms:.3f} ms): its per-layer counters overlap, layers running side by side on "
                "several threads each count their own time"]
    return [f"the layer sum ({profile.layer_sum_ms:.3f} ms) exceeds the plain end-to-end median "
            f"({profile.end_to_end_ms:.3f} ms): with the profiler on the model runs slower "
            f"({profile.profiled_end_to_end_ms:.3f} ms), and the layers are timed in that slower run"]


def save_layer_table(run: Run, layers: pd.DataFrame, pipeline: Pipeline) -> None:
    """Keep the table beside the artifact and list it in the run, for reports and widgets."""
    save_run_table(run, LAYERS, layers, pipeline.workspace)


def load_layer_table(run: Run) -> pd.DataFrame | None:
    """The layer table saved by ``profile_run``, or None if the run was never profiled."""
    return load_run_table(run, LAYERS)
