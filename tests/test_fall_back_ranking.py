"""The node fall-back ranks its groups on the search samples where the trial it starts from errs most (NNCF's
ranking subset), and judges whatever it keeps on the whole search part: a ranking trial is never a verdict."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from conftest import sample
from test_stability import digits

from workbench.build_options import BuildOptions
from workbench.cli.cmd_tune import trials_table
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.tasks.base import TaskScore
from workbench.tasks.evidence import Evidence
from workbench.workflows.tune import recommend
from workbench.workflows.tune_confirm import prepare
from workbench.workflows.tune_policy import Search, fall_back
from workbench.workflows.tune_ranking import RANKING_FLOOR, RANKING_SUBSET, sample_errors, subset_size
from workbench.workflows.tune_runner import TrialRunner
from workbench.workflows.tune_trials import NamedRecipe


def test_fall_back_ranks_on_the_samples_with_the_largest_error(tmp_path: Path):
    """digits_cnn on 360 blends of two digits (inputs FP32 itself barely decides): FP32's own flips left out,
    static INT8 per tensor with 7-bit weights changes the class of a few of the 178 search samples left and misses
    top-1 agreement 0.99. Its groups are ranked on 32 of them, every one it changed and the next in the search
    part's seeded order; each ranking run is evaluated on those 32 only, the trials after the ranking, the only
    ones that can be picked, on all 178 (their runs on all 360 samples, the confirmation half included)."""
    pipeline, model = Pipeline(tmp_path / "ws"), sample("digits_cnn")
    options = BuildOptions(batch=8, repeats=3, eval=digits("digits_cnn", 360, blended=True))
    options, judging = prepare(model, options, pipeline)
    runner = TrialRunner(model, options, pipeline, 600, Progress(), judging)
    search = Search(runner, "onnxruntime-cpu", time.monotonic() + 600)
    # Per-tensor with 7-bit weights on every CPU (with or without VNNI): a recipe coarse enough to miss by a few.
    start = search.trial("recipe", "static INT8, MinMax, per-tensor, 7-bit weights",
                         NamedRecipe("per-tensor", "int8", Recipe(per_channel=False, reduce_range=True)))
    search_part = judging.kept(judging.search)
    assert len(judging.excluded) and len(search_part) == 178 < len(judging.search)
    assert start is not None and not start.met and start.score.samples == 178
    failed = search_part[Evidence.from_dict(start.score.details["per_sample"]).failed()]
    assert 0 < len(failed) < RANKING_FLOOR / 2  # so the subset is the floor: 32 of the 178
    subset = runner.ranking_subset(start)
    assert subset is not None and len(subset) == RANKING_FLOOR and subset.of == 178 and subset.failing == len(failed)
    assert set(failed) <= set(subset.samples) <= set(search_part)  # never one of FP32's own flips
    assert subset.start.samples == 32 and np.isclose(subset.start.value, 1 - len(failed) / 32)

    found = fall_back(search, start)
    ranked = [t for t in runner.trials if t.step == "rank"]
    assert len(ranked) == 7  # 13 quantized nodes in contiguous groups of two
    for trial in ranked:
        assert np.array_equal(trial.ranked_on.samples, subset.samples)
        assert trial.run.drift["samples"] == 32 and trial.score.samples == 32
        assert "largest error (32 of 360)" in trial.run.eval_source and not trial.met and not trial.pays
    assert f"per-tensor: ranked 7 groups on {subset.text()}" in runner.notes
    assert subset.text() == f"the 32 search samples with the largest error (of 178; {len(failed)} fail)"
    full = [t for t in runner.trials if t.ranked_on is None]
    assert len(full) > 1 and all(t.run.drift["samples"] == 360 and t.score.samples == 178 for t in full)
    assert found is None or found.ranked_on is None
    assert recommend(ranked, []) is None  # a ranking trial is no candidate, whatever its subset says
    assert trials_table(runner.trials).count("ranking only") == 7
    assert all(t.to_dict()["ranked_on"] == {"samples": 32, "of": 178} for t in ranked)
    best = recommend(runner.trials, [])
    assert best is None or (best.ranked_on is None and best.score.samples == 178)
    # The same file on the whole data is another run: a subset's run is never served as a full one.
    first = ranked[0]
    again = pipeline.run(model, first.recipe.options(options.replace(backend="onnxruntime-cpu"), first.kept))
    assert again.run_id != first.run.run_id and again.artifact == first.run.artifact
    assert again.drift["samples"] == 360


def test_the_subset_takes_a_share_s_failures_twice_and_a_mean_s_lowest_quarter():
    """NNCF's per-sample error: a share loses its failing units (with labels only where FP32 itself is right),
    a mean what each sample falls short of 1. A share's subset is its failures and as many more, a mean's its
    lowest quarter, within the floor and NNCF's 300."""
    held = np.ones(1000, dtype=np.int64)
    held[[3, 7, 11]] = 0
    labelled = TaskScore("classification", "accuracy", 0.997, 0.99, True, "",
                         details={"per_sample": Evidence.share(held).to_dict(), "reference_failed": [7, 20]})
    errors, share = sample_errors(labelled)
    assert share and errors[3] == errors[11] == 1 and errors[7] == 0 and errors[20] == -1
    assert subset_size(errors, share, batch=8) == RANKING_FLOOR
    many = np.r_[np.ones(400), np.zeros(600)]
    assert subset_size(many, True, batch=8) == RANKING_SUBSET
    cosines = TaskScore("raw", "cosine", 0.99, 0.99, True, "",
                        details={"per_sample": Evidence.mean(np.linspace(0.9, 1.0, 400)).to_dict()})
    errors, share = sample_errors(cosines)
    assert not share and np.isclose(errors[0], 0.1) and subset_size(errors, share, batch=8) == 100
    assert subset_size(errors[:40], share, batch=64) == 64  # never less than a batch
    assert sample_errors(TaskScore("raw", "mine:score", 1.0, 0.5, True, "")) is None
