"""The accuracy-aware search: the fastest variant whose task metric stays within its budget."""

from workbench.tuning.search import tune
from workbench.tuning.trials import Recipe, Trial, TuneResult

__all__ = ["Recipe", "Trial", "TuneResult", "tune"]
