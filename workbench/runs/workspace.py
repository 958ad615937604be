"""Where artifacts and runs live on disk, so a kernel restart or a second process loses nothing.

Layout: ``<root>/artifacts/<artifact key>/model.onnx`` (+ ``build.json``), ``<root>/runs/<run id>.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runs.run import Run

DEFAULT_ROOT = "workbench-workspace"


def default_root() -> Path:
    """``$WORKBENCH_WORKSPACE`` or ./workbench-workspace: beside the notebooks a person works in."""
    return Path(os.environ.get("WORKBENCH_WORKSPACE", DEFAULT_ROOT))


def write_json_atomically(path: Path, data: dict) -> None:
    """Write to a temp file then rename, so a crash never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream, indent=1, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Workspace:
    """Artifact folders and run records under one root."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        try:
            (self.root / "artifacts").mkdir(parents=True, exist_ok=True)
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(f"Cannot create the workspace folder '{self.root}': {exc.strerror}.",
                                 "Choose a writable folder with --workspace or WORKBENCH_WORKSPACE.") from exc

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def run_path(self, run_id: str) -> Path:
        return self.root / "runs" / f"{run_id}.json"

    def save_run(self, run: Run) -> None:
        write_json_atomically(self.run_path(run.run_id), run.to_dict())

    def load_run(self, run_id: str) -> Run | None:
        path = self.run_path(run_id)
        if not path.is_file():
            return None
        try:
            return Run.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            return None

    def runs(self) -> list[Run]:
        """All readable runs, oldest first; unreadable records are skipped, never fatal."""
        found = [self.load_run(p.stem) for p in (self.root / "runs").glob("*.json")]
        return sorted((r for r in found if r is not None), key=lambda r: r.created)
