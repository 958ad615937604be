"""What a build reads is checked before it is trusted: external weights in the identity, data headers, metrics."""

from __future__ import annotations

import io
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.lib import format as npy_format

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.data.loaders import load_data
from workbench.errors import DataError
from workbench.model.inspect import inspect_model
from workbench.model.loader import load_model
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline


def _with_external_weights(cnn: Path, folder: Path) -> Path:
    folder.mkdir()
    model = onnx.load(str(cnn))
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=0)
    shutil.copy(cnn.parent / "eval.npz", folder / "eval.npz")
    return path


def test_new_external_weights_make_a_new_run(cnn: Path, tmp_path: Path) -> None:
    model = _with_external_weights(cnn, tmp_path / "external")
    pipeline = Pipeline()
    first = pipeline.run(model, BuildOptions("fp16", batch=4, repeats=2))
    weights = model.parent / "weights.bin"
    graph_bytes = model.read_bytes()
    weights.write_bytes(np.random.default_rng(0).standard_normal(weights.stat().st_size // 4)
                        .astype(np.float32).tobytes())
    assert model.read_bytes() == graph_bytes  # only the weights changed
    second = pipeline.run(model, BuildOptions("fp16", batch=4, repeats=2))
    assert second.run_id != first.run_id and second.spec.model_digest != first.spec.model_digest
    assert load_model(cnn).digest == load_model(cnn).digest  # a plain model keeps its file digest


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    out = io.BytesIO()
    npy_format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return out.getvalue()


def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def test_an_npz_declaring_more_than_memory_allows_is_refused_before_loading(cnn: Path, tmp_path: Path) -> None:
    inputs = inspect_model(load_model(cnn)).inputs
    bomb = _npz(tmp_path / "bomb.npz", {inputs[0].name: _npy_header((10**9, 1, 28, 28)) + bytes(1024)})
    with pytest.raises(DataError, match=r"declares 3\.1 TB of arrays, more than the .* WORKBENCH_MEMORY_GB"):
        load_data(bomb, inputs)
    single = tmp_path / "bomb.npy"
    single.write_bytes(_npy_header((10**9,)) + bytes(64))
    with pytest.raises(DataError, match=r"declares 4\.0 GB"):
        load_data(single, inputs)


def test_a_malformed_header_is_named_as_such(cnn: Path, tmp_path: Path) -> None:
    inputs = inspect_model(load_model(cnn)).inputs
    broken = _npz(tmp_path / "broken.npz", {inputs[0].name: b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': <<<}  "})
    with pytest.raises(DataError, match="malformed NumPy header") as error:
        load_data(broken, inputs)
    assert "pickled" not in str(error.value)


def test_a_metric_module_runs_only_when_the_build_starts(
        cnn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "my_metric.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "def agree(reference, variant, labels):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_metric", raising=False)  # imported by this test, gone after it
    args = ["run", str(cnn), "--precision", "fp16", "--repeats", "2", "--metric", "my_metric:agree", "--budget", "0.5"]
    assert main([*args, "--eval", str(tmp_path / "missing.npz")]) == 2
    assert "No data at" in capsys.readouterr().err and not marker.exists()
    assert main([*args, "--batch", "3"]) == 0 and marker.read_text() == "ran"


def test_the_metric_option_says_it_runs_the_modules_code(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "runs that module's code" in " ".join(capsys.readouterr().out.split())


def test_a_quant_option_for_another_precision_is_checked_and_said_ignored(cnn: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(cnn), "--precision", "int8-dynamic", "--quant-option", "foo=bar", "--repeats", "2"]) == 2
    assert "Unknown quantization option 'foo'" in capsys.readouterr().err
    run = Pipeline().run(cnn, BuildOptions("fp16", batch=4, repeats=2, recipe=Recipe(ops="compute")))
    assert any("ops=compute ignored: it does not shape a fp16 file" in note for note in run.notes)
    shaped = Pipeline().run(cnn, BuildOptions("int8", batch=4, repeats=2, recipe=Recipe(ops="compute")))
    assert not any("ignored" in note for note in shaped.notes)


def test_an_all_nan_variant_is_an_infinite_error_without_a_numpy_warning() -> None:
    import warnings

    from workbench.tasks.raw import OutputStats

    errors = OutputStats()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        errors.update(np.ones((2, 3), np.float32), np.full((2, 3), np.nan, np.float32))
    assert errors.result()["max_rel_error"] == float("inf")
