"""The note a pruned model carries about which layers pruning disturbed, for the repair step.

Repair runs later, possibly in another process on a model loaded from disk, and must know which
layers' outputs drifted and how their surviving channels map to the unpruned model's; only the
pruner knows that, so it writes it into the model's metadata_props.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import onnx

from workbench.pruning.graph_index import WeightLayer

KEY = "workbench.pruning.targets"


@dataclass(frozen=True)
class Target:
    """A layer whose output drifted: ``kept`` maps its output channels to the original ones.

    ``in_kept`` does the same for its input channels (features, after a Flatten) when some were
    removed; None when its input is whole. Notes written before it existed read as None.
    """

    node: str
    output: str
    axis: int
    kept: list[int] | None = None
    in_kept: list[int] | None = None


def write_targets(model: onnx.ModelProto, targets: list[Target]) -> None:
    """Store the targets (replacing earlier ones); nothing is stored when the list is empty."""
    props = [p for p in model.metadata_props if p.key != KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(props)
    if targets:
        entry = model.metadata_props.add()
        entry.key = KEY
        entry.value = json.dumps([t.__dict__ for t in targets], separators=(",", ":"))


def read_targets(model: onnx.ModelProto) -> list[Target] | None:
    """The stored targets, or None for a model the pruner did not write."""
    for prop in model.metadata_props:
        if prop.key == KEY:
            return [Target(**entry) for entry in json.loads(prop.value)]
    return None


def output_target(layer: WeightLayer) -> Target:
    """A layer whose weights changed in place: its output keeps every channel."""
    return Target(layer.name, layer.node.output[0], 1 if layer.op_type in ("Conv", "Gemm") else -1)
