"""Weight-only INT8/INT4 in ``workbench tune``: which backends and models get them, and what is tried.

They come after the cheaper screens (FP32, hints, dynamic and static INT8), on backends that run
MatMulNBits files and for models with a matrix layer to quantize. A 4-bit variant that misses the
budget is searched first by mixing 4 and 8 bits (a ratio of the weights in 4 bits, the layers 4 bits
hurt most in 8), then with AWQ where there is real calibration data, then layer by layer: the
search's fall-back keeps the layers that recover most of the task metric at the backup precision
(8 bits), which is how ``Recipe.exclude_nodes`` reads for weight-only precisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from workbench.backends.registry import get_backend
from workbench.errors import WorkbenchError
from workbench.precision.weight_layers import DEFAULT_KEEP, SMALL_COMPUTE_SHARE, compute_share, plan_layers
from workbench.vocabulary import WEIGHT_PRECISIONS
from workbench.workflows.tune_trials import NamedRecipe, Trial

#: Shares of the weights in 4 bits tried when all-4-bit misses, the larger (faster, smaller) first.
RATIOS = (0.8, 0.5)


def weight_precisions(backend: str, model: onnx.ModelProto) -> list[str]:
    """``int8-weights`` and ``int4-weights`` where ``backend`` runs them and ``model`` has matrix layers that do
    a real share of its work (a search is for speed: a CNN's small head would only shrink the file)."""
    if get_backend(backend).weight_runtime is None:
        return []
    try:
        plan = plan_layers(model, DEFAULT_KEEP, WEIGHT_PRECISIONS[0])
    except WorkbenchError:  # no matrix layer left once the last is kept: the build would refuse
        return []
    share = compute_share(model, plan.names())
    return [] if share is not None and share < SMALL_COMPUTE_SHARE else list(WEIGHT_PRECISIONS)


def kept_precision(trial: Trial) -> str:
    """What a layer the fall-back keeps runs in: FP32, or int4-weights' backup precision (8 bits by default)."""
    return trial.recipe.recipe.backup.upper() if trial.recipe.precision == "int4-weights" else "FP32"


def weight_recipes(plain: Trial) -> list[tuple[str, NamedRecipe]]:
    """What to try after a plain weight-only trial misses (too slow or too far off): on ONNX Runtime, int8
    compute (``accuracy_level`` 4, what OpenVINO does by itself); for 4 bits, mixed 4/8 bits by ratio, then
    AWQ on real calibration data."""
    recipes = []
    if get_backend(plain.backend).weight_runtime == "onnxruntime":
        recipes.append(("int8 compute (MatMulNBits accuracy level 4)",
                        plain.recipe.derive("int8 compute", accuracy_level=4)))
    if plain.recipe.precision != "int4-weights":
        return recipes
    recipes += [(f"{ratio:.0%} of the weights in 4 bits, the rest in 8",
                 plain.recipe.derive(f"{ratio:.0%} in 4 bits", int4_ratio=ratio)) for ratio in RATIOS]
    recipes.append(("AWQ with scale estimation on the calibration data",
                    plain.recipe.derive("AWQ", weight_algorithm="awq")))
    return recipes


def weight_candidates(model: onnx.ModelProto, trial: Trial) -> list[str]:
    """The layers ``trial`` quantized at its precision's bits, in graph order: the fall-back's candidates."""
    keep: Sequence[str] = (*trial.recipe.recipe.exclude_nodes, *trial.kept, "embeddings",
                           *(("last",) if trial.recipe.recipe.keep_last else ()))
    return [layer.name for layer in plan_layers(model, keep, trial.recipe.precision).quantized]
