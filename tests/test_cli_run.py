"""The `workbench run` contract relied on from outside: JSON keys, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import workbench


def test_run_json_contract(cnn: Path, cli_env: dict[str, str]) -> None:
    result = workbench("run", str(cnn), "--precision", "int8", "--calib", str(cnn.parent / "calib.npz"),
                       "--eval", str(cnn.parent / "eval.npz"), "--batch", "8", "--repeats", "5", "--json",
                       env=cli_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("run_id", "spec", "artifact", "latency_ms", "reference_latency_ms", "speedup", "drift"):
        assert key in data
    assert {"median", "p90"} <= set(data["latency_ms"]) and {"median", "p90"} <= set(data["reference_latency_ms"])
    assert {"top1_agreement", "accuracy", "reference_accuracy", "max_abs_error", "cosine_similarity"} <= set(
        data["drift"])
    assert data["spec"]["precision"] == "int8" and data["spec"]["batch"] == 8
    assert abs(data["speedup"] - data["reference_latency_ms"]["median"] / data["latency_ms"]["median"]) < 1e-9
    assert Path(data["artifact"]).is_file()


def test_run_judges_at_the_confidence_asked_and_refuses_a_level_outside_it(cnn: Path, cli_env: dict[str, str]) -> None:
    """The stored verdict's interval is drawn at --confidence; the same run asked at the default is re-judged at
    95% from the store; a level of 1 is refused in one line and the stored run survives."""
    from workbench.tasks.confidence import wilson

    flags = ("run", str(cnn), "--precision", "int8", "--batch", "8", "--repeats", "3", "--json")
    first = json.loads(workbench(*flags, "--confidence", "0.8", env=cli_env).stdout)["drift"]["task"]
    agreeing = round(first["value"] * first["samples"])
    assert first["confidence"] == 0.8 and first["interval"] == pytest.approx(list(wilson(agreeing, first["samples"],
                                                                                          0.8)))
    again = json.loads(workbench(*flags, env=cli_env).stdout)
    assert again["drift"]["task"]["confidence"] == 0.95 and again["measurement"]["confidence"] == 0.95
    assert again["drift"]["task"]["interval"] == pytest.approx(list(wilson(agreeing, first["samples"], 0.95)))
    refused = workbench(*flags, "--confidence", "1", env=cli_env)
    assert refused.returncode != 0 and refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a level" in lines[0] and "between 0.5 and 1" in lines[0]
    runs = json.loads(workbench("runs", "--json", env=cli_env).stdout)
    assert any(run["run_id"] == again["run_id"] for run in runs)


def test_text_file_fails_in_one_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    result = workbench("run", str(text), "--precision", "fp32", env=cli_env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "ONNX" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_debug_shows_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    result = workbench("--debug", "run", str(text), env=cli_env)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_wrong_shaped_calibration(tmp_path: Path, cnn: Path, cli_env: dict[str, str]) -> None:
    import numpy as np

    np.savez(tmp_path / "calib.npz", input=np.zeros((8, 1, 16, 16), np.float32))
    result = workbench("run", str(cnn), "--precision", "int8", "--calib", str(tmp_path / "calib.npz"), env=cli_env)
    assert result.returncode == 2
    assert "calibration array 'input' has samples of shape [1, 16, 16]" in result.stderr


def test_inspect_and_backends(cnn: Path, cli_env: dict[str, str]) -> None:
    inspect = json.loads(workbench("inspect", str(cnn), "--json", env=cli_env).stdout)
    assert inspect["inputs"][0]["shape"] == ["batch", 1, 32, 32]
    backends = json.loads(workbench("backends", "--json", env=cli_env).stdout)
    assert backends["onnxruntime-cpu"]["available"] is True


def test_every_command_prints_its_help(cli_env: dict[str, str]) -> None:
    from workbench.cli.main import COMMANDS

    helps = {}
    for name in (module.removeprefix("cmd_").replace("_", "-") for module in COMMANDS):
        result = workbench(name, "--help", env=cli_env)
        assert result.returncode == 0 and "usage:" in result.stdout, (name, result.stderr)
        helps[name] = result.stdout
    assert "faster on every backend" in " ".join(helps["run"].split())


def test_a_reader_that_goes_away_stops_the_command_quietly(cli_env: dict[str, str]) -> None:
    """`workbench ... --json | head`: the pipe closes before the output is written."""
    process = subprocess.Popen([sys.executable, "-m", "workbench", "backends", "--json"], env=cli_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(120) == 141
    assert stderr == ""
