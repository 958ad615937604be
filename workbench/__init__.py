"""ONNX workbench: make a trained ONNX model run faster, and see why.

The public API, loaded on first use so ``import workbench`` is cheap and needs neither ONNX
Runtime nor ipywidgets::

    from workbench import BuildOptions, Pipeline
    run = Pipeline().run("model.onnx", BuildOptions("int8", batch=8))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the module that defines it (``None``: the name is that module itself).
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "BuildOptions": ("workbench.build_options", "BuildOptions"),
    "Pipeline": ("workbench.runs.pipeline", "Pipeline"),
    "Workbench": ("workbench.ui.app", "Workbench"),
}

__all__ = ["BuildOptions", "Pipeline", "Workbench", "__version__"]

if TYPE_CHECKING:
    from workbench.build_options import BuildOptions
    from workbench.runs.pipeline import Pipeline
    from workbench.ui.app import Workbench


def __getattr__(name: str) -> object:
    """Import the module behind a public name only when it is first used."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
