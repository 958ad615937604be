"""The pipeline end to end on the real samples with the real ONNX Runtime."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import onnx
import pytest

from workbench.build_options import BuildOptions
from workbench.errors import BuildError, Busy, Cancelled, DataError
from workbench.precision.quantizer_process import run_quantizer
from workbench.progress import CancelToken, ProgressEvent
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline


def test_fp32_run_is_its_own_reference_and_cached(cnn: Path) -> None:
    pipeline = Pipeline()
    events: list[ProgressEvent] = []
    run = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=5), progress=events.append)
    assert run.drift["max_abs_error"] == 0.0
    assert run.drift["top1_agreement"] == 1.0
    assert run.drift["accuracy"] == run.drift["reference_accuracy"] > 0.9
    assert run.latency_ms["median"] > 0 and run.latency_ms["p90"] >= run.latency_ms["median"]
    assert Path(run.artifact).is_file()
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    mtime = Path(run.artifact).stat().st_mtime_ns
    again = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=5))
    assert again.run_id == run.run_id and Path(again.artifact).stat().st_mtime_ns == mtime
    assert [r.run_id for r in Pipeline().runs()] == [run.run_id]  # persisted: a new pipeline sees it


def test_fp32_on_another_engine_is_one_engine_timed_once_against_the_default(cnn: Path) -> None:
    """The unchanged file is its own reference: no second engine (a large model's weights twice), a speed-up of
    exactly 1, and the cross-engine figure against ONNX Runtime's FP32 still timed side by side."""
    run = Pipeline().run(cnn, BuildOptions("fp32", backend="openvino", batch=4, repeats=5))
    assert run.speedup == 1.0 and run.speedup_spread == 0.0
    assert run.latency_ms == run.reference_latency_ms and run.engine_rss_mb == run.reference_rss_mb
    assert run.baseline_backend == "onnxruntime-cpu" and run.speedup_vs_baseline > 0
    assert run.baseline_latency_ms != run.latency_ms
    low, high = run.speedup_interval  # the cross-engine figure's own interval, from the same paired rounds
    assert low <= run.speedup_vs_baseline <= high and high - low < run.speedup_vs_baseline
    assert run.drift["max_abs_error"] == 0.0


def test_int8_static_keeps_accuracy(cnn: Path) -> None:
    run = Pipeline().run(cnn, BuildOptions("int8", batch=8, repeats=5))
    assert abs(run.drift["accuracy"] - run.drift["reference_accuracy"]) <= 0.02
    assert any("U8 activations" in note for note in run.notes)
    types = {n.op_type for n in onnx.load(run.artifact).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= types
    assert run.spec.calib_digest is not None and run.calib_source == "calib.npz"


def test_int8_calibration_methods_differ(cnn: Path) -> None:
    pipeline = Pipeline()
    minmax = pipeline.run(cnn, BuildOptions("int8", batch=8, repeats=3))
    percentile = pipeline.run(cnn, BuildOptions("int8", batch=8, repeats=3, recipe=Recipe(calib_method="percentile")))
    assert minmax.spec.artifact_key != percentile.spec.artifact_key
    assert Path(minmax.artifact).read_bytes() != Path(percentile.artifact).read_bytes()


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precisions_load_and_report(cnn: Path, precision: str) -> None:
    run = Pipeline().run(cnn, BuildOptions(precision, batch=4, repeats=3))
    assert run.drift["top1_agreement"] >= 0.95
    assert run.drift["max_abs_error"] > 0  # it really changed the arithmetic or kept-FP32 casts
    model = onnx.load(run.artifact)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O kept FP32
    names = [n.name for n in model.graph.node]
    assert len(names) == len(set(names))
    if precision == "fp16":  # BF16 Conv is only valid ONNX from opset 22; the sample is opset 17
        onnx.checker.check_model(model, full_check=True)  # topologically sorted: TensorRT needs it


def test_bf16_on_a_transformer_keeps_what_the_cpu_cannot_run_in_fp32(vit: Path) -> None:
    # ONNX Runtime's CPU provider has few BF16 kernels and rewrites Softmax into ops it names
    # instead; the build must still end in a model that loads, and say what it kept in FP32.
    run = Pipeline().run(vit, BuildOptions("bf16", batch=8, repeats=3))
    kept = next(n for n in run.notes if n.startswith("op types kept in FP32"))
    assert "Softmax" in kept and "MatMul" in kept
    assert run.drift["top1_agreement"] >= 0.95


def test_int8_dynamic_on_transformer(vit: Path) -> None:
    run = Pipeline().run(vit, BuildOptions("int8-dynamic", batch=8, repeats=3))
    types = {n.op_type for n in onnx.load(run.artifact).graph.node}
    assert "MatMulInteger" in types or "DynamicQuantizeMatMul" in types or "DynamicQuantizeLinear" in types
    assert run.drift["top1_agreement"] >= 0.9


def test_int8_without_calibration_explains(tmp_path: Path, cnn: Path) -> None:
    lonely = tmp_path / "model.onnx"
    shutil.copy(cnn, lonely)
    with pytest.raises(DataError, match="No evaluation data"):
        Pipeline().run(lonely, BuildOptions("fp32"))
    with pytest.raises(DataError, match="Static INT8 needs calibration data"):
        Pipeline().run(lonely, BuildOptions("int8", eval="random:4"))


def test_random_eval_is_labelled(cnn: Path) -> None:
    run = Pipeline().run(cnn, BuildOptions("fp32", eval="random:8", batch=4, repeats=3))
    assert "RANDOM" in run.eval_source
    assert any("RANDOM" in note for note in run.notes)
    assert run.drift["accuracy"] is None


def test_fixed_batch_model(tmp_path: Path, cnn: Path) -> None:
    model = onnx.load(str(cnn))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(DataError, match="fixed at 1"):
        Pipeline().run(tmp_path / "model.onnx", BuildOptions("fp32", eval="random:4", batch=8))


def test_cancel_keeps_nothing_and_loses_nothing(cnn: Path, workspace: Path) -> None:
    pipeline = Pipeline()
    earlier = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=3))
    token = CancelToken()

    def cancel_during_calibration(event: ProgressEvent) -> None:
        if event.step == "calibrate":
            token.cancel()

    with pytest.raises(Cancelled):
        pipeline.run(cnn, BuildOptions("int8", batch=4), progress=cancel_during_calibration, cancel=token)
    assert [r.run_id for r in pipeline.runs()] == [earlier.run_id]
    # The cancelled INT8 build left no folder, file or temp file of its own; the FP32 run's are intact.
    assert [p.parent for p in workspace.glob("artifacts/*/*")] == [Path(earlier.artifact).parent] * len(
        list(Path(earlier.artifact).parent.iterdir()))
    assert not [p for p in workspace.rglob("*") if p.name.startswith(".tmp-")]
    assert pipeline.workspace.load_run(earlier.run_id).artifact_exists


def test_second_build_while_running_is_refused(cnn: Path) -> None:
    pipeline = Pipeline()
    entered, release = threading.Event(), threading.Event()

    def hold(event: ProgressEvent) -> None:
        if event.step == "load":
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=pipeline.run, args=(cnn, BuildOptions(repeats=3)),
                              kwargs={"progress": hold})
    worker.start()
    assert entered.wait(30)
    with pytest.raises(Busy, match="already running"):
        pipeline.run(cnn, BuildOptions("fp16"))
    release.set()
    worker.join(60)
    assert len(pipeline.runs()) == 1


def test_unknown_precision_is_refused_where_the_options_are_made() -> None:
    with pytest.raises(DataError, match=r"Unknown precision 'int4'.*fp32, fp16"):
        BuildOptions("int4", repeats=3)


def test_a_quantizer_failure_in_its_child_process_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"quantize_dynamic failed: .*missing\.onnx"):
        run_quantizer("quantize_dynamic", model_input=str(tmp_path / "missing.onnx"),
                      model_output=str(tmp_path / "out.onnx"), weight_type="QInt8")


def test_a_search_bar_stops_timing_early_and_a_later_run_is_timed_in_full(cnn: Path) -> None:
    """Timing a variant that cannot reach a search's bar stops after a few rounds, said in its notes; asked for
    again without a bar the same run is timed in full (its file reused), never served with the short timing."""
    from workbench.runs.frame import runs_frame
    from workbench.runs.run import TIMING_STOPPED

    pipeline = Pipeline()
    options = BuildOptions(precision="fp32", repeats=200, warmup=1)
    short = pipeline.run(cnn, options.replace(timing_bar=1000.0))
    stopped = [note for note in short.notes if note.startswith(TIMING_STOPPED)]
    assert stopped and "1000.00x" in stopped[0], short.notes
    assert short.latency_ms["repeats"] < 200 and short.drift["task"]["value"] is not None  # judged all the same
    assert short.timing_stopped_early and runs_frame([short])["status"][0].endswith("; timing stopped early")
    again = pipeline.run(cnn, options.replace(timing_bar=1000.0))
    assert again.latency_ms["repeats"] == short.latency_ms["repeats"]  # still a loser to that search: kept
    full = pipeline.run(cnn, options)
    assert full.run_id == short.run_id and full.latency_ms["repeats"] >= 200
    assert not full.timing_stopped_early and "stopped" not in runs_frame([full])["status"][0]
    assert "variant reused from the workspace cache" in full.notes
    assert pipeline.run(cnn, options.replace(timing_bar=0.01)).latency_ms == full.latency_ms  # reached: reused


def test_a_search_s_timing_cap_cuts_the_rounds_short_and_only_a_run_outside_a_search_times_them_in_full(
        cnn: Path, tmp_path: Path) -> None:
    """tune caps each trial's timing at a share of its budget; the run says so, the same search reaching it again
    takes the rounds it has (no second timing), and asked for outside a search it is timed in full."""
    pipeline = Pipeline(tmp_path / "ws")
    options = BuildOptions(precision="fp32", repeats=3000, warmup=1)
    capped = pipeline.run(cnn, options.replace(timing_cap=0.05, timing_bar=0.5))
    assert capped.timing_capped and capped.timing_stopped_early, capped.notes
    assert 5 <= capped.latency_ms["repeats"] < 3000
    again = pipeline.run(cnn, options.replace(timing_cap=0.05, timing_bar=0.5))
    assert again.latency_ms == capped.latency_ms
    full = pipeline.run(cnn, options)
    assert full.latency_ms["repeats"] >= 3000 and not full.timing_stopped_early
