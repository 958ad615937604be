"""A named set of model inputs (and optional labels) with a digest that keys cached builds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    """Arrays keyed by model input name, first axis = sample.

    ``is_random`` travels with the data so every table and plot can label results measured on
    synthetic inputs: accuracy on noise means nothing, and nobody should mistake it for real.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    is_random: bool = False
    #: What the arrays were converted from to fit the model ("input: float64 -> float32"), if anything:
    #: a float64 file is other data than its float32 twin, and its runs must name it.
    cast_from: str | None = None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values()))) if self.inputs else 0

    @property
    def label(self) -> str:
        return f"RANDOM data ({self.source})" if self.is_random else self.source

    @property
    def digest(self) -> str:
        """Content hash: the same arrays give the same key wherever they were loaded from."""
        sha = hashlib.sha256()
        for name in sorted(self.inputs):
            array = np.ascontiguousarray(self.inputs[name])
            sha.update(name.encode())
            sha.update(str(array.dtype).encode())
            sha.update(str(array.shape).encode())
            sha.update(array.tobytes())
        if self.labels is not None:
            sha.update(np.ascontiguousarray(self.labels).tobytes())
        sha.update(b"random" if self.is_random else b"real")
        if self.cast_from:
            sha.update(f"cast from {self.cast_from}".encode())
        return sha.hexdigest()

    def take(self, count: int) -> Dataset:
        """The first ``count`` samples, e.g. to cap calibration memory."""
        labels = None if self.labels is None else self.labels[:count]
        inputs = {k: v[:count] for k, v in self.inputs.items()}
        return Dataset(inputs, labels, self.source, self.is_random, self.cast_from)

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts of ``size`` samples; the last one may be smaller."""
        for start in range(0, len(self), size):
            yield {k: v[start : start + size] for k, v in self.inputs.items()}
