"""Post-training schedule tuning (DESIGN.md §6): objectives, strategies on Optuna storage, reports."""

from .objectives import ExactKLObjective, Objective, Score, TaskObjective
from .reports import write_report
from .study import BASELINES, STRATEGIES, SearchSpace, TuneResult, open_study, study_trials, tune

__all__ = [
    "Score",
    "Objective",
    "ExactKLObjective",
    "TaskObjective",
    "STRATEGIES",
    "BASELINES",
    "SearchSpace",
    "TuneResult",
    "open_study",
    "study_trials",
    "tune",
    "write_report",
]
