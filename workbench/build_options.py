"""Every choice that defines a build, in one frozen value that each face builds once and passes whole.

The CLI's option group, the Build panel and Python callers all produce a ``BuildOptions``; the
pipeline, the profiler, the tuning search and the sweep all take one. Adding an option means
adding a field here, its flag in ``workbench.cli.build_options`` and its widget in the Build panel,
and nothing else. A sweep grid is a list of ``dataclasses.replace(base, ...)``.

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

if TYPE_CHECKING:
    from workbench.data.dataset import Dataset
    from workbench.data.images import ImagePreprocess

#: Where calibration or evaluation data comes from: a path, ``random[:N]``, a loaded Dataset, or
#: None for the ``calib.npz``/``eval.npz`` beside the model.
DataSource = Union[str, Path, "Dataset", None]

DEFAULT_BACKEND = "onnxruntime-cpu"
#: Precisions whose activation scales come from calibration data (which then shapes the built file).
CALIBRATED_PRECISIONS = ("int8", "fp8")


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how to measure it; the run spec is derived from these and the data digests.

    ``backend_options`` are the backend's own settings (ONNX Runtime provider or session options,
    e.g. ``{"prefer_nhwc": "1"}`` for CUDA); ``quantizer`` names the INT8 tool. ``task`` (guessed
    from the outputs when None), a user's ``metric`` (``"module:function"`` or the function) and
    the ``budget`` (its lowest passing value) decide how a variant is judged.
    """

    precision: str = "fp32"
    prune_method: str | None = None
    prune_ratio: float = 0.0
    repair: bool = True
    calib: DataSource = None
    calib_method: str = "minmax"
    per_channel: bool = True
    eval: DataSource = None
    preprocess: ImagePreprocess | None = None
    backend: str = DEFAULT_BACKEND
    backend_options: Mapping[str, str] = field(default_factory=dict)
    batch: int = 1
    warmup: int = 5
    repeats: int = 30
    exclude_nodes: tuple[str, ...] = ()
    quantizer: str = "onnxruntime"
    #: Static INT8 choices beyond method and per-channel (the tuning search's recipes): ``activations``
    #: "u8"/"s8", ``symmetric`` activations, calibration ``percentile``.
    quant_options: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None
    metric: str | Callable[..., float] | None = None
    budget: float | None = None

    def __post_init__(self) -> None:
        # Normalised here so equal choices compare equal and nobody can mutate a shared value.
        object.__setattr__(self, "exclude_nodes", tuple(self.exclude_nodes))
        object.__setattr__(self, "backend_options",
                           MappingProxyType({str(k): str(v) for k, v in dict(self.backend_options).items()}))
        object.__setattr__(self, "quant_options", MappingProxyType(dict(self.quant_options)))
        for name, low in (("batch", 1), ("repeats", 1), ("warmup", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise DataError(f"{name.capitalize()} {value!r} is not valid.", f"Use a whole number of {low} or more.")

    def replace(self, **changes: Any) -> BuildOptions:
        """A copy with some choices changed (``dataclasses.replace``), e.g. one cell of a sweep."""
        return dataclasses.replace(self, **changes)

    @property
    def pruned(self) -> bool:
        return bool(self.prune_method and self.prune_ratio)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: data sources as their labels or paths, mappings as plain dicts."""
        data = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif callable(value):
                value = f"{value.__module__}:{value.__qualname__}"
            elif value is not None and not isinstance(value, (str, int, float, bool)):
                value = getattr(value, "label", None) or str(value)
            data[f.name] = value
        return data
