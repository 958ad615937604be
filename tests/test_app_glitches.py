"""Small things a new user trips over in the app and the CLI, each checked the way they meet it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.errors import ModelError
from workbench.model.loader import load_model
from workbench.runs.pipeline import Pipeline
from workbench.runs.sweep import Sweep
from workbench.tasks import task_score
from workbench.ui.app import Workbench
from workbench.ui.build_panel import with_help
from workbench.workflows.profile import profile_model


def test_the_panels_say_what_is_open_and_what_each_choice_means(cnn: Path, resnet: Path) -> None:
    app = Workbench(cnn)
    build = app.build
    assert build.task.label == "guess from the outputs" and build.options().task is None
    assert len(build.eval_path.placeholder) <= 36  # fits the box; the rest is in the hint under it
    help_html = with_help(build.calib_method, "minmax", "entropy", "percentile").children[1].value
    for term in ("minmax", "entropy", "percentile"):
        assert f"{term}<span" in help_html  # each "?" follows the name of its choice
    opened = next(value for label, value in app.model.sample.options if "digits_resnet" in label)
    app.model.open(opened)
    assert app.model.sample.value == opened  # the dropdown names the model that is open
    assert "Open a model" not in app.graph.message.value
    assert "model.onnx." not in app.sweep_panel.status.value and "digits_resnet" in app.sweep_panel.status.value


def test_a_missing_file_is_explained_for_every_face(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        load_model(tmp_path / "nope.onnx")
    assert "Model panel" not in str(error.value) and ".onnx file" in str(error.value)


def test_two_recipes_never_share_a_label(cnn: Path, workspace: Path) -> None:
    run = Pipeline(workspace).run(cnn, BuildOptions("int8", repeats=3))
    compute = dataclasses.replace(run, spec=dataclasses.replace(run.spec, quant_options=(("ops", "compute"),)))
    assert run.label == "int8 · b1" and compute.label == "int8 · ops=compute · b1"
    assert "within 1 point of FP32" in task_score(run.drift).rule or task_score(run.drift).metric != "accuracy"


def test_a_sweep_shows_the_verdicts_its_pick_obeys(cnn: Path, workspace: Path) -> None:
    result = Sweep(str(cnn), BuildOptions(repeats=3), precisions=("int8",), accuracy_budget=0.5).run(
        Pipeline(workspace))
    score = task_score(result.runs[0].drift)
    if score.metric == "accuracy":
        assert score.threshold == pytest.approx(score.details["reference_accuracy"] - 0.005)
    else:
        assert score.threshold == pytest.approx(0.995)


def test_an_openvino_profile_names_its_own_gap_rows(cnn: Path) -> None:
    pytest.importorskip("openvino")
    profile = profile_model(cnn, BuildOptions("fp32", backend="openvino", repeats=5))
    components = list(profile.gap_table()["component"])
    assert not any("ORT" in component for component in components)
    if profile.layer_sum_ms > profile.end_to_end_ms:
        assert any("layer sum" in note for note in profile.notes)  # a sum above the total is explained
