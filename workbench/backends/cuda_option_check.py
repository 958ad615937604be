"""Speed settings are kept only where they leave a variant's results where its precision put them.

A provider option that changes which kernels run (cuDNN's fused bias, TF32 for the FP32 ops left
in a half file) changes rounding, and an option that is wrong for a model changes more. So before
timing, the variant runs on evaluation samples with the tuned options and with the plain ones,
both beside the FP32 reference: the plain run's error against FP32 is the variant's own drift, and
the tuned run may not exceed it by more than ``TOLERANCE`` on any output. The error is the root
mean square of the difference, which a single rounding flip cannot move the way a maximum jumps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: How much more error against FP32 than the plain options' the tuned ones may add (rounding noise).
TOLERANCE = 1.5
#: Evaluation samples the check runs (in batches of the run's size).
CHECK_SAMPLES = 64
#: Below this the plain error is FP32's own noise; the bound then is this, not a multiple of zero.
FLOOR = 1e-6

Outputs = dict[str, np.ndarray]


def rms_errors(reference: Iterable[Outputs], outputs: Iterable[Outputs]) -> dict[str, float]:
    """Per output, the root mean square difference from the reference over all batches (NaN kept)."""
    squares: dict[str, float] = {}
    counts: dict[str, int] = {}
    for ref, out in zip(reference, outputs, strict=True):
        for name, expected in ref.items():
            diff = np.asarray(out[name], np.float64) - np.asarray(expected, np.float64)
            squares[name] = squares.get(name, 0.0) + float(np.sum(diff * diff))
            counts[name] = counts.get(name, 0) + diff.size
    return {name: float(np.sqrt(squares[name] / max(1, counts[name]))) for name in squares}


@dataclass(frozen=True)
class OptionVerdict:
    """Whether the tuned options keep the results, and the sentence the run records."""

    accepted: bool
    worst_output: str
    tuned_error: float
    plain_error: float

    def describe(self, options: str, samples: int, source: str) -> str:
        bound = max(self.plain_error * TOLERANCE, FLOOR)
        measured = (f"RMS error against FP32 on output '{self.worst_output}' {self.tuned_error:.3g} with them, "
                    f"{self.plain_error:.3g} without (allowed {bound:.3g})")
        if self.accepted:
            return f"{options} checked against FP32 on {samples} samples of {source}: {measured}; kept"
        return f"{options} refused: on {samples} samples of {source} they change the results, {measured}"


def judge_options(reference: list[Outputs], tuned: list[Outputs], plain: list[Outputs]) -> OptionVerdict:
    """Accept the tuned options when no output's error against FP32 exceeds the plain options' by TOLERANCE."""
    tuned_errors, plain_errors = rms_errors(reference, tuned), rms_errors(reference, plain)

    def excess(name: str) -> float:
        error = tuned_errors[name]
        return np.inf if not np.isfinite(error) else error / max(plain_errors[name] * TOLERANCE, FLOOR)

    worst = max(tuned_errors, key=excess)
    return OptionVerdict(bool(excess(worst) <= 1.0), worst, tuned_errors[worst], plain_errors[worst])
