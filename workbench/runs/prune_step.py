"""The pipeline's pruning step: prune, repair on calibration data, and measure what the repair bought.

The precision step then starts from the pruned file, so pruning composes with every precision and
the run's speed-up and drift are still measured against the unpruned FP32 model. The pruned file is
cached in the workspace once per pruning choice, shared by every precision built on it; a run that
reuses it repeats the notes saved with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx

from workbench.backends.registry import get_backend
from workbench.data.dataset import Dataset
from workbench.files import write_atomically, write_json_atomically
from workbench.measure.drift import collect_outputs, drift_metrics
from workbench.model.flops import node_flops
from workbench.progress import Progress
from workbench.pruning import prune, repair
from workbench.runs.inputs import Inputs
from workbench.runs.spec import RunSpec
from workbench.scratch import temp_folder

#: The run table listing what pruning did to each layer.
PRUNED_LAYERS = "pruned_layers"
#: Pruning's own checks run on the CPU: the pruned file is plain FP32 ONNX whatever the target.
CHECK_BACKEND = "onnxruntime-cpu"
#: Samples used to compare the pruned model before and after repair (enough to see the change).
REPAIR_EVAL_SAMPLES = 256
EVAL_BATCH = 32


@dataclass(frozen=True)
class PrunedSource:
    """The pruned FP32 file, its GFLOPs, its per-layer report (listed in the run's tables) and the run notes."""

    path: Path
    gflops: float
    layers_table: Path
    notes: list[str]


def pruned_source(inputs: Inputs, spec: RunSpec, folder: Path, progress: Progress, reuse: bool = True) -> PrunedSource:
    """The pruned model the precision step starts from, built once per pruning choice.

    ``folder`` is keyed by the model, the pruning choice and the repair data, not by precision, so
    the FP32, FP16 and INT8 variants of one pruning (a sweep's column) share one prune and repair.
    """
    target, record, layers = folder / "pruned.onnx", folder / "prune.json", folder / "layers.json"
    if reuse and target.is_file() and record.is_file() and layers.is_file():
        notes = [*json.loads(record.read_text())["notes"], "pruned model reused from the workspace cache"]
        return PrunedSource(target, _gflops(onnx.load(str(target))), layers, notes)

    progress.report("prune", 0.0, f"{spec.prune_method} pruning at ratio {spec.prune_ratio:g}")
    result = prune(inputs.model.proto, spec.prune_method, spec.prune_ratio, progress=progress.slice(0.0, 0.5))
    step_notes = [f"pruned ({spec.prune_method}): {result.report.summary}"]
    if spec.prune_method == "magnitude":
        step_notes.append("magnitude pruning only zeroes weights: dense kernels run just as long; "
                          "use channel pruning for speed")
    elif spec.prune_method == "2:4":
        step_notes.append("2:4 sparsity is faster only on TensorRT with sparse tensor cores (Ampere or newer); "
                          "on ONNX Runtime it runs as dense")
    model, repair_record = result.model, None
    if spec.prune_repair and inputs.calib is not None:
        model, repair_record = _repaired(model, inputs, progress.slice(0.5, 1.0))
        step_notes.append(repair_record["note"])
    elif spec.prune_repair:
        step_notes.append("no repair: it needs calibration data (pass --calib, or put calib.npz beside the model)")

    write_atomically(target, lambda tmp: onnx.save(model, str(tmp)))
    write_atomically(layers, lambda tmp: result.report.to_frame().to_json(tmp, orient="records", indent=1))
    write_json_atomically(record, {  # written last: its presence says the other two are complete
        "notes": step_notes,
        "params_before": result.report.params_before,
        "params_after": result.report.params_after,
        "repair": repair_record,
    })
    return PrunedSource(target, _gflops(model), layers, step_notes)


def _gflops(model: onnx.ModelProto) -> float:
    return sum(node_flops(model).values()) / 1e9


def _repaired(pruned: onnx.ModelProto, inputs: Inputs, progress: Progress) -> tuple[onnx.ModelProto, dict]:
    """The repaired model (or the pruned one, if repair made it worse) and how both scored on the eval set."""
    assert inputs.calib is not None
    progress.report("repair", 0.0, "refitting pruned layers on calibration data")
    repaired = repair(pruned, inputs.calib.inputs, inputs.model.proto, progress=progress.slice(0.0, 0.6))
    sample = inputs.eval.take(REPAIR_EVAL_SAMPLES)
    first_dim = inputs.info.inputs[0].shape[0] if inputs.info.inputs[0].shape else None
    batch = first_dim if isinstance(first_dim, int) and first_dim > 0 else EVAL_BATCH
    reference = _outputs(inputs.model.path, sample, batch, progress.slice(0.6, 0.73), "unpruned")
    (metric, before), (_, after) = [
        _score(reference, _outputs(model, sample, batch, progress.slice(start, start + 0.13), label), sample)
        for model, start, label in ((pruned, 0.73, "before repair"), (repaired, 0.86, "after repair"))
    ]
    shown = [f"{v:.4f}" if metric.startswith("cosine") else f"{v * 100:.1f}%" for v in (before, after)]
    note = (f"repair on calibration data: {metric} {shown[0]} before, {shown[1]} after "
            f"({len(sample)} evaluation samples)")
    record = {"metric": metric, "before": before, "after": after, "samples": len(sample), "kept": after >= before}
    if after < before:
        return pruned, {**record, "note": note + "; kept the unrepaired model"}
    return repaired, {**record, "note": note}


def _outputs(model: onnx.ModelProto | Path, data: Dataset, batch: int, progress: Progress, label: str) -> dict:
    """The model's outputs on ``data``, on the CPU (the pruned file is plain FP32 whatever the target)."""
    with temp_folder("wb-prune-") as tmp:
        path = model if isinstance(model, Path) else Path(tmp) / "model.onnx"
        if not isinstance(model, Path):
            onnx.save(model, str(path))
        with get_backend(CHECK_BACKEND).load(path) as engine:
            return collect_outputs(engine, data, batch, progress, label)


def _score(reference: dict, outputs: dict, data: Dataset) -> tuple[str, float]:
    """The best task measure available: accuracy, else top-1 agreement, else cosine to the unpruned model."""
    drift = drift_metrics(reference, outputs, data.labels)
    for key, name in (("accuracy", "accuracy"), ("top1_agreement", "top-1 agreement with FP32")):
        if drift.get(key) is not None:
            return name, float(drift[key])
    return "cosine similarity to FP32", float(drift["cosine_similarity"])
