"""What a variant costs in bytes: its files on disk and the memory its engine takes once loaded.

Weight-only and INT8 variants are often chosen for memory rather than speed, so every run stores
both beside its latency. The engine's memory is the growth of this process's resident set (RSS)
from before loading to after its first batch: the weights as the engine holds them (a compressed
file may be unpacked at load) plus the buffers one batch needs. It is a difference inside one
process, so it says what loading this variant adds, not the process's whole footprint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx

from workbench.memory.system import rss_bytes

MB = 1e6
E = TypeVar("E")


def file_megabytes(path: str | Path) -> float:
    """The model's size on disk: the file, its external-data files, and an OpenVINO IR's ``.bin``."""
    path = Path(path)
    total = path.stat().st_size
    if path.suffix == ".xml":
        weights = path.with_suffix(".bin")
        total += weights.stat().st_size if weights.is_file() else 0
    elif path.suffix == ".onnx":
        graph = onnx.load(str(path), load_external_data=False).graph
        locations = {entry.value for init in graph.initializer for entry in init.external_data
                     if entry.key == "location"}
        total += sum((path.parent / name).stat().st_size for name in locations if (path.parent / name).is_file())
    return total / MB


def loaded_with_rss(load: Callable[[], E], run_once: Callable[[E], object]) -> tuple[E, float]:
    """``load()`` and one ``run_once(engine)``, and the RSS they added in MB (0 when the process shrank)."""
    before = rss_bytes()
    engine = load()
    run_once(engine)
    return engine, max(0, rss_bytes() - before) / MB


def first_batch(feed: dict[str, np.ndarray]) -> Callable[[object], object]:
    """The ``run_once`` that infers ``feed`` on an engine."""
    return lambda engine: engine.infer(feed)  # type: ignore[attr-defined]
