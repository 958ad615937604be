"""Every backend that runs on this machine, driven the same way on a real sample model: open,
infer (against ONNX Runtime on the CPU), time, profile layer by layer, close. A backend added to
the registry joins this test without any change here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from workbench.backends.registry import availability, get_backend
from workbench.errors import WorkbenchError
from workbench.profiles.layer_table import COLUMNS

MARKS = {"onnxruntime-cuda": [pytest.mark.gpu], "tensorrt": [pytest.mark.tensorrt]}
AVAILABLE = [pytest.param(name, marks=MARKS.get(name, [])) for name, status in availability().items()
             if status.available]
WARMUP, RUNS, BATCH = 2, 6, 4


@pytest.mark.parametrize("name", AVAILABLE)
def test_open_infer_time_profile_close(name: str, cnn: Path, tmp_path: Path) -> None:
    with np.load(cnn.parent / "eval.npz") as data:
        feed = {"input": data["input"][:BATCH].astype(np.float32)}
    with get_backend("onnxruntime-cpu").load(cnn) as reference:
        expected = reference.infer(feed)
    backend = get_backend(name).for_workspace(tmp_path / "ws")
    engine = backend.load(cnn, profile_dir=tmp_path / "profile")
    try:
        outputs = engine.infer(feed)
        assert outputs.keys() == expected.keys()
        for key, value in expected.items():
            np.testing.assert_allclose(outputs[key], value, rtol=1e-3, atol=1e-3)
        times = [engine.time_once(feed) for _ in range(WARMUP + RUNS)]
        assert all(t > 0 for t in times)
        profile = engine.end_profiling(WARMUP, BATCH)
    finally:
        engine.close()
    engine.close()  # closing twice is allowed
    layers = profile.layers
    assert list(layers.columns) == COLUMNS and len(layers) > 0
    assert (layers["time_ms"] >= 0).all() and layers["time_ms"].sum() > 0
    graph = onnx.load(str(cnn)).graph
    named = {node for row in layers["onnx_nodes"] for node in row}
    assert named <= {node.name for node in graph.node}  # rows map back to the model's own nodes
    assert {node.name for node in graph.node if node.op_type == "Conv"} <= named  # every convolution timed
    assert profile.kernel_run_ms > 0


@pytest.mark.parametrize("name", AVAILABLE)
def test_an_engine_opened_without_a_profiler_says_so(name: str, cnn: Path, tmp_path: Path) -> None:
    with get_backend(name).for_workspace(tmp_path / "ws").load(cnn) as engine, \
            pytest.raises(WorkbenchError, match="without a profiler"):
        engine.end_profiling(0, 1)


def test_a_file_a_backend_cannot_load_is_one_sentence(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(WorkbenchError, match=r"onnxruntime-cpu could not load 'broken\.onnx'"):
        get_backend("onnxruntime-cpu").load(broken)
