"""Every run ever measured in a workspace, in one SQLite file that a notebook and a CLI sweep share.

SQLite because it ships with Python, keeps a whole history in one file a person can copy, and
serialises writers from several processes: WAL mode lets readers run beside a writer, a busy timeout
makes a second writer wait instead of failing, and every write is one transaction. The schema
carries its version in ``PRAGMA user_version``; ``MIGRATIONS`` is the ordered list of steps that
bring an older file up to date, each applied once, inside the same transaction as the version bump.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runs.disk import disk_is_full
from workbench.runs.run import Run
from workbench.runs.spec import RunSpec

STORE_FILE = "runs.sqlite"
BUSY_TIMEOUT_MS = 60_000
#: SQLite's longest file path (SQLITE_MAX_PATHNAME in its default build): a longer one "cannot be opened".
SQLITE_MAX_PATH = 512
_SQLITE_HEADER = b"SQLite format 3\x00"
#: The folders that hold what builds made; a store that lists no run while these hold files has lost its history.
ARTIFACT_PARENTS = ("artifacts", "pruned")

#: The Run fields that are results (not identity, not environment): kept together as one JSON column.
_RESULT_FIELDS = ("latency_ms", "reference_latency_ms", "speedup", "drift", "notes", "model_gflops",
                  "calib_source", "eval_source", "baseline_latency_ms", "speedup_vs_baseline", "baseline_backend",
                  "speedup_spread", "speedup_interval", "file_mb", "reference_file_mb", "engine_rss_mb",
                  "reference_rss_mb", "measurement", "quantized_from")


@dataclass(frozen=True)
class MigrationContext:
    """What a migration may need besides the connection: where the workspace lies, and whether the file is new."""

    workspace_root: Path
    fresh: bool = False


def artifact_folders(root: Path) -> list[Path]:
    """Every artifact and pruned folder under ``root``, whether or not a run points at it."""
    return [folder for parent in ARTIFACT_PARENTS if (root / parent).is_dir()
            for folder in sorted((root / parent).iterdir()) if folder.is_dir()]


def _create_tables(db: sqlite3.Connection, context: MigrationContext) -> None:
    db.execute("""
        CREATE TABLE runs (
            run_id        TEXT PRIMARY KEY,
            created       REAL NOT NULL,
            model_name    TEXT NOT NULL,
            model_digest  TEXT NOT NULL,
            precision     TEXT NOT NULL,
            prune_method  TEXT,
            prune_ratio   REAL NOT NULL,
            batch         INTEGER NOT NULL,
            backend       TEXT NOT NULL,
            artifact_dir  TEXT NOT NULL,
            artifact      TEXT NOT NULL,
            model_path    TEXT NOT NULL,
            spec          TEXT NOT NULL,
            environment   TEXT NOT NULL,
            results       TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX runs_by_model ON runs (model_digest, created)")
    db.execute("CREATE INDEX runs_by_artifact ON runs (artifact_dir)")
    db.execute("""
        CREATE TABLE run_tables (
            run_id  TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            name    TEXT NOT NULL,
            path    TEXT NOT NULL,
            PRIMARY KEY (run_id, name)
        )""")


def _import_json_records(db: sqlite3.Connection, context: MigrationContext) -> None:
    """Bring in the one-JSON-file-per-run records older workspaces kept under ``runs/``.

    The files stay where they are: the import must never be the step that loses a record.
    """
    for path in sorted((context.workspace_root / "runs").glob("*.json")):
        try:
            run = Run.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable record was already invisible before; it stays on disk
        _upsert(db, run, context.workspace_root)


def _remember_folders_before_store(db: sqlite3.Connection, context: MigrationContext) -> None:
    """A store created beside existing artifact folders did not see them made: gc must never take them.

    Those folders may belong to runs of a store that was lost (deleted, or replaced by a sync tool),
    so they are listed here once, when the file is new, and gc leaves them to a person.
    """
    db.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    claimed = {row[0] for row in db.execute("SELECT DISTINCT artifact_dir FROM runs")}
    root = context.workspace_root
    on_disk = [_portable(folder, root) for folder in artifact_folders(root)] if context.fresh else []
    inherited = [rel for rel in on_disk if rel not in claimed]
    db.execute("INSERT INTO store_meta (key, value) VALUES ('folders_before_store', ?)", (json.dumps(inherited),))


#: Ordered: MIGRATIONS[i] takes a file from schema version i to i + 1. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection, MigrationContext], None]] = [
    _create_tables,
    _import_json_records,
    _remember_folders_before_store,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _portable(path: str | Path, root: Path) -> str:
    """Paths inside the workspace are kept relative to it, so a copied or moved workspace still works; others
    absolute, so a run made from the CLI in one folder opens in a notebook kernel running in another."""
    path = Path(path).absolute()
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _local(stored: str, root: Path) -> str:
    return str(root / stored)  # an absolute ``stored`` stays as it is


def _local_model(stored: str, root: Path) -> str:
    """Records written before model paths were made absolute hold them relative to the folder they ran in."""
    return _local(stored, root) if (root / stored).exists() else stored


def _upsert(db: sqlite3.Connection, run: Run, root: Path) -> None:
    spec = run.spec
    artifact = _portable(run.artifact, root)
    results = {name: getattr(run, name) for name in _RESULT_FIELDS}
    if run.quantized_from is not None:  # inside the workspace, like the artifact: stored relative to it
        results["quantized_from"] = _portable(run.quantized_from, root)
    db.execute(
        """INSERT INTO runs (run_id, created, model_name, model_digest, precision, prune_method, prune_ratio,
                             batch, backend, artifact_dir, artifact, model_path, spec, environment, results)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (run_id) DO UPDATE SET
             created = excluded.created, model_name = excluded.model_name, model_digest = excluded.model_digest,
             precision = excluded.precision, prune_method = excluded.prune_method,
             prune_ratio = excluded.prune_ratio, batch = excluded.batch, backend = excluded.backend,
             artifact_dir = excluded.artifact_dir, artifact = excluded.artifact,
             model_path = excluded.model_path, spec = excluded.spec, environment = excluded.environment,
             results = excluded.results""",
        (run.run_id, run.created, spec.model_name, spec.model_digest, spec.precision, spec.prune_method,
         spec.prune_ratio, spec.batch, spec.backend, str(Path(artifact).parent), artifact,
         _portable(run.model_path, root), _dumps(spec.to_dict()), _dumps(run.environment), _dumps(results)),
    )
    db.execute("DELETE FROM run_tables WHERE run_id = ?", (run.run_id,))
    db.executemany("INSERT INTO run_tables (run_id, name, path) VALUES (?, ?, ?)",
                   [(run.run_id, name, _portable(path, root)) for name, path in run.tables.items()])


def _dumps(value: object) -> str:
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


_SELECT = "SELECT run_id, created, artifact, model_path, spec, environment, results FROM runs"


def _row_to_run(db: sqlite3.Connection, row: tuple, root: Path) -> Run:
    run_id, created, artifact, model_path, spec, environment, results = row
    rows = db.execute("SELECT name, path FROM run_tables WHERE run_id = ? ORDER BY name", (run_id,))
    tables = {name: _local(path, root) for name, path in rows}
    fields = json.loads(results)
    if fields.get("quantized_from"):
        fields["quantized_from"] = _local(fields["quantized_from"], root)
    return Run(run_id=run_id, spec=RunSpec.from_dict(json.loads(spec)), artifact=_local(artifact, root),
               model_path=_local_model(model_path, root),
               environment=json.loads(environment), created=created, tables=tables, **fields)


class RunStore:
    """Runs keyed by run id in ``<workspace>/runs.sqlite``; a short-lived connection per call.

    A connection per call keeps the store usable from any thread (a widget callback, a sweep thread)
    and holds no lock between calls, so another process is never blocked by an idle notebook.
    """

    def __init__(self, workspace_root: str | Path) -> None:
        self.root = Path(workspace_root).absolute()
        self.path = self.root / STORE_FILE
        self._refuse_blank_file()
        self._migrate()

    def _refuse_blank_file(self) -> None:
        """An empty or non-SQLite file beside artifacts is a lost history, never a new store.

        SQLite opens a 0-byte file as a new, empty database; taken as such, `runs` would list
        nothing and gc would delete every artifact of the workspace.
        """
        if not self.path.exists():
            return
        with open(self.path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
        if header == _SQLITE_HEADER:
            return
        held = artifact_folders(self.root)
        if not held:
            return  # nothing to lose: an empty file in an empty workspace is a new store
        state = "empty (0 bytes)" if not header else "not an SQLite file"
        raise WorkbenchError(
            f"The run store '{self.path}' is {state} while the workspace holds {len(held)} artifact folders, "
            "so it was not opened and nothing was changed;",
            "restore runs.sqlite from a backup, or move it aside to start a new store (gc then keeps "
            "those folders).")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose SQLite failures (full disk, read-only, damage) become one clear sentence."""
        try:
            with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)) as db:
                db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                db.execute("PRAGMA foreign_keys = ON")
                yield db
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection, so listing works where writing cannot: a full disk, a read-only workspace."""
        db = self._open_read()
        try:
            with closing(db):
                yield db
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def _open_read(self) -> sqlite3.Connection:
        """A WAL store needs its shared-memory file to be read; where that cannot be made (nothing can be
        written there), the file is opened as immutable, which reads it without any side file."""
        try:
            return self._read_connection(immutable=False)
        except sqlite3.Error as exc:
            if not _cannot_write(exc, self.path):
                raise store_error(exc, self.path) from exc
        try:
            return self._read_connection(immutable=True)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc

    def _read_connection(self, immutable: bool) -> sqlite3.Connection:
        uri = f"{self.path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the file is opened here, not later
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so two writers queue, never deadlock."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _migrate(self) -> None:
        """Bring the file to ``SCHEMA_VERSION``; an up-to-date store is only read (a full or read-only disk lists)."""
        if self.path.is_file():
            with self._read() as db:
                if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")  # persistent: set once per file
        with self._write() as db:  # re-read under the lock: a second process may have migrated already
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise WorkbenchError(
                    f"The run store '{self.path}' has schema version {version}, newer than this "
                    f"workbench understands ({SCHEMA_VERSION}).",
                    "Upgrade the workbench package, or use another --workspace.")
            context = MigrationContext(self.root, fresh=version == 0)
            for step in MIGRATIONS[version:]:
                step(db, context)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        with self._read() as db:
            return db.execute("PRAGMA user_version").fetchone()[0]

    def save(self, run: Run) -> None:
        """Insert or replace the run (a forced rebuild replaces its record and table list)."""
        with self._write() as db:
            _upsert(db, run, self.root)

    def get(self, run_id: str) -> Run | None:
        with self._read() as db:
            row = db.execute(f"{_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
            return _row_to_run(db, row, self.root) if row else None

    def runs(self, model_digest: str | None = None, model_name: str | None = None) -> list[Run]:
        """Runs oldest first, optionally of one model (by digest or by name)."""
        where, params = [], []
        if model_digest:
            where.append("model_digest = ?")
            params.append(model_digest)
        if model_name:
            where.append("model_name = ?")
            params.append(model_name)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._read() as db:
            rows = db.execute(f"{_SELECT}{clause} ORDER BY created, run_id", params).fetchall()
            return [_row_to_run(db, row, self.root) for row in rows]

    def resolve(self, prefix: str) -> str:
        """The full run id that ``prefix`` starts (as git does with commits); a clear error otherwise."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._read() as db:
            ids = [r[0] for r in db.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' LIMIT 5",
                                            (pattern,))]
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise WorkbenchError(f"No run '{prefix}' in '{self.path}'.",
                                 "List the runs with `workbench runs`, or pass the right --workspace.")
        raise WorkbenchError(f"Run id '{prefix}' is ambiguous ({', '.join(ids)}, ...).",
                             "Give more characters of the run id.")

    def delete(self, run_id: str) -> tuple[Run | None, bool, list[str]]:
        """Remove the record; say whether its artifact folder and which table files no other run uses.

        Decided in the same transaction as the delete, so a concurrent save of a run that shares
        the folder is either seen here or comes after and finds its record intact.
        """
        with self._write() as db:
            row = db.execute(f"{_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None, False, []
            run = _row_to_run(db, row, self.root)
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            folder = str(Path(_portable(run.artifact, self.root)).parent)
            folder_free = db.execute("SELECT 1 FROM runs WHERE artifact_dir = ? LIMIT 1", (folder,)).fetchone() is None
            free_tables = [p for p in run.tables.values()
                           if db.execute("SELECT 1 FROM run_tables WHERE path = ? LIMIT 1",
                                         (_portable(p, self.root),)).fetchone() is None]
            return run, folder_free, free_tables

    def artifact_dirs(self) -> set[str]:
        """Every artifact folder some run still points at."""
        with self._read() as db:
            return {_local(r[0], self.root) for r in db.execute("SELECT DISTINCT artifact_dir FROM runs")}

    def table_paths(self) -> set[str]:
        with self._read() as db:
            return {_local(r[0], self.root) for r in db.execute("SELECT DISTINCT path FROM run_tables")}

    def folders_before_store(self) -> set[str]:
        """Folders that were on disk when this store file was created (gc leaves them to a person)."""
        with self._read() as db:
            row = db.execute("SELECT value FROM store_meta WHERE key = 'folders_before_store'").fetchone()
        return {_local(rel, self.root) for rel in json.loads(row[0])} if row else set()


def _cannot_write(exc: sqlite3.Error, path: Path) -> bool:
    """SQLite could not make a side file: the disk is full or the folder is not writable."""
    text = str(exc).lower()
    return ("unable to open" in text or "readonly" in text or "disk" in text or "locking protocol" in text
            or disk_is_full(path.parent) or not os.access(path.parent, os.W_OK))


def store_error(exc: sqlite3.Error, path: Path) -> WorkbenchError:
    """One sentence for an SQLite failure that names its real cause: a full or read-only disk is not damage."""
    text = str(exc).lower()
    if "disk is full" in text or disk_is_full(path.parent):  # SQLite may call it a "disk I/O error"
        return WorkbenchError(f"The disk holding the run store '{path}' is full, so nothing was written to it;",
                              "free some space there and run the command again.")
    if "readonly" in text or "read-only" in text or not os.access(path.parent, os.W_OK):
        return WorkbenchError(f"The run store '{path}' is on a read-only file system or not writable by you, "
                              "so nothing was written;",
                              "make it writable, or choose another folder with --workspace.")
    if "unable to open" in text and len(str(path)) >= SQLITE_MAX_PATH:
        return WorkbenchError(f"The run store's path is {len(str(path))} characters long, more than SQLite opens "
                              f"({SQLITE_MAX_PATH}), so the store '{str(path)[:60]}...' was not opened;",
                              "choose a workspace folder with a shorter path (--workspace or WORKBENCH_WORKSPACE).")
    if "unable to open" in text or "disk i/o" in text:
        return WorkbenchError(f"The run store '{path}' cannot be opened or read ({exc}), so nothing was written;",
                              "check the folder exists and is readable and writable, or use another --workspace.")
    if "locked" in text or "busy" in text:
        return WorkbenchError(f"The run store '{path}' stayed locked by another process for "
                              f"{BUSY_TIMEOUT_MS // 1000} s, so nothing was written;",
                              "wait for the other build or sweep to finish and run the command again.")
    return WorkbenchError(f"The run store '{path}' is damaged ({exc}), so it was not used;",
                          "restore it from a backup, or move it aside to start a new store (the artifacts stay).")


def missing_files(run: Run) -> list[str]:
    """What of a run vanished from disk ('artifact', table names): shown as missing, never an error."""
    gone = [] if run.artifact_exists else ["artifact"]
    return gone + [name for name, path in sorted(run.tables.items()) if not Path(path).is_file()]
