"""TensorRT backend: the option mapping, version rules, profiles and messages everywhere; real
builds where TensorRT and a GPU are present (marked ``tensorrt``, skipped with the reason elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import workbench
from polygraphy.backend.trt import CreateConfig

from workbench.backends.registry import availability, get_backend
from workbench.backends.tensorrt_backend import TensorrtBackend, _model_io, _precision_of
from workbench.backends.tensorrt_config import (
    INSTALL_HINT,
    TrtBuildOptions,
    create_config_kwargs,
    default_timing_cache,
    optimization_profile,
    parse_version,
    precision_flags,
    validate_options,
    version_problem,
)
from workbench.build_options import BuildOptions
from workbench.errors import BackendUnavailable, BuildError
from workbench.model.inspect import TensorInfo

TRT = TensorrtBackend.availability()
needs_trt = pytest.mark.skipif(not TRT.available, reason=f"tensorrt unavailable: {TRT.reason}")


# ------------------------------------------------------------------ versions


@pytest.mark.parametrize(("text", "expected"), [("10.13.0.35", (10, 13)), ("11.4.1", (11, 4)), ("8.6", (8, 6))])
def test_parse_version(text: str, expected: tuple[int, int]) -> None:
    assert parse_version(text) == expected


def test_unreadable_version_is_a_backend_problem() -> None:
    with pytest.raises(BackendUnavailable, match="unreadable"):
        parse_version("dev")


def test_only_tensorrt_10_and_11_are_supported() -> None:
    assert version_problem("10.0.1") is None and version_problem("11.4.1") is None
    problem = version_problem("8.6.1")
    assert problem and "TensorRT 10 and 11" in problem and "onnx-workbench[tensorrt]" in problem


# ------------------------------------------------------------------ options -> CreateConfig


def test_strongly_typed_builds_have_no_precision_flags_on_either_version() -> None:
    for major in (10, 11):
        for precision in ("fp32", "fp16", "bf16", "int8"):
            assert precision_flags(precision, major, strongly_typed=True) == {}


def test_weak_typing_flags_exist_only_on_tensorrt_10() -> None:
    assert precision_flags("fp16", 10, strongly_typed=False) == {"fp16": True}
    assert precision_flags("int8", 10, strongly_typed=False) == {"int8": True}
    assert precision_flags("fp32", 10, strongly_typed=False) == {}
    assert precision_flags("fp16", 11, strongly_typed=False) == {}


def test_weak_typing_on_tensorrt_11_is_refused_with_the_way_out() -> None:
    validate_options(TrtBuildOptions(strongly_typed=False), 10)
    with pytest.raises(BuildError, match="strongly typed") as info:
        validate_options(TrtBuildOptions(strongly_typed=False), 11)
    assert "Q/DQ" in str(info.value)


@pytest.mark.parametrize("level", [-1, 6])
def test_optimization_level_out_of_range(level: int) -> None:
    with pytest.raises(BuildError, match="optimization level"):
        validate_options(TrtBuildOptions(optimization_level=level), 10)


def test_kwargs_are_accepted_by_polygraphy_create_config(tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"")
    profile = {"input": ((1, 1, 28, 28), (8, 1, 28, 28), (32, 1, 28, 28))}
    options = TrtBuildOptions(optimization_level=5, sparse_weights=True, strongly_typed=False)
    kwargs = create_config_kwargs(options, "fp16", 10, profile, cache)
    config = CreateConfig(**kwargs)  # Polygraphy's real loader: unknown or misspelt options raise here
    assert config.builder_optimization_level == 5 and config.sparse_weights and config.fp16
    assert config.timing_cache_path == str(cache)
    (shapes,) = config.profiles
    assert tuple(shapes["input"].min) == (1, 1, 28, 28) and tuple(shapes["input"].max) == (32, 1, 28, 28)
    assert tuple(shapes["input"].opt) == (8, 1, 28, 28)


def test_2of4_weights_switch_on_sparse_kernels_and_only_then(tmp_path: Path) -> None:
    backend = TensorrtBackend(TrtBuildOptions(optimization_level=4), engine_dir=tmp_path)
    sparse = backend.for_weights(sparse_2of4=True)
    assert sparse.options.sparse_weights and sparse.options.optimization_level == 4 and sparse.engine_dir == tmp_path
    assert not backend.options.sparse_weights  # the shared instance is left as it was
    assert backend.for_weights(sparse_2of4=False) is backend
    config = CreateConfig(**create_config_kwargs(sparse.options, "fp16", 11, {}, tmp_path / "absent.cache"))
    assert config.sparse_weights


def test_tensorrt_11_config_carries_no_precision_flag_and_no_missing_cache(tmp_path: Path) -> None:
    kwargs = create_config_kwargs(TrtBuildOptions(), "int8", 11, {}, tmp_path / "absent.cache")
    config = CreateConfig(**kwargs)
    assert not (config.fp16 or config.int8 or config.bf16)
    assert "load_timing_cache" not in kwargs and "profiles" not in kwargs


# ------------------------------------------------------------------ optimization profiles


def test_dynamic_batch_becomes_one_profile() -> None:
    inputs = [TensorInfo("input", ("batch", 1, 28, 28), "float32")]
    assert optimization_profile(inputs, 8) == {"input": ((1, 1, 28, 28), (8, 1, 28, 28), (8, 1, 28, 28))}
    assert optimization_profile(inputs, 8, max_batch=64)["input"][2] == (64, 1, 28, 28)


def test_fixed_shapes_need_no_profile() -> None:
    assert optimization_profile([TensorInfo("x", (4, 3, 32, 32), "float32")], 4) == {}


def test_other_dynamic_dims_are_refused_by_name() -> None:
    inputs = [TensorInfo("tokens", ("batch", "sequence"), "int64")]
    with pytest.raises(BuildError, match="'sequence' at axis 1"):
        optimization_profile(inputs, 1)


def test_profile_from_a_real_sample(cnn: Path) -> None:
    inputs, outputs, nodes = _model_io(cnn)
    profile = optimization_profile(inputs, 16)
    (name,) = profile
    low, opt, high = profile[name]
    assert name == "input" and low[0] == 1 and opt[0] == 16 and high[0] == 16
    assert low[1:] == opt[1:] == high[1:] and all(d > 0 for d in opt)
    assert outputs == ["logits"] and nodes


def test_precision_is_read_back_from_variant_files(cnn: Path, tmp_path: Path) -> None:
    from workbench.data.loaders import load_data
    from workbench.model.inspect import inspect_model
    from workbench.model.loader import load_model
    from workbench.precision.variants import build_variant

    cpu = get_backend("onnxruntime-cpu")
    info = inspect_model(load_model(cnn))
    calib = load_data(cnn.parent / "calib.npz", info.inputs, None).take(16)
    assert _precision_of(cnn) == "fp32"
    for precision in ("fp16", "int8"):
        out = tmp_path / f"{precision}.onnx"
        build_variant(cnn, out, precision, check=cpu.check_loadable, target="tensorrt", calib=calib)
        assert _precision_of(out) == precision


def test_timing_cache_is_per_version_under_the_user_cache() -> None:
    path = default_timing_cache("10.13.0", {"XDG_CACHE_HOME": "/c"})
    assert path == Path("/c/onnx-workbench/tensorrt/timing-10.13.0.cache")
    assert default_timing_cache("11.0", {"HOME": "/h"}) == Path("/h/.cache/onnx-workbench/tensorrt/timing-11.0.cache")


# ------------------------------------------------------------------ without TensorRT


@pytest.mark.skipif(TRT.available, reason="TensorRT is installed here")
def test_missing_tensorrt_is_one_line_with_install_hint(cnn: Path, cli_env: dict[str, str]) -> None:
    assert availability()["tensorrt"].reason == INSTALL_HINT
    with pytest.raises(BackendUnavailable, match=r"onnx-workbench\[tensorrt\]"):
        get_backend("tensorrt")
    result = workbench("run", str(cnn), "--precision", "fp16", "--backend", "tensorrt", env=cli_env)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "pip install 'onnx-workbench[tensorrt]'" in lines[0] and "pypi.nvidia.com" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(TRT.available, reason="TensorRT is installed here")
def test_backends_command_explains_tensorrt(cli_env: dict[str, str]) -> None:
    result = workbench("backends", "--json", env=cli_env)
    assert json.loads(result.stdout)["tensorrt"] == {"available": False, "reason": INSTALL_HINT}


# ------------------------------------------------------------------ with TensorRT and a GPU


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_matches_cpu_and_profiles_layers(cnn: Path, tmp_path: Path) -> None:
    feed = {"input": np.load(cnn.parent / "eval.npz")["input"][:8].astype(np.float32)}
    backend = TensorrtBackend(TrtBuildOptions(timing_cache=tmp_path / "timing.cache"))
    assert backend.check_loadable(cnn) is None
    with get_backend("onnxruntime-cpu").load(cnn) as cpu:
        expected = cpu.infer(feed)["logits"]
    engine = backend.load(cnn, profile_dir=tmp_path / "profile")
    try:
        np.testing.assert_allclose(engine.infer(feed)["logits"], expected, rtol=1e-3, atol=1e-3)
        times = [engine.time_once(feed) for _ in range(5)]
        assert all(t > 0 for t in times)
        profile = engine.end_profiling(warmup=1, batch=8)
        table = profile.layers
        assert len(table) > 0 and (table["time_ms"] > 0).all()
        assert profile.kernel_run_ms >= table["time_ms"].sum() * 0.5
    finally:
        engine.close()
    assert (tmp_path / "timing.cache").is_file()
    info = json.loads((tmp_path / "profile" / "trt_layer_info.json").read_text())
    assert info["Layers"]


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_pipeline_fp16_and_int8(cnn: Path) -> None:
    from workbench.runs.pipeline import Pipeline

    pipeline = Pipeline()
    for precision in ("fp16", "int8"):
        run = pipeline.run(cnn, BuildOptions(precision, backend="tensorrt", batch=8, repeats=5))
        assert run.drift["top1_agreement"] > 0.95, precision
    sparse = pipeline.run(cnn, BuildOptions("fp16", backend="tensorrt", batch=8, repeats=5, prune_method="2:4",
                                                prune_ratio=0.5))
    assert sparse.spec.prune_method == "2:4" and sparse.drift["top1_agreement"] > 0.9
