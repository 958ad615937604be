"""The exact `workbench run` command that rebuilds a run, for the report and `workbench show`."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from workbench.build_options import BuildOptions
from workbench.cli.build_options import BuildOptionsArgs
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


def options_of(run: Run) -> BuildOptions:
    """The options ``run`` was built and judged with, as far as the CLI can give them again.

    Data is named by where it was found (the spec's digests say whether it is still the same); the
    calibration data only where it shaped the file (INT8 ranges, a pruning repair)."""
    spec = run.spec
    pruned = bool(spec.prune_method and spec.prune_ratio)
    uses_calib = spec.calibrated or (pruned and spec.prune_repair)  # ranges, fitted weights, repair
    measured = run.measurement
    return BuildOptions(
        precision=spec.precision, prune_method=spec.prune_method if pruned else None,
        prune_ratio=spec.prune_ratio if pruned else 0.0, repair=spec.prune_repair,
        calib=data_argument(run.calib_source, run.model_path) if uses_calib else None, recipe=spec.recipe,
        eval=data_argument(run.eval_source, run.model_path), backend=spec.backend,
        backend_options=dict(spec.backend_options), batch=spec.batch,
        warmup=measured.get("warmup", BuildOptions.warmup), repeats=measured.get("repeats", BuildOptions.repeats),
        task=spec.task, metric=spec.metric, budget=measured.get("budget"),
    )


def reproduce_command(run: Run) -> str:
    """The `workbench run` command that rebuilds ``run``: the CLI option group's inverse of its options."""
    return shlex.join(["workbench", "run", run.model_path, *BuildOptionsArgs().to_args(options_of(run))])
