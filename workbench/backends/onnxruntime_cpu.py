"""ONNX Runtime on the CPU through Polygraphy's runner: the default that works everywhere."""

from __future__ import annotations

import copy
import importlib.metadata
import os
import statistics
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx

from workbench.backends.base import Availability, Backend, Engine
from workbench.errors import DataError
from workbench.profiles.layer_table import EngineProfile


def installed_onnxruntime_wheels() -> list[str]:
    """Which ONNX Runtime distributions are installed; two at once shadow each other."""
    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            found.append(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _quiet_polygraphy() -> None:
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.ERROR


class OnnxrtEngine(Engine):
    """Polygraphy's OnnxrtRunner around one session; timing reads the runner's own clock."""

    def __init__(self, session_loader: object, model_path: Path) -> None:
        from polygraphy.backend.onnxrt import OnnxrtRunner

        self.model_path = Path(model_path)
        _quiet_polygraphy()
        self.runner = OnnxrtRunner(session_loader)
        self.runner.activate()
        session = self.runner.sess
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.runner.infer(feed, check_inputs=False)
        return {name: np.asarray(outputs[name]) for name in self.output_names}

    def time_once(self, feed: dict[str, np.ndarray]) -> float:
        self.runner.infer(feed, check_inputs=False)
        return self.runner.last_inference_time() * 1000.0

    def end_profiling(self, warmup: int, batch: int, source_model: onnx.ModelProto | None = None) -> EngineProfile:
        """The layer table from ORT's trace: kernel events mapped back to the ONNX nodes they ran."""
        from workbench.profiles.ort_profile import layer_table_from_trace, read_ort_trace

        path = self.session.end_profiling()
        if not path:
            return super().end_profiling(warmup, batch, source_model)
        trace = read_ort_trace(path).after_warmup(warmup)
        model = onnx.load(str(self.model_path), load_external_data=False)
        layers = layer_table_from_trace(trace, model, batch=batch, source_model=source_model)
        return EngineProfile(layers, statistics.median(trace.kernel_sums_ms()),
                             statistics.median(trace.run_ms) if trace.run_ms else None)

    def close(self) -> None:
        if self.runner.is_active:
            self.runner.deactivate()


class OnnxruntimeCpuBackend(Backend):
    name = "onnxruntime-cpu"
    quant_target = "x86"
    integer_matmul = True
    description = "ONNX Runtime, CPU execution provider (default; runs everywhere, fully offline)"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    #: Intra-op threads; 0 is ONNX Runtime's default pool (one thread per core).
    threads: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> OnnxruntimeCpuBackend:
        """``threads=N`` sets the intra-op thread pool; nothing else is taken."""
        backend = super().from_options({k: v for k, v in options.items() if k != "threads"})
        if "threads" in options:
            backend.threads = parse_threads(options["threads"])
        return backend

    def for_profiling(self, threads: int) -> OnnxruntimeCpuBackend:
        """Both sessions of a profile get ``threads``: with the profiler on, ORT's kernels no longer spread
        over the pool, so a pooled plain session and a profiled one would time two different programs."""
        backend = copy.copy(self)
        backend.threads = threads
        return backend

    @classmethod
    def availability(cls) -> Availability:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return Availability(False, "ONNX Runtime is not installed: pip install 'onnx-workbench[cpu]'.")
        return Availability(True, "ONNX Runtime CPU is installed.")

    def session_options(self, profile_dir: Path | None) -> object:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        # The reference and the variant are timed in alternation with both sessions alive. Spinning
        # idle threads of one session steal the cores of the other (measured on digits_resnet b8 on
        # a 2-core CPU: FP32 12.1 ms with spinning vs 6.5 ms without), which skews every speed-up.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = self.threads
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_dir / "ort_profile")
        return options

    def _load(self, model_path: Path, profile_dir: Path | None) -> Engine:
        import onnxruntime as ort

        # Polygraphy's SessionFromOnnx takes no session options, so the session is built here (from
        # the path, which keeps external data working) and handed to its runner.
        session = ort.InferenceSession(str(model_path), self.session_options(profile_dir),
                                       providers=list(self.providers))
        return OnnxrtEngine(session, model_path)


#: More threads than this many per logical CPU only queue behind each other (and thread stacks cost memory).
MAX_THREADS_PER_CPU = 4


def parse_threads(text: str) -> int:
    """A thread count from a backend option (any engine's), or one sentence saying what is wrong with it."""
    try:
        threads = int(text)
    except ValueError:
        threads = -1
    if threads < 0:
        raise DataError(f"threads={text} is not a thread count.", "Use a whole number; 0 is the runtime's default.")
    cpus = os.cpu_count() or 1
    if threads > MAX_THREADS_PER_CPU * cpus:
        raise DataError(f"threads={threads} is far more than this machine's {cpus} logical CPUs, so the build did "
                        "not start;", f"use at most {cpus} (or 0, the runtime's default).")
    return threads
