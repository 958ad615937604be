"""How far a variant's outputs drift from the FP32 reference on the same evaluation inputs."""

from __future__ import annotations

import numpy as np

from workbench.backends.base import Engine
from workbench.data.dataset import Dataset
from workbench.progress import Progress


def collect_outputs(engine: Engine, data: Dataset, batch: int, progress: Progress | None = None,
                    step: str = "evaluate") -> dict[str, np.ndarray]:
    """Run the whole set in batches and concatenate each output along the sample axis."""
    progress = progress or Progress()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in engine.output_names}
    total = max(1, -(-len(data) // batch))
    for index, feed in enumerate(data.batches(batch)):
        outputs = engine.infer(feed)
        for name in engine.output_names:
            chunks[name].append(np.asarray(outputs[name], dtype=np.float64))
        progress.report(step, (index + 1) / total, f"{step} batch {index + 1}/{total}")
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def _is_classifier(array: np.ndarray) -> bool:
    return array.ndim == 2 and array.shape[1] > 1


def output_drift(reference: np.ndarray, variant: np.ndarray) -> dict[str, float]:
    """Error statistics of one output; cosine is averaged per sample (one bad sample shows)."""
    ref = reference.reshape(len(reference), -1)
    var = variant.reshape(len(variant), -1)
    diff = np.abs(ref - var)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(var, axis=1)
    cosine = np.where(norms > 0, (ref * var).sum(axis=1) / np.where(norms > 0, norms, 1), 1.0)
    noise = float(np.sum((ref - var) ** 2))
    signal = float(np.sum(ref**2))
    return {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "max_rel_error": float((diff / np.maximum(np.abs(ref), 1e-6)).max()) if diff.size else 0.0,
        "cosine_similarity": float(cosine.mean()),
        "min_cosine_similarity": float(cosine.min()),
        "snr_db": float("inf") if noise == 0 else float(10 * np.log10(signal / noise)),
    }


def drift_metrics(
    reference: dict[str, np.ndarray], variant: dict[str, np.ndarray], labels: np.ndarray | None
) -> dict:
    """Task-level drift (top-1 agreement, accuracy) on the first output plus per-output errors."""
    names = list(reference)
    first = names[0]
    result: dict = {"per_output": {name: output_drift(reference[name], variant[name]) for name in names}}
    result.update(result["per_output"][first])
    result.update({"top1_agreement": None, "accuracy": None, "reference_accuracy": None})
    if _is_classifier(reference[first]):
        ref_top1 = reference[first].argmax(axis=1)
        var_top1 = variant[first].argmax(axis=1)
        result["top1_agreement"] = float((ref_top1 == var_top1).mean())
        if labels is not None:
            result["accuracy"] = float((var_top1 == labels).mean())
            result["reference_accuracy"] = float((ref_top1 == labels).mean())
    result["samples"] = len(reference[first])
    return result
