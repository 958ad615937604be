"""FP8 (E4M3): the Q/DQ file, its GemmFloat8 rewrite for ONNX Runtime CUDA, and the refusals where it cannot run.

The refusals are decided before anything is built, from the backend and the GPU's compute capability,
so they are tested here on the CPU; the rewrite's graph is checked against the Q/DQ file with ONNX's
reference evaluator (ONNX Runtime's CPU provider has no GemmFloat8 kernel), and on a GPU by the backend.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import sample, workbench
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from workbench.backends.fp8_support import fp8_refusal, parse_gpu_query
from workbench.backends.gemm_float8 import MS_DOMAIN, rewrite_gemm_float8
from workbench.backends.onnxruntime_cuda import OnnxruntimeCudaBackend
from workbench.backends.registry import get_backend
from workbench.backends.tensorrt_backend import TensorrtBackend
from workbench.build_options import BuildOptions
from workbench.data.loaders import load_data
from workbench.errors import BuildError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.precision.variants import build_variant
from workbench.runs.pipeline import Pipeline

CPU = get_backend("onnxruntime-cpu")


@pytest.fixture(scope="module")
def vit_fp8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    src = sample("digits_vit")
    calib = load_data(src.parent / "calib.npz", inspect_model(load_model(src)).inputs).take(16)
    out = tmp_path_factory.mktemp("fp8") / "fp8.onnx"
    build = build_variant(src, out, "fp8", check=CPU.check_loadable, target="tensorrt", calib=calib,
                          finish_fp8=CPU.finish_fp8)
    return out, build.notes


# ------------------------------------------------------------------ where it runs, and the one sentence where not


def test_refusals_are_one_sentence_with_the_way_out() -> None:
    for gpu in (None, ("NVIDIA A100-SXM4-80GB", (8, 0)), ("NVIDIA GeForce RTX 3090", (8, 6)), ("NVIDIA L4", None)):
        sentence = fp8_refusal("onnxruntime-cuda", gpu)
        assert sentence and sentence.startswith("FP8 needs an NVIDIA GPU of compute capability 8.9")
        assert sentence.endswith(".") and ". " not in sentence and "use fp16 or int8" in sentence
    assert "8.0, without FP8 tensor cores" in fp8_refusal("x", ("NVIDIA A100-SXM4-80GB", (8, 0)))
    for gpu in (("NVIDIA L4", (8, 9)), ("NVIDIA H200", (9, 0)), ("NVIDIA B200", (10, 0))):
        assert fp8_refusal("onnxruntime-cuda", gpu) is None


def test_the_backend_listing_says_whether_fp8_runs_on_the_gpu() -> None:
    from workbench.backends.onnxruntime_cuda import gpu_details

    hopper = gpu_details(("NVIDIA H200", (9, 0)))
    assert hopper[0] == "GPU 0: NVIDIA H200, compute capability 9.0" and "GemmFloat8" in hopper[1]
    ampere = gpu_details(("NVIDIA A100-SXM4-80GB", (8, 0)))
    assert ampere[1] == "fp8: refused (this NVIDIA A100-SXM4-80GB is 8.0, without FP8 tensor cores)"


def test_the_driver_query_is_read_as_name_and_capability() -> None:
    assert parse_gpu_query("NVIDIA H200, 9.0\n") == ("NVIDIA H200", (9, 0))
    assert parse_gpu_query("NVIDIA A100-SXM4-80GB, 8.0") == ("NVIDIA A100-SXM4-80GB", (8, 0))
    assert parse_gpu_query("Tesla K80, [N/A]") == ("Tesla K80", None)
    assert parse_gpu_query("") == ("NVIDIA GPU 0", None)


class _OnGpu(OnnxruntimeCudaBackend):
    """The CUDA backend on a given GPU: the capability check itself, whatever GPU this machine has."""

    def __init__(self, gpu: tuple[str, tuple[int, int]]) -> None:
        super().__init__()
        self.gpu = gpu

    def fp8_gpu(self) -> tuple[str, tuple[int, int]]:
        return self.gpu


def test_gpus_before_ada_refuse_and_hopper_takes_it() -> None:
    with pytest.raises(BuildError, match=r"this NVIDIA A100-SXM4-80GB is 8\.0"):
        _OnGpu(("NVIDIA A100-SXM4-80GB", (8, 0))).check_precision("fp8")
    _OnGpu(("NVIDIA H200", (9, 0))).check_precision("fp8")
    _OnGpu(("NVIDIA A100-SXM4-80GB", (8, 0))).check_precision("fp16")  # other precisions are not its business


def test_cpu_refuses_in_one_line_before_building(cnn: Path, cli_env: dict[str, str]) -> None:
    with pytest.raises(BuildError, match="onnxruntime-cpu does not run on one"):
        Pipeline().run(cnn, BuildOptions("fp8"))
    assert not Pipeline().runs()
    result = workbench("run", str(cnn), "--precision", "fp8", env=cli_env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: FP8 needs an NVIDIA GPU")
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ the file


def test_fp8_file_is_e4m3_qdq_at_opset_19_and_says_it_is_simulated_here(vit_fp8: tuple[Path, list[str]]) -> None:
    path, notes = vit_fp8
    model = onnx.load(str(path))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 19
    weights = Counter(init.data_type for init in model.graph.initializer)
    assert weights[TensorProto.FLOAT8E4M3FN] > 0
    zero_points = {node.input[2] for node in model.graph.node if node.op_type == "QuantizeLinear"}
    zero_types = {init.data_type for init in model.graph.initializer if init.name in zero_points}
    assert zero_types == {TensorProto.FLOAT8E4M3FN}
    assert any(note.startswith("FP8 Q/DQ (FLOAT8E4M3FN") and "calib.npz (16 samples" in note for note in notes)
    assert any("run as a simulation" in note for note in notes)
    assert "FP8 tensor cores" in TensorrtBackend().finish_fp8(path, path, None)[0]


class GemmFloat8(OpRun):
    """GemmFloat8's documented arithmetic (row-major, per-tensor scales, FP32 result)."""

    op_domain = MS_DOMAIN

    def _run(self, a, b, c=None, scale_a=None, scale_b=None, scale_y=None, transA=0, transB=0, dtype=1,
             alpha=1.0, beta=0.0, activation=None):
        left = a.astype(np.float32) * np.float32(scale_a.reshape(-1)[0])
        right = b.astype(np.float32) * np.float32(scale_b.reshape(-1)[0])
        return ((left.T if transA else left) @ (right.T if transB else right),)


def test_gemm_float8_rewrite_computes_what_the_qdq_file_does(vit_fp8: tuple[Path, list[str]]) -> None:
    path, _ = vit_fp8
    qdq = onnx.load(str(path))
    model = onnx.load(str(path))
    rewrite = rewrite_gemm_float8(model)
    products = sum(node.op_type in ("MatMul", "Gemm") for node in qdq.graph.node)
    assert rewrite.rewritten > 0 and rewrite.rewritten + len(rewrite.skipped) == products
    assert f"{rewrite.rewritten} of {products} matrix products rewritten to com.microsoft.GemmFloat8" in rewrite.note()
    assert any(o.domain == MS_DOMAIN for o in model.opset_import)
    gemms = [node for node in model.graph.node if node.op_type == "GemmFloat8"]
    assert len(gemms) == rewrite.rewritten and all(node.domain == MS_DOMAIN for node in gemms)
    inits = {init.name: init for init in model.graph.initializer}
    for node in gemms:
        assert {a.name: helper.get_attribute_value(a) for a in node.attribute}["transB"] == 1
        weight = inits[node.input[1]]
        assert weight.data_type == TensorProto.FLOAT8E4M3FN and all(d % 16 == 0 for d in weight.dims)
    x = np.load(sample("digits_vit").parent / "eval.npz")["input"][:3].astype(np.float32)
    expected = ReferenceEvaluator(qdq).run(None, {"input": x})[0]
    got = ReferenceEvaluator(model, new_ops=[GemmFloat8]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_fp8_files_are_keyed_by_their_calibration_data() -> None:
    from workbench.runs.spec import RunSpec

    one, other = (RunSpec("m", "model", "fp8", "onnxruntime-cuda", calib_digest=digest) for digest in ("a", "b"))
    assert one.artifact_fields()["calib"] == "a" and one.artifact_key != other.artifact_key


def test_fp8_calibrates_a_transformer_whose_attention_mask_no_histogram_can_bin(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MiniLM adds float32's lowest value at padded positions: numpy cannot bin that range, which used to
    fail the whole FP8 build. Those tensors are left out and said so; the file loads and runs."""
    from tests.zoo_models import zoo_model
    from workbench.data.loaders import load_npz
    from workbench.precision.fp8 import quantize_fp8

    minilm = zoo_model("minilm_l3", request, monkeypatch)
    calib = load_npz(minilm.calib_npz).take(8)
    assert (calib.inputs["attention_mask"] == 0).any(), "the calibration data must hold padding"
    out = tmp_path / "fp8.onnx"
    notes = quantize_fp8(minilm.onnx_path, out, calib, cache_dir=tmp_path / "cache")
    left_out = next(n for n in notes if n.startswith("left out of FP8 calibration"))
    assert "attention mask" in left_out
    ops = Counter(node.op_type for node in onnx.load(str(out)).graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["MatMul"] > 0
    import onnxruntime as ort

    feed = load_npz(minilm.eval_npz).take(4).inputs
    fp8 = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)[-1]
    fp32 = ort.InferenceSession(str(minilm.onnx_path), providers=["CPUExecutionProvider"]).run(None, feed)[-1]
    cosine = (fp8 * fp32).sum(1) / np.linalg.norm(fp8, axis=1) / np.linalg.norm(fp32, axis=1)
    assert fp8.shape == fp32.shape and np.isfinite(fp8).all() and cosine.min() > 0.8
