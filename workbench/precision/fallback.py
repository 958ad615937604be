"""Read a backend's refusal and decide what to keep in FP32 on the next try.

The float converters sometimes produce graphs a backend will not load (a Cast left typed FLOAT
feeding an FP16 op, an op with no FP16/BF16 kernel). Rather than hand the user a broken model,
the variant builder blocks exactly the node or op named in the error and tries again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NODE_PATTERNS = [
    re.compile(r"in node \(([^)]+)\)"),
    re.compile(r"node with name '([^']+)'"),
    re.compile(r"Node \(([^)]+)\)"),
    re.compile(r"node name:? '?([^'\s,]+)'?"),
]
_OP_PATTERNS = [
    re.compile(r"implementation for (\w+)\(\d+\)"),
    # The op's schema allows no half type at this opset (BF16 Conv before opset 22): every node of
    # that op type will fail the same way, so the whole op type is kept in FP32.
    re.compile(r"Type 'tensor\((?:bfloat16|float16)\)' of input parameter \([^)]*\) of operator \((\w+)\)"),
]


@dataclass(frozen=True)
class Blame:
    """What an error points at: an op type without a kernel, or one node with a type clash."""

    op_type: str | None
    node: str | None


def blame(error: str) -> Blame:
    """Extract the op type (missing kernel) and/or node name from an ONNX Runtime error."""
    op = next((match for pattern in _OP_PATTERNS if (match := pattern.search(error))), None)
    node = None
    for pattern in _NODE_PATTERNS:
        match = pattern.search(error)
        if match:
            node = match.group(1)
            break
    return Blame(op.group(1) if op else None, node)
