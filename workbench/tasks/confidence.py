"""How sure a verdict is: the interval of a task metric, its three states, and the samples that would settle it.

Shares (agreement, identical decodes, detections kept) get Wilson score intervals, which stay
inside [0, 1] and behave at 0 or all failures, where the normal approximation says a sample of 80
with none changed is certain. Means (cosine, IoU) get a percentile bootstrap over samples (seeded,
so the same run always shows the same interval). Both come from SciPy.

A verdict **meets** when the whole interval lies at or above the lowest passing value, **misses**
when the whole interval lies below it (or the variant is broken), and otherwise **cannot tell**:
the data is too small to separate a real loss from noise.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from workbench.tasks.evidence import MEAN, Evidence
from workbench.vocabulary import CONFIDENCE

MEETS, MISSES, CANNOT_TELL = "meets", "misses", "cannot tell"
STATES = (MEETS, MISSES, CANNOT_TELL)
#: Resamples of the bootstrap: enough for two stable decimals of a 95% interval's ends.
RESAMPLES = 2000
#: Beyond this many samples "about N needed" stops being advice.
MOST_NEEDED = 10_000_000


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials``."""
    if trials <= 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest  # SciPy only when a verdict is judged: importing the package stays fast

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_mean(values: np.ndarray, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean over samples; one value, or all equal, has no spread."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1 or np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    from scipy.stats import bootstrap

    ci = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                   random_state=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def interval(evidence: Evidence, confidence: float = CONFIDENCE) -> tuple[float, float]:
    if evidence.kind == MEAN:
        return bootstrap_mean(evidence.values, confidence)
    return wilson(evidence.successes, evidence.units, confidence)


def state(low: float, high: float, threshold: float, broken: bool = False) -> str:
    """meets / misses / cannot tell, from where the interval lies against the lowest passing value."""
    if broken:
        return MISSES
    if math.isnan(low) or math.isnan(high):
        return CANNOT_TELL
    if low >= threshold - 1e-12:
        return MEETS
    if high < threshold - 1e-12:
        return MISSES
    return CANNOT_TELL


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _wilson_bound(share: float, n: float, z: float, upper: bool) -> float:
    """The Wilson bound at a share observed on ``n`` units (the closed form, for any real ``n``)."""
    centre = share + z * z / (2 * n)
    spread = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre + spread if upper else centre - spread) / (1 + z * z / n)


def share_needed(share: float, threshold: float, confidence: float = CONFIDENCE) -> int | None:
    """Units needed, at the share observed, for the interval to clear the threshold (from above or below).

    None where the share sits on the threshold (no sample count separates them) or no threshold is
    reachable (a share of 1 against a threshold of 1).
    """
    if share == threshold or not 0 <= threshold <= 1 or (share > threshold and threshold >= 1):
        return None
    z = _z(confidence)
    above = share > threshold

    def settled(n: float) -> bool:
        bound = _wilson_bound(share, n, z, upper=not above)
        return bound >= threshold if above else bound < threshold

    low, high = 1, 1
    while not settled(high):
        low, high = high, high * 2
        if high > MOST_NEEDED:
            return None
    while low < high:  # the smallest n that settles it; the bound moves towards the share as n grows
        middle = (low + high) // 2
        low, high = (middle + 1, high) if not settled(middle) else (low, middle)
    return high


def mean_needed(value: float, low: float, high: float, threshold: float, samples: int) -> int | None:
    """Samples needed for a mean's interval to clear the threshold: its width shrinks as 1/sqrt(n)."""
    gap = value - threshold
    half = value - low if gap > 0 else high - value
    if gap == 0 or samples <= 0 or math.isnan(half):
        return None
    if half == 0:
        return samples
    needed = math.ceil(samples * (half / abs(gap)) ** 2)
    return needed if needed <= MOST_NEEDED else None


def samples_needed(evidence: Evidence, low: float, high: float, threshold: float,
                   confidence: float = CONFIDENCE) -> int | None:
    """Units (samples, or detections for a per-detection share) that would settle the verdict."""
    if evidence.kind == MEAN:
        return mean_needed(evidence.value, low, high, threshold, len(evidence))
    return share_needed(evidence.value, threshold, confidence)
