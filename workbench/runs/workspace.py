"""Where artifacts and runs live on disk, so a kernel restart or a second process loses nothing.

Layout: ``<root>/artifacts/<artifact key>/model.onnx`` (+ ``build.json``), ``<root>/pruned/<prune key>/``
(a pruned model shared by the variants built on it) and ``<root>/runs.sqlite``, the run store.
Older workspaces kept one ``runs/<run id>.json`` per run; the store imports those once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.progress import Progress
from workbench.runs.build_lock import LOCK_FILE, hold
from workbench.runs.run import Run
from workbench.runs.store import ARTIFACT_PARENTS, STORE_FILE, RunStore, artifact_folders
from workbench.scratch import is_scratch, scratch_is_live

DEFAULT_ROOT = "workbench-workspace"
#: Folders younger than this are left alone by gc: a build in another process may be writing them.
GC_MIN_AGE_S = 3600.0
#: What an interrupted build leaves inside an artifact folder (temp dirs of variants, half JSON files).
_TEMP_PREFIXES = ("wb-variant-", ".tmp-")
#: Under the root: every temporary file of a build (the workbench's and its libraries'), so renames
#: stay on one file system and gc finds what a killed build left. A name no person would choose for
#: their own files: gc removes only what a build marked there (``scratch.SCRATCH_MARKER``).
SCRATCH_DIR = ".workbench-tmp"
#: Written into a workspace folder the workbench created: only such a folder, an empty one, or one
#: that already holds a store or artifacts is taken as a workspace.
WORKSPACE_MARKER = ".workbench-workspace"
#: What shows that a folder is a workspace already.
_WORKSPACE_SIGNS = (WORKSPACE_MARKER, STORE_FILE, LOCK_FILE, *ARTIFACT_PARENTS)
#: Calibration ranges and quantization pre-passes, cached per model and data (see precision.calibration).
CALIBRATION_DIR = "calibration"
#: What the workspace keeps only to go faster, rebuilt on demand: compiled engines (OpenVINO's model
#: cache under ``cache/``) and the calibration cache.
CACHE_DIRS = ("cache", CALIBRATION_DIR)


def default_root() -> Path:
    """``$WORKBENCH_WORKSPACE`` or ./workbench-workspace: beside the notebooks a person works in.

    Set but empty is an error, never the current folder: gc there would judge a person's files.
    """
    value = os.environ.get("WORKBENCH_WORKSPACE")
    if value is None:
        return Path(DEFAULT_ROOT)
    if not value.strip():
        raise WorkbenchError("WORKBENCH_WORKSPACE is set but empty, so no workspace was opened;",
                             f"set it to a folder for the workbench's files, or unset it to use ./{DEFAULT_ROOT}.")
    return Path(value)


def claim_root(root: Path) -> None:
    """Make ``root`` a workspace: create it (marked as the workbench's), or accept an empty folder or one
    that is a workspace already. Any other folder is refused: its files are a person's, not gc's to judge."""
    try:
        exists = root.is_dir()
    except OSError as exc:  # a name longer than the file system allows
        raise WorkbenchError(f"The workspace path '{str(root)[:80]}...' cannot be used: {exc.strerror}.",
                             "Choose a folder with a shorter path (--workspace or WORKBENCH_WORKSPACE).") from exc
    if exists:
        if any((root / sign).exists() for sign in _WORKSPACE_SIGNS) or any((root / "runs").glob("*.json")):
            return  # a workspace already (older ones kept one runs/<id>.json per run)
        if next(root.iterdir(), None) is not None:
            raise WorkbenchError(
                f"'{root}' holds files and is not a workbench workspace (no {STORE_FILE}), so it was not used;",
                "choose a new or empty folder with --workspace or WORKBENCH_WORKSPACE (the workbench creates it).")
    try:
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
        (root / WORKSPACE_MARKER).write_text("A workbench workspace: artifacts, runs.sqlite and build scratch.\n")
    except OSError as exc:
        raise WorkbenchError(f"Cannot create the workspace folder '{root}': {exc.strerror}.",
                             "Choose a writable folder with --workspace or WORKBENCH_WORKSPACE.") from exc


@dataclass
class Removed:
    """What a delete or gc took off the disk (or, in a dry run, would take), for the CLI to say."""

    runs: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    kept_young: list[str] = field(default_factory=list)
    #: Folders that were on disk before the store was created: they may be a lost store's runs.
    kept_unclaimed: list[str] = field(default_factory=list)
    freed_bytes: int = 0


def _remove_unless_young(path: Path, cutoff: float, dry_run: bool, removed: Removed) -> None:
    """Remove ``path`` (file or folder) and record it, unless anything in it was touched after ``cutoff``."""
    if _newest_mtime(path) > cutoff:
        removed.kept_young.append(str(path))
        return
    removed.freed_bytes += _size(path)
    if not dry_run:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    removed.paths.append(str(path))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _newest_mtime(path: Path) -> float:
    times = [path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*")]
    return max(times)


class Workspace:
    """Artifact folders and the run store under one root."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        claim_root(self.root)
        self.store = RunStore(self.root)

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key

    def pruned_dir(self, key: str) -> Path:
        return self.root / "pruned" / key

    def save_run(self, run: Run) -> None:
        self.store.save(run)

    def load_run(self, run_id: str) -> Run | None:
        return self.store.get(run_id)

    def runs(self, model_digest: str | None = None, model_name: str | None = None) -> list[Run]:
        """All runs, oldest first, optionally of one model."""
        return self.store.runs(model_digest=model_digest, model_name=model_name)

    def delete_run(self, run_id: str) -> Removed:
        """Forget a run and remove its artifact folder and tables unless another run still uses them."""
        run, folder_free, free_tables = self.store.delete(self.store.resolve(run_id))
        removed = Removed()
        if run is None:
            return removed
        removed.runs.append(run.run_id)
        targets = [Path(p) for p in free_tables]
        if folder_free:
            targets.append(Path(run.artifact).parent)
        for target in targets:
            if self._owns(target) and target.exists():
                removed.freed_bytes += _size(target)
                shutil.rmtree(target) if target.is_dir() else target.unlink()
                removed.paths.append(str(target))
        return removed

    def gc(self, min_age_s: float = GC_MIN_AGE_S, dry_run: bool = False, caches: bool = False,
           progress: Progress | None = None) -> Removed:
        """Remove artifact folders no run points at, and leftovers of interrupted builds; with ``caches``,
        also the caches (``CACHE_DIRS``), which only cost time to rebuild.

        Anything touched in the last ``min_age_s`` seconds is kept: it may be a build in progress
        in another process whose run is not saved yet. A store created beside folders it never saw
        built (a lost store replaced) says nothing about them, so they are kept for a person to judge.
        Removing holds the workspace's build lock (waiting for a running build, reported on ``progress``):
        a variant is on disk before its run is saved, while it is being timed.
        """
        if dry_run:
            return self._gc(min_age_s, dry_run, caches)
        with hold(self.root / LOCK_FILE, "removing unused artifacts (gc)", progress):
            return self._gc(min_age_s, dry_run, caches)

    def _gc(self, min_age_s: float, dry_run: bool, caches: bool) -> Removed:
        used = {Path(p).absolute() for p in self.store.artifact_dirs()}
        # A pruned folder is in use while a run lists its per-layer report among its tables.
        used |= {Path(p).absolute().parent for p in self.store.table_paths()}
        unclaimed = {Path(p).absolute() for p in self.store.folders_before_store()}
        cutoff = time.time() - min_age_s
        removed = Removed()
        if caches:
            self._gc_caches(cutoff, dry_run, removed)
        for folder in [*self._temp_leftovers(), *artifact_folders(self.root)]:
            if folder.parent == self.scratch_dir and scratch_is_live(folder):
                removed.kept_young.append(str(folder))  # a long calibration may write nothing for hours
                continue
            if folder.absolute() in unclaimed:
                removed.kept_unclaimed.append(str(folder))
                continue
            if folder.absolute() in used:
                candidates = [p for p in folder.iterdir() if p.name.startswith(_TEMP_PREFIXES)]
            else:
                candidates = [folder]
            for path in candidates:
                _remove_unless_young(path, cutoff, dry_run, removed)
        return removed

    def _gc_caches(self, cutoff: float, dry_run: bool, removed: Removed) -> None:
        for name in CACHE_DIRS:
            folder = self.root / name
            files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
            for path in files:
                _remove_unless_young(path, cutoff, dry_run, removed)

    @property
    def scratch_dir(self) -> Path:
        return self.root / SCRATCH_DIR

    @contextmanager
    def unsaved_removed_on_failure(self) -> Iterator[None]:
        """A build that fails or is cancelled takes back the folders it made and no run points at.

        Otherwise a build cancelled while timing keeps a complete variant that no run lists.
        """
        before = set(artifact_folders(self.root))
        try:
            yield
        except BaseException:
            try:
                used = {Path(p).absolute() for p in self.store.artifact_dirs()}
                used |= {Path(p).absolute().parent for p in self.store.table_paths()}
            except WorkbenchError:  # the store is unreadable now (a full disk): the build lock kept others out
                used = set()
            for folder in set(artifact_folders(self.root)) - before:
                if folder.absolute() not in used:
                    shutil.rmtree(folder, ignore_errors=True)
            raise

    def _temp_leftovers(self) -> list[Path]:
        """Scratch folders builds made (marked), never anything else that may sit in the folder."""
        scratch = self.scratch_dir
        return sorted(p for p in scratch.iterdir() if is_scratch(p)) if scratch.is_dir() else []

    def _owns(self, path: Path) -> bool:
        """Only files inside this workspace are ever deleted: a table may point at a user's own file."""
        return path.absolute().is_relative_to(self.root.absolute())
