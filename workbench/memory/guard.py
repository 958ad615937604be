"""Refuse, before it starts, a step that would not fit in memory, and say what would.

A laptop that swaps or kills the kernel loses more than a refused build. The estimate is taken
from the graph, not measured: ONNX shape inference with the real batch's input shapes, then the
largest set of tensors alive at once when the nodes run in order (ONNX Runtime frees a tensor
after its last reader, much as this walk does), times two engines (the reference and the variant
are timed side by side), plus the batch itself. Large weights are left out of the copy that
shape inference sees, so the estimate costs next to no memory itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from workbench.errors import DataError, WorkbenchError
from workbench.memory.system import available_bytes, target_bytes
from workbench.memory.weight_values import graph_without_weights

#: The reference and the variant are loaded and timed together.
ENGINES = 2
#: Initializers with more elements than this lose their values in the shape-inference copy
#: (only their shapes matter; small ones, like Reshape's target shape, are read by inference).
_KEEP_VALUES_UP_TO = 1024

_ELEMENT_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2,
                  onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4,
                  onnx.TensorProto.INT8: 1, onnx.TensorProto.UINT8: 1, onnx.TensorProto.BOOL: 1,
                  onnx.TensorProto.INT16: 2, onnx.TensorProto.UINT16: 2}


def readable_bytes(count: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 1e3:.0f} kB"


def _room_text() -> str:
    return (f"the {readable_bytes(available_bytes())} this build may use (WORKBENCH_MEMORY_GB is "
            f"{target_bytes() / 2**30:g}, less what is in use)")


def check_input_fits(name: str, shape: Sequence[int], dtype: np.dtype | str, count: int) -> None:
    """Before ``count`` samples of an input are made: one that cannot fit is refused, naming the input."""
    per_sample = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    need = per_sample * count
    if need > available_bytes():
        fits = available_bytes() // max(per_sample, 1)
        advice = (f"use {fits} samples or fewer" if fits else
                  "give this input a smaller fixed shape (re-export the model) or use another model")
        raise DataError(f"Input '{name}' of shape {list(shape)} takes {readable_bytes(per_sample)} per sample, so "
                        f"{count} samples need {readable_bytes(need)}, more than {_room_text()};",
                        f"{advice}, or raise WORKBENCH_MEMORY_GB on a machine with more memory.")


def _shape_copy(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The graph without large weight values and with the feed's concrete input shapes, shapes inferred."""
    graph = graph_without_weights(model.graph, _KEEP_VALUES_UP_TO, external=False)
    for value in graph.input:
        if value.name in feed:
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for size in feed[value.name].shape:
                dims.add().dim_value = int(size)
    copy = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return onnx.shape_inference.infer_shapes(copy, strict_mode=False)


def _bytes_of(value: onnx.ValueInfoProto) -> int:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape") or any(not d.HasField("dim_value") for d in tensor.shape.dim):
        return 0  # unknown here: counted as nothing rather than guessed
    return int(np.prod([d.dim_value for d in tensor.shape.dim], dtype=np.float64)) * _ELEMENT_BYTES.get(
        tensor.elem_type, 4)


def peak_activation_bytes(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> int:
    """The most bytes of activations alive at once when the nodes run in graph order on ``feed``."""
    try:
        inferred = _shape_copy(model, feed)
    except Exception:  # shape inference fails on some custom ops: then only the feed is counted
        return sum(array.nbytes for array in feed.values())
    graph = inferred.graph
    sizes = {v.name: _bytes_of(v) for v in [*graph.value_info, *graph.output]}
    sizes.update({name: array.nbytes for name, array in feed.items()})
    last_reader = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            last_reader[name] = index
    outputs = {v.name for v in graph.output}
    live = sum(array.nbytes for array in feed.values())
    peak = live
    for index, node in enumerate(graph.node):
        live += sum(sizes.get(name, 0) for name in node.output)
        peak = max(peak, live)
        for name in set(node.input):
            if last_reader.get(name) == index and name not in outputs:
                live -= sizes.get(name, 0)
    return peak


def check_timing_fits(model: onnx.ModelProto, feed: Mapping[str, np.ndarray], batch: int,
                      engines: int = ENGINES) -> None:
    """Before engines are loaded: ``engines`` engines' activations at ``batch`` plus the batch must fit
    (three on a backend other than the default, whose FP32 is timed beside them as the shared baseline)."""
    batch_bytes = sum(array.nbytes for array in feed.values())
    need = engines * peak_activation_bytes(model, feed) + batch_bytes
    room = available_bytes()
    if need <= room:
        return
    fits = int(batch * room * 0.9 / need)  # activations grow with the batch; a tenth kept back, as use moves
    advice = f"use --batch {fits} or less" if fits >= 1 else "use a machine with more memory"
    raise WorkbenchError(f"Timing at batch {batch} needs about {readable_bytes(need)} ({engines} engines' activations "
                         f"and the batch), more than {_room_text()}, so nothing was started;",
                         f"{advice}, or raise WORKBENCH_MEMORY_GB on a machine with more memory.")


def check_batch_within_eval(batch: int, samples: int, source: str) -> None:
    """A batch larger than the evaluation set would repeat its samples and multiply memory for nothing."""
    if batch > samples:
        raise DataError(f"Batch {batch} is larger than the {samples} evaluation samples of {source}, so every "
                        "batch would repeat the same samples;",
                        f"use --batch {samples} or less, or give more evaluation data (random:N makes N).")
