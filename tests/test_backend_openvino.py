"""The OpenVINO backend on the real samples with the real OpenVINO (skipped where it is not installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import sample
from onnx import TensorProto, helper

from workbench.backends.registry import availability, get_backend
from workbench.build_options import BuildOptions
from workbench.errors import BuildError, ModelError
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run

openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'onnx-workbench[openvino]')")

from workbench.backends.openvino_backend import OpenvinoBackend, profile_of  # noqa: E402
from workbench.workflows.profile import profile_run  # noqa: E402

SAMPLES = ["digits_cnn", "digits_resnet", "digits_vit"]


def _cpu():
    return profile_of("CPU")


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "int8", "int8-dynamic"])
def test_every_sample_precision_builds_and_times(name: str, precision: str) -> None:
    model = sample(name)
    pipeline = Pipeline()
    if precision in ("bf16", "fp16") and not _cpu().supports(precision):
        with pytest.raises(BuildError, match=f"cannot run {precision.upper()}"):
            pipeline.run(model, BuildOptions(precision, backend="openvino", batch=8, repeats=3, warmup=1))
        return
    run = pipeline.run(model, BuildOptions(precision, backend="openvino", batch=8, repeats=3, warmup=1))
    assert run.spec.backend == "openvino"
    assert run.latency_ms["median"] > 0 and run.speedup > 0
    assert run.baseline_backend == "onnxruntime-cpu" and run.baseline_latency_ms["median"] > 0
    assert run.speedup_vs_baseline == pytest.approx(run.baseline_latency_ms["median"] / run.latency_ms["median"])
    assert run.drift["top1_agreement"] >= 0.9, run.drift
    hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}.get(precision, "f32")
    assert any(f"INFERENCE_PRECISION_HINT={hint}" in note for note in run.notes), run.notes
    if precision in ("bf16", "fp16"):
        # Precision by hint: the artifact is the FP32 file itself, and the run says so.
        assert any("by precision hint" in note for note in run.notes)
        assert onnx.load(run.artifact).graph.initializer[0].data_type == TensorProto.FLOAT


def _eval_inputs(model: Path) -> dict[str, np.ndarray]:
    data = np.load(model.parent / "eval.npz")
    return {k: data[k][:16] for k in data.files if k != "labels"}


@pytest.mark.parametrize("name", SAMPLES)
def test_fp32_matches_onnxruntime_within_1e4_relative(name: str) -> None:
    model = sample(name)
    feed = _eval_inputs(model)
    with get_backend("onnxruntime-cpu").load(model) as ort_engine, OpenvinoBackend().load(model) as ov_engine:
        expected, got = ort_engine.infer(feed), ov_engine.infer(feed)
    for output, reference in expected.items():
        scale = np.abs(reference).max()
        assert np.abs(got[output] - reference).max() <= 1e-4 * scale, output


def test_int8_layer_table_shows_int8_kernels(resnet: Path) -> None:
    pipeline = Pipeline()
    run = pipeline.run(resnet, BuildOptions("int8", backend="openvino", batch=8, repeats=3, warmup=1))
    check = next(note for note in run.notes if note.startswith("INT8 check"))
    assert "ran in INT8" in check and "ran dequantized" not in check, check
    profile = profile_run(run, BuildOptions(warmup=2, repeats=5), pipeline=pipeline)
    layers = profile.layers
    convs = layers[layers["op_type"] == "Conv"]
    assert len(convs) == sum(n.op_type == "Conv" for n in onnx.load(str(resnet)).graph.node)
    assert set(convs["precision"]) == {"INT8"}
    assert all(kernel.upper().endswith("_I8") for kernel in convs["kernel"])
    assert all(any(node.endswith("/Conv") for node in nodes) for nodes in convs["onnx_nodes"])
    assert (layers["time_ms"] > 0).all() and profile.layer_sum_ms > 0
    assert pipeline.runs()[0].tables  # the table is kept with the run


def test_backends_listing_names_cpu_features_and_precision_plan() -> None:
    status = availability()["openvino"]
    assert status.available
    text = "\n".join(status.details)
    assert "OpenVINO capabilities" in text and "CPU features" in text
    for precision in ("fp32", "bf16", "fp16", "int8"):
        assert f"\n{precision}: " in f"\n{text}"
    assert "INFERENCE_PRECISION_HINT=f32" in text


def _det_model(path: Path) -> Path:
    node = helper.make_node("Det", ["x"], ["y"], name="det")
    graph = helper.make_graph([node], "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_op_openvino_cannot_run_gets_one_sentence(tmp_path: Path, cli_env: dict[str, str]) -> None:
    model = _det_model(tmp_path / "det.onnx")
    with pytest.raises(ModelError, match="no implementation of the ONNX op Det"):
        Pipeline().run(model, BuildOptions("fp32", backend="openvino", eval="random:8", repeats=2))
    result = subprocess.run([sys.executable, "-m", "workbench", "run", str(model), "--backend", "openvino",
                             "--eval", "random:8"], capture_output=True, text=True, env=cli_env, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: OpenVINO cannot run 'det.onnx'"), result.stderr
    assert "Det" in lines[0] and "onnxruntime-cpu" in lines[0]
    assert not list(Path(cli_env["WORKBENCH_WORKSPACE"]).glob("artifacts/*/model.onnx"))


_WITHOUT_OPENVINO = "import sys; sys.modules['openvino'] = None; from workbench.cli.main import main; sys.exit(main())"


def test_missing_openvino_gets_the_install_hint(cnn: Path, cli_env: dict[str, str]) -> None:
    listing = subprocess.run([sys.executable, "-c", _WITHOUT_OPENVINO, "backends"], capture_output=True, text=True,
                             env=cli_env, timeout=300)
    assert listing.returncode == 0
    line = next(line for line in listing.stdout.splitlines() if " openvino " in f" {line} ")
    assert line.startswith("no") and "pip install 'onnx-workbench[openvino]'" in line
    run = subprocess.run([sys.executable, "-c", _WITHOUT_OPENVINO, "run", str(cnn), "--backend", "openvino"],
                         capture_output=True, text=True, env=cli_env, timeout=300)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'onnx-workbench[openvino]'" in lines[0], run.stderr


def test_build_panel_shows_what_each_precision_does_on_openvino() -> None:
    from workbench.ui.build_panel import BuildPanel

    panel = BuildPanel(lambda options: None, lambda: None)
    assert "openvino" in panel.backend.options
    panel.backend.value = "openvino"
    assert "CPU features" in panel.backend_details.value and "bf16: " in panel.backend_details.value
    panel.backend.value = "onnxruntime-cpu"
    assert panel.backend_details.value == ""


def test_two_backend_sweep_recommends_across_backends(resnet: Path, cli_env: dict[str, str]) -> None:
    import json

    result = subprocess.run(
        [sys.executable, "-m", "workbench", "sweep", str(resnet), "--precisions", "fp32,int8",
         "--backends", "onnxruntime-cpu,openvino", "--batch", "8", "--repeats", "5", "--accuracy-budget", "1",
         "--json"], capture_output=True, text=True, env=cli_env, timeout=900)
    assert result.returncode == 0, result.stderr
    sweep = json.loads(result.stdout)
    runs = {run["run_id"]: run for run in sweep["runs"]}
    assert {(r["spec"]["backend"], r["spec"]["precision"]) for r in runs.values()} == {
        (b, p) for b in ("onnxruntime-cpu", "openvino") for p in ("fp32", "int8")}
    for run in runs.values():
        assert run["baseline_backend"] == "onnxruntime-cpu"
        assert run["speedup_vs_baseline"] == pytest.approx(
            run["baseline_latency_ms"]["median"] / run["latency_ms"]["median"])
    within = [r for r in runs.values() if (r["drift"]["reference_accuracy"] - r["drift"]["accuracy"]) * 100 <= 1]
    # only a run measurably faster than FP32 by the ratio it is ranked by is a pick (ORT's FP32 is FP32 itself)
    paying = [r for r in within if (r["spec"]["backend"], r["spec"]["precision"]) != ("onnxruntime-cpu", "fp32")
              and Run.from_dict(r).measurably_faster]
    if not paying:
        assert sweep["recommended"] is None and "keep FP32" in sweep["reason"]
        return
    best = max(paying, key=lambda r: r["speedup_vs_baseline"])
    assert sweep["recommended"] == best["run_id"]
    assert best["spec"]["backend"] in sweep["reason"] and "vs FP32 on onnxruntime-cpu" in sweep["reason"]


def test_sweep_panel_offers_backends_as_an_axis() -> None:
    from workbench.ui.sweep_panel import SweepPanel

    panel = SweepPanel(lambda options: None, lambda: None)
    panel.backends.value = ("onnxruntime-cpu", "openvino")
    assert panel.options()["backends"] == ["onnxruntime-cpu", "openvino"]
    panel.backends.value = ()
    with pytest.raises(Exception, match="No backend is selected"):
        panel.options()


def test_backend_options_threads_and_pinning() -> None:
    from workbench.errors import DataError

    assert get_backend("openvino").config(None)["ENABLE_CPU_PINNING"] is False
    config = get_backend("openvino", {"threads": "2", "pinning": "1"}).config(None)
    assert config["INFERENCE_NUM_THREADS"] == 2 and config["ENABLE_CPU_PINNING"] is True
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and config["PERFORMANCE_HINT"] == "LATENCY"
    with pytest.raises(DataError, match="does not know the option"):
        get_backend("openvino", {"prefer_nhwc": "1"})
    with pytest.raises(DataError, match="is not a thread count"):
        get_backend("openvino", {"threads": "two"})
    with pytest.raises(DataError, match="far more than this machine's"):
        get_backend("openvino", {"threads": "100000"})


def test_backends_json_carries_openvino_details(cli_env: dict[str, str]) -> None:
    import json

    result = subprocess.run([sys.executable, "-m", "workbench", "backends", "--json"], capture_output=True, text=True,
                            env=cli_env, timeout=300)
    listing = json.loads(result.stdout)
    assert any(line.startswith("CPU features") for line in listing["openvino"]["details"])
    assert "details" not in listing["onnxruntime-cpu"]


def test_fp16_is_not_screened_where_bf16_has_matrix_units_and_fp16_only_vector_instructions(tmp_path: Path) -> None:
    """On a CPU with AMX-BF16 and no AMX-FP16 the search spends no trial on FP16 (vector instructions only, no faster
    than FP32) and says so; with AMX-FP16, on AVX-512 FP16 alone, or for BF16 nothing is skipped."""
    from workbench.backends.openvino_device import DeviceProfile
    from workbench.workflows.tune import tune
    from workbench.workflows.tune_runner import precisions_for

    caps = frozenset({"FP32", "BF16", "FP16", "INT8"})
    amx = DeviceProfile("CPU", "a Xeon", caps, frozenset({"avx512f", "avx512_fp16", "amx_bf16", "amx_int8"}))
    assert "no faster than FP32" in amx.dominated("fp16") and amx.dominated("bf16") is None
    assert DeviceProfile("CPU", "a Xeon", caps, amx.flags | {"amx_fp16"}).dominated("fp16") is None
    assert DeviceProfile("CPU", "a CPU", caps, frozenset({"avx512f", "avx512_fp16"})).dominated("fp16") is None
    assert DeviceProfile("GPU", "a GPU", caps).dominated("fp16") is None
    # This machine, whichever CPU it is: the screen follows its own profile, and a skip is in the notes.
    model = sample("digits_cnn")
    skipped = _cpu().dominated("fp16")
    assert ("fp16" in precisions_for("openvino", onnx.load(str(model)))) == (
        skipped is None and _cpu().supports("fp16"))
    result = tune(model, BuildOptions(batch=8, repeats=3), backends=["openvino"], precisions=None, time_budget=60,
                  pipeline=Pipeline(tmp_path / "ws"))
    assert (f"openvino: {skipped}" in result.notes) == (skipped is not None and _cpu().supports("fp16"))
    assert "fp16" not in {t.run.spec.precision for t in result.trials} or skipped is None
