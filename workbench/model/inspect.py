"""What a person needs to know about a model before building: I/O, op mix, size and cost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from workbench.model.batch_axes import guessed_axes
from workbench.model.flops import node_flops, parameter_count
from workbench.model.loader import LoadedModel

_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}


@dataclass(frozen=True)
class TensorInfo:
    """An input or output; symbolic dims keep their names (e.g. 'batch'), unknown ones are '?'."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    @property
    def dynamic_dims(self) -> list[int]:
        return [i for i, d in enumerate(self.shape) if isinstance(d, str)]

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass
class ModelInfo:
    """The inspection shown in the Model panel and printed by `workbench inspect`."""

    name: str
    digest: str
    opset: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    parameters: int
    flops_per_node: dict[str, float] = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    #: The per-sample input shapes FLOPs were counted at, when dims besides the batch are dynamic.
    flops_shapes: dict[str, list[int]] = field(default_factory=dict)
    #: Whether some input has dynamic dims besides its batch axis (FLOPs then depend on the data's shape).
    flops_dynamic: bool = False

    @property
    def flops(self) -> float:
        """Per-sample FLOPs of the nodes whose cost could be computed."""
        return float(sum(self.flops_per_node.values()))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "digest": self.digest,
            "opset": self.opset,
            "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.inputs],
            "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.outputs],
            "op_histogram": self.op_histogram,
            "parameters": self.parameters,
            "gflops_per_sample": self.flops / 1e9,
            "gflops_at_shapes": self.flops_shapes,
            "warnings": self.warnings,
        }


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor_type = value.type.tensor_type
    dims: list[int | str] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or "?")
    dtype = _DTYPES.get(tensor_type.elem_type, onnx.TensorProto.DataType.Name(tensor_type.elem_type).lower())
    return TensorInfo(value.name, tuple(dims), dtype)


def _model_name(path: Path) -> str:
    """``<folder>/model.onnx`` is named by its folder, resolved, so ``model.onnx`` from inside it is too."""
    folder = path.absolute().parent.name
    return folder if path.stem == "model" and folder else path.stem


def inspect_model(model: LoadedModel, sample_shapes: Mapping[str, Sequence[int]] | None = None) -> ModelInfo:
    """Summarize a loaded model; warnings flag what will surprise a user at build time.

    ``sample_shapes`` (one sample per input, its batch axis at 1, e.g. ``Dataset.sample_shapes()`` of the
    evaluation data) fix dims besides the batch for the FLOP count: a detector with dynamic height and
    width costs nothing at 1x1."""
    graph = model.proto.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [_tensor_info(v) for v in graph.input if v.name not in initializers]
    outputs = [_tensor_info(v) for v in graph.output]
    histogram = Counter(node.op_type for node in graph.node)
    warnings = []
    axes = guessed_axes(inputs)
    dynamic = set()
    for tensor in inputs:
        extra = [d for i, d in enumerate(tensor.shape) if isinstance(d, str) and i != axes[tensor.name]]
        if extra:
            dynamic.add(tensor.name)
            warnings.append(
                f"Input '{tensor.name}' has dynamic dims {extra} besides the batch: calibration and "
                "timing use the shape of your data, so keep it representative."
            )
    flops_shapes = {name: list(shape) for name, shape in (sample_shapes or {}).items() if name in dynamic}
    if dynamic and not flops_shapes:
        warnings.append("FLOPs are counted with the dynamic dims besides the batch at 1: give evaluation data "
                        "(inspect --eval) to count them at its shape.")
    custom = sorted({node.domain for node in graph.node if node.domain not in ("", "ai.onnx")})
    if custom:
        warnings.append(f"Ops from custom domains {custom}: TensorRT may lack them.")
    return ModelInfo(
        name=_model_name(model.path),
        digest=model.digest,
        opset=model.opset,
        inputs=inputs,
        outputs=outputs,
        op_histogram=dict(histogram.most_common()),
        parameters=parameter_count(model.proto),
        flops_per_node=node_flops(model.proto, flops_shapes or None),
        warnings=warnings,
        flops_shapes=flops_shapes,
        flops_dynamic=bool(dynamic),
    )
