"""ONNX workbench: make a trained ONNX model run faster, and see why.

The public API, loaded on first use so ``import workbench`` is cheap and needs neither ONNX
Runtime nor ipywidgets::

    from workbench import BuildOptions, Pipeline
    run = Pipeline().run("model.onnx", BuildOptions("int8", batch=8))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from workbench.privacy import engines_offline
from workbench.version import __version__

#: Before any engine is imported, by any face (CLI, app, lab kernel, Python API): nothing leaves the machine.
TELEMETRY_OFF = engines_offline()

#: Public name -> the module that defines it (``None``: the name is that module itself).
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "BuildOptions": ("workbench.build_options", "BuildOptions"),
    "Recipe": ("workbench.recipe", "Recipe"),
    "Pipeline": ("workbench.runs.pipeline", "Pipeline"),
    "Workbench": ("workbench.ui.app", "Workbench"),
    "Sweep": ("workbench.runs.sweep", "Sweep"),
    "build_and_analyse": ("workbench.workflows.build", "build_and_analyse"),
    "profile_model": ("workbench.workflows.profile", "profile_model"),
    "profile_run": ("workbench.workflows.profile", "profile_run"),
    "drift_for_run": ("workbench.workflows.layer_drift", "drift_for_run"),
    "tune": ("workbench.workflows.tune", "tune"),
    "plots": ("workbench.plots", None),
    "sample_models": ("workbench.samples", "sample_models"),
}

__all__ = [
    "BuildOptions", "Pipeline", "Recipe", "Sweep", "Workbench", "__version__", "build_and_analyse", "drift_for_run",
    "plots", "profile_model", "profile_run", "sample_models", "tune",
]

if TYPE_CHECKING:
    from workbench import plots
    from workbench.build_options import BuildOptions
    from workbench.recipe import Recipe
    from workbench.runs.pipeline import Pipeline
    from workbench.runs.sweep import Sweep
    from workbench.samples import sample_models
    from workbench.ui.app import Workbench
    from workbench.workflows.build import build_and_analyse
    from workbench.workflows.layer_drift import drift_for_run
    from workbench.workflows.profile import profile_model, profile_run
    from workbench.workflows.tune import tune


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
