"""Task metrics on real outputs of the sample models: each task's measure, the guess, budgets, broken variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import sample

from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.errors import WorkbenchError
from workbench.measure.drift import compare_engines
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.tasks import TaskChoice, task_score
from workbench.tasks.detection import Detections, decode, matched, nms
from workbench.tasks.embedding import EmbeddingMeter
from workbench.tasks.guess import guess_task


def resnet_data(name: str) -> dict[str, np.ndarray]:
    with np.load(sample("digits_resnet").parent / f"{name}.npz") as data:
        return dict(data)


def head_cut(model: Path, output: str, tmp_path: Path) -> Path:
    """The sample model up to ``output``: a real network whose real feature maps stand for a task's outputs."""
    path = tmp_path / f"{output.strip('/').replace('/', '_')}.onnx"
    onnx.utils.extract_model(str(model), str(path), ["input"], [output])
    return path


def test_classifier_is_guessed_and_judged_on_accuracy_with_labels(tmp_path: Path):
    run = Pipeline(tmp_path / "ws").run(sample("digits_cnn"), BuildOptions("int8", repeats=3))
    score = task_score(run.drift)
    assert score.task == "classification" and score.guessed and score.metric == "accuracy"
    assert score.threshold == pytest.approx(run.drift["reference_accuracy"] - 0.01)
    assert score.met == (score.value >= score.threshold)
    assert 0.9 <= score.details["top1_agreement"] <= score.details["top5_agreement"] <= 1.0
    assert any(note.startswith("judged as classification") for note in run.notes)


def test_without_labels_classification_is_top1_agreement_and_budget_rejudges(tmp_path: Path):
    calib, evaluation = resnet_data("calib"), resnet_data("eval")
    data = Dataset({"input": evaluation["input"][:64]}, None, "unlabelled eval")
    pipeline = Pipeline(tmp_path / "ws")
    options = BuildOptions("int8", calib=Dataset({"input": calib["input"]}, None, "calib"), eval=data, repeats=3)
    run = pipeline.run(sample("digits_resnet"), options)
    score = task_score(run.drift)
    assert score.metric == "top1_agreement" and score.threshold == 0.99
    strict = pipeline.run(sample("digits_resnet"), options.replace(budget=1.0))
    assert strict.run_id == run.run_id
    assert task_score(strict.drift).met == (score.value >= 1.0)


def test_badly_calibrated_int8_is_reported_broken(tmp_path: Path):
    """Calibration data missing the model's normalisation (a real user mistake) gives a broken variant."""
    calib = resnet_data("calib")["input"][:32] * 0.02
    unnormalised = Dataset({"input": calib.astype(np.float32)}, None, "unnormalised")
    run = Pipeline(tmp_path / "ws").run(sample("digits_resnet"),
                                        BuildOptions("int8", recipe=Recipe(per_channel=False), repeats=3,
                                                     calib=unnormalised))
    score = task_score(run.drift)
    assert not score.met and "cosine" in score.broken
    assert any(note.startswith("BROKEN variant") for note in run.notes)


def test_a_changed_class_says_how_close_fp32_itself_was(tmp_path: Path):
    """Each changed sample's FP32 top-2 margin is stored, and a missed budget's notes compare them to the median."""
    from workbench.tasks.classification import margin_note

    run = Pipeline(tmp_path / "ws").run(sample("digits_outlier"), BuildOptions("int8", repeats=3))
    score = task_score(run.drift)
    changed = round((1 - score.details["top1_agreement"]) * score.details["samples"])
    assert not score.met and changed >= 1
    margins = score.details["changed_margins"]
    assert len(margins) == min(changed, 10) and margins == sorted(margins) and margins[0] >= 0
    note = margin_note(score.details)
    assert note in run.notes and (f"the {changed} samples" in note if changed < 10 else "10 smallest" in note)


def top3_agreement(reference, variant, labels) -> float:
    ref, var = reference["logits"], variant["logits"]
    return float(np.mean([set(np.argsort(-r)[:3]) == set(np.argsort(-v)[:3]) for r, v in zip(ref, var, strict=True)]))


def test_a_users_metric_decides_by_function_or_module_path(tmp_path: Path):
    pipeline = Pipeline(tmp_path / "ws")
    run = pipeline.run(sample("digits_cnn"), BuildOptions("int8", repeats=3, metric=top3_agreement, budget=0.5))
    score = task_score(run.drift)
    assert score.metric.endswith(":top3_agreement") and 0.5 <= score.value <= 1.0 and score.met
    by_path = pipeline.run(sample("digits_cnn"), BuildOptions("int8", repeats=3, metric="test_tasks:top3_agreement",
                                                                 budget=0.5))
    assert task_score(by_path.drift).value == pytest.approx(score.value)
    with pytest.raises(WorkbenchError, match="needs a budget"):
        pipeline.run(sample("digits_cnn"), BuildOptions("int8", metric=top3_agreement))
    with pytest.raises(WorkbenchError, match="module:function"):
        pipeline.run(sample("digits_cnn"), BuildOptions("int8", metric="nocolon", budget=1))


def test_dense_maps_are_judged_by_iou_per_image(tmp_path: Path):
    model = head_cut(sample("digits_resnet"), "/layers/layers.1/Relu_1_output_0", tmp_path)
    folder = sample("digits_resnet").parent
    options = BuildOptions("int8", calib=folder / "calib.npz", eval=folder / "eval.npz", repeats=3)
    run = Pipeline(tmp_path / "ws").run(model, options)
    score = task_score(run.drift)
    assert score.task == "dense" and score.guessed and score.metric == "iou"
    assert score.details["min_image_iou"] <= score.value <= 1.0 and 0 < score.details["overall_iou"] <= 1.0
    same = Pipeline(tmp_path / "ws").run(model, BuildOptions("fp32", eval=folder / "eval.npz", repeats=3))
    assert task_score(same.drift).value == 1.0


def test_sequence_decodes_and_raw_on_real_token_outputs(tmp_path: Path):
    model = head_cut(sample("digits_vit"), "/norm/LayerNormalization_output_0", tmp_path)
    folder = sample("digits_vit").parent
    pipeline = Pipeline(tmp_path / "ws")
    seq = pipeline.run(model, BuildOptions("int8-dynamic", eval=folder / "eval.npz", repeats=3, task="sequence"))
    score = task_score(seq.drift)
    assert score.task == "sequence" and not score.guessed and 0 <= score.value <= 1
    assert 0 <= score.details["char_error_rate"] <= 1 and (score.value == 1) == (score.details["char_error_rate"] == 0)
    raw = pipeline.run(model, BuildOptions("int8-dynamic", eval=folder / "eval.npz", repeats=3, task="raw"))
    assert task_score(raw.drift).value == pytest.approx(raw.drift["cosine_similarity"])
    assert raw.run_id != seq.run_id


def test_embedding_cosine_counts_real_tokens_only(tmp_path: Path):
    """Token vectors of the real ViT, FP32 against dynamic INT8, with the last tokens marked as padding."""
    model = head_cut(sample("digits_vit"), "/norm/LayerNormalization_output_0", tmp_path)
    folder = sample("digits_vit").parent
    Pipeline(tmp_path / "ws").run(model, BuildOptions("int8-dynamic", eval=folder / "eval.npz", repeats=1, task="raw"))
    variant_file = next((tmp_path / "ws" / "artifacts").glob("*/model.onnx"))
    with np.load(folder / "eval.npz") as data:
        inputs = {"input": data["input"][:16]}
    backend = get_backend()
    with backend.load(model) as ref_engine, backend.load(variant_file) as var_engine:
        ref, var = ref_engine.infer(inputs), var_engine.infer(inputs)
    tokens = next(iter(ref.values()))
    mask = np.ones(tokens.shape[:2], dtype=np.int64)
    mask[:, tokens.shape[1] // 2:] = 0
    padded = {k: v.copy() for k, v in var.items()}
    next(iter(padded.values()))[:, tokens.shape[1] // 2:] *= -1  # padding positions may differ at will
    meter = EmbeddingMeter()
    meter.update(ref, padded, None, {"attention_mask": mask})
    figures = meter.figures()
    clean = EmbeddingMeter()
    clean.update(ref, var, None, {"attention_mask": mask})
    assert figures["token_cosine"] == pytest.approx(clean.figures()["token_cosine"])
    assert figures["sentence_cosine"] == pytest.approx(clean.figures()["sentence_cosine"])
    assert figures["token_cosine_with_padding"] < 0.6 < figures["token_cosine"]
    assert guess_task(ref, {"input_ids": mask, "attention_mask": mask})[0] == "embedding"


def test_detection_matching_needs_same_class_and_overlap():
    boxes = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [100, 100, 140, 160]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7])
    kept = nms(boxes, scores, np.array([1, 1, 2]))
    assert kept.tolist() == [0, 2]  # the overlapping same-class box is suppressed
    assert nms(boxes, scores, np.array([1, 3, 2])).tolist() == [0, 1, 2]  # other classes never suppress
    ref = Detections(boxes[[0, 2]], scores[[0, 2]], np.array([1, 2]))
    moved = Detections(boxes[[0, 2]] + [[0, 0, 0, 0], [30, 30, 30, 30]], scores[[0, 2]], np.array([1, 2]))
    relabelled = Detections(boxes[[0, 2]], scores[[0, 2]], np.array([1, 5]))
    assert matched(ref, ref) == 2 and matched(ref, moved) == 1 and matched(ref, relabelled) == 1


def test_yolo_layout_decodes_in_either_orientation():
    rng = np.random.default_rng(0)
    head = np.zeros((1, 4 + 3, 200))
    head[0, :2] = rng.uniform(50, 600, (2, 200))
    head[0, 2:4] = rng.uniform(10, 60, (2, 200))
    head[0, 4:] = rng.uniform(0, 0.3, (3, 200))
    first = decode({"output0": head})[0]
    turned = decode({"output0": np.swapaxes(head, 1, 2)})[0]
    assert len(first.boxes) > 0 and np.array_equal(first.boxes, turned.boxes)
    assert (first.scores >= 0.25).all()


def test_task_choice_is_checked():
    with pytest.raises(WorkbenchError, match="Unknown task"):
        TaskChoice("segmentation")
    with pytest.raises(WorkbenchError, match="at most 1"):
        TaskChoice("detection", budget=95)


def test_streamed_judgement_matches_a_whole_set_judgement(tmp_path: Path):
    """Batch size must not change the verdict: meters accumulate, they do not average batch means."""
    model = sample("digits_cnn")
    with np.load(model.parent / "eval.npz") as data:
        evaluation = Dataset({"input": data["input"][:50]}, data["labels"][:50], "eval")
    backend = get_backend()
    with backend.load(model) as reference, backend.load(model) as variant:
        one = compare_engines(reference, variant, evaluation, 50)
        many = compare_engines(reference, variant, evaluation, 7)
    assert one["task"]["value"] == many["task"]["value"] == 1.0
    assert one["samples"] == many["samples"] == 50
