"""How far a variant's outputs drift from the FP32 reference on the same evaluation inputs.

Both engines run batch by batch and each batch is judged at once (``workbench.tasks``), so memory
holds one batch of outputs, not the whole evaluation set's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from workbench.backends.base import Engine
from workbench.data.dataset import Dataset
from workbench.progress import Progress
from workbench.tasks import Judge, TaskChoice, judge_batches


def labelled_batches(data: Dataset, batch: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
    for start, feed in zip(range(0, len(data), batch), data.batches(batch), strict=True):
        yield feed, None if data.labels is None else data.labels[start : start + batch]


def batch_outputs(engine: Engine, feed: dict[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """``engine``'s outputs on ``feed``; a last batch smaller than ``batch`` runs padded to it (its last sample
    repeated) and is cut back. An engine that compiles per input shape (OpenVINO, TensorRT) then holds one compiled
    model, not a second copy of the weights for the evaluation's last batch (a BERT-base encoder: 0.4 GB more)."""
    samples = len(next(iter(feed.values())))
    if samples >= batch:
        return {k: np.asarray(v) for k, v in engine.infer(feed).items()}
    padded = {k: np.concatenate([v, np.repeat(v[-1:], batch - samples, axis=0)]) for k, v in feed.items()}
    return {k: np.asarray(v)[:samples] if np.ndim(v) and np.shape(v)[0] == batch else np.asarray(v)
            for k, v in engine.infer(padded).items()}


def compare_engines(reference: Engine, variant: Engine, data: Dataset, batch: int, choice: TaskChoice | None = None,
                    progress: Progress | None = None) -> dict:
    """Run both engines on every batch and judge the variant by the task; returns the run's drift dict."""
    progress = progress or Progress()
    judge = Judge(choice)
    total = max(1, -(-len(data) // batch))
    for index, (feed, labels) in enumerate(labelled_batches(data, batch)):
        ref = batch_outputs(reference, feed, batch)
        var = ref if variant is reference else batch_outputs(variant, feed, batch)  # FP32 judged against itself
        judge.update(ref, var, labels, feed)
        progress.report("evaluate", (index + 1) / total, f"evaluate batch {index + 1}/{total}")
    return judge.result()


def collect_outputs(engine: Engine, data: Dataset, batch: int, progress: Progress | None = None,
                    step: str = "evaluate") -> dict[str, np.ndarray]:
    """Run the whole set in batches and concatenate each output along the sample axis (small sets only)."""
    progress = progress or Progress()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in engine.output_names}
    total = max(1, -(-len(data) // batch))
    for index, feed in enumerate(data.batches(batch)):
        outputs = batch_outputs(engine, feed, batch)
        for name in engine.output_names:
            chunks[name].append(np.asarray(outputs[name], dtype=np.float64))
        progress.report(step, (index + 1) / total, f"{step} batch {index + 1}/{total}")
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def drift_metrics(reference: dict[str, np.ndarray], variant: dict[str, np.ndarray], labels: np.ndarray | None,
                  choice: TaskChoice | None = None, inputs: dict[str, np.ndarray] | None = None) -> dict:
    """The same drift dict as ``compare_engines``, from outputs already in memory."""
    first = next(iter(reference.values()))
    return judge_batches([(reference, variant, labels, inputs or {"samples": np.zeros(len(first))})], choice)
