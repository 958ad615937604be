"""Per-layer drift of a variant against its FP32 reference: which layer breaks accuracy.

Both models run with every intermediate tensor exposed (ONNX Runtime's ``qdq_loss_debug``:
``modify_model_output_intermediate_tensors`` + ``collect_activations``) and tensors are matched
by name. Two errors per tensor:

* **accumulated**: the variant run as a whole versus FP32 - what the layer receives plus what
  it adds; it only grows along the graph.
* **local**: the layer's own noise. The variant is cut at every tensor the reference also has:
  each consumer of such a tensor is fed the FP32 value instead (rounded to the type the variant
  expects), so every layer computes on exact inputs and its output error is only its own - for
  Q/DQ models the rounding of its inputs and weights to INT8, for FP16 its half-precision math.

For Q/DQ variants two more columns split the local noise: the rounding of the layer's output
to its INT8 grid (the FP32 tensor through the layer's own Q/DQ) and the rounding of its weights
(dequantized from the variant's own initializers), both as SQNR in dB with the formula of
``compute_signal_to_quantization_noice_ratio``. The library's ``create_activation_matching`` is
not used for the former: its "pre-Q/DQ" tensor is the value *before* a Relu the quantizer folded
into the Q (the U8 range does the clamping), so it reports the Relu itself as noise.

Q/DQ variants are compared with the FP32 model after ONNX Runtime's quantization pre-pass (the
graph the quantizer saw, same tensor names; numerically the same model). Sessions run with
graph optimisations off, as ``collect_activations`` does, so Q/DQ is emulated in float: a close,
not bit-exact, stand-in for the fused integer kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import helper, numpy_helper

from workbench.data.dataset import Dataset
from workbench.errors import DataError
from workbench.memory.system import available_bytes, fits_text, per_sample_bytes
from workbench.model.graph_order import consumers, topological_order
from workbench.precision.calibration import feed_reader
from workbench.precision.int8 import preprocess_for_quantization
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs.pipeline import DataSource, Pipeline, sibling_data
from workbench.runs.run import Run
from workbench.scratch import temp_folder

DRIFT_COLUMNS = [
    "order", "tensor", "node", "op_type",
    "local_sqnr_db", "local_cosine", "local_max_abs_error",
    "accum_sqnr_db", "accum_cosine", "accum_max_abs_error",
    "activation_qdq_sqnr_db", "weight_sqnr_db",
]
_SKIP_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast", "Constant"})
_FP32 = onnx.TensorProto.FLOAT


@dataclass
class _Stats:
    """Running sums, so the error of a tensor over many batches never needs them all in memory."""

    signal: float = 0.0
    noise: float = 0.0
    dot: float = 0.0
    other: float = 0.0
    max_abs: float = 0.0

    def add(self, reference: np.ndarray, value: np.ndarray) -> None:
        ref = reference.astype(np.float64).ravel()
        val = value.astype(np.float64).ravel()
        diff = ref - val
        self.signal += float(ref @ ref)
        self.noise += float(diff @ diff)
        self.dot += float(ref @ val)
        self.other += float(val @ val)
        self.max_abs = max(self.max_abs, float(np.abs(diff).max()) if diff.size else 0.0)

    def sqnr_db(self) -> float:
        """20·log10(|x|/|x-y|), with the library's epsilon floor so identical tensors stay finite."""
        eps = np.finfo("float").eps
        return 20 * math.log10(max(math.sqrt(self.signal), eps) / max(math.sqrt(self.noise), eps))

    def cosine(self) -> float:
        norms = math.sqrt(self.signal * self.other)
        return self.dot / norms if norms > 0 else 1.0


@dataclass
class DriftReport:
    """The per-tensor table plus what it was measured on."""

    table: pd.DataFrame
    samples: int
    reference: str
    notes: list[str] = field(default_factory=list)

    def worst(self, n: int = 5, by: str = "local_sqnr_db") -> pd.DataFrame:
        """The ``n`` tensors with the lowest SQNR (most noise) by the given column."""
        return self.table.sort_values(by).head(n)


def layer_drift(
    reference_model: str | Path,
    variant_model: str | Path,
    data: Dataset,
    *,
    samples: int = 32,
    batch: int = 16,
    quantized_from: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> DriftReport:
    """Per-tensor local and accumulated error of ``variant_model`` versus ``reference_model``.

    A Q/DQ variant is compared with the graph its quantizer saw, which names its tensors: ``quantized_from``
    where the run recorded it (pruned, opset-upgraded, pre-processed), else ``reference_model`` pre-processed
    here the way the quantizer would have."""
    progress_ = Progress(progress, cancel)
    data = data.take(samples)
    variant = onnx.load(str(variant_model))
    notes: list[str] = []
    with temp_folder("wb-drift-") as tmp_dir:
        tmp = Path(tmp_dir)
        reference_path = Path(reference_model)
        is_qdq = any(node.op_type == "QuantizeLinear" for node in variant.graph.node)
        progress_.report("drift", 0.0, "preparing the FP32 reference")
        if is_qdq and quantized_from is not None:
            reference_path = Path(quantized_from)
            notes.append("reference: the FP32 graph the quantizer saw (same tensor names as the variant)")
        elif is_qdq:
            reference_path = tmp / "reference.onnx"
            notes += preprocess_for_quantization(Path(reference_model), reference_path)
            notes.append("reference: the FP32 model after the quantization pre-pass (same tensor names as the variant)")
        progress_.report("drift", 0.05, "exposing every tensor of the FP32 reference")
        ref_augmented = _augment(reference_path, tmp / "reference_augmented.onnx")
        progress_.report("drift", 0.1, "exposing every tensor of the variant")
        variant_augmented = _augment(Path(variant_model), tmp / "variant_augmented.onnx")
        progress_.report("drift", 0.15, "cutting the variant at each layer (local error)")
        cut = _cut_at_reference_tensors(variant, _saved_tensors(ref_augmented))
        onnx.save(cut, str(tmp / "cut.onnx"))
        cut_augmented = _augment(tmp / "cut.onnx", tmp / "cut_augmented.onnx")
        cut_inputs = {i.name for i in cut.graph.input} - {i.name for i in variant.graph.input}
        batch = _drift_batch(ref_augmented, data, batch, notes)
        feeds = data.batches(batch)
        total = -(-len(data) // batch)

        targets = _targets(variant)
        local = {t.reference: _Stats() for t in targets}
        accumulated = {t.reference: _Stats() for t in targets}
        activation_qdq: dict[str, _Stats] = {}
        for index, feed in enumerate(feeds):
            progress_.report("drift", 0.2 + 0.7 * index / total, f"comparing every tensor, batch {index + 1}/{total}")
            ref_acts = _one_batch(ref_augmented, feed)
            var_acts = _one_batch(variant_augmented, feed)
            cut_feed = dict(feed)
            for name in cut_inputs:
                dtype = helper.tensor_dtype_to_np_dtype(_cut_type(cut, name))
                cut_feed[name] = ref_acts[name[: -len(_CUT_SUFFIX)]].astype(dtype)
            cut_acts = _one_batch(cut_augmented, cut_feed)
            for target in targets:
                reference = ref_acts.get(target.reference)
                if reference is None:
                    continue
                after = var_acts.get(target.observed)
                if after is not None and after.size == reference.size:
                    accumulated[target.reference].add(reference, after)
                own = cut_acts.get(target.tensor)
                if own is not None and own.size == reference.size:
                    local[target.reference].add(reference, target.requantize(own))
                if target.scale is not None:
                    activation_qdq.setdefault(target.reference, _Stats()).add(reference, target.requantize(reference))
        progress_.report("drift", 0.9, "weight error and the table")
        weights = _weight_sqnr(reference_path, Path(variant_model)) if is_qdq else {}
        table = _table(variant, targets, accumulated, local, activation_qdq, weights)
    progress_.report("drift", 1.0, "per-layer drift done")
    return DriftReport(table, len(data), str(reference_model), notes)


_CUT_SUFFIX = "__fp32_reference"
#: The suffix ``modify_model_output_intermediate_tensors`` gives the outputs it adds.
_SAVED = "_ReshapedSavedOutput"


def _augment(model: Path, out: Path) -> Path:
    from onnxruntime.quantization.qdq_loss_debug import modify_model_output_intermediate_tensors

    modify_model_output_intermediate_tensors(str(model), str(out))
    return out


#: Every tensor of three models (reference, variant, variant cut at FP32 inputs) is held per batch,
#: and the statistics copy each one about once more.
_HELD_COPIES = 3 * 2


def _drift_batch(ref_augmented: Path, data: Dataset, wanted: int, notes: list[str]) -> int:
    """The largest batch up to ``wanted`` whose tensors fit; refused in one sentence if one sample's do not."""
    first = data.samples(0, 1)
    per_sample = _HELD_COPIES * per_sample_bytes(
        lambda: sum(a.nbytes for a in _one_batch(ref_augmented, first).values()), 0)
    room = available_bytes()
    if per_sample > room:
        raise DataError(f"Per-layer drift holds every tensor of three models: about {per_sample / 2**30:.1f} GB "
                        f"for one sample of this model, and {room / 2**30:.1f} GB are free.",
                        fits_text("Use smaller inputs or skip per-layer drift"))
    batch = int(max(1, min(wanted, room // max(per_sample, 1))))
    if batch < wanted:
        notes.append(f"per-layer drift in batches of {batch} (memory), not {wanted}")
    return batch


def _one_batch(augmented: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from onnxruntime.quantization.qdq_loss_debug import collect_activations

    activations = collect_activations(str(augmented), feed_reader([feed]))
    return {name: values[0] for name, values in activations.items()}


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Floating intermediate tensors of a model and their element types (graph inputs excluded)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {info.name: info.type.tensor_type.elem_type for info in [*graph.value_info, *graph.output]}
    return {name: t for name, t in types.items() if t in (_FP32, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)}


def _cut_type(model: onnx.ModelProto, input_name: str) -> int:
    return next(i.type.tensor_type.elem_type for i in model.graph.input if i.name == input_name)


def _saved_tensors(augmented: Path) -> set[str]:
    """The tensors an augmented model exposes (those ``collect_activations`` will return)."""
    outputs = onnx.load(str(augmented), load_external_data=False).graph.output
    return {o.name.removesuffix(_SAVED) for o in outputs if o.name.endswith(_SAVED)}


def _cut_at_reference_tensors(variant: onnx.ModelProto, reference_tensors: set[str]) -> onnx.ModelProto:
    """The variant with every consumer of a tensor the reference also computes fed from outside.

    The producing node stays, so its own output is still observed; only what flows onward is
    replaced. The FP32 value arrives flat (as ``collect_activations`` returns it) and is put
    back into the shape of the tensor it replaces, so any batch size works.
    """
    cut = onnx.ModelProto()
    cut.CopyFrom(variant)
    variant_types = _tensor_types(variant)
    graph_inputs = {i.name for i in cut.graph.input}
    replaced: dict[str, str] = {}
    extra: list[onnx.NodeProto] = []
    for node in cut.graph.node:
        for position, name in enumerate(node.input):
            if name not in reference_tensors or name not in variant_types or name in graph_inputs:
                continue
            if name not in replaced:
                fed, shape, shaped = name + _CUT_SUFFIX, name + "__shape", name + "__fp32_shaped"
                cut.graph.input.append(helper.make_tensor_value_info(fed, variant_types[name], [None]))
                extra.append(helper.make_node("Shape", [name], [shape], name=shape))
                extra.append(helper.make_node("Reshape", [fed, shape], [shaped], name=shaped))
                replaced[name] = shaped
            node.input[position] = replaced[name]
    cut.graph.node.extend(extra)
    return _toposort(cut)


def _toposort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Nodes in an order where every input is produced before use (the cut appended some)."""
    ordered = topological_order(list(model.graph.node))
    if ordered is None:
        raise ValueError("the cut graph has a cycle")
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


def _weight_sqnr(reference: Path, variant: Path) -> dict[str, float]:
    """SQNR of each dequantized weight against its FP32 value, keyed by weight name.

    Dequantized here rather than by ``create_weight_matching``: in ONNX Runtime 1.32 that
    subtracts the zero point in the weight's own integer type, so U8 weights with a non-zero
    zero point (biases of Add nodes) wrap around and read as noise at -10 dB.
    """
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio
    from onnxruntime.quantization.quant_utils import TENSOR_NAME_QUANT_SUFFIX

    floats = {init.name: init for init in onnx.load(str(reference)).graph.initializer}
    model = onnx.load(str(variant))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    result = {}
    for node in model.graph.node:
        name = node.input[0].removesuffix(TENSOR_NAME_QUANT_SUFFIX)
        if node.op_type != "DequantizeLinear" or node.input[0] not in constants or name not in floats:
            continue
        quantized = constants[node.input[0]].astype(np.float64)
        scale = constants.get(node.input[1])
        zero = constants.get(node.input[2]) if len(node.input) > 2 else None
        if scale is None:
            continue
        zero = np.zeros_like(scale) if zero is None else zero.astype(np.float64)
        if scale.size > 1:  # per channel: broadcast along the node's axis
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % quantized.ndim
            shape = [1] * quantized.ndim
            shape[axis] = scale.size
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        dequantized = (quantized - zero) * scale
        original = np.atleast_1d(numpy_helper.to_array(floats[name]))
        dequantized = np.atleast_1d(dequantized)
        if original.shape == dequantized.shape:
            result[name] = compute_signal_to_quantization_noice_ratio(original, dequantized)
    return result


@dataclass
class _Target:
    """One layer output to compare: where the variant computes it and what FP32 calls it.

    Q/DQ variants rename tensors (a Conv whose Relu the quantizer folded into the Q writes the
    Relu's tensor; the last layer writes ``<output>_QuantizeLinear_Input``) and only the value
    after Q/DQ means the same as the FP32 tensor (the U8 range does the Relu's clamping). So
    the accumulated error reads the DQ output, and the local one re-applies the layer's own
    output Q/DQ to the value computed from FP32 inputs.
    """

    order: int
    node: onnx.NodeProto
    tensor: str
    reference: str
    observed: str
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None

    def requantize(self, value: np.ndarray) -> np.ndarray:
        if self.scale is None or self.zero_point is None:
            return value
        info = np.iinfo(self.zero_point.dtype)
        zero = self.zero_point.astype(np.float64)
        quantized = np.clip(np.rint(value / self.scale) + zero, info.min, info.max)
        return ((quantized - zero) * self.scale).astype(np.float32)


def _targets(variant: onnx.ModelProto) -> list[_Target]:
    from onnxruntime.quantization.quant_utils import QUANT_INPUT_SUFFIX

    graph = variant.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    users = consumers(graph)
    targets = []
    for index, node in enumerate(graph.node):
        if node.op_type in _SKIP_OPS:
            continue
        for output in node.output:
            if not output:
                continue
            reference = output.removesuffix(QUANT_INPUT_SUFFIX)
            target = _Target(index, node, output, reference, output)
            quant = next((n for n in users.get(output, []) if n.op_type == "QuantizeLinear"), None)
            if quant is not None and quant.input[1] in constants and len(quant.input) > 2:
                dequant = next((n for n in users.get(quant.output[0], []) if n.op_type == "DequantizeLinear"),
                               None)
                if dequant is not None:
                    target.observed = dequant.output[0]
                    target.scale = constants[quant.input[1]].astype(np.float64)
                    target.zero_point = constants.get(quant.input[2])
            targets.append(target)
    return targets


def _node_weights(model: onnx.ModelProto, node: onnx.NodeProto, weights: dict[str, float]) -> float:
    """Lowest weight SQNR among the weights a node reads through its DQ nodes."""
    producer = {out: n for n in model.graph.node for out in n.output}
    found = []
    for name in node.input:
        dq = producer.get(name)
        if dq is not None and dq.op_type == "DequantizeLinear":
            raw = dq.input[0]
            for weight, sqnr in weights.items():
                if raw.startswith(weight + "_") or raw == weight:
                    found.append(sqnr)
    return min(found) if found else float("nan")


def _table(
    variant: onnx.ModelProto,
    targets: list[_Target],
    accumulated: dict[str, _Stats],
    local: dict[str, _Stats],
    activation_qdq: dict[str, _Stats],
    weights: dict[str, float],
) -> pd.DataFrame:
    rows = []
    for target in targets:
        acc, loc = accumulated[target.reference], local[target.reference]
        if acc.signal == 0 and acc.noise == 0:
            continue  # never matched: a tensor the reference does not have
        qdq = activation_qdq.get(target.reference)
        rows.append({
            "order": target.order,
            "tensor": target.reference,
            "node": target.node.name,
            "op_type": target.node.op_type,
            "local_sqnr_db": loc.sqnr_db(),
            "local_cosine": loc.cosine(),
            "local_max_abs_error": loc.max_abs,
            "accum_sqnr_db": acc.sqnr_db(),
            "accum_cosine": acc.cosine(),
            "accum_max_abs_error": acc.max_abs,
            "activation_qdq_sqnr_db": qdq.sqnr_db() if qdq else float("nan"),
            "weight_sqnr_db": _node_weights(variant, target.node, weights),
        })
    frame = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    frame["order"] = range(len(frame))
    return frame


def drift_for_run(
    run: Run,
    data: DataSource = None,
    *,
    samples: int = 32,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> DriftReport:
    """Per-layer drift of a finished run against the model it was built from, on its eval data."""
    pipeline = pipeline or Pipeline()
    source = data if data is not None else sibling_data(Path(run.model_path), "eval")
    if source is None:
        raise DataError("Per-layer drift needs real evaluation inputs, and none were found beside the model.",
                        "Pass eval data (an .npz with one array per model input).")
    dataset = pipeline.load_data(source, pipeline.inspect(run.model_path), "evaluation")
    return layer_drift(run.model_path, run.artifact, dataset, samples=samples, quantized_from=run.quantized_from,
                       progress=progress, cancel=cancel)
