"""`workbench profile` as a user runs it: one JSON object on stdout, errors in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sample

from workbench.cli.main import main
from workbench.runs.pipeline import Pipeline
from workbench.runs.saved_tables import LAYER_DRIFT, load_run_table


def test_profile_json(capsys, cnn: Path):
    code = main(["profile", str(cnn), "--precision", "int8", "--repeats", "10", "--warmup", "2", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["end_to_end_ms"] > 0 and data["layer_sum_ms"] > 0
    assert data["ratio"] == pytest.approx(data["layer_sum_ms"] / data["end_to_end_ms"])
    layers = data["layers"]
    assert layers and {"name", "op_type", "precision", "time_ms", "share"} <= set(layers[0])
    assert sum(layer["time_ms"] for layer in layers) == pytest.approx(data["layer_sum_ms"])
    assert "QLinearConv" in {layer["op_type"] for layer in layers}
    assert {layer["precision"] for layer in layers} == {"INT8"}
    assert data["gap"][0]["component"] == "kernels (layer sum)"


def test_profile_text_and_batch(capsys, cnn: Path):
    assert main(["profile", str(cnn), "--batch", "4", "--repeats", "5", "--warmup", "2"]) == 0
    out = capsys.readouterr().out
    assert "batch 4" in out and "layer sum" in out and "ratio" in out


def test_profile_rejects_a_file_that_is_not_onnx(tmp_path: Path, cli_env: dict[str, str]):
    bad = tmp_path / "model.onnx"
    bad.write_text("not a model")
    result = subprocess.run([sys.executable, "-m", "workbench", "profile", str(bad), "--json"],
                            capture_output=True, text=True, env=cli_env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_drift_and_sensitivity_commands(capsys):
    model = str(sample("digits_cnn"))
    assert main(["drift", model, "--precision", "int8", "--samples", "8", "--json"]) == 0
    drift = json.loads(capsys.readouterr().out)
    assert drift["layers"] and "local_sqnr_db" in drift["layers"][0]
    saved = load_run_table(Pipeline().workspace.load_run(drift["run_id"]), LAYER_DRIFT)  # the report finds it
    assert saved is not None and len(saved) == len(drift["layers"])
    # sensitivity is the old name of tune: the same search, the same JSON
    code = main(["sensitivity", model, "--backend", "onnxruntime-cpu", "--budget", "5", "--repeats", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["recommended"] else 1)
    assert result["trials"][0]["metric"]["met"] and result["trials"][0]["kept_nodes"] == []
