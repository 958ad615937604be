"""Open ``trtexec --exportProfile`` (and ``--exportLayerInfo``) files as a layer table.

This lets a profile taken on any GPU, by anyone, be plotted and compared here without TensorRT.

The profile is a JSON list: ``{"count": N}`` (iterations profiled), then one record per engine
layer with ``timeMs`` (summed over the N iterations), ``averageMs``, ``medianMs`` and
``percentage``. Older trtexec versions write no ``medianMs``.

``time_ms`` in the table is each layer's per-inference **median** (``medianMs``), as everywhere
in the layer-table schema: medians shrug off the clock hiccups that trtexec's own latency
summaries show. Where a file has no medians, ``averageMs`` (or ``timeMs / count``) stands in
and ``time_statistic`` says so. ``total_ms`` is the file's own per-inference total,
``sum(timeMs) / count`` (equal to the sum of the averages); a sum of per-layer medians is not
a median of sums, so the table's sum may differ from it slightly (well under 1% on real files).
Both are the layer-by-layer profiled time, which runs a little above trtexec's end-to-end GPU
compute time because profiling serializes the layers: ``gpu_compute_median_ms`` has the latter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.profiles.trt_layer_info import LayerInfo, TrtFileError, parse_layer_info, trt_layer_table

_PROFILE_SUFFIX = ".profile.json"
_TIME_KEYS = ("medianMs", "averageMs", "timeMs")


@dataclass
class TrtexecProfile:
    """One imported trtexec profile: the layer table plus what the run's files say about it."""

    layers: pd.DataFrame
    total_ms: float
    sparse_layers: list[str]
    count: int | None
    time_statistic: str
    gpu: str | None = None
    tensorrt_version: str | None = None
    batch: int | None = None
    build_precision: str | None = None
    gpu_compute_median_ms: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    layer_info: LayerInfo | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``workbench import-trtexec --json`` prints)."""
        layers = []
        for row in self.layers.to_dict(orient="records"):
            layers.append({key: _json_number(value) for key, value in row.items()})
        return {
            "total_ms": self.total_ms,
            "layer_sum_ms": float(self.layers["time_ms"].sum()) if len(self.layers) else 0.0,
            "time_statistic": self.time_statistic,
            "count": self.count,
            "layers": layers,
            "sparse_layers": list(self.sparse_layers),
            "metadata": {
                "gpu": self.gpu,
                "tensorrt_version": self.tensorrt_version,
                "batch": self.batch,
                "build_precision": self.build_precision,
                "gpu_compute_median_ms": self.gpu_compute_median_ms,
                "files": self.metadata,
            },
            "notes": list(self.notes),
        }


def import_trtexec(
    profile_path: str | Path,
    layer_info_path: str | Path | None = None,
    *,
    onnx_node_names: Collection[str] | None = None,
) -> TrtexecProfile:
    """Import a trtexec profile, with its layer info when given (see ``find_layer_info``).

    ``onnx_node_names``: the model's node names, when at hand, to map fused layer names to
    ONNX nodes exactly instead of by the naming heuristic in ``trt_names``.
    """
    profile_path = Path(profile_path)
    count, records = read_profile(profile_path)
    statistic = next(key for key in _TIME_KEYS if all(_is_time(r.get(key)) for r in records))
    info = None
    if layer_info_path is not None:
        info = parse_layer_info(_read_json(Path(layer_info_path), "layer information"), onnx_node_names)
    times = [(r["name"], _per_inference(r, statistic, count)) for r in records]
    table = trt_layer_table(times, info, strict=True, known_nodes=onnx_node_names)
    metadata, notes = _read_metadata(profile_path)
    profile_meta = metadata.get("profile", {})
    build_meta = metadata.get("build", {})
    return TrtexecProfile(
        layers=table,
        total_ms=_file_total(records, count, table),
        sparse_layers=info.sparse_layers if info else [],
        count=count,
        time_statistic={"medianMs": "median", "averageMs": "mean", "timeMs": "mean"}[statistic],
        gpu=_dig(profile_meta, "device_information", "Selected Device"),
        tensorrt_version=_find_version(metadata),
        batch=(info.batch if info and info.batch else None) or _batch_from_options(profile_meta),
        build_precision=_dig(build_meta, "build_options", "Precision"),
        gpu_compute_median_ms=_median_of_summary(profile_meta),
        metadata=metadata,
        layer_info=info,
        notes=notes,
    )


def find_layer_info(profile_path: str | Path) -> Path | None:
    """The ``<stem>.graph.json`` or ``<stem>.layers.json`` written beside a profile, if any."""
    profile_path = Path(profile_path)
    stem = _stem(profile_path)
    for suffix in (".graph.json", ".layers.json", ".layer_info.json", ".layerinfo.json"):
        candidate = profile_path.with_name(stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def read_profile(path: Path) -> tuple[int | None, list[dict[str, Any]]]:
    """(iterations profiled, layer records) from an ``--exportProfile`` file, validated."""
    document = _read_json(path, "trtexec profile")
    if isinstance(document, dict) and "Layers" in document:
        raise TrtFileError(
            f"{path.name} is TensorRT layer information (--exportLayerInfo), not a profile.",
            "Pass the --exportProfile file as the profile and this one as --layer-info.",
        )
    if not isinstance(document, list):
        raise TrtFileError(
            f"{path.name} is JSON but not a trtexec profile (expected a list of layer records).",
            "Pass the file written by trtexec --exportProfile.",
        )
    count = None
    records = document
    if records and isinstance(records[0], dict) and set(records[0]) == {"count"}:
        count = records[0]["count"]
        records = records[1:]
        if not isinstance(count, int) or count <= 0:
            raise TrtFileError(
                f"{path.name} says it profiled {count!r} iterations.",
                "Re-run trtexec with --exportProfile; the file looks edited or truncated.",
            )
    if not records:
        raise TrtFileError(
            f"{path.name} holds no layer records.",
            "Re-run trtexec with --exportProfile (and --separateProfileRun) on a built engine.",
        )
    for index, record in enumerate(records):
        if not (isinstance(record, dict) and isinstance(record.get("name"), str)):
            raise TrtFileError(
                f"Record {index + 1} of {path.name} has no layer name, so this is not a trtexec profile.",
                "Pass the file written by trtexec --exportProfile.",
            )
        if not any(_is_time(record.get(key)) for key in _TIME_KEYS):
            raise TrtFileError(
                f"Layer {record['name']!r} in {path.name} has no time (medianMs, averageMs or timeMs).",
                "Pass the file written by trtexec --exportProfile; this one is edited or truncated.",
            )
    if not any(key for key in _TIME_KEYS if all(_is_time(r.get(key)) for r in records)):
        raise TrtFileError(
            f"The layers in {path.name} do not share one time field.",
            "Pass an unedited trtexec --exportProfile file.",
        )
    return count, records


def _per_inference(record: dict[str, Any], statistic: str, count: int | None) -> float:
    value = float(record[statistic])
    return value / count if statistic == "timeMs" and count else value


def _file_total(records: list[dict[str, Any]], count: int | None, table: pd.DataFrame) -> float:
    """The file's own per-inference total: summed layer time over the iterations profiled."""
    if count and all(_is_time(r.get("timeMs")) for r in records):
        return sum(float(r["timeMs"]) for r in records) / count
    if all(_is_time(r.get("averageMs")) for r in records):
        return sum(float(r["averageMs"]) for r in records)
    return float(table["time_ms"].sum())


def _read_json(path: Path, what: str) -> Any:
    if not path.exists():
        raise TrtFileError(f"The {what} file {path} does not exist.", "Check the path and the file name.")
    if not path.is_file():
        raise TrtFileError(f"The {what} path {path} is not a file.", "Pass the JSON file itself.")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError:
        raise TrtFileError(
            f"{path.name} is not text, so it is not a {what} JSON file.",
            "Pass the JSON file trtexec wrote, not an engine or an ONNX model.",
        ) from None
    except json.JSONDecodeError as exc:
        raise TrtFileError(
            f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno}), so it cannot be a {what}.",
            "Pass the JSON file trtexec wrote; if the run was interrupted, export it again.",
        ) from None


def _read_metadata(profile_path: Path) -> tuple[dict[str, Any], list[str]]:
    """The ``.profile.metadata.json`` / ``.build.metadata.json`` written beside the profile."""
    stem = _stem(profile_path)
    metadata: dict[str, Any] = {}
    notes = []
    for key in ("build", "profile"):
        candidate = profile_path.with_name(f"{stem}.{key}.metadata.json")
        if not candidate.is_file():
            continue
        try:
            value = _read_json(candidate, f"{key} metadata")
        except TrtFileError as exc:
            notes.append(f"Ignored {candidate.name}: {exc.problem}")
            continue
        if isinstance(value, dict):
            metadata[key] = value
        else:
            notes.append(f"Ignored {candidate.name}: it is not a JSON object.")
    return metadata, notes


def _stem(profile_path: Path) -> str:
    name = profile_path.name
    if name.endswith(_PROFILE_SUFFIX):
        return name[: -len(_PROFILE_SUFFIX)]
    return profile_path.stem


def _dig(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _find_version(metadata: Any) -> str | None:
    """A TensorRT version recorded anywhere in the metadata (key names vary by exporter)."""
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if re.sub(r"[^a-z]", "", str(key).lower()) in {"tensorrtversion", "trtversion"} and value:
                return str(value)
            found = _find_version(value)
            if found:
                return found
    return None


def _batch_from_options(profile_meta: dict[str, Any]) -> int | None:
    options = profile_meta.get("inference_options", {}) if isinstance(profile_meta, dict) else {}
    for key in ("Input inference shape", "Input inference shapes"):
        match = re.search(r"=(\d+)x", str(options.get(key, "")))
        if match:
            return int(match.group(1))
    batch = str(options.get("Batch", ""))
    return int(batch) if batch.isdigit() else None


def _median_of_summary(profile_meta: dict[str, Any]) -> float | None:
    """trtexec's summary lists min, max, mean, median, percentiles: the median is the 4th."""
    values = _dig(profile_meta, "performance_summary", "GPU Compute Time")
    if isinstance(values, list) and len(values) >= 4 and _is_time(values[3]):
        return float(values[3])
    return None


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
