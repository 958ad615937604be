"""Asymmetric activation quantizers of a Q/DQ file rewritten from int8 to uint8, the grid unchanged.

NNCF's ONNX backend writes an asymmetric activation quantizer (the transformer preset's "mixed"
activations) as int8 with a non-zero zero point. OpenVINO's ONNX reader keeps that explicit int8
type, so the matrix products after it run signed x signed (``brgemm_avx512_i8`` on s8 inputs), where
NNCF applied to OpenVINO's own model leaves the range to OpenVINO, which runs it unsigned (u8 x s8,
the form AVX-512 VNNI and AMX compute natively, without the compensation pass signed inputs need).
The same quantizer as uint8 with the zero point moved up by 128 is the same grid, value for value
(q_u8 = q_i8 + 128, both ends included), and OpenVINO then executes the file exactly as it executes
its native result. ONNX Runtime prefers uint8 activations on x86 as well.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper


def unsigned_activations(model: onnx.ModelProto) -> int:
    """Rewrite, in place, each activation QuantizeLinear with an int8 non-zero zero point (and the
    DequantizeLinear nodes reading it) to uint8; returns how many quantizers changed.

    Symmetric quantizers (zero point 0) stay int8: OpenVINO's native result keeps those signed too.
    A quantizer whose output feeds anything but DequantizeLinear is left alone, since its integers
    would reach an op that reads them as values."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            readers[name].append(node)
    recorded = {info.name: info for info in graph.value_info}
    renamed: dict[str, str] = {}
    changed = 0
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 3 or node.input[2] not in initializers:
            continue
        zero_point = numpy_helper.to_array(initializers[node.input[2]])
        dequantizers = readers[node.output[0]]
        if zero_point.dtype != np.int8 or not zero_point.any() or not dequantizers:
            continue
        if any(user.op_type != "DequantizeLinear" or user.input[2:3] != node.input[2:3] for user in dequantizers):
            continue
        old = node.input[2]
        if old not in renamed:
            renamed[old] = f"{old}_uint8"
            unsigned = (zero_point.astype(np.int16) + 128).astype(np.uint8)
            graph.initializer.append(numpy_helper.from_array(unsigned, renamed[old]))
        for target in (node, *dequantizers):
            target.input[2] = renamed[old]
        if node.output[0] in recorded:  # shape inference recorded the integer tensor as int8
            recorded[node.output[0]].type.tensor_type.elem_type = onnx.TensorProto.UINT8
        changed += 1
    still_read = {name for node in graph.node for name in node.input}
    orphans = [init for init in graph.initializer if init.name in renamed and init.name not in still_read]
    for init in orphans:
        graph.initializer.remove(init)
    return changed
