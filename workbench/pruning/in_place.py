"""Writing and recording a pass that zeroes weights without changing any shape (magnitude, 2:4).

Such passes differ only in which weights they zero; how the change lands in the model, the
report and the repair note must not differ, or their tables and repairs would disagree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from workbench.progress import Progress
from workbench.pruning.graph_index import GraphIndex, WeightLayer, sparsity
from workbench.pruning.report import LayerChange, PruneReport
from workbench.pruning.targets import output_target, write_targets


def zero_in_place(
    model: onnx.ModelProto,
    index: GraphIndex,
    layers: list[WeightLayer],
    zeroed: Callable[[WeightLayer, np.ndarray], np.ndarray | None],
    report: PruneReport,
    progress: Progress,
) -> None:
    """Replace each layer's weight by ``zeroed(layer, weight)`` and fill ``report`` with the change.

    ``zeroed`` returns None to leave a weight untouched, so an unchanged initializer is not
    rewritten. Only layers whose sparsity changed become repair targets: the others' outputs
    did not drift.
    """
    for position, layer in enumerate(layers):
        progress.report("prune", position / len(layers), f"{report.method}: {layer.name}")
        old = index.const(layer.weight)
        new = zeroed(layer, old)
        if new is None:
            new = old
        else:
            index.set_const(layer.weight, new)
        report.layers.append(LayerChange(
            layer.name, layer.op_type, layer.weight, None, None, None, None,
            sparsity(old), sparsity(new), int(old.size), int(np.count_nonzero(new)),
        ))
    write_targets(model, [output_target(layer) for layer, change in zip(layers, report.layers, strict=True)
                          if change.sparsity_after != change.sparsity_before])
    report.params_before = sum(c.params_before for c in report.layers)
    report.params_after = sum(c.params_after for c in report.layers)
