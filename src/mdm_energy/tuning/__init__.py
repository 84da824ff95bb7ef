"""Post-training schedule tuning (docs/design.md §6): objectives, the study runner on Optuna storage,
exact Beta grids, reports."""

from .exact_grid import ExactGridStudy, GridPoint, beta_grid, exact_grid_study, exact_references, run_grid
from .items import ItemStore, StudyItemStore
from .objectives import CallableObjective, ExactKLObjective, ItemObjective, Objective, Score, TaskObjective
from .pareto import PARETO_STRATEGIES, ParetoObjective, ParetoPoint, ParetoResult, ParetoSpace, SamplerObjective, pareto_tune
from .reports import write_pareto_report, write_report
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
    "CallableObjective",
    "ItemObjective",
    "TaskObjective",
    "ItemStore",
    "StudyItemStore",
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
    "write_pareto_report",
    "PARETO_STRATEGIES",
    "ParetoObjective",
    "SamplerObjective",
    "ParetoSpace",
    "ParetoPoint",
    "ParetoResult",
    "pareto_tune",
    "GridPoint",
    "ExactGridStudy",
    "run_grid",
    "beta_grid",
    "exact_references",
    "exact_grid_study",
]
