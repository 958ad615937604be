"""Load an ONNX model safely, turning every way a file can be unusable into one ModelError.

ONNX's own errors (protobuf decode failures, checker messages) say little about what to do; a
user dropping the wrong file into the widget deserves a sentence, not a stack trace.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from workbench.errors import ModelError
from workbench.memory.weight_values import drop_weight_values

#: Oldest ai.onnx opset ONNX Runtime still runs, and newest this install understands.
MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()


@dataclass(frozen=True)
class LoadedModel:
    """A checked model and the digest that keys every artifact derived from it."""

    path: Path
    proto: onnx.ModelProto
    digest: str

    def without_weight_values(self) -> LoadedModel:
        """The same model holding only its graph (``drop_weight_values``): what a run keeps once its file is built."""
        return replace(self, proto=drop_weight_values(self.proto))

    @property
    def opset(self) -> int:
        return _default_opset(self.proto)


def file_digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks so large models don't double memory."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def external_data_files(proto: onnx.ModelProto) -> list[str]:
    """The external data files the model's tensors (subgraphs' too) point at, relative to its folder."""
    locations = {entry.value for tensor in onnx.external_data_helper._get_all_tensors(proto)
                 if tensor.data_location == onnx.TensorProto.EXTERNAL
                 for entry in tensor.external_data if entry.key == "location"}
    return sorted(locations)


def model_digest(path: Path, proto: onnx.ModelProto | None = None) -> str:
    """What identifies a model: every byte of it, the external data files included.

    A model whose weights sit in ``weights.bin`` keeps its ``.onnx`` file unchanged when the weights
    change; digesting the graph file alone would return the runs of the old weights. A model without
    external data keeps the plain file digest, so earlier runs stay valid.
    """
    proto = proto if proto is not None else onnx.load(str(path), load_external_data=False)
    files = external_data_files(proto)
    if not files:
        return file_digest(path)
    sha = hashlib.sha256(file_digest(path).encode())
    for location in files:
        sha.update(f"\0{location}\0{file_digest(path.parent / location)}".encode())
    return sha.hexdigest()


def _default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


def _check_external_data(proto: onnx.ModelProto, folder: Path) -> None:
    """Refuse external-data locations that escape the model's folder (path traversal)."""
    root = folder.resolve()
    for tensor in onnx.external_data_helper._get_all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        target = (root / location).resolve()
        if Path(location).is_absolute() or not target.is_relative_to(root):
            raise ModelError(
                f"Tensor '{tensor.name}' stores its data at '{location}', outside the model's folder.",
                "Move the external data file next to the model and re-save it with a relative location.",
            )
        if not target.is_file():
            raise ModelError(
                f"Tensor '{tensor.name}' needs the external data file '{location}', which is missing.",
                "Copy the data file that came with the model into the model's folder.",
            )


def load_model(path: str | Path) -> LoadedModel:
    """Read, validate and digest a model file; raises ModelError with what to do."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"No model file at '{path}'.",
                         "Check the path of the .onnx file (in the app: the Model tab's file field).")
    if path.stat().st_size == 0:
        raise ModelError(f"'{path.name}' is empty.", "Export the model again; the file was not written.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelError(
            f"'{path.name}' is not a readable ONNX model (it may be truncated or another format): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.",
            "Export it again with torch.onnx.export or tf2onnx, or check the download finished.",
        ) from exc
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(
            f"'{path.name}' parsed as ONNX but has no graph (probably not an ONNX file).",
            "Pick the .onnx file produced by your exporter.",
        )
    _check_external_data(proto, path.parent)
    opset = _default_opset(proto)
    if opset == 0 or opset < MIN_OPSET or opset > MAX_OPSET:
        raise ModelError(
            f"'{path.name}' uses ONNX opset {opset}; this workbench supports opsets {MIN_OPSET} to {MAX_OPSET}.",
            "Convert it with onnx.version_converter.convert_version(model, 17), or re-export with opset 17.",
        )
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(
            f"'{path.name}' is not a valid ONNX model: {first}",
            "Re-export it, or run onnx.checker.check_model on it to see every problem.",
        ) from exc
    digest = model_digest(path, proto)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        onnx.load_external_data_for_model(proto, str(path.parent))
    return LoadedModel(path=path, proto=proto, digest=digest)
