"""Post-training schedule tuning (docs/design.md §6): objectives, the study runner on Optuna storage,
exact Beta grids, reports."""

from .exact_grid import ExactGridStudy, GridPoint, beta_grid, exact_grid_study, exact_references, run_grid
from .objectives import ExactKLObjective, Objective, Score, TaskObjective
from .reports import write_report
from .study import (
    BASELINES,
    DEFAULT_STORAGE,
    PAPER_GRID,
    STRATEGIES,
    SearchSpace,
    Trial,
    TuneResult,
    check_storage,
    open_study,
    study_trials,
    tune,
)

__all__ = [
    "Score",
    "Objective",
    "ExactKLObjective",
    "TaskObjective",
    "STRATEGIES",
    "BASELINES",
    "PAPER_GRID",
    "DEFAULT_STORAGE",
    "SearchSpace",
    "Trial",
    "TuneResult",
    "check_storage",
    "open_study",
    "study_trials",
    "tune",
    "write_report",
    "GridPoint",
    "ExactGridStudy",
    "run_grid",
    "beta_grid",
    "exact_references",
    "exact_grid_study",
]
