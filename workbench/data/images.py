"""Turn a folder of images into model input with a declared, recorded preprocessing.

The preprocessing is explicit (not guessed from the model) because the same pixels normalized
two ways give two different accuracies, and the run must say which one was used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.data.dataset import Dataset
from workbench.errors import DataError
from workbench.model.inspect import TensorInfo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass(frozen=True)
class ImagePreprocess:
    """resize → scale (e.g. 1/255) → (x - mean) / std → layout. Size None = the model's H, W."""

    size: tuple[int, int] | None = None
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str = "NCHW"
    grayscale: bool | None = None

    def describe(self) -> dict:
        return asdict(self)


def _target(tensor: TensorInfo, pre: ImagePreprocess) -> tuple[int, int, int]:
    shape = tensor.shape
    if len(shape) != 4:
        raise DataError(f"Input '{tensor.name}' is not an image tensor (shape {list(shape)}).",
                        "Use .npz data for this model.")
    channels, height, width = (shape[1], shape[2], shape[3]) if pre.layout == "NCHW" else (
        shape[3], shape[1], shape[2])
    if pre.size is not None:
        height, width = pre.size
    if not all(isinstance(d, int) for d in (channels, height, width)):
        raise DataError(f"Input '{tensor.name}' has dynamic image dims.", "Set the resize size explicitly.")
    return int(channels), int(height), int(width)


def load_image_folder(folder: str | Path, tensor: TensorInfo, pre: ImagePreprocess) -> Dataset:
    """Images under ``folder`` (sub-folders named by class index give labels, ImageNet style)."""
    folder = Path(folder)
    channels, height, width = _target(tensor, pre)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    subdirs = {p.parent for p in files}
    labelled = all(p.parent != folder and p.parent.name.isdigit() for p in files) and len(subdirs) > 1
    grayscale = pre.grayscale if pre.grayscale is not None else channels == 1
    samples, labels = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if grayscale else "RGB").resize((width, height), Image.BILINEAR)
                array = np.asarray(image, dtype=np.float32)
        except Image.DecompressionBombError as exc:
            raise DataError(f"'{path.name}' has more pixels than the {Image.MAX_IMAGE_PIXELS * 2:,} that are decoded "
                            "here (a guard against images that unpack to gigabytes), so it was not read;",
                            "shrink it to the model's input size or remove it from the folder.") from exc
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"'{path.name}' is not a readable image.", "Remove it or replace it.") from exc
        array = array[:, :, None] if array.ndim == 2 else array
        array = (array * pre.scale - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        samples.append(array.transpose(2, 0, 1) if pre.layout == "NCHW" else array)
        if labelled:
            labels.append(int(path.parent.name))
    return Dataset(
        {tensor.name: np.stack(samples).astype(np.float32)},
        np.asarray(labels, dtype=np.int64) if labelled else None,
        source=f"{folder.name}/ ({len(files)} images)",
    )
