r"""The three path energies of docs/design.md §3, by brute-force enumeration of every state.

A *token path* says how one position of a clean sequence :math:`x_1` is corrupted at time
:math:`t`: a conditional per-token law :math:`p_t(s \mid x_{1,i})` over an alphabet of :math:`K`
symbols, and conditional jump rates :math:`R_t(s \to s' \mid x_{1,i})` that generate it. Tokens are
corrupted independently given :math:`x_1`, so for a data law :math:`q` on :math:`[d]^n`

.. math:: p_t(z) = \sum_{x_1} q(x_1) \prod_i p_t(z_i \mid x_{1,i}), \qquad
          Q_t(z, x) = \sum_{x_1} \frac{q(x_1)\, p_t(z \mid x_1)}{p_t(z)}\, R_t(z_i \to x_i \mid x_{1,i})

for :math:`x` equal to :math:`z` except at one position :math:`i` (the marginal rate is the
posterior average of the conditional one). Everything here is computed from these definitions by
summing over all :math:`d^n K^n` pairs :math:`(x_1, z)`; nothing uses the closed forms. Then

* kinetic :math:`E_k = \int \frac{1}{\dot\gamma} \sum_z \sum_{x \ne z} p_t(z) Q_t(z,x)^2 / p_t(x)\,dt`,
* conditional kinetic :math:`E_c = \int \frac{1}{\dot\gamma} \sum_{x_1} q(x_1) \sum_z\sum_{x\ne z}
  p_t(z|x_1) Q_t(z,x|x_1)^2 / p_t(x|x_1)\,dt`,
* geodesic :math:`E_g = \int \frac{1}{\dot\gamma} \sum_{x_1} q(x_1) \sum_i \sum_s
  (\partial_t p_t(s|x_{1,i}))^2 / p_t(s|x_{1,i})\,dt`.

For the masked path (:math:`K = d+1`, :math:`p(x_{1,i}) = \alpha`, :math:`p(M) = 1-\alpha`, rate
:math:`\dot\alpha/(1-\alpha)` from :math:`M` to :math:`x_{1,i}`) the paper's Theorems 3.1–3.2 give
:math:`E_k = n(d+1)^{n-1} J`, :math:`E_c = n 2^{n-1} J`, :math:`E_g = n J` whatever :math:`q` is. For
uniform-noise diffusion (:math:`K = d`, :math:`p(s) = \alpha\delta_{s,x_{1,i}} + (1-\alpha)/d`, rate
:math:`\dot\alpha/(1-\alpha)` from any :math:`s \ne x_{1,i}` to :math:`x_{1,i}`) the ratios depend on
:math:`q`: the proportionality is a property of masking.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from ..limits import format_count, format_power, power_exceeds
from ..schedules import Schedule, parse_schedule
from .continuous import energy_J, integrate_over_gamma

__all__ = [
    "MAX_BRUTE_FORCE_STATES",
    "TokenPath",
    "MaskedPath",
    "UniformPath",
    "token_path",
    "random_distribution",
    "state_sums",
    "marginal_flux",
    "BruteForceEnergies",
    "brute_force_energies",
    "check_brute_force_size",
]

#: The largest number of (clean sequence, noisy state) pairs, d^n * K^n, that the brute force enumerates.
MAX_BRUTE_FORCE_STATES = 2_000_000


class TokenPath(ABC):
    """Per-token conditional law and conditional jump rates of a discrete diffusion path."""

    name: ClassVar[str]

    def __init__(self, vocab: int) -> None:
        self.d = int(vocab)

    @property
    @abstractmethod
    def K(self) -> int:
        """Size of the noisy alphabet."""

    @abstractmethod
    def law(self, alpha: float, mask: float) -> np.ndarray:
        """``P[x, s] = p_t(s | x)``, shape (d, K); ``mask`` is ``1 - alpha``, passed separately for precision."""

    @abstractmethod
    def law_dot(self, alpha_dot: float) -> np.ndarray:
        """Time derivative of :meth:`law`, shape (d, K)."""

    @abstractmethod
    def rate(self, mask: float, alpha_dot: float) -> np.ndarray:
        """``R[x, s, s'] = R_t(s -> s' | x)`` for s' != s (diagonal zero), shape (d, K, K)."""


class MaskedPath(TokenPath):
    r"""Absorbing-mask path: :math:`p(x) = \alpha`, :math:`p(M) = 1 - \alpha`; symbol ``d`` is the mask."""

    name = "mdm"

    @property
    def K(self) -> int:
        return self.d + 1

    def law(self, alpha: float, mask: float) -> np.ndarray:
        P = np.zeros((self.d, self.K))
        P[np.arange(self.d), np.arange(self.d)] = alpha
        P[:, self.d] = mask
        return P

    def law_dot(self, alpha_dot: float) -> np.ndarray:
        P = np.zeros((self.d, self.K))
        P[np.arange(self.d), np.arange(self.d)] = alpha_dot
        P[:, self.d] = -alpha_dot
        return P

    def rate(self, mask: float, alpha_dot: float) -> np.ndarray:
        R = np.zeros((self.d, self.K, self.K))
        R[np.arange(self.d), self.d, np.arange(self.d)] = alpha_dot / mask
        return R


class UniformPath(TokenPath):
    r"""Uniform-noise path: :math:`p(s) = \alpha\,\delta_{s,x} + (1-\alpha)/d`, no mask symbol."""

    name = "uniform"

    @property
    def K(self) -> int:
        return self.d

    def law(self, alpha: float, mask: float) -> np.ndarray:
        return alpha * np.eye(self.d) + mask / self.d

    def law_dot(self, alpha_dot: float) -> np.ndarray:
        return alpha_dot * (np.eye(self.d) - 1.0 / self.d)

    def rate(self, mask: float, alpha_dot: float) -> np.ndarray:
        R = np.zeros((self.d, self.K, self.K))
        idx = np.arange(self.d)
        R[idx, :, idx] = alpha_dot / mask  # any s -> x ...
        R[idx, idx, idx] = 0.0  # ... except the diagonal
        return R


_PATHS: dict[str, type[TokenPath]] = {"mdm": MaskedPath, "uniform": UniformPath}


def token_path(name: str, vocab: int) -> TokenPath:
    """The token path called ``name`` (``mdm`` or ``uniform``) over a vocabulary of ``vocab`` symbols."""
    if name not in _PATHS:
        raise ValueError(f"unknown path {name!r} (known: {', '.join(sorted(_PATHS))})")
    return _PATHS[name](vocab)


def check_brute_force_size(n: int, d: int, path: str = "mdm") -> None:
    """Raise ``ValueError`` if ``n`` tokens over ``d`` symbols are too many states to enumerate."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"tokens n must be a positive integer, got {n!r}")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"vocab d must be an integer >= 2, got {d!r}")
    K = d + 1 if path == "mdm" else d
    n, d = int(n), int(d)
    if power_exceeds(d * K, n, MAX_BRUTE_FORCE_STATES):  # exact integers: any n and d, no overflow
        raise ValueError(
            f"n={format_count(n)}, d={format_count(d)} is too large to brute-force: d^n*K^n = "
            f"{format_power(d * K, n)} states (limit {MAX_BRUTE_FORCE_STATES:,}); use smaller n or d"
        )


def random_distribution(n: int, d: int, seed: int = 0) -> np.ndarray:
    """A random full-support law on :math:`[d]^n` (flat Dirichlet weights), shape ``(d,)*n``, seeded."""
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(d**n))
    w = np.maximum(w, 1e-12)  # full support even for an unlucky draw
    return (w / w.sum()).reshape((d,) * n)


def _conditional(path: TokenPath, n: int, per_token: np.ndarray) -> np.ndarray:
    """Product over positions of a (d, K) per-token table: shape (d,)*n + (K,)*n."""
    out = np.ones((1,) * (2 * n))
    for i in range(n):
        shape = [1] * (2 * n)
        shape[i], shape[n + i] = path.d, path.K
        out = out * per_token.reshape(shape)
    return out


def _move_to_last(arr: np.ndarray, axis: int) -> np.ndarray:
    """``A[..., z_i -> 1, ..., s']`` = ``arr`` with its value at position ``axis`` set to ``s'``."""
    return np.expand_dims(np.moveaxis(arr, axis, -1), axis)


def _token_tables(path: TokenPath, alpha: float, alpha_dot: float, mask: float | None):
    mask = 1.0 - alpha if mask is None else mask
    return path.law(alpha, mask), path.rate(mask, alpha_dot)


def _sum_over_clean(arr: np.ndarray, n: int) -> np.ndarray:
    """Sum an array with axes (x1..., rest...) over the n clean-sequence axes."""
    return arr.reshape((-1,) + arr.shape[n:]).sum(axis=0)


def _marginal(q: np.ndarray, path: TokenPath, P_tok: np.ndarray) -> np.ndarray:
    r""":math:`p_t(z) = \sum_{x_1} q(x_1) \prod_i p_t(z_i|x_{1,i})`, shape (K,)*n."""
    n = q.ndim
    return _sum_over_clean(q.reshape(q.shape + (1,) * n) * _conditional(path, n, P_tok), n)


def _conditional_flux(q: np.ndarray, path: TokenPath, P_tok: np.ndarray, R_tok: np.ndarray):
    """Yield, per position i, ``(cond, joint, R, flux_cond)`` on axes (x1..., z..., s')."""
    n = q.ndim
    cond = _conditional(path, n, P_tok)  # p_t(z | x1), axes (x1..., z...)
    joint = q.reshape(q.shape + (1,) * n) * cond  # q(x1) p_t(z|x1)
    for i in range(n):
        # Conditional rate of the jump z_i -> s' given x1_i, broadcast to axes (x1..., z..., s').
        shape = [1] * (2 * n + 1)
        shape[i], shape[n + i], shape[-1] = path.d, path.K, path.K
        R = R_tok.reshape(shape)
        yield i, cond, joint, R, joint[..., None] * R


def marginal_flux(
    q: np.ndarray, path: TokenPath, alpha: float, alpha_dot: float, mask: float | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    r"""The marginal law :math:`p_t(z)` (shape ``(K,)*n``) and, per position :math:`i`, the marginal
    probability flux :math:`F_i[z, s'] = p_t(z)\,Q_t(z, z^{i \to s'})` (shape ``(K,)*n + (K,)``),
    summed over clean sequences by enumeration."""
    P_tok, R_tok = _token_tables(path, alpha, alpha_dot, mask)
    fluxes = [_sum_over_clean(f, q.ndim) for *_, f in _conditional_flux(q, path, P_tok, R_tok)]
    return _marginal(q, path, P_tok), fluxes


def state_sums(
    q: np.ndarray, path: TokenPath, alpha: float, alpha_dot: float, mask: float | None = None
) -> dict[str, float]:
    r"""The three energy integrands at one time, before the :math:`1/\dot\gamma` weight, by enumeration.

    ``mask`` is :math:`1-\alpha`, which callers pass separately to keep precision near the clean end.
    Returns ``{"kinetic": …, "conditional_kinetic": …, "geodesic": …}``.
    """
    n = q.ndim
    P_tok, R_tok = _token_tables(path, alpha, alpha_dot, mask)
    p_z = _marginal(q, path, P_tok)

    kinetic = conditional = 0.0
    for i, cond, _, R, flux_cond in _conditional_flux(q, path, P_tok, R_tok):
        # kinetic: F^2 / (p(z) p(x)) with F = p(z) Q(z, x) the marginal flux
        F, p_x = _sum_over_clean(flux_cond, n), _move_to_last(p_z, i)
        with np.errstate(divide="ignore", invalid="ignore"):
            kinetic += float(np.sum(np.where(F > 0, F**2 / (p_z[..., None] * p_x), 0.0)))
        # conditional kinetic: sum_x1 q(x1) p(z|x1) R^2 / p(x|x1)
        c_x = _move_to_last(cond, n + i)
        with np.errstate(divide="ignore", invalid="ignore"):
            conditional += float(np.sum(np.where(flux_cond > 0, flux_cond * R / c_x, 0.0)))

    L, Ld = P_tok, path.law_dot(alpha_dot)
    with np.errstate(divide="ignore", invalid="ignore"):
        fisher = np.where(L > 0, Ld**2 / L, 0.0).sum(axis=1)  # per clean symbol x
    # sum_x1 q(x1) sum_i fisher[x1_i] = sum_i sum_v q_i(v) fisher[v]
    geodesic = 0.0
    for i in range(n):
        marg = q.sum(axis=tuple(j for j in range(n) if j != i))
        geodesic += float(marg @ fisher)
    return {"kinetic": kinetic, "conditional_kinetic": conditional, "geodesic": geodesic}


@dataclass(frozen=True)
class BruteForceEnergies:
    """Energies of one (alpha, gamma) pair on an explicit data law, by enumeration.

    ``predicted_*`` are the MDM constants of docs/design.md §3 (``n(d+1)^(n-1)``, ``n 2^(n-1)``, ``n``) times
    ``J``; for the uniform path they are what proportionality *would* predict, and do not hold.
    """

    path: str
    n: int
    d: int
    alpha: str
    gamma: str
    J: float
    kinetic: float
    conditional_kinetic: float
    geodesic: float
    ratio_kinetic_conditional: float
    ratio_conditional_geodesic: float
    predicted_ratio_kinetic_conditional: float
    predicted_ratio_conditional_geodesic: float
    constant_kinetic: float
    constant_conditional_kinetic: float
    constant_geodesic: float

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(a: float, b: float) -> float:
    if math.isinf(a) or math.isinf(b) or b == 0.0:
        return math.nan
    return a / b


def brute_force_energies(
    q: np.ndarray,
    alpha: "Schedule | str",
    gamma: "Schedule | str | None" = None,
    path: str = "mdm",
) -> BruteForceEnergies:
    r"""Kinetic, conditional kinetic and geodesic energies of a path on data ``q`` (shape ``(d,)*n``).

    Each is :math:`\int_0^1 S(t)/\dot\gamma(t)\,dt` with the state sum :math:`S` of
    :func:`state_sums`, integrated by :func:`~mdm_energy.energy.integrate_over_gamma`. Ratios are
    ``nan`` when an energy is infinite.
    """
    q = np.asarray(q, dtype=np.float64)
    n, d = q.ndim, q.shape[0]
    if any(s != d for s in q.shape):
        raise ValueError(f"q must have shape (d,)*n, got {q.shape}")
    check_brute_force_size(n, d, path)
    if np.any(q <= 0) or not np.all(np.isfinite(q)):
        raise ValueError("q must be a full-support law (all entries positive and finite)")
    q = q / q.sum()
    a = parse_schedule(alpha)
    g = a if gamma is None else parse_schedule(gamma)
    tp = token_path(path, d)

    cache: dict[float, dict[str, float]] = {}

    def sums_at(t: float) -> dict[str, float]:
        if t not in cache:
            arr = np.array([t])
            al, ad, m = (float(f(arr)[0]) for f in (a._alpha, a._alpha_dot, a._one_minus_alpha))
            if ad == 0.0:
                cache[t] = dict.fromkeys(("kinetic", "conditional_kinetic", "geodesic"), 0.0)
            elif al <= 0.0 or m <= 0.0:
                cache[t] = dict.fromkeys(("kinetic", "conditional_kinetic", "geodesic"), math.inf)
            else:
                cache[t] = state_sums(q, tp, al, ad, m)
        return cache[t]

    def integrand(key: str):
        return lambda t: np.array([sums_at(float(x))[key] for x in np.atleast_1d(t)])

    J = energy_J(a, g)  # first: it refuses a schedule too extreme to integrate before the state sums run
    with np.errstate(all="ignore"):  # overflow is judged from the results below, not printed
        energies = {k: integrate_over_gamma(integrand(k), g) for k in ("kinetic", "conditional_kinetic", "geodesic")}
    # On the masked path each energy is J times a constant (MDM theory), so with J finite an infinite or NaN
    # energy is the quadrature overflowing, not a divergence; on any path NaN is.
    broken = [k for k, v in energies.items() if math.isnan(v) or (tp.name == "mdm" and math.isfinite(J)
                                                                   and not math.isfinite(v))]
    if broken:
        raise ValueError(f"the {broken[0].replace('_', ' ')} energy of alpha={a.spec}, gamma={g.spec} cannot be "
                         "computed in double precision (the schedule parameters are too extreme)")
    ck, cc, cg = n * (d + 1) ** (n - 1), n * 2 ** (n - 1), n
    return BruteForceEnergies(
        path=tp.name,
        n=n,
        d=d,
        alpha=a.spec,
        gamma=g.spec,
        J=J,
        kinetic=energies["kinetic"],
        conditional_kinetic=energies["conditional_kinetic"],
        geodesic=energies["geodesic"],
        ratio_kinetic_conditional=_ratio(energies["kinetic"], energies["conditional_kinetic"]),
        ratio_conditional_geodesic=_ratio(energies["conditional_kinetic"], energies["geodesic"]),
        predicted_ratio_kinetic_conditional=ck / cc,
        predicted_ratio_conditional_geodesic=cc / cg,
        constant_kinetic=_ratio(energies["kinetic"], J),
        constant_conditional_kinetic=_ratio(energies["conditional_kinetic"], J),
        constant_geodesic=_ratio(energies["geodesic"], J),
    )
