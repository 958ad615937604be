"""Minimal reproduction: ONNX Runtime's CUDA provider fuses Conv+ReLU and Conv+Add+ReLU only in FP32.

Two tiny models, each in FP32 and FP16: ``Conv(bias) -> Relu`` and ``Conv -> Add(residual) -> Relu``,
the two patterns ResNet-50 repeats 49 and 16 times. Each is loaded on the CUDA provider in NCHW and
channels-last (``prefer_nhwc=1``, with ``fuse_conv_bias=1``) and its optimised graph is saved
(``SessionOptions.optimized_model_filepath``); the script prints which nodes are left. Where FP32
shows a fused convolution (``FusedConv``, or an NHWC ``Conv`` with an ``activation`` attribute) and
FP16 still a separate ``Relu``/``Add``, the cause is ONNX Runtime's ``ConvActivationFusion``, whose
data-type check (``ConvFusionDataTypeCheck`` in onnxruntime/core/optimizer/conv_activation_fusion.cc)
admits only float inputs on the CUDA provider, and its CUDA ``FusedConv`` kernel, registered for float.

    python3 benchmarks/ort_fp16_conv_relu_fusion.py                 # on an NVIDIA GPU with onnxruntime-gpu
    python3 benchmarks/ort_fp16_conv_relu_fusion.py --provider cpu  # the same graphs on the CPU provider
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 64


def conv_model(residual: bool, dtype: int) -> onnx.ModelProto:
    """x -> Conv(3x3, bias) [-> Add(x)] -> Relu, 64 channels, 56x56 like ResNet-50's first stage."""
    rng = np.random.default_rng(0)
    np_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float32
    weight = (rng.standard_normal((CHANNELS, CHANNELS, 3, 3)) * 0.05).astype(np_type)
    bias = (rng.standard_normal(CHANNELS) * 0.1).astype(np_type)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1])]
    last = "conv"
    if residual:
        nodes.append(helper.make_node("Add", ["conv", "x"], ["sum"], name="residual_add"))
        last = "sum"
    nodes.append(helper.make_node("Relu", [last], ["y"], name="relu"))
    shape = ["batch", CHANNELS, 56, 56]
    graph = helper.make_graph(nodes, "conv_relu", [helper.make_tensor_value_info("x", dtype, shape)],
                              [helper.make_tensor_value_info("y", dtype, shape)],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def optimized_nodes(model: onnx.ModelProto, provider: str, options: dict[str, str]) -> list[str]:
    """The optimised graph's nodes as 'op(domain)[activation]' after one run on ``provider``."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        path, optimized = Path(tmp) / "model.onnx", Path(tmp) / "optimized.onnx"
        onnx.save(model, str(path))
        session_options = ort.SessionOptions()
        session_options.optimized_model_filepath = str(optimized)
        session_options.log_severity_level = 3
        providers = [(provider, options), "CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [provider]
        session = ort.InferenceSession(str(path), session_options, providers=providers)
        np_type = np.float16 if model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16 else np.float32
        session.run(None, {"x": np.ones((2, CHANNELS, 56, 56), np_type)})
        described = []
        for node in onnx.load(str(optimized)).graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            activation = attrs.get("activation")
            activation = activation.decode() if isinstance(activation, bytes) else activation
            described.append(f"{node.op_type}({node.domain or 'ai.onnx'})" + (f"[{activation}]" if activation else ""))
    return described


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    provider = "CUDAExecutionProvider" if args.provider == "cuda" else "CPUExecutionProvider"
    import onnxruntime as ort

    if provider not in ort.get_available_providers():
        print(f"{provider} is not available in this onnxruntime build ({ort.__version__})", file=sys.stderr)
        return 2
    layouts = {"NCHW": {"prefer_nhwc": "0"}, "channels-last, fused bias": {"prefer_nhwc": "1", "fuse_conv_bias": "1"}}
    print(f"onnxruntime {ort.__version__}, {provider}\n")
    print("| pattern | type | layout | optimised graph (left after fusion) | separate Relu/Add |")
    print("| --- | --- | --- | --- | ---: |")
    for residual in (False, True):
        for label, dtype in (("FP32", TensorProto.FLOAT), ("FP16", TensorProto.FLOAT16)):
            for layout, options in layouts.items():
                try:
                    nodes = optimized_nodes(conv_model(residual, dtype), provider, options)
                except Exception as exc:  # a refusal is a row of the table, not the end of it
                    print(f"| {'Conv+Add+Relu' if residual else 'Conv+Relu'} | {label} | {layout} | "
                          f"failed: {str(exc).splitlines()[0][:120]} | |")
                    continue
                left = Counter(n.split("(")[0] for n in nodes)
                print(f"| {'Conv+Add+Relu' if residual else 'Conv+Relu'} | {label} | {layout} | {', '.join(nodes)} | "
                      f"{left['Relu'] + left['Add']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
