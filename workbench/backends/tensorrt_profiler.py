"""Per-layer times from a live TensorRT engine, as the shared layer table.

TensorRT reports each layer's time through ``IProfiler.report_layer_time(layer_name, ms)``,
called once per layer for every inference of an execution context whose ``profiler`` is set
(TensorRT 10 and 11 keep this interface). It never says where one inference ends, so runs are
split here: by ``end_run()`` when the caller marks them, and (unless ``split_on_repeat`` is
off, for engines whose first layer repeats within one inference) whenever the first layer of
the current run is reported again. Times a layer reports twice within one run (layers inside
loops) are summed, since the table wants time per inference.

The table then goes through the same layer-info parser as trtexec imports (pass the engine
inspector's JSON), so a live engine and an imported profile read alike. ``time_ms`` is each
layer's median over runs; a layer missing from some runs gets the median of the runs it ran in.

The class is plain Python so it can be tested, and used to replay recorded layer times, on
machines without TensorRT; ``make_layer_profiler()`` returns one that is also a
``tensorrt.IProfiler`` when TensorRT is importable, which ``context.profiler`` requires.
"""

from __future__ import annotations

import importlib
import statistics
from collections.abc import Collection
from typing import Any

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.profiles.trt_layer_info import LayerInfo, parse_layer_info, trt_layer_table


class LayerTimeCollector:
    """Collects ``report_layer_time`` calls over many runs and turns them into a layer table."""

    def __init__(
        self,
        layer_info: LayerInfo | dict[str, Any] | str | None = None,
        *,
        known_nodes: Collection[str] | None = None,
        split_on_repeat: bool = True,
    ) -> None:
        self.split_on_repeat = split_on_repeat
        if layer_info is not None and not isinstance(layer_info, LayerInfo):
            layer_info = parse_layer_info(layer_info, known_nodes)
        self.layer_info: LayerInfo | None = layer_info
        self.known_nodes = known_nodes
        self.reset()

    def reset(self) -> None:
        """Forget everything reported so far (e.g. after warm-up runs)."""
        self._runs: list[dict[str, float]] = []
        self._current: dict[str, float] = {}
        self._order: dict[str, None] = {}

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        """TensorRT's callback: one layer's time, in milliseconds, for one inference."""
        if self.split_on_repeat and self._current and layer_name == next(iter(self._current)):
            self.end_run()
        self._current[layer_name] = self._current.get(layer_name, 0.0) + float(ms)
        self._order.setdefault(layer_name, None)

    def end_run(self) -> None:
        """Mark the end of one inference; harmless when nothing was reported since the last."""
        if self._current:
            self._runs.append(self._current)
            self._current = {}

    @property
    def runs(self) -> int:
        """Inferences seen so far, counting the one still open."""
        return len(self._runs) + (1 if self._current else 0)

    def run_totals_ms(self, skip: int = 0) -> list[float]:
        """Summed layer time of each run after the first ``skip``, for the spread beside the medians."""
        return [sum(run.values()) for run in self._all_runs()[skip:]]

    def samples(self) -> pd.DataFrame:
        """Every reported time: columns run, name, time_ms (for spread and outlier plots)."""
        rows = [
            {"run": index, "name": name, "time_ms": ms}
            for index, run in enumerate(self._all_runs())
            for name, ms in run.items()
        ]
        return pd.DataFrame(rows, columns=["run", "name", "time_ms"])

    def layer_table(self, skip: int = 0) -> pd.DataFrame:
        """The layer table: per-layer medians over the runs after the first ``skip``, in first-run order."""
        runs = self._all_runs()[skip:]
        if not runs:
            raise WorkbenchError(
                "No layer times were reported, so there is no per-layer table.",
                "Set this object as the execution context's profiler before running inference.",
            )
        medians = []
        for name in self._order:
            times = [run[name] for run in runs if name in run]
            medians.append((name, statistics.median(times)))
        return trt_layer_table(medians, self.layer_info, strict=False, known_nodes=self.known_nodes)

    def _all_runs(self) -> list[dict[str, float]]:
        return [*self._runs, self._current] if self._current else list(self._runs)


def tensorrt_module() -> Any | None:
    """The ``tensorrt`` module, or None where it is not installed; imported only when asked."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        return None


def make_layer_profiler(
    layer_info: LayerInfo | dict[str, Any] | str | None = None,
    *,
    known_nodes: Collection[str] | None = None,
    split_on_repeat: bool = True,
) -> LayerTimeCollector:
    """A collector that TensorRT accepts as ``context.profiler`` when TensorRT is installed."""
    trt = tensorrt_module()
    cls = LayerTimeCollector if trt is None else _tensorrt_profiler_class(trt)
    return cls(layer_info, known_nodes=known_nodes, split_on_repeat=split_on_repeat)


_PROFILER_CLASSES: dict[int, type] = {}


def _tensorrt_profiler_class(trt: Any) -> type:
    """Subclass of both the collector and ``trt.IProfiler``, built once per TensorRT module.

    The collector comes first in the bases so that its ``report_layer_time`` overrides the
    abstract one; the binding's ``__init__`` must be called explicitly, as TensorRT documents.
    """
    key = id(trt)
    if key not in _PROFILER_CLASSES:

        class TensorRTLayerProfiler(LayerTimeCollector, trt.IProfiler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                trt.IProfiler.__init__(self)
                LayerTimeCollector.__init__(self, *args, **kwargs)

        _PROFILER_CLASSES[key] = TensorRTLayerProfiler
    return _PROFILER_CLASSES[key]
