"""What the search tries (recipes), what each try measured (trials) and what it concludes (the result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from workbench.build_options import BuildOptions
from workbench.recipe import Recipe
from workbench.runs import format as fmt
from workbench.runs.recommend import qualifies
from workbench.runs.run import Run
from workbench.tasks import TaskScore, task_score
from workbench.tasks.judge import metric_dict
from workbench.tasks.verdict_text import interval_text

if TYPE_CHECKING:
    from workbench.measure.stability import Stability
    from workbench.workflows.tune_confirm import Judging
    from workbench.workflows.tune_ranking import RankingSubset


@dataclass(frozen=True)
class NamedRecipe:
    """One recipe the search tries: a name for the steps it reports, the precision, and the ``Recipe`` value
    itself (its ``exclude_nodes`` are the fragile nodes it keeps, before any node fall-back)."""

    name: str
    precision: str
    recipe: Recipe = field(default_factory=Recipe)
    #: Backend options the recipe compiles with (e.g. OpenVINO's ``int8_hint=bf16``), over the user's.
    backend_options: tuple[tuple[str, str], ...] = ()

    def options(self, base: BuildOptions, kept: tuple[str, ...]) -> BuildOptions:
        return base.replace(precision=self.precision,
                            recipe=self.recipe.replace(exclude_nodes=self.recipe.exclude_nodes + kept),
                            backend_options={**base.backend_options, **dict(self.backend_options)})

    def derive(self, name: str, **changes: object) -> NamedRecipe:
        """A recipe with some choices changed, named after this one and the change."""
        return NamedRecipe(f"{self.name} + {name}" if self.name != "default" else name, self.precision,
                           self.recipe.replace(**changes), self.backend_options)

    def to_dict(self) -> dict:
        extra = {"backend_options": dict(self.backend_options)} if self.backend_options else {}
        return {"name": self.name, "precision": self.precision, **self.recipe.to_dict(), **extra}


@dataclass
class Trial:
    """One stored run of the search and why it was tried."""

    step: str
    description: str
    recipe: NamedRecipe
    kept: tuple[str, ...]
    run: Run
    wall_s: float
    #: The part of the evaluation data the search judges on (None: all of it, as the run stores it).
    judging: Judging | None = None
    #: Search samples evaluated beyond the search's share because the trial's interval straddled the budget.
    extra_samples: int = 0
    #: A ranking trial's samples (``tune_ranking``): its run was evaluated on them only, so it orders the node
    #: fall-back's groups and is never a verdict: it neither meets the budget nor pays, and is never the pick.
    ranked_on: RankingSubset | None = None

    @cached_property
    def score(self) -> TaskScore:
        """The verdict the search decides by: on its part of the data only, where a confirmation part is kept."""
        if self.judging is None:
            return task_score(self.run.drift)
        return self.judging.search_score(self.run.drift)

    @property
    def met(self) -> bool:
        return self.ranked_on is None and bool(self.score.met)

    @property
    def pays(self) -> bool:
        """Meets the budget on the search's data and runs measurably faster than FP32: a recipe search may stop
        here, and only such a trial is recommended (a 1.01x whose interval reaches down to 1 is no speed-up)."""
        return self.met and qualifies(self.run, judged=True)

    @property
    def speedup(self) -> float:
        """Against FP32 on the default backend, timed in the same rounds: comparable across engines."""
        return float(self.run.comparable_speedup)

    @property
    def backend(self) -> str:
        return self.run.spec.backend

    @property
    def kept_nodes(self) -> list[str]:
        return list(self.run.spec.exclude_nodes)

    def rank_key(self) -> tuple:
        """Better first when sorted descending: passing, then closer to FP32, then faster."""
        return (self.met, not self.score.broken, self.score.value, self.speedup)

    def metric(self) -> dict:
        score = self.score
        return metric_dict(score)

    def short_metric(self) -> str:
        return f"{self.score.metric} {interval_text(self.score)}"

    def to_dict(self) -> dict:
        return {"step": self.step, "description": self.description, "run_id": self.run.run_id,
                "backend": self.backend, "precision": self.run.spec.precision, "recipe": self.recipe.to_dict(),
                "kept_nodes": self.kept_nodes, "speedup": self.speedup, "speedup_interval": self.run.speedup_interval,
                "speedup_same_backend": float(self.run.speedup), "metric": self.metric(),
                "extra_samples": self.extra_samples,
                "ranked_on": None if (ranked := self.ranked_on) is None else {"samples": len(ranked), "of": ranked.of},
                "wall_s": round(self.wall_s, 2)}


@dataclass
class TuneResult:
    """The pick (or None), every trial, the FP32 baselines and the story of how the pick was reached."""

    recommended: Trial | None
    trials: list[Trial]
    baselines: dict[str, Run]
    wall_s: float
    peak_rss_mb: float
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The pick judged on the data the search never looked at, and where the trials were judged.
    confirm: TaskScore | None = None
    judging: Judging | None = None

    @property
    def stability(self) -> Stability | None:
        return self.judging.stability if self.judging is not None else None

    def to_dict(self) -> dict:
        best = self.recommended
        recommended = None
        if best is not None:
            recommended = {
                "run_id": best.run.run_id, "backend": best.backend, "precision": best.run.spec.precision,
                "speedup": best.speedup, "speedup_interval": best.run.speedup_interval,
                "speedup_same_backend": float(best.run.speedup), "metric": best.metric(), "artifact": best.run.artifact,
                "kept_nodes": best.kept_nodes, "recipe": best.recipe.to_dict(),
                "backend_options": dict(best.run.spec.backend_options),
                "confirm": None if self.confirm is None else {"metric": metric_dict(self.confirm),
                                                              "samples": self.confirm.samples},
            }
        backend = best.backend if best is not None else next(iter(self.baselines), None)
        baseline = self.baselines.get(backend) if backend else None
        return {
            "recommended": recommended,
            "trials": [trial.to_dict() for trial in self.trials],
            "baseline": {
                "run_id": baseline.run_id, "backend": backend, "latency_ms": baseline.latency_ms.get("median"),
                "per_backend": {name: {"run_id": run.run_id, "latency_ms": run.latency_ms.get("median")}
                                for name, run in self.baselines.items()},
            } if baseline is not None else None,
            "wall_s": round(self.wall_s, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "steps": self.steps,
            "notes": self.notes,
            "stability": None if self.stability is None else self.stability.to_dict(),
            "split": None if self.judging is None else self.judging.to_dict(),
        }

    def explain(self) -> str:
        """The human summary: the pick, how it was reached, and what was given up for it."""
        lines = []
        best = self.recommended
        if best is None:
            lines.append("recommended: none")
        else:
            lines.append(f"recommended: {best.run.run_id} on {best.backend}: {best.run.spec.precision} "
                         f"({best.recipe.name}), {fmt.comparable_text(best.run)}, "
                         f"{best.score.verdict}")
            if self.confirm is not None:
                lines.append(f"  confirmed on data the search never saw: {self.confirm.verdict}")
            lines.append(f"  artifact: {best.run.artifact}")
            kept = best.kept_nodes
            shown = ", ".join(kept[:12]) + (" ..." if len(kept) > 12 else "")
            lines.append(f"  kept in {best.run.kept_precision.upper()}: {len(kept)} node(s)"
                         + (f": {shown}" if kept else ""))
        if self.stability is not None:
            lines.append(f"  stability: {self.stability.text()}")
        lines += [f"  step: {step}" for step in self.steps]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  {len(self.trials)} trials in {self.wall_s:.0f} s, peak RSS {self.peak_rss_mb:.0f} MB")
        return "\n".join(lines)
