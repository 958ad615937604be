"""One declaration of each build option: the dataclass, the CLI group that builds it, and the
commands that take it whole."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.build_options import BuildOptionsArgs
from workbench.cli.main import build_parser
from workbench.errors import DataError
from workbench.recipe import QUANT_OPTIONS, Recipe
from workbench.runs.sweep import Sweep

REPO = Path(__file__).resolve().parents[1]
#: Fields only Python callers set: an image preprocessing (an object; the Build panel has its fields), and how a
#: search spends its time (tune sets its bar, a build's time cap and a trial's timing cap itself).
PYTHON_ONLY = {"preprocess", "timing_bar", "build_time_cap", "timing_cap"}


def command_flags(name: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {flag for action in sub.choices[name]._actions for flag in action.option_strings}


def test_every_field_but_python_only_ones_has_a_flag_that_sets_it() -> None:
    group = BuildOptionsArgs()
    parser = argparse.ArgumentParser()
    group.add_parser_args(parser)
    defaults = group.parse(parser.parse_args([]))
    assert defaults == BuildOptions()
    changed = group.parse(parser.parse_args([
        "--precision", "int8", "--prune-method", "channel", "--prune-ratio", "0.5", "--no-repair",
        "--calib", "c.npz", "--calib-method", "entropy", "--per-tensor", "--eval", "e.npz",
        "--backend", "openvino", "--backend-option", "threads=2", "--batch", "8", "--warmup", "2",
        "--repeats", "7", "--exclude", "a", "--exclude", "b", "--task", "raw",
        "--metric", "m:f", "--budget", "0.9", "--confidence", "0.9", "--quant-option", "activations=s8",
        "--quant-option", "symmetric=true",
        "--quant-option", "percentile=99.9", "--quant-option", "ops=compute",
        "--quant-option", "reduce_range=true", "--quant-option", "block_size=32",
        "--quant-option", "weight_symmetric=true", "--quant-option", "weight_algorithm=awq",
        "--quant-option", "accuracy_level=4", "--quant-option", "keep_last=false", "--quant-option", "int4_ratio=0.8",
        "--quant-option", "backup=fp32", "--quant-option", "weight_writer=nncf",
    ]))
    fields = {f.name for f in dataclasses.fields(BuildOptions)}
    moved = {name for name in fields if getattr(changed, name) != getattr(defaults, name)}
    assert moved == fields - PYTHON_ONLY
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    moved = {name for name in recipe_fields if getattr(changed.recipe, name) != getattr(defaults.recipe, name)}
    assert moved == recipe_fields - {"quantizer", "max_drop"}  # each quantizer takes its own options: set below
    assert group.parse(parser.parse_args(["--quantizer", "nncf"])).recipe.quantizer == "nncf"
    control = group.parse(parser.parse_args(["--quantizer", "openvino-accuracy-control", "--quant-option",
                                             "max_drop=0.02"])).recipe
    assert control.quantizer == "openvino-accuracy-control" and control.max_drop == 0.02
    assert changed.recipe.exclude_nodes == ("a", "b") and dict(changed.backend_options) == {"threads": "2"}
    assert changed.recipe.options_for("int8") == {"activations": "s8", "symmetric": True, "percentile": 99.9,
                                                  "ops": "compute", "reduce_range": True}
    assert changed.recipe.options_for("int4-weights") == {
        "block_size": 32, "weight_symmetric": True, "weight_algorithm": "awq", "accuracy_level": 4,
        "keep_last": False, "int4_ratio": 0.8, "backup": "fp32", "weight_writer": "nncf"}


def test_quant_options_are_checked_once_with_a_message_naming_the_choices() -> None:
    assert set(QUANT_OPTIONS) == {"activations", "symmetric", "percentile", "ops", "reduce_range", "max_drop",
                                  "block_size", "weight_symmetric", "weight_algorithm", "accuracy_level", "keep_last",
                                  "int4_ratio", "backup", "weight_writer"}
    with pytest.raises(DataError, match="Unknown quantization option 'bits'"):
        Recipe().with_options({"bits": "4"})
    with pytest.raises(DataError, match="activations='u16' is not one of u8, s8"):
        Recipe(activations="u16")
    with pytest.raises(DataError, match="outside"):
        Recipe().with_options({"percentile": "100.5"})
    with pytest.raises(DataError, match="NNCF chooses its own"):
        Recipe(quantizer="nncf", percentile=99.9)
    assert Recipe(quantizer="nncf", ops="compute").ops == "compute"  # NNCF's writers honour it (by op type)
    assert Recipe(quantizer="nncf", reduce_range=False).reduce_range is False  # 8 bits may be forced for NNCF's file
    with pytest.raises(DataError, match="reduce_range are for"):
        Recipe(quantizer="openvino-native", reduce_range=True)  # OpenVINO's own INT8 keeps NNCF's defaults
    with pytest.raises(DataError, match="ops are for"):
        Recipe(quantizer="openvino-accuracy-control", ops="compute")
    with pytest.raises(DataError, match="max_drop are for openvino-accuracy-control"):
        Recipe(max_drop=0.1)
    with pytest.raises(DataError, match="Unknown calibration method 'kl'"):
        Recipe(calib_method="kl")
    with pytest.raises(DataError, match="Unknown precision 'int4'"):
        BuildOptions("int4")
    with pytest.raises(DataError, match="without a pruning method"):
        BuildOptions(prune_ratio=0.5)
    assert Recipe(symmetric=False).options() == {"symmetric": False} and Recipe(ops="all").options() == {}
    # Each option shapes its own precisions' files: the static ones INT8, the weight-only ones the weight precisions.
    mixed = Recipe(ops="compute").with_options({"int4_ratio": "0.5", "keep_last": "false"})
    assert mixed.options_for("int8") == {"ops": "compute"}
    assert mixed.options_for("int4-weights") == {"int4_ratio": 0.5, "keep_last": False}
    assert mixed.options_for("int8-weights") == {"keep_last": False}
    with pytest.raises(DataError, match="weight_algorithm='gptq4' is not one of rtn, awq, gptq, hqq"):
        Recipe().with_options({"weight_algorithm": "gptq4"})


def test_tune_takes_the_build_flags_the_search_does_not_set() -> None:
    searched = {"--precision", "--calib-method", "--per-tensor", "--quant-option", "--quantizer", "--exclude"}
    assert command_flags("run") - {"--force"} - searched <= command_flags("tune")
    assert not searched & command_flags("tune")


def test_a_tuned_recipe_reproduces_from_the_command_line(cnn: Path, tmp_path: Path) -> None:
    """A tune trial's S8 symmetric recipe is a `workbench run` command that rebuilds the same run."""
    import shlex

    from workbench.report.reproduce import reproduce_command
    from workbench.runs.pipeline import Pipeline

    options = BuildOptions("int8", batch=4, repeats=1, recipe=Recipe(activations="s8", symmetric=True))
    run = Pipeline(tmp_path / "ws").run(cnn, options)
    command = shlex.split(reproduce_command(run))
    assert command.count("--quant-option") == 2
    group = BuildOptionsArgs()
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    group.add_parser_args(parser)
    again = group.parse(parser.parse_args(command[2:]))
    assert again.recipe == options.recipe and again.precision == "int8"


def test_a_sweep_accepts_every_option_run_accepts() -> None:
    axes = {"--precision": "--precisions", "--prune-method": "--prune-methods", "--prune-ratio": "--prune-ratios"}
    run_only = {"--force"}  # a sweep reuses stored cells by design
    expected = {axes.get(flag, flag) for flag in command_flags("run") - run_only}
    assert expected <= command_flags("sweep")


def test_profile_and_drift_take_the_same_build_flags_as_run() -> None:
    shared = command_flags("run") - {"--force"}
    assert shared <= command_flags("profile") and shared <= command_flags("drift")


def test_a_grid_is_the_base_options_with_precision_and_pruning_replaced(cnn: Path) -> None:
    base = BuildOptions(repair=False, recipe=Recipe(exclude_nodes=("x",)), batch=4, backend_options={"threads": "1"})
    sweep = Sweep(str(cnn), base, ["fp32", "int8"], ["channel"], [0, 0.5])
    grid = sweep.grid()
    assert [(o.precision, o.prune_method, o.prune_ratio) for o in grid] == [
        ("fp32", None, 0.0), ("fp32", "channel", 0.5), ("int8", None, 0.0), ("int8", "channel", 0.5)]
    assert all(dataclasses.replace(o, precision="fp32", prune_method=None, prune_ratio=0.0) == base for o in grid)


def test_options_are_frozen_and_checked() -> None:
    options = BuildOptions("int8", recipe=Recipe(exclude_nodes=["a", "a"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.precision = "fp16"  # type: ignore[misc]
    assert options.recipe.exclude_nodes == ("a",)
    with pytest.raises(TypeError):
        options.backend_options["threads"] = "2"  # type: ignore[index]
    with pytest.raises(DataError, match="Batch 0"):
        BuildOptions(batch=0)


def test_workbench_profile_profiles_the_pruned_variant(cnn: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "profile", str(cnn), "--prune-method", "channel", "--prune-ratio", "0.5",
         "--repeats", "5", "--warmup", "2", "--workspace", str(tmp_path / "ws"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    run = json.loads(subprocess.run(
        [sys.executable, "-m", "workbench", "show", data["run_id"], "--workspace", str(tmp_path / "ws"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=120).stdout)
    assert run["spec"]["prune_method"] == "channel" and run["spec"]["prune_ratio"] == 0.5
    assert data["model"] == run["artifact"] and data["layers"]
