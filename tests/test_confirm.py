"""The search's judging: a budget at FP32's own stability, unstable samples left out, a pick replaced at confirmation.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import sample
from test_stability import digits

from workbench.build_options import BuildOptions
from workbench.cli import cmd_tune
from workbench.cli.build_options import BuildOptionsArgs
from workbench.errors import WorkbenchError
from workbench.runs.pipeline import Pipeline
from workbench.runs.sweep import Sweep
from workbench.workflows.tune import confirmed_pick
from workbench.workflows.tune_confirm import leaves_out_unstable, prepare
from workbench.workflows.tune_trials import NamedRecipe, Trial


def test_budget_stable_sets_the_budget_at_fp32s_floor_and_unstable_samples_can_be_left_out(tmp_path: Path):
    blends = digits("digits_cnn", 200, blended=True)
    options, judging = prepare(sample("digits_cnn"), BuildOptions(batch=8, eval=blends), Pipeline(tmp_path / "ws"),
                               budget_stable=True, exclude_unstable=True)
    assert options.budget == judging.stability.value < 1.0
    assert any(note.startswith("budget set at FP32's own stability") for note in judging.notes)
    assert len(judging.search) == len(judging.confirm) == 100 and not set(judging.search) & set(judging.confirm)
    assert judging.to_dict()["search_samples"] + judging.to_dict()["confirm_samples"] == 200 - len(judging.excluded)
    parser = argparse.ArgumentParser()
    BuildOptionsArgs(searched=True).add_parser_args(parser)
    assert BuildOptionsArgs(searched=True).parse(parser.parse_args(["--budget", "stable"])).budget is None
    plain = argparse.ArgumentParser()
    BuildOptionsArgs().add_parser_args(plain)
    with pytest.raises(WorkbenchError, match="set by tune"):
        BuildOptionsArgs().parse(plain.parse_args(["--budget", "stable"]))


def test_flipped_samples_are_left_out_by_default_only_where_the_budget_is_stricter_than_fp32(tmp_path: Path):
    """On blended digits FP32 itself flips some classes: at the default budget those are left out unless asked to
    keep them; on clean digits (FP32 keeps every class) nothing is left out."""
    model, pipeline = sample("digits_cnn"), Pipeline(tmp_path / "ws")
    blends = BuildOptions(batch=8, eval=digits("digits_cnn", 200, blended=True))
    _, auto = prepare(model, blends, pipeline)
    assert auto.stability.flips and len(auto.excluded) == len(auto.stability.unstable) > 0
    assert any("left out of every verdict" in note and "--keep-unstable" in note for note in auto.notes), auto.notes
    assert auto.to_dict()["excluded_unstable"] == len(auto.stability.unstable)
    _, kept = prepare(model, blends, pipeline, exclude_unstable=False)
    assert not len(kept.excluded) and any("--exclude-unstable to judge" in note for note in kept.notes), kept.notes
    # a mean metric's low samples are not outcomes FP32 flips: they stay unless asked
    assert not leaves_out_unstable(dataclasses.replace(auto.stability, flips=False), None, "stricter")
    _, clean = prepare(model, blends.replace(eval=digits("digits_cnn", 80, blended=False)), pipeline)
    assert not len(clean.excluded)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cmd_tune.register(sub)
    assert parser.parse_args(["tune", "m.onnx"]).exclude_unstable is None
    assert parser.parse_args(["tune", "m.onnx", "--keep-unstable"]).exclude_unstable is False
    assert parser.parse_args(["tune", "m.onnx", "--exclude-unstable"]).exclude_unstable is True


def test_a_pick_that_fails_confirmation_gives_way_to_the_next_fastest(tmp_path: Path):
    """digits_resnet on clean digits: static INT8 (several times faster) and dynamic INT8 (only the classifier
    quantized) both keep every class; on blends static INT8 changes some, dynamic INT8 none."""
    pipeline, model = Pipeline(tmp_path / "ws"), sample("digits_resnet")
    base = BuildOptions(batch=8, repeats=5, budget=0.99, eval=digits("digits_resnet", 120, blended=False))
    base, judging = prepare(model, base, pipeline, confirm=digits("digits_resnet", 200, blended=True))
    trials = []
    for precision in ("int8", "int8-dynamic"):
        recipe = NamedRecipe(precision, precision)
        run = pipeline.run(model, recipe.options(base, ()))
        trials.append(Trial("recipe", precision, recipe, (), run, 0.0, judging))
    static, dynamic = trials
    assert static.met and dynamic.met and static.speedup > dynamic.speedup, [t.short_metric() for t in trials]
    notes: list[str] = []
    pick, confirmed = confirmed_pick(trials, notes, judging, pipeline, model, base)
    assert notes[0].startswith(static.run.run_id) and "next-fastest" in notes[0], notes
    # dynamic INT8 is the next pick only where it runs measurably faster than FP32 (it quantizes one layer)
    assert (pick is dynamic and confirmed.met and confirmed.samples == 200) if dynamic.pays else pick is None
    # a sweep with --confirm: the same rule (1 point of top-1 agreement is 0.99), the same runs from the store
    sweep = Sweep(str(model), base, precisions=("int8", "int8-dynamic"), accuracy_budget=1.0,
                  confirm=judging.confirm_data).run(pipeline)
    assert sweep.confirm_notes[0].startswith(static.run.run_id)
    if sweep.recommended is not None:  # a sweep, too, recommends only a variant measurably faster than FP32
        assert sweep.recommended.run_id == dynamic.run.run_id and sweep.to_dict()["confirm"]["samples"] == 200
    else:
        assert "keep FP32" in sweep.reason and not dynamic.run.measurably_faster


def top3_agreement(reference, variant, labels) -> float:
    ref, var = reference["logits"], variant["logits"]
    return float(np.mean([set(np.argsort(-r)[:3]) == set(np.argsort(-v)[:3]) for r, v in zip(ref, var, strict=True)]))


def test_a_users_metric_is_judged_on_all_the_data(tmp_path: Path):
    """A user's metric keeps no per-sample figures: the search judges it on all the data, and says so."""
    pipeline, model = Pipeline(tmp_path / "ws"), sample("digits_cnn")
    base = BuildOptions(batch=8, repeats=3, metric=top3_agreement, budget=0.5, eval=digits("digits_cnn", 40, False))
    base, judging = prepare(model, base, pipeline, exclude_unstable=True)
    assert judging.confirm is None and len(judging.search) == 40 and not len(judging.excluded)
    assert any(note.startswith("a custom metric is judged on all") for note in judging.notes)
    run = pipeline.run(model, base.replace(precision="int8"))
    assert judging.search_score(run.drift).value == run.drift["task"]["value"]
