r"""Schedule search on the exact KL: Beta grids, the true optimum, and the information-curve schedule.

* :func:`beta_grid` — KL of ``beta:a,b`` over a grid (the paper's 10×10 by default). Fixed-count
  samplers only see the per-step counts, so grid points with equal counts are evaluated once.
* :func:`optimal_counts` — for fixed-count samplers the best composition of :math:`n` into :math:`N`
  parts (zeros allowed): exhaustive where there are at most ``max_exhaustive`` compositions, else a
  local search that moves one token between two steps while that helps.
* :func:`optimal_reveal` — for ancestral and Euler samplers the best per-step reveal probabilities
  :math:`\pi_1..\pi_{N-1}` (:math:`\pi_N = 1`) by continuous optimisation from several starts; the
  two samplers reach the same set of :math:`\pi` vectors, so they share this optimum. It is reported
  as the :math:`\alpha` grid :math:`\alpha_k = 1 - \prod_{j \le k}(1 - \pi_j)`.
* :func:`infocurve_counts` — the schedule minimising the information-curve bound (DESIGN.md §5)
  :math:`B(c) = \sum_m \sum_{j=c_{m-1}+1}^{c_m} (Z_j - Z_{c_{m-1}+1})` by dynamic programming over
  cumulative counts. For the fixed-count random sampler :math:`B` is the expected KL of a random
  ordering, an upper bound on the exact KL.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy import optimize

from ..schedules import Beta, Schedule, Table, parse_schedule
from .denoiser import ExactDenoiser
from .laws import (
    FIXED_COUNT_SAMPLERS,
    SAMPLERS,
    kl_divergence,
    law_confidence,
    law_fixed_random,
    law_independent,
    reveal_probabilities,
)

__all__ = [
    "DEFAULT_GRID",
    "BASELINES",
    "KLObjective",
    "GridPoint",
    "beta_grid",
    "compositions",
    "optimal_counts",
    "optimal_reveal",
    "infocurve_bound",
    "infocurve_counts",
    "counts_schedule",
    "exact_grid_study",
]

DEFAULT_GRID = tuple(round(0.1 * k, 1) for k in range(1, 11))
BASELINES = ("linear", "sin2", "sine", "maskgit")


class KLObjective:
    """KL(q ‖ law) of one sampler on one law for ``steps`` steps, with memoisation.

    Fixed-count samplers are memoised by their counts, the others by their reveal probabilities.
    """

    def __init__(self, den: ExactDenoiser, sampler: str, steps: int) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
        self.den, self.sampler, self.steps = den, sampler, int(steps)
        self.fixed = sampler in FIXED_COUNT_SAMPLERS
        self._cache: dict[tuple, float] = {}
        self.evaluations = 0

    def of_counts(self, counts: Sequence[int]) -> float:
        key = tuple(int(c) for c in counts)
        if key not in self._cache:
            self.evaluations += 1
            law_fn = law_fixed_random if self.sampler == "fixed" else law_confidence
            self._cache[key] = kl_divergence(self.den.q, law_fn(self.den, key))
        return self._cache[key]

    def of_reveal(self, pis: Sequence[float]) -> float:
        key = tuple(float(p) for p in pis)
        if key not in self._cache:
            self.evaluations += 1
            self._cache[key] = kl_divergence(self.den.q, law_independent(self.den, key))
        return self._cache[key]

    def counts(self, schedule: "Schedule | str") -> list[int]:
        return parse_schedule(schedule).counts(self.den.n, self.steps).tolist()

    def __call__(self, schedule: "Schedule | str") -> float:
        s = parse_schedule(schedule)
        if self.fixed:
            return self.of_counts(self.counts(s))
        return self.of_reveal(reveal_probabilities(s, self.steps, self.sampler))


@dataclass(frozen=True)
class GridPoint:
    a: float
    b: float
    kl: float


_WORKER_OBJECTIVE: "KLObjective | None" = None


def _grid_worker(ab: tuple[float, float]) -> float:
    assert _WORKER_OBJECTIVE is not None
    return _WORKER_OBJECTIVE(Beta(*ab))


def beta_grid(
    objective: KLObjective,
    a_values: Iterable[float] = DEFAULT_GRID,
    b_values: Iterable[float] = DEFAULT_GRID,
    progress: "Callable[..., Iterable] | None" = None,
    workers: int = 1,
) -> list[GridPoint]:
    """KL of every ``beta:a,b`` on the grid (row-major in a, then b).

    ``progress(iterable, total=…)`` wraps the evaluations (e.g. ``tqdm``). With ``workers > 1`` the
    points are scored in that many forked processes (Linux/macOS), each inheriting the denoiser's
    posterior cache; fixed-count samplers, memoised by counts, always run in-process.
    """
    global _WORKER_OBJECTIVE
    pairs = [(float(a), float(b)) for a in a_values for b in b_values]
    wrap = (lambda it: progress(it, total=len(pairs))) if progress else (lambda it: it)
    if workers > 1 and not objective.fixed and "fork" in multiprocessing.get_all_start_methods():
        _WORKER_OBJECTIVE = objective
        try:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                kls = list(wrap(pool.map(_grid_worker, pairs)))
        finally:
            _WORKER_OBJECTIVE = None
        objective.evaluations += len(pairs)
    else:
        kls = [objective(Beta(a, b)) for a, b in wrap(pairs)]
    return [GridPoint(a, b, kl) for (a, b), kl in zip(pairs, kls)]


def compositions(total: int, parts: int) -> Iterable[tuple[int, ...]]:
    """Every way to write ``total`` as an ordered sum of ``parts`` non-negative integers."""
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        prev, out = -1, []
        for b in bars + (total + parts - 1,):
            out.append(b - prev - 1)
            prev = b
        yield tuple(out)


def optimal_counts(
    objective: KLObjective, starts: Sequence[Sequence[int]] = (), max_exhaustive: int = 5000
) -> tuple[list[int], float, str]:
    """The best counts for a fixed-count sampler: ``(counts, kl, method)``, method ``exhaustive`` or ``local``."""
    n, N = objective.den.n, objective.steps
    if math.comb(n + N - 1, N - 1) <= max_exhaustive:
        best = min(compositions(n, N), key=lambda c: (objective.of_counts(c), c))
        return list(best), objective.of_counts(best), "exhaustive"
    candidates = [tuple(c) for c in starts] or [tuple(objective.counts("linear"))]
    best = min(candidates, key=objective.of_counts)
    improved = True
    while improved:
        improved = False
        moves = []
        for i, j in itertools.permutations(range(N), 2):
            if best[i] > 0:
                c = list(best)
                c[i] -= 1
                c[j] += 1
                moves.append(tuple(c))
        cand = min(moves, key=objective.of_counts) if moves else best
        if objective.of_counts(cand) < objective.of_counts(best) - 1e-15:
            best, improved = cand, True
    return list(best), objective.of_counts(best), "local"


def _alpha_from_reveal(pis: Sequence[float]) -> list[float]:
    return (1.0 - np.cumprod(1.0 - np.asarray(pis, dtype=np.float64))).tolist()


def optimal_reveal(
    objective: KLObjective, starts: Sequence[Sequence[float]] = (), evals_per_dim: int = 30
) -> tuple[list[float], float]:
    r"""The best reveal probabilities for ancestral/Euler: ``(alpha_grid[1..N], kl)`` with alpha_N = 1.

    Nelder–Mead on the logits of :math:`\pi_1..\pi_{N-1}`, started from the best of ``starts`` (each a
    reveal-probability vector; the linear schedule's is always among them), with a budget of
    ``evals_per_dim * (N - 1)`` KL evaluations. The result is never worse than the best start.
    """
    N = objective.steps
    if N == 1:
        return [1.0], objective.of_reveal([1.0])
    eps = 1e-9

    def to_pis(z: np.ndarray) -> list[float]:
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))] + [1.0]

    def f(z: np.ndarray) -> float:
        return objective.of_reveal(to_pis(z))

    inits = [np.clip(np.asarray(s, dtype=np.float64)[: N - 1], eps, 1 - eps) for s in starts]
    inits.append(1.0 / (N - np.arange(N - 1)))  # linear
    z_inits = [np.log(p / (1 - p)) for p in inits]
    z0 = min(z_inits, key=f)
    res = optimize.minimize(f, z0, method="Nelder-Mead",
                            options={"maxfev": evals_per_dim * (N - 1), "xatol": 1e-4, "fatol": 1e-10})
    best_z = res.x if res.fun <= f(z0) else z0
    return _alpha_from_reveal(to_pis(best_z)), f(best_z)


def infocurve_bound(Z: np.ndarray, counts: Sequence[int]) -> float:
    """The information-curve bound of DESIGN.md §5 for per-step ``counts`` (Z[j-1] = Z_j)."""
    total, c_prev = 0.0, 0
    for c in counts:
        c_next = c_prev + int(c)
        if c_next > c_prev:
            total += float(np.sum(Z[c_prev:c_next]) - (c_next - c_prev) * Z[c_prev])
        c_prev = c_next
    return total


def infocurve_counts(Z: np.ndarray, steps: int) -> tuple[list[int], float]:
    """Counts minimising :func:`infocurve_bound` over ``steps`` steps (dynamic programme over cumulative counts)."""
    n = len(Z)
    csum = np.concatenate([[0.0], np.cumsum(Z)])

    def cost(a: int, b: int) -> float:
        return 0.0 if b == a else float(csum[b] - csum[a] - (b - a) * Z[a])

    V = np.full((steps + 1, n + 1), math.inf)
    arg = np.zeros((steps + 1, n + 1), dtype=np.int64)
    V[0, 0] = 0.0
    for m in range(1, steps + 1):
        for b in range(n + 1):
            vals = [V[m - 1, a] + cost(a, b) for a in range(b + 1)]
            a_best = int(np.argmin(vals))
            V[m, b], arg[m, b] = vals[a_best], a_best
    cum = [n]
    for m in range(steps, 0, -1):
        cum.append(int(arg[m, cum[-1]]))
    cum = cum[::-1]
    return [b - a for a, b in zip(cum, cum[1:])], float(V[steps, n])


def counts_schedule(counts: Sequence[int]) -> Table:
    """The ``table:`` schedule that replays ``counts`` on its own grid."""
    return Table.from_counts(counts)


def exact_grid_study(
    den: ExactDenoiser,
    sampler: str,
    steps: int,
    a_values: Iterable[float] = DEFAULT_GRID,
    b_values: Iterable[float] = DEFAULT_GRID,
    progress: "Callable[..., Iterable] | None" = None,
    workers: int = 1,
) -> dict:
    """Everything ``mdm-energy exact-grid`` reports: the Beta grid and its best point, the hand-crafted
    baselines, the true optimum and the information-curve schedule, all as KL(q ‖ law) in nats."""
    obj = KLObjective(den, sampler, steps)
    grid = beta_grid(obj, a_values, b_values, progress, workers)
    best = min(grid, key=lambda g: (g.kl, g.a, g.b))
    baselines = {name: obj(name) for name in BASELINES}
    Z = den.information_curve()
    ic_counts, ic_bound = infocurve_counts(Z, steps)
    ic_kl = obj(counts_schedule(ic_counts))
    if obj.fixed:
        starts = [ic_counts, obj.counts(Beta(best.a, best.b))] + [obj.counts(b) for b in BASELINES]
        opt_counts, opt_kl, method = optimal_counts(obj, starts)
        optimum = {"kl": opt_kl, "counts": opt_counts, "method": method}
    else:
        starts = [Beta(best.a, best.b), counts_schedule(ic_counts), *BASELINES]
        alpha, opt_kl = optimal_reveal(obj, [reveal_probabilities(s, steps, sampler) for s in starts])
        optimum = {"kl": opt_kl, "alpha": alpha, "method": "nelder-mead"}
    return {
        "grid": [{"a": g.a, "b": g.b, "kl": g.kl} for g in grid],
        "best": {"a": best.a, "b": best.b, "kl": best.kl},
        "baselines": baselines,
        "optimum": optimum,
        "infocurve": {"kl": ic_kl, "counts": ic_counts, "bound": ic_bound},
        "evaluations": obj.evaluations,
    }
