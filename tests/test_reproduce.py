"""The reproduce command is the CLI option group's inverse: every choice of a run comes back as flags, and
running the command returns the same run id."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from workbench.build_options import BuildOptions
from workbench.cli.build_options import BuildOptionsArgs
from workbench.recipe import Recipe
from workbench.report.reproduce import options_of, reproduce_command
from workbench.runs.pipeline import Pipeline

METRIC = '''
import numpy as np


def agreement(reference, variant, labels):
    """Share of samples whose top class is unchanged, for a classifier with one output."""
    ref, var = next(iter(reference.values())), next(iter(variant.values()))
    return float(np.mean(ref.argmax(axis=-1) == var.argmax(axis=-1)))
'''


def _parse(args: list[str]) -> BuildOptions:
    group = BuildOptionsArgs()
    parser = argparse.ArgumentParser()
    group.add_parser_args(parser)
    return group.parse(parser.parse_args(args))


def test_to_args_is_the_inverse_of_parse() -> None:
    options = BuildOptions(
        "int8", prune_method="channel", prune_ratio=0.3, repair=False, calib="c.npz", eval="random:16",
        recipe=Recipe(calib_method="percentile", per_channel=False, exclude_nodes=("a", "b"), activations="s8",
                      symmetric=False, percentile=99.95, ops="compute"),
        backend="openvino", backend_options={"threads": "2"}, batch=4, warmup=1, repeats=3, task="raw",
        metric="m:f", budget=0.25, confidence=0.99)
    assert _parse(BuildOptionsArgs().to_args(options)) == options
    assert _parse(BuildOptionsArgs().to_args(BuildOptions())) == BuildOptions()
    nncf = BuildOptions("int8", recipe=Recipe(quantizer="nncf"))
    assert _parse(BuildOptionsArgs().to_args(nncf)) == nncf


@pytest.fixture
def metric_module(tmp_path: Path) -> Path:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "reproduce_metric.py").write_text(METRIC)
    sys.modules.pop("reproduce_metric", None)  # a module of that name imported earlier would stand in for it
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("reproduce_metric", None)


def test_every_option_reproduces_the_same_run_id(cnn: Path, tmp_path: Path, metric_module: Path) -> None:
    """Task, metric, budget, quantization options, kept nodes, backend options and pruning, each through
    the reproduce command of a stored run and back to the same run id."""
    pipeline = Pipeline(tmp_path / "ws")
    conv = next(node.name for node in onnx.load(str(cnn)).graph.node if node.op_type == "Conv")
    quick = {"batch": 8, "warmup": 0, "repeats": 2}
    runs = [
        pipeline.run(cnn, BuildOptions(
            "int8", prune_method="channel", prune_ratio=0.25, recipe=Recipe(
                calib_method="percentile", percentile=99.9, activations="s8", symmetric=True, ops="compute",
                reduce_range=True,
                exclude_nodes=(conv,)), backend_options={"threads": "1"}, task="classification",
            metric="reproduce_metric:agreement", budget=0.5, **quick)),
        pipeline.run(cnn, BuildOptions("int8-dynamic", prune_method="magnitude", prune_ratio=0.5, repair=False,
                                       recipe=Recipe(per_channel=False), eval="random:16", task="raw", budget=0.9,
                                       **quick)),
    ]
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(tmp_path / "ws"),
           "PYTHONPATH": os.pathsep.join([str(metric_module), os.environ.get("PYTHONPATH", "")])}
    for run in runs:
        command = shlex.split(reproduce_command(run))
        for flag in ("--task", "--budget", "--backend", "--batch"):
            assert flag in command, (flag, command)
        assert options_of(run).budget == run.measurement["budget"]
        done = subprocess.run([sys.executable, "-m", "workbench", *command[1:], "--json"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["run_id"] == run.run_id, command
    first = shlex.split(reproduce_command(runs[0]))
    assert {"--metric", "--exclude", "--backend-option", "--prune-method", "--calib-method"} <= set(first)
    assert first.count("--quant-option") == 5
