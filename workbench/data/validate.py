"""Check data against the model's inputs before any build, so mistakes cost seconds, not a build."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.data.dataset import Dataset
from workbench.errors import DataError
from workbench.model.inspect import TensorInfo


def validate_dataset(data: Dataset, inputs: Sequence[TensorInfo], role: str, min_count: int = 1) -> Dataset:
    """Return the data with float arrays cast to the model's dtype; raise DataError on misfit.

    ``role`` ("calibration", "evaluation") goes into every message so the user knows which file.
    """
    expected = {t.name: t for t in inputs}
    missing = sorted(set(expected) - set(data.inputs))
    if missing:
        raise DataError(
            f"The {role} data ({data.label}) has no array for model input(s) {missing}; "
            f"it has {sorted(data.inputs)}.",
            "Name each array after the model input it feeds (see the Model panel's inputs).",
        )
    counts = {name: len(data.inputs[name]) for name in expected}
    if len(set(counts.values())) != 1:
        raise DataError(f"The {role} arrays hold different sample counts: {counts}.",
                        "Every input needs one entry per sample.")
    count = next(iter(counts.values()))
    if count < min_count:
        raise DataError(f"The {role} data has {count} samples; at least {min_count} are needed.",
                        "Add samples (100-500 representative ones calibrate well).")
    cast = {}
    converted: list[str] = []
    for name, tensor in expected.items():
        array = data.inputs[name]
        sample_shape = array.shape[1:]
        model_shape = tensor.shape[1:]
        if len(sample_shape) != len(model_shape) or any(
            isinstance(m, int) and m > 0 and m != s for m, s in zip(model_shape, sample_shape, strict=True)
        ):
            raise DataError(
                f"The {role} array '{name}' has samples of shape {list(sample_shape)}, but the model "
                f"expects {list(model_shape)} (full array shape {list(array.shape)}; the first axis is samples).",
                "Resize or reshape the data to the model's input shape.",
            )
        want = np.dtype(tensor.dtype) if tensor.dtype != "bfloat16" else np.dtype(np.float32)
        if array.dtype.kind != want.kind and not (array.dtype.kind in "iu" and want.kind in "iu"):
            raise DataError(
                f"The {role} array '{name}' is {array.dtype}, but the model input is {tensor.dtype}.",
                f"Convert it with array.astype('{tensor.dtype}').",
            )
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(np.size(array) - np.isfinite(array).sum())
            raise DataError(f"The {role} array '{name}' contains {bad} NaN/Inf values.",
                            "Clean the data (np.nan_to_num) or drop those samples.")
        if array.dtype != want:
            converted.append(f"{name}: {array.dtype} -> {want}")
        cast[name] = np.ascontiguousarray(array.astype(want, copy=False))
    if data.labels is not None and len(data.labels) != count:
        raise DataError(f"The {role} data has {len(data.labels)} labels for {count} samples.",
                        "Give one label per sample.")
    return Dataset(cast, data.labels, data.source, data.is_random, ", ".join(converted) or data.cast_from)
