"""Read TensorRT layer names back into ONNX node names and op types.

TensorRT names a fused layer by joining what it fused with " + " ("Conv_0 + Relu_1",
"conv1.weight + QuantizeLinear_7 + Conv_9"). The pieces are a mix of ONNX node names, weight
and constant tensor names, TensorRT's own unnamed layers and names the ONNX parser invented.
A person asking "which of my ONNX nodes is slow" only wants the first kind, so this module
sorts the pieces, as well as a name alone allows:

* ``Reformatting CopyNode for Input|Output Tensor N to X`` is a copy TensorRT inserted between
  layers; it belongs to no ONNX node (X is the layer it feeds, not its origin).
* ``PWN(a, PWN(b, c))`` (pointwise fusion) and ``{ForeignNode[first...last]}`` (a Myelin region,
  of which only its first and last nodes are named) are unwrapped.
* Parser-inserted helpers (``reshape_after_X``, ``unsqueeze_node_after_X``, ...) are read as X,
  then X goes through the same rules.
* Dropped as "not a node": TensorRT's ``(Unnamed Layer* N) [Kind]`` and tensors derived from them,
  PyTorch's generated tensor names (``onnx::...``), and dotted parameter names ending in
  ``.weight``, ``.bias``, ``.running_mean`` and friends (weights folded into the layer).
* Everything else is taken to be a node name.

When the exact set of node names is known (the ONNX model is at hand) pieces are kept only if
they are in it, which makes the heuristic moot; when the layer info carries TensorRT's
``Metadata`` (``[ONNX Layer: name]`` entries, TensorRT 8.6 and later) that wins over the name.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_COPY_NODE = re.compile(r"^Reformatting CopyNode for (?:Input|Output) Tensor \d+ to (?P<target>.+)$")
_UNNAMED = "(Unnamed Layer*"
_FOREIGN = re.compile(r"^\{ForeignNode\[(?P<inner>.*)\]\}$")
_METADATA_NODE = re.compile(r"\[ONNX Layer: (?P<name>[^\x1e\x1f]*?)\]")
_PARSER_PREFIXES = (
    "copied_squeeze_after_",
    "unsqueeze_node_after_",
    "squeeze_node_after_",
    "squeeze_after_",
    "reshape_before_",
    "reshape_after_",
    "shuffle_after_",
    "shuffle_between_",
)
_PARAMETER_SUFFIXES = frozenset(
    {
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "kernel",
        "scale",
        "zero_point",
        "in_proj_weight",
        "in_proj_bias",
    }
)

#: ONNX op (the part of a node name before "_<n>", or the last "/" part) -> TensorRT layer kind,
#: so that op types guessed from names use the same words as the layer info's ParameterType.
_ONNX_TO_TRT_KIND = {
    "Conv": "Convolution",
    "ConvTranspose": "Deconvolution",
    "Gemm": "MatrixMultiply",
    "MatMul": "MatrixMultiply",
    "MaxPool": "Pooling",
    "AveragePool": "Pooling",
    "GlobalAveragePool": "Pooling",
    "GlobalMaxPool": "Pooling",
    "Add": "ElementWise",
    "Sub": "ElementWise",
    "Mul": "ElementWise",
    "Div": "ElementWise",
    "Pow": "ElementWise",
    "Max": "ElementWise",
    "Min": "ElementWise",
    "Relu": "Activation",
    "LeakyRelu": "Activation",
    "Sigmoid": "Activation",
    "Tanh": "Activation",
    "Clip": "Activation",
    "Elu": "Activation",
    "Selu": "Activation",
    "HardSigmoid": "Activation",
    "Softplus": "Activation",
    "BatchNormalization": "Scale",
    "QuantizeLinear": "Reformat",
    "DequantizeLinear": "Reformat",
    "Reshape": "Shuffle",
    "Transpose": "Shuffle",
    "Flatten": "Shuffle",
    "Squeeze": "Shuffle",
    "Unsqueeze": "Shuffle",
    "Concat": "Concatenation",
    "Softmax": "SoftMax",
    "Resize": "Resize",
    "Slice": "Slice",
    "Gather": "Gather",
    "ReduceMean": "Reduce",
    "ReduceSum": "Reduce",
    "ReduceMax": "Reduce",
    "LayerNormalization": "Normalization",
}
# When a fused layer holds several kinds, the one doing the arithmetic names it.
_KIND_PRIORITY = (
    "Convolution",
    "Deconvolution",
    "MatrixMultiply",
    "Pooling",
    "Normalization",
    "SoftMax",
    "Reduce",
    "Scale",
    "ElementWise",
    "Activation",
    "PointWise",
    "Concatenation",
    "Resize",
    "Slice",
    "Gather",
    "Shuffle",
    "Reformat",
)


def is_copy_node(layer_name: str) -> bool:
    """True for the format-conversion copies TensorRT inserts between layers."""
    return _COPY_NODE.match(layer_name) is not None


def nodes_from_metadata(metadata: str | None) -> list[str]:
    """ONNX node names in a layer's ``Metadata`` (``[ONNX Layer: a]\\x1f[ONNX Layer: b]``)."""
    if not metadata:
        return []
    return _dedupe(m.group("name") for m in _METADATA_NODE.finditer(metadata))


def onnx_nodes_from_name(layer_name: str, known_nodes: Collection[str] | None = None) -> list[str]:
    """ONNX node names a TensorRT layer name stands for, in the order they appear."""
    if is_copy_node(layer_name):
        return []
    candidates = [name for piece in _split(layer_name) for name in _unwrap(piece)]
    if known_nodes is not None:
        return _dedupe(name for name in candidates if name in known_nodes)
    return _dedupe(name for name in candidates if _looks_like_node(name))


def guess_kind(layer_name: str) -> str:
    """TensorRT layer kind guessed from a name alone, for profiles without layer info."""
    if is_copy_node(layer_name):
        return "Reformat"
    kinds: set[str] = set()
    for piece in _split(layer_name):
        if piece.startswith("PWN("):
            kinds.add("PointWise")
        if _FOREIGN.match(piece):
            kinds.add("Myelin")
        if piece.startswith(_PARSER_PREFIXES):
            kinds.add("Shuffle")
            continue
        for name in _unwrap(piece):
            if _looks_like_node(name):
                kind = _ONNX_TO_TRT_KIND.get(_onnx_op(name))
                if kind:
                    kinds.add(kind)
    for kind in _KIND_PRIORITY:
        if kind in kinds:
            return kind
    return "Myelin" if "Myelin" in kinds else "Unknown"


def _split(layer_name: str) -> list[str]:
    return [piece.strip() for piece in layer_name.split(" + ") if piece.strip()]


def _unwrap(piece: str) -> list[str]:
    """Peel PWN(...), ForeignNode and parser prefixes off one piece of a fused name."""
    if piece.startswith("PWN(") and piece.endswith(")"):
        return [name for inner in _split_top_level(piece[4:-1]) for name in _unwrap(inner)]
    foreign = _FOREIGN.match(piece)
    if foreign:
        return [name for inner in foreign.group("inner").split("...") for name in _unwrap(inner.strip())]
    for prefix in _PARSER_PREFIXES:
        if piece.startswith(prefix):
            return _unwrap(piece[len(prefix) :])
    return [piece] if piece else []


def _split_top_level(text: str) -> list[str]:
    """Split "a, PWN(b, c)" on the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _looks_like_node(name: str) -> bool:
    if _UNNAMED in name or name.startswith("onnx::"):
        return False
    if "." in name and "/" not in name:
        suffix = name.rsplit(".", 1)[-1]
        if suffix in _PARAMETER_SUFFIXES:
            return False
    return True


def _onnx_op(node_name: str) -> str:
    """"Conv_12" -> "Conv"; "/layer1/conv1/Conv" -> "Conv"; "Relu" -> "Relu"."""
    last = node_name.rsplit("/", 1)[-1]
    return re.sub(r"_\d+$", "", last)


def _dedupe(names) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name, None)
    return list(seen)
