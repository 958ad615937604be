"""The Model panel: samples, paths, uploads, inspection, and files that are not models."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from workbench.ui.app import Workbench


def test_sample_opens_with_inspection(cnn: Path) -> None:
    app = Workbench()
    assert "digits_cnn" in [label for label, _ in app.model.sample.options]
    app.model.sample.value = str(cnn)
    app.model.open_sample.click()
    summary = app.model.summary.value
    assert "input: float32[" in summary and "logits: float32[" in summary
    assert "Conv" in summary and "parameters" in summary and "FLOPs per sample" in summary
    assert app.model.info is not None and app.model.info.parameters > 0
    assert app.graph.variant.options[0][1] == str(cnn)


def test_file_path_opens(cnn: Path) -> None:
    app = Workbench()
    app.model.file.value = str(cnn)
    app.model.open_file.click()
    assert app.model.path == cnn


def test_corrupt_model_is_explained_and_previous_model_kept(cnn: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"\x08\x07garbage\xff\xfe")
    app = Workbench(cnn)
    app.model.file.value = str(corrupt)
    app.model.open_file.click()
    assert "wb-error" in app.model.message.value and "What to do" in app.model.message.value
    assert app.model.path == cnn  # the good model stays open


def test_corrupt_model_given_to_the_app_shows_the_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"not a model at all")
    app = Workbench(corrupt)
    assert "wb-error" in app.model.message.value
    assert app.model.path is None
    app.build.build_button.click()
    assert "Open one in the Model tab" in app.build.status.value


def test_empty_path_is_explained() -> None:
    app = Workbench()
    app.model.open_file.click()
    assert "No file given" in app.model.message.value


def test_upload_is_saved_in_the_workspace_and_opened(cnn: Path, workspace: Path) -> None:
    app = Workbench()
    content = cnn.read_bytes()
    app.model.upload.value = ({"name": "mine.onnx", "type": "", "size": len(content), "content": memoryview(content),
                               "last_modified": datetime.now(timezone.utc)},)
    assert app.model.path is not None and app.model.path.name == "mine.onnx"
    assert app.model.path.read_bytes() == content
    assert app.model.path.is_relative_to(workspace)
    assert "input: float32[" in app.model.summary.value


def test_the_readme_snippet_opens_from_the_lab_folder(cnn: Path, tmp_path: Path, monkeypatch) -> None:
    """`Workbench("sample_models/...")` from the README, in a kernel started in workbench-notebooks/."""
    folder = tmp_path / "workbench-notebooks"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("WORKBENCH_SAMPLES", str(cnn.parents[1]))
    for given in ("sample_models/digits_cnn/model.onnx", "digits_cnn"):
        app = Workbench(given)
        assert app.model.path == cnn and app.model.info is not None
