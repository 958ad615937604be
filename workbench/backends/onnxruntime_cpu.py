"""ONNX Runtime on the CPU through Polygraphy's runner: the default that works everywhere."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from workbench.backends.base import Availability, Backend, Engine
from workbench.backends.error_text import error_text
from workbench.errors import BackendUnavailable, ModelError


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

    def __init__(self, session_loader: object) -> None:
        from polygraphy.backend.onnxrt import OnnxrtRunner

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

    def end_profiling(self) -> str | None:
        """Stop ORT's profiler and return the trace file it wrote (None if profiling was off)."""
        path = self.session.end_profiling()
        return path or None

    def close(self) -> None:
        if self.runner.is_active:
            self.runner.deactivate()


class OnnxruntimeCpuBackend(Backend):
    name = "onnxruntime-cpu"
    quant_target = "x86"
    description = "ONNX Runtime, CPU execution provider (default; runs everywhere, fully offline)"
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

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
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_dir / "ort_profile")
        return options

    def load(self, model_path: Path, profile_dir: Path | None = None) -> Engine:
        availability = self.availability()
        if not availability.available:
            raise BackendUnavailable(f"Backend '{self.name}' is unavailable.", availability.reason)
        import onnxruntime as ort

        try:
            # Polygraphy's SessionFromOnnx takes no session options, so the session is built here
            # (from the path, which keeps external data working) and handed to its runner.
            session = ort.InferenceSession(
                str(model_path), self.session_options(profile_dir), providers=list(self.providers)
            )
            return OnnxrtEngine(session)
        except Exception as exc:
            if isinstance(exc, (BackendUnavailable, ModelError)):
                raise
            raise ModelError(
                f"{self.name} could not load '{Path(model_path).name}': {error_text(str(exc))}",
                "Check the model runs in ONNX Runtime, or choose another precision or backend.",
            ) from exc
