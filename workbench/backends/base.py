"""The interface every execution backend implements (ONNX Runtime CPU/CUDA, TensorRT, OpenVINO).

Precision lives in the ONNX file, so a backend only has to load a file, run it, time it and say
whether it can load it at all; the INT8 flavour it wants (U8 activations for x86, symmetric S8
for TensorRT) is the one thing the precision transforms need to know about it. The exception is
a backend that runs a precision *by hint*: OpenVINO runs BF16/FP16 as an inference-precision
setting on the FP32 file, so for those precisions the pipeline builds no converted file and asks
the backend, through ``for_precision``, for an instance set to that precision instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from workbench.backends.error_text import error_text
from workbench.backends.fp8_support import fp8_refusal
from workbench.errors import BackendUnavailable, BuildError, DataError, ModelError, WorkbenchError

if TYPE_CHECKING:
    import onnx

    from workbench.data.dataset import Dataset
    from workbench.profiles.layer_table import EngineProfile

QuantTarget = Literal["x86", "tensorrt"]


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, the sentence that says how to get it."""

    available: bool
    reason: str
    #: Extra lines for listings: the device, the hardware features that matter, what each precision does.
    details: tuple[str, ...] = ()


class Engine(ABC):
    """A loaded model ready to run; one per variant, closed when measurement ends."""

    input_names: list[str]
    output_names: list[str]

    @abstractmethod
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once and return host arrays for every output."""

    @abstractmethod
    def time_once(self, feed: dict[str, np.ndarray]) -> float:
        """Run once and return the model's own time in milliseconds (no input checks or copies)."""

    def end_profiling(self, warmup: int, batch: int, source_model: onnx.ModelProto | None = None) -> EngineProfile:
        """Stop the profiler of an engine loaded with ``profile_dir`` and return its layer table.

        ``warmup``: the first runs, dropped; ``batch``: the batch the runs were fed (for FLOPs);
        ``source_model``: the model the variant was built from, whose node names the table maps to.
        """
        raise WorkbenchError("This engine was loaded without a profiler, so it has no layer table.",
                             "Load it with profile_dir=... (workbench profile does).")

    def execution_notes(self) -> list[str]:
        """What the engine did with the file, seen after running it (e.g. which layers ran in INT8)."""
        return []

    def check_options(self, reference: Engine, data: Dataset, batch: int) -> list[str]:
        """Check settings chosen for speed against the FP32 ``reference`` on ``data`` before timing, drop those
        that change the results, and return what was found; engines without such settings have nothing to do."""
        return []

    def close(self) -> None:
        """Release the session/engine; safe to call twice."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(ABC):
    """A way to execute ONNX models; stateless apart from its options."""

    name: ClassVar[str]
    quant_target: ClassVar[QuantTarget]
    description: ClassVar[str]
    #: Why INT8 Q/DQ files measure accuracy only here (no integer kernels to speed them up); None where they run
    #: on integer kernels. Runs say it, and tune spends no trials on INT8 here unless asked.
    int8_accuracy_only: ClassVar[str | None] = None
    #: The engine family that runs this backend's weight-only INT8/INT4 files (``precision.weight_only``):
    #: "onnxruntime" or "openvino"; None where it runs none.
    weight_runtime: ClassVar[str | None] = "onnxruntime"
    #: The FP32 every run here is also compared with (its cross-engine figure): the default engine of the
    #: same kind of device, so a GPU's headline is against FP32 on the GPU, never against the CPU.
    baseline_backend: ClassVar[str] = "onnxruntime-cpu"
    #: Runs dynamic INT8's integer MatMul kernels (MatMulInteger, DynamicQuantizeLinear) fast: worth screening.
    integer_matmul: ClassVar[bool] = False
    #: FP16 files pay on its device (GPU tensor cores), so the search screens them.
    half_files: ClassVar[bool] = False
    #: Has its own INT8 quantizer on its own model (NNCF on OpenVINO's model, stored as IR): the search screens it.
    native_int8: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Checked before anything is built, so the user learns early why a backend is missing."""

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Backend:
        """This backend with the user's settings (``--backend-option KEY=VALUE``); by default it takes none."""
        if options:
            raise DataError(f"Backend '{cls.name}' takes no options (given: {', '.join(options)}).",
                            "Remove the backend options, or choose a backend that uses them.")
        return cls()

    def load(self, model_path: Path, profile_dir: Path | None = None) -> Engine:
        """Load a model file; ``profile_dir`` turns on the backend's per-layer profiler.

        Every caller opens engines here (builds, timing, drift, profiles), so each gets the same
        availability check and one sentence for a file the backend cannot load, whatever raised it.
        """
        status = self.availability()
        if not status.available:
            raise BackendUnavailable(f"Backend '{self.name}' is unavailable.", status.reason)
        try:
            return self._load(Path(model_path), profile_dir)
        except WorkbenchError:
            raise
        except Exception as exc:  # the backend's own error, in the one sentence every caller shows
            raise ModelError(f"{self.name} could not load '{Path(model_path).name}': {error_text(str(exc))}",
                             "Check the model runs on this backend, or choose another precision or backend.") from exc

    @abstractmethod
    def _load(self, model_path: Path, profile_dir: Path | None) -> Engine:
        """Open the engine (availability is checked and errors are worded by ``load``)."""

    def for_profiling(self, threads: int) -> Backend:
        """This backend as a profile's two engines need it; only a CPU thread pool has a setting to match."""
        return self

    def check_precision(self, precision: str) -> None:
        """Raise BuildError, before anything is built, for a precision this backend cannot run here at all.
        FP8 needs FP8 tensor cores; a backend on an NVIDIA GPU says which one it has (``fp8_gpu``)."""
        if precision == "fp8":
            refusal = fp8_refusal(self.name, self.fp8_gpu())
            if refusal:
                raise BuildError(refusal)

    def fp8_gpu(self) -> tuple[str, tuple[int, int]] | None:
        """The NVIDIA GPU (name, compute capability) this backend runs on; None for CPUs and other devices."""
        return None

    def finish_fp8(self, path: Path, source: Path, probe: Dataset | None) -> list[str]:
        """Make the FP8 Q/DQ file at ``path`` (built from ``source``) what this backend runs best, in place, and
        say what it will do with it. By default the Q/DQ pairs run as they are: a simulation, no FP8 speed."""
        return [f"FP8 on {self.name}: the Q/DQ pairs run as a simulation (quantize, dequantize, FP32 kernels), so its "
                "accuracy is FP8's and its speed is not"]

    def precision_hint(self, precision: str) -> str | None:
        """None when ``precision`` needs a converted file (the default); else the run note saying how the
        backend runs it from the FP32 file by a setting. Raises BuildError when it cannot run it here."""
        return None

    def dominated_hint(self, precision: str) -> str | None:
        """Why a search need not screen the hinted ``precision`` here although the backend runs it (a precision of
        the same width runs on faster hardware units, so this one cannot be the fastest), or None."""
        return None

    def for_precision(self, precision: str) -> Backend:
        """This backend set to execute ``precision``; only backends that run precisions by hint change."""
        return self

    def for_workspace(self, root: Path) -> Backend:
        """This backend keeping its compiled-model cache under the workspace ``root``, where it has one."""
        return self

    def for_weights(self, sparse_2of4: bool) -> Backend:
        """This backend set up for the weights it will run; only TensorRT has sparse kernels to switch on."""
        return self

    def check_loadable(self, model_path: Path) -> str | None:
        """None if the model loads here, else the backend's error text (drives precision fall-backs)."""
        try:
            self.load(model_path).close()
        except Exception as exc:  # any load failure is data for the fall-back, not a crash
            return str(exc)
        return None
