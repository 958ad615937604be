"""What travels between this machine and a node: the model and data out, the run and its files back.

Files travel as bytes inside Ray's object store (put once, read by every trial of the sweep), so a
node needs no shared file system. A node writes them into its own workspace, keyed by their digest,
and a run comes back as its record plus the bytes of its artifact folder and tables, written here
atomically before the record is stored: a trial that dies mid-way leaves nothing in the local store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx.external_data_helper import uses_external_data

from workbench.build_options import BuildOptions
from workbench.files import write_atomically
from workbench.runs.pipeline import sibling_data
from workbench.runs.run import Run
from workbench.runs.workspace import Workspace


@dataclass
class Files:
    """A file or folder's content as relative path -> bytes; ``entry`` is what the build opens."""

    entry: str
    content: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        sha = hashlib.sha256(self.entry.encode())
        for name in sorted(self.content):
            sha.update(name.encode())
            sha.update(hashlib.sha256(self.content[name]).digest())
        return sha.hexdigest()[:16]

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.content.values())

    def write_under(self, folder: Path) -> Path:
        """Written once per content under ``folder/<digest>``; a half-written copy is never used."""
        target = folder / self.digest
        if not target.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
            for name, data in self.content.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(data)
            try:
                staging.rename(target)
            except OSError:  # another trial of this node wrote it first
                shutil.rmtree(staging, ignore_errors=True)
        return target / self.entry


def model_files(path: Path) -> Files:
    """The .onnx file and the external-data files its initializers point at, in a folder of the model's
    folder's name: ``<name>/model.onnx`` is named by its folder on the node as it is here."""
    folder = path.absolute().parent.name or "model"
    files = Files(f"{folder}/{path.name}", {f"{folder}/{path.name}": path.read_bytes()})
    proto = onnx.load(str(path), load_external_data=False)
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor):
            location = next(entry.value for entry in tensor.external_data if entry.key == "location")
            files.content.setdefault(f"{folder}/{location}", (path.parent / location).read_bytes())
    return files


def source_files(source: object) -> Files | object:
    """A data file or image folder as bytes; ``random...`` and loaded datasets travel as they are."""
    if not isinstance(source, str | Path) or not Path(source).exists():
        return source
    path = Path(source)
    if path.is_file():
        return Files(path.name, {path.name: path.read_bytes()})
    content = {str(p.relative_to(path.parent)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return Files(path.name, content)


@dataclass
class Outbound:
    """The model and data as they travel, shared by every trial that uses them; ``size`` is their bytes."""

    model: Files
    calib: object = None
    eval: object = None

    @property
    def size(self) -> int:
        return self.model.size + sum(s.size for s in (self.calib, self.eval) if isinstance(s, Files))


def outbound(model: Path, options: BuildOptions) -> Outbound:
    """The trial's inputs as they travel: the calib.npz/eval.npz beside the model go along when none is given."""
    calib = options.calib if options.calib is not None else sibling_data(model, "calib")
    eval_ = options.eval if options.eval is not None else sibling_data(model, "eval")
    return Outbound(model_files(model), source_files(calib), source_files(eval_))


def inputs_key(options: BuildOptions) -> tuple:
    """Trials with equal keys read the same model and data: they share one copy in the object store."""
    return tuple(s if isinstance(s, str | Path | None) else id(s) for s in (options.calib, options.eval))


def option_fields(options: BuildOptions) -> dict:
    """The options as plain values (a read-only mapping does not pickle), data sources left to ``Outbound``."""
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    return {**fields, "backend_options": dict(options.backend_options), "calib": None, "eval": None}


def landed(trip: Outbound, fields: dict, folder: Path) -> tuple[Path, BuildOptions]:
    """On the node: the model's path and the options pointing at the data written under ``folder``."""
    def local(source: object) -> object:
        return source.write_under(folder) if isinstance(source, Files) else source

    options = BuildOptions(**{**fields, "calib": local(trip.calib), "eval": local(trip.eval)})
    return trip.model.write_under(folder), options


def run_payload(run: Run) -> dict:
    """On the node: the run record and the bytes of its artifact folder and tables."""
    folder = Path(run.artifact).parent
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
    tables = {name: (Path(path).name, Path(path).read_bytes()) for name, path in run.tables.items()
              if Path(path).is_file()}
    return {"run": run.to_dict(), "files": files, "tables": tables}


def payload_size(payload: dict) -> int:
    return (sum(len(data) for data in payload["files"].values())
            + sum(len(data) for _, data in payload["tables"].values()))


def receive(payload: dict, workspace: Workspace, model: Path) -> tuple[Run, bool]:
    """Here: the run's files written into the local workspace, then its record stored.

    Returns the run and whether the store already held this very run (a resumed sweep).
    """
    run = Run.from_dict(payload["run"])
    stored = workspace.load_run(run.run_id)
    if stored is not None and stored.created == run.created and stored.artifact_exists:
        return stored, True
    folder = workspace.artifact_dir(run.spec.artifact_key)
    for name, data in payload["files"].items():
        write_atomically(folder / name, lambda tmp, data=data: tmp.write_bytes(data))
    tables = {}
    for name, (file_name, data) in payload["tables"].items():
        path = folder / f"table-{name}-{file_name}"
        write_atomically(path, lambda tmp, data=data: tmp.write_bytes(data))
        tables[name] = str(path)
    run.artifact = str(folder / Path(run.artifact).name)
    if run.quantized_from is not None:  # it travelled beside the artifact
        run.quantized_from = str(folder / Path(run.quantized_from).name)
    run.model_path = str(model.absolute())
    run.tables = tables
    return run, False
