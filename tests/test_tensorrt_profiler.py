"""The TensorRT profiler's bookkeeping, fed the layer names of real engines (no TensorRT needed)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from workbench.backends.tensorrt_profiler import LayerTimeCollector, make_layer_profiler, tensorrt_module
from workbench.errors import WorkbenchError
from workbench.profiles.trtexec_import import import_trtexec

DATA = Path(__file__).resolve().parents[1] / "workbench" / "examples" / "trtexec"

STEMS = sorted(p.name[: -len(".profile.json")] for p in DATA.glob("*.profile.json"))
# Per-run scale factors: the median run is 1.0, one run is a 5x hiccup the median must ignore.
RUN_SCALES = (1.0, 1.2, 0.9, 5.0, 1.0)


def _records(stem):
    return json.loads((DATA / f"{stem}.profile.json").read_text())[1:]


def _graph_text(stem):
    return (DATA / f"{stem}.graph.json").read_text()


@pytest.mark.parametrize("stem", STEMS)
def test_replayed_runs_give_the_imported_table(stem):
    """Replaying a real engine's layer times through the profiler reproduces the trtexec import."""
    collector = LayerTimeCollector(_graph_text(stem))  # the inspector hands over JSON text
    for scale in RUN_SCALES:
        for record in _records(stem):
            collector.report_layer_time(record["name"], record["medianMs"] * scale)
    assert collector.runs == len(RUN_SCALES)
    table = collector.layer_table()
    imported = import_trtexec(DATA / f"{stem}.profile.json", DATA / f"{stem}.graph.json").layers
    assert list(table["name"]) == list(imported["name"])
    assert list(table["time_ms"]) == pytest.approx(list(imported["time_ms"]))
    for column in ("op_type", "precision", "onnx_nodes"):
        assert list(table[column]) == list(imported[column])
    totals = collector.run_totals_ms()
    assert totals[3] == pytest.approx(5.0 * sum(r["medianMs"] for r in _records(stem)))


def test_explicit_run_ends_and_repeated_layers():
    """Layers reported twice in one run are summed; end_run() splits runs when auto-split is off."""
    names = [r["name"] for r in _records("resnet18_a100_fp32")][:3]
    collector = LayerTimeCollector(split_on_repeat=False)
    for run in range(3):
        for name in [names[0], names[1], names[0], names[2]]:
            collector.report_layer_time(name, 1.0 + run)
        collector.end_run()
    collector.end_run()  # a second mark with nothing reported changes nothing
    assert collector.runs == 3
    table = collector.layer_table().set_index("name")
    assert table.loc[names[0], "time_ms"] == pytest.approx(4.0)  # twice per run, median run 2.0
    assert table.loc[names[1], "time_ms"] == pytest.approx(2.0)
    samples = collector.samples()
    assert len(samples) == 9 and set(samples["run"]) == {0, 1, 2}


def test_without_layer_info_names_still_map():
    collector = LayerTimeCollector()
    for record in _records("mobilenet_qat"):
        collector.report_layer_time(record["name"], record["medianMs"])
    table = collector.layer_table().set_index("name")
    assert table.loc["features.0.0.weight + QuantizeLinear_8 + Conv_12 + PWN(Clip_16)", "onnx_nodes"] == [
        "QuantizeLinear_8",
        "Conv_12",
        "Clip_16",
    ]
    assert set(table["precision"]) == {"unknown"}


def test_layer_indices_when_engine_names_are_hidden():
    """With profiling verbosity NONE TensorRT reports layer indices instead of names."""
    collector = LayerTimeCollector(_graph_text("resnet18_a100_fp16"))
    collector.report_layer_time("0", 0.08)
    collector.report_layer_time("1", 0.11)
    table = collector.layer_table()
    assert list(table["op_type"]) == ["Reformat", "Convolution"]
    assert table.iloc[1]["onnx_nodes"] == ["Conv_0", "Relu_1"]


def test_reset_and_empty():
    collector = LayerTimeCollector()
    collector.report_layer_time("Conv_0 + Relu_1", 0.5)
    collector.reset()
    assert collector.runs == 0
    with pytest.raises(WorkbenchError, match="profiler before running"):
        collector.layer_table()


def test_bad_layer_info_is_rejected_up_front():
    with pytest.raises(WorkbenchError, match="no 'Layers' list"):
        LayerTimeCollector({"layers": []})


def test_factory_matches_what_is_installed():
    profiler = make_layer_profiler(_graph_text("resnet18_a100_qat"))
    assert isinstance(profiler, LayerTimeCollector)
    installed = importlib.util.find_spec("tensorrt") is not None
    assert (tensorrt_module() is not None) == installed
    if installed:
        assert isinstance(profiler, tensorrt_module().IProfiler)
    else:
        assert type(profiler) is LayerTimeCollector
