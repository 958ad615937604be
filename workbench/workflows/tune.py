"""Which layers must stay in FP32 for a quantized model to stay accurate, and what that costs.

A per-layer drift table says where the noise is made; it does not say which layer's noise the
task cares about. So each of the ``top_k`` noisiest layers (lowest local SQNR) is kept in FP32
in a build of its own, through the same pipeline as every other run (``exclude_nodes``), and
ranked by how much of the task metric it recovers. The mixed variant then keeps layers in that
order - the best single layer first, then greedily more - until the budget is met, so it keeps
as few layers as the ranking allows; every build is a cached run, so nothing is built twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.build_options import BuildOptions
from workbench.errors import WorkbenchError
from workbench.progress import CancelToken, Progress, ProgressCallback
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.workflows.layer_drift import drift_for_run

#: Precisions whose builds honour ``exclude_nodes`` (the quantizers' ``nodes_to_exclude``).
SEARCHABLE_PRECISIONS = ("int8", "int8-dynamic")
METRICS = ("accuracy", "top1_agreement", "cosine")


@dataclass(frozen=True)
class AccuracyBudget:
    """How much a variant may lose against FP32.

    ``accuracy``: at most ``limit`` points (percent) below FP32's accuracy on the labelled set.
    ``top1_agreement``: at most ``limit`` points of predictions differing from FP32's.
    ``cosine``: mean output cosine similarity to FP32 of at least ``limit`` (e.g. 0.9999).
    """

    metric: str = "accuracy"
    limit: float = 0.5

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise WorkbenchError(f"Unknown budget metric '{self.metric}'.", f"Use one of: {', '.join(METRICS)}.")
        if self.limit < 0 or (self.metric == "cosine" and self.limit > 1):
            raise WorkbenchError(f"Budget limit {self.limit} is out of range for {self.metric}.",
                                 "Give points >= 0 for accuracy/top1_agreement, or a cosine in [0, 1].")

    def value(self, run: Run) -> float:
        """The run's score on this metric (higher is better)."""
        drift = run.drift
        key = {"accuracy": "accuracy", "top1_agreement": "top1_agreement", "cosine": "cosine_similarity"}[self.metric]
        if drift.get(key) is None:
            raise WorkbenchError(
                f"Run {run.run_id} has no {self.metric} (the eval data has no labels or the model is no classifier).",
                "Use the 'cosine' budget, or evaluate on labelled data.",
            )
        return float(drift[key])

    def threshold(self, run: Run) -> float:
        """The lowest passing score, given the FP32 figures stored with the run."""
        if self.metric == "accuracy":
            return float(run.drift["reference_accuracy"]) - self.limit / 100.0
        if self.metric == "top1_agreement":
            return 1.0 - self.limit / 100.0
        return self.limit

    def meets(self, run: Run) -> bool:
        return self.value(run) >= self.threshold(run) - 1e-12

    def describe(self) -> str:
        if self.metric == "cosine":
            return f"output cosine >= {self.limit:g}"
        return f"{self.metric.replace('_', '-')} within {self.limit:g} points of FP32"


@dataclass
class SensitivityResult:
    """The plain variant, every candidate's recovery, and the mixed variant that was chosen."""

    budget: AccuracyBudget
    plain: Run
    ranking: pd.DataFrame
    mixed: Run | None
    kept: list[str]
    met: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Plain versus mixed: speed, the budget's metric and what was kept in FP32."""
        rows = [("plain", self.plain, [])]
        if self.mixed is not None and self.mixed.run_id != self.plain.run_id:
            rows.append(("mixed", self.mixed, self.kept))
        return pd.DataFrame([
            {
                "variant": name,
                "label": run.label,
                "latency_ms": run.latency_ms["median"],
                "fp32_latency_ms": run.reference_latency_ms["median"],
                "speedup": run.speedup,
                self.budget.metric: self.budget.value(run),
                "threshold": self.budget.threshold(run),
                "meets_budget": self.budget.meets(run),
                "kept_fp32": len(kept),
                "kept_nodes": kept,
            }
            for name, run, kept in rows
        ])

    def to_dict(self) -> dict:
        return {
            "budget": {"metric": self.budget.metric, "limit": self.budget.limit, "text": self.budget.describe()},
            "met": self.met,
            "kept": self.kept,
            "plain": self.plain.to_dict(),
            "mixed": self.mixed.to_dict() if self.mixed is not None else None,
            "summary": self.summary().to_dict(orient="records"),
            "ranking": self.ranking.to_dict(orient="records"),
            "notes": self.notes,
        }


def sensitivity_search(
    model: str | Path,
    options: BuildOptions | None = None,
    budget: AccuracyBudget | None = None,
    *,
    top_k: int = 8,
    drift_samples: int = 32,
    pipeline: Pipeline | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> SensitivityResult:
    """Rank the noisiest layers by recovery and build the smallest mixed variant within ``budget``.

    ``options`` describe the variant searched (INT8 when None); each candidate is the same build
    with more nodes in ``exclude_nodes``.
    """
    options = options or BuildOptions(precision="int8")
    precision = options.precision
    budget = budget or AccuracyBudget()
    if precision not in SEARCHABLE_PRECISIONS:
        raise WorkbenchError(
            f"The sensitivity search needs builds that can keep single layers in FP32; {precision} cannot yet.",
            f"Use one of: {', '.join(SEARCHABLE_PRECISIONS)}.",
        )
    if top_k < 1:
        raise WorkbenchError(f"top_k={top_k} leaves no candidate layers.", "Use top_k of 1 or more.")
    pipeline = pipeline or Pipeline()
    progress_ = Progress(progress, cancel)

    def build(exclude: Sequence[str], part: Progress) -> Run:
        changed = options.replace(exclude_nodes=(*options.exclude_nodes, *exclude))
        return pipeline.run(model, changed, progress=part.as_callback(), cancel=progress_.cancel)

    plain = build([], progress_.slice(0.0, 0.1))
    notes = [f"budget: {budget.describe()}"]
    empty = pd.DataFrame(columns=["node", "op_type", "local_sqnr_db", budget.metric, "recovered",
                                  "latency_ms", "speedup", "meets_budget", "run_id"])
    if budget.meets(plain):
        notes.append(f"plain {precision} already meets the budget; nothing needs to stay in FP32")
        return SensitivityResult(budget, plain, empty, plain, [], True, notes)

    drift = drift_for_run(plain, options.eval, samples=drift_samples, pipeline=pipeline,
                          progress=progress_.slice(0.1, 0.2).as_callback(), cancel=progress_.cancel)
    candidates = _candidates(drift.table, top_k)
    rows = []
    for index, (node, op_type, sqnr) in enumerate(candidates):
        part = progress_.slice(0.2 + 0.6 * index / len(candidates), 0.2 + 0.6 * (index + 1) / len(candidates))
        run = build([node], part)
        rows.append({
            "node": node, "op_type": op_type, "local_sqnr_db": sqnr,
            budget.metric: budget.value(run), "recovered": budget.value(run) - budget.value(plain),
            "latency_ms": run.latency_ms["median"], "speedup": run.speedup,
            "meets_budget": budget.meets(run), "run_id": run.run_id,
        })
    ranking = pd.DataFrame(rows, columns=empty.columns)
    ranking = ranking.sort_values(["recovered", "latency_ms"], ascending=[False, True]).reset_index(drop=True)

    passing = ranking[ranking["meets_budget"]]
    if not passing.empty:
        best = passing.sort_values("latency_ms").iloc[0]
        mixed = pipeline.workspace.load_run(best["run_id"])
        notes.append(f"one layer kept in FP32 is enough: {best['node']}")
        return SensitivityResult(budget, plain, ranking, mixed, [best["node"]], True, notes)

    kept: list[str] = []
    mixed = None
    order = list(ranking["node"])
    for count, node in enumerate(order, start=1):
        kept.append(node)
        if count == 1:
            continue  # single layers were all built above and none passed
        part = progress_.slice(0.8 + 0.2 * (count - 1) / len(order), 0.8 + 0.2 * count / len(order))
        mixed = build(kept, part)
        if budget.meets(mixed):
            notes.append(f"{count} layers kept in FP32, added in order of recovery")
            return SensitivityResult(budget, plain, ranking, mixed, list(kept), True, notes)
    notes.append(f"even with all {len(order)} candidate layers in FP32 the budget is missed; "
                 "raise top_k or loosen the budget")
    return SensitivityResult(budget, plain, ranking, mixed, kept, False, notes)


def _candidates(table: pd.DataFrame, top_k: int) -> list[tuple[str, str, float]]:
    """The ``top_k`` distinct nodes with the lowest local SQNR (the most noise of their own)."""
    ordered = table.dropna(subset=["local_sqnr_db"]).sort_values("local_sqnr_db")
    seen: dict[str, tuple[str, str, float]] = {}
    for row in ordered.itertuples():
        if row.node and row.node not in seen:
            seen[row.node] = (row.node, row.op_type, float(row.local_sqnr_db))
        if len(seen) == top_k:
            break
    return list(seen.values())

