"""TensorRT through Polygraphy's loaders and runner, on strongly typed networks (TensorRT 10 and 11).

Written against TensorRT's and Polygraphy's documented APIs and verified where TensorRT is
installed (see the README's backend section); the parts that need no TensorRT live in
``tensorrt_config`` and are tested everywhere.

An engine is built on the first run, not at ``load``: the optimization profile of a model with a
dynamic batch is tuned for the batch actually fed, which the backend interface does not pass to
``load``. Warm-up therefore pays for the build and timing never does. ``check_loadable`` only
parses the network, so the FP16 fall-back loop costs a parse per try, not a build.

With ``profile_dir`` the engine's layer information (engine inspector, JSON) is saved there and a
``trt.IProfiler`` collector is set on the execution context; ``end_profiling()`` returns the layer
table (the same schema as ORT profiles and trtexec imports).
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from workbench.backends.base import Availability, Backend, Engine
from workbench.backends.fp8_support import nvidia_gpu
from workbench.backends.tensorrt_config import (
    INSTALL_HINT,
    TrtBuildOptions,
    create_config_kwargs,
    default_timing_cache,
    optimization_profile,
    parse_version,
    version_problem,
)
from workbench.backends.tensorrt_profiler import LayerTimeCollector, make_layer_profiler, tensorrt_module
from workbench.data.dataset import Dataset
from workbench.errors import BackendUnavailable, BuildError
from workbench.model.inspect import TensorInfo
from workbench.profiles.layer_table import EngineProfile

LAYER_INFO_FILE = "trt_layer_info.json"


@lru_cache(maxsize=1)
def tensorrt_availability() -> Availability:
    """Installed, a supported version, and a GPU a builder can start on; checked once per process."""
    trt = tensorrt_module()
    if trt is None:
        return Availability(False, INSTALL_HINT)
    problem = version_problem(trt.__version__)
    if problem:
        return Availability(False, problem)
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as exc:  # TensorRT raises when CUDA cannot start
        builder, error = None, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        error = "the builder could not be created"
    if builder is None:
        return Availability(
            False,
            f"TensorRT {trt.__version__} is installed but cannot start on a GPU ({error}): check `nvidia-smi` and "
            "that the driver supports the CUDA version of this TensorRT.",
        )
    return Availability(True, f"TensorRT {trt.__version__} is ready (strongly typed networks).")


def _model_io(model_path: Path) -> tuple[list[TensorInfo], list[str], list[str]]:
    """Input shapes and I/O names from the ONNX file, without its weights."""
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [
        TensorInfo(v.name, tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in v.type.tensor_type.shape.dim), "")
        for v in model.graph.input
        if v.name not in initializers
    ]
    node_names = [node.name for node in model.graph.node if node.name]
    return inputs, [o.name for o in model.graph.output], node_names


class TensorrtEngine(Engine):
    """One ONNX file as a TensorRT engine, built on first use for the batch it is fed."""

    def __init__(self, backend: TensorrtBackend, model_path: Path, profile_dir: Path | None) -> None:
        self.backend = backend
        self.model_path = Path(model_path)
        self.profile_dir = profile_dir
        self.inputs, self.output_names, self.node_names = _model_io(self.model_path)
        self.input_names = [t.name for t in self.inputs]
        self.runner: Any = None
        self.collector: LayerTimeCollector | None = None
        self._device_feed: dict[str, Any] = {}
        self._host_feed: dict[str, np.ndarray] = {}

    def _ensure_built(self, feed: dict[str, np.ndarray]) -> None:
        if self.runner is not None:
            return
        batch = int(next(iter(feed.values())).shape[0]) if feed else 1
        self.runner = self.backend.build_runner(self.model_path, self.inputs, batch)
        if self.profile_dir is not None:
            self._attach_profiler()

    def _attach_profiler(self) -> None:
        trt = tensorrt_module()
        assert self.profile_dir is not None and trt is not None
        inspector = self.runner.engine.create_engine_inspector()
        inspector.execution_context = self.runner.context
        info = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        (self.profile_dir / LAYER_INFO_FILE).write_text(info)
        self.collector = make_layer_profiler(info, known_nodes=set(self.node_names))
        self.runner.context.profiler = self.collector

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._ensure_built(feed)
        outputs = self.runner.infer(feed, check_inputs=False)
        # The runner reuses its host buffers on the next call: copy out.
        return {name: np.array(outputs[name], copy=True) for name in self.output_names}

    def time_once(self, feed: dict[str, np.ndarray]) -> float:
        """Inputs go to the GPU once per feed and outputs stay there: the timed call is the engine."""
        self._ensure_built(feed)
        outputs = self.runner.infer(self._on_device(feed), check_inputs=False, copy_outputs_to_host=False)
        del outputs
        if self.collector is not None:
            self.collector.end_run()
        return self.runner.last_inference_time() * 1000.0

    def _on_device(self, feed: dict[str, np.ndarray]) -> dict[str, Any]:
        if feed.keys() == self._host_feed.keys() and all(feed[n] is self._host_feed[n] for n in feed):
            return self._device_feed
        from polygraphy import cuda

        self._free_device_feed()
        for name, array in feed.items():
            array = np.ascontiguousarray(array)
            self._device_feed[name] = cuda.DeviceArray(shape=array.shape, dtype=array.dtype).copy_from(array)
        self._host_feed = dict(feed)
        return self._device_feed

    def _free_device_feed(self) -> None:
        for buffer in self._device_feed.values():
            buffer.free()
        self._device_feed, self._host_feed = {}, {}

    def end_profiling(self, warmup: int, batch: int, source_model: Any = None) -> EngineProfile:
        """Per-layer medians of the timed runs (the first ``warmup`` dropped), from the ``IProfiler``."""
        if self.collector is None or self.collector.runs <= warmup:
            return super().end_profiling(warmup, batch, source_model)
        return EngineProfile(self.collector.layer_table(skip=warmup),
                             statistics.median(self.collector.run_totals_ms(skip=warmup)))

    def close(self) -> None:
        self._free_device_feed()
        if self.runner is not None and self.runner.is_active:
            self.runner.deactivate()
        self.runner = None


class TensorrtBackend(Backend):
    name = "tensorrt"
    baseline_backend = "onnxruntime-cuda"
    quant_target = "tensorrt"
    weight_runtime = None  # TensorRT runs no MatMulNBits
    half_files = True
    description = "NVIDIA TensorRT 10/11 through Polygraphy (strongly typed; needs the tensorrt package and a GPU)"

    def __init__(self, options: TrtBuildOptions | None = None, engine_dir: Path | None = None) -> None:
        self.options = options or TrtBuildOptions()
        self.engine_dir = engine_dir

    @classmethod
    def availability(cls) -> Availability:
        return tensorrt_availability()

    def fp8_gpu(self) -> tuple[str, tuple[int, int] | None]:
        return nvidia_gpu(0)

    def finish_fp8(self, path: Path, source: Path, probe: Dataset | None) -> list[str]:
        """The Q/DQ file is what TensorRT takes: its E4M3 layers build to FP8 tensor-core kernels."""
        how = "strongly typed" if self.options.strongly_typed else "with the fp8 builder flag"
        return [f"FP8 on tensorrt: the E4M3 Q/DQ layers run on FP8 tensor cores ({how})"]

    def for_weights(self, sparse_2of4: bool) -> TensorrtBackend:
        """2:4-pruned weights turn on the builder's sparse-weights switch, so sparse tensor cores are tried."""
        if sparse_2of4 == self.options.sparse_weights:
            return self
        return TensorrtBackend(replace(self.options, sparse_weights=sparse_2of4), self.engine_dir)

    def _trt(self) -> Any:
        status = self.availability()
        if not status.available:
            raise BackendUnavailable(f"Backend '{self.name}' is unavailable.", status.reason)
        return tensorrt_module()

    def _load(self, model_path: Path, profile_dir: Path | None) -> Engine:
        return TensorrtEngine(self, model_path, profile_dir)

    def check_loadable(self, model_path: Path) -> str | None:
        """Parse only (a build takes minutes): the parser's errors name the node, as the fall-back needs."""
        trt = self._trt()
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if self.options.strongly_typed else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if parser.parse_from_file(str(model_path)):
            return None
        return "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors)) or "the ONNX parser failed"

    def build_runner(self, model_path: Path, inputs: list[TensorInfo], batch: int) -> Any:
        """Parse, configure, build (and save) an engine for ``batch``; returns an active TrtRunner."""
        from polygraphy.backend.trt import CreateConfig, EngineFromNetwork, NetworkFromOnnxPath, SaveEngine, TrtRunner

        trt = self._trt()
        major, _ = parse_version(trt.__version__)
        precision = _precision_of(model_path)
        profile = optimization_profile(inputs, batch, self.options.max_batch)
        cache = self.options.timing_cache or default_timing_cache(trt.__version__)
        cache.parent.mkdir(parents=True, exist_ok=True)
        kwargs = create_config_kwargs(self.options, precision, major, profile, cache)
        network = NetworkFromOnnxPath(str(model_path), strongly_typed=self.options.strongly_typed)
        engine: Any = EngineFromNetwork(network, CreateConfig(**kwargs), save_timing_cache=str(cache))
        if self.engine_dir is not None:
            self.engine_dir.mkdir(parents=True, exist_ok=True)
            engine = SaveEngine(engine, str(self.engine_dir / f"{Path(model_path).stem}.b{batch}.engine"))
        runner = TrtRunner(engine)
        try:
            runner.activate()
        except Exception as exc:
            raise BuildError(
                f"TensorRT could not build '{Path(model_path).name}': {str(exc).splitlines()[0][:300]}",
                "Check the model with `polygraphy run MODEL --trt`, try a lower builder optimization level, "
                "or use --backend onnxruntime-cuda.",
            ) from exc
        return runner


def _precision_of(model_path: Path) -> str:
    """The precision the variant file was built for, read back from its tensors (weak typing only)."""
    model = onnx.load(str(model_path), load_external_data=False)
    types = {init.data_type for init in model.graph.initializer}
    if onnx.TensorProto.FLOAT8E4M3FN in types:
        return "fp8"
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        return "int8"
    if onnx.TensorProto.FLOAT16 in types:
        return "fp16"
    if onnx.TensorProto.BFLOAT16 in types:
        return "bf16"
    return "fp32"
