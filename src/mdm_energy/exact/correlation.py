r"""Schedules from a law's total and dual total correlation (Chen, Cong & Li), and randomised step sizes (Zhao & Cai).

**The information-curve view** (docs/design.md §5). With :math:`Z_j = \mathbb E\, I(X_i; X_S)`, :math:`|S| = j-1`,
the chain rule in a uniformly random order gives

.. math:: \mathrm{TC} = \sum_i H(X_i) - H(X) = \sum_{j=1}^n Z_j, \qquad
          \mathrm{DTC} = H(X) - \sum_i H(X_i \mid X_{-i}) = n Z_n - \sum_{j=1}^n Z_j,

the area under the curve and the area above it (below :math:`Z_n`). Chen, Cong & Li ("Optimal inference
schedules for masked diffusion models", COLT 2026, arXiv 2511.04647) show that the expected KL of the
random-order fixed-count sampler is exactly the left-Riemann error of :math:`Z` on the schedule's cumulative
counts — our :func:`~mdm_energy.exact.infocurve_bound` — and that the best schedule follows by dynamic
programming over the counts: our :func:`~mdm_energy.exact.infocurve_counts` is that DP (ours breaks ties toward
even counts and never returns an empty step when :math:`N \le n`; on real models it runs on an estimated
profile, :mod:`mdm_energy.profile`, where the paper shows that no schedule can compete without such knowledge).
Without the curve, a step from :math:`a` to :math:`b` costs at most :math:`(b-a)(Z_b - Z_{a+1})` (:math:`Z` is
non-decreasing). Summing by parts over sizes that change by a constant factor :math:`g = (n+1)^{1/N}` bounds a
whole schedule by the area under the curve or the area above it — hence two curve-free schedules:

* :func:`tc_counts` — each step reveals a fixed share of the *still masked* tokens (sizes shrink
  geometrically): the cumulative count after step :math:`m` is :math:`C_m` with :math:`n + 1 - C_m = (n+1)^{1 - m/N}`; bound :math:`\le (g - 1)(\mathrm{TC} + Z_n)`;
* :func:`dtc_counts` — each step reveals a fixed share of the tokens *already revealed* (+1; sizes grow
  geometrically): :math:`C_m + 1 = (n+1)^{m/N}`; bound :math:`\le (g - 1)(\mathrm{DTC} + Z_n)`;
* :func:`correlation_counts` — the one of the two whose correlation is the smaller, TC and DTC computed exactly
  from the law (:func:`total_correlation`, :func:`dual_total_correlation`).

Here :math:`g - 1 \approx \log(n+1)/N` and :math:`Z_n = (\mathrm{TC} + \mathrm{DTC})/n` (derived for real cut
points; tests/test_schedule_baselines.py checks it on the rounded counts of several laws at every N).

The paper's text was not available here (only its abstract and summaries, which name schedules in terms of TC
and DTC and :math:`O(\log n)` steps for low-correlation laws); these two rules are derived here from the bounds
above, not taken from the paper, whose constants and exact rules may differ.

**Randomised step sizes** (Zhao & Cai, "Adaptation to intrinsic dependence in diffusion language models",
arXiv 2602.20126: the number of tokens revealed per step is random; two parameter choices give KL
:math:`\tilde O(\mathrm{TC}/K)` and :math:`\tilde O(\mathrm{DTC}/K)`). Their text was not available here either:
:func:`randomised_counts` implements our reading, the TC or DTC grid shifted by one uniform offset
:math:`u \sim U[0, 1)` on its own scale (cut :math:`m` at :math:`(m-u)/N`), so every run draws its step sizes
while no step's position on the curve is fixed in advance. The sampler's law is then the mixture
:math:`\sum_c P(c)\,\mathrm{law}(c)` over the finitely many count vectors the offset reaches, computed exactly
by :func:`law_randomised`. Cuts that round to the same count are pushed apart as in the deterministic grids
(ours: no draw spends a call that commits nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .denoiser import ExactDenoiser

__all__ = ["SCALES", "total_correlation", "dual_total_correlation", "scale_counts", "tc_counts", "dtc_counts",
           "correlation_counts", "curve_correlations", "curve_correlation_counts", "RandomisedCounts", "randomised_counts", "law_randomised"]

#: The scales a grid is uniform on: ``tc`` (shrinking sizes), ``dtc`` (growing sizes), ``linear``.
SCALES = ("tc", "dtc", "linear")


def total_correlation(den: ExactDenoiser) -> float:
    r""":math:`\mathrm{TC} = \sum_i H(X_i) - H(X)` in nats, from the law's entropies."""
    return max(sum(den.entropy(1 << i) for i in range(den.n)) - den.entropy(den.full), 0.0)


def dual_total_correlation(den: ExactDenoiser) -> float:
    r""":math:`\mathrm{DTC} = H(X) - \sum_i H(X_i \mid X_{-i}) = \sum_i H(X_{-i}) - (n-1) H(X)` in nats."""
    H = den.entropy(den.full)
    return max(sum(den.entropy(den.full & ~(1 << i)) for i in range(den.n)) - (den.n - 1) * H, 0.0)


def _check(n: int, steps: int) -> None:
    for name, v in (("n", n), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _inverse(scale: str, n: int) -> Callable[[float], float]:
    """The cumulative count (real) at position ``g`` in [0, 1] of the ``scale``."""
    if scale == "dtc":
        return lambda g: (n + 1) ** g - 1.0
    if scale == "tc":
        return lambda g: n + 1.0 - (n + 1) ** (1.0 - g)
    if scale == "linear":
        return lambda g: n * g
    raise ValueError(f"unknown scale {scale!r} (known: {', '.join(SCALES)})")


def _round(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def _counts(cuts: list[int]) -> list[int]:
    return [b - a for a, b in zip(cuts, cuts[1:])]


def scale_counts(scale: str, n: int, steps: int) -> list[int]:
    """Per-step counts of the grid uniform on ``scale`` (cut ``m`` at ``m/steps``, rounded half up), every step
    at least one token when ``steps <= n`` (cuts pushed apart, in order, where rounding merged them)."""
    _check(n, steps)
    inv = _inverse(scale, n)
    return _push_apart([0] + [min(max(_round(inv(m / steps)), 0), n) for m in range(1, steps)] + [n], n, steps)


def _push_apart(cuts: list[int], n: int, steps: int) -> list[int]:
    """Counts of the cuts made strictly increasing when ``steps <= n`` (each cut at least one past the one before,
    leaving room for the steps after), so that no step commits nothing."""
    cuts = list(cuts)
    if steps <= n:
        for m in range(1, steps):
            cuts[m] = min(max(cuts[m], cuts[m - 1] + 1), n - (steps - m))
    return _counts(cuts)


def tc_counts(n: int, steps: int) -> list[int]:
    """Chen–Cong–Li's total-correlation schedule as read here: geometrically shrinking sizes (module docstring)."""
    return scale_counts("tc", n, steps)


def dtc_counts(n: int, steps: int) -> list[int]:
    """Chen–Cong–Li's dual-total-correlation schedule as read here: geometrically growing sizes."""
    return scale_counts("dtc", n, steps)


def curve_correlations(Z) -> tuple[float, float]:
    r"""``(TC, DTC)`` in the curve's units from an information curve :math:`Z_1 .. Z_n` (module docstring:
    :math:`\mathrm{TC} = \sum_j Z_j`, :math:`\mathrm{DTC} = n Z_n - \sum_j Z_j`) — exact for a law's own curve
    (:meth:`~mdm_energy.exact.ExactDenoiser.information_curve`); for a real model, an estimate from its
    random-order ``mean`` profile at temperature 1 (:meth:`mdm_energy.profile.InformationProfile.
    information_curve`), the only order and statistic whose curve is the model's law's."""
    z = np.asarray(Z, dtype=np.float64)
    if z.ndim != 1 or not len(z) or not np.isfinite(z).all():
        raise ValueError(f"an information curve is a non-empty 1-d array of finite values, got shape {z.shape}")
    tc = float(z.sum())
    return max(tc, 0.0), max(len(z) * float(z[-1]) - tc, 0.0)


def _pick(tc: float, dtc: float) -> str:
    """Chen–Cong–Li's choice: the scale of the smaller correlation (``tc`` on a tie)."""
    return "tc" if tc <= dtc else "dtc"


def correlation_counts(den: ExactDenoiser, steps: int) -> tuple[str, list[int]]:
    """``("tc", tc_counts)`` if the law's TC is at most its DTC, else ``("dtc", dtc_counts)``."""
    which = _pick(total_correlation(den), dual_total_correlation(den))
    return which, scale_counts(which, den.n, steps)


def curve_correlation_counts(Z, steps: int) -> tuple[str, list[int]]:
    """:func:`correlation_counts` with TC and DTC from an information curve (:func:`curve_correlations`): the
    choice a real model allows, from an estimated curve."""
    which = _pick(*curve_correlations(Z))
    return which, scale_counts(which, len(Z), steps)


@dataclass(frozen=True)
class RandomisedCounts:
    """The law of a randomised schedule: each count vector it can draw and its probability."""

    scale: str
    steps: int
    outcomes: tuple[tuple[tuple[int, ...], float], ...]

    def expected_counts(self) -> list[float]:
        return np.sum([p * np.asarray(c, dtype=np.float64) for c, p in self.outcomes], axis=0).tolist()

    def as_json(self) -> dict[str, Any]:
        return {"scale": self.scale, "steps": self.steps,
                "outcomes": [{"counts": list(c), "p": p} for c, p in self.outcomes]}


def randomised_counts(scale: str, n: int, steps: int) -> RandomisedCounts:
    r"""The count vectors of the ``scale`` grid shifted by :math:`u \sim U[0,1)` (cut ``m`` at ``(m-u)/steps`` on the
    scale, rounded half up, then pushed apart as in :func:`scale_counts`, so no draw has an empty step when
    ``steps <= n``) with their exact probabilities: the lengths of the ``u`` intervals between the offsets where
    some cut crosses a half-integer."""
    _check(n, steps)
    inv = _inverse(scale, n)
    fwd = {"dtc": lambda c: math.log1p(c) / math.log1p(n),
           "tc": lambda c: 1.0 - math.log1p(n - c) / math.log1p(n),
           "linear": lambda c: c / n}[scale]
    breaks = {0.0, 1.0}
    for m in range(1, steps):
        for k in range(n):
            h = k + 0.5  # the cut rounds across h where inv((m - u)/steps) = h
            u = m - steps * fwd(h)
            if 0.0 < u < 1.0:
                breaks.add(u)
    pts = sorted(breaks)
    probs: dict[tuple[int, ...], float] = {}
    for lo, hi in zip(pts, pts[1:]):
        if hi - lo <= 0:
            continue
        u = 0.5 * (lo + hi)
        cuts = [0] + [min(max(_round(inv((m - u) / steps)), 0), n) for m in range(1, steps)] + [n]
        c = tuple(_push_apart(cuts, n, steps))
        probs[c] = probs.get(c, 0.0) + (hi - lo)
    return RandomisedCounts(scale, steps, tuple(sorted(probs.items())))


def law_randomised(den: ExactDenoiser, randomised: RandomisedCounts,
                   law_of: Callable[[tuple[int, ...]], np.ndarray]) -> np.ndarray:
    """The mixture :math:`\\sum_c P(c)\\,\\mathrm{law}(c)`; ``law_of(counts)`` gives one count vector's exact law
    (e.g. ``lambda c: sampler_law(den, "fixed", counts_schedule(c), len(c), "random")[0]``)."""
    out = np.zeros(den.q.shape)
    for c, p in randomised.outcomes:
        out += p * law_of(c)
    return out
