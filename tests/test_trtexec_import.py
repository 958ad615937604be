"""Importing real trtexec exports (ResNet-18 and MobileNet engines built on GPUs) as layer tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.profiles.trt_layer_info import LayerInfoMismatch, TrtFileError, parse_layer_info
from workbench.profiles.trtexec_import import find_layer_info, import_trtexec

DATA = Path(__file__).resolve().parents[1] / "workbench" / "examples" / "trtexec"

STEMS = sorted(p.name[: -len(".profile.json")] for p in DATA.glob("*.profile.json"))
EXPECTED_CONV_PRECISION = {
    "resnet18_a100_fp32": "FP32",
    "resnet18_a100_fp16": "FP16",
    "resnet18_a100_qat": "INT8",
    "mobilenet_qat": "INT8",
    "mobilenet_v2_residuals_qat": "INT8",
}
# Published per-image FLOPs (2 x MACs) of the two architectures: ResNet-18 1.82 GMAC,
# MobileNetV2 0.30 GMAC.
EXPECTED_GFLOPS_PER_IMAGE = {"resnet18": 3.64, "mobilenet": 0.60}


def _raw(stem: str, kind: str):
    return json.loads((DATA / f"{stem}.{kind}.json").read_text())


def _imported(stem: str):
    return import_trtexec(DATA / f"{stem}.profile.json", DATA / f"{stem}.graph.json")


def test_all_five_exports_are_present():
    assert set(STEMS) == set(EXPECTED_CONV_PRECISION)


@pytest.mark.parametrize("stem", STEMS)
def test_every_profile_layer_is_a_row_in_order(stem):
    records = _raw(stem, "profile")[1:]
    table = _imported(stem).layers
    assert list(table["name"]) == [r["name"] for r in records]
    assert list(table["time_ms"]) == pytest.approx([r["medianMs"] for r in records])


@pytest.mark.parametrize("stem", STEMS)
def test_layer_times_add_up_to_the_files_own_total(stem):
    raw = _raw(stem, "profile")
    count, records = raw[0]["count"], raw[1:]
    file_total = sum(r["timeMs"] for r in records) / count
    profile = _imported(stem)
    assert profile.total_ms == pytest.approx(file_total, rel=1e-9)
    assert profile.count == count
    assert profile.time_statistic == "median"
    ratio = profile.layers["time_ms"].sum() / file_total
    assert abs(ratio - 1) < 0.01, f"{stem}: layer sum / file total = {ratio:.5f}"
    assert profile.layers["share"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("stem", STEMS)
def test_precisions_come_from_the_layer_info(stem):
    table = _imported(stem).layers
    convs = table[table["op_type"] == "Convolution"]
    assert len(convs) > 0
    assert set(convs["precision"]) == {EXPECTED_CONV_PRECISION[stem]}
    assert "unknown" not in set(table["precision"])
    if stem == "resnet18_a100_fp32":
        assert set(table["precision"]) == {"FP32"}
    if stem.endswith("qat"):
        # Each Q/DQ input quantization runs as a reformat that writes INT8.
        quantize = table[table["name"].str.match(r"^QuantizeLinear_\d+$")]
        assert len(quantize) > 0 and set(quantize["precision"]) == {"INT8"}
        assert set(quantize["op_type"]) == {"Reformat"}


def test_fp16_engine_converts_back_to_fp32_at_the_output():
    table = _imported("resnet18_a100_fp16").layers
    last = table.iloc[-1]
    assert last["name"].startswith("Reformatting CopyNode for Output Tensor 0")
    assert last["precision"] == "FP32"
    assert table.iloc[0]["precision"] == "FP16"  # the input copy writes FP16


@pytest.mark.parametrize("stem", STEMS)
def test_fused_names_map_to_onnx_nodes(stem):
    table = _imported(stem).layers
    layers = [row for row in table.itertuples() if not row.name.startswith("Reformatting CopyNode")]
    mapped = [(row.name, node) for row in layers for node in row.onnx_nodes]
    assert mapped, f"no layer of {stem} maps to an ONNX node"
    for name, node in mapped:
        assert node in name and "Unnamed Layer" not in node
        assert not node.endswith((".weight", ".bias")), name
    compute = [row for row in layers if "Conv_" in row.name or "Gemm_" in row.name]
    assert compute, f"{stem} has no Conv or Gemm layer to check"
    for row in compute:
        assert any(n.startswith(("Conv_", "Gemm_")) for n in row.onnx_nodes), row.name


@pytest.mark.parametrize(
    ("stem", "layer", "nodes"),
    [
        ("resnet18_a100_fp32", "Conv_0 + Relu_1", ["Conv_0", "Relu_1"]),
        ("resnet18_a100_fp32", "Conv_5 + Add_6 + Relu_7", ["Conv_5", "Add_6", "Relu_7"]),
        ("resnet18_a100_fp32", "reshape_after_Gemm_48", ["Gemm_48"]),
        ("resnet18_a100_qat", "conv1.weight + QuantizeLinear_7 + Conv_9", ["QuantizeLinear_7", "Conv_9"]),
        ("resnet18_a100_qat", "QuantizeLinear_2", ["QuantizeLinear_2"]),
        ("resnet18_a100_qat", "copied_squeeze_after_(Unnamed Layer* 307) [ElementWise]", []),
        (
            "mobilenet_qat",
            "features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)",
            ["QuantizeLinear_8", "Conv_12", "Clip_16"],
        ),
    ],
)
def test_specific_fused_names(stem, layer, nodes):
    table = _imported(stem).layers.set_index("name")
    assert table.loc[layer, "onnx_nodes"] == nodes


def test_gemm_with_bias_shuffles_keeps_only_nodes():
    table = _imported("resnet18_a100_qat").layers
    fc = table[table["name"].str.startswith("fc.weight + QuantizeLinear_255")].iloc[0]
    assert fc["onnx_nodes"] == ["QuantizeLinear_255", "Gemm_257"]


@pytest.mark.parametrize("stem", STEMS)
def test_reformat_rows_are_kept_as_their_own_rows(stem):
    records = _raw(stem, "profile")[1:]
    copies = [r["name"] for r in records if r["name"].startswith("Reformatting CopyNode")]
    assert copies, "every example engine has at least one reformat"
    table = _imported(stem).layers.set_index("name")
    for name in copies:
        assert table.loc[name, "op_type"] == "Reformat"
        assert table.loc[name, "onnx_nodes"] == []


@pytest.mark.parametrize("stem", STEMS)
def test_convolution_flops_match_the_weights(stem):
    """FLOPs from dimensions/kernel/OutMaps/Groups must equal 2 x weights x output pixels."""
    by_name = {layer["Name"]: layer for layer in _raw(stem, "graph")["Layers"]}
    table = _imported(stem).layers
    checked = 0
    for row in table.itertuples():
        layer = by_name[row.name]
        if layer.get("ParameterType") != "Convolution":
            assert math.isnan(row.flops)
            continue
        out = layer["Outputs"][0]["Dimensions"]
        expected = 2 * out[0] * layer["Weights"]["Count"] * math.prod(out[2:])
        assert row.flops == pytest.approx(expected)
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("stem", STEMS)
def test_model_flops_match_the_published_figures(stem):
    profile = _imported(stem)
    per_image = profile.layers["flops"].sum() / profile.batch / 1e9
    expected = EXPECTED_GFLOPS_PER_IMAGE[stem.split("_")[0]]
    assert per_image == pytest.approx(expected, rel=0.03)
    convs = profile.layers[profile.layers["op_type"] == "Convolution"]
    assert (convs["gflops_per_s"] > 0).all()
    assert (profile.layers["bytes"] > 0).all()


@pytest.mark.parametrize("stem", STEMS)
def test_metadata_beside_the_profile(stem):
    profile = _imported(stem)
    if stem.startswith("resnet18_a100"):
        assert "A100" in profile.gpu
        assert profile.batch == 32
    else:
        assert "TITAN RTX" in profile.gpu
        assert profile.batch == 1
    assert profile.build_precision == _raw(stem, "build.metadata")["build_options"]["Precision"]
    assert profile.metadata["profile"]["device_information"]["Selected Device"] == profile.gpu
    assert profile.tensorrt_version is None  # these logs do not record it
    assert profile.notes == []


def test_end_to_end_median_is_read_from_the_summary():
    profile = _imported("resnet18_a100_fp32")
    assert profile.gpu_compute_median_ms == pytest.approx(1.99072)
    # Profiling layer by layer costs time: the profiled sum is above the unprofiled latency.
    assert profile.total_ms > profile.gpu_compute_median_ms


@pytest.mark.parametrize("stem", STEMS)
def test_sibling_layer_info_is_found(stem):
    assert find_layer_info(DATA / f"{stem}.profile.json") == DATA / f"{stem}.graph.json"


@pytest.mark.parametrize("stem", STEMS)
def test_without_layer_info_op_types_are_guessed_from_names(stem):
    detailed = _imported(stem).layers
    bare = import_trtexec(DATA / f"{stem}.profile.json").layers
    assert list(bare["name"]) == list(detailed["name"])
    assert set(bare["precision"]) == {"unknown"}
    assert bare["flops"].isna().all()
    for guessed, known in zip(bare["op_type"], detailed["op_type"], strict=True):
        if known == "Convolution":
            assert guessed in {"Convolution", "MatrixMultiply"}  # a Gemm run as a 1x1 convolution
        elif known in {"Pooling", "Reformat"}:
            assert guessed == known
    assert [list(n) for n in bare["onnx_nodes"]] == [list(n) for n in detailed["onnx_nodes"]]


def test_no_sparse_kernels_in_the_examples():
    for stem in STEMS:
        assert _imported(stem).sparse_layers == []


def test_sparse_layers_are_reported(tmp_path):
    """The same engine description with one layer switched to sparse weights, one to a sparse tactic."""
    graph = _raw("resnet18_a100_fp16", "graph")
    by_name = {layer["Name"]: layer for layer in graph["Layers"]}
    by_name["Conv_3 + Relu_4"]["HasSparseWeights"] = 1
    by_name["Conv_8 + Relu_9"]["TacticName"] = "sm80_xmma_fprop_sparse_conv_interleaved_i8i8_i8i32"
    path = tmp_path / "sparse.graph.json"
    path.write_text(json.dumps(graph))
    profile = import_trtexec(DATA / "resnet18_a100_fp16.profile.json", path)
    assert profile.sparse_layers == ["Conv_3 + Relu_4", "Conv_8 + Relu_9"]


def test_layer_names_only_verbosity(tmp_path):
    graph = _raw("mobilenet_qat", "graph")
    graph["Layers"] = [layer["Name"] for layer in graph["Layers"]]
    path = tmp_path / "names_only.graph.json"
    path.write_text(json.dumps(graph))
    profile = import_trtexec(DATA / "mobilenet_qat.profile.json", path)
    assert len(profile.layers) == 73
    assert set(profile.layers["precision"]) == {"unknown"}
    assert profile.layer_info is not None and not profile.layer_info.detailed
    assert "Convolution" in set(profile.layers["op_type"])


def test_tensorrt_11_io_tensor_records_read_like_tensorrt_10_bindings():
    graph = _raw("resnet18_a100_fp32", "graph")
    trt10 = parse_layer_info(graph)
    names = graph.pop("Bindings")
    # TensorRT 11 lists I/O tensors as records (outputs may come first); inputs still lead the bindings.
    graph["I/O Tensors"] = [{"Name": name, "IOMode": "Input" if i == 0 else "Output", "DataType": "Float"}
                            for i, name in reversed(list(enumerate(names)))]
    trt11 = parse_layer_info(graph)
    assert trt11.bindings == trt10.bindings == names
    assert trt11.batch == trt10.batch is not None


def test_onnx_layer_metadata_wins_over_the_name():
    graph = _raw("resnet18_a100_fp32", "graph")
    graph["Layers"][0]["Metadata"] = "[ONNX Layer: /conv1/Conv]\x1f[ONNX Layer: /relu/Relu]"
    info = parse_layer_info(json.dumps(graph))
    assert info.layers[0].onnx_nodes == ("/conv1/Conv", "/relu/Relu")
    assert info.layers[1].onnx_nodes == ("MaxPool_2",)


def test_known_node_names_make_the_mapping_exact():
    nodes = {"QuantizeLinear_7", "Conv_9", "QuantizeLinear_2"}
    profile = import_trtexec(
        DATA / "resnet18_a100_qat.profile.json", DATA / "resnet18_a100_qat.graph.json", onnx_node_names=nodes
    )
    table = profile.layers.set_index("name")
    assert table.loc["conv1.weight + QuantizeLinear_7 + Conv_9", "onnx_nodes"] == ["QuantizeLinear_7", "Conv_9"]
    assert table.loc["MaxPool_12", "onnx_nodes"] == []


# ---- bad input: each is a WorkbenchError whose message says what is wrong and what to do ----


def test_missing_profile(tmp_path):
    with pytest.raises(TrtFileError, match="does not exist"):
        import_trtexec(tmp_path / "nope.profile.json")


def test_profile_that_is_not_json():
    with pytest.raises(TrtFileError, match="not valid JSON"):
        import_trtexec(DATA / "NOTICE.md")


def test_truncated_profile(tmp_path):
    text = (DATA / "resnet18_a100_fp32.profile.json").read_text()
    path = tmp_path / "cut.profile.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(TrtFileError, match="export it again"):
        import_trtexec(path)


def test_json_that_is_not_a_profile():
    with pytest.raises(TrtFileError, match="not a trtexec profile"):
        import_trtexec(DATA / "resnet18_a100_fp32.build.metadata.json")


def test_layer_info_passed_as_the_profile():
    with pytest.raises(TrtFileError, match="--layer-info"):
        import_trtexec(DATA / "resnet18_a100_fp32.graph.json")


def test_records_without_names(tmp_path):
    path = tmp_path / "odd.profile.json"
    path.write_text(json.dumps([{"count": 3}, {"layer": "Conv_0", "timeMs": 1.0}]))
    with pytest.raises(TrtFileError, match="no layer name"):
        import_trtexec(path)


def test_records_without_times(tmp_path):
    path = tmp_path / "odd.profile.json"
    path.write_text(json.dumps([{"count": 3}, {"name": "Conv_0", "percentage": 100}]))
    with pytest.raises(TrtFileError, match="has no time"):
        import_trtexec(path)


def test_profile_without_layers(tmp_path):
    path = tmp_path / "empty.profile.json"
    path.write_text(json.dumps([{"count": 10}]))
    with pytest.raises(TrtFileError, match="no layer records"):
        import_trtexec(path)


def test_layer_info_from_another_engine():
    with pytest.raises(LayerInfoMismatch, match="different engines") as caught:
        import_trtexec(DATA / "resnet18_a100_fp32.profile.json", DATA / "mobilenet_qat.graph.json")
    assert "Conv_0 + Relu_1" in str(caught.value)
    assert isinstance(caught.value, WorkbenchError)


def test_profile_passed_as_layer_info():
    with pytest.raises(TrtFileError, match="no 'Layers' list"):
        import_trtexec(DATA / "resnet18_a100_fp32.profile.json", DATA / "resnet18_a100_qat.profile.json")


def test_missing_layer_info(tmp_path):
    with pytest.raises(TrtFileError, match=r"layer information file .* does not exist"):
        import_trtexec(DATA / "resnet18_a100_fp32.profile.json", tmp_path / "gone.graph.json")


def test_layer_info_text_that_is_not_json():
    with pytest.raises(TrtFileError, match="not JSON"):
        parse_layer_info("{'Layers': [")


def test_corrupt_metadata_is_noted_not_fatal(tmp_path):
    for suffix in ("profile.json", "graph.json", "build.metadata.json"):
        (tmp_path / f"run.{suffix}").write_text((DATA / f"resnet18_a100_fp16.{suffix}").read_text())
    (tmp_path / "run.profile.metadata.json").write_text("{ cut off")
    profile = import_trtexec(tmp_path / "run.profile.json", tmp_path / "run.graph.json")
    assert profile.gpu is None
    assert profile.build_precision == "FP32+FP16"
    assert len(profile.notes) == 1 and "run.profile.metadata.json" in profile.notes[0]
    assert profile.batch == 32  # from the engine's own input binding
