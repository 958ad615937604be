"""ONNX Runtime on NVIDIA GPUs: the CPU backend's runner with the CUDA execution provider.

Choices, each measured on an H100 (benchmarks/RESULTS.md):

* TF32 is off (``use_tf32=0``) so the FP32 reference is real FP32 and FP16's speed-up is
  against true single precision, not against a TF32 model that already uses the tensor cores.
* ``prefer_nhwc`` follows the file's precision unless set explicitly: 1 for FP16/BF16 models,
  whose fast tensor-core convolutions are channels-last (ResNet-50 FP16 batch 32: 3.7 ms with it,
  4.5 ms without), 0 for FP32, whose NCHW kernels were faster (12.4 ms against 14.8 ms).
* ``cudnn_conv_algo_search=HEURISTIC``, not ONNX Runtime's EXHAUSTIVE: on the channel-pruned
  (0.5) FP16 ResNet-50 at batch 32 the exhaustive search settled on kernels taking 4.74 ms where
  cuDNN's heuristic pick took 2.08 ms, and elsewhere the two were within 1-2% (FP32 12.24 against
  12.25 ms, FP16 3.68 against 3.63 ms); the heuristic also skips the search at session start.
* INT8 files are symmetric S8 Q/DQ (``quant_target = "tensorrt"``): the flavour GPUs consume, so
  one INT8 file serves this backend and TensorRT. The CUDA provider runs the Q/DQ pairs around
  FP32/FP16 kernels (it has no fused INT8 convolution), so INT8 here checks accuracy, not speed.
* Timing uses I/O binding: inputs are copied to the GPU once, outputs stay there, so a timed run
  is the model alone, not PCIe copies of its inputs and outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from workbench.backends import cuda_graphs
from workbench.backends.base import Availability, Engine
from workbench.backends.cuda_graphs import GraphChoice
from workbench.backends.onnxruntime_cpu import OnnxrtEngine, OnnxruntimeCpuBackend, installed_onnxruntime_wheels
from workbench.errors import BackendUnavailable

CUDA_PROVIDER = "CUDAExecutionProvider"
INSTALL_GPU = "pip install 'onnx-workbench[gpu]'"

#: Provider options every session gets unless the backend is built with others; ``prefer_nhwc``
#: is added per model by ``provider_options_for`` when not given.
DEFAULT_PROVIDER_OPTIONS: dict[str, str] = {
    "device_id": "0",
    "use_tf32": "0",
    "cudnn_conv_algo_search": "HEURISTIC",
}
_HALF_TYPES = (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def has_half_weights(model_path: Path) -> bool:
    """True when the file stores FP16/BF16 weights, i.e. it is a half-precision variant."""
    model = onnx.load(str(model_path), load_external_data=False)
    return any(init.data_type in _HALF_TYPES for init in model.graph.initializer)


def provider_options_for(options: dict[str, str], model_path: Path) -> dict[str, str]:
    """The options for one model: channels-last for half-precision files unless the user chose."""
    if "prefer_nhwc" in options:
        return dict(options)
    return {**options, "prefer_nhwc": "1" if has_half_weights(model_path) else "0"}


def explain_cuda_availability(wheels: list[str], providers: list[str] | None, probe_error: str | None) -> Availability:
    """Turn what is installed and what the probe session saw into one sentence a user can act on.

    ``providers`` is None when ``import onnxruntime`` failed; ``probe_error`` is None when a tiny
    model ran on the CUDA provider.
    """
    both = "onnxruntime" in wheels and "onnxruntime-gpu" in wheels
    if providers is None:
        return Availability(False, f"ONNX Runtime is not installed: {INSTALL_GPU} (needs an NVIDIA GPU and driver).")
    if CUDA_PROVIDER not in providers:
        if both:
            return Availability(
                False,
                "Both onnxruntime (CPU) and onnxruntime-gpu are installed and the CPU build shadows the GPU one: "
                "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu",
            )
        if "onnxruntime-gpu" not in wheels:
            return Availability(
                False,
                f"Only the CPU build of ONNX Runtime is installed: pip uninstall -y onnxruntime && {INSTALL_GPU} "
                "(the two builds must not be installed together).",
            )
        offered = ", ".join(providers)
        return Availability(False, f"This onnxruntime-gpu build has no CUDA provider (it offers {offered}).")
    if probe_error is not None:
        return Availability(
            False,
            f"onnxruntime-gpu is installed but the CUDA provider did not start ({probe_error}): check that "
            "`nvidia-smi` sees a GPU and that the CUDA and cuDNN versions this onnxruntime-gpu was built "
            "for are installed (pip install 'onnxruntime-gpu[cuda,cudnn]' brings them).",
        )
    note = " (onnxruntime is installed too: uninstall it, the two builds shadow each other)" if both else ""
    return Availability(True, f"ONNX Runtime GPU with the CUDA provider is ready{note}.")


def _probe_model() -> bytes:
    """A one-node model (Relu) to find out whether a CUDA session really starts here."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "cuda_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _cuda_session_starts(ort: Any) -> str | None:
    """None if a CUDA session runs, else why not; ONNX Runtime itself falls back to CPU silently."""
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 4
        session = ort.InferenceSession(_probe_model(), options, providers=[CUDA_PROVIDER, "CPUExecutionProvider"])
        if session.get_providers()[0] != CUDA_PROVIDER:
            return "the session fell back to the CPU"
        session.run(None, {"x": np.ones(4, np.float32)})
    except Exception as exc:  # any failure to start CUDA is the answer we are after
        return str(exc).splitlines()[0][:200]
    return None


@lru_cache(maxsize=1)
def cuda_availability() -> Availability:
    """Checked once per process: the probe starts a CUDA context, which takes a moment."""
    wheels = installed_onnxruntime_wheels()
    try:
        import onnxruntime as ort
    except ImportError:
        return explain_cuda_availability(wheels, None, None)
    providers = list(ort.get_available_providers())
    error = None
    if CUDA_PROVIDER in providers:
        error = _cuda_session_starts(ort)
        if error is not None and hasattr(ort, "preload_dlls"):
            # CUDA/cuDNN from pip packages (nvidia-*) are found only once preloaded.
            ort.preload_dlls()
            error = _cuda_session_starts(ort)
    return explain_cuda_availability(wheels, providers, error)


@dataclass
class _Bound:
    """One input shape's GPU buffers: the inputs copied in, the outputs a run (or a graph replay) writes."""

    binding: Any
    inputs: dict[str, Any]
    run_options: Any
    feed: dict[str, np.ndarray]  # the arrays last copied in; identity is the cache key, so they are kept


class CudaOnnxrtEngine(OnnxrtEngine):
    """The CPU engine's runner, timed through I/O binding so only the model is on the clock.

    Inputs are copied to the GPU once per feed and outputs stay there. With CUDA graphs on, each
    input shape gets its own captured graph (ONNX Runtime's ``gpu_graph_id``) over buffers bound at
    fixed addresses; ``infer`` replays it for the shapes that were timed, so drift is measured on
    the program that was timed, and runs other shapes plainly (``gpu_graph_id=-1``).
    """

    def __init__(self, session: Any, model_path: Path, reopen: Callable[[bool], Any], device_id: int,
                 graphs: GraphChoice) -> None:
        self._reopen = reopen
        self.device_id = device_id
        self._start(session, model_path, graphs)

    def _start(self, session: Any, model_path: Path, graphs: GraphChoice) -> None:
        super().__init__(session, model_path)
        if self.session.get_providers()[0] != CUDA_PROVIDER:
            self.close()
            raise BackendUnavailable(
                "ONNX Runtime did not start the CUDA provider for this model and would run it on the CPU.",
                "Run `workbench backends` to see why the GPU is not usable.",
            )
        self.graphs = graphs
        self._bound: dict[tuple, _Bound] = {}
        self._plain_run = self._run_options(-1 if graphs.enabled else None)

    def execution_notes(self) -> list[str]:
        return [self.graphs.note]

    @staticmethod
    def _run_options(graph_id: int | None) -> Any:
        import onnxruntime as ort

        options = ort.RunOptions()
        if graph_id is not None:  # -1 runs without capturing or replaying
            options.add_run_config_entry("gpu_graph_id", str(graph_id))
        return options

    def _key(self, feed: dict[str, np.ndarray]) -> tuple:
        return tuple((name, np.shape(feed[name]), np.asarray(feed[name]).dtype.str) for name in self.input_names)

    def _bound_for(self, feed: dict[str, np.ndarray]) -> _Bound:
        """The buffers for this feed's shapes, bound (and a graph captured) the first time they are seen."""
        key = self._key(feed)
        bound = self._bound.get(key)
        if bound is None:
            try:
                bound = self._bind(feed, len(self._bound) if self.graphs.enabled else None)
            except _CaptureFailed as failed:
                self.close()
                self._start(self._reopen(False), self.model_path, cuda_graphs.off(f"capturing one failed ({failed})"))
                bound = self._bind(feed, None)
            self._bound[key] = bound
        elif any(feed[name] is not bound.feed[name] for name in self.input_names):
            for name in self.input_names:
                bound.inputs[name].update_inplace(np.ascontiguousarray(feed[name]))
            bound.feed = dict(feed)
        return bound

    def _bind(self, feed: dict[str, np.ndarray], graph_id: int | None) -> _Bound:
        import onnxruntime as ort

        binding = self.session.io_binding()
        inputs = {}
        for name in self.input_names:
            inputs[name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feed[name]), "cuda", self.device_id)
            binding.bind_ortvalue_input(name, inputs[name])
        for name in self.output_names:
            binding.bind_output(name, "cuda", self.device_id)
        if graph_id is None:
            return _Bound(binding, inputs, self._plain_run, dict(feed))
        # A plain run sizes the outputs; binding its buffers keeps their addresses fixed for the graph.
        self.session.run_with_iobinding(binding, self._plain_run)
        outputs = binding.get_outputs()
        binding.clear_binding_outputs()
        for name, value in zip(self.output_names, outputs, strict=True):
            binding.bind_ortvalue_output(name, value)
        run_options = self._run_options(graph_id)
        try:
            self.session.run_with_iobinding(binding, run_options)  # ONNX Runtime runs until the graph is captured
            binding.synchronize_outputs()
        except Exception as exc:
            raise _CaptureFailed(str(exc).splitlines()[0][:200]) from exc
        return _Bound(binding, inputs, run_options, dict(feed))

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._key(feed) in self._bound:
            bound = self._bound_for(feed)
            self.session.run_with_iobinding(bound.binding, bound.run_options)
            return dict(zip(self.output_names, bound.binding.copy_outputs_to_cpu(), strict=True))
        outputs = self.session.run(self.output_names, feed, self._plain_run)
        return {name: np.asarray(value) for name, value in zip(self.output_names, outputs, strict=True)}

    def time_once(self, feed: dict[str, np.ndarray]) -> float:
        bound = self._bound_for(feed)
        start = time.perf_counter()
        self.session.run_with_iobinding(bound.binding, bound.run_options)
        bound.binding.synchronize_outputs()
        return (time.perf_counter() - start) * 1000.0

    def close(self) -> None:
        self._bound = {}
        super().close()


class _CaptureFailed(Exception):
    """ONNX Runtime could not capture a CUDA graph of this model's run; the engine falls back to plain runs."""


class OnnxruntimeCudaBackend(OnnxruntimeCpuBackend):
    name = "onnxruntime-cuda"
    quant_target = "tensorrt"
    description = "ONNX Runtime, CUDA execution provider (NVIDIA GPUs; needs onnxruntime-gpu)"
    providers = (CUDA_PROVIDER, "CPUExecutionProvider")

    def __init__(self, provider_options: dict[str, str] | None = None) -> None:
        self.provider_options = {**DEFAULT_PROVIDER_OPTIONS, **(provider_options or {})}

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> OnnxruntimeCudaBackend:
        """Backend options are CUDA provider options (``prefer_nhwc=1``, ``use_tf32=1``, ...)."""
        return cls(dict(options))

    @classmethod
    def availability(cls) -> Availability:
        return cuda_availability()

    def providers_for(self, model_path: Path, graphs: bool = False) -> list[Any]:
        """CUDA first with this model's options; the CPU provider takes ops CUDA has no kernel for."""
        options = {**provider_options_for(self.provider_options, model_path), cuda_graphs.OPTION: str(int(graphs))}
        return [(CUDA_PROVIDER, options), "CPUExecutionProvider"]

    def graph_choice(self, model_path: Path, profiling: bool = False) -> GraphChoice:
        """What this backend's options and the model allow, before ONNX Runtime has its say."""
        model = onnx.load(str(model_path), load_external_data=False)
        return cuda_graphs.choose(self.provider_options, model, profiling)

    def for_profiling(self, threads: int) -> OnnxruntimeCudaBackend:
        """Unchanged: the profile's sessions are the run's (provider options, I/O binding, CUDA graphs
        for the plain one), so its end-to-end time is the run's latency."""
        return self

    def _load(self, model_path: Path, profile_dir: Path | None) -> Engine:
        import onnxruntime as ort

        device_id = int(self.provider_options.get("device_id", 0))

        def open_session(graphs: bool) -> Any:
            return ort.InferenceSession(str(model_path), self.session_options(profile_dir),
                                        providers=self.providers_for(model_path, graphs))

        choice = self.graph_choice(model_path, profiling=profile_dir is not None)
        if choice.enabled:
            try:
                session = open_session(True)
            except Exception as exc:  # ONNX Runtime refuses graphs for some models that still run plainly
                session = open_session(False)
                choice = cuda_graphs.off(f"ONNX Runtime refused them ({str(exc).splitlines()[0][:200]})")
        else:
            session = open_session(False)
        return CudaOnnxrtEngine(session, model_path, open_session, device_id, choice)
