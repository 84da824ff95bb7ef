r"""Schedule search on the exact KL: the memoised objective, the true optimum and the information-curve schedule.

* :class:`KLObjective` — the exact KL of a schedule, memoised: fixed-count samplers only see the
  per-step counts, so schedules with equal counts are evaluated once. Beta grids over it run through
  the tuner's one grid runner (:mod:`mdm_energy.tuning.exact_grid`).
* :func:`optimal_counts` — for fixed-count samplers the best composition of :math:`n` into :math:`N`
  parts (zeros allowed): exhaustive where there are at most ``max_exhaustive`` compositions, else a
  local search that moves one token between two steps while that helps.
* :func:`optimal_reveal` — for ancestral and Euler samplers the best per-step reveal probabilities
  :math:`\pi_1..\pi_{N-1}` (:math:`\pi_N = 1`) by continuous optimisation from several starts; the
  two samplers reach the same set of :math:`\pi` vectors, so they share this optimum. It is reported
  as the :math:`\alpha` grid :math:`\alpha_k = 1 - \prod_{j \le k}(1 - \pi_j)`.
* :func:`infocurve_counts` — the schedule minimising the information-curve bound (docs/design.md §5)
  :math:`B(c) = \sum_m \sum_{j=c_{m-1}+1}^{c_m} (Z_j - Z_{c_{m-1}+1})` by dynamic programming over
  cumulative counts. For the fixed-count random sampler :math:`B` is the expected KL of a random
  ordering, an upper bound on the exact KL.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import optimize

from ..dilation import dilated_order, order_groups
from ..registry import sampler_spec
from ..reveal import reveal_probabilities
from ..schedules import Schedule, Table, parse_schedule
from .denoiser import ExactDenoiser
from ..revision import RevisionPlan
from .laws import (check_confidence_size, exact_options, kl_divergence, law_fixed_count, law_fixed_order,
                   law_independent)
from .prophet import law_prophet, prophet_options
from .revision import law_remdm, remdm_plan

__all__ = [
    "KLObjective",
    "Optimum",
    "InfoCurveSchedule",
    "compositions",
    "optimal_counts",
    "optimal_reveal",
    "true_optimum",
    "infocurve_bound",
    "infocurve_counts",
    "infocurve_counts_shared",
    "counts_schedule",
]


class KLObjective:
    """KL(q ‖ law) of one sampler on one law for ``steps`` steps, with memoisation.

    Fixed-count samplers are memoised by their counts (every schedule with the same counts has the
    same law; Prophet's by all its counts, zeros included: a zero-count step still tests the gap), the others
    by their reveal probabilities, ReMDM (the ``remdm`` law) by its plan — the mask
    levels and remasking probabilities of every step, from the schedule and ``options`` (``sigma``, ``eta``,
    ``revise_from``, ``loop_*``; :func:`mdm_energy.revision.revision_plan`). ``remasking`` is the fixed-count
    sampler's rule (default, as everywhere, ``low_confidence``).
    """

    def __init__(self, den: ExactDenoiser, sampler: str, steps: int, remasking: "str | None" = None,
                 options: "Mapping[str, Any] | None" = None) -> None:
        opts = exact_options(sampler, "linear", steps, remasking, options)
        self.den, self.sampler, self.steps = den, sampler, int(steps)
        self.remasking: "str | None" = opts.get("remasking")
        self.law = sampler_spec(sampler).exact_law  # fixed-count, the reveal rule of independent reveals, or remdm
        self.fixed = self.law in ("fixed-count", "fixed-order", "prophet")  # laws of the per-step counts
        self.options = {k: opts[k] for k in (options or {})}
        self._opts = opts
        if self.law == "remdm":
            remdm_plan(opts, den.n)  # a bad eta or loop phases: refused now, not at the first schedule
        if self.remasking not in (None, "random"):
            check_confidence_size(den)
        self._cache: dict[tuple, float] = {}
        self.evaluations = 0

    def of_plan(self, plan: RevisionPlan) -> float:
        """KL of ReMDM with ``plan`` (memoised by its mask levels and remasking probabilities)."""
        key = ("remdm", tuple(plan.alpha.tolist()), tuple(plan.sigma.tolist()))
        if key not in self._cache:
            self.evaluations += 1
            self._cache[key] = kl_divergence(self.den.q, law_remdm(self.den, plan)[0])
        return self._cache[key]

    def of_counts(self, counts: Sequence[int]) -> float:
        if self.law == "prophet":  # a zero-count step still tests the gap, at its own number: keep every step
            key: tuple = ("prophet",) + tuple(int(c) for c in counts)
        else:
            key = tuple(int(c) for c in counts if c)  # steps that reveal nothing do not change the law
        if key not in self._cache:
            self.evaluations += 1
            if self.law == "prophet":
                law = law_prophet(self.den, key[1:], **prophet_options(self._opts))[0]
            elif self.law == "fixed-order":  # DUS's dilated order cut by the counts
                order = dilated_order(self.den.n, self._opts["dilation"], self._opts["dilation_skip"])
                law = law_fixed_order(self.den, order_groups(order, list(key)))
            else:
                law = law_fixed_count(self.den, key, self.remasking)
            self._cache[key] = kl_divergence(self.den.q, law)
        return self._cache[key]

    def of_reveal(self, pis: Sequence[float]) -> float:
        key = tuple(float(p) for p in pis)
        if key not in self._cache:
            self.evaluations += 1
            self._cache[key] = kl_divergence(self.den.q, law_independent(self.den, key))
        return self._cache[key]

    def counts(self, schedule: "Schedule | str") -> list[int]:
        return parse_schedule(schedule).counts(self.den.n, self.steps).tolist()

    def reveal(self, schedule: "Schedule | str") -> list[float]:
        return reveal_probabilities(schedule, self.steps, self.law).tolist()

    def __call__(self, schedule: "Schedule | str") -> float:
        s = parse_schedule(schedule)
        if self.law == "remdm":
            return self.of_plan(remdm_plan({**self._opts, "schedule": s}, self.den.n))
        return self.of_counts(self.counts(s)) if self.fixed else self.of_reveal(self.reveal(s))


@dataclass(frozen=True)
class Optimum:
    """The best schedule the exact engine found: per-step ``counts`` (fixed-count samplers) or the
    :math:`\alpha` grid :math:`\alpha_1..\alpha_N` (ancestral/Euler), its KL and how it was found
    (``exhaustive``, ``local``, ``brent`` or ``nelder-mead``)."""

    kl: float
    method: str
    counts: "list[int] | None" = None
    alpha: "list[float] | None" = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class InfoCurveSchedule:
    """The counts that minimise the information-curve bound, the bound, and (once scored) their exact KL."""

    counts: list[int]
    bound: float
    kl: "float | None" = None

    def as_json(self) -> dict[str, Any]:
        return {"kl": self.kl, "counts": self.counts, "bound": self.bound}


def compositions(total: int, parts: int) -> Iterable[tuple[int, ...]]:
    """Every way to write ``total`` as an ordered sum of ``parts`` non-negative integers."""
    for bars in itertools.combinations(range(total + parts - 1), parts - 1):
        prev, out = -1, []
        for b in bars + (total + parts - 1,):
            out.append(b - prev - 1)
            prev = b
        yield tuple(out)


def optimal_counts(objective: KLObjective, starts: Sequence[Sequence[int]] = (), max_exhaustive: int = 5000) -> Optimum:
    """The best counts for a fixed-count sampler, found ``exhaustive``-ly or by ``local`` search."""
    n, N = objective.den.n, objective.steps
    if math.comb(n + N - 1, N - 1) <= max_exhaustive:
        best = min(compositions(n, N), key=lambda c: (objective.of_counts(c), c))
        return Optimum(objective.of_counts(best), "exhaustive", counts=list(best))
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
    return Optimum(objective.of_counts(best), "local", counts=list(best))


def _alpha_from_reveal(pis: Sequence[float]) -> list[float]:
    return (1.0 - np.cumprod(1.0 - np.asarray(pis, dtype=np.float64))).tolist()


def optimal_reveal(objective: KLObjective, starts: Sequence[Sequence[float]] = (), evals_per_dim: int = 30) -> Optimum:
    r"""The best reveal probabilities for ancestral/Euler, reported as the :math:`\alpha` grid (alpha_N = 1).

    For ``N = 2`` a bounded Brent search over :math:`\pi_1` (method ``brent``, exact to 1e-9). Otherwise
    Nelder–Mead on the logits of :math:`\pi_1..\pi_{N-1}`, started from the best of ``starts`` (each a
    reveal-probability vector; the linear schedule's is always among them), with a budget of
    ``evals_per_dim * (N - 1)`` KL evaluations. The result is never worse than the best start.
    """
    N = objective.steps
    if N == 1:
        return Optimum(objective.of_reveal([1.0]), "nelder-mead", alpha=[1.0])
    if N == 2:  # one free probability: a bounded Brent search is exact to xatol, where Nelder-Mead stops early
        res = optimize.minimize_scalar(lambda p: objective.of_reveal([float(p), 1.0]), bounds=(0.0, 1.0), method="bounded",
                                       options={"xatol": 1e-9})
        best = min([float(res.x), 0.0, 1.0] + [float(s[0]) for s in starts], key=lambda p: objective.of_reveal([p, 1.0]))
        return Optimum(objective.of_reveal([best, 1.0]), "brent", alpha=_alpha_from_reveal([best, 1.0]))
    eps = 1e-9

    def to_pis(z: np.ndarray) -> list[float]:
        return [float(v) for v in 1.0 / (1.0 + np.exp(-z))] + [1.0]

    def f(z: np.ndarray) -> float:
        return objective.of_reveal(to_pis(z))

    inits = [np.clip(np.asarray(s, dtype=np.float64)[: N - 1], eps, 1 - eps) for s in starts]
    inits.append(1.0 / (N - np.arange(N - 1)))  # linear
    z0 = min((np.log(p / (1 - p)) for p in inits), key=f)
    res = optimize.minimize(f, z0, method="Nelder-Mead",
                            options={"maxfev": evals_per_dim * (N - 1), "xatol": 1e-4, "fatol": 1e-10})
    best_z = res.x if res.fun <= f(z0) else z0
    return Optimum(f(best_z), "nelder-mead", alpha=_alpha_from_reveal(to_pis(best_z)))


def true_optimum(objective: KLObjective, starts: Iterable["Schedule | str | Sequence[int]"] = ()) -> Optimum:
    """The sampler's best schedule: :func:`optimal_counts` for fixed-count samplers, :func:`optimal_reveal`
    otherwise, started from ``starts`` (schedules, or count vectors for fixed-count samplers)."""
    if objective.law == "remdm":  # its law depends on the remasking probabilities too, not on counts or reveals alone
        raise ValueError(f"the true optimum is over count vectors or reveal probabilities; the {objective.sampler} "
                         "sampler's law is not a function of either (tune its schedule with a grid or TPE instead)")
    starts = list(starts)
    if objective.fixed:
        vecs = [list(s) if not isinstance(s, (str, Schedule)) else objective.counts(s) for s in starts]
        return optimal_counts(objective, vecs)
    return optimal_reveal(objective, [objective.reveal(s) for s in starts if isinstance(s, (str, Schedule))])


def infocurve_bound(Z: np.ndarray, counts: Sequence[int], weights: "Sequence[float] | None" = None) -> float:
    r"""The information-curve bound of docs/design.md §5 for per-step ``counts`` (Z[j-1] = Z_j).

    With ``weights`` :math:`w_j \ge 0` (one per position), each position's term is weighted:
    :math:`\sum_m \sum_{j=c_{m-1}}^{c_m-1} w_j (Z_{j+1} - Z_{c_{m-1}+1})` — the pooled bound of rows of which
    only a share :math:`w_j` still has a ``j``-th token to commit (a block-causal model's first block, whose
    first positions hold the prompt's tail: :func:`~mdm_energy.profile.profile_schedule`); ``None`` is
    :math:`w \equiv 1`."""
    total, c_prev = 0.0, 0
    w = None if weights is None else _checked_weights(weights, len(Z))
    for c in counts:
        c_next = c_prev + int(c)
        if c_next > c_prev:
            if w is None:
                total += float(np.sum(Z[c_prev:c_next]) - (c_next - c_prev) * Z[c_prev])
            else:
                total += float(np.sum(w[c_prev:c_next] * (np.asarray(Z[c_prev:c_next]) - Z[c_prev])))
        c_prev = c_next
    return total


#: Bounds this close (relative) count as equal, so round-off cannot decide between counts that tie exactly.
BOUND_TIE_RTOL = 1e-12


def _checked_weights(weights: Sequence[float], n: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any():
        raise ValueError(f"weights must be {n} finite values >= 0, one per position")
    return w


def _step_costs(Z: np.ndarray, weights: "Sequence[float] | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """``(cost, size)``, both ``(n + 1, n + 1)``: ``cost[a, b]`` the bound of one step that takes the cumulative
    count from ``a`` to ``b`` (``a <= b``; ``inf`` below the diagonal) and ``size[a, b]`` its squared (weighted)
    number of tokens, the tie-break of :func:`infocurve_counts`."""
    n = len(Z)
    Z = np.asarray(Z, dtype=np.float64)
    a_idx, b_idx = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
    Za = np.append(Z, 0.0)[:, None]  # Z[a]; the row a = n only ever pairs with b = n (cost 0)
    if weights is None:
        csum = np.concatenate([[0.0], np.cumsum(Z)])
        cost = np.where(b_idx >= a_idx, csum[None, :] - csum[:, None] - (b_idx - a_idx) * Za, np.inf)
        size = np.where(b_idx >= a_idx, (b_idx - a_idx) ** 2, 0).astype(np.float64)
        return cost, size
    w = _checked_weights(weights, n)
    cw, cwz = np.concatenate([[0.0], np.cumsum(w)]), np.concatenate([[0.0], np.cumsum(w * Z)])
    cost = np.where(b_idx >= a_idx, cwz[None, :] - cwz[:, None] - (cw[None, :] - cw[:, None]) * Za, np.inf)
    size = np.where(b_idx >= a_idx, (cw[None, :] - cw[:, None]) ** 2, 0.0)
    return cost, size


def _counts_from_costs(cost: np.ndarray, size: np.ndarray, steps: int) -> InfoCurveSchedule:
    """The dynamic programme of :func:`infocurve_counts` over step costs (:func:`_step_costs`, or a sum of them)."""
    n = cost.shape[0] - 1
    cost = cost.copy()
    cost[np.arange(n + 1), np.arange(n + 1)] = 0.0 if steps > n else np.inf  # empty steps only when unavoidable
    V = np.full((steps + 1, n + 1), math.inf)
    W = np.full((steps + 1, n + 1), math.inf)
    arg = np.zeros((steps + 1, n + 1), dtype=np.int64)
    V[0, 0], W[0, 0] = 0.0, 0.0
    cols = np.arange(n + 1)
    for m in range(1, steps + 1):
        total = V[m - 1][:, None] + cost  # (a, b)
        best = total.min(axis=0)
        tied = total <= best + BOUND_TIE_RTOL * np.maximum(1.0, np.abs(best))
        second = np.where(tied, W[m - 1][:, None] + size, math.inf)
        arg[m] = np.argmin(second, axis=0)  # first minimum: the smallest a among the evenest
        V[m], W[m] = total[arg[m], cols], second[arg[m], cols]
    cum = [n]
    for m in range(steps, 0, -1):
        cum.append(int(arg[m, cum[-1]]))
    cum = cum[::-1]
    return InfoCurveSchedule([b - a for a, b in zip(cum, cum[1:])], float(V[steps, n]))


def infocurve_counts(Z: np.ndarray, steps: int, weights: "Sequence[float] | None" = None) -> InfoCurveSchedule:
    r"""Counts minimising :func:`infocurve_bound` over ``steps`` steps (dynamic programme over cumulative counts).

    **No empty step when** ``steps <= n``: every step commits at least one token. Nothing is lost by it:
    splitting a step that takes the cumulative count from :math:`a` to :math:`b` at :math:`m` changes the
    bound by :math:`(b-m)(Z_{a+1} - Z_{m+1}) \le 0` on a non-decreasing curve (every information curve is:
    more context, more information; an estimated profile is made monotone before it gets here), so some
    best composition has no empty step — and an empty step is a model call that unmasks nothing. With
    ``steps > n`` some steps must be empty and are allowed.

    **Ties** (a flat curve makes every composition's bound equal, to :data:`BOUND_TIE_RTOL`) go to the most
    even counts (least :math:`\sum_k c_k^2`), then to the smaller earlier cumulative counts — a curve with no
    information to use gives the linear schedule, not one that front-loads every token.

    With ``weights`` (:func:`infocurve_bound`'s) the weighted bound is minimised and "even" means even in
    weighted tokens (least :math:`\sum_k (\sum_{j \in \text{step } k} w_j)^2`), so positions of weight 0 —
    tokens no row has — join a step of real tokens rather than take a step of their own while real tokens
    share one (splitting still never raises the weighted bound: the change is
    :math:`(\sum_{j=m}^{b-1} w_j)(Z_{a+1} - Z_{m+1}) \le 0`).
    """
    cost, size = _step_costs(Z, weights)
    return _counts_from_costs(cost, size, steps)


def infocurve_counts_shared(curves: Sequence[np.ndarray], steps: int,
                            weights: "Sequence[Sequence[float]] | None" = None) -> InfoCurveSchedule:
    """One count vector for several curves of the same length (the blocks of a run, all replaying the same
    counts) minimising the sum of their bounds (:func:`infocurve_bound`, each with its own ``weights``);
    ties as in :func:`infocurve_counts`, on the summed sizes."""
    weights = [None] * len(curves) if weights is None else list(weights)
    if not curves or len(weights) != len(curves) or len({len(Z) for Z in curves}) != 1:
        raise ValueError("give one or more curves of the same length, and one weight vector per curve")
    parts = [_step_costs(Z, w) for Z, w in zip(curves, weights)]
    return _counts_from_costs(sum(c for c, _ in parts), sum(s for _, s in parts), steps)


def counts_schedule(counts: Sequence[int]) -> Table:
    """The ``table:`` schedule that replays ``counts`` on its own grid."""
    return Table.from_counts(counts)
