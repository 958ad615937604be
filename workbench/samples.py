"""Where the sample models are: the repository's sample_models/ or a folder named by the user.

Samples are not package data (they are trained by scripts/train_samples.py), so a clone finds
them beside the package, and an installed copy finds them through ``$WORKBENCH_SAMPLES`` or a
``sample_models/`` folder in (or above) the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import workbench

SAMPLES_ENV = "WORKBENCH_SAMPLES"
FOLDER = "sample_models"


def sample_roots() -> list[Path]:
    """Candidate folders, most specific first."""
    roots = []
    if os.environ.get(SAMPLES_ENV):
        roots.append(Path(os.environ[SAMPLES_ENV]))
    cwd = Path.cwd().resolve()
    roots += [folder / FOLDER for folder in (cwd, *cwd.parents)]
    roots.append(Path(workbench.__file__).resolve().parents[1] / FOLDER)
    return roots


def sample_models() -> dict[str, Path]:
    """``{name: model.onnx}`` from the first folder that holds any samples."""
    for root in sample_roots():
        found = {p.parent.name: p for p in sorted(root.glob("*/model.onnx"))}
        if found:
            return found
    return {}


def find_model(path: str | Path) -> Path:
    """A path as typed, a sample's name (``"digits_resnet"``), or a ``sample_models/...`` path written from the
    checkout's point of view, which a notebook kernel running in another folder would not find as is."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    samples = sample_models()
    if str(path) in samples:
        return samples[str(path)]
    if path.parts and path.parts[0] == FOLDER and samples:
        candidate = next(iter(samples.values())).parents[1] / Path(*path.parts[1:])
        if candidate.exists():
            return candidate
    return path
