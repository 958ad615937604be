"""FP8 matrix products for ONNX Runtime's CUDA provider: Q/DQ MatMul/Gemm rewritten to ``com.microsoft.GemmFloat8``.

ONNX Runtime's CUDA provider runs an FP8 Q/DQ file as a simulation: it dequantizes to FP32 and
multiplies in FP32. Its contrib op ``GemmFloat8`` calls cuBLASLt's FP8 matrix product instead, so
a transformer's linear layers really run on FP8 tensor cores. The op takes 2-D E4M3 operands and
per-tensor scales (``Y = scaleA * A @ (scaleB * B)^T``, row-major, ``transB=1``: cuBLASLt's FP8
kernels want the "TN" layout, which row-major ``A @ B^T`` is), so a product is rewritten where

* its activation comes from an E4M3 QuantizeLinear → DequantizeLinear pair and its weight is a
  2-D E4M3 initializer behind a DequantizeLinear, both with one scale;
* the inner and outer sizes are multiples of 16 (cuBLASLt's FP8 alignment).

Activations of rank 3 or more are flattened to 2-D and the result reshaped back. A Gemm's bias is
added after the product. Everything else (convolutions, products that do not fit) stays a Q/DQ
simulation. Whether ONNX Runtime loads and computes the rewritten file as the Q/DQ file does is
checked on the GPU by the backend (``OnnxruntimeCudaBackend.finish_fp8``), never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"
ALIGNMENT = 16
_E4M3 = TensorProto.FLOAT8E4M3FN


@dataclass(frozen=True)
class Rewrite:
    """How many matrix products became GemmFloat8, and why the others did not."""

    rewritten: int
    skipped: dict[str, str]

    def note(self) -> str:
        total = self.rewritten + len(self.skipped)
        why = sorted(set(self.skipped.values()))
        rest = f"; the other {len(self.skipped)} stay Q/DQ ({'; '.join(why)})" if self.skipped else ""
        return (f"{self.rewritten} of {total} matrix products rewritten to com.microsoft.GemmFloat8 "
                f"(cuBLASLt FP8, FP32 accumulation){rest}")


class _Graph:
    """Lookups over one graph: who makes a tensor, which initializers and shapes are known."""

    def __init__(self, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        self.model = model
        self.producer = {out: node for node in model.graph.node for out in node.output}
        self.inits = {init.name: init for init in model.graph.initializer}
        self.ranks = {}
        for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
            if value.type.tensor_type.HasField("shape"):
                self.ranks[value.name] = len(value.type.tensor_type.shape.dim)

    def scalar(self, name: str) -> bool:
        init = self.inits.get(name)
        return init is not None and int(np.prod(init.dims, dtype=np.int64)) == 1

    def dq(self, name: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == "DequantizeLinear" else None


def _e4m3_weight(graph: _Graph, dq: onnx.NodeProto) -> np.ndarray | None:
    """The raw E4M3 bytes of a 2-D weight behind ``dq`` (as uint8), or None."""
    init = graph.inits.get(dq.input[0])
    if init is None or init.data_type != _E4M3 or len(init.dims) != 2 or not init.raw_data:
        return None
    return np.frombuffer(init.raw_data, dtype=np.uint8).reshape(tuple(init.dims))


def _e4m3_tensor(name: str, raw: np.ndarray) -> TensorProto:
    tensor = TensorProto(name=name, data_type=_E4M3, dims=list(raw.shape))
    tensor.raw_data = np.ascontiguousarray(raw).tobytes()
    return tensor


def _operands(graph: _Graph, node: onnx.NodeProto) -> tuple[onnx.NodeProto, onnx.NodeProto, np.ndarray] | str:
    """(activation Q, weight DQ, weight as N x K) where the product fits GemmFloat8, else why not."""
    act_dq, w_dq = graph.dq(node.input[0]), graph.dq(node.input[1])
    if act_dq is None or w_dq is None:
        return "an operand is not quantized"
    quant = graph.producer.get(act_dq.input[0])
    weight = _e4m3_weight(graph, w_dq)
    if quant is None or quant.op_type != "QuantizeLinear" or weight is None:
        return "the activation or the weight is not E4M3"
    if not all(graph.scalar(n.input[1]) for n in (quant, act_dq, w_dq)):
        return "scales are not per tensor"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Gemm":
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            return "Gemm with transA, alpha or beta"
        weight = weight if attrs.get("transB", 0) else weight.T  # GemmFloat8 takes the weight as N x K
    else:
        weight = weight.T
    if any(size % ALIGNMENT for size in weight.shape):
        return f"sizes not multiples of {ALIGNMENT}"
    return quant, w_dq, weight


def _rewrite_one(graph: _Graph, node: onnx.NodeProto, quant: onnx.NodeProto, w_dq: onnx.NodeProto,
                 weight: np.ndarray, one: str) -> list[onnx.NodeProto]:
    """The nodes that replace ``node``: flatten, GemmFloat8, reshape back, bias."""
    name, out = node.name or node.output[0], node.output[0]
    x_fp8, x_float = quant.output[0], quant.input[0]
    graph.model.graph.initializer.append(_e4m3_tensor(f"{name}_weight_e4m3_nk", weight))
    rank = graph.ranks.get(x_float, 2)
    nodes, a = [], x_fp8
    if rank != 2:
        graph.model.graph.initializer.append(numpy_helper.from_array(
            np.array([-1, weight.shape[1]], np.int64), f"{name}_2d"))
        nodes.append(helper.make_node("Reshape", [x_fp8, f"{name}_2d"], [f"{name}_a2d"], name=f"{name}_flatten"))
        a = f"{name}_a2d"
    has_bias = node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]
    product = out if rank == 2 and not has_bias else f"{name}_y2d"
    nodes.append(helper.make_node(
        "GemmFloat8", [a, f"{name}_weight_e4m3_nk", "", quant.input[1], w_dq.input[1], one], [product],
        name=f"{name}_fp8", domain=MS_DOMAIN, transA=0, transB=1, dtype=TensorProto.FLOAT))
    if rank != 2:
        graph.model.graph.initializer.append(numpy_helper.from_array(np.array([weight.shape[0]], np.int64),
                                                                     f"{name}_n"))
        nodes += [
            helper.make_node("Shape", [x_float], [f"{name}_xshape"], name=f"{name}_shape", end=-1),
            helper.make_node("Concat", [f"{name}_xshape", f"{name}_n"], [f"{name}_yshape"], name=f"{name}_cat",
                             axis=0),
            helper.make_node("Reshape", [product, f"{name}_yshape"], [out], name=f"{name}_unflatten"),
        ]
    elif has_bias:
        nodes.append(helper.make_node("Add", [product, node.input[2]], [out], name=f"{name}_bias"))
    return nodes


def _drop_dead(model: onnx.ModelProto) -> None:
    """Remove nodes and initializers nothing reads any more (the replaced products' DequantizeLinear)."""
    needed = {out.name for out in model.graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(model.graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    inits = [init for init in model.graph.initializer if init.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)


def rewrite_gemm_float8(model: onnx.ModelProto) -> Rewrite:
    """Rewrite, in place, every MatMul/Gemm of an E4M3 Q/DQ model that fits GemmFloat8."""
    graph = _Graph(model)
    one = "gemm_float8_scale_one"
    new_nodes: list[onnx.NodeProto] = []
    rewritten, skipped = 0, {}
    for node in model.graph.node:
        found = _operands(graph, node) if node.op_type in ("MatMul", "Gemm") else None
        if found is None or isinstance(found, str):
            if isinstance(found, str):
                skipped[node.name or node.output[0]] = found
            new_nodes.append(node)
            continue
        new_nodes += _rewrite_one(graph, node, *found, one)
        rewritten += 1
    if rewritten:
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        _drop_dead(model)
        if not any(o.domain == MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return Rewrite(rewritten, skipped)
