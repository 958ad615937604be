"""Which axis of each model input holds the samples: usually the first, but not for every real model.

A recurrent model's state is ``[layers, batch, hidden]`` (silero-vad: ``state: [2, batch, 128]``) and
a sample-rate input is a scalar fed whole to every batch. The axis is taken, in this order, from the
data file (an ``__batch_axes__`` entry: a JSON object ``{"state": 1}``), then from the model's shapes
where they make it clear: a scalar has none; an input whose first dim is fixed above 1 while the
model's first input has a dynamic batch carries it on the dim named like that batch, or on its only
dynamic dim. Anything else keeps the first axis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from workbench.errors import DataError

if TYPE_CHECKING:
    from workbench.model.inspect import TensorInfo

#: The .npz entry that declares batch axes, e.g. ``np.savez(path, ..., __batch_axes__=json.dumps({"state": 1}))``.
AXES_KEY = "__batch_axes__"

#: None: the input has no batch axis (a scalar, fed whole to every batch).
BatchAxis = int | None


def guessed_axes(inputs: Sequence[TensorInfo]) -> dict[str, BatchAxis]:
    """The batch axis of every input, as far as the model's shapes tell."""
    first = next((t for t in inputs if t.shape), None)
    batched = first is not None and isinstance(first.shape[0], str)
    batch_name = first.shape[0] if batched and first.shape[0] != "?" else None
    axes: dict[str, BatchAxis] = {}
    for tensor in inputs:
        shape = tensor.shape
        if not shape:
            axes[tensor.name] = None
        elif not batched or isinstance(shape[0], str) or shape[0] == 1:
            axes[tensor.name] = 0
        elif batch_name is not None and batch_name in shape:
            axes[tensor.name] = shape.index(batch_name)
        else:
            dynamic = tensor.dynamic_dims
            axes[tensor.name] = dynamic[0] if len(dynamic) == 1 else 0
    return axes


def declared_axes(value: np.ndarray, source: str) -> dict[str, BatchAxis]:
    """The ``__batch_axes__`` entry of a data file: a JSON object of input name -> axis (or null)."""
    try:
        declared = json.loads(str(value.item() if value.shape == () else value))
        if not isinstance(declared, dict) or not all(v is None or isinstance(v, int) for v in declared.values()):
            raise ValueError("not an object of input name -> axis")
    except ValueError as exc:
        raise DataError(f"'{source}' declares {AXES_KEY} as {str(value)[:80]!r}, which is not a JSON object of "
                        f"input name -> axis ({exc});",
                        f'write it as np.savez(..., {AXES_KEY}=json.dumps({{"state": 1}})).') from exc
    return declared


def resolve_axes(inputs: Sequence[TensorInfo], declared: Mapping[str, BatchAxis]) -> dict[str, BatchAxis]:
    """The data's declarations over the model's guesses; a declared axis outside the input's rank is refused."""
    axes = guessed_axes(inputs)
    for tensor in inputs:
        if tensor.name in declared:
            axis = declared[tensor.name]
            if axis is not None and not 0 <= axis < max(len(tensor.shape), 1):
                raise DataError(f"The batch axis {axis} declared for input '{tensor.name}' is outside its "
                                f"{len(tensor.shape)} dims {list(tensor.shape)};",
                                "give an axis from 0 to rank - 1, or null for an input fed whole.")
            axes[tensor.name] = axis
    return axes
