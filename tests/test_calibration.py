"""Calibration streams batch by batch, is cached per model/data/method, and refuses what memory cannot hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO, sample
from onnxruntime.quantization.calibrate import CalibrationDataReader, create_calibrator, load_tensors_data

from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.errors import DataError
from workbench.precision.calibration import calibration_ranges, op_types_calibrated
from workbench.precision.int8 import prepared_model
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline


def calib_set(name: str) -> Dataset:
    with np.load(sample(name).parent / "calib.npz") as data:
        return Dataset({"input": data["input"]}, None, "calib.npz")


class _All(CalibrationDataReader):
    def __init__(self, data: Dataset) -> None:
        self.feeds = iter([data.inputs])

    def get_next(self):
        return next(self.feeds, None)


def test_streamed_minmax_ranges_equal_one_pass_over_the_whole_set(tmp_path: Path):
    data = calib_set("digits_resnet")
    prepared, _ = prepared_model(sample("digits_resnet"), tmp_path)
    path, notes = calibration_ranges(prepared, data, "minmax", tmp_path)
    streamed = load_tensors_data(path)
    whole = create_calibrator(prepared, op_types_calibrated(), str(tmp_path / "aug.onnx"))
    whole.collect_data(_All(data))
    expected = whole.compute_data()
    assert set(streamed.keys()) == set(expected.keys())
    for name in expected:
        assert np.allclose(streamed[name].range_value, expected[name].range_value), name
    assert "streamed over 128 samples" in notes[0]


def test_ranges_are_computed_once_and_reused_by_every_build(tmp_path: Path):
    pipeline = Pipeline(tmp_path / "ws")
    base = BuildOptions("int8", repeats=2, recipe=Recipe(calib_method="percentile"))
    first = pipeline.run(sample("digits_cnn"), base)
    node = next(n for n in onnx.load(str(sample("digits_cnn"))).graph.node if n.op_type == "Conv").name
    second = pipeline.run(sample("digits_cnn"), base.with_recipe(exclude_nodes=(node,),
                                                                 activations="s8", symmetric=True))
    assert any("streamed" in note for note in first.notes)
    assert any("ranges reused" in note for note in second.notes)
    assert any("S8 activations (symmetric)" in note for note in second.notes)
    assert second.run_id != first.run_id and len(list((tmp_path / "ws" / "calibration").glob("ranges-*"))) == 1


def test_calibration_refuses_when_one_sample_does_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORKBENCH_MEMORY_GB", "0.01")
    prepared, _ = prepared_model(sample("digits_cnn"), tmp_path)
    with pytest.raises(DataError, match=r"GB .*raise WORKBENCH_MEMORY_GB"):
        calibration_ranges(prepared, calib_set("digits_cnn"), "entropy", tmp_path)


def test_json_stays_valid_with_histogram_calibration(cli_env: dict[str, str]):
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "run", str(sample("digits_cnn")), "--precision", "int8",
         "--calib-method", "entropy", "--repeats", "2", "--json"],
        capture_output=True, text=True, env={**cli_env, "PYTHONPATH": str(REPO)}, cwd=REPO, check=True)
    assert json.loads(done.stdout)["spec"]["calib_method"] == "entropy"


def test_per_layer_drift_refuses_when_one_sample_does_not_fit(monkeypatch: pytest.MonkeyPatch):
    from workbench.workflows.layer_drift import layer_drift

    monkeypatch.setenv("WORKBENCH_MEMORY_GB", "0.01")
    model = sample("digits_cnn")
    with np.load(model.parent / "eval.npz") as data:
        evaluation = Dataset({"input": data["input"][:4]}, None, "eval")
    with pytest.raises(DataError, match=r"Per-layer drift holds every tensor .* raise WORKBENCH_MEMORY_GB"):
        layer_drift(model, model, evaluation)
