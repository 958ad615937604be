"""ONNX Runtime CUDA backend: availability explained everywhere, and real runs where a GPU is.

The tests marked ``gpu`` need an NVIDIA GPU with onnxruntime-gpu (and no CPU onnxruntime
shadowing it); elsewhere they skip with the reason ``workbench backends`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import workbench

from workbench.backends import cuda_graphs
from workbench.backends.onnxruntime_cuda import (
    CUDA_PROVIDER,
    OnnxruntimeCudaBackend,
    explain_cuda_availability,
)
from workbench.backends.registry import availability, backend_names, get_backend
from workbench.build_options import BuildOptions
from workbench.errors import BackendUnavailable

CUDA = OnnxruntimeCudaBackend.availability()
needs_gpu = pytest.mark.skipif(not CUDA.available, reason=f"onnxruntime-cuda unavailable: {CUDA.reason}")


# ------------------------------------------------------------------ explained everywhere


def test_no_onnxruntime_says_how_to_install() -> None:
    status = explain_cuda_availability([], None, None)
    assert not status.available and "onnx-workbench[gpu]" in status.reason


def test_cpu_build_alone_says_to_swap_it() -> None:
    status = explain_cuda_availability(["onnxruntime"], ["CPUExecutionProvider"], None)
    assert not status.available
    assert "pip uninstall -y onnxruntime" in status.reason and "onnx-workbench[gpu]" in status.reason


def test_both_builds_shadowing_names_what_to_uninstall() -> None:
    status = explain_cuda_availability(["onnxruntime", "onnxruntime-gpu"], ["CPUExecutionProvider"], None)
    assert not status.available
    assert "shadows" in status.reason and "pip uninstall -y onnxruntime onnxruntime-gpu" in status.reason


def test_gpu_build_without_a_working_device_points_at_driver_and_libraries() -> None:
    status = explain_cuda_availability(["onnxruntime-gpu"], [CUDA_PROVIDER, "CPUExecutionProvider"],
                                       "the session fell back to the CPU")
    assert not status.available and "nvidia-smi" in status.reason and "cuDNN" in status.reason


def test_working_gpu_build_is_available_and_warns_about_a_second_build() -> None:
    alone = explain_cuda_availability(["onnxruntime-gpu"], [CUDA_PROVIDER], None)
    both = explain_cuda_availability(["onnxruntime", "onnxruntime-gpu"], [CUDA_PROVIDER], None)
    assert alone.available and both.available
    assert "uninstall" not in alone.reason and "uninstall it" in both.reason


def test_registered_with_reason_and_gpu_int8_flavour() -> None:
    assert "onnxruntime-cuda" in backend_names()
    status = availability()["onnxruntime-cuda"]
    assert status == CUDA and status.reason
    assert OnnxruntimeCudaBackend.quant_target == "tensorrt"  # symmetric S8 Q/DQ, as GPUs consume it



@pytest.mark.skipif(CUDA.available, reason="this machine can run onnxruntime-cuda")
def test_unavailable_backend_is_one_clear_cli_line(cnn: Path, cli_env: dict[str, str]) -> None:
    with pytest.raises(BackendUnavailable, match="pip"):
        get_backend("onnxruntime-cuda")
    result = workbench("run", str(cnn), "--backend", "onnxruntime-cuda", env=cli_env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and CUDA.reason in lines[0]
    assert "Traceback" not in result.stderr


def test_backends_command_lists_gpu_backends_with_reasons(cli_env: dict[str, str]) -> None:
    result = workbench("backends", "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"onnxruntime-cpu", "onnxruntime-cuda", "tensorrt"} <= set(data)
    for entry in data.values():
        assert entry["reason"]


# ------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
@needs_gpu
def test_cuda_graphs_time_and_compute_what_plain_runs_do(cnn: Path) -> None:
    data = np.load(cnn.parent / "eval.npz")["input"].astype(np.float32)
    feed, other = {"input": data[:8]}, {"input": data[8:16].copy()}
    with get_backend("onnxruntime-cpu").load(cnn) as cpu, get_backend("onnxruntime-cuda").load(cnn) as gpu:
        assert gpu.session.get_providers()[0] == CUDA_PROVIDER
        assert gpu.execution_notes()[1:] == [cuda_graphs.ON.note]
        options_note = gpu.execution_notes()[0]
        assert options_note.startswith("CUDA provider options: ") and "use_tf32=0" in options_note
        plain = gpu.infer(feed)["logits"]  # before any timing: a plain run
        np.testing.assert_allclose(plain, cpu.infer(feed)["logits"], rtol=1e-3, atol=1e-3)
        times = [gpu.time_once(feed) for _ in range(5)]  # captures, then replays
        assert all(t > 0 for t in times)
        np.testing.assert_array_equal(gpu.infer(feed)["logits"], plain)  # a replay of the timed graph
        # new data of the timed shape is copied into the graph's inputs, not left stale
        gpu.time_once(other)
        np.testing.assert_allclose(gpu.infer(other)["logits"], cpu.infer(other)["logits"], rtol=1e-3, atol=1e-3)
        # another shape gets its own graph, and the first still replays right
        small = {"input": data[:3].copy()}
        gpu.time_once(small)
        np.testing.assert_allclose(gpu.infer(small)["logits"], cpu.infer(small)["logits"], rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(gpu.infer(feed)["logits"], plain)


@pytest.mark.gpu
@needs_gpu
def test_cuda_graphs_off_say_why_and_still_run(cnn: Path, tmp_path: Path) -> None:
    from tests.test_cuda_graphs import _if_model

    path = tmp_path / "if.onnx"
    onnx.save(_if_model(), str(path))
    x = {"x": np.array([[1, -2, 3], [4, -5, 6]], np.float32)}
    with get_backend("onnxruntime-cuda").load(path) as gpu:
        assert len(gpu.execution_notes()) == 2 and "If node 'sign_branch'" in gpu.execution_notes()[1]
        gpu.time_once(x)
        np.testing.assert_array_equal(gpu.infer(x)["y"], np.maximum(x["x"], 0))
    with OnnxruntimeCudaBackend({cuda_graphs.OPTION: "0"}).load(cnn) as plain:
        assert "enable_cuda_graph=0" in plain.execution_notes()[1]
        assert plain.time_once({"input": np.load(cnn.parent / "eval.npz")["input"][:4].astype(np.float32)}) > 0


@pytest.mark.gpu
@needs_gpu
def test_onnx_runtime_refusing_graphs_is_the_reason(tmp_path: Path) -> None:
    """Det has no CUDA kernel: it runs on the CPU between copies, which ONNX Runtime cannot capture."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["d"]),
         helper.make_node("Sqrt", ["d"], ["y"])],
        "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    onnx.save(model, str(path))
    x = np.abs(np.random.default_rng(0).standard_normal((4, 2, 2)).astype(np.float32)) * np.eye(2, dtype=np.float32)
    with get_backend("onnxruntime-cuda").load(path) as gpu:
        notes = gpu.execution_notes()
        assert len(notes) == 2 and notes[1].startswith("CUDA graphs off: ONNX Runtime refused them")
        gpu.time_once({"x": x})
        np.testing.assert_allclose(gpu.infer({"x": x})["y"], np.sqrt(np.linalg.det(x)), rtol=1e-5)


@pytest.mark.gpu
@needs_gpu
def test_cuda_profile_records_nodes_on_the_gpu(cnn: Path, tmp_path: Path) -> None:
    feed = {"input": np.load(cnn.parent / "eval.npz")["input"][:4].astype(np.float32)}
    engine = get_backend("onnxruntime-cuda").load(cnn, profile_dir=tmp_path)
    assert "profiler" in engine.execution_notes()[1]  # a replayed graph would hide the nodes
    try:
        for _ in range(3):
            engine.time_once(feed)
        trace = engine.session.end_profiling()  # the raw ORT trace, to read the provider of each node
    finally:
        engine.close()
    events = json.loads(Path(trace).read_text())
    providers = {e["args"].get("provider") for e in events if e.get("cat") == "Node" and "args" in e}
    assert CUDA_PROVIDER in providers


@pytest.mark.gpu
@needs_gpu
def test_pipeline_fp16_on_cuda_keeps_drift_small(cnn: Path) -> None:
    from workbench.runs.pipeline import Pipeline

    run = Pipeline().run(cnn, BuildOptions("fp16", backend="onnxruntime-cuda", batch=16, repeats=5))
    assert run.spec.backend == "onnxruntime-cuda"
    assert run.drift["top1_agreement"] > 0.99 and run.drift["cosine_similarity"] > 0.999
    assert run.latency_ms["median"] > 0 and run.reference_latency_ms["median"] > 0
    assert cuda_graphs.ON.note in run.notes
    assert any(note.startswith("CUDA provider options: ") and "fuse_conv_bias=1" in note for note in run.notes)
    assert any("checked against FP32" in note and note.endswith("; kept") for note in run.notes)
    assert any(note.startswith("FP32 reference: CUDA provider options: ") and "use_tf32=0" in note
               for note in run.notes)


@pytest.mark.gpu
@needs_gpu
def test_half_file_loads_without_cudnn_frontend_errors(resnet: Path, tmp_path: Path, capfd) -> None:
    """use_tf32=0 on an FP16 file made cuDNN refuse its fused plans, one error line per convolution."""
    from workbench.precision.variants import build_variant

    half = tmp_path / "fp16.onnx"
    build_variant(resnet, half, "fp16", check=get_backend("onnxruntime-cpu").check_loadable)
    feed = {"input": np.load(resnet.parent / "eval.npz")["input"][:8].astype(np.float32)}
    capfd.readouterr()
    with get_backend("onnxruntime-cuda").load(half) as gpu:
        gpu.time_once(feed)
    assert "cudnn_frontend" not in capfd.readouterr().err


@pytest.mark.gpu
@needs_gpu
def test_fp8_builds_runs_and_is_judged_on_a_hopper_gpu(vit: Path) -> None:
    from workbench.backends.fp8_support import fp8_refusal
    from workbench.runs.pipeline import Pipeline

    backend = get_backend("onnxruntime-cuda")
    if fp8_refusal(backend.name, backend.fp8_gpu()):
        pytest.skip(fp8_refusal(backend.name, backend.fp8_gpu()))
    run = Pipeline().run(vit, BuildOptions("fp8", backend="onnxruntime-cuda", batch=8, repeats=5))
    assert any("com.microsoft.GemmFloat8" in note or "GemmFloat8 rewrite not used" in note for note in run.notes)
    assert run.drift["cosine_similarity"] > 0.9 and run.latency_ms["median"] > 0


def test_int8_on_cuda_says_accuracy_only_and_elsewhere_nothing() -> None:
    from workbench.backends.openvino_backend import OpenvinoBackend

    assert "accuracy" in OnnxruntimeCudaBackend.int8_accuracy_only
    assert get_backend("onnxruntime-cpu").int8_accuracy_only is None and OpenvinoBackend.int8_accuracy_only is None


@pytest.mark.gpu
@needs_gpu
def test_tune_skips_int8_on_cuda_unless_asked_and_runs_say_why(cnn: Path) -> None:
    from workbench.runs.pipeline import Pipeline
    from workbench.workflows.tune_runner import precisions_for

    model = onnx.load(str(cnn), load_external_data=False)
    searched = precisions_for("onnxruntime-cuda", model)
    assert "int8" not in searched and "fp16" in searched
    run = Pipeline().run(cnn, BuildOptions("int8", backend="onnxruntime-cuda", batch=8, repeats=5))
    assert any(note.startswith("INT8 on onnxruntime-cuda measures accuracy, not speed") for note in run.notes)
