"""End-to-end latency of several engines measured side by side.

Engines are timed in interleaved rounds (A, B, B, A, ...) rather than one after the other, so a
noisy neighbour or a frequency change hits every variant alike and the speed-up stays honest.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from workbench.backends.base import Engine
from workbench.progress import Progress


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per inference of one batch."""

    median: float
    p90: float
    mean: float
    std: float
    min: float
    max: float
    repeats: int
    warmup: int
    batch: int

    @property
    def throughput(self) -> float:
        """Samples per second at the median latency."""
        return self.batch * 1000.0 / self.median if self.median > 0 else float("nan")

    @property
    def spread(self) -> float:
        """(p90 - median) / median: how much the tail strays from the typical run."""
        return (self.p90 - self.median) / self.median if self.median > 0 else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "throughput_per_s": self.throughput, "spread": self.spread}

    @classmethod
    def from_samples(cls, samples: list[float], warmup: int, batch: int) -> LatencyStats:
        data = np.asarray(samples, dtype=float)
        return cls(
            median=float(np.median(data)),
            p90=float(np.percentile(data, 90)),
            mean=float(data.mean()),
            std=float(data.std()),
            min=float(data.min()),
            max=float(data.max()),
            repeats=len(samples),
            warmup=warmup,
            batch=batch,
        )


def measure_latency(
    engines: dict[str, Engine],
    feed: dict[str, np.ndarray],
    *,
    warmup: int = 5,
    repeats: int = 30,
    max_seconds: float = 20.0,
    progress: Progress | None = None,
) -> dict[str, LatencyStats]:
    """Warm each engine, then time them in alternating order; stops early past ``max_seconds``.

    At least 5 rounds always run, so even a slow model gets a median and a p90.
    """
    progress = progress or Progress()
    names = list(engines)
    for name in names:
        for _ in range(warmup):
            engines[name].time_once(feed)
    progress.report("time", 0.0, "warm-up done")
    samples: dict[str, list[float]] = {name: [] for name in names}
    start = time.perf_counter()
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(engines[name].time_once(feed))
        progress.report("time", (round_index + 1) / repeats, f"timing round {round_index + 1}/{repeats}")
        if round_index >= 4 and time.perf_counter() - start > max_seconds:
            break
    batch = len(next(iter(feed.values())))
    return {name: LatencyStats.from_samples(samples[name], warmup, batch) for name in names}
