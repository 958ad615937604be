"""A user's own metric: ``(reference_outputs, variant_outputs, labels) -> float``, higher is better.

Such a function sees whole arrays, so its meter concatenates the batches (in float32); the built-in
meters never need to.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from workbench.errors import WorkbenchError
from workbench.tasks.base import Outputs

MetricFn = Callable[[Outputs, Outputs, "np.ndarray | None"], float]


def metric_name(metric: str | MetricFn) -> str:
    if isinstance(metric, str):
        return metric
    return f"{getattr(metric, '__module__', '?')}:{getattr(metric, '__qualname__', repr(metric))}"


def check_metric_form(metric: str | MetricFn) -> None:
    """A named metric is ``module:function``; said when the options are read, without importing anything."""
    if callable(metric):
        return
    module_name, _, function = metric.partition(":")
    if not module_name or not function:
        raise WorkbenchError(f"Metric '{metric}' is not of the form module:function.",
                             "Give e.g. --metric mypackage.metrics:word_accuracy.")


def load_metric(metric: str | MetricFn) -> MetricFn:
    """``module:function`` imported, or the callable itself.

    Importing runs the module's code, as a plugin's would: the pipeline calls this only once a build
    starts, after the model, data and options passed every other check.
    """
    if callable(metric):
        return metric
    check_metric_form(metric)
    module_name, _, function = metric.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise WorkbenchError(f"Cannot import the metric's module '{module_name}': {exc}.",
                             "Put it on PYTHONPATH or install it.") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise WorkbenchError(f"Module '{module_name}' has no function '{function}'.", "Check the metric's name.")
    return fn


class CustomMeter:
    def __init__(self, fn: MetricFn, name: str) -> None:
        self.fn = fn
        self.name = name
        self.reference: dict[str, list[np.ndarray]] = {}
        self.variant: dict[str, list[np.ndarray]] = {}
        self.labels: list[np.ndarray] = []

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        for store, outputs in ((self.reference, reference), (self.variant, variant)):
            for key, array in outputs.items():
                store.setdefault(key, []).append(array.astype(np.float32, copy=False))
        if labels is not None:
            self.labels.append(labels)

    def figures(self) -> dict:
        ref = {k: np.concatenate(v) for k, v in self.reference.items()}
        var = {k: np.concatenate(v) for k, v in self.variant.items()}
        labels = np.concatenate(self.labels) if self.labels else None
        try:
            value = float(self.fn(ref, var, labels))
        except Exception as exc:  # the user's code: its failure is theirs to read, in one line
            raise WorkbenchError(f"The metric {self.name} failed: {type(exc).__name__}: {exc}.",
                                 "Fix the function; it gets (reference_outputs, variant_outputs, labels).") from exc
        return {"metric": self.name, "value": value}
