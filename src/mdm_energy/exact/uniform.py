r"""The exact output law of the uniform-noise fixed-count rule (DiffusionGemma-style decoding) on an explicit law.

The torch loop is :mod:`mdm_energy.sampling.uniform`; here it runs on a law :math:`p` over :math:`d^n` sequences
with the exact denoiser of the *uniform* forward process: a canvas :math:`y` at noise level :math:`\alpha` keeps each
position of :math:`x \sim p` with probability :math:`\alpha` and replaces it by a uniform token otherwise,

.. math:: q_\alpha(y \mid x) = \prod_i \big(\alpha\,[y_i = x_i] + (1 - \alpha)/d\big), \qquad
          \pi_i(v \mid y) \propto \sum_{x:\,x_i = v} p(x)\,q_\alpha(y \mid x).

At step :math:`k` of :math:`N` the canvas holds :math:`C_{k-1}` accepted positions of :math:`n`, so the denoiser is
told :math:`\alpha_k = C_{k-1}/n` (step 1 sees pure noise and returns :math:`p`'s marginals). The rule accepts the
:math:`C_k` lowest-entropy positions of :math:`\pi(\cdot \mid y)` (ties to the lower position), draws each from
its marginal independently and renoises the others uniformly, so the canvas is a Markov chain on :math:`d^n` states
with the product kernel

.. math:: T_k(y, y') = \prod_{i \in A_k(y)} \pi_i(y'_i \mid y) \prod_{i \notin A_k(y)} \frac1d ,

started from the uniform law. The output is the canvas after step :math:`N` (``output="sample"``: as
:math:`C_N = n`, every position drawn from its marginal given the step-:math:`N` canvas) or the argmax of those
marginals (``output="argmax"``, what DiffusionGemma emits). No temperature, no self-conditioning (the exact
denoiser has no use for it), one canvas.

**What the exact KL shows.** The sampled output is a mixture, over the canvases entering step :math:`N`, of
*product* laws (every position drawn independently given a noisy canvas), so :math:`\mathrm{KL}(p \Vert \cdot)`
does not go to 0 as :math:`N` grows, and need not even fall: on ``markov:4,3,0`` with ``linear`` it is 0.48,
0.22, 0.10, 0.11, 0.17 nats at :math:`N` = 1, 2, 4, 8, 16 (``beta:0.9,0.3``: 0.48, 0.48, 0.37, 0.21, 0.10).
More steps than positions leave the last calls at :math:`\alpha = 1`, where the denoiser copies the canvas,
so the effective last draw moves earlier. The masked theory's proportionality — the KL a sum over steps
weighted by the counts, shrinking with :math:`N` — has no counterpart: the schedule acts only through the
noise level of the canvases the denoiser sees. The argmax output is a deterministic function of the
step-:math:`N` canvas; while :math:`C_{N-1} < n` it misses most of a full-support law (infinite KL), and once
:math:`C_{N-1} = n` it equals the sampled output.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..schedules import Schedule, single_schedule
from .distributions import ExplicitDistribution
from .laws import CONFIDENCE_TIE_DECIMALS

__all__ = ["UNIFORM_OUTPUTS", "uniform_marginals", "law_uniform_fixed_count"]

#: What the uniform-noise decoder emits: the last draw, or the argmax of the last marginals (DiffusionGemma).
UNIFORM_OUTPUTS = ("sample", "argmax")


def _states(n: int, d: int) -> np.ndarray:
    return np.array(list(itertools.product(range(d), repeat=n)), dtype=np.int64).reshape(-1, n)


def _at(marg: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``(y, y', i)``: the marginal ``marg[y, i]`` at the token ``grid[y', i]``."""
    return marg[:, np.arange(grid.shape[1])[None, :], grid]


def uniform_marginals(dist: ExplicitDistribution, alpha: float) -> np.ndarray:
    r""":math:`\pi_i(v \mid y)` for every canvas ``y`` (row-major index), shape ``(d^n, n, d)``, at noise level
    ``alpha`` (the probability a canvas position is the clean token)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    n, d = dist.n, dist.d
    grid = _states(n, d)
    same = grid[:, None, :] == grid[None, :, :]  # (y, x, i)
    q = np.prod(np.where(same, alpha + (1 - alpha) / d, (1 - alpha) / d), axis=-1)  # q(y | x)
    w = q * dist.flat()[None, :]
    onehot = np.eye(d)[grid]  # (x, i, v)
    marg = np.einsum("yx,xiv->yiv", w, onehot)
    return marg / marg.sum(-1, keepdims=True)


def law_uniform_fixed_count(dist: ExplicitDistribution, schedule: "Schedule | str", steps: int,
                            output: str = "sample") -> np.ndarray:
    """The exact law (shape ``(d,)*n``) of the uniform-noise fixed-count rule with ``schedule`` over ``steps``
    (see the module docstring)."""
    if output not in UNIFORM_OUTPUTS:
        raise ValueError(f"unknown output {output!r} (known: {', '.join(UNIFORM_OUTPUTS)})")
    n, d = dist.n, dist.d
    cumulative = np.cumsum(single_schedule(schedule, "the uniform-noise exact law").counts(n, steps))
    grid = _states(n, d)
    law = np.full(len(grid), 1.0 / len(grid))  # the canvas: uniform noise
    for k in range(1, steps + 1):
        before = int(cumulative[k - 2]) if k > 1 else 0
        marg = uniform_marginals(dist, before / n)
        if k == steps:
            break
        entropy = -np.sum(np.where(marg > 0, marg * np.log(np.where(marg > 0, marg, 1.0)), 0.0), axis=-1)
        order = np.argsort(np.round(entropy, CONFIDENCE_TIE_DECIMALS), axis=-1, kind="stable")
        accepted = np.zeros((len(grid), n), dtype=bool)
        np.put_along_axis(accepted, order[:, :int(cumulative[k - 1])], True, axis=-1)
        kernel = np.where(accepted[:, None, :], _at(marg, grid), 1.0 / d)  # (y, y', i)
        law = law @ np.prod(kernel, axis=-1)  # T[y, y'] = prod_i (pi_i(y'_i | y) if accepted, else 1/d)
    if output == "sample":
        out = law @ np.prod(_at(marg, grid), axis=-1)
    else:
        best = np.ravel_multi_index(tuple(marg.argmax(-1).T), (d,) * n)
        out = np.bincount(best, weights=law, minlength=len(grid))
    return out.reshape((d,) * n)
