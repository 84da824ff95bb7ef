r"""Beta grids on the exact KL, and the full exact comparison behind ``mdm-energy exact-grid``.

Both run through the tuner's one grid runner (:func:`~mdm_energy.tuning.study.tune` with the ``grid``
strategy) on a throwaway study — in memory, or in a temporary SQLite file when several worker processes
share it — so grids everywhere in the package are evaluated, parallelised and de-duplicated the same way.
:func:`exact_grid_study` adds what only the exact engine can give: the true optimum and the
information-curve schedule (docs/design.md §5).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..exact import ExactDenoiser, InfoCurveSchedule, Optimum, counts_schedule, infocurve_counts, true_optimum
from ..schedules import Beta
from .objectives import ExactKLObjective
from .claims import BETA
from .study import BASELINES, SearchSpace, TuneResult, tune

__all__ = ["GridPoint", "ExactGridStudy", "run_grid", "beta_grid", "exact_references", "exact_grid_study"]


@dataclass(frozen=True)
class GridPoint:
    """One ``beta:a,b`` of a grid and its exact KL in nats."""

    a: float
    b: float
    kl: float

    def as_json(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "kl": self.kl}


@dataclass(frozen=True)
class ExactGridStudy:
    """A Beta grid, its best point, the hand-crafted baselines, the true optimum and the information-curve
    schedule, all as KL(q ‖ sampler) in nats (what ``mdm-energy exact-grid`` prints)."""

    grid: list[GridPoint]
    best: GridPoint
    baselines: dict[str, float]
    optimum: Optimum
    infocurve: InfoCurveSchedule
    evaluations: int

    def as_json(self) -> dict[str, Any]:
        return {
            "grid": [g.as_json() for g in self.grid],
            "best": self.best.as_json(),
            "baselines": dict(self.baselines),
            "optimum": self.optimum.as_json(),
            "infocurve": self.infocurve.as_json(),
        }


def run_grid(objective: ExactKLObjective, space: "SearchSpace | None" = None, *, workers: int = 1,
             progress: "Callable[[int], None] | None" = None) -> TuneResult:
    """The ``grid`` strategy of the tuner on a throwaway study (memory, or a temporary SQLite file for
    ``workers`` > 1), over the grid of any schedule family."""
    space = space or SearchSpace()
    if workers <= 1:
        return tune(objective, strategy="grid", storage=None, space=space, progress=progress)
    with tempfile.TemporaryDirectory(prefix="mdm-energy-grid-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'grid.db'}"
        return tune(objective, strategy="grid", storage=url, space=space, workers=workers, progress=progress)


def beta_grid(objective: ExactKLObjective, space: "SearchSpace | None" = None, *, workers: int = 1,
              progress: "Callable[[int], None] | None" = None) -> list[GridPoint]:
    """KL of every ``beta:a,b`` of the grid, row-major in a, then b."""
    space = _beta_space(space)
    return _points(run_grid(objective, space, workers=workers, progress=progress), space)


def _beta_space(space: "SearchSpace | None") -> SearchSpace:
    """``space`` (the paper's grid by default), refused unless it is a Beta space: grid points here are (a, b)."""
    space = space or SearchSpace()
    if space.family != BETA:
        raise ValueError(f"exact Beta grids search the beta family, not {space.family!r} "
                         "(use tune(..., strategy='grid') or run_grid for another family)")
    return space


def _points(result: TuneResult, space: SearchSpace) -> list[GridPoint]:
    kl = {t.point(space.names): t.value for t in result.trials if t.state == "COMPLETE"}
    return [GridPoint(a, b, kl[(a, b)]) for a, b in space.grid()]


def exact_references(objective: ExactKLObjective, starts: tuple = ()) -> tuple[Optimum, InfoCurveSchedule]:
    """The true optimum (searched from ``starts``, the information-curve schedule and the baselines) and
    the information-curve schedule with its exact KL."""
    kl = objective.kl
    ic = infocurve_counts(objective.den.information_curve(), kl.steps)
    ic = InfoCurveSchedule(ic.counts, ic.bound, kl(counts_schedule(ic.counts)))
    first = [ic.counts] if kl.fixed else [counts_schedule(ic.counts)]
    return true_optimum(kl, first + list(starts) + list(BASELINES)), ic


def exact_grid_study(
    den: ExactDenoiser,
    sampler: str,
    steps: int,
    *,
    remasking: "str | None" = None,
    space: "SearchSpace | None" = None,
    workers: int = 1,
    progress: "Callable[[int], None] | None" = None,
) -> ExactGridStudy:
    """The Beta grid (the paper's 10×10 by default), the baselines, the true optimum and the
    information-curve schedule of one sampler on one law."""
    space = _beta_space(space)
    objective = ExactKLObjective(den, sampler, steps, remasking)
    result = run_grid(objective, space, workers=workers, progress=progress)
    grid = _points(result, space)
    best = min(grid, key=lambda g: (g.kl, g.a, g.b))
    optimum, ic = exact_references(objective, (Beta(best.a, best.b),))
    return ExactGridStudy(
        grid=grid,
        best=best,
        baselines={name: s.value for name, s in result.baselines.items()},
        optimum=optimum,
        infocurve=ic,
        evaluations=objective.kl.evaluations,
    )
