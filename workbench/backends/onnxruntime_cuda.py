"""ONNX Runtime on NVIDIA GPUs: the CPU backend's runner with the CUDA execution provider.

Provider options are chosen per precision of the file (``cuda_options``: TF32 off for FP32 and
Q/DQ files only, channels-last with the convolution bias fused for FP16/BF16, cuDNN's heuristic
algorithm pick), and the ones set for speed are checked against FP32 before timing
(``cuda_option_check``). Each run's notes list the options and why.

* INT8 files are symmetric S8 Q/DQ (``quant_target = "tensorrt"``): the flavour GPUs consume, so
  one INT8 file serves this backend and TensorRT. The CUDA provider runs the Q/DQ pairs around
  FP32/FP16 kernels (it has no fused INT8 convolution), so INT8 here checks accuracy, not speed.
* Timing uses I/O binding: inputs are copied to the GPU once, outputs stay there, so a timed run
  is the model alone, not PCIe copies of its inputs and outputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from workbench.backends import cuda_graphs
from workbench.backends.base import Availability, Engine
from workbench.backends.cuda_graphs import GraphChoice
from workbench.backends.cuda_option_check import CHECK_SAMPLES, judge_options
from workbench.backends.cuda_options import OptionChoice, check_user_options, choose_options, session_options
from workbench.backends.fp8_support import fp8_blocker, nvidia_gpu
from workbench.backends.onnxruntime_cpu import OnnxrtEngine, OnnxruntimeCpuBackend, installed_onnxruntime_wheels
from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable

CUDA_PROVIDER = "CUDAExecutionProvider"
INSTALL_GPU = "pip install 'onnx-workbench[gpu]'"

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
    status = explain_cuda_availability(wheels, providers, error)
    return replace(status, details=gpu_details(nvidia_gpu(0))) if status.available else status


def gpu_details(gpu: tuple[str, tuple[int, int] | None]) -> tuple[str, ...]:
    """The listing's lines for the GPU: its name and capability, and whether FP8 runs on it."""
    name, capability = gpu
    shown = f", compute capability {capability[0]}.{capability[1]}" if capability else ""
    blocker = fp8_blocker("onnxruntime-cuda", gpu)
    return (f"GPU 0: {name}{shown}",
            "fp8: E4M3 matrix products through GemmFloat8 (cuBLASLt), the rest simulated" if blocker is None
            else f"fp8: refused ({blocker})")


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

    def __init__(self, session: Any, model_path: Path, reopen: Callable[[bool, OptionChoice], Any], device_id: int,
                 graphs: GraphChoice, options: OptionChoice) -> None:
        self._reopen = reopen
        self.device_id = device_id
        self.options = options
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
        return [self.options.note, self.graphs.note]

    def check_options(self, reference: Engine, data: Dataset, batch: int) -> list[str]:
        """Run the options set for speed beside the plain ones and FP32 on evaluation samples; reopen with the
        plain ones where the tuned change the results beyond the variant's own drift (``cuda_option_check``)."""
        choice = self.options
        if not choice.tuned or choice.plain is None:
            return []
        feeds = list(data.take(CHECK_SAMPLES).batches(batch))
        reference_out = [reference.infer(feed) for feed in feeds]
        tuned_out = [self.infer(feed) for feed in feeds]
        with OnnxrtEngine(self._reopen(False, choice.without(choice.tuned, "")), self.model_path) as plain:
            plain_out = [plain.infer(feed) for feed in feeds]
        verdict = judge_options(reference_out, tuned_out, plain_out)
        named = ", ".join(f"{key}={choice.options.get(key, 'default')}" for key in choice.tuned)
        sentence = verdict.describe(f"The speed settings ({named})", len(data.take(CHECK_SAMPLES)), data.label)
        if verdict.accepted:
            return [sentence]
        self.options = choice.without(choice.tuned, f"{named} refused by the check against FP32")
        graphs = self.graphs
        self.close()
        self._start(self._reopen(graphs.enabled, self.options), self.model_path, graphs)
        return [sentence]

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
                self._start(self._reopen(False, self.options), self.model_path,
                            cuda_graphs.off(f"capturing one failed ({failed})"))
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
    baseline_backend = "onnxruntime-cuda"
    quant_target = "tensorrt"
    half_files = True
    description = "ONNX Runtime, CUDA execution provider (NVIDIA GPUs; needs onnxruntime-gpu)"
    providers = (CUDA_PROVIDER, "CPUExecutionProvider")
    int8_accuracy_only = ("the CUDA provider runs INT8 Q/DQ pairs around FP32 kernels (it has no fused INT8 "
                          "convolution or matrix product, and CUDA graphs refuse the nodes it leaves on the CPU), so "
                          "INT8 here is slower than FP32: its accuracy is INT8's, its speed is not")

    def __init__(self, provider_options: dict[str, str] | None = None) -> None:
        """``provider_options`` are the user's; the rest are chosen per file (``cuda_options``)."""
        check_user_options(provider_options or {})
        self.provider_options = dict(provider_options or {})

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> OnnxruntimeCudaBackend:
        """Backend options are CUDA provider options (``prefer_nhwc=1``, ``use_tf32=1``, ...)."""
        return cls(dict(options))

    @classmethod
    def availability(cls) -> Availability:
        return cuda_availability()

    def fp8_gpu(self) -> tuple[str, tuple[int, int] | None]:
        return nvidia_gpu(int(self.provider_options.get("device_id", 0)))

    def finish_fp8(self, path: Path, source: Path, probe: Dataset | None) -> list[str]:
        """Matrix products rewritten to GemmFloat8 (cuBLASLt FP8) where they fit and where ONNX Runtime then
        computes what the Q/DQ file does; the rest of the file stays a simulation (``gemm_float8``)."""
        from workbench.backends.gemm_float8 import rewrite_gemm_float8

        simulated = super().finish_fp8(path, source, probe)
        model = onnx.load(str(path))
        rewrite = rewrite_gemm_float8(model)
        if not rewrite.rewritten:
            return [rewrite.note(), *simulated]
        candidate = path.with_name(f"{path.stem}.gemm8.onnx")
        onnx.save(model, str(candidate))
        problem = _gemm_float8_problem(self, candidate, path, source, probe)
        if problem is not None:
            candidate.unlink()
            return [f"GemmFloat8 rewrite not used: {problem}", *simulated]
        os.replace(candidate, path)
        return [f"{rewrite.note()}; checked against the Q/DQ file on the GPU",
                "FP8 on onnxruntime-cuda: the rewritten matrix products run on FP8 tensor cores; convolutions and "
                "the other Q/DQ pairs run as a simulation"]

    def option_choice(self, model_path: Path) -> OptionChoice:
        """The provider options this file's sessions get, with the reasons (``cuda_options``)."""
        return choose_options(self.provider_options, onnx.load(str(model_path), load_external_data=False))

    def providers_for(self, model_path: Path, graphs: bool = False, choice: OptionChoice | None = None) -> list[Any]:
        """CUDA first with this model's options; the CPU provider takes ops CUDA has no kernel for."""
        choice = choice or self.option_choice(model_path)
        return [(CUDA_PROVIDER, session_options(choice, graphs)), "CPUExecutionProvider"]

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
        options = self.option_choice(model_path)

        def open_session(graphs: bool, options: OptionChoice) -> Any:
            return ort.InferenceSession(str(model_path), self.session_options(profile_dir),
                                        providers=self.providers_for(model_path, graphs, options))

        choice = self.graph_choice(model_path, profiling=profile_dir is not None)
        if choice.enabled:
            try:
                session = open_session(True, options)
            except Exception as exc:  # ONNX Runtime refuses graphs for some models that still run plainly
                session = open_session(False, options)
                choice = cuda_graphs.off(f"ONNX Runtime refused them ({str(exc).splitlines()[0][:200]})")
        else:
            session = open_session(False, options)
        return CudaOnnxrtEngine(session, model_path, open_session, device_id, choice, options)


def _gemm_float8_problem(backend: OnnxruntimeCudaBackend, rewritten: Path, qdq: Path, source: Path,
                         probe: Dataset | None) -> str | None:
    """None when the rewritten file loads and stays within the Q/DQ file's error against FP32 on probe samples."""
    if probe is None:
        return "no samples to check it against the Q/DQ file on"
    outputs = []
    try:
        for path in (source, rewritten, qdq):
            with backend.load(path) as engine:
                first = engine.session.get_inputs()[0].shape[0] if engine.session.get_inputs()[0].shape else None
                size = first if isinstance(first, int) and first > 0 else 8
                outputs.append([engine.infer(feed) for feed in probe.take(CHECK_SAMPLES).batches(size)])
    except Exception as exc:  # ONNX Runtime or cuBLASLt refusing the layout is the answer, not a crash
        return f"ONNX Runtime could not run it ({str(exc).splitlines()[0][:200]})"
    verdict = judge_options(*outputs)
    if verdict.accepted:
        return None
    return verdict.describe("GemmFloat8", len(probe.take(CHECK_SAMPLES)), probe.label)
