"""The OpenVINO-native INT8 variant: NNCF on OpenVINO's own model, stored as IR, run, profiled and judged
by the OpenVINO backend like any other variant, and labelled as such."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from workbench.build_options import BuildOptions
from workbench.errors import BuildError, WorkbenchError
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline

pytest.importorskip("nncf", reason="NNCF is not installed (pip install 'onnx-workbench[openvino]')")
openvino = pytest.importorskip("openvino", reason="OpenVINO is not installed (pip install 'onnx-workbench[openvino]')")

from workbench.profiles.openvino_profile import quantized_by_native  # noqa: E402
from workbench.workflows.profile import profile_run  # noqa: E402
from workbench.workflows.tune import tune  # noqa: E402

OV_NATIVE = Recipe(quantizer="openvino-native")
NATIVE = {"precision": "int8", "recipe": OV_NATIVE, "backend": "openvino", "batch": 8, "repeats": 3, "warmup": 1}


def test_native_variant_builds_runs_and_is_judged(vit: Path, tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "ws")
    run = pipeline.run(vit, BuildOptions(**NATIVE))
    artifact = Path(run.artifact)
    assert artifact.suffix == ".xml" and artifact.with_suffix(".bin").is_file()
    assert "OpenVINO-native" in run.label
    assert any(note.startswith("OpenVINO-native INT8: NNCF") and "transformer preset" in note for note in run.notes)
    check = next(note for note in run.notes if note.startswith("INT8 check"))
    assert "ran dequantized" not in check and " 0 of" not in check, check
    assert run.drift["top1_agreement"] >= 0.9, run.drift
    assert any(note.startswith("judged as classification") for note in run.notes), run.notes

    profile = profile_run(run, pipeline=pipeline, options=BuildOptions(warmup=1, repeats=3))
    layers = profile.layers
    int8_rows = layers[layers["precision"] == "INT8"]
    named = {node for nodes in int8_rows["onnx_nodes"] for node in nodes}
    onnx_names = {node.name for node in onnx.load(str(vit)).graph.node}
    assert named and named <= onnx_names  # INT8 layers map back to the ONNX file's node names

    # What the node fall-back may keep in FP32: ONNX node names, the split Gemm's included.
    candidates = quantized_by_native(onnx.load(str(vit)), run.artifact)
    ops = {node.name: node.op_type for node in onnx.load(str(vit)).graph.node}
    assert candidates and {ops[name] for name in candidates} >= {"Conv", "MatMul", "Gemm"}, candidates


def test_native_ignored_scope_takes_onnx_node_names(vit: Path, tmp_path: Path) -> None:
    matmuls = [node.name for node in onnx.load(str(vit)).graph.node if node.op_type in ("MatMul", "Gemm")]
    kept = matmuls[0]
    options = BuildOptions(**{**NATIVE, "recipe": OV_NATIVE.replace(exclude_nodes=(kept,))})
    run = Pipeline(tmp_path / "ws").run(vit, options)
    assert any("ignored scope" in note and kept in note for note in run.notes), run.notes
    quantized = openvino.Core().read_model(run.artifact)
    from workbench.profiles.openvino_profile import quantized_ir_nodes

    names = quantized_ir_nodes(quantized)
    assert kept not in names and any(name in names for name in matmuls[1:])
    with pytest.raises(BuildError, match="not in OpenVINO's model"):
        Pipeline(tmp_path / "ws").run(vit, BuildOptions(**{**NATIVE, "recipe": OV_NATIVE.replace(
            exclude_nodes=("no_such_node",))}))


def test_native_variant_is_refused_off_openvino(vit: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="OpenVINO IR"):
        Pipeline(tmp_path / "ws").run(vit, BuildOptions(**{**NATIVE, "backend": "onnxruntime-cpu"}))


def test_tune_screens_the_native_variant_on_openvino(vit: Path, tmp_path: Path) -> None:
    result = tune(vit, BuildOptions(batch=8, repeats=3), backends=["openvino"], precisions=["int8"],
                  time_budget=120, pipeline=Pipeline(tmp_path / "ws"))
    native = [t for t in result.trials if t.recipe.recipe.quantizer == "openvino-native"]
    assert native and native[0].step == "recipe" and native[0].run.artifact.endswith(".xml"), result.explain()
    assert any("OpenVINO-native" in t.to_dict()["recipe"]["name"] for t in native)
    # The engine's own INT8 is screened before the portable file; with BF16 on the CPU, also as the BF16+INT8 mix.
    from workbench.backends.openvino_backend import OpenvinoBackend

    portable = next(t for t in result.trials if t.recipe.recipe.quantizer == "onnxruntime"
                    and t.run.spec.precision == "int8")
    assert result.trials.index(native[0]) < result.trials.index(portable)
    mixed = [t for t in native if t.run.spec.backend_options == (("int8_hint", "bf16"),)]
    assert bool(mixed) == (OpenvinoBackend().profile().refusal("bf16") is None), result.explain()
    # One IR compiled two ways: every mix is a native IR the search built (the plain one or its compute-only file).
    plain_irs = {t.run.artifact for t in native if not t.run.spec.backend_options}
    assert all(t.run.artifact in plain_irs for t in mixed), result.explain()
    # Within the interval of the native run's figure, the portable file is the pick; measurably faster, the native.
    import dataclasses

    from workbench.workflows.tune import portable_if_as_fast

    def timed(trial, speedup: float, low: float | None, spread: float = 0.2):
        run = dataclasses.replace(trial.run, speedup_vs_baseline=speedup, speedup_spread=spread,
                                  speedup_interval=None if low is None else [low, 2 * speedup - low])
        return dataclasses.replace(trial, run=run)

    fast_native, close_portable = timed(native[0], 3.0, 2.85), timed(portable, 2.9, 2.8)
    notes: list[str] = []
    assert portable_if_as_fast(fast_native, [fast_native, close_portable], notes) is close_portable
    assert "not measurably faster than the portable" in notes[0] and "95% interval [2.85x, 3.15x]" in notes[0]
    # Within the per-round spread (0.2) but below the interval: the native variant is measurably faster.
    slow_portable = timed(portable, 2.82, 2.7)
    assert portable_if_as_fast(fast_native, [fast_native, slow_portable], []) is fast_native
    # A run stored before intervals were: its spread is all there is.
    assert portable_if_as_fast(timed(native[0], 3.0, None), [slow_portable], []) is slow_portable
    if mixed:  # the BF16+INT8 mix only where it is measurably faster than the same IR compiled plainly
        from workbench.workflows.tune import plain_if_as_fast

        fast_mix, close_plain, slow_plain = timed(mixed[0], 3.0, 2.85), timed(native[0], 2.9, 2.8), timed(
            native[0], 2.5, 2.4)
        notes = []
        assert plain_if_as_fast(fast_mix, [fast_mix, close_plain], notes) is close_plain
        assert "int8_hint=bf16" in notes[0] and "not measurably faster" in notes[0]
        notes = []  # measurably faster: the mix, where its interval shows it meets the budget
        expected = fast_mix if fast_mix.score.state == "meets" else slow_plain
        assert plain_if_as_fast(fast_mix, [fast_mix, slow_plain], notes) is expected
        assert (expected is fast_mix) == (not notes) and all("cannot tell" in note for note in notes)


def test_accuracy_control_names_what_it_kept_and_keeps_to_its_time_cap(vit: Path, tmp_path: Path) -> None:
    control = Recipe(quantizer="openvino-accuracy-control")
    run = Pipeline(tmp_path / "ws").run(vit, BuildOptions(**{**NATIVE, "recipe": control}))
    assert Path(run.artifact).suffix == ".xml" and "OpenVINO-native accuracy control" in run.label
    assert dict(run.spec.quant_options)["max_drop"] == pytest.approx(0.01)  # the classification budget's room
    assert any("quantize_with_accuracy_control" in note for note in run.notes), run.notes
    assert any(note.startswith(("layers NNCF left in FP32", "NNCF reverted no layer")) for note in run.notes)
    assert run.drift["top1_agreement"] >= 0.95, run.drift
    # The cap a search gives it (the time it has left) reaches the build through the options.
    with pytest.raises(BuildError, match="stopped after 1 s"):
        Pipeline(tmp_path / "ws2").run(vit, BuildOptions(**{**NATIVE, "recipe": control}, build_time_cap=1.0))


def test_int8_hint_mixes_bf16_into_the_native_variant(vit: Path, tmp_path: Path) -> None:
    """``int8_hint=bf16``: the INT8 IR compiled with the BF16 hint (the FP32 reference stays FP32)."""
    from workbench.backends.openvino_backend import OpenvinoBackend

    refusal = OpenvinoBackend().profile().refusal("bf16")
    if refusal:
        pytest.skip(refusal)
    run = Pipeline(tmp_path / "ws").run(vit, BuildOptions(**NATIVE, backend_options={"int8_hint": "bf16"}))
    hints = [note for note in run.notes if "INFERENCE_PRECISION_HINT" in note]
    assert any("INFERENCE_PRECISION_HINT=bf16" in note for note in hints), hints
    assert any(note.startswith("FP32 reference") and "INFERENCE_PRECISION_HINT=f32" in note for note in run.notes)
    assert "ran dequantized" not in next(note for note in run.notes if note.startswith("INT8 check"))
    assert run.drift["top1_agreement"] >= 0.9, run.drift
    # its label is not the plain IR's, and what it keeps out of INT8 runs in BF16, as the label says
    first_matmul = next(n.name for n in onnx.load(str(vit)).graph.node if n.op_type == "MatMul")
    mixed = Pipeline(tmp_path / "ws").run(vit, BuildOptions(**NATIVE, backend_options={"int8_hint": "bf16"})
                                          .with_recipe(exclude_nodes=(first_matmul,)))
    assert "int8_hint=bf16" in run.label and mixed.kept_precision == "bf16" and "1 kept bf16" in mixed.label
    with pytest.raises(WorkbenchError, match="int8_hint='fp16' is not bf16"):
        OpenvinoBackend.from_options({"int8_hint": "fp16"})


def test_compute_only_quantizes_the_convolutions_and_matrix_products_alone(tmp_path: Path) -> None:
    """``ops="compute"`` on NNCF's two writers: the residual adds of a ResNet get no quantizer of their own, so
    fewer FakeQuantize layers (IR) and Q/DQ pairs (ONNX) than NNCF's default placement, and the notes say so."""
    from conftest import sample

    model, pipeline = sample("digits_resnet"), Pipeline(tmp_path / "ws")

    def quantizers(quantizer: str, ops: str) -> tuple[int, list[str]]:
        options = BuildOptions(**{**NATIVE, "recipe": Recipe(quantizer=quantizer, ops=ops)})
        run = pipeline.run(model, options if quantizer == "openvino-native" else options.replace(backend="openvino"))
        assert run.drift["top1_agreement"] >= 0.9, run.drift
        if run.artifact.endswith(".xml"):
            ops_ = openvino.Core().read_model(run.artifact).get_ordered_ops()
            return sum(op.get_type_name() == "FakeQuantize" for op in ops_), run.notes
        graph = onnx.load(run.artifact).graph
        return sum(node.op_type == "QuantizeLinear" for node in graph.node), run.notes

    for quantizer in ("openvino-native", "nncf"):
        everywhere, _ = quantizers(quantizer, "all")
        compute, notes = quantizers(quantizer, "compute")
        assert 0 < compute < everywhere, (quantizer, compute, everywhere)
        assert any("convolutions and matrix products only" in note for note in notes), notes
