r"""Per-token path energies of a schedule pair, continuous and discretised (docs/design.md §3).

For a mask schedule :math:`\alpha` and an interpolation schedule :math:`\gamma`,

.. math:: J[\alpha;\gamma] = \int_0^1 \frac{\dot\alpha^2}{\dot\gamma\,\alpha(1-\alpha)}\,dt
          = 4\int_0^1 \frac{\dot\theta^2}{\dot\gamma}\,dt
          = 4\int_0^1 \Big(\frac{d\theta}{d\gamma}\Big)^2 d\gamma \;\ge\; \pi^2,

with :math:`\theta = \arcsin\sqrt\alpha`. The last form (Cauchy–Schwarz with
:math:`\int_0^1 \tfrac{d\theta}{d\gamma} d\gamma = \tfrac\pi2`) shows that the minimum :math:`\pi^2` is
reached exactly when :math:`\theta = \tfrac\pi2\gamma`, i.e. :math:`\alpha = \sin^2(\tfrac\pi2\gamma)`.

The integrand is singular at the endpoints, so the quadrature runs in the geodesic variable
:math:`u = \gamma(t)` (where a matched pair has the constant integrand 1) and a divergent pair is
recognised from the power law of the integrand near each endpoint and reported as ``inf``.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from scipy import integrate

from ..schedules import Schedule, parse_schedule

__all__ = [
    "OPTIMUM",
    "energy_J",
    "integrate_over_gamma",
    "fisher_rao_distance",
    "discrete_energy",
    "discrete_energy_from_grid",
    "geodesic_alpha_grid",
]

#: The minimum per-token energy, reached by every geodesic pair :math:`\alpha = \sin^2(\tfrac\pi2\gamma)`.
OPTIMUM = math.pi**2

# Endpoint probes (distance from the endpoint, in t) for the divergence test, and its threshold:
# an integrand ~ s^-p near an endpoint is integrable iff p < 1.
_PROBES = (1e-6, 1e-9)
_DIVERGENT_EXPONENT = 1.0 - 1e-3
_TINY = 1e-300


def _as_schedule(s: "Schedule | str") -> Schedule:
    return parse_schedule(s)


def _endpoint_exponent(h: Callable[[np.ndarray], np.ndarray], end: int) -> float:
    """Local power-law exponent p of ``h(t) ~ s^-p``, with s the distance of t to endpoint ``end``."""
    s = np.array(_PROBES)
    t = s if end == 0 else 1.0 - s
    with np.errstate(all="ignore"):
        v = np.asarray(h(t), dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return math.inf
    if np.any(v <= 0.0):
        return -math.inf  # vanishing integrand: no divergence from this end
    return float(np.log(v[1] / v[0]) / np.log(s[0] / s[1]))


def integrate_over_gamma(F: Callable[[np.ndarray], np.ndarray], gamma: "Schedule | str") -> float:
    r"""Compute :math:`\int_0^1 F(t)/\dot\gamma(t)\,dt` for a non-negative ``F`` robustly.

    The integral is evaluated as :math:`\int_0^1 F(t(u))/\dot\gamma(t(u))^2\,du` with
    :math:`t(u) = \gamma^{-1}(u)`. Returns ``inf`` when the integrand diverges non-integrably at an
    endpoint, or when ``F > 0`` on an interval where :math:`\gamma` is flat (motion at zero
    geodesic speed costs infinite energy). ``F`` takes and returns float64 arrays.
    """
    g = _as_schedule(gamma)

    def h(t: np.ndarray) -> np.ndarray:
        f = np.asarray(F(t), dtype=np.float64)
        gd = g._gamma_dot(t)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = f / gd
        out = np.where(f == 0.0, 0.0, out)
        return np.where((gd == 0.0) & (f > 0.0), np.inf, out)

    # A flat stretch of gamma (e.g. a table with equal fractions) over which F is positive.
    mid = (np.arange(4096) + 0.5) / 4096
    flat = mid[g._gamma_dot(mid) == 0.0]
    if flat.size and np.any(np.asarray(F(flat)) > 0.0):
        return math.inf
    for end in (0, 1):
        if _endpoint_exponent(h, end) >= _DIVERGENT_EXPONENT:
            return math.inf

    lo, hi = _TINY, 1.0 - np.finfo(float).epsneg

    def integrand_u(u: float) -> float:
        t = np.clip(g._t_of_gamma(np.array([u])), lo, hi)
        gd = g._gamma_dot(t)[0]
        f = float(np.asarray(F(t), dtype=np.float64)[0])
        if f == 0.0:
            return 0.0
        return f / (gd * gd)

    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for a, b in ((0.0, 0.5), (0.5, 1.0)):
            val, _ = integrate.quad(integrand_u, a, b, limit=400, epsabs=0.0, epsrel=1e-11)
            total += val
    return total if math.isfinite(total) else math.inf


def _raw_energy(a: Schedule, g: Schedule) -> float:
    with np.errstate(all="ignore"):  # overflow is judged from the result, not printed as a RuntimeWarning
        return integrate_over_gamma(lambda t: OPTIMUM * a._gamma_dot(t) ** 2, g)


#: How far from pi^2 the quadrature of a schedule against its own geodesic time may land (it lands within a
#: few ulps for every sound schedule); farther means the schedule cannot be evaluated in double precision.
_SELF_TOLERANCE = 1e-6


def energy_J(alpha: "Schedule | str", gamma: "Schedule | str | None" = None) -> float:
    r"""The per-token energy :math:`J[\alpha;\gamma]` (``inf`` for a divergent pair).

    ``gamma`` defaults to ``alpha``'s own geodesic time, which gives exactly :math:`\pi^2`.
    Uses :math:`\dot\alpha^2/(\alpha(1-\alpha)) = \pi^2\dot\gamma_\alpha^2`, so
    :math:`J = \pi^2 \int_0^1 (\dot\gamma_\alpha/\dot\gamma)^2\, d\gamma`.

    Why the result is checked: with shapes near the ends of their range the density overflows double
    precision and the quadrature returns ``inf``, ``nan`` or even a value below :math:`\pi^2`, which no pair
    has. Each schedule is therefore first integrated against its own geodesic time, whose answer
    :math:`\pi^2` is known; a schedule that misses it (or a ``nan`` result) raises ``ValueError`` naming it,
    so an ``inf`` that is returned is a divergent pair, not an overflow.
    """
    a = _as_schedule(alpha)
    g = a if gamma is None else _as_schedule(gamma)
    for s in dict.fromkeys((a, g)):
        own = _raw_energy(s, s)
        if not (math.isfinite(own) and abs(own / OPTIMUM - 1.0) <= _SELF_TOLERANCE):
            raise ValueError(f"the energy of schedule {s.spec} cannot be computed in double precision (its "
                             "parameters are too extreme: the quadrature overflows)")
    if g == a:
        return own
    value = _raw_energy(a, g)
    if math.isnan(value):
        raise ValueError(f"the energy J[{a.spec}; {g.spec}] cannot be computed in double precision")
    return value


def fisher_rao_distance(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Fisher–Rao distance :math:`2\arccos\sum_i\sqrt{p_i q_i}` between categorical laws.

    Computed as :math:`4\arcsin(\lVert\sqrt p - \sqrt q\rVert / 2)`, which keeps full precision for
    nearby laws (``arccos`` near 1 does not).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    chord = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=axis))
    return 4.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def discrete_energy_from_grid(alpha_grid: np.ndarray, gamma_grid: np.ndarray) -> float:
    r"""The discretised energy :math:`D_N = \sum_k \mathrm{FR}(p_{k-1}, p_k)^2 / (\gamma_k - \gamma_{k-1})`.

    :math:`p_k = (1-\alpha_k, \alpha_k)` is the per-token law (masked, unmasked) at grid point
    :math:`k`; its Fisher–Rao arc to the next is :math:`2|\theta_k - \theta_{k-1}|`, so
    :math:`D_N = \sum_k 4(\theta_k-\theta_{k-1})^2/(\gamma_k-\gamma_{k-1}) \ge \pi^2`, with equality iff
    :math:`\theta_k = \tfrac\pi2\gamma_k` (Cauchy–Schwarz). A step that moves :math:`\alpha` while
    :math:`\gamma` stands still costs ``inf``; a step that moves neither costs 0.
    """
    a = np.asarray(alpha_grid, dtype=np.float64)
    g = np.asarray(gamma_grid, dtype=np.float64)
    if a.shape != g.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("alpha_grid and gamma_grid must be 1-D arrays of the same length >= 2")
    laws = np.stack([1.0 - a, a], axis=-1)
    arc2 = fisher_rao_distance(laws[:-1], laws[1:]) ** 2
    dg = np.diff(g)
    if np.any(dg < 0):
        raise ValueError("gamma_grid must be non-decreasing")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(arc2 == 0.0, 0.0, arc2 / dg)
    return float(np.sum(terms))


def discrete_energy(alpha: "Schedule | str", gamma: "Schedule | str | None" = None, steps: int = 8) -> float:
    r""":math:`D_N[\alpha;\gamma]` on the uniform grid :math:`t_k = k/N` (docs/design.md §3); tends to
    :math:`J[\alpha;\gamma]` as :math:`N \to \infty`."""
    a = _as_schedule(alpha)
    g = a if gamma is None else _as_schedule(gamma)
    t = a.grid(steps)
    return discrete_energy_from_grid(a._alpha(t), g._theta(t) / (math.pi / 2))


def geodesic_alpha_grid(gamma_grid: np.ndarray) -> np.ndarray:
    r"""The grid :math:`\alpha_k = \sin^2(\tfrac\pi2\gamma_k)`: points on the geodesic spaced as
    :math:`\gamma` says, the unique minimiser of :math:`D_N` for that :math:`\gamma` grid (value
    :math:`\pi^2`). For :math:`\gamma_k = k/N` these are the points equidistant along the geodesic."""
    return np.sin(0.5 * math.pi * np.asarray(gamma_grid, dtype=np.float64)) ** 2
