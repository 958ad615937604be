"""Run a model over calibration data and collect inner tensors or their per-channel statistics.

The repairs need inner activations recomputed after each upstream fix: their mean (and variance)
for BatchNorm re-estimation and bias correction, the tensors themselves for reconstruction.
Rebuilding an ONNX Runtime session per fix would dominate the time, so the constants being fixed
become graph *inputs* of one session, and each pass feeds their current values.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import onnx

from workbench.errors import DataError
from workbench.pruning.graph_index import GraphIndex

DEFAULT_BATCH = 64


def check_calib(model: onnx.ModelProto, calib_inputs: Mapping[str, np.ndarray]) -> int:
    """Refuse calibration data that does not fit the model; return the number of samples."""
    index = GraphIndex(model)
    inputs = [i for i in model.graph.input if i.name in index.graph_inputs]
    names = {i.name for i in inputs}
    missing, extra = names - set(calib_inputs), set(calib_inputs) - names
    if missing or extra:
        raise DataError(
            f"Calibration data has inputs {sorted(calib_inputs)}, the model needs {sorted(names)}.",
            "Provide one array per model input, named as the model names them.",
        )
    counts = set()
    for info in inputs:
        array = np.asarray(calib_inputs[info.name])
        dims = info.type.tensor_type.shape.dim
        if array.ndim != len(dims) or any(
            d.HasField("dim_value") and d.dim_value != s for d, s in list(zip(dims, array.shape, strict=True))[1:]
        ):
            want = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
            raise DataError(f"Calibration input {info.name!r} has shape {list(array.shape)}, the model "
                            f"expects {want}.", "Resize or reshape the data to the model's input shape.")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataError(f"Calibration input {info.name!r} contains NaN or Inf.",
                            "Clean the data; statistics from non-finite values are meaningless.")
        counts.add(array.shape[0])
    if len(counts) != 1 or 0 in counts:
        raise DataError(f"Calibration inputs hold different or zero sample counts: {sorted(counts)}.",
                        "Give every input the same, non-zero number of samples.")
    return counts.pop()


class Probe:
    """One session over a copy of ``model`` exposing ``tensors`` and taking ``params`` as inputs."""

    def __init__(self, model: onnx.ModelProto, tensors: Iterable[str], params: Iterable[str] = ()) -> None:
        import onnxruntime as ort  # an extra (cpu or gpu); imported here so the engine loads without it

        self.tensors = list(dict.fromkeys(tensors))
        self.params = list(dict.fromkeys(params))
        probe = copy.deepcopy(model)
        index = GraphIndex(probe)
        self.initial: dict[str, np.ndarray] = {}
        for name in self.params:
            value = index.const(name)
            self.initial[name] = value
            elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
            probe.graph.input.append(onnx.helper.make_tensor_value_info(name, elem, list(value.shape)))
        keep = [t for t in probe.graph.initializer if t.name not in self.params]
        del probe.graph.initializer[:]
        probe.graph.initializer.extend(keep)
        nodes = [n for n in probe.graph.node if not (n.op_type == "Constant" and n.output[0] in self.params)]
        del probe.graph.node[:]
        probe.graph.node.extend(nodes)
        existing = {o.name for o in probe.graph.output}
        for name in self.tensors:
            if name not in existing:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                probe.graph.output[-1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        self._fix_output_types(probe)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(probe.SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs() if i.name not in self.params]
        shape = self.session.get_inputs()[0].shape
        self.fixed_batch = shape[0] if shape and isinstance(shape[0], int) else None

    @staticmethod
    def _fix_output_types(probe: onnx.ModelProto) -> None:
        """Exposed tensors need their real element type, which shape inference knows."""
        try:
            inferred = onnx.shape_inference.infer_shapes(probe)
        except Exception:
            return
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
        for out in probe.graph.output:
            if types.get(out.name):
                out.type.tensor_type.elem_type = types[out.name]

    def batches(
        self,
        calib_inputs: Mapping[str, np.ndarray],
        tensors: list[str],
        params: Mapping[str, np.ndarray] | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> Iterator[list[np.ndarray]]:
        """The values of ``tensors`` for each batch of the calibration data, in order.

        A model with a fixed batch size skips the last partial batch.
        """
        feeds_params = {**self.initial, **(params or {})}
        total = next(iter(calib_inputs.values())).shape[0]
        step = self.fixed_batch or batch_size
        for start in range(0, total - (total % step if self.fixed_batch else 0), step):
            feeds = {n: np.ascontiguousarray(calib_inputs[n][start:start + step]) for n in self.inputs}
            feeds.update(feeds_params)
            yield self.session.run(tensors, feeds)

    def moments(
        self,
        calib_inputs: Mapping[str, np.ndarray],
        axes: Mapping[str, int],
        params: Mapping[str, np.ndarray] | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per-channel mean and population variance of each tensor in ``axes`` over all samples."""
        wanted = list(axes)
        sums: dict[str, np.ndarray] = {}
        squares: dict[str, np.ndarray] = {}
        counts: dict[str, int] = dict.fromkeys(wanted, 0)
        for outs in self.batches(calib_inputs, wanted, params, batch_size):
            for name, value in zip(wanted, outs, strict=True):
                moved = np.moveaxis(value.astype(np.float64), axes[name], -1)
                rows = moved.reshape(-1, moved.shape[-1])
                sums[name] = sums.get(name, 0) + rows.sum(0)
                squares[name] = squares.get(name, 0) + (rows**2).sum(0)
                counts[name] += rows.shape[0]
        result = {}
        for name in wanted:
            if not counts[name]:
                raise DataError("Too few calibration samples for the model's fixed batch size.",
                                f"Provide at least {self.fixed_batch or batch_size} samples.")
            mean = sums[name] / counts[name]
            result[name] = (mean, np.maximum(squares[name] / counts[name] - mean**2, 0.0))
        return result


def fix_levels(model: onnx.ModelProto, targets: Iterable[onnx.NodeProto]) -> dict[int, int]:
    """For each target node, 1 + the number of target nodes on its longest upstream path.

    Targets on one level do not feed each other, so their statistics can be taken in the same
    pass once every lower level has been fixed: as many passes as the deepest chain, not one per
    node.
    """
    wanted = {id(n) for n in targets}
    depth: dict[str, int] = {}
    levels: dict[int, int] = {}
    for node in model.graph.node:
        upstream = max((depth.get(i, 0) for i in node.input if i), default=0)
        if id(node) in wanted:
            levels[id(node)] = upstream + 1
            upstream += 1
        for out in node.output:
            depth[out] = upstream
    return levels


def downstream(model: onnx.ModelProto, tensors: Iterable[str]) -> set[int]:
    """Ids of the nodes that read, directly or not, any of ``tensors``."""
    tainted = set(tensors)
    reached: set[int] = set()
    for node in model.graph.node:
        if any(i in tainted for i in node.input):
            reached.add(id(node))
            tainted.update(o for o in node.output if o)
    return reached
