"""Data loading and validation: wrong shape, dtype, count, NaN, pickles all get clear messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workbench.data.images import ImagePreprocess
from workbench.data.loaders import load_data, load_npz
from workbench.data.validate import validate_dataset
from workbench.errors import DataError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model


@pytest.fixture
def inputs(cnn: Path):
    return inspect_model(load_model(cnn)).inputs


def test_sample_npz_validates(cnn: Path, inputs) -> None:
    data = validate_dataset(load_npz(cnn.parent / "eval.npz"), inputs, "evaluation")
    assert data.labels is not None and len(data.labels) == len(data)
    assert data.inputs["input"].dtype == np.float32
    assert not data.is_random


def test_wrong_shape(tmp_path: Path, inputs) -> None:
    np.savez(tmp_path / "bad.npz", input=np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(DataError, match=r"shape \[1, 28, 28\].*expects \[1, 32, 32\]"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "calibration")


def test_wrong_name(tmp_path: Path, inputs) -> None:
    np.savez(tmp_path / "bad.npz", images=np.zeros((4, 1, 32, 32), np.float32))
    with pytest.raises(DataError, match=r"no array for model input\(s\) \['input'\].*\['images'\]"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "calibration")


def test_wrong_dtype(tmp_path: Path, inputs) -> None:
    np.savez(tmp_path / "bad.npz", input=np.zeros((4, 1, 32, 32), np.int32))
    with pytest.raises(DataError, match=r"int32.*float32.*astype"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "calibration")


def test_nan(tmp_path: Path, inputs) -> None:
    array = np.zeros((4, 1, 32, 32), np.float32)
    array[1, 0, 3, 3] = np.nan
    array[2, 0, 3, 3] = np.inf
    np.savez(tmp_path / "bad.npz", input=array)
    with pytest.raises(DataError, match="2 NaN/Inf"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "evaluation")


def test_label_count(tmp_path: Path, inputs) -> None:
    np.savez(tmp_path / "bad.npz", input=np.zeros((4, 1, 32, 32), np.float32), labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="3 labels for 4 samples"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "evaluation")


def test_empty(tmp_path: Path, inputs) -> None:
    np.savez(tmp_path / "bad.npz", input=np.zeros((0, 1, 32, 32), np.float32))
    with pytest.raises(DataError, match="0 samples"):
        validate_dataset(load_npz(tmp_path / "bad.npz"), inputs, "calibration")


def test_pickle_is_never_loaded(tmp_path: Path, inputs) -> None:
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_data(tmp_path / "evil.npy", inputs)
    np.savez(tmp_path / "evil.npz", input=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load_npz(tmp_path / "evil.npz")


def test_not_an_archive(tmp_path: Path, inputs) -> None:
    (tmp_path / "junk.npz").write_text("nope")
    with pytest.raises(DataError, match=r"not a readable .npz"):
        load_data(tmp_path / "junk.npz", inputs)


def test_npy_folder_per_input_and_per_sample(tmp_path: Path, inputs) -> None:
    per_input = tmp_path / "per_input"
    per_input.mkdir()
    np.save(per_input / "input.npy", np.ones((5, 1, 32, 32), np.float32))
    np.save(per_input / "labels.npy", np.arange(5))
    data = validate_dataset(load_data(per_input, inputs), inputs, "evaluation")
    assert len(data) == 5 and list(data.labels) == [0, 1, 2, 3, 4]
    per_sample = tmp_path / "per_sample"
    per_sample.mkdir()
    for i in range(3):
        np.save(per_sample / f"{i:03d}.npy", np.full((1, 32, 32), i, np.float32))
    data = load_data(per_sample, inputs)
    assert data.inputs["input"].shape == (3, 1, 32, 32)
    assert data.inputs["input"][2].max() == 2


def test_image_folder_matches_npz(cnn: Path, inputs) -> None:
    folder = cnn.parent / "images"
    if not folder.is_dir():
        pytest.skip("sample image folder missing")
    data = validate_dataset(load_data(folder, inputs, ImagePreprocess()), inputs, "evaluation")
    assert data.inputs["input"].shape[1:] == (1, 32, 32)
    assert data.labels is not None and set(data.labels) == set(range(10))


def test_random_is_labelled(inputs) -> None:
    data = load_data("random:7", inputs)
    assert data.is_random and len(data) == 7
    assert "RANDOM" in data.label
