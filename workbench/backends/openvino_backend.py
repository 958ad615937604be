"""OpenVINO: Intel's inference engine, on the CPU (and Intel GPUs/NPUs where OpenVINO lists them).

It reads the same ONNX files the pipeline writes. FP32 is compiled with
``INFERENCE_PRECISION_HINT=f32``: on a CPU with AMX or AVX-512 BF16, OpenVINO otherwise runs an
FP32 model in BF16, which is no reference. BF16 and FP16 are not converted files here but the
same hint on the FP32 file (``precision_hint``), because OpenVINO's own lowering keeps the layers
that need FP32 in FP32 and runs the rest on AMX; a converted file only adds casts it must undo.
INT8 runs the Q/DQ file, and the executed graph is checked for the layers that really ran in INT8.

A model with dynamic dimensions is compiled for the shapes actually fed, on the first call with
those shapes (warm-up pays for it, timing never does), because static shapes let the CPU plugin
pick its fastest kernels. Compiled models are cached in the workspace (``CACHE_DIR``), so a
second process loads them in a fraction of the compile time.

CPU pinning (``ENABLE_CPU_PINNING``, on by default for the latency hint on Linux) is turned off: the
pipeline times engines side by side in one process and laptops and CI machines run other work, and a
pinned thread cannot move off a busy core. Measured on the 2-core development CPU with other jobs
running, digits_cnn FP32 at batch 8: 26.9 ms pinned, 1.35 ms unpinned (ONNX Runtime: 0.79 ms).
``threads=N`` and ``pinning=1`` are backend options (``--backend-option``).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx

from workbench.backends.base import Availability, Backend, Engine
from workbench.backends.onnxruntime_cpu import parse_threads
from workbench.backends.openvino_device import HINTS, DeviceProfile, device_profile
from workbench.errors import BackendUnavailable, BuildError, DataError, ModelError
from workbench.profiles.layer_table import EngineProfile
from workbench.profiles.openvino_profile import (
    counter_sample,
    int8_note,
    layer_table_from_counters,
    runtime_layers,
)

INSTALL_HINT = ("OpenVINO is not installed: pip install 'onnx-workbench[openvino]' "
                "(the cpu and lab extras include it).")


def openvino_module() -> Any | None:
    """The ``openvino`` package, or None where it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino


@lru_cache(maxsize=1)
def core() -> Any:
    """One OpenVINO Core per process: it owns the plugins, their thread pools and the model cache."""
    openvino = openvino_module()
    if openvino is None:
        raise BackendUnavailable("Backend 'openvino' is unavailable.", INSTALL_HINT)
    return openvino.Core()


@lru_cache(maxsize=8)
def profile_of(device: str) -> DeviceProfile | None:
    """What OpenVINO says about ``device``, or None when it does not list the device here."""
    ov_core = core()
    if device not in ov_core.available_devices:
        return None
    return device_profile(ov_core, device)


def _first_line(exc: BaseException) -> str:
    """The cause in OpenVINO's error text, which starts with C++ source locations.

    An op its ONNX reader cannot convert is named as such, so the sentence says which op it is.
    """
    text = str(exc).strip()
    match = re.search(r"No conversion rule found for operations?: *([^\n]+)", text)
    if match is None:
        match = re.search(r"Failed operations detailed log:\s*-- *(\S+)", text)
    if match is not None:
        return f"it has no implementation of the ONNX op {match.group(1).strip().rstrip('.')}"
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Exception from", "Check '")) and ".cpp:" not in line:
            return line[:300]
    return text.splitlines()[0][:300] if text else type(exc).__name__


def may_hold_qdq(ov_model: Any) -> bool:
    """Whether OpenVINO's reading of an ONNX file has a FakeQuantize (a QuantizeLinear) or an 8-bit constant (a
    DequantizeLinear's weight): a file without either has no Q/DQ pair for the INT8 check to find."""
    return any(op.get_type_name() == "FakeQuantize" or (
        op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("i8", "u8", "i4", "u4"))
        for op in ov_model.get_ops())


class OpenvinoEngine(Engine):
    """A compiled model for the input shape last run (a new shape compiles anew), one infer request; perf counters
    when profiling."""

    def __init__(self, backend: OpenvinoBackend, model_path: Path, profile_dir: Path | None) -> None:
        self.backend = backend
        self.model_path = Path(model_path)
        self.profile_dir = profile_dir
        try:
            self.model = core().read_model(str(model_path))
        except Exception as exc:
            raise ModelError(f"OpenVINO cannot run '{self.model_path.name}': {_first_line(exc)}.",
                             "Run this model on onnxruntime-cpu (--backend onnxruntime-cpu).") from exc
        self.input_names = [port.get_any_name() for port in self.model.inputs]
        self.output_names = [port.get_any_name() for port in self.model.outputs]
        self._dynamic = any(port.get_partial_shape().is_dynamic for port in self.model.inputs)
        self._shape: tuple = ()
        self._current: tuple[Any, Any] | None = None  # the compiled model for ``_shape`` and its infer request
        self.samples: list[dict[str, float]] = []
        self._last_compiled: Any = None
        if not self._dynamic:
            self._compile(None)

    def _compile(self, shapes: dict[str, tuple[int, ...]] | None) -> tuple[Any, Any]:
        key = tuple(sorted(shapes.items())) if shapes else ()
        if self._current is not None and key == self._shape:
            return self._current
        # One compiled model at a time, the old one freed before the new compiles: each holds its own copy of the
        # weights (a BERT-base encoder's 0.4 GB), so the last, smaller batch of an evaluation would otherwise
        # double them. A shape seen again is compiled again.
        self._current = self._last_compiled = None
        model = self.model
        if shapes:
            model = self.model.clone()
            model.reshape({name: list(shape) for name, shape in shapes.items()})
        try:
            compiled = core().compile_model(model, self.backend.device, self.backend.config(self.profile_dir))
        except Exception as exc:
            raise ModelError(
                f"OpenVINO ({self.backend.device}) cannot compile '{self.model_path.name}': {_first_line(exc)}.",
                "Run this model on onnxruntime-cpu (--backend onnxruntime-cpu), or choose another precision.",
            ) from exc
        request = compiled.create_infer_request()
        self._shape, self._current, self._last_compiled = key, (compiled, request), compiled
        return compiled, request

    def _request(self, feed: dict[str, np.ndarray]) -> Any:
        shapes = {name: tuple(feed[name].shape) for name in self.input_names} if self._dynamic else None
        return self._compile(shapes)[1]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._request(feed)
        request.infer({name: feed[name] for name in self.input_names})
        return {name: np.array(request.get_tensor(name).data) for name in self.output_names}

    def time_once(self, feed: dict[str, np.ndarray]) -> float:
        request = self._request(feed)
        inputs = {name: feed[name] for name in self.input_names}
        start = time.perf_counter()
        request.infer(inputs)
        elapsed = (time.perf_counter() - start) * 1000.0
        if self.profile_dir is not None:
            self.samples.append(counter_sample(request.profiling_info))
        return elapsed

    @property
    def compiled_model(self) -> Any:
        """The most recently compiled model (the one the last call ran, for a single shape)."""
        if self._last_compiled is None:
            raise BuildError("The OpenVINO model has not been compiled yet.", "Run it once first.")
        return self._last_compiled

    def execution_notes(self) -> list[str]:
        """What OpenVINO did with the file: the precision it was told, and for Q/DQ files the INT8 check."""
        if self._last_compiled is None:
            return []
        hint = self._last_compiled.get_property("INFERENCE_PRECISION_HINT")
        hint = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        version = openvino_module().__version__.split("-")[0]
        pinning = f", CPU pinning {'on' if self.backend.pinning else 'off'}" if self.backend.device == "CPU" else ""
        notes = [f"OpenVINO {version} on {self.backend.device}: INFERENCE_PRECISION_HINT={hint}, "
                 f"PERFORMANCE_HINT=LATENCY{pinning}"]
        layers = runtime_layers(self._last_compiled)
        if self.is_ir:
            note = int8_note(layers, ov_model=self.model)
        elif may_hold_qdq(self.model):  # else no Q/DQ pair to check, and an encoder's 0.4 GB file is not parsed
            note = int8_note(layers, onnx.load(str(self.model_path), load_external_data=False))
        else:
            note = None
        return notes + ([note] if note else [])

    @property
    def is_ir(self) -> bool:
        """An OpenVINO IR file (the OpenVINO-native variant) rather than ONNX."""
        return self.model_path.suffix == ".xml"

    def _names_model(self, source_model: onnx.ModelProto | None) -> onnx.ModelProto:
        """The ONNX graph whose node names the layer table uses: the file itself, or for an IR (whose layers
        OpenVINO named after the ONNX nodes it read) the source model, or none known."""
        if not self.is_ir:
            return onnx.load(str(self.model_path), load_external_data=False)
        return source_model if source_model is not None else onnx.ModelProto()

    def layer_table(self, warmup: int = 0, batch: int = 1, source_model: onnx.ModelProto | None = None) -> Any:
        """The layer table of the profiled runs (the first ``warmup`` calls dropped)."""
        return layer_table_from_counters(self.samples[warmup:], runtime_layers(self.compiled_model),
                                         self._names_model(source_model), batch=batch, source_model=source_model)

    def end_profiling(self, warmup: int, batch: int, source_model: onnx.ModelProto | None = None) -> EngineProfile:
        """The layer table from the performance counters of the timed runs (the first ``warmup`` dropped)."""
        if self.profile_dir is None or not self.samples:
            return super().end_profiling(warmup, batch, source_model)
        layers = self.layer_table(warmup=warmup, batch=batch, source_model=source_model)
        return EngineProfile(layers, statistics.median(sum(sample.values()) for sample in self.samples[warmup:]))

    def close(self) -> None:
        self._current = self._last_compiled = None


class OpenvinoBackend(Backend):
    """OpenVINO on one device; ``precision`` is the inference precision hint it compiles with."""

    name: ClassVar[str] = "openvino"
    device_name: ClassVar[str] = "CPU"
    quant_target = "x86"
    weight_runtime = "openvino"
    native_int8 = True
    description = "OpenVINO on the CPU: FP32/BF16/FP16 by precision hint, INT8 from Q/DQ files (AMX, VNNI)"

    def __init__(self, precision: str = "fp32", threads: int = 0, cache_dir: Path | None = None,
                 pinning: bool = False, int8_hint: str | None = None) -> None:
        self.precision = precision
        self.threads = threads
        self.cache_dir = cache_dir
        self.pinning = pinning
        self.int8_hint = int8_hint

    @property
    def device(self) -> str:
        return self.device_name

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> OpenvinoBackend:
        """``threads=N`` sets INFERENCE_NUM_THREADS (default: OpenVINO's choice for the latency hint);
        ``pinning=1`` pins its threads to cores (off by default, see the module docstring); ``int8_hint=bf16``
        compiles an INT8 file with the BF16 hint, so the layers it keeps out of INT8 run in BF16 (BF16+INT8
        mixing, where the CPU has BF16; the FP32 reference stays FP32)."""
        unknown = sorted(set(options) - {"threads", "pinning", "int8_hint"})
        if unknown:
            raise DataError(f"Backend '{cls.name}' does not know the option(s) {', '.join(unknown)}.",
                            "Its options are threads=N, pinning=0/1 and int8_hint=bf16.")
        int8_hint = options.get("int8_hint")
        if int8_hint not in (None, "bf16"):
            raise DataError(f"int8_hint={int8_hint!r} is not bf16.", "Use int8_hint=bf16, or leave it out.")
        pinning = options.get("pinning", "0")
        if pinning not in ("0", "1"):
            raise DataError(f"pinning={pinning!r} is not 0 or 1.", "Use pinning=1 to pin threads to cores.")
        threads = parse_threads(options.get("threads", "0"))
        return cls(threads=threads, pinning=pinning == "1", int8_hint=int8_hint)

    @classmethod
    def availability(cls) -> Availability:
        if openvino_module() is None:
            return Availability(False, INSTALL_HINT)
        try:
            profile = profile_of(cls.device_name)
        except Exception as exc:  # a plugin that fails to start is a reason, not a crash
            return Availability(False, f"OpenVINO is installed but its {cls.device_name} plugin fails: "
                                f"{_first_line(exc)}")
        if profile is None:
            return Availability(False, f"OpenVINO lists no {cls.device_name} device on this machine "
                                f"(it lists {', '.join(core().available_devices) or 'none'}).")
        return Availability(True, f"OpenVINO {openvino_module().__version__.split('-')[0]} on {profile.full_name}.",
                            tuple(profile.summary()))

    def profile(self) -> DeviceProfile:
        profile = profile_of(self.device)
        if profile is None:
            raise BackendUnavailable(f"OpenVINO lists no {self.device} device here.", "Use the openvino (CPU) backend.")
        return profile

    def precision_hint(self, precision: str) -> str | None:
        if precision not in HINTS or precision == "fp32":
            return None
        refusal = self.profile().refusal(precision)
        if refusal:
            raise BuildError(refusal, f"Use fp32 or int8 on {self.name}, or {precision} on onnxruntime-cpu.")
        return (f"{precision.upper()} by precision hint: the FP32 file compiled with INFERENCE_PRECISION_HINT="
                f"{HINTS[precision][1]} ({self.profile().how(precision)}); "
                "OpenVINO keeps the layers that need FP32 in FP32")

    def dominated_hint(self, precision: str) -> str | None:
        return self.profile().dominated(precision)

    def for_precision(self, precision: str) -> OpenvinoBackend:
        if precision == "int8" and self.int8_hint:
            refusal = self.profile().refusal(self.int8_hint)
            if refusal:
                raise BuildError(refusal, "Leave out --backend-option int8_hint=bf16 on this machine.")
            return replace_backend(self, precision=self.int8_hint)
        return replace_backend(self, precision=precision if precision in HINTS else "fp32")

    def for_workspace(self, root: Path) -> OpenvinoBackend:
        return replace_backend(self, cache_dir=Path(root) / "cache" / "openvino")

    def config(self, profile_dir: Path | None) -> dict[str, Any]:
        """Compile properties: the precision hint, latency mode, threads, cache and profiling."""
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": HINTS[self.precision][1],
                                  "PERFORMANCE_HINT": "LATENCY"}
        if self.device.startswith("CPU"):
            config["ENABLE_CPU_PINNING"] = self.pinning
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(self.cache_dir)
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            config["PERF_COUNT"] = True
        return config

    def _load(self, model_path: Path, profile_dir: Path | None) -> OpenvinoEngine:
        return OpenvinoEngine(self, model_path, profile_dir)

    def check_loadable(self, model_path: Path) -> str | None:
        """Read the file and compile it once, as a run would.

        A dynamic batch is compiled at 1. Other dynamic dimensions (an image's height and width) have
        no value that surely fits: 1 breaks a recogniser whose pooling kernel spans 2 or more, so such
        a model is only read here and compiled for the shapes fed when it runs."""
        try:
            with self.load(model_path) as engine:
                shapes = {port.get_any_name(): _static_shape(port) for port in engine.model.inputs}
                if engine._dynamic and all(shape is not None for shape in shapes.values()):
                    engine._compile(shapes)
        except (ModelError, BuildError) as exc:
            return str(exc)
        return None


def _static_shape(port: Any) -> tuple[int, ...] | None:
    """The port's shape with a dynamic batch set to 1; None where another dimension is dynamic."""
    dims = list(port.get_partial_shape())
    if any(dim.is_dynamic for dim in dims[1:]):
        return None
    return tuple(dim.get_length() if dim.is_static else 1 for dim in dims)


def replace_backend(backend: OpenvinoBackend, **changes: Any) -> OpenvinoBackend:
    """A copy with some options changed; backends are treated as values."""
    fields = {"precision": backend.precision, "threads": backend.threads, "cache_dir": backend.cache_dir,
              "pinning": backend.pinning, "int8_hint": backend.int8_hint}
    return type(backend)(**{**fields, **changes})


class OpenvinoGpuBackend(OpenvinoBackend):
    name = "openvino-gpu"
    device_name = "GPU"
    description = "OpenVINO on an Intel GPU (where OpenVINO lists one)"


class OpenvinoNpuBackend(OpenvinoBackend):
    name = "openvino-npu"
    device_name = "NPU"
    description = "OpenVINO on an Intel NPU (where OpenVINO lists one)"

