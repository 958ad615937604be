"""FP16/BF16 variants checked on real inputs, with the nodes that break them kept in FP32 until sane.

The converter's block list is static: it cannot know that one model's activations pass FP16's largest
value (65504) on the user's data, or that one node's rounding ruins the output (a final Sigmoid turns
small input errors into large ones). So the variant is run beside the FP32 model on a few samples. When
it drifts (an output's cosine below ``SANE_COSINE``, or a value that is no longer finite), the nodes that
touch a tensor beyond FP16's range are kept in FP32 at once, then, one round at a time, the node that
adds the most drift (its output's cosine with FP32 against its inputs'); the same loop as ONNX Runtime's
``auto_mixed_precision``, guided by the intermediate tensors instead of a bisection. A variant still
broken after ``MAX_ROUNDS`` is reported as broken, never kept silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

#: FP16 done right is near-lossless (0.9999+ on real models): an output whose cosine with FP32 is below
#: this has overflowed or lost precision somewhere, whatever the task.
SANE_COSINE = 0.999
HALF_MAX = 65504.0
MAX_ROUNDS = 4
#: Samples the outputs are compared on, and the one sample whose every intermediate tensor is held
#: (a 640x640 detector's come to several hundred MB).
PROBE_SAMPLES = 4
TRACE_SAMPLES = 1


@dataclass(frozen=True)
class Verdict:
    cosine: float  # the lowest over floating outputs
    finite: bool

    @property
    def sane(self) -> bool:
        return self.finite and self.cosine >= SANE_COSINE

    def describe(self) -> str:
        return f"output cosine {self.cosine:.4f}" + ("" if self.finite else ", non-finite values")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 1.0 if norm == 0.0 and not a.any() and not b.any() else float(a @ b / norm) if norm else 0.0


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _float_tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    floating = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    return {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info
            if v.type.tensor_type.elem_type in floating}


def _intermediates(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every floating node output of ``model`` on ``feeds`` (graph outputs included)."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for name, elem in _float_tensor_types(model).items():
        if name not in known:
            exposed.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    session = _session(exposed)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


class HalfGuard:
    """Compares half-precision variants of one FP32 model on fixed probe inputs."""

    def __init__(self, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> None:
        self.model = model
        self.feeds = {k: v[:PROBE_SAMPLES] for k, v in feeds.items()}
        self._reference: dict[str, np.ndarray] | None = None
        self._reference_outputs: dict[str, np.ndarray] | None = None
        self._outputs = [o.name for o in model.graph.output]

    @property
    def reference(self) -> dict[str, np.ndarray]:
        """Every intermediate tensor of the FP32 model on the traced sample."""
        if self._reference is None:
            self._reference = _intermediates(self.model, self._trace_feeds)
        return self._reference

    @property
    def _trace_feeds(self) -> dict[str, np.ndarray]:
        return {k: v[:TRACE_SAMPLES] for k, v in self.feeds.items()}

    def verdict(self, variant: onnx.ModelProto) -> Verdict:
        if self._reference_outputs is None:
            self._reference_outputs = dict(zip(self._outputs, _session(self.model).run(self._outputs, self.feeds),
                                               strict=True))
        got = dict(zip(self._outputs, _session(variant).run(self._outputs, self.feeds), strict=True))
        cosines, finite = [1.0], True
        for name in self._outputs:
            ref, out = self._reference_outputs[name], got[name]
            if not np.issubdtype(ref.dtype, np.floating):
                continue
            finite &= bool(np.isfinite(out[np.isfinite(ref)]).all())
            cosines.append(cosine(np.nan_to_num(ref), np.nan_to_num(out, posinf=HALF_MAX, neginf=-HALF_MAX)))
        return Verdict(min(cosines), finite)

    def overflowing_nodes(self, blocked: set[str]) -> list[str]:
        """Nodes that produce or read a tensor beyond FP16's range on the probe inputs."""
        big = {name for name, value in self.reference.items()
               if np.issubdtype(value.dtype, np.floating) and value.size and np.abs(value).max() > HALF_MAX}
        return [node.name for node in self.model.graph.node
                if node.name and node.name not in blocked and big & {*node.input, *node.output}]

    def worst_node(self, variant: onnx.ModelProto, blocked: set[str]) -> str | None:
        """The node that adds the most drift: its output's cosine with FP32 minus its inputs' (a node whose
        output is no longer finite while its inputs are comes first)."""
        got = _intermediates(variant, self._trace_feeds)

        def score(name: str) -> float:
            if name not in got or name not in self.reference:
                return 1.0
            ref, out = self.reference[name], got[name]
            if np.isfinite(ref).all() and not np.isfinite(out).all():
                return -1.0
            return cosine(ref, out)

        worst, worst_added = None, 0.0
        for node in self.model.graph.node:
            if not node.name or node.name in blocked:
                continue
            added = min(map(score, node.output)) - min([1.0, *map(score, node.input)])
            if added < worst_added:
                worst, worst_added = node.name, added
        return worst
