"""The pruning engine on the real sample models, run for real in ONNX Runtime."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from workbench.errors import Cancelled, DataError, ModelError, WorkbenchError
from workbench.progress import CancelToken, Progress
from workbench.pruning import check_2of4, kept_count, prune, repair, validate_model
from workbench.pruning.calib_probe import Probe
from workbench.pruning.channel_groups import analyse
from workbench.pruning.reconstruct import reconstruct
from workbench.pruning.targets import KEY, read_targets


def load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path))


def data(path: Path, kind: str) -> dict[str, np.ndarray]:
    with np.load(path.parent / f"{kind}.npz", allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def accuracy(model: onnx.ModelProto, path: Path) -> float:
    ev = data(path, "eval")
    return float((run(model, ev["input"]).argmax(1) == ev["labels"]).mean())


def inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in model.graph.initializer}


def weight_of(model: onnx.ModelProto, node_name: str) -> np.ndarray:
    node = next(n for n in model.graph.node if n.name == node_name)
    return numpy_helper.to_array(inits(model)[node.input[1]])


def conv_flops(model: onnx.ModelProto, batch: int = 1) -> dict[str, float]:
    """2 * MACs of every Conv from its weight and inferred output size."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    fixed.graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    weights = inits(model)
    return {
        n.name: 2.0 * math.prod(shapes[n.output[0]]) * math.prod(weights[n.input[1]].dims[1:])
        for n in model.graph.node if n.op_type == "Conv"
    }


def same_io(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    return ([i.SerializeToString() for i in a.graph.input] == [i.SerializeToString() for i in b.graph.input]
            and [o.SerializeToString() for o in a.graph.output] == [o.SerializeToString() for o in b.graph.output])


# ----- ratio 0 and untouched layers --------------------------------------------------------------

@pytest.mark.parametrize("method", ["magnitude", "2:4", "channel"])
def test_ratio_zero_is_equivalent(resnet: Path, method: str) -> None:
    model = load(resnet)
    x = data(resnet, "eval")["input"][:32]
    result = prune(model, method, 0.0)
    assert np.array_equal(run(result.model, x), run(model, x))
    before, after = inits(model), inits(result.model)
    assert before.keys() == after.keys()
    assert all(before[k].SerializeToString() == after[k].SerializeToString() for k in before)


def test_prune_leaves_the_callers_model_alone(cnn: Path) -> None:
    model = load(cnn)
    snapshot = model.SerializeToString()
    prune(model, "channel", 0.5)
    prune(model, "magnitude", 0.5)
    assert model.SerializeToString() == snapshot


def test_untouched_layers_keep_bit_identical_weights(resnet: Path) -> None:
    model = load(resnet)
    # Excluding the first conv of block 2 keeps its group (its outputs and bn1) whole; it still
    # loses input channels because its input belongs to the pruned residual group.
    result = prune(model, "channel", 0.5, exclude=["/layers/layers.2/conv1/Conv"])
    before, after = inits(model), inits(result.model)
    for name in ["layers.2.bn1.weight", "layers.2.bn1.bias", "layers.2.bn1.running_mean",
                 "layers.2.bn1.running_var", "fc.bias"]:
        assert before[name].SerializeToString() == after[name].SerializeToString(), name
    conv1 = weight_of(result.model, "/layers/layers.2/conv1/Conv")
    assert conv1.shape == (128, 32, 3, 3)
    conv2 = weight_of(result.model, "/layers/layers.2/conv2/Conv")
    assert conv2.shape[1] == 128 and conv2.shape[0] == 64
    notes = {c.name: c.note for c in result.report.layers}
    assert "excluded" in notes["/layers/layers.2/conv1/Conv"]


def test_magnitude_leaves_excluded_and_bias_tensors_identical(cnn: Path) -> None:
    model = load(cnn)
    result = prune(model, "magnitude", 0.6, exclude=["/features/features.0/features.0.0/Conv"])
    changed = {k for k, t in inits(model).items()
               if t.SerializeToString() != inits(result.model)[k].SerializeToString()}
    assert changed == {layer.weight for layer in result.report.layers}
    assert "features.0.0.weight" not in changed


# ----- channel pruning ---------------------------------------------------------------------------

def test_channel_half_on_resnet_quarters_inner_conv_flops(resnet: Path) -> None:
    model = load(resnet)
    result = prune(model, "channel", 0.5)
    pruned = result.model
    onnx.checker.check_model(pruned, full_check=True)
    assert same_io(model, pruned)
    x = data(resnet, "eval")["input"][:8]
    assert run(pruned, x).shape == run(model, x).shape == (8, 10)

    before, after = conv_flops(model), conv_flops(pruned)
    inner = [n for n in before if "conv1" in n or "conv2" in n or "shortcut" in n]
    assert len(inner) == 8
    for name in inner:
        assert 0.2 <= after[name] / before[name] <= 0.3, name
    assert sum(after.values()) / sum(before.values()) < 0.3
    assert pruned.ByteSize() < 0.35 * model.ByteSize()

    # Residual blocks: every tensor an Add joins lost the same channels, including the shortcut.
    changes = {c.name: c for c in result.report.layers}
    assert changes["/layers/layers.1/shortcut/shortcut.0/Conv"].out_channels_after == 32
    assert changes["/layers/layers.1/conv2/Conv"].out_channels_after == 32
    assert changes["/fc/Gemm"].in_channels_after == 64 and changes["/fc/Gemm"].out_channels_after == 10
    assert "faster" in result.report.summary


def kill_half_of_each_group(model: onnx.ModelProto) -> int:
    """Make every second channel of each prunable group exactly zero wherever it flows.

    Removing channels that carry nothing must not change the output at all, which checks every
    slice the pruner makes (residual partners, BatchNorm, Flatten blocks) numerically.
    """
    plan = analyse(model)
    index = plan.index
    groups = {plan.find(g) for g in plan.sources.values()} - {
        plan.find(g) for g in plan.sources.values() if plan.root(g).blocks}

    def zero(name: str, axis: int, dead: np.ndarray) -> None:
        value = index.const(name).copy()
        np.moveaxis(value, axis, 0)[dead] = 0
        index.set_const(name, value)

    for root in groups:
        group = plan.groups[root]
        dead = np.arange(0, group.size, 2)
        for layer in group.producers:
            zero(layer.weight, layer.out_axis, dead)
            if len(layer.node.input) > 2 and layer.node.input[2]:
                zero(layer.node.input[2], -1, dead)
            readers = index.consumers[layer.node.output[0]]
            if readers[0][0].op_type == "BatchNormalization":
                zero(readers[0][0].input[1], 0, dead)
                zero(readers[0][0].input[2], 0, dead)
            elif readers[0][0].op_type == "Add":  # MatMul + bias
                add = readers[0][0]
                zero(add.input[1 - readers[0][1]], -1, dead)
    return len(groups)


@pytest.mark.parametrize("fixture", ["cnn", "resnet", "vit"])
def test_removing_dead_channels_is_exact(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    model = load(path)
    assert kill_half_of_each_group(model) >= 2
    result = prune(model, "channel", 0.5)
    assert result.report.layers
    x = data(path, "eval")["input"][:32]
    expected, got = run(model, x), run(result.model, x)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4), np.abs(got - expected).max()


def test_channel_pruning_follows_flatten_into_gemm(cnn: Path) -> None:
    model = load(cnn)
    result = prune(model, "channel", 0.5)
    gemm = weight_of(result.model, "/classifier/classifier.1/Gemm")
    assert gemm.shape == (32, 32 * 4 * 4)  # 32 of 64 channels x 4x4 positions, 32 of 64 features
    x = data(cnn, "eval")["input"][:16]
    assert run(result.model, x).shape == (16, 10)
    # The logits layer keeps its 10 outputs: they are the graph output.
    logits = next(c for c in result.report.layers if c.name == "/classifier/classifier.3/Gemm")
    assert logits.out_channels_after == 10 and "graph output" in logits.note


def test_round_to_rounds_kept_channels(resnet: Path) -> None:
    result = prune(load(resnet), "channel", 0.3, round_to=16)
    for change in result.report.layers:
        if change.name != "/fc/Gemm":
            assert change.out_channels_after % 16 == 0, change
    assert kept_count(32, 0.3, 16) == 16 and kept_count(128, 0.3, 16) == 96 and kept_count(8, 0.5, 16) == 8
    x = data(resnet, "eval")["input"][:4]
    assert run(result.model, x).shape == (4, 10)


def test_vit_mlp_hidden_dim_is_pruned(vit: Path) -> None:
    model = load(vit)
    result = prune(model, "channel", 0.5)
    pruned = result.model
    assert same_io(model, pruned)
    x = data(vit, "eval")["input"][:8]
    assert run(pruned, x).shape == (8, 10)
    changed = {c.name: c for c in result.report.layers}
    firsts = [c for c in changed.values() if c.out_channels_before == 128]
    seconds = [c for c in changed.values() if c.in_channels_before == 128]
    assert len(firsts) == len(seconds) == 4  # one MLP per encoder block
    assert all(c.out_channels_after == 64 for c in firsts)
    assert all(c.in_channels_after == 64 and c.out_channels_after == 64 for c in seconds)
    # Attention and the residual stream stay whole, with reasons, and bit-identical weights.
    assert all(c.out_channels_before in (128, 64) for c in changed.values())
    assert len(changed) == 8
    before, after = inits(model), inits(pruned)
    untouched = [k for k in before if k in after and before[k].SerializeToString() == after[k].SerializeToString()]
    assert len(untouched) >= len(before) - 16
    reasons = " ".join(s.reason for s in result.report.skipped)
    assert "LayerNormalization" in reasons


# ----- 2:4 and magnitude -------------------------------------------------------------------------

def test_2of4_output_passes_the_checker_and_checker_catches_violations(resnet: Path) -> None:
    model = load(resnet)
    assert check_2of4(model), "a dense trained model should violate 2:4"
    result = prune(model, "2:4", 0.5)
    assert check_2of4(result.model) == []
    skipped = {s.name: s.reason for s in result.report.skipped}
    assert "multiple of 4" in skipped["/stem/stem.0/Conv"]
    assert all(c.sparsity_after == pytest.approx(0.5, abs=0.01) for c in result.report.layers)
    assert "TensorRT sparse tensor cores (Ampere+)" in result.report.summary

    broken = onnx.ModelProto()
    broken.CopyFrom(result.model)
    tensor = inits(broken)["layers.1.conv2.weight"]
    value = numpy_helper.to_array(tensor).copy()
    value[5, 8:12, 1, 2] = [0.1, 0.2, 0.3, 0.4]
    tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    violations = check_2of4(broken)
    assert len(violations) == 1
    assert violations[0].layer == "/layers/layers.1/conv2/Conv"
    assert violations[0].bad_groups == 1 and violations[0].position == (5, 8, 1, 2)


@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_magnitude_hits_requested_sparsity(cnn: Path, ratio: float) -> None:
    model = load(cnn)
    result = prune(model, "magnitude", ratio)
    for change in result.report.layers:
        value = numpy_helper.to_array(inits(result.model)[change.weight])
        assert abs(np.mean(value == 0) - ratio) <= 1.0 / value.size + 1e-9
    assert "no speed-up on dense kernels" in result.report.summary
    x = data(cnn, "eval")["input"][:4]
    assert run(result.model, x).shape == (4, 10)


def test_global_magnitude_hits_overall_sparsity(cnn: Path) -> None:
    result = prune(load(cnn), "magnitude", 0.5, scope="global")
    values = [numpy_helper.to_array(inits(result.model)[c.weight]) for c in result.report.layers]
    zeros = sum(int((v == 0).sum()) for v in values)
    assert abs(zeros / sum(v.size for v in values) - 0.5) < 1e-3
    per_layer = [float(np.mean(v == 0)) for v in values]
    assert max(per_layer) - min(per_layer) > 0.05  # global ranking differs from uniform


# ----- repair ------------------------------------------------------------------------------------

def test_batchnorm_reestimation_recovers_accuracy(resnet: Path) -> None:
    model = load(resnet)
    pruned = prune(model, "channel", 0.5).model
    fixed = repair(pruned, data(resnet, "calib"), model, reconstruct=False)
    before, after = accuracy(pruned, resnet), accuracy(fixed, resnet)
    assert after > before + 0.2
    # The stem's BatchNorm only lost whole channels; its kept statistics stay as trained.
    assert inits(fixed)["stem.1.running_mean"].SerializeToString() == \
        inits(pruned)["stem.1.running_mean"].SerializeToString()


def test_bias_correction_repairs_vit(vit: Path) -> None:
    model = load(vit)
    pruned = prune(model, "channel", 0.5).model
    calib = data(vit, "calib")
    fixed = repair(pruned, calib, model, reconstruct=False)
    assert accuracy(fixed, vit) >= accuracy(pruned, vit)
    # The first MLP's output mean (after its bias Add) on the calibration data is back to the
    # unpruned model's.
    matmul = next(n.output[0] for n in model.graph.node if n.name == "/blocks/blocks.0/mlp/mlp.2/MatMul")
    out = next(n.output[0] for n in model.graph.node if n.op_type == "Add" and matmul in n.input)
    means = {name: Probe(m, [out]).moments(calib, {out: -1})[out][0]
             for name, m in (("ref", model), ("pruned", pruned), ("fixed", fixed))}
    assert np.abs(means["pruned"] - means["ref"]).max() > 1e-2
    assert np.allclose(means["fixed"], means["ref"], atol=1e-4)
    with pytest.raises(DataError, match="unpruned model"):
        repair(pruned, calib, None)


def test_repair_rejects_calibration_data_that_does_not_fit(resnet: Path) -> None:
    model = load(resnet)
    pruned = prune(model, "channel", 0.5).model
    calib = data(resnet, "calib")["input"]
    with pytest.raises(DataError, match="shape"):
        repair(pruned, {"input": calib[:, :, :32, :32]}, model)
    with pytest.raises(DataError, match="inputs"):
        repair(pruned, {"pixels": calib}, model)
    bad = calib.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        repair(pruned, {"input": bad}, model)


# ----- least-squares reconstruction ------------------------------------------------------------

def _signature(model: onnx.ModelProto) -> list[tuple[str, str]]:
    return [(v.name, str(v.type)) for v in [*model.graph.input, *model.graph.output]]


def _error(model: onnx.ModelProto, reference: onnx.ModelProto, tensor: str, kept: list[int],
           calib: dict[str, np.ndarray]) -> float:
    ours = Probe(model, [tensor]).session.run([tensor], calib)[0]
    theirs = Probe(reference, [tensor]).session.run([tensor], calib)[0][:, kept]
    return float(np.mean((ours - theirs) ** 2))


def test_reconstruction_beats_the_old_repair_on_resnet(resnet: Path) -> None:
    model = load(resnet)
    pruned = prune(model, "channel", 0.5).model
    calib = data(resnet, "calib")
    old = repair(pruned, calib, model, reconstruct=False)
    events = []
    new = repair(pruned, calib, model, progress=Progress(events.append))
    validate_model(new)
    assert _signature(new) == _signature(model)
    assert accuracy(new, resnet) >= accuracy(old, resnet) + 0.25  # measured: 51.7% -> 98.3%
    assert accuracy(new, resnet) > 0.9
    assert any("least-squares" in e.message for e in events)
    assert all(0.0 <= e.fraction <= 1.0 for e in events)


def test_refitted_layer_matches_the_unpruned_output_better(resnet: Path) -> None:
    model = load(resnet)
    pruned = prune(model, "channel", 0.5).model
    calib = data(resnet, "calib")
    fixed, refitted = reconstruct(pruned, calib, model)
    target = next(t for t in read_targets(pruned) if t.node == "/layers/layers.2/conv2/Conv")
    assert target.output in refitted and target.in_kept is not None
    before = _error(pruned, model, target.output, target.kept, calib)
    after = _error(fixed, model, target.output, target.kept, calib)
    assert after < 0.5 * before


def test_layers_whose_inputs_are_whole_stay_bit_identical(resnet: Path) -> None:
    model = load(resnet)
    # Keeping conv1's channels leaves conv2's input whole; conv2 still loses output channels (residual).
    pruned = prune(model, "channel", 0.5, exclude=["/layers/layers.0/conv1/Conv"]).model
    targets = {t.node: t for t in read_targets(pruned)}
    conv2 = targets["/layers/layers.0/conv2/Conv"]
    assert conv2.in_kept is None and conv2.kept is not None
    fixed, refitted = reconstruct(pruned, data(resnet, "calib"), model)
    assert conv2.output not in refitted and targets["/layers/layers.1/conv2/Conv"].output in refitted
    before, after = inits(pruned), inits(fixed)
    refitted_nodes = [n for n in fixed.graph.node if n.output[0] in refitted]
    changed = {name for n in refitted_nodes for name in n.input[1:]}
    for name, tensor in before.items():
        if name not in changed:
            assert after[name].SerializeToString() == tensor.SerializeToString(), name
    assert all(after[name].SerializeToString() != before.get(name, onnx.TensorProto()).SerializeToString()
               for name in changed)
    assert [n.SerializeToString() for n in fixed.graph.node if n.output[0] not in refitted] == \
        [n.SerializeToString() for n in pruned.graph.node if n.output[0] not in refitted]


def test_unpruned_model_is_left_unchanged(resnet: Path) -> None:
    model = load(resnet)
    calib = data(resnet, "calib")
    same, refitted = reconstruct(model, calib, model)
    assert not refitted and same.SerializeToString() == model.SerializeToString()
    untouched = prune(model, "channel", 0.0).model
    same, refitted = reconstruct(untouched, calib, model)
    assert not refitted and same.SerializeToString() == untouched.SerializeToString()
    assert repair(untouched, calib, model).SerializeToString() == \
        repair(untouched, calib, model, reconstruct=False).SerializeToString()


def test_notes_from_before_reconstruction_get_the_old_repair(cnn: Path) -> None:
    model = load(cnn)
    pruned = prune(model, "channel", 0.5).model
    prop = next(p for p in pruned.metadata_props if p.key == KEY)
    prop.value = json.dumps([{k: v for k, v in t.items() if k != "in_kept"} for t in json.loads(prop.value)])
    calib = data(cnn, "calib")
    assert repair(pruned, calib, model).SerializeToString() == \
        repair(pruned, calib, model, reconstruct=False).SerializeToString()


@pytest.mark.parametrize("fixture", ["cnn", "vit"])
def test_gemm_and_matmul_layers_are_refitted(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    model = load(path)
    pruned = prune(model, "channel", 0.5).model
    calib = data(path, "calib")
    _, refitted = reconstruct(pruned, calib, model)
    ops = {n.op_type for n in pruned.graph.node if n.output[0] in refitted}
    assert ops == ({"Conv", "Gemm"} if fixture == "cnn" else {"MatMul"})
    new = repair(pruned, calib, model)
    validate_model(new)
    assert _signature(new) == _signature(model)
    assert accuracy(new, path) >= accuracy(repair(pruned, calib, model, reconstruct=False), path)


def test_reconstruction_refuses_bad_calibration_data_and_a_missing_reference(resnet: Path) -> None:
    model = load(resnet)
    pruned = prune(model, "channel", 0.5).model
    calib = data(resnet, "calib")["input"]
    with pytest.raises(DataError, match="shape"):
        reconstruct(pruned, {"input": calib[:, :, :32, :32]}, model)
    with pytest.raises(DataError, match="shape"):
        repair(pruned, {"input": calib[:, :, :32, :32]}, model)
    with pytest.raises(DataError, match="inputs"):
        repair(pruned, {"pixels": calib}, model)
    with pytest.raises(DataError, match="unpruned model"):
        repair(pruned, {"input": calib}, None)


# ----- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan"), "0.5", True, None])
def test_bad_ratio_is_refused_clearly(cnn: Path, ratio: object) -> None:
    with pytest.raises(WorkbenchError, match=r"\[0, 1\)|not a number"):
        prune(load(cnn), "channel", ratio)  # type: ignore[arg-type]


def test_bad_options_are_refused_clearly(cnn: Path) -> None:
    model = load(cnn)
    with pytest.raises(WorkbenchError, match="Unknown pruning method"):
        prune(model, "random", 0.5)  # type: ignore[arg-type]
    with pytest.raises(WorkbenchError, match="round_to only applies"):
        prune(model, "magnitude", 0.5, round_to=8)
    with pytest.raises(WorkbenchError, match="positive whole number"):
        prune(model, "channel", 0.5, round_to=0)
    with pytest.raises(ModelError, match=r"onnx\.ModelProto"):
        prune(str(cnn), "channel", 0.5)  # type: ignore[arg-type]


def _extract(model: onnx.ModelProto, inputs: list[str], outputs: list[str]) -> onnx.ModelProto:
    return onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(inputs, outputs)


def test_model_without_prunable_layers_is_refused(cnn: Path) -> None:
    model = load(cnn)
    relu_pool = _extract(model, ["/features/features.0/features.0.1/BatchNormalization_output_0"],
                         ["/features/features.1/MaxPool_output_0"])
    for method in ("magnitude", "2:4", "channel"):
        with pytest.raises(ModelError, match=r"(?i)no (layer|Conv)"):
            prune(relu_pool, method, 0.5)  # type: ignore[arg-type]
    # A lone logits layer has weights, but its outputs are the graph output: nothing to remove.
    head = _extract(model, ["/classifier/classifier.2/Relu_output_0"], ["logits"])
    with pytest.raises(ModelError, match="graph output"):
        prune(head, "channel", 0.5)


def test_progress_is_reported_and_cancel_stops(cnn: Path) -> None:
    events = []
    prune(load(cnn), "channel", 0.5, progress=Progress(events.append))
    assert events and events[-1].fraction == pytest.approx(1.0)
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        prune(load(cnn), "magnitude", 0.5, progress=Progress(cancel=token))
