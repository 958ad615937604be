"""Check data against the model's inputs before any build, so mistakes cost seconds, not a build."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.data.dataset import Dataset
from workbench.errors import DataError
from workbench.model.batch_axes import AXES_KEY, resolve_axes
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
    axes = resolve_axes(inputs, data.axes)
    for name, tensor in expected.items():
        _check_rank(data.inputs[name], tensor, axes[name], role)
    counts = {name: data.inputs[name].shape[axes[name]] for name in expected if axes[name] is not None}
    if len(set(counts.values())) > 1:
        raise DataError(f"The {role} arrays hold different sample counts: {counts}.",
                        "Every input needs one entry per sample.")
    count = next(iter(counts.values()), 1)
    if count < min_count:
        raise DataError(f"The {role} data has {count} samples; at least {min_count} are needed.",
                        "Add samples (100-500 representative ones calibrate well).")
    cast = {}
    converted: list[str] = []
    for name, tensor in expected.items():
        array, axis = data.inputs[name], axes[name]
        sample_shape = tuple(d for i, d in enumerate(array.shape) if i != axis)
        model_shape = tuple(d for i, d in enumerate(tensor.shape) if i != axis)
        if len(sample_shape) != len(model_shape) or any(
            isinstance(m, int) and m > 0 and m != s for m, s in zip(model_shape, sample_shape, strict=True)
        ):
            raise DataError(
                f"The {role} array '{name}' has samples of shape {list(sample_shape)}, but the model "
                f"expects {list(model_shape)} (full array shape {list(array.shape)}; {_axis_words(axis)}).",
                "Resize or reshape the data to the model's input shape; if the samples are on another axis, "
                f"declare it in the .npz: {AXES_KEY}=json.dumps({{\"{name}\": AXIS}}).",
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
        cast[name] = np.asarray(array.astype(want, copy=False), order="C")  # a 0-d scalar stays 0-d
    if data.labels is not None and len(data.labels) != count:
        raise DataError(f"The {role} data has {len(data.labels)} labels for {count} samples.",
                        "Give one label per sample.")
    return Dataset(cast, data.labels, data.source, data.is_random, ", ".join(converted) or data.cast_from, axes)


def _axis_words(axis: int | None) -> str:
    return "fed whole, no sample axis" if axis is None else f"axis {axis} is samples"


def _check_rank(array: np.ndarray, tensor: TensorInfo, axis: int | None, role: str) -> None:
    """A scalar input takes a 0-d array; any other input needs at least its batch axis (its shape is checked next)."""
    if (not tensor.shape and array.ndim != 0) or (axis is not None and array.ndim <= axis):
        what = "a single value (a 0-d array, e.g. np.array(16000))" if not tensor.shape else \
            f"{len(tensor.shape)} dims {list(tensor.shape)}"
        raise DataError(f"The {role} array '{tensor.name}' has shape {list(array.shape)}, but the model input takes "
                        f"{what} ({_axis_words(axis)}).",
                        "Give it the input's rank: samples on the batch axis, a scalar as a 0-d array.")
