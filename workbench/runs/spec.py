"""What identifies a run: the small, hashable spec whose digest keys every cached artifact."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from workbench.recipe import Recipe
from workbench.tasks.custom import metric_name
from workbench.vocabulary import DEFAULT_QUANTIZER, uses_calibration

if TYPE_CHECKING:
    from workbench.build_options import BuildOptions

#: Bumped when the pruning repair changes what it writes, so cached pruned files are rebuilt.
REPAIR_VERSION = "least-squares-1"


def _digest(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Digests:
    """What the loaded inputs contribute to a run's identity: the model and the data, by content."""

    model: str
    model_name: str
    calib: str | None
    eval: str


@dataclass(frozen=True)
class RunSpec:
    """Every choice that changes the built model or its measurement, and nothing else."""

    model_digest: str
    model_name: str
    precision: str
    backend: str = "onnxruntime-cpu"
    batch: int = 1
    calib_digest: str | None = None
    calib_method: str | None = None
    per_channel: bool = True
    prune_method: str | None = None
    prune_ratio: float = 0.0
    prune_repair: bool = True
    eval_digest: str | None = None
    exclude_nodes: tuple[str, ...] = ()
    quantizer: str = "onnxruntime"
    task: str | None = None
    metric: str | None = None
    #: The backend's own settings as sorted (key, value) pairs; they change timing, not the file.
    backend_options: tuple[tuple[str, str], ...] = ()
    quant_options: tuple[tuple[str, object], ...] = ()
    #: Where it was built and timed on a cluster: the hardware class the trial asked for and the node's
    #: machine (workbench.cluster). None for a run on this machine. Two targets' runs of one spec differ.
    hardware_class: str | None = None
    machine: str | None = None

    @classmethod
    def from_options(cls, options: BuildOptions, digests: Digests) -> RunSpec:
        """The spec the options and the data describe; the only mapping from ``BuildOptions`` to a spec.

        Choices that cannot change this precision's file are dropped (a calibration method for FP16), so
        equal builds share an id."""
        int8 = options.precision == "int8"
        recipe = options.recipe
        pruned = options.pruned
        return cls(
            model_digest=digests.model, model_name=digests.model_name, precision=options.precision,
            backend=options.backend, batch=options.batch, calib_digest=digests.calib,
            calib_method=recipe.calib_method if int8 else None, per_channel=recipe.per_channel,
            prune_method=options.prune_method if pruned else None,
            prune_ratio=options.prune_ratio if pruned else 0.0, prune_repair=options.repair,
            eval_digest=digests.eval, exclude_nodes=recipe.exclude_nodes,
            quantizer=recipe.quantizer if int8 else DEFAULT_QUANTIZER,
            task=options.task, metric=metric_name(options.metric) if options.metric is not None else None,
            backend_options=tuple(sorted(options.backend_options.items())),
            quant_options=tuple(sorted(recipe.options_for(options.precision).items())),
        )

    @property
    def recipe(self) -> Recipe:
        """The recipe this run was built with (the defaults where its precision ignores a choice)."""
        return Recipe(quantizer=self.quantizer, calib_method=self.calib_method or "minmax",
                      per_channel=self.per_channel, exclude_nodes=self.exclude_nodes).with_options(
                          dict(self.quant_options))

    def artifact_fields(self) -> dict:
        """The fields the built file depends on (not the batch or the eval data)."""
        quantized = self.precision == "int8"
        pruned = bool(self.prune_method and self.prune_ratio)
        fields = {
            "model": self.model_digest,
            "precision": self.precision,
            "backend": self.backend,
            # Calibration data shapes the file when it sets INT8 ranges or repairs a pruned model.
            "calib": self.calib_digest if self.calibrated or (pruned and self.prune_repair) else None,
            "calib_method": self.calib_method if quantized else None,
            "per_channel": self.per_channel if self.precision in ("int8", "int8-dynamic") else None,
            "prune": [self.prune_method, self.prune_ratio, REPAIR_VERSION if self.prune_repair else None]
            if pruned else None,
            "exclude": sorted(self.exclude_nodes),
            # Only where set, so runs made before these options keep their ids.
            **({"quant": [list(item) for item in self.quant_options]} if self.quant_options else {}),
            **({"target": [self.hardware_class, self.machine]} if self.hardware_class or self.machine else {}),
        }
        if quantized and self.quantizer != "onnxruntime":  # only when set, so older runs keep their ids
            fields["quantizer"] = self.quantizer
            if self.quantizer == "openvino-accuracy-control":  # its file is chosen by the task's metric
                fields["task"] = self.task
        return fields

    @property
    def calibrated(self) -> bool:
        """Whether calibration data shapes this precision's file (``vocabulary.uses_calibration``)."""
        return uses_calibration(self.precision, dict(self.quant_options).get("weight_algorithm"))

    @property
    def prune_key(self) -> str | None:
        """What the pruned (and repaired) FP32 file depends on: shared by every precision built on it."""
        fields = self.artifact_fields()
        if fields["prune"] is None:
            return None
        return _digest({"model": fields["model"], "prune": fields["prune"],
                        "calib": self.calib_digest if self.prune_repair else None})

    @property
    def exact(self) -> bool:
        """An unpruned FP32 build is the reference model itself: there is no drift to explain."""
        return self.precision == "fp32" and not (self.prune_method and self.prune_ratio)

    @property
    def artifact_key(self) -> str:
        return _digest(self.artifact_fields())

    @property
    def run_id(self) -> str:
        """Same spec, same id: asking again returns the cached run instead of rebuilding."""
        fields = {**self.artifact_fields(), "batch": self.batch, "eval": self.eval_digest}
        if self.task or self.metric:
            fields.update(task=self.task, metric=self.metric)
        if self.backend_options:  # only when set, so runs stored before the field keep their ids
            fields["backend_options"] = [list(pair) for pair in self.backend_options]
        return _digest(fields)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["exclude_nodes"] = list(self.exclude_nodes)
        data["backend_options"] = dict(self.backend_options)
        data["quant_options"] = [list(item) for item in self.quant_options]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> RunSpec:
        fields = dict(data)
        fields["exclude_nodes"] = tuple(fields.get("exclude_nodes", ()))
        fields["backend_options"] = tuple(sorted(dict(fields.get("backend_options", {})).items()))
        fields["quant_options"] = tuple(tuple(item) for item in fields.get("quant_options", ()))
        return cls(**fields)
