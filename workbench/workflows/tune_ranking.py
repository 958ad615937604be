"""The node fall-back's ranking subset: the search samples where the trial it starts from errs most.

Ranking measures every group of quantized nodes kept in FP32 alone, eight trials or more, only to
order them; no verdict is made on them. What orders them is where the start trial loses its metric:
NNCF's accuracy restorer ranks on the ``ranking_subset_size`` samples (300 by default) whose
per-sample metric differs most from FP32's, and the ranking here does the same from the start
trial's stored per-sample evidence (``tasks.evidence``), so each ranking trial evaluates a small
part of the search data. The trials after the ranking (groups kept greedily, then sent back) are
judged on the whole search part, as every verdict and pick is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from workbench.tasks import TaskScore, task_score
from workbench.tasks.evidence import SHARE, Evidence

if TYPE_CHECKING:
    from workbench.workflows.tune_confirm import Judging
    from workbench.workflows.tune_trials import Trial

#: At most this many samples, NNCF's default ``ranking_subset_size``: beyond it the largest errors are taken.
RANKING_SUBSET = 300
#: At least this many: on a handful of samples the order of the groups would be one or two samples' luck, and a
#: group that breaks samples the start trial kept would not show.
RANKING_FLOOR = 32


@dataclass(frozen=True)
class RankingSubset:
    """The samples the ranking trials are evaluated on (indices into the evaluation data, in its order), how many
    of them the start trial fails, how many search samples they were chosen from, and the start trial judged on
    them (what a group must improve on)."""

    samples: np.ndarray
    failing: int | None
    of: int
    start: TaskScore

    def __len__(self) -> int:
        return len(self.samples)

    def text(self) -> str:
        """What the notes say, e.g. 'the 32 search samples with the largest error (of 160; 2 fail)'."""
        failing = "" if self.failing is None else f"; {self.failing} fail"
        return f"the {len(self)} search samples with the largest error (of {self.of}{failing})"


def sample_errors(score: TaskScore) -> tuple[np.ndarray, bool] | None:
    """Per evaluated sample, how much of the metric the variant loses there against FP32 (NNCF's per-sample metric
    difference), and whether the metric is a share; None where the run keeps no per-sample figures (a user's
    metric). A share loses its units that did not hold (with labels: FP32 right and the variant wrong is 1, both
    wrong 0, only FP32 wrong -1); a mean loses what each sample falls short of 1 (a cosine, an IoU)."""
    stored = score.details.get("per_sample")
    if stored is None:
        return None
    evidence = Evidence.from_dict(stored)
    if evidence.kind != SHARE:
        return 1.0 - evidence.values, False
    whole = np.ones(len(evidence), dtype=np.int64) if evidence.trials is None else evidence.trials
    lost = (whole - evidence.values).astype(np.float64)
    if "reference_failed" in score.details:  # accuracy with labels: a sample FP32 itself gets wrong loses nothing
        lost[np.asarray(score.details["reference_failed"], dtype=np.int64)] -= 1.0
    return lost, True


def subset_size(errors: np.ndarray, share: bool, batch: int) -> int:
    """How many samples the ranking is evaluated on. A share's loss is all in its failing samples: every one of
    them, and as many more (the next in the search part's seeded order), so a group that fixes some samples and
    breaks others shows both. A mean has no failing samples, only low ones: its lowest quarter. Never fewer than
    ``RANKING_FLOOR`` or a batch, never more than ``RANKING_SUBSET``."""
    wanted = 2 * int((errors > 0).sum()) if share else len(errors) // 4
    return min(max(wanted, RANKING_FLOOR, batch), RANKING_SUBSET)


def ranking_subset(judging: Judging | None, start: Trial, batch: int) -> RankingSubset | None:
    """The search samples with the largest error of ``start`` (ties in the search part's seeded order), or None
    where the ranking is evaluated on the whole search part: no per-sample figures, or a subset more than half of
    it (the saving would not pay for measuring the first group kept again on the whole part)."""
    if judging is None:
        return None
    score = task_score(start.run.drift)
    found = None if score is None else sample_errors(score)
    if found is None:
        return None
    search = judging.kept(judging.search)  # in the split's seeded order
    errors, share = found[0][np.searchsorted(judging.evaluated, search)], found[1]
    size = subset_size(errors, share, batch)
    if 2 * size > len(search):
        return None
    chosen = np.sort(search[np.argsort(-errors, kind="stable")[:size]])
    return RankingSubset(chosen, int((errors > 0).sum()) if share else None, len(search), judging.on(score, chosen))
