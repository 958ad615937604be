"""A named set of model inputs (and optional labels) with a digest that keys cached builds."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Arrays keyed by model input name, samples on each input's batch axis (``axes``; 0 when not listed).

    An input whose axis is None (a scalar such as a sample rate) is fed whole with every batch.

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
    #: Input name -> the axis holding the samples (None: fed whole); inputs not listed use axis 0.
    axes: Mapping[str, int | None] = field(default_factory=dict)

    def axis(self, name: str) -> int | None:
        return self.axes.get(name, 0)

    def __len__(self) -> int:
        counts = [array.shape[self.axis(name)] for name, array in self.inputs.items()
                  if self.axis(name) is not None and array.ndim > self.axis(name)]
        return counts[0] if counts else 0

    def samples(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Samples ``start:stop`` of every input, each cut along its own batch axis."""
        feed = {}
        for name, array in self.inputs.items():
            axis = self.axis(name)
            feed[name] = array if axis is None else array[(slice(None),) * axis + (slice(start, stop),)]
        return feed

    def sample_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one sample of each input (the batch axis at 1), e.g. to count FLOPs at the data's shape."""
        return {name: tuple(1 if i == self.axis(name) else d for i, d in enumerate(array.shape))
                for name, array in self.inputs.items()}

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
            if self.axis(name) != 0:
                sha.update(f"axis {self.axis(name)}".encode())
        if self.labels is not None:
            sha.update(np.ascontiguousarray(self.labels).tobytes())
        sha.update(b"random" if self.is_random else b"real")
        if self.cast_from:
            sha.update(f"cast from {self.cast_from}".encode())
        return sha.hexdigest()

    def take(self, count: int) -> Dataset:
        """The first ``count`` samples, e.g. to cap calibration memory."""
        labels = None if self.labels is None else self.labels[:count]
        return Dataset(self.samples(0, count), labels, self.source, self.is_random, self.cast_from, self.axes)

    def select(self, indices: np.ndarray, what: str) -> Dataset:
        """The samples at ``indices``, in that order, named as ``what`` part of this data (its runs say so)."""
        indices = np.asarray(indices, dtype=np.int64)
        inputs = {name: array if self.axis(name) is None else np.take(array, indices, axis=self.axis(name))
                  for name, array in self.inputs.items()}
        labels = None if self.labels is None else self.labels[indices]
        return Dataset(inputs, labels, f"{self.source}, {what} ({len(indices)} of {len(self)})", self.is_random,
                       self.cast_from, self.axes)

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feed dicts of ``size`` samples; the last one may be smaller."""
        for start in range(0, len(self), size):
            yield self.samples(start, start + size)
