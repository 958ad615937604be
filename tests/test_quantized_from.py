"""A run records the graph its quantizer actually saw, and the search and per-layer drift read it from the run:
for a pruned model (the pruned graph, not the file the user gave) and an old-opset model (upgraded to 13)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import onnx

from workbench.build_options import BuildOptions
from workbench.precision.int8 import default_opset
from workbench.progress import Progress
from workbench.runs.pipeline import Pipeline
from workbench.workflows.layer_drift import drift_for_run
from workbench.workflows.tune_runner import TrialRunner
from workbench.workflows.tune_trials import NamedRecipe

QUICK = {"batch": 8, "warmup": 0, "repeats": 2}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}


def _searched_nodes(model: Path, pipeline: Pipeline, options: BuildOptions) -> tuple[list[str], onnx.ModelProto]:
    """The nodes the search would keep in FP32 for a plain static INT8 trial, and the graph the run records."""
    runner = TrialRunner(model, options, pipeline, 600.0, Progress())
    trial = runner.trial("onnxruntime-cpu", math.inf, "recipe", "plain", NamedRecipe("default", "int8"))
    assert trial is not None and trial.run.quantized_from is not None
    return runner.quantized_nodes(trial), onnx.load(trial.run.quantized_from)


def _conv_channels(model: onnx.ModelProto) -> int:
    """Output channels of every convolution, summed: what channel pruning reduces."""
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    return sum(dims[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in dims)


def test_a_pruned_run_records_the_pruned_graph(cnn: Path, tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "ws")
    options = BuildOptions(prune_method="channel", prune_ratio=0.5, **QUICK)
    nodes, seen = _searched_nodes(cnn, pipeline, options)
    assert _conv_channels(seen) < _conv_channels(onnx.load(str(cnn)))  # the quantizer saw the pruned graph
    assert nodes and set(nodes) <= {n.name for n in seen.graph.node}
    run = next(r for r in pipeline.runs() if r.spec.precision == "int8")
    built = {n.name for n in onnx.load(run.artifact).graph.node if n.op_type not in _QDQ}
    assert {name.removesuffix("_quant") for name in built} <= {n.name for n in seen.graph.node}
    report = drift_for_run(run, samples=8, pipeline=pipeline)
    assert "reference: the FP32 graph the quantizer saw (same tensor names as the variant)" in report.notes
    assert len(report.table) > 0


def _at_opset_11(model: onnx.ModelProto) -> onnx.ModelProto:
    """The sample CNN as an opset-11 exporter writes it (ONNX's converter has no adapter down from
    BatchNormalization-15): the same ops and weights, without BatchNormalization's later training_mode."""
    for node in model.graph.node:
        kept = [a for a in node.attribute if a.name != "training_mode"]
        del node.attribute[:]
        node.attribute.extend(kept)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 11
    onnx.checker.check_model(model, full_check=True)
    return model


def test_an_old_opset_run_records_the_upgraded_graph(cnn: Path, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    old = _at_opset_11(onnx.load(str(cnn)))
    onnx.save(old, str(folder / "model.onnx"))
    for name in ("calib.npz", "eval.npz"):
        shutil.copy(cnn.parent / name, folder / name)
    nodes, seen = _searched_nodes(folder / "model.onnx", Pipeline(tmp_path / "ws"), BuildOptions(**QUICK))
    assert default_opset(old) == 11 and default_opset(seen) == 13
    assert nodes and set(nodes) <= {n.name for n in seen.graph.node}
