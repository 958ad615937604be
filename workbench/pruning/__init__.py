"""Pruning engine: magnitude, 2:4 structured sparsity and channel pruning of ONNX models.

``prune`` returns a new, validated model and a per-layer report; ``repair`` recovers accuracy on
calibration data without training (least-squares reconstruction of layers that lost input
channels, BatchNorm re-estimation, bias correction). The method names and what each buys are in
``workbench.vocabulary``, so a menu lists them without importing this package.
"""

from workbench.pruning.api import Method, prune, repair, validate_model
from workbench.pruning.channel_prune import kept_count
from workbench.pruning.report import LayerChange, PruneReport, PruneResult, SkippedLayer
from workbench.pruning.sparsity_2of4 import Violation, check_2of4, eligible_layers

__all__ = [
    "LayerChange",
    "Method",
    "PruneReport",
    "PruneResult",
    "SkippedLayer",
    "Violation",
    "check_2of4",
    "eligible_layers",
    "kept_count",
    "prune",
    "repair",
    "validate_model",
]
