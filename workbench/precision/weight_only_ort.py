"""Weight-only INT8/INT4 with ONNX Runtime's ``matmul_nbits_quantizer``: ``com.microsoft.MatMulNBits``.

Each quantized MatMul becomes one MatMulNBits node holding its weight in 4 or 8 bits per block of
``block_size`` rows, with a scale (and a zero point when asymmetric); activations stay FP32, or are
quantized on the fly per block when ``accuracy_level`` is 4 (int8 dot products, the fast path on
x86 with VNNI). ONNX Runtime's quantizer rewrites MatMul only, so a Gemm layer is first rewritten as
the MatMul (+ Add of its bias) it computes. A mix of 4 and 8 bits is two passes of the quantizer,
each over its own layers.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from workbench.data.dataset import Dataset
from workbench.errors import BuildError
from workbench.precision.calibration import feed_reader
from workbench.precision.weight_layers import WeightLayer, weight_layers
from workbench.progress import Progress

#: GPTQ sees this many calibration samples: its Hessians settle long before the data runs out.
GPTQ_SAMPLES = 64


def gemm_as_matmul(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """Rewrite the named Gemm nodes as MatMul (+ Add): the same product, in the op the quantizer handles.

    The MatMul keeps the Gemm's name, so the quantizer's include/exclude lists still find it."""
    inits = {init.name: init for init in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if node.op_type != "Gemm" or node.name not in names:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        weight = (weight.T if attrs.get("transB", 0) else weight) * float(attrs.get("alpha", 1.0))
        weight_name = f"{node.input[1]}_as_matmul_{len(nodes)}"
        model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), weight_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], weight_name], [product], name=node.name))
        if has_bias:
            bias = node.input[2]
            beta = float(attrs.get("beta", 1.0))
            if beta != 1.0:
                scaled = numpy_helper.to_array(inits[bias]).astype(np.float32) * beta
                bias = f"{bias}_beta_{len(nodes)}"
                model.graph.initializer.append(numpy_helper.from_array(scaled, bias))
            nodes.append(helper.make_node("Add", [product, bias], [node.output[0]], name=f"{node.name}_bias"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _algo_config(algorithm: str, bits: int, block_size: int, calib: Dataset | None):
    from onnxruntime.quantization import matmul_nbits_quantizer as mnq

    if algorithm == "hqq":
        if importlib.util.find_spec("torch") is None:
            raise BuildError("HQQ in ONNX Runtime's quantizer runs on PyTorch, which is not installed.",
                             "pip install torch (the CPU wheel), or use --quant-option weight_algorithm=rtn.")
        return mnq.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
    if algorithm == "gptq":
        assert calib is not None
        if importlib.util.find_spec("torch") is None:  # its data loader converts every feed through PyTorch
            raise BuildError("GPTQ in ONNX Runtime's quantizer needs PyTorch, which is not installed.",
                             "pip install torch (the CPU wheel), or use --quant-option weight_algorithm=awq (NNCF, "
                             "calibrated as well).")
        count = min(GPTQ_SAMPLES, len(calib))
        feeds = [{name: np.asarray(array, order="C") for name, array in calib.samples(i, i + 1).items()}
                 for i in range(count)]
        return mnq.GPTQWeightOnlyQuantConfig(calibration_data_reader=feed_reader(feeds))
    return None  # the quantizer's own default: round-to-nearest per block


def _quantize_pass(model: onnx.ModelProto, layers: Sequence[WeightLayer], bits: int, *, block_size: int,
                   symmetric: bool, algorithm: str, calib: Dataset | None) -> onnx.ModelProto:
    """One quantizer pass over ``layers`` only: every other MatMul is excluded by name."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    class Quantizer(MatMulNBitsQuantizer):
        def _generate_q4_node_config(self) -> dict:
            # Its GPTQ path reads exclusions only from this config ("fp32"), never from nodes_to_exclude.
            return {**super()._generate_q4_node_config(), **dict.fromkeys(self.nodes_to_exclude, "fp32")}

    chosen = {layer.name for layer in layers}
    others = [node.name for node in model.graph.node if node.op_type == "MatMul" and node.name not in chosen]
    quantizer = Quantizer(
        model, bits=bits, block_size=block_size, is_symmetric=symmetric,
        nodes_to_exclude=others, algo_config=_algo_config(algorithm, bits, block_size, calib),
    )
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    quantizer.process()
    return quantizer.model.model


def quantize_weights_ort(
    model: onnx.ModelProto,
    four: Sequence[WeightLayer],
    eight: Sequence[WeightLayer],
    *,
    block_size: int,
    symmetric: bool,
    algorithm: str,
    calib: Dataset | None,
    progress: Progress,
) -> tuple[onnx.ModelProto, list[str]]:
    """The model with ``four`` in 4 bits and ``eight`` in 8 bits (MatMulNBits), and notes on what was done."""
    gemms = {layer.name for layer in (*four, *eight) if layer.op_type == "Gemm"}
    model = gemm_as_matmul(model, gemms) if gemms else model
    notes = [f"Gemm layers rewritten as MatMul + Add for ONNX Runtime's quantizer: {', '.join(sorted(gemms))}"] \
        if gemms else []
    shared = {"block_size": block_size, "symmetric": symmetric, "calib": calib}
    if four:
        progress.report("quantize", 0.1, f"{algorithm.upper()}: {len(four)} layers to 4 bits")
        model = _quantize_pass(model, four, 4, algorithm=algorithm, **shared)
    if eight:
        progress.report("quantize", 0.6, f"{len(eight)} layers to 8 bits")
        # GPTQ and HQQ here write 4 bits only: the 8-bit layers are rounded to nearest.
        model = _quantize_pass(model, eight, 8, algorithm="rtn", **shared)
    chosen = {layer.name for layer in (*four, *eight)}
    skipped = [layer.name for layer in weight_layers(model) if layer.name in chosen]
    if skipped:
        raise BuildError(f"ONNX Runtime's quantizer left {len(skipped)} of the {len(chosen)} chosen layers "
                         f"unquantized: {', '.join(skipped[:5])}.",
                         "Keep them with --exclude, or try another --quant-option block_size.")
    return model, notes
