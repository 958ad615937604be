"""The floating-point paths every static INT8 writer keeps out of quantization, found once for all of them.

Two graph walks find them (``index_paths``: arithmetic that only computes integer indices; ``mask_paths``:
arithmetic that carries an attention mask); ONNX Runtime's quantizer, NNCF's portable file and NNCF on
OpenVINO's model all take the same nodes, minus those the user already keeps, and note them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from workbench.precision.index_paths import index_arithmetic, index_arithmetic_note
from workbench.precision.mask_paths import mask_arithmetic, mask_arithmetic_note


def unquantizable_paths(model: onnx.ModelProto, kept: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """The index-arithmetic nodes and the mask-arithmetic nodes of ``model`` not already in ``kept``."""
    kept = set(kept)
    indices = [name for name in index_arithmetic(model) if name not in kept]
    masks = [name for name in mask_arithmetic(model) if name not in kept and name not in indices]
    return indices, masks


def unquantizable_notes(indices: list[str], masks: list[str], quantizer: str) -> list[str]:
    """The run's notes on both kinds of node, naming how the quantizer was told to leave them alone."""
    return index_arithmetic_note(indices, quantizer) + mask_arithmetic_note(masks, quantizer)
