"""Every choice that defines a build, in one frozen value that each face builds once and passes whole.

The CLI's option group, the Build panel and Python callers all produce a ``BuildOptions``; the
pipeline, the profiler, the tuning search and the sweep all take one, and ``RunSpec.from_options``
derives the run's identity from it. Every choice is checked here, once, against the names in
``workbench.vocabulary``. How a variant is quantized is one ``Recipe`` (``workbench.recipe``).

Adding a build option means a field here and its flag in ``workbench.cli.build_options`` (which also
writes it back for the reproduce command) and its widget in the Build panel; a quantization option
is a field of ``Recipe`` instead, which the CLI's ``--quant-option`` and the run spec pick up by
themselves. A sweep grid is a list of ``base.replace(...)``.

This module imports nothing heavy, so ``import workbench`` stays fast and needs no ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Union

from workbench.errors import DataError
from workbench.recipe import Recipe
from workbench.vocabulary import (
    CALIBRATED_PRECISIONS,
    CONFIDENCE,
    PRECISIONS,
    PRUNE_METHODS,
    check_choice,
    check_confidence,
    check_ratio,
)

__all__ = ["CALIBRATED_PRECISIONS", "DEFAULT_BACKEND", "BuildOptions", "DataSource"]

if TYPE_CHECKING:
    from workbench.data.dataset import Dataset
    from workbench.data.images import ImagePreprocess

#: Where calibration or evaluation data comes from: a path, ``random[:N]``, a loaded Dataset, or
#: None for the ``calib.npz``/``eval.npz`` beside the model.
DataSource = Union[str, Path, "Dataset", None]

DEFAULT_BACKEND = "onnxruntime-cpu"


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how to measure it; the run spec is derived from these and the data digests.

    ``backend_options`` are the backend's own settings (ONNX Runtime provider or session options,
    e.g. ``{"prefer_nhwc": "1"}`` for CUDA); ``recipe`` is how INT8 is made (quantizer, calibration,
    scales, nodes kept in FP32). ``task`` (guessed from the outputs when None), a user's ``metric``
    (``"module:function"`` or the function) and the ``budget`` (its lowest passing value) decide how
    a variant is judged; ``confidence`` is the level of its interval and three-state verdict (like the
    budget, not part of the run's identity: a stored run is re-judged at the level asked). ``timing_bar``,
    ``build_time_cap`` and ``timing_cap`` are how a search spends its time.
    """

    precision: str = "fp32"
    prune_method: str | None = None
    prune_ratio: float = 0.0
    repair: bool = True
    calib: DataSource = None
    recipe: Recipe = field(default_factory=Recipe)
    eval: DataSource = None
    preprocess: ImagePreprocess | None = None
    backend: str = DEFAULT_BACKEND
    backend_options: Mapping[str, str] = field(default_factory=dict)
    batch: int = 1
    warmup: int = 5
    repeats: int = 30
    task: str | None = None
    metric: str | Callable[..., float] | None = None
    budget: float | None = None
    confidence: float = CONFIDENCE
    #: A search's bar (``workbench tune``): the comparable speed-up a variant must reach to matter. Timing
    #: stops early once even the variant's fastest round cannot reach it; the run says so and is re-timed
    #: in full when asked for again without a bar. Not part of the run's identity.
    timing_bar: float | None = None
    #: The longest a build that searches by itself may take (NNCF's accuracy control), in seconds; None: its
    #: own cap. A search gives it the time it has left. Not part of the run's identity.
    build_time_cap: float | None = None
    #: The longest a search lets one trial's timing rounds run, in seconds (at least 5 rounds still run); None: the
    #: timing's own cap. A run it cut short says so and is re-timed in full when asked for outside a search. Not part
    #: of the run's identity.
    timing_cap: float | None = None

    def __post_init__(self) -> None:
        # Normalised here so equal choices compare equal and nobody can mutate a shared value.
        object.__setattr__(self, "backend_options",
                           MappingProxyType({str(k): str(v) for k, v in dict(self.backend_options).items()}))
        for name, low in (("batch", 1), ("repeats", 1), ("warmup", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DataError(f"{name.capitalize()} {value!r} is not valid.", f"Use a whole number of {low} or more.")
        if not isinstance(self.recipe, Recipe):
            raise TypeError(f"BuildOptions.recipe takes a Recipe, not {type(self.recipe).__name__}: "
                            "e.g. BuildOptions('int8', recipe=Recipe(calib_method='percentile')).")
        check_choice("precision", self.precision, PRECISIONS, "--precision")
        object.__setattr__(self, "prune_ratio", check_ratio(self.prune_ratio))
        object.__setattr__(self, "confidence", check_confidence(self.confidence))
        if self.prune_method is not None:
            check_choice("pruning method", self.prune_method, PRUNE_METHODS, "--prune-method")
        elif self.prune_ratio:
            raise DataError(f"A pruning ratio of {self.prune_ratio:g} was given without a pruning method.",
                            f"Add --prune-method ({', '.join(PRUNE_METHODS)}), or set the ratio to 0.")

    def replace(self, **changes: Any) -> BuildOptions:
        """A copy with some choices changed (``dataclasses.replace``), e.g. one cell of a sweep."""
        return dataclasses.replace(self, **changes)

    def with_recipe(self, **changes: Any) -> BuildOptions:
        """A copy whose recipe has some choices changed, e.g. ``options.with_recipe(per_channel=False)``."""
        return dataclasses.replace(self, recipe=self.recipe.replace(**changes))

    @property
    def pruned(self) -> bool:
        return bool(self.prune_method and self.prune_ratio)
