"""Intervals against known values, the three verdict states and the samples a budget needs, on real runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import sample

from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.tasks import rejudge, task_score
from workbench.tasks.confidence import CANNOT_TELL, MEETS, MISSES, bootstrap_mean, share_needed, state, wilson
from workbench.tasks.evidence import Evidence
from workbench.tasks.judge import metric_dict, score_on
from workbench.tasks.verdict_text import needed_text


def test_wilson_matches_known_intervals():
    # 91 of 96 identical decodes: the text recogniser of the issue, "roughly 0.88-0.98"
    assert wilson(91, 96) == pytest.approx((0.88382, 0.97755), abs=1e-4)
    # none changed of 80: the lower end is n / (n + z^2) in closed form
    assert wilson(80, 80)[0] == pytest.approx(80 / (80 + 1.959964**2), abs=1e-6)
    # none of 10 (Wilson's own example tables): [0, 0.2775]
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson(40, 80, 0.99)[1] - wilson(40, 80, 0.99)[0] > wilson(40, 80)[1] - wilson(40, 80)[0]


def test_bootstrap_mean_agrees_with_the_normal_interval_of_a_large_sample():
    values = np.random.default_rng(1).normal(0.9, 0.05, size=2000)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    low, high = bootstrap_mean(values)
    assert low == pytest.approx(values.mean() - half, abs=4e-4)
    assert high == pytest.approx(values.mean() + half, abs=4e-4)
    assert bootstrap_mean(values) == (low, high)  # seeded: a stored run shows the same interval every time
    assert bootstrap_mean(np.ones(5)) == (1.0, 1.0)


def test_samples_needed_is_the_smallest_count_whose_interval_clears_the_budget():
    needed = share_needed(1.0, 0.99)
    assert wilson(needed, needed)[0] >= 0.99 > wilson(needed - 1, needed - 1)[0]
    assert needed == 381  # n >= 0.99 z^2 / 0.01
    # below the budget: the count at which the upper end drops under it
    low_share = share_needed(0.9, 0.95)
    above, below = -(-low_share // 10) * 10, (low_share // 20) * 10  # counts with whole successes at 0.9
    assert wilson(9 * above // 10, above)[1] < 0.95 <= wilson(9 * below // 10, below)[1]
    assert share_needed(0.95, 0.95) is None and share_needed(1.0, 1.0) is None


def test_three_states_from_where_the_interval_lies():
    assert state(0.96, 1.0, 0.95) == MEETS
    assert state(0.90, 0.94, 0.95) == MISSES
    assert state(0.93, 0.99, 0.95) == CANNOT_TELL
    assert state(0.96, 1.0, 0.95, broken=True) == MISSES


def test_evidence_round_trips_and_subsets():
    share = Evidence.share(np.array([1, 1, 0, 1]))
    assert Evidence.from_dict(share.to_dict()).values.tolist() == [1, 1, 0, 1] and share.to_dict()["failed"] == [2]
    kept = Evidence.share(np.array([3, 0, 2]), np.array([3, 1, 4]), unit="detections")
    assert kept.units == 8 and kept.value == pytest.approx(5 / 8) and kept.failed().tolist() == [1, 2]
    assert kept.subset([0, 2]).value == pytest.approx(5 / 7)


def test_a_real_run_is_judged_in_three_states_with_the_samples_it_needs(tmp_path: Path):
    """digits_cnn INT8 on 80 unlabelled samples: a budget the data shows, one it cannot, one it cannot reach."""
    with np.load(sample("digits_cnn").parent / "eval.npz") as data:
        evaluation = Dataset({"input": data["input"][:80]}, None, "first 80")
    run = Pipeline(tmp_path / "ws").run(sample("digits_cnn"), BuildOptions("int8", eval=evaluation, repeats=3))
    score = task_score(run.drift)
    changed = round((1 - score.value) * 80)
    assert score.samples == 80 and score.interval == pytest.approx(list(wilson(80 - changed, 80)))
    assert score.state == CANNOT_TELL and score.samples_needed >= 381  # 0.99 needs at least 381 with none changed
    text = needed_text(score)
    assert text.startswith("to show top-1 agreement with FP32 >= 0.99 with 95% confidence, about")
    assert text.endswith("you gave 80") and text in score.verdict
    if changed <= 2:
        assert rejudge(run.drift, 0.9).state == MEETS
    assert metric_dict(rejudge(run.drift, 0.9))["interval"] == score.interval
    half = score_on(score, np.arange(40))
    assert half.samples == 40 and half.interval[0] < score.interval[0]
    frame = runs_frame([run])
    assert frame["verdict"].iloc[0] == "cannot tell" and "on 80 samples" in frame["task_interval"].iloc[0]


def test_a_broken_variant_misses_and_accuracy_on_part_uses_fp32s_accuracy_there(tmp_path: Path):
    run = Pipeline(tmp_path / "ws").run(sample("digits_outlier"), BuildOptions("int8", repeats=3))
    score = task_score(run.drift)
    assert score.metric == "accuracy" and score.state == MISSES and score.interval[1] < score.threshold
    part = score_on(score, np.arange(0, 360, 2))
    assert part.samples == 180 and part.state == MISSES
    assert part.threshold == pytest.approx(part.details["reference_accuracy"] - 0.01)
