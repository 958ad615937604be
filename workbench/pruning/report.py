"""What a pruning pass did, layer by layer, in a form the UI table, the CLI and the HTML report share.

Pruning is only worth its accuracy cost if the person can see where parameters went and why some
layers were left alone, so every method fills the same records instead of printing its own text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
import pandas as pd


@dataclass(frozen=True)
class LayerChange:
    """One weight layer the pass changed (or, for 2:4, made eligible for sparse kernels).

    Channel counts are ``None`` where the method does not remove channels (magnitude, 2:4);
    sparsity is the fraction of exact zeros in the weight tensor. ``note`` says why a layer that
    lost input channels kept all its outputs (e.g. they are the graph output).
    """

    name: str
    op_type: str
    weight: str
    in_channels_before: int | None
    in_channels_after: int | None
    out_channels_before: int | None
    out_channels_after: int | None
    sparsity_before: float
    sparsity_after: float
    params_before: int
    params_after: int
    note: str = ""


@dataclass(frozen=True)
class SkippedLayer:
    """A weight layer left whole, with the reason in words a user can act on."""

    name: str
    op_type: str
    reason: str


@dataclass
class PruneReport:
    """Per-layer changes, skipped layers and a one-line summary for tables and logs."""

    method: str
    ratio: float
    layers: list[LayerChange] = field(default_factory=list)
    skipped: list[SkippedLayer] = field(default_factory=list)
    summary: str = ""
    params_before: int = 0
    params_after: int = 0

    def to_frame(self) -> pd.DataFrame:
        """Changed and skipped layers in one frame (``status`` tells them apart) for display."""
        rows: list[dict[str, object]] = [
            {"status": "pruned", **layer.__dict__, "reason": ""} for layer in self.layers
        ]
        rows += [
            {"status": "skipped", "name": s.name, "op_type": s.op_type, "reason": s.reason}
            for s in self.skipped
        ]
        columns = ["status", *LayerChange.__dataclass_fields__, "reason"]
        return pd.DataFrame(rows, columns=columns)


@dataclass
class PruneResult:
    """The pruned model (a new proto; the input is never modified) and what was done to it."""

    model: onnx.ModelProto
    method: str
    ratio: float
    report: PruneReport
