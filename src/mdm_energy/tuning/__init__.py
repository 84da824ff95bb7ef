"""Post-training schedule tuning (docs/design.md §6): objectives, the strategy runner (:mod:`.study`) over any
parametric schedule family, the study storage (:mod:`.storage`) and the trial-claim protocol (:mod:`.claims`)
on Optuna, the Pareto search, exact Beta grids, reports."""

from .exact_grid import ExactGridStudy, GridPoint, beta_grid, exact_grid_study, exact_references, run_grid
from .items import ItemStore, StudyItemStore
from .objectives import CallableObjective, ExactKLObjective, ItemObjective, Objective, Score, TaskObjective
from .pareto import (PARETO_STRATEGIES, ParetoObjective, ParetoPoint, ParetoResult, ParetoRunConfig, ParetoSpace,
                     SamplerObjective, pareto_tune)
from .reports import write_pareto_report, write_report
from .storage import DEFAULT_STORAGE, check_storage, heartbeat_seconds, open_study
from .study import (
    BASELINES,
    MAX_TRIALS,
    PAPER_GRID,
    STRATEGIES,
    RunConfig,
    SearchSpace,
    Trial,
    TuneResult,
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
    "MAX_TRIALS",
    "DEFAULT_STORAGE",
    "SearchSpace",
    "RunConfig",
    "Trial",
    "TuneResult",
    "check_storage",
    "open_study",
    "heartbeat_seconds",
    "study_trials",
    "tune",
    "write_report",
    "write_pareto_report",
    "PARETO_STRATEGIES",
    "ParetoObjective",
    "SamplerObjective",
    "ParetoSpace",
    "ParetoRunConfig",
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
