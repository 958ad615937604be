"""A build's model and data, loaded and validated once and handed to each step of the build."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.data.dataset import Dataset
from workbench.model.inspect import ModelInfo
from workbench.model.loader import LoadedModel


@dataclass
class Inputs:
    """A model and its data, loaded and validated once per build."""

    model: LoadedModel
    info: ModelInfo
    calib: Dataset | None
    eval: Dataset
