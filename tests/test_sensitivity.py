"""Sensitivity search on real INT8 builds: budgets, ranking, the smallest mixed variant, cancel."""

from __future__ import annotations

import pytest
from conftest import sample

from workbench.build_options import BuildOptions
from workbench.errors import Cancelled, WorkbenchError
from workbench.progress import CancelToken
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import AccuracyBudget, sensitivity_search


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return Pipeline(tmp_path_factory.mktemp("ws"))


def test_budget_is_checked():
    with pytest.raises(WorkbenchError, match="Unknown budget metric"):
        AccuracyBudget("f1", 0.5)
    with pytest.raises(WorkbenchError, match="out of range"):
        AccuracyBudget("cosine", 2.0)
    with pytest.raises(WorkbenchError, match="cannot yet"):
        sensitivity_search(sample("digits_cnn"), BuildOptions("fp16"))


def test_plain_int8_that_meets_the_budget_keeps_nothing(pipeline: Pipeline):
    result = sensitivity_search(sample("digits_cnn"), BuildOptions("int8", repeats=5), AccuracyBudget("accuracy", 5.0),
                                pipeline=pipeline)
    assert result.met and result.kept == [] and result.ranking.empty
    assert result.mixed.run_id == result.plain.run_id


def test_tight_budget_finds_a_mixed_variant_with_few_layers(pipeline: Pipeline):
    model = sample("digits_cnn")
    plain = pipeline.run(model, BuildOptions("int8", repeats=5))
    # a cosine budget halfway between plain INT8 and FP32: plain misses it by construction
    target = 1 - (1 - plain.drift["cosine_similarity"]) / 2
    budget = AccuracyBudget("cosine", target)
    events = []
    result = sensitivity_search(model, BuildOptions("int8", repeats=5), budget, top_k=4, pipeline=pipeline,
                                progress=events.append)
    assert not budget.meets(result.plain)
    assert len(result.ranking) == 4
    assert list(result.ranking["recovered"]) == sorted(result.ranking["recovered"], reverse=True)
    assert result.met and result.mixed is not None and budget.meets(result.mixed)
    assert list(result.mixed.spec.exclude_nodes) == result.kept
    # fewest layers: if one layer is enough it keeps one; otherwise no single layer passed
    if len(result.kept) > 1:
        assert not result.ranking["meets_budget"].any()
    summary = result.summary()
    assert list(summary["variant"]) == ["plain", "mixed"]
    assert list(summary["meets_budget"]) == [False, True]
    assert summary["latency_ms"].gt(0).all()
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] <= 1.0


def test_cancel_stops_the_search(pipeline: Pipeline):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        sensitivity_search(sample("digits_cnn"), BuildOptions("int8", repeats=5), AccuracyBudget("cosine", 0.999999),
                           pipeline=pipeline, cancel=token)
