"""The accuracy-aware search on real sample models: it meets a budget plain INT8 misses, explains itself,
only touches nodes the quantizer changed, keeps to its time budget, and prints the documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from conftest import REPO, sample

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.progress import Progress
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.workflows.tune import tune
from workbench.workflows.tune_graph import (
    activation_fed_products,
    changed_by_exclusion,
    compute_depth_to_output,
    fragile_nodes,
)
from workbench.workflows.tune_runner import TrialRunner
from workbench.workflows.tune_trials import NamedRecipe, Trial

CPU = ["onnxruntime-cpu"]


def test_search_meets_a_budget_that_plain_int8_misses(tmp_path: Path):
    """digits_outlier: one hidden unit 500x the others; plain INT8 collapses to chance, the search repairs it."""
    pipeline = Pipeline(tmp_path / "ws")
    result = tune(sample("digits_outlier"), BuildOptions(batch=8, repeats=3), backends=CPU, pipeline=pipeline)
    plain = next(t for t in result.trials if t.recipe.name == "default")
    assert not plain.met
    passing = [t for t in result.trials if t.met]
    assert passing, result.explain()
    best = passing[0]
    assert best.kept_nodes and best.score.value >= best.score.threshold > plain.score.value
    assert any("->" in step for step in result.steps)  # what each step bought
    assert all(pipeline.workspace.load_run(t.run.run_id) is not None for t in result.trials)
    best = result.recommended
    assert (best is None) == (not any(t.pays for t in result.trials)), result.explain()
    assert best is None or (best.met and best.pays and best.speedup == max(t.speedup for t in result.trials if t.pays))
    # the last step describes the pick it returns, kept nodes included
    assert best is None or (result.steps[-1].startswith(f"picked {best.run.label}")
                            and f"{len(best.kept_nodes)} node(s) kept in FP32" in result.steps[-1])
    assert not any("did not pay" in step for step in result.steps)


def test_fall_back_candidates_are_only_nodes_the_quantizer_changed(tmp_path: Path):
    pipeline = Pipeline(tmp_path / "ws")
    model = sample("digits_vit")
    run = pipeline.run(model, BuildOptions("int8-dynamic", repeats=1))
    prepared = onnx.load(run.quantized_from)
    built = onnx.load(run.artifact)
    changed = changed_by_exclusion(prepared, built)
    types = {n.name: n.op_type for n in prepared.graph.node}
    assert changed and {types[name] for name in changed} <= {"MatMul", "Gemm", "Gather"}
    untouched = next(n.name for n in prepared.graph.node if n.op_type == "LayerNormalization")
    same = pipeline.run(model, BuildOptions("int8-dynamic", repeats=1, recipe=Recipe(exclude_nodes=(untouched,))))
    assert [n.op_type for n in onnx.load(same.artifact).graph.node] == [n.op_type for n in built.graph.node]


def test_fragile_nodes_name_real_layers():
    vit = onnx.load(str(sample("digits_vit")))
    reasons = fragile_nodes(vit, "classification")
    fragile = next(nodes for reason, nodes in reasons.items() if reason.startswith("fragile op types"))
    assert {n.op_type for n in vit.graph.node if n.name in fragile} >= {"Softmax", "LayerNormalization", "Erf"}
    (classifier,) = reasons["classifier Gemm"]
    last = next(n for n in vit.graph.node if n.name == classifier)
    assert last.op_type == "Gemm" and last.output[0] == vit.graph.output[0].name
    cnn = onnx.load(str(sample("digits_cnn")))
    depth = compute_depth_to_output(cnn.graph)
    assert depth[cnn.graph.node[0].name] > depth[cnn.graph.node[-1].name] >= 1
    head = fragile_nodes(cnn, "detection")["the last layers before the detection decode"]
    assert cnn.graph.node[-1].name in head and cnn.graph.node[0].name not in head


def test_the_ffn_outputs_of_a_transformer_are_the_products_an_activation_feeds():
    vit = onnx.load(str(sample("digits_vit")))
    fed = activation_fed_products(vit)
    by_name = {n.name: n for n in vit.graph.node}
    blocks = {n.name.split("/mlp/")[0] for n in vit.graph.node if "/mlp/" in n.name}
    assert len(fed) == len(blocks) >= 2 and all(by_name[name].op_type == "MatMul" and "/mlp/" in name for name in fed)
    assert activation_fed_products(onnx.load(str(sample("digits_cnn")))) == []  # ReLU is no smooth activation


def test_time_budget_stops_the_search_between_trials(tmp_path: Path):
    result = tune(sample("digits_cnn"), BuildOptions(repeats=1), backends=CPU, time_budget=0.001,
                  pipeline=Pipeline(tmp_path / "ws"))
    assert result.trials == [] and result.recommended is None
    assert any("time budget" in note for note in result.notes)
    with pytest.raises(WorkbenchError, match="Time budget"):
        tune(sample("digits_cnn"), time_budget=0)


def test_a_trial_that_would_end_past_the_budget_is_not_started(tmp_path: Path):
    """On a slow CPU one trial of a large model takes a minute: the budget is kept by not starting a trial like the
    earlier ones when it would end past the budget, not by overrunning it with one more."""
    pipeline = Pipeline(tmp_path / "ws")
    options = BuildOptions(batch=8, repeats=1)
    run = pipeline.run(sample("digits_cnn"), options)
    runner = TrialRunner(sample("digits_cnn"), options, pipeline, 60.0, Progress())
    assert not runner.would_overrun(CPU[0])  # nothing measured yet: the first trial always runs
    runner.add(Trial("recipe", "static INT8", NamedRecipe("default", "int8"), (), run, 0.1))
    assert runner.expected_cost(CPU[0]) == 0.0  # a run found again costs nothing, so it predicts nothing
    runner.add(Trial("recipe", "static INT8", NamedRecipe("default", "int8"), (), run, 90.0))
    assert runner.expected_cost(CPU[0]) == 90.0 and runner.would_overrun(CPU[0])
    assert runner.trial(CPU[0], runner.started + 60.0, "recipe", "dynamic INT8", NamedRecipe("d", "int8-dynamic")) \
        is None
    assert any("nearly reached" in note and "about 90 s" in note for note in runner.notes), runner.notes
    assert not runner.would_overrun("openvino")  # another engine's trials are its own
    # Each trial's timing gets a thirtieth of the budget (at least 5 s); from 600 s on, a run's own 20 s cap.
    assert runner.timing_cap() == 5.0
    assert TrialRunner(sample("digits_cnn"), options, pipeline, 300.0, Progress()).timing_cap() == 10.0
    assert TrialRunner(sample("digits_cnn"), options, pipeline, 600.0, Progress()).timing_cap() is None


def test_cli_prints_the_documented_json(cli_env: dict[str, str]):
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "tune", str(sample("digits_outlier")), "--backend", "onnxruntime-cpu",
         "--batch", "8", "--repeats", "3", "--json"],
        capture_output=True, text=True, env={**cli_env, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr
    data = json.loads(done.stdout)
    assert set(data) >= {"recommended", "trials", "baseline", "wall_s"}
    assert data["baseline"]["backend"] == "onnxruntime-cpu" and data["trials"]
    trial = data["trials"][0]
    assert set(trial["metric"]) >= {"name", "value", "budget", "met", "interval"}
    assert trial["metric"]["name"] == "accuracy"
    assert all(len(t["metric"]["interval"]) == 2 and t["metric"]["samples"] == 180 for t in data["trials"])
    assert set(data["stability"]) >= {"metric", "value", "how"} and data["split"]["confirm_samples"] == 180
    if data["recommended"] is not None:
        assert set(data["recommended"]) >= {"run_id", "backend", "precision", "speedup", "metric", "artifact",
                                            "kept_nodes", "recipe", "backend_options", "confirm"}
        assert Path(data["recommended"]["artifact"]).is_file() and data["recommended"]["metric"]["met"]
        assert set(data["recommended"]["metric"]) >= {"interval", "samples", "verdict", "samples_needed"}
        confirm = data["recommended"]["confirm"]
        assert confirm["samples"] == 180 and confirm["metric"]["met"] and confirm["metric"]["verdict"]
    assert (done.returncode == 0) == (data["recommended"] is not None)


def test_build_panel_search_and_python_api_share_the_search(tmp_path: Path):
    from workbench.ui.app import Workbench

    wb = Workbench(sample("digits_outlier"), tmp_path / "ws", task="classification")
    assert wb.build.task.value == "classification" and wb.build.options().task == "classification"
    wb.build.batch.value, wb.build.repeats.value = 8, 3
    result = wb.tune(wb.build.options(), time_budget=300, backends=CPU)
    assert any(t.met for t in result.trials) and "recommended:" in wb.build.status.value
    html = wb.results.table.value
    missed = sum(1 for run in wb.results.runs if run.drift["task"]["met"] is False)
    rule = next(part for part in html.split("}") if "#fdecea" in part)
    assert missed and rule.count("#T_") == missed * len(wb.results.frame().columns)  # every missing row in red
    with pytest.raises(WorkbenchError, match="Unknown task"):
        Workbench(task="segmentation")


def test_the_panels_confidence_and_search_samples_reach_the_search_and_every_run_it_builds(tmp_path: Path):
    """The Build panel's search, driven like a person: the level and the search's share set in their widgets are
    what the split, every trial's verdict and every stored run's verdict use; the level cannot leave [0.5, 1)."""
    from workbench.ui.app import Workbench

    assert Workbench(workspace=tmp_path / "ws", confidence=0.9).build.options().confidence == 0.9
    with pytest.raises(WorkbenchError, match="onfidence"):
        Workbench(confidence=1.5)
    wb = Workbench(sample("digits_cnn"), tmp_path / "ws")
    panel = wb.build
    panel.confidence.value = 1.0
    assert 0.5 <= panel.confidence.value < 1
    panel.batch.value, panel.repeats.value, panel.time_budget.value = 8, 3, 10
    panel.confidence.value, panel.search_samples.value = 0.8, 20
    panel.tune_button.click()
    assert wb.wait(300), "the search did not finish in five minutes"
    result = wb.last_tune.result
    assert result is not None, wb.last_tune.message
    split = result.to_dict()["split"]
    assert split["confidence"] == 0.8 and split["search_samples"] == 20 and split["reserve_samples"] == 180 - 20
    assert result.trials and all(trial.score.confidence == 0.8 for trial in result.trials)
    stored = [run.drift["task"] for run in wb.results.runs]
    assert stored and all(task["confidence"] == 0.8 for task in stored)
    shown = list(laid_out(panel.widget))
    assert panel.confidence in shown and panel.search_samples in shown


def laid_out(widget):
    """Every widget inside ``widget``, itself included: what the panel shows."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from laid_out(child)


def test_screen_covers_every_backend_and_compares_against_one_baseline(tmp_path: Path):
    """OpenVINO's FP32 and hint precisions join the search, and every speed-up is against ONNX Runtime's FP32."""
    pytest.importorskip("openvino")
    from workbench.workflows.tune_runner import precisions_for

    model = sample("digits_cnn")
    result = tune(model, BuildOptions(batch=8, repeats=3), backends=["onnxruntime-cpu", "openvino"],
                  time_budget=120, pipeline=Pipeline(tmp_path / "ws"))
    ov = [t for t in result.trials if t.backend == "openvino"]
    wanted = {"fp32", *precisions_for("openvino", onnx.load(str(model)))}
    assert {t.run.spec.precision for t in ov} >= wanted, result.explain()
    for trial in result.trials:
        assert trial.speedup == pytest.approx(trial.run.speedup_vs_baseline)
        assert trial.run.baseline_backend == "onnxruntime-cpu"
    data = result.to_dict()
    assert {"speedup", "speedup_same_backend"} <= set(data["trials"][0])
