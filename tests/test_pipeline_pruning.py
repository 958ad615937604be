"""Pruning inside the pipeline: composed with precision, repaired on calibration data, cached, refused clearly."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.model.flops import node_flops
from workbench.report.reproduce import reproduce_command
from workbench.runs.pipeline import Pipeline
from workbench.runs.prune_step import PRUNED_LAYERS


def _conv_channels(path: str | Path) -> list[int]:
    model = onnx.load(str(path))
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    return [weights[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]


def test_channel_pruned_resnet_is_smaller_repaired_and_measured_against_unpruned_fp32(resnet: Path) -> None:
    pipeline = Pipeline()
    run = pipeline.run(resnet, BuildOptions("fp32", batch=8, repeats=5, prune_method="channel", prune_ratio=0.5))
    original = onnx.load(str(resnet))
    assert run.spec.prune_method == "channel" and run.spec.prune_ratio == 0.5 and run.spec.prune_repair
    assert sum(_conv_channels(run.artifact)) < sum(_conv_channels(resnet))
    assert run.model_gflops < 0.5 * sum(node_flops(original).values()) / 1e9
    # The reference is the unpruned FP32 model: its outputs differ from the pruned variant's.
    assert run.drift["max_abs_error"] > 0 and run.drift["reference_accuracy"] > 0.95
    repair = next(n for n in run.notes if n.startswith("repair on calibration data"))
    before, after = (float(x.rstrip("%")) for x in repair.split("accuracy ")[1].split(" after")[0].split("% before, "))
    assert after >= before
    # Pruned + INT8 composes: the same pruned file is quantized with the same calibration data.
    int8 = pipeline.run(resnet, BuildOptions("int8", batch=8, repeats=5, prune_method="channel", prune_ratio=0.5))
    assert any(n.startswith("pruned (channel)") for n in int8.notes)
    assert any("static INT8" in n for n in int8.notes)
    types = {n.op_type for n in onnx.load(int8.artifact).graph.node}
    assert "QuantizeLinear" in types and int8.model_gflops == pytest.approx(run.model_gflops)


def test_no_repair_keeps_the_pruned_weights(cnn: Path) -> None:
    pipeline = Pipeline()
    repaired = pipeline.run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5))
    plain = pipeline.run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5,
                                                   repair=False))
    assert repaired.run_id != plain.run_id
    assert not any(n.startswith("repair") for n in plain.notes)
    assert _conv_channels(plain.artifact) == _conv_channels(repaired.artifact)


def test_magnitude_pruning_says_it_buys_no_speed(cnn: Path) -> None:
    run = Pipeline().run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="magnitude", prune_ratio=0.5))
    assert any("no speed" in n or "just as long" in n for n in run.notes)
    assert _conv_channels(run.artifact) == _conv_channels(cnn)


def test_ratio_zero_is_the_unpruned_run(cnn: Path) -> None:
    pipeline = Pipeline()
    plain = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=3))
    zero = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=3, prune_method="channel", prune_ratio=0.0))
    assert zero.run_id == plain.run_id and zero.spec.prune_method is None


@pytest.mark.parametrize(("method", "ratio", "words"), [
    ("channel", 1.0, "outside [0, 1)"),
    ("channel", -0.1, "outside [0, 1)"),
    ("channel", "half", "not a number"),
    (None, 0.5, "without a pruning method"),
    ("random", 0.5, "Unknown pruning method"),
])
def test_bad_pruning_choices_are_refused_before_any_work(cnn: Path, workspace: Path, method, ratio, words) -> None:
    with pytest.raises(WorkbenchError, match=words.replace("[", r"\[").replace(")", r"\)")):
        Pipeline().run(cnn, BuildOptions("fp32", prune_method=method, prune_ratio=ratio))
    assert not any((workspace / "artifacts").glob("*/*"))


def test_cli_prune_records_method_and_ratio_in_spec(cnn: Path, cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "run", str(cnn), "--prune-method", "channel", "--prune-ratio", "0.25",
         "--batch", "8", "--repeats", "3", "--json"],
        capture_output=True, text=True, env=cli_env, timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["spec"]["prune_method"] == "channel" and data["spec"]["prune_ratio"] == 0.25
    assert data["speedup"] > 0 and data["drift"]["reference_accuracy"] is not None
    bad = subprocess.run([sys.executable, "-m", "workbench", "run", str(cnn), "--prune-method", "channel",
                          "--prune-ratio", "1.5"], capture_output=True, text=True, env=cli_env, timeout=600)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) <= 2 and "[0, 1)" in bad.stderr


def test_repair_with_other_calibration_data_is_a_new_build(cnn: Path, tmp_path: Path) -> None:
    pipeline = Pipeline()
    first = pipeline.run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5))
    with np.load(cnn.parent / "calib.npz") as data:
        half = {k: data[k][: len(data[k]) // 2] for k in data.files}
    np.savez(tmp_path / "half.npz", **half)
    second = pipeline.run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5,
                                                    calib=tmp_path / "half.npz"))
    assert second.run_id != first.run_id and Path(second.artifact).parent != Path(first.artifact).parent


def test_precisions_built_on_one_pruning_share_its_prune_and_repair(cnn: Path, workspace: Path) -> None:
    pipeline = Pipeline()
    fp32 = pipeline.run(cnn, BuildOptions("fp32", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5))
    int8 = pipeline.run(cnn, BuildOptions("int8", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5))
    assert "pruned model reused from the workspace cache" not in fp32.notes
    assert "pruned model reused from the workspace cache" in int8.notes
    assert fp32.tables[PRUNED_LAYERS] == int8.tables[PRUNED_LAYERS]
    layers = pd.read_json(fp32.tables[PRUNED_LAYERS], orient="records")
    assert {"name", "out_channels_before", "out_channels_after"} <= set(layers.columns)
    # The shared folder lives while a run lists it, and gc takes it once none does.
    folder = Path(fp32.tables[PRUNED_LAYERS]).parent
    workspace_ = pipeline.workspace
    assert str(folder) not in workspace_.gc(min_age_s=0).paths and folder.is_dir()
    workspace_.delete_run(fp32.run_id)
    assert folder.is_dir()  # the INT8 run still uses it
    workspace_.delete_run(int8.run_id)
    workspace_.gc(min_age_s=0)
    assert not folder.exists()


@pytest.mark.parametrize("repair", [True, False])
def test_the_reproduce_command_rebuilds_the_same_pruned_run(cnn: Path, cli_env: dict[str, str], repair: bool) -> None:
    run = Pipeline().run(cnn, BuildOptions("int8", batch=8, repeats=3, prune_method="channel", prune_ratio=0.5,
                                              repair=repair))
    command = shlex.split(reproduce_command(run))
    assert command[:2] == ["workbench", "run"] and ("--no-repair" in command) is not repair
    result = subprocess.run([sys.executable, "-m", "workbench", *command[1:], "--repeats", "3", "--json"],
                            capture_output=True, text=True, env=cli_env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run_id"] == run.run_id
