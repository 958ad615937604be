"""CUDA provider options per precision of the file, and the check that keeps speed settings honest.

The choice is made from the ONNX file alone, so it is tested here on the CPU with real variants of
the sample models; the sessions that use it need a GPU (``tests/test_backend_cuda.py``, marker gpu).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import sample

from workbench.backends.cuda_option_check import judge_options
from workbench.backends.cuda_options import choose_options, file_compute
from workbench.backends.onnxruntime_cuda import CUDA_PROVIDER, OnnxruntimeCudaBackend
from workbench.backends.registry import get_backend
from workbench.data.loaders import load_data
from workbench.errors import DataError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.precision.variants import build_variant

CPU = get_backend("onnxruntime-cpu")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Each variant the tests read, built once: (sample, precision) -> file."""
    folder = tmp_path_factory.mktemp("variants")
    files = {}
    for name, precision in (("digits_resnet", "fp16"), ("digits_resnet", "int8"), ("digits_vit", "fp16")):
        src = sample(name)
        calib = None
        if precision == "int8":
            calib = load_data(src.parent / "calib.npz", inspect_model(load_model(src)).inputs).take(64)
        out = folder / f"{name}-{precision}.onnx"
        build_variant(src, out, precision, check=CPU.check_loadable, target="tensorrt", calib=calib)
        files[(name, precision)] = out
    return files


def _choice(path: Path, user: dict[str, str] | None = None):
    return choose_options(user or {}, onnx.load(str(path), load_external_data=False))


def test_fp32_reference_is_true_fp32_in_nchw(resnet: Path) -> None:
    choice = _choice(resnet)
    assert file_compute(onnx.load(str(resnet))) == "fp32"
    assert choice.options == {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0",
                              "prefer_nhwc": "0"}
    assert choice.tuned == () and choice.plain is None
    assert "use_tf32=0 (FP32 file" in choice.note and "fuse_conv_bias" not in choice.note


def _as_bf16(model: onnx.ModelProto) -> onnx.ModelProto:
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT16:
            init.data_type = onnx.TensorProto.BFLOAT16
    return model


def test_half_file_fuses_the_bias_channels_last_and_never_turns_tf32_off(resnet: Path, built: dict) -> None:
    # BF16 files differ only in their weights' type; the CPU that builds here has no BF16 convolution to keep
    half = built[("digits_resnet", "fp16")]
    for model in (onnx.load(str(half)), _as_bf16(onnx.load(str(half)))):
        choice = choose_options({}, model)
        assert file_compute(model) == "half"
        assert "use_tf32" not in choice.options
        assert choice.options["prefer_nhwc"] == "1" and choice.options["fuse_conv_bias"] == "1"
        assert choice.tuned == ("fuse_conv_bias",) and choice.plain == {"fuse_conv_bias": "0"}
        assert "use_tf32 at ONNX Runtime's default" in choice.note
        # the user's use_tf32=0 reaches the FP32 reference, never the half file
        given = choose_options({"use_tf32": "0"}, model)
        assert "use_tf32" not in given.options and "use_tf32=0 not applied" in given.note
        assert _choice(resnet, {"use_tf32": "0"}).options["use_tf32"] == "0"


def test_quantized_file_keeps_fp32_arithmetic_honest(built: dict) -> None:
    int8 = built[("digits_resnet", "int8")]
    choice = _choice(int8)
    assert file_compute(onnx.load(str(int8))) == "quantized"
    assert choice.options["use_tf32"] == "0" and choice.options["prefer_nhwc"] == "0"
    assert "Q/DQ file" in choice.note and choice.tuned == ()


def test_no_convolution_no_fused_bias(built: dict) -> None:
    model = onnx.load(str(built[("digits_vit", "fp16")]))
    has_conv = any(node.op_type == "Conv" for node in model.graph.node)
    choice = choose_options({}, model)
    assert ("fuse_conv_bias" in choice.options) == has_conv
    assert has_conv  # the ViT's patch embedding
    kept = [node for node in model.graph.node if node.op_type != "Conv"]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    without = choose_options({}, model)
    assert "fuse_conv_bias" not in without.options and without.tuned == () and without.plain is None


def test_user_options_win_and_say_so(resnet: Path, built: dict) -> None:
    half = built[("digits_resnet", "fp16")]
    choice = _choice(half, {"prefer_nhwc": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"})
    assert choice.options["prefer_nhwc"] == "0" and "fuse_conv_bias" not in choice.options
    assert "prefer_nhwc=0 (as given)" in choice.note and "EXHAUSTIVE (as given)" in choice.note
    # fuse_conv_bias alone brings channels-last with it, even for an FP32 file
    fused = _choice(resnet, {"fuse_conv_bias": "1"})
    assert fused.options["prefer_nhwc"] == "1" and "channels-last for the fused bias" in fused.note


@pytest.mark.parametrize("options, words", [
    ({"cudnn_conv_algo_search": "DEFAULT"}, "cudnn_conv_algo_search=DEFAULT"),
    ({"fuse_conv_bias": "1", "prefer_nhwc": "0"}, "fuse_conv_bias=1 needs channels-last"),
])
def test_measured_wrong_options_are_refused_before_anything_runs(options: dict[str, str], words: str) -> None:
    with pytest.raises(DataError, match=words):
        OnnxruntimeCudaBackend(options)


def test_providers_carry_the_choice_and_the_graph_switch(built: dict) -> None:
    half = built[("digits_resnet", "fp16")]
    name, options = OnnxruntimeCudaBackend().providers_for(half, graphs=True)[0]
    assert name == CUDA_PROVIDER and options["enable_cuda_graph"] == "1" and options["fuse_conv_bias"] == "1"
    plain = OnnxruntimeCudaBackend().option_choice(half).without(("fuse_conv_bias",), "")
    _, options = OnnxruntimeCudaBackend().providers_for(half, choice=plain)[0]
    assert options["fuse_conv_bias"] == "0" and "use_tf32" not in options and options["enable_cuda_graph"] == "0"
    assert "fuse_conv_bias=1" not in plain.note


def _outputs(path: Path, data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    with CPU.load(path) as engine:
        return [engine.infer({"input": data[i : i + 16]}) for i in range(0, len(data), 16)]


def test_the_check_keeps_what_stays_within_the_drift_and_refuses_what_does_not(resnet: Path, built: dict) -> None:
    """Real outputs: FP16 beside itself is kept; INT8 passed off as the 'tuned' FP16 adds far more error."""
    data = np.load(resnet.parent / "eval.npz")["input"][:64].astype(np.float32)
    reference = _outputs(resnet, data)
    half = _outputs(built[("digits_resnet", "fp16")], data)
    int8 = _outputs(built[("digits_resnet", "int8")], data)
    kept = judge_options(reference, half, half)
    assert kept.accepted and kept.tuned_error == kept.plain_error > 0
    assert "; kept" in kept.describe("fuse_conv_bias=1", 64, "eval.npz")
    refused = judge_options(reference, int8, half)
    assert not refused.accepted and refused.tuned_error > 1.5 * refused.plain_error
    assert "refused" in refused.describe("fuse_conv_bias=1", 64, "eval.npz")
    broken = [{name: np.full_like(value, np.nan) for name, value in batch.items()} for batch in half]
    assert not judge_options(reference, broken, half).accepted
