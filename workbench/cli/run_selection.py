"""Which runs a command acts on: ids (or unique prefixes), or every run of one model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.model.loader import load_model
from workbench.runs.run import Run
from workbench.runs.workspace import Workspace


def select_runs(workspace: Workspace, run_ids: Sequence[str] = (), model: str | None = None) -> list[Run]:
    """``model`` is a model name as the runs table shows it, or the path of an .onnx file."""
    if run_ids:
        found = [workspace.load_run(workspace.store.resolve(prefix)) for prefix in run_ids]
        return [run for run in found if run is not None]
    if model is None:
        return workspace.runs()
    if Path(model).is_file():
        runs = workspace.runs(model_digest=load_model(model).digest)
    else:
        runs = workspace.runs(model_name=model)
    if not runs:
        raise WorkbenchError(f"No runs of model '{model}' in '{workspace.root}'.",
                             "Check the name with `workbench runs`, or build one with `workbench run`.")
    return runs
