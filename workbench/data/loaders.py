"""Read calibration/evaluation data from .npz, a folder of .npy files, images, or (on request) noise.

Never unpickles: ``allow_pickle=False`` everywhere, because a data file from the internet must
not be able to run code.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.images import IMAGE_SUFFIXES, ImagePreprocess, load_image_folder
from workbench.data.npy_header import check_npy, check_npz
from workbench.errors import DataError
from workbench.memory.guard import check_input_fits
from workbench.model.batch_axes import AXES_KEY, declared_axes, guessed_axes
from workbench.model.inspect import TensorInfo

LABELS_KEY = "labels"


def _load_array(path: Path) -> np.ndarray:
    try:
        check_npy(path)
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"'{path.name}' holds pickled Python objects, which are never loaded (they can run code).",
                "Save plain numeric arrays with np.save(path, array) / np.savez(path, input=array).",
            ) from exc
        raise DataError(f"'{path.name}' is not a NumPy array file: {exc}.", "Save it with np.save.") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"'{path.name}' could not be read as NumPy data: {exc}.", "Check the file.") from exc


def load_npz(path: str | Path) -> Dataset:
    """One array per model input name, plus an optional ``labels`` array."""
    path = Path(path)
    try:
        check_npz(path)
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(f"No data file at '{path}'.", "Check the path.") from exc
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"'{path.name}' is not a readable .npz archive: {exc}.",
            "Write it with np.savez(path, <input name>=array, labels=array).",
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"'{path.name}' is a single array, not an .npz archive.", "Use np.savez to name it.")
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                raise DataError(
                    f"Array '{key}' in '{path.name}' holds pickled objects, which are never loaded.",
                    "Save plain numeric arrays.",
                ) from exc
    labels = arrays.pop(LABELS_KEY, None)
    axes = declared_axes(arrays.pop(AXES_KEY), path.name) if AXES_KEY in arrays else {}
    return Dataset(arrays, labels, source=path.name, axes=axes)


def load_npy_folder(path: str | Path, input_names: Sequence[str]) -> Dataset:
    """Either ``<input name>.npy`` per input (samples on axis 0), or one ``.npy`` per sample.

    One-file-per-sample only makes sense for a single-input model; files are taken in name order.
    """
    folder = Path(path)
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise DataError(f"'{folder}' contains no .npy files.", "Put one .npy per input or per sample there.")
    by_stem = {f.stem: f for f in files}
    labels = _load_array(by_stem[LABELS_KEY]) if LABELS_KEY in by_stem else None
    if all(name in by_stem for name in input_names):
        arrays = {name: _load_array(by_stem[name]) for name in input_names}
        return Dataset(arrays, labels, source=f"{folder.name}/")
    if len(input_names) != 1:
        raise DataError(
            f"'{folder}' has no file per input {list(input_names)}.",
            "Save one file per input, named after it (e.g. input_ids.npy), samples on the first axis.",
        )
    samples = [_load_array(f) for f in files if f.stem != LABELS_KEY]
    shapes = {s.shape for s in samples}
    if len(shapes) != 1:
        raise DataError(
            f"The .npy files in '{folder}' have different shapes {sorted(shapes)[:3]}.",
            "Every sample must have the model input's shape.",
        )
    return Dataset({input_names[0]: np.stack(samples)}, labels, source=f"{folder.name}/")


def random_dataset(inputs: Sequence[TensorInfo], count: int, seed: int = 0,
                   shapes: Mapping[str, tuple[int, ...]] | None = None) -> Dataset:
    """Synthetic data for timing only: ``count`` samples on each input's batch axis.

    ``shapes`` fix what random data cannot guess: a dynamic dim besides the batch (one sample's whole
    shape, the batch axis at 1) or, for a scalar input, its value (a sample rate).
    """
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    unknown = sorted(set(shapes) - {t.name for t in inputs})
    if unknown:
        raise DataError(f"random data names input(s) {unknown} the model does not have;",
                        f"its inputs are {[t.name for t in inputs]}.")
    axes = guessed_axes(inputs)
    arrays = {}
    for tensor in inputs:
        axis = axes[tensor.name]
        if axis is None:  # a scalar: its value if given, else 1 (a count, a flag)
            value = shapes[tensor.name][0] if tensor.name in shapes else 1
            arrays[tensor.name] = np.array(value).astype(tensor.dtype)
            continue
        dims = _random_sample_dims(tensor, axis, shapes.get(tensor.name))
        check_input_fits(tensor.name, dims, tensor.dtype, count)
        shape = tuple(count if i == axis else d for i, d in enumerate(dims))
        if tensor.dtype.startswith("float"):
            arrays[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
        else:
            arrays[tensor.name] = rng.integers(0, 2, shape).astype(tensor.dtype)
    given = ", ".join(f"{name}={'x'.join(map(str, dims))}" for name, dims in shapes.items())
    source = f"{count} samples, seed {seed}" + (f", {given}" if given else "")
    return Dataset(arrays, None, source=source, is_random=True, axes=axes)


def _random_sample_dims(tensor: TensorInfo, axis: int, given: tuple[int, ...] | None) -> list[int]:
    """One sample's dims: the model's fixed ones, the given ones for dynamic dims; the batch axis at 1."""
    if given is not None and len(given) != len(tensor.shape):
        raise DataError(f"random data gives input '{tensor.name}' the shape {'x'.join(map(str, given))}, but it has "
                        f"{len(tensor.shape)} dims {list(tensor.shape)};",
                        "give one sample's whole shape, the batch dim as 1 (e.g. state=2x1x128).")
    dims = []
    for i, dim in enumerate(tensor.shape):
        if i == axis:
            dims.append(1)
        elif given is not None:
            if isinstance(dim, int) and dim > 0 and given[i] != dim:
                raise DataError(f"random data gives input '{tensor.name}' size {given[i]} on dim {i}, fixed at {dim} "
                                "by the model;", f"use {dim} there.")
            dims.append(given[i])
        elif isinstance(dim, int) and dim > 0:
            dims.append(dim)
        else:
            raise DataError(
                f"Input '{tensor.name}' has a dynamic dim '{dim}' that random data can't guess.",
                f"Give its shape, e.g. random:32,{tensor.name}="
                + "x".join("1" if j == axis else (str(d) if isinstance(d, int) and d > 0 else "N")
                           for j, d in enumerate(tensor.shape)) + ", or real data (an .npz).")
    return dims


def parse_random(text: str) -> tuple[int, dict[str, tuple[int, ...]]]:
    """``random[:N][,name=AxBxC...]``: N samples (32 by default) and the shapes (or scalar values) given."""
    head, *given = text.split(",")
    count = head.split(":", 1)[1] if ":" in head else "32"
    if not count.strip().isdigit() or int(count) < 1:
        raise DataError(f"'{text}' asks for random data, but '{count}' is not a number of samples of 1 or more;",
                        "write it as random:N, for example random:32 (or random:32,state=2x1x128).")
    shapes: dict[str, tuple[int, ...]] = {}
    for item in given:
        name, _, dims = item.partition("=")
        try:
            shapes[name.strip()] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise DataError(f"'{item}' in '{text}' is not NAME=AxBxC;",
                            "write each shape as the input's name and one sample's dims, e.g. state=2x1x128.") from None
    return int(count), shapes


def load_data(
    source: str | Path,
    inputs: Sequence[TensorInfo],
    preprocess: ImagePreprocess | None = None,
) -> Dataset:
    """Dispatch on what ``source`` is: ``random[:N]``, an .npz, a folder of .npy or of images."""
    text = str(source)
    if text == "random" or text.startswith(("random:", "random,")):
        count, shapes = parse_random(text)
        return random_dataset(inputs, count, shapes=shapes)
    path = Path(source)
    if not path.exists():
        raise DataError(f"No data at '{path}'.", "Give an .npz file, a folder of .npy files or of images.")
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path)
        if path.suffix == ".npy":
            if len(inputs) != 1:
                raise DataError(f"'{path.name}' is one array but the model has {len(inputs)} inputs.",
                                "Use an .npz with one array per input name.")
            return Dataset({inputs[0].name: _load_array(path)}, None, source=path.name)
        raise DataError(f"'{path.name}' is not a data file this workbench reads.",
                        "Use .npz, a folder of .npy files, or a folder of images.")
    if any(path.glob("*.npy")):
        return load_npy_folder(path, [t.name for t in inputs])
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
        if len(inputs) != 1:
            raise DataError("Image folders feed single-input models only.", "Use an .npz for this model.")
        return load_image_folder(path, inputs[0], preprocess or ImagePreprocess())
    raise DataError(f"'{path}' holds no .npy files or images.", "Point at the folder that holds the data.")
