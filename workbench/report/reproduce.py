"""The exact `workbench run` command that rebuilds a run, for the report and `workbench show`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from workbench.runs.run import Run

_RANDOM = re.compile(r"(\d+) samples, seed 0\b")


def data_argument(source: str | None, model_path: str) -> str | None:
    """Where the data came from, as a path the CLI accepts.

    Runs record a data file by name; the sample layout keeps it beside the model, so a name found
    there becomes that full path. The spec's data digest says whether a file is still the same.
    """
    if source is None:
        return None
    random = _RANDOM.search(source)
    if source.startswith("RANDOM") and random:
        given = re.findall(r", (\w+=[\dx]+)", source)  # shapes given for dynamic dims: random:32,state=2x1x128
        return ",".join([f"random:{random.group(1)}", *given])
    beside = Path(model_path).parent / source.rstrip("/")
    return str(beside) if beside.exists() else source


def reproduce_command(run: Run) -> str:
    spec = run.spec
    args = ["workbench", "run", run.model_path, "--precision", spec.precision]
    pruned = bool(spec.prune_method and spec.prune_ratio)
    calib = data_argument(run.calib_source, run.model_path)
    if calib and (spec.calibrated or (pruned and spec.prune_repair)):  # ranges, fitted weights, repair
        args += ["--calib", calib]
    if spec.precision == "int8" and spec.calib_method:
        args += ["--calib-method", spec.calib_method]
    if spec.precision == "int8" and spec.quantizer != "onnxruntime":
        args += ["--quantizer", spec.quantizer]
    if spec.precision in ("int8", "int8-dynamic") and not spec.per_channel:
        args.append("--per-tensor")
    for key, value in spec.quant_options:
        args += ["--quant-option", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    evaluation = data_argument(run.eval_source, run.model_path)
    if evaluation:
        args += ["--eval", evaluation]
    args += ["--batch", str(spec.batch), "--backend", spec.backend]
    for key, value in spec.backend_options:
        args += ["--backend-option", f"{key}={value}"]
    if pruned:
        args += ["--prune-method", spec.prune_method, "--prune-ratio", f"{spec.prune_ratio:g}"]
        if not spec.prune_repair:
            args.append("--no-repair")
    for node in spec.exclude_nodes:
        args += ["--exclude", node]
    return shlex.join(args)
