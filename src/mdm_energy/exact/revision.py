r"""Exact output law of ReMDM (reveal and re-mask) on an explicit law, and its expected number of model calls.

The chain runs over the states :math:`\{0..d-1, M\}^n` (``M`` = index ``d``), from all-masked. Step
:math:`k = 1..N` of a :class:`~mdm_energy.revision.RevisionPlan` (mask levels :math:`\alpha_{k-1}, \alpha_k`,
remasking probability :math:`\sigma_k`) moves every position independently given the state :math:`x`
before the step, with :math:`U` its unmasked positions:

* a **masked** position :math:`i` becomes :math:`v` with probability :math:`c_k\,q(x_i = v \mid x_U)` — the
  exact posterior given the values *before* the step, so a token re-masked in the same step still
  conditions it — and stays ``M`` with probability :math:`1 - c_k`, where
  :math:`c_k = (\alpha_k - (1-\sigma_k)\alpha_{k-1})/(1-\alpha_{k-1})` (:meth:`RevisionPlan.reveal`: clipped
  to [0, 1], 1 when :math:`\alpha_{k-1} = 1`);
* an **unmasked** position becomes ``M`` with probability :math:`\sigma_k` and keeps its value otherwise.

With :math:`\sigma_k = 0` throughout this is :func:`~mdm_energy.exact.law_independent` with
:math:`\pi_k = c_k`. The plan ends with :math:`\alpha_N = 1`, :math:`\sigma_N = 0`, so nothing is masked
after step :math:`N`. A step makes a model call iff it reveals at least one position (the torch sampler
skips the call of a step that reveals nothing), so

.. math:: \mathbb E[\text{calls}] = \sum_k \sum_x P_{k-1}(x)\,\bigl(1 - (1 - c_k)^{\#M(x)}\bigr)

(a state with no masked position makes no call). This is the law of the ``remdm`` torch sampler at
temperature 1 over one block, for the rules with one :math:`\sigma_k` per step (``cap``, ``rescale``,
``loop``); ``conf`` spreads :math:`\sigma` by each token's commit-time confidence and has no law here.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..limits import check_memory, check_time
from ..revision import RevisionPlan, revision_plan
from .denoiser import ExactDenoiser

__all__ = ["law_remdm", "remdm_plan"]

#: Mass left on partly masked states after the last step above this is an internal error.
LEFT_MASKED_TOL = 1e-12


def _reveal(J: np.ndarray, den: ExactDenoiser, S: int, free: list[int], c: float) -> np.ndarray:
    """Extend J (values on S, ``M`` on ``free``) over the masked positions: value with c·q(x_i | x_S), M with 1-c."""
    if c == 0.0 or not free:
        return J
    if c == 1.0:
        for i in free:
            J = J * den.conditional(S, i)
        return J
    keep = (1.0 - c) ** len(free)
    if keep > 1e-250:  # c^|A| (1-c)^(m-|A|) = (1-c)^m r^|A|: scale the small array once, not every axis
        J, r, stay = J * keep, c / (1.0 - c), 1.0
    else:  # (1-c)^m would underflow: weigh every axis
        r, stay = c, 1.0 - c
    for i in free:
        cond = den.conditional(S, i)  # given x_S, the state before the step
        J = np.concatenate([J * (r * cond), J if stay == 1.0 else J * stay], axis=i)
    return J


def remdm_plan(opts: Mapping[str, Any], length: int) -> RevisionPlan:
    """The plan of the ``remdm`` sampler's validated options ``opts`` (:func:`mdm_energy.exact.exact_options`)
    over one block of ``length`` positions (which picks the authors' default η when ``eta`` is ``None``)."""
    return revision_plan(opts["schedule"], int(opts["steps"]), opts["sigma"], opts["eta"],
                         revise_from=opts["revise_from"], loop_start=opts["loop_start"], loop_end=opts["loop_end"],
                         loop_alpha=opts["loop_alpha"], length=length)


def law_remdm(den: ExactDenoiser, plan: RevisionPlan) -> tuple[np.ndarray, float]:
    r"""The exact output law (shape ``(d,)*n``) of ReMDM with ``plan`` on ``den`` and its expected model calls.

    See the module docstring for the chain. The state is one array over :math:`\{0..d-1, M\}^n`; each
    step takes, for every unmasked set :math:`S`, the slice over values on :math:`S` and ``M`` elsewhere and
    extends the masked axes into {value with :math:`c_k q(\cdot \mid x_S)`, ``M`` with :math:`1-c_k`}
    (:math:`q` given the state before the step, as :func:`~mdm_energy.exact.law_independent` does). A
    revising step writes these into a *tagged* array with :math:`2d+1` symbols per position (old value,
    new value, ``M``; the regions of different :math:`S` are disjoint), then, axis by axis, sends each old value to ``M`` with
    probability :math:`\sigma_k` and merges old and new values — so a token revealed in this step is never
    re-masked in it, and every reveal was conditioned on the state before the step. Work per step:
    :math:`O((3d+1)^n)` for the reveals and :math:`O(n (2d+1)^n)` for the re-masking; memory
    :math:`O((2d+1)^n)`. Raises ``ValueError`` for a ``conf`` plan, a plan of
    the wrong shape, or a computation estimated to take too long or too much memory; ``RuntimeError`` if mass is left on
    masked states after the last step.
    """
    if plan.rule == "conf":
        raise ValueError("the exact engine has no law for sigma='conf' (its state would hold every token's "
                         "commit-time confidence); use cap, rescale or loop")
    alpha, sigma = np.asarray(plan.alpha, dtype=np.float64), np.asarray(plan.sigma, dtype=np.float64)
    N = int(sigma.shape[0])
    if N < 1 or alpha.shape != (N + 1,) or sigma.ndim != 1:
        raise ValueError(f"a plan needs N >= 1 sigmas and N + 1 alphas, got {alpha.shape[0]} alphas and {N} sigmas")
    if not (np.all(np.isfinite(sigma)) and np.all((sigma >= 0.0) & (sigma <= 1.0))):
        raise ValueError(f"sigma must lie in [0, 1] at every step, got {sigma[:8].tolist()}")
    n, d = den.n, den.d
    steps = [(float(plan.reveal(k)), float(sigma[k - 1])) for k in range(1, N + 1)]
    active = sum(1 for c, s in steps if c > 0.0 or s > 0.0)
    revising = sum(1 for _, s in steps if s > 0.0)
    what = f"the exact ReMDM law of n={n} tokens over d={d} values ({(d + 1) ** n:,} states)"
    if revising:  # the tagged array, and the concatenations that fold it back
        check_memory(3 * 8 * (2 * d + 1) ** n, what + f" with {(2 * d + 1) ** n:,} tagged states")
    # per step: 2^n unmasked sets with ~n+1 numpy calls each (~4 us apiece) and (3d+1)^n elements in all, as
    # law_independent; a revising step also folds (2d+1)^n tagged elements over n axes (~1.5 ns apiece)
    check_time(active * (2**n * (n + 1) * 4e-6 + (3 * d + 1) ** n * 3.5e-10)
               + revising * n * (2 * d + 1) ** n * 1.5e-9, what + f" over {active:,} steps")
    F = np.zeros((d + 1,) * n)
    F[(d,) * n] = 1.0  # all masked
    calls = 0.0
    for c, s in steps:
        if c == 0.0 and s == 0.0:  # nothing moves; and a step that reveals nothing makes no call
            continue
        # The step's outcome, before re-masking: per axis, the old value (0..d-1), or for a position masked
        # before the step a new value (d..2d-1) or M (2d). Without re-masking old and new values are one.
        width = d if s == 0.0 else 2 * d
        new_at = {0.0: slice(width, width + 1), 1.0: slice(width - d, width)}.get(c, slice(width - d, width + 1))
        G = np.zeros((width + 1,) * n)
        for S in range(den.full + 1):
            J = F[tuple(slice(0, d) if S >> i & 1 else slice(d, d + 1) for i in range(n))]
            mass = float(J.sum())
            if mass == 0.0:
                continue
            free = [i for i in range(n) if not S >> i & 1]
            if free:  # P(the step reveals at least one of the masked positions)
                calls += mass * (1.0 if c == 1.0 else -np.expm1(len(free) * np.log1p(-c)))
            # with re-masking the regions of different S are disjoint (old values exactly on S)
            G[tuple(slice(0, d) if S >> i & 1 else new_at for i in range(n))] += _reveal(J, den, S, free, c)
        if s > 0.0:  # re-mask every old value with probability s, then merge old and new values
            for i in range(n):
                part = [(slice(None),) * i + (slice(a, b),) for a, b in ((0, d), (d, 2 * d), (2 * d, 2 * d + 1))]
                old, new, masked = (G[p] for p in part)
                G = np.concatenate([(1.0 - s) * old + new, masked + s * old.sum(axis=i, keepdims=True)], axis=i)
        F = G
    law = F[(slice(0, d),) * n]
    left = float(F.sum()) - float(law.sum())
    if left > LEFT_MASKED_TOL:
        raise RuntimeError(f"the ReMDM plan left mass {left:.3g} on masked states after its last step "
                           f"(alpha_N = {alpha[-1]!r}, sigma_N = {sigma[-1]!r})")
    return law.copy(), float(calls)
