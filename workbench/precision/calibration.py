"""Calibration ranges, collected once per (model, calibration data, method) and reused by every build.

ONNX Runtime's calibrators keep what they collect across ``collect_data`` calls (MinMax merges its
ranges, the histogram calibrators merge their histograms), so feeding them one batch per call
streams: memory holds one batch of intermediate tensors, never the whole calibration set's. The
result, a ``TensorsData``, is saved with ``save_tensors_data`` and handed to ``quantize_static``
as its ``calibration_cache_path``, so a search that builds twenty variants calibrates once.
The quantization pre-pass (shape inference, optimisation) is cached the same way, per model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.errors import BuildError, DataError
from workbench.memory.system import available_bytes, fits_text, per_sample_bytes
from workbench.model.loader import model_digest
from workbench.progress import Progress
from workbench.scratch import temp_folder

_ORT_METHOD_NAMES = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile",
                     # FP8's scales: each tensor's spread against E4M3's (the only method ONNX Runtime has for it)
                     "distribution": "Distribution"}

#: Bumped when what is cached changes meaning, so old caches are recomputed instead of misread.
CACHE_VERSION = 1
DEFAULT_PERCENTILE = 99.999
#: Histogram calibrators copy each batch's tensors about this many times while binning them.
HISTOGRAM_COPIES = 3
MAX_CALIB_BATCH = 8
#: Measured per-sample cost times this: what the batch really takes beside the first sample's growth.
SAFETY = 2.5


@dataclass(frozen=True)
class CalibrationKey:
    model: str
    data: str
    method: str
    percentile: float | None

    @property
    def digest(self) -> str:
        fields = {"v": CACHE_VERSION, "model": self.model, "data": self.data, "method": self.method,
                  "percentile": self.percentile}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def feed_reader(feeds: Iterable[dict[str, np.ndarray]]) -> Any:
    """ONNX Runtime's ``CalibrationDataReader`` over ``feeds``, one feed per ``get_next``.

    The class is made on first use so that importing this module needs no ONNX Runtime.
    """
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return FeedReader()


def ort_calibration_method(name: str) -> Any:
    """ONNX Runtime's ``CalibrationMethod`` for one of ``vocabulary.CALIBRATION_METHODS``."""
    from onnxruntime.quantization import CalibrationMethod

    return getattr(CalibrationMethod, _ORT_METHOD_NAMES[name])


def op_types_calibrated() -> list[str]:
    """What ``quantize_static`` calibrates when no op types are named: everything it can quantize."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def calibration_ranges(prepared: Path, calib: Dataset, method: str, cache_dir: Path, *,
                       percentile: float | None = None, progress: Progress | None = None) -> tuple[Path, list[str]]:
    """The cached ranges file for this model, data and method (computed now if missing) and notes."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    progress = progress or Progress()
    percentile = (percentile or DEFAULT_PERCENTILE) if method == "percentile" else None
    key = CalibrationKey(model_digest(prepared), calib.digest, method, percentile)
    path = cache_dir / f"ranges-{key.digest}.json"
    if path.is_file():
        return path, [f"calibration ranges reused ({method}, computed once for this model and data)"]
    cache_dir.mkdir(parents=True, exist_ok=True)
    options = {"percentile": percentile} if percentile is not None else {}
    histogram = method != "minmax"
    with temp_folder("wb-calib-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(prepared, op_types_calibrated(), str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=ort_calibration_method(method),
                                       providers=["CPUExecutionProvider"], extra_options=options)
        calibrator.infer_session = _arena_free_session(calibrator.augmented_model_path)
        skipped: set[str] = set()
        if method == "distribution":
            calibrator.collector = _skipping_collector(calibrator, skipped)
        batch = _calibration_batch(calibrator, calib, histogram)
        total = -(-len(calib) // batch)
        try:
            for index, feed in enumerate(calib.batches(batch)):
                progress.report("calibrate", index / total, f"calibration batch {index + 1}/{total} ({method})")
                calibrator.collect_data(feed_reader([feed]))
            ranges = calibrator.compute_data()
        except ValueError as exc:  # numpy cannot bin a range too narrow, or too wide for float32 (seen on MiniLM)
            if "bins" not in str(exc):
                raise
            raise BuildError(f"{method} calibration could not bin a tensor whose values span a range too narrow "
                             f"or too wide for its histogram ({exc}).",
                             "Calibrate INT8 with --calib-method minmax instead.") from exc
        del calibrator
    tmp_path = path.with_suffix(".tmp")
    save_tensors_data(ranges, tmp_path)
    if skipped:
        _skipped_path(path).write_text(json.dumps(sorted(skipped)))
    tmp_path.replace(path)
    return path, [f"calibration ({method}) streamed over {len(calib)} samples in batches of {batch}"]


def unbinnable_tensors(ranges: Path) -> list[str]:
    """The tensors Distribution calibration left out of ``ranges`` because numpy could not bin them."""
    skipped = _skipped_path(ranges)
    return json.loads(skipped.read_text()) if skipped.is_file() else []


def _skipped_path(ranges: Path) -> Path:
    return ranges.with_name(ranges.name.replace("ranges-", "unbinnable-", 1))


def _skipping_collector(calibrator: Any, skipped: set[str]) -> Any:
    """ONNX Runtime's histogram collector, one tensor at a time, leaving out (into ``skipped``) a tensor
    numpy cannot bin into 2048 finite-sized bins, which otherwise fails the whole model: a range too
    narrow to split, or one wider than float32 holds, such as a transformer's attention mask added as
    float32's lowest value (-3.4e38) at the padded positions. Such a tensor has no spread an E4M3
    scale could fit, so FP8 keeps the convolutions and matrix products it touches in FP32."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    class SkippingCollector(HistogramCollector):
        def collect_value(self, name_to_arr: dict) -> None:
            for name, arr in name_to_arr.items():
                if name in skipped:
                    continue
                try:
                    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is the failure caught below
                        super().collect_value({name: arr})
                except ValueError as exc:
                    if "bins" not in str(exc):
                        raise
                    skipped.add(name)
                    self.histogram_dict.pop(name, None)

    return SkippingCollector(method=calibrator.method, symmetric=getattr(calibrator, "symmetric", False),
                             num_bins=calibrator.num_bins, num_quantized_bins=calibrator.num_quantized_bins,
                             percentile=calibrator.percentile, scenario=calibrator.scenario)


def _arena_free_session(path: str) -> Any:
    """The calibrator's session without ORT's memory arena: the arena grows by doubling and keeps its
    peak, which nearly doubled calibration memory on a 416x416 detector at batch 16."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _calibration_batch(calibrator, calib: Dataset, histogram: bool) -> int:
    """The largest batch (up to 8) whose tensors fit in the memory left; refuses if one sample does not."""
    first = calib.samples(0, 1)
    session = calibrator.infer_session

    def run_one() -> int:
        # MinMax reduces each tensor in-graph (tiny outputs); histograms get every tensor and copy it.
        returned = sum(o.nbytes for o in session.run(None, first))
        return returned * HISTOGRAM_COPIES if histogram else returned

    per_sample = per_sample_bytes(run_one, sum(v.nbytes for v in first.values()))
    budget = available_bytes()
    if per_sample > budget:
        raise DataError(
            f"Calibration needs about {per_sample / 2**30:.1f} GB for one sample of this model, and "
            f"{budget / 2**30:.1f} GB are free.", fits_text("Use minmax calibration or smaller inputs"))
    return int(max(1, min(MAX_CALIB_BATCH, budget // max(int(per_sample * SAFETY), 1))))
