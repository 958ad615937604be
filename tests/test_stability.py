"""FP32's own stability on a real classifier, and the seeded, stratified confirmation split.

Blends of two digit images (half of each) stand for photos outside a classifier's classes: FP32
itself barely decides some of them, as the classifiers of real deployments barely decide theirs.
"""

from __future__ import annotations

import numpy as np
from conftest import sample

from workbench.data.dataset import Dataset
from workbench.data.split import confirmation_split
from workbench.measure.stability import measure_stability


def digits(model: str, count: int, blended: bool) -> Dataset:
    """Clean eval digits, or blends of two (half of each): inputs FP32 itself barely decides."""
    with np.load(sample(model).parent / "eval.npz") as data:
        images = data["input"]
    if not blended:
        return Dataset({"input": images[:count]}, None, f"first {count}")
    rng = np.random.default_rng(0)
    first, second = rng.permutation(len(images))[:count], rng.permutation(len(images))[:count]
    return Dataset({"input": (0.5 * images[first] + 0.5 * images[second]).astype(np.float32)}, None,
                   f"{count} blends of two digits")


def test_fp32_stability_on_a_real_classifier_flags_a_budget_stricter_than_it():
    blends = digits("digits_cnn", 240, blended=True)
    stability = measure_stability(str(sample("digits_cnn")), blends, 32)
    noise = next(check for check in stability.checks if "8-bit step" in check["what"])
    assert stability.metric == "top1_agreement" and noise["flipped"] >= 1 and stability.unstable
    assert stability.value == min(check["value"] for check in stability.checks) < 1.0
    assert len(stability.unstable) >= noise["flipped"] and stability.text().startswith("FP32 itself flips")
    assert len(stability.stable_indices()) == 240 - len(stability.unstable)
    assert "stricter than FP32's own stability" in stability.floor_note(0.99, "top1_agreement")
    assert stability.floor_note(stability.value, "top1_agreement") is None
    assert stability.classes is not None and len(stability.classes) == 240
    clean = measure_stability(str(sample("digits_cnn")), digits("digits_cnn", 120, blended=False), 32)
    assert clean.unstable == [] and clean.value == 1.0


def test_the_split_is_seeded_and_stratified_by_class():
    classes = np.repeat(np.arange(10), 36)
    search, confirm = confirmation_split(360, classes)
    assert np.bincount(classes[search]).tolist() == [18] * 10 and np.bincount(classes[confirm]).tolist() == [18] * 10
    assert (confirmation_split(360, classes)[0] == search).all()
    one_of_a_kind = np.concatenate([classes[:-1], [99]])  # a class of one sample cannot be split: plain shuffle
    assert len(confirmation_split(360, one_of_a_kind)[0]) == 180


def test_a_last_smaller_batch_runs_padded_on_the_one_compiled_shape():
    """OpenVINO compiles per input shape; the evaluation's last, smaller batch runs padded to the batch and cut
    back, so the engine keeps one compiled model, and its outputs are the unpadded batch's."""
    from workbench.backends.registry import get_backend
    from workbench.measure.drift import batch_outputs

    data = digits("digits_cnn", 10, blended=False)
    feeds = list(data.batches(8))
    with get_backend("openvino").for_precision("fp32").load(sample("digits_cnn")) as engine:
        alone = {k: np.asarray(v) for k, v in engine.infer(feeds[1]).items()}  # compiles the 2-sample shape
        padded = batch_outputs(engine, feeds[1], 8)
        shape = engine._shape
        batch_outputs(engine, feeds[0], 8)
        assert engine._shape == shape  # the full batch's shape: not compiled again
    for name, values in alone.items():
        assert padded[name].shape == values.shape and np.allclose(padded[name], values, atol=1e-5)
