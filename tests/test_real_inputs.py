"""A real model nobody here wrote: silero-vad's ONNX files, a scalar sample rate, a recurrent state, If subgraphs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.silero_vad import silero_file, write_data
from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.data.loaders import load_data
from workbench.errors import DataError
from workbench.messages import library_message
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.runs.pipeline import Pipeline

SHAPED = "random:8,input=1x576,state=2x1x128,sr=16000"


@pytest.fixture(scope="module")
def speech_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_data(silero_file(), tmp_path_factory.mktemp("speech"))


def test_weights_inside_if_branches_are_counted() -> None:
    for name in ("silero_vad.onnx", "silero_vad_16k_op15.onnx"):
        info = inspect_model(load_model(silero_file(name)))
        assert info.parameters > 300_000, name  # all of them sit in If branches or beside them


def test_the_state_input_carries_its_samples_on_axis_1_and_the_rate_is_a_scalar(speech_data) -> None:
    _, eval_npz = speech_data
    info = inspect_model(load_model(silero_file()))
    data = Pipeline().load_data(str(eval_npz), info, "evaluation")
    assert data.axes == {"input": 0, "state": 1, "sr": None}
    first = next(data.batches(4))
    assert first["input"].shape == (4, 576) and first["state"].shape == (2, 4, 128) and first["sr"].shape == ()


def test_a_declared_axis_in_the_data_file_wins(speech_data, tmp_path: Path) -> None:
    _, eval_npz = speech_data
    arrays = dict(np.load(eval_npz))
    path = tmp_path / "declared.npz"
    np.savez(path, **arrays, __batch_axes__=json.dumps({"state": 0}))
    info = inspect_model(load_model(silero_file()))
    with pytest.raises(DataError, match="different sample counts"):
        Pipeline().load_data(str(path), info, "evaluation")


@pytest.mark.slow
def test_fp32_and_int8_variants_are_built_and_judged_on_real_speech(speech_data) -> None:
    calib, eval_npz = speech_data
    model = silero_file()
    pipeline = Pipeline()
    for precision in ("fp32", "int8-dynamic", "int8"):
        run = pipeline.run(model, BuildOptions(precision, batch=8, repeats=3, calib=str(calib), eval=str(eval_npz)))
        score = run.drift["task"]
        assert score["samples"] == len(np.load(eval_npz)["input"]), precision
        assert "met" in score and np.isfinite(score["value"]), precision


def test_random_data_takes_shapes_for_dynamic_dims_and_a_scalar_value() -> None:
    info = inspect_model(load_model(silero_file()))
    data = load_data(SHAPED, info.inputs)
    assert data.inputs["state"].shape == (2, 8, 128) and int(data.inputs["sr"]) == 16000
    with pytest.raises(DataError, match=r"random:32,input=1xN"):
        load_data("random:8", info.inputs)
    run = Pipeline().run(silero_file(), BuildOptions("fp32", batch=4, repeats=2, eval=SHAPED))
    assert run.drift["task"]["samples"] == 8


def test_tune_on_random_data_whose_fp32_baseline_fails_says_so(capsys: pytest.CaptureFixture) -> None:
    # chunks of 7 samples: the model's reflect padding needs 64, so FP32 itself fails on them
    code = main(["tune", str(silero_file()), "--eval", "random:8,input=1x7,state=2x1x128,sr=16000",
                 "--backend", "onnxruntime-cpu",
                 "--precisions", "int8-dynamic", "--time-budget", "10", "--repeats", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "FP32 baseline failed on every backend" in err and "Pad reflect" in err


def test_an_engine_message_is_kept_past_its_first_line() -> None:
    session = ort.InferenceSession(str(silero_file()), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception) as error:  # the state's first dim must be 2
        session.run(None, {"input": np.zeros((1, 576), np.float32), "state": np.zeros((1, 1, 128), np.float32),
                           "sr": np.array(16000, np.int64)})
    assert "\n" in str(error.value)
    assert "Expected: 2" in library_message(error.value)


def test_flops_inside_if_branches_are_counted_from_one_real_inference(speech_data,
                                                                     capsys: pytest.CaptureFixture) -> None:
    _, eval_npz = speech_data
    figures = []
    for name in ("silero_vad.onnx", "silero_vad_16k_op15.onnx"):
        assert main(["inspect", str(silero_file(name)), "--eval", str(eval_npz), "--json"]) == 0
        figures.append(json.loads(capsys.readouterr().out)["gflops_per_sample"])
    assert figures[0] > 1e-4  # was 0: every Conv and the LSTM sit in If branches
    assert figures[0] == pytest.approx(figures[1], rel=0.05)  # the 16 kHz branch is the op15 file's network


def test_an_int8_variant_of_a_model_inside_if_branches_says_nothing_was_quantized(speech_data) -> None:
    _, eval_npz = speech_data
    run = Pipeline().run(silero_file(), BuildOptions("int8-dynamic", batch=8, repeats=2, eval=str(eval_npz)))
    assert any(note.startswith("nothing was quantized: the model's compute ops sit inside If") for note in run.notes)
