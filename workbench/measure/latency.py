"""End-to-end latency of several engines measured side by side.

Engines are timed in interleaved rounds (A, B, B, A, ...) rather than one after the other, so a
noisy neighbour or a frequency change hits every variant alike and the speed-up stays honest.

Engines of another runtime (``apart``: ONNX Runtime's FP32 beside an OpenVINO run) are not
interleaved call by call: one runtime's worker threads are still awake for a while after its call
returns and take the cores from the next call of the other runtime. Timed that way on digits_vit,
ONNX Runtime's FP32 read twice its own time, so a cross-engine speed-up came out doubled. They are
timed instead in blocks that alternate with the interleaved ones, and the first calls of each block
(the ones still sharing the cores with the other runtime's threads) are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

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


#: Calls of one engine per block when runtimes are timed apart, and how many of them start the block uncounted.
BLOCK_CALLS = 12
SETTLE_CALLS = 3
#: Rounds every engine is timed for before a ``stop`` may end the timing early.
EARLY_STOP_AFTER = 5
#: The longest a run's timing rounds go on by default (a search may cap them shorter: ``BuildOptions.timing_cap``).
MAX_TIMING_S = 20.0


@dataclass
class CannotReach:
    """A ``stop`` for ``time_rounds``: True once even the variant's fastest round, against the yardstick's median,
    is below a speed-up of ``bar`` (a search that already has a variant that fast needs no finer figure);
    ``fired`` says afterwards whether it stopped the timing."""

    bar: float
    yardstick: str
    variant: str = "variant"
    fired: bool = False

    def __call__(self, samples: dict[str, list[float]]) -> bool:
        self.fired = float(np.median(samples[self.yardstick])) / min(samples[self.variant]) < self.bar
        return self.fired


def time_rounds(
    engines: dict[str, Engine],
    feed: dict[str, np.ndarray],
    *,
    warmup: int = 5,
    repeats: int = 30,
    min_seconds: float = 0.0,
    max_seconds: float = MAX_TIMING_S,
    max_rounds: int = 20_000,
    progress: Progress | None = None,
    apart: Collection[str] = (),
    stop: Callable[[dict[str, list[float]]], bool] | None = None,
) -> dict[str, list[float]]:
    """Warm each engine, then time them in alternating order; the milliseconds of every round, per engine.

    At least ``repeats`` rounds (5 even past ``max_seconds``), and more until ``min_seconds`` have passed:
    a model that runs in 0.1 ms gets thousands of rounds, so its median no longer moves between runs.
    Engines named in ``apart`` run on another runtime and are timed in their own blocks (module docstring).
    ``stop`` (e.g. ``cannot_reach``) may end the timing after ``EARLY_STOP_AFTER`` rounds of every engine.
    """
    progress = progress or Progress()
    for name in engines:
        for _ in range(warmup):
            engines[name].time_once(feed)
    progress.report("time", 0.0, "warm-up done")
    together = [name for name in engines if name not in apart]
    groups = [together] + [[name] for name in engines if name in apart]
    block, settle = (BLOCK_CALLS, SETTLE_CALLS) if len(groups) > 1 else (1, 0)
    samples: dict[str, list[float]] = {name: [] for name in engines}
    start = time.perf_counter()
    round_index, check_at = 0, EARLY_STOP_AFTER
    while round_index < max_rounds:
        elapsed = time.perf_counter() - start
        counted = min(len(ms) for ms in samples.values())
        if counted >= repeats and elapsed >= min_seconds:
            break
        if counted >= 5 and elapsed > max_seconds:
            break
        if stop is not None and counted >= check_at:
            check_at *= 2  # at 5, 10, 20, ... rounds: a fast model's thousands of rounds are not re-read each time
            if stop(samples):
                break
        for group in groups:
            for call in range(block):
                order = group if (round_index + call) % 2 == 0 else group[::-1]
                for name in order:
                    ms = engines[name].time_once(feed)
                    if call >= settle:
                        samples[name].append(ms)
        round_index += 1
        done = max(counted / repeats, elapsed / min_seconds if min_seconds else 0.0)
        progress.report("time", min(1.0, done), f"timing round {round_index}")
    return samples


def measure_latency(
    engines: dict[str, Engine],
    feed: dict[str, np.ndarray],
    *,
    warmup: int = 5,
    repeats: int = 30,
    min_seconds: float = 0.0,
    max_seconds: float = MAX_TIMING_S,
    progress: Progress | None = None,
) -> dict[str, LatencyStats]:
    """``time_rounds`` summed up per engine."""
    samples = time_rounds(engines, feed, warmup=warmup, repeats=repeats, min_seconds=min_seconds,
                          max_seconds=max_seconds, progress=progress)
    batch = len(next(iter(feed.values())))
    return {name: LatencyStats.from_samples(samples[name], warmup, batch) for name in samples}


def speedup_interval(reference: list[float], variant: list[float], confidence: float = 0.95) -> list[float]:
    """The interval of the speed-up itself (median reference / median variant), by the paired bootstrap.

    ``speedup_spread`` says how far one round's ratio wanders; this says how far the figure made of all the
    rounds may be off, which is what telling two variants apart needs: on MiniLM two OpenVINO variants read
    4.27x and 4.12x, each with a per-round spread of 0.15, while the medians of their rounds were settled to
    about 0.03. Rounds are resampled as pairs, so a slow moment of the machine moves both sides.
    """
    count = min(len(reference), len(variant))
    pairs = (np.asarray(reference[:count], dtype=float), np.asarray(variant[:count], dtype=float))
    if count < 2:
        ratio = float(np.median(pairs[0]) / np.median(pairs[1]))
        return [ratio, ratio]
    found = stats.bootstrap(pairs, _median_ratio, paired=True, vectorized=True, n_resamples=999,
                            confidence_level=confidence, method="percentile", batch=50, random_state=0)
    return [float(found.confidence_interval.low), float(found.confidence_interval.high)]


def _median_ratio(reference: np.ndarray, variant: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(reference, axis=axis) / np.median(variant, axis=axis)


def speedup_spread(reference: list[float], variant: list[float]) -> float:
    """Half the interquartile range of the per-round ratios reference/variant: the speed-up's own noise.

    Rounds are paired (both engines ran within the same round), so a slow moment of the machine
    hits both sides and largely cancels; what remains is how far the ratio itself wanders.
    """
    ratios = np.asarray(reference, dtype=float) / np.asarray(variant, dtype=float)
    q1, q3 = np.percentile(ratios, [25, 75])
    return float((q3 - q1) / 2)
