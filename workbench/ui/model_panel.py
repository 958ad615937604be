"""Model tab: choose a sample, a file path or an upload, and read its inspection before building."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from html import escape
from pathlib import Path

import ipywidgets as W

from workbench.errors import WorkbenchError
from workbench.model.inspect import ModelInfo
from workbench.runs.pipeline import Pipeline
from workbench.samples import find_model, sample_models
from workbench.ui.messages import error_html, heading_html, note_html

UPLOADS = "uploads"


def inspection_html(info: ModelInfo) -> str:
    """Inputs, outputs, size, cost and op mix: what decides which precision can pay off."""
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in (
        ("name", escape(info.name)),
        ("opset", info.opset),
        ("parameters", f"{info.parameters:,}"),
        ("FLOPs per sample", f"{info.flops / 1e6:,.2f} M"),
        ("inputs", "<br>".join(escape(t.describe()) for t in info.inputs)),
        ("outputs", "<br>".join(escape(t.describe()) for t in info.outputs)),
    ))
    total = sum(info.op_histogram.values()) or 1
    ops = sorted(info.op_histogram.items(), key=lambda kv: -kv[1])
    mix = "".join(
        f"<tr><td>{escape(op)}</td><td>{n}</td><td><div style='background:#5c6bc0;height:10px;"
        f"width:{120 * n / total:.0f}px'></div></td></tr>" for op, n in ops)
    return (f"<table class='wb-inspection'>{rows}</table>{heading_html('Op mix')}"
            f"<table class='wb-opmix'>{mix}</table>")


class ModelPanel:
    """Lays out the three ways to pick a model; opening goes through ``Pipeline.inspect``."""

    def __init__(self, pipeline: Pipeline, on_open: Callable[[Path, ModelInfo], None]) -> None:
        self.pipeline = pipeline
        self.on_open = on_open
        self.path: Path | None = None
        self.info: ModelInfo | None = None
        samples = sample_models()
        self.sample = W.Dropdown(options=[(name, str(path)) for name, path in samples.items()],
                                 description="Sample", disabled=not samples)
        self.open_sample = W.Button(description="Open sample", icon="folder-open", disabled=not samples)
        self.file = W.Text(placeholder="path/to/model.onnx", description="File",
                           layout=W.Layout(width="420px"))
        self.open_file = W.Button(description="Open file", icon="folder-open")
        self.upload = W.FileUpload(accept=".onnx", multiple=False, description="Upload .onnx")
        self.current = W.HTML()
        self.summary = W.HTML()
        self.message = W.HTML(note_html("Pick a sample, type a file path or upload an .onnx file.")
                              if samples else note_html("No sample models found: set WORKBENCH_SAMPLES to a "
                                                        "sample_models folder, or open your own file.", warn=True))
        self.open_sample.on_click(lambda _: self.open(self.sample.value))
        self.open_file.on_click(lambda _: self.open(self.file.value.strip()))
        self.upload.observe(self._uploaded, names="value")
        self.widget = W.VBox([
            W.HBox([self.sample, self.open_sample]),
            W.HBox([self.file, self.open_file]),
            self.upload,
            self.message,
            self.current,
            self.summary,
        ])

    def open(self, path: str | Path) -> ModelInfo | None:
        """Inspect and adopt a model; a bad file leaves the previous model in place."""
        if not str(path):
            self.message.value = error_html("No file given. Type the path of an .onnx file first.")
            return None
        path = find_model(path)
        try:
            info = self.pipeline.inspect(path)
        except WorkbenchError as exc:
            self.message.value = error_html(exc)
            return None
        self.path, self.info = path, info
        if str(path) in {value for _, value in self.sample.options}:
            self.sample.value = str(path)  # the dropdown names the sample that is open, however it was opened
        self.current.value = f"<b>Model:</b> <code>{escape(str(path))}</code>"
        self.summary.value = inspection_html(info)
        self.message.value = "".join(note_html(w, warn=True) for w in info.warnings)
        self.on_open(self.path, info)
        return info

    def _uploaded(self, change: dict) -> None:
        """Keep the upload in the workspace (named by content), so its runs can find it again."""
        if not change["new"]:
            return
        item = change["new"][0]
        content = bytes(item["content"])
        folder = self.pipeline.workspace.root / UPLOADS / hashlib.sha256(content).hexdigest()[:12]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(item["name"]).name
        target.write_bytes(content)
        self.open(target)
