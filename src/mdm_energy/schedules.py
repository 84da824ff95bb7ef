r"""Mask schedules for masked diffusion models.

Conventions (docs/design.md §1): time :math:`t \in [0, 1]` runs from fully masked (:math:`t = 0`) to clean
data (:math:`t = 1`). A *mask schedule* :math:`\alpha(t)` is the probability that a position is
unmasked at time :math:`t`; it increases from :math:`\alpha(0) = 0` to :math:`\alpha(1) = 1`
(flow_matching calls it :math:`\kappa_t`).

Every schedule has a *geodesic time*

.. math:: \gamma(t) = \tfrac{2}{\pi} \arcsin \sqrt{\alpha(t)}, \qquad
          \alpha(t) = \sin^2\!\big(\tfrac{\pi}{2}\gamma(t)\big),

the fraction of the Fisher–Rao arc between the fully masked and the clean per-token law that has been
travelled at time :math:`t`. The energy-optimal schedule for an interpolation :math:`\gamma` is the one
that moves along that arc at the pace :math:`\gamma` sets (docs/design.md §3), so a schedule and its
:math:`\gamma` determine each other.

The Beta family ``beta:a,b`` takes :math:`\gamma(t) = I_t(a, b)`, the Beta(a, b) CDF, which makes the
whole design space two numbers: ``beta:0.5,0.5`` is ``linear`` and ``beta:1,1`` is ``sin2``.

Every method accepts a Python float, a numpy array or a torch tensor and returns the same kind.
Schedules are parsed from and formatted to spec strings::

    >>> s = parse_schedule("beta:0.9,0.3")
    >>> s.counts(256, 8).tolist()
    [2, 4, 9, 12, 19, 29, 47, 134]
    >>> str(s)
    'beta:0.9,0.3'
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import numpy as np
from scipy import special

from ._arrays import ArrayLike, check_unit_interval, to_numpy
from ._parse import positive_int as _positive_int, strict_float
from .limits import MAX_LENGTH, MAX_STEPS

__all__ = [
    "Schedule",
    "Linear",
    "Sin2",
    "Sine",
    "MaskGIT",
    "Poly",
    "Beta",
    "Table",
    "PerBlock",
    "Dream",
    "ScheduleSpecError",
    "parse_schedule",
    "single_schedule",
    "schedule_families",
    "schedule_family",
    "register_schedule",
    "ScheduleParam",
    "ScheduleFamily",
    "counts_from_alpha",
    "HAND_CRAFTED",
    "SHAPE_RANGE",
]

_HALF_PI = 0.5 * math.pi


class ScheduleSpecError(ValueError):
    """A schedule spec string that cannot be parsed (unknown family, malformed or out-of-range numbers)."""


def _fmt(x: float) -> str:
    """Shortest text that parses back to exactly ``x`` (integers without a decimal point)."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def counts_from_alpha(alpha_grid: np.ndarray, length: int) -> np.ndarray:
    r"""Per-step token counts from the cumulative fractions :math:`\alpha(t_k)`, :math:`k = 0..N`.

    docs/design.md §2: :math:`c_k = \lfloor L\,\alpha(t_k) + \tfrac12 + 10^{-9} \rfloor` clipped to
    :math:`[0, L]`, with :math:`c_0 = 0` and :math:`c_N = L`; step :math:`k` unmasks
    :math:`c_k - c_{k-1} \ge 0` tokens. The tiny :math:`10^{-9}` makes exact halves round up despite
    floating-point error, so ``linear`` with :math:`N \mid L` gives exactly :math:`L/N` per step.
    """
    alpha_grid = np.asarray(alpha_grid, dtype=np.float64)
    c = np.floor(length * alpha_grid + 0.5 + 1e-9)
    c = np.clip(c, 0, length)
    c[0], c[-1] = 0, length
    c = np.maximum.accumulate(c)  # guards against round-off in a non-decreasing alpha
    return np.diff(c).astype(np.int64)


class Schedule(ABC):
    r"""A mask schedule :math:`\alpha(t)` and its geodesic time :math:`\gamma(t)`.

    Subclasses implement the numpy kernels ``_alpha``, ``_alpha_dot`` and ``_t_of_alpha`` (and may
    override ``_theta``/``_gamma_dot``/``_t_of_gamma`` with closed forms that are exact at the
    endpoints); the public methods validate their argument and keep its kind.
    """

    family: ClassVar[str]

    # --- spec strings -------------------------------------------------------------------------
    @property
    @abstractmethod
    def spec(self) -> str:
        """The canonical spec string; ``parse_schedule(s.spec) == s``."""

    def __str__(self) -> str:
        return self.spec

    # --- numpy kernels (float64 arrays in, float64 arrays out; t already checked) ----------------
    @abstractmethod
    def _alpha(self, t: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _alpha_dot(self, t: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _t_of_alpha(self, a: np.ndarray) -> np.ndarray: ...

    def _one_minus_alpha(self, t: np.ndarray) -> np.ndarray:
        r""":math:`1 - \alpha(t)`, the mask probability; families override it with a form that keeps
        full relative precision near :math:`t = 1`, where energies divide by it."""
        return 1.0 - self._alpha(t)

    def _theta(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\theta = \arcsin\sqrt{\alpha}`, the per-token Fisher–Rao angle (half the arc length)."""
        a = np.clip(self._alpha(t), 0.0, 1.0)
        return np.arctan2(np.sqrt(a), np.sqrt(np.clip(self._one_minus_alpha(t), 0.0, 1.0)))

    def _gamma_dot(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\dot\gamma = \dot\alpha / (\pi\sqrt{\alpha(1-\alpha)})`.

        Where :math:`\alpha \in \{0, 1\}` this is :math:`+\infty` if :math:`\dot\alpha > 0` and 0 if
        :math:`\dot\alpha = 0` (a schedule that is flat there has a flat :math:`\gamma` too).
        Families with a finite non-zero limit override this with a closed form.
        """
        a = np.clip(self._alpha(t), 0.0, 1.0)
        ad = self._alpha_dot(t)
        denom = math.pi * np.sqrt(a * np.clip(self._one_minus_alpha(t), 0.0, 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            out = ad / denom
        out = np.where(ad == 0.0, 0.0, out)
        return np.where((denom == 0.0) & (ad > 0.0), np.inf, out)

    def _t_of_gamma(self, g: np.ndarray) -> np.ndarray:
        return self._t_of_alpha(np.sin(_HALF_PI * g) ** 2)

    # --- public API -----------------------------------------------------------------------------
    def _checked(self, values: np.ndarray, at: np.ndarray, name: str) -> np.ndarray:
        """``values`` unchanged, or ``ValueError`` naming the schedule and the first point where it is NaN."""
        bad = np.isnan(values)
        if np.any(bad):
            first = float(np.broadcast_to(at, bad.shape)[bad].flat[0])
            raise ValueError(f"schedule {self.spec} cannot be evaluated at {name}={first!r}: the result is not a "
                             "number (its parameters are too extreme for double precision)")
        return values

    def _apply(self, kernel: Callable[[np.ndarray], np.ndarray], x: ArrayLike, name: str):
        arr, back = to_numpy(x)
        check_unit_interval(arr, name)
        return back(self._checked(kernel(arr), arr, name))

    def alpha(self, t: ArrayLike):
        r"""Probability :math:`\alpha(t)` that a position is unmasked at time ``t``."""
        return self._apply(self._alpha, t, "t")

    def alpha_dot(self, t: ArrayLike):
        r"""Derivative :math:`\dot\alpha(t)` (the one-sided limit at the endpoints; may be ``inf``)."""
        return self._apply(self._alpha_dot, t, "t")

    def theta(self, t: ArrayLike):
        r"""Fisher–Rao angle :math:`\theta(t) = \arcsin\sqrt{\alpha(t)} = \tfrac{\pi}{2}\gamma(t)`."""
        return self._apply(self._theta, t, "t")

    def gamma(self, t: ArrayLike):
        r"""Geodesic time :math:`\gamma(t) = \tfrac{2}{\pi}\arcsin\sqrt{\alpha(t)}`."""
        return self._apply(lambda u: self._theta(u) / _HALF_PI, t, "t")

    def gamma_dot(self, t: ArrayLike):
        r"""Derivative :math:`\dot\gamma(t)` (the one-sided limit at the endpoints; may be ``inf``)."""
        return self._apply(self._gamma_dot, t, "t")

    def t_of_alpha(self, a: ArrayLike):
        r"""Inverse of :math:`\alpha`: the smallest :math:`t` with :math:`\alpha(t) = a`."""
        return self._apply(self._t_of_alpha, a, "alpha")

    def t_of_gamma(self, g: ArrayLike):
        r"""Inverse of :math:`\gamma`: the smallest :math:`t` with :math:`\gamma(t) = g`."""
        return self._apply(self._t_of_gamma, g, "gamma")

    def grid(self, steps: int) -> np.ndarray:
        """The uniform time grid :math:`t_k = k/N`, :math:`k = 0..N` (``N`` at most
        :data:`~mdm_energy.limits.MAX_STEPS`)."""
        steps = _positive_int(steps, "steps")
        if steps > MAX_STEPS:
            raise ValueError(f"steps must be at most {MAX_STEPS:,}, got {steps:,}")
        return np.arange(steps + 1, dtype=np.float64) / steps

    def counts(self, length: int, steps: int) -> np.ndarray:
        r"""Tokens unmasked at each of ``steps`` uniform steps for a sequence of ``length`` positions.

        See :func:`counts_from_alpha` for the rounding rule (docs/design.md §2). The counts are
        non-negative and sum to ``length``; zero-token steps are legal.
        """
        length = _positive_int(length, "length")
        if length > MAX_LENGTH:
            raise ValueError(f"length must be at most {MAX_LENGTH:,} (counts are exact in double precision), got {length:,}")
        t = self.grid(steps)
        return counts_from_alpha(self._checked(self._alpha(t), t, "t"), length)


# ---------------------------------------------------------------------------------------------------
# Hand-crafted families


@dataclass(frozen=True)
class Linear(Schedule):
    r"""``linear``: :math:`\alpha(t) = t` (LLaDA's default; ``beta:0.5,0.5``)."""

    family: ClassVar[str] = "linear"

    @property
    def spec(self) -> str:
        return "linear"

    def _alpha(self, t):
        return t.copy()

    def _one_minus_alpha(self, t):
        return 1.0 - t

    def _alpha_dot(self, t):
        return np.ones_like(t)

    def _t_of_alpha(self, a):
        return a.copy()


@dataclass(frozen=True)
class Sin2(Schedule):
    r"""``sin2``: :math:`\alpha(t) = \sin^2(\pi t/2)`, the geodesic schedule for :math:`\gamma(t) = t`
    (``beta:1,1``)."""

    family: ClassVar[str] = "sin2"

    @property
    def spec(self) -> str:
        return "sin2"

    def _alpha(self, t):
        return np.sin(_HALF_PI * t) ** 2

    def _one_minus_alpha(self, t):
        return np.cos(_HALF_PI * t) ** 2

    def _alpha_dot(self, t):
        return _HALF_PI * np.sin(math.pi * t)

    def _theta(self, t):
        return _HALF_PI * t

    def _gamma_dot(self, t):
        return np.ones_like(t)

    def _t_of_alpha(self, a):
        return np.arcsin(np.sqrt(a)) / _HALF_PI

    def _t_of_gamma(self, g):
        return g.copy()


@dataclass(frozen=True)
class Sine(Schedule):
    r"""``sine``: :math:`\alpha(t) = \sin(\pi t/2)` (no Beta counterpart).

    With :math:`u = \pi t/2`: :math:`\dot\gamma = \tfrac12(\cos\tfrac u2 + \sin\tfrac u2)/\sqrt{\sin u}`,
    which tends to :math:`1/\sqrt2` at :math:`t = 1`.
    """

    family: ClassVar[str] = "sine"

    @property
    def spec(self) -> str:
        return "sine"

    def _alpha(self, t):
        return np.sin(_HALF_PI * t)

    def _one_minus_alpha(self, t):
        # 1 - sin u = 2 sin^2(pi/4 - u/2), without cancellation near u = pi/2
        return 2.0 * np.sin(0.25 * math.pi - 0.5 * _HALF_PI * t) ** 2

    def _alpha_dot(self, t):
        return _HALF_PI * np.cos(_HALF_PI * t)

    def _gamma_dot(self, t):
        u = _HALF_PI * t
        with np.errstate(divide="ignore"):
            return 0.5 * (np.cos(0.5 * u) + np.sin(0.5 * u)) / np.sqrt(np.sin(u))

    def _t_of_alpha(self, a):
        return np.arcsin(a) / _HALF_PI


@dataclass(frozen=True)
class MaskGIT(Schedule):
    r"""``maskgit``: :math:`\alpha(t) = 1 - \cos(\pi t/2)` (MaskGIT's cosine mask ratio).

    With :math:`u = \pi t/2`: :math:`\theta = \arcsin(\sqrt2\sin\tfrac u2)` and
    :math:`\dot\gamma = \tfrac{1}{\sqrt2}\cos\tfrac u2/\sqrt{\cos u}`, which is :math:`1/\sqrt2` at 0.
    """

    family: ClassVar[str] = "maskgit"

    @property
    def spec(self) -> str:
        return "maskgit"

    def _alpha(self, t):
        # 1 - cos u = 2 sin^2(u/2), without cancellation near u = 0
        return 2.0 * np.sin(0.5 * _HALF_PI * t) ** 2

    def _one_minus_alpha(self, t):
        return np.cos(_HALF_PI * t)

    def _alpha_dot(self, t):
        return _HALF_PI * np.sin(_HALF_PI * t)

    def _theta(self, t):
        return np.arcsin(np.clip(math.sqrt(2.0) * np.sin(0.5 * _HALF_PI * t), 0.0, 1.0))

    def _gamma_dot(self, t):
        u = _HALF_PI * t
        with np.errstate(divide="ignore"):
            return np.cos(0.5 * u) / (math.sqrt(2.0) * np.sqrt(np.clip(np.cos(u), 0.0, None)))

    def _t_of_alpha(self, a):
        return np.arccos(1.0 - a) / _HALF_PI


#: The exponents of ``poly:k`` and the shapes of ``beta:a,b`` that define a schedule (both ends included).
#: Beyond them the schedule is, on any grid of at most :data:`~mdm_energy.limits.MAX_STEPS` steps, a jump at
#: one endpoint to within about 1.5% (:math:`10^{-6 \cdot 10^{-3}} \approx 0.986` of the tokens in the first
#: step for ``a = 1e-3``), while its density and the energy quadrature overflow double precision — a number
#: out there is a typo or a search run away, and is refused by name rather than turned into garbage.
SHAPE_RANGE = (1e-3, 1e3)


def _shape(value: object, name: str) -> float:
    """``value`` as a float if it is a number in :data:`SHAPE_RANGE`, else :class:`ScheduleSpecError` naming
    ``name`` (the one check of every Poly and Beta number, so a spec, a tuner's bound and a constructor agree)."""
    low, high = SHAPE_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
        math.isfinite(value) and low <= value <= high
    ):
        raise ScheduleSpecError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Poly(Schedule):
    r"""``poly:k``: :math:`\alpha(t) = t^k`, :math:`k` in :data:`SHAPE_RANGE`.

    :math:`\dot\gamma = k\,t^{k/2-1} / (\pi\sqrt{1-t^k})`: infinite at 1, and at 0 infinite for
    :math:`k < 2`, :math:`2/\pi` for :math:`k = 2`, zero for :math:`k > 2`.
    """

    k: float
    family: ClassVar[str] = "poly"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", _shape(self.k, "poly exponent k"))

    @property
    def spec(self) -> str:
        return f"poly:{_fmt(self.k)}"

    def _alpha(self, t):
        return t**self.k

    def _one_minus_alpha(self, t):
        with np.errstate(divide="ignore"):
            return -np.expm1(self.k * np.log(t))

    def _alpha_dot(self, t):
        with np.errstate(divide="ignore"):
            return self.k * t ** (self.k - 1.0)

    def _gamma_dot(self, t):
        k = self.k
        with np.errstate(divide="ignore", invalid="ignore"):
            return k * t ** (0.5 * k - 1.0) / (math.pi * np.sqrt(1.0 - t**k))

    def _t_of_alpha(self, a):
        return a ** (1.0 / self.k)


# ---------------------------------------------------------------------------------------------------
# The Beta family


@dataclass(frozen=True)
class Beta(Schedule):
    r"""``beta:a,b``: the geodesic schedule of a Beta(a, b) CDF,

    .. math:: \gamma(t) = I_t(a, b), \qquad \alpha(t) = \sin^2\!\big(\tfrac{\pi}{2} I_t(a, b)\big),

    :math:`\dot\gamma(t) = t^{a-1}(1-t)^{b-1}/B(a,b)` (the Beta density) and
    :math:`\dot\alpha(t) = \tfrac{\pi}{2}\sin(\pi I_t)\,\dot\gamma(t)`. Near :math:`t = 0`,
    :math:`\dot\alpha \sim \tfrac{\pi^2}{2aB^2}\,t^{2a-1}`: infinite for :math:`a < \tfrac12`,
    :math:`\pi^2/(2aB^2)` for :math:`a = \tfrac12`, zero above (symmetrically in :math:`b` at 1).
    ``b < 1`` unmasks few tokens early and many late; ``a < 1`` the reverse.
    """

    a: float
    b: float
    family: ClassVar[str] = "beta"

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            object.__setattr__(self, name, _shape(getattr(self, name), f"beta parameter {name}"))

    @property
    def spec(self) -> str:
        return f"beta:{_fmt(self.a)},{_fmt(self.b)}"

    def _density(self, t):
        with np.errstate(divide="ignore"):
            log_pdf = special.xlogy(self.a - 1.0, t) + special.xlog1py(self.b - 1.0, -t)
            return np.exp(log_pdf - special.betaln(self.a, self.b))

    def _alpha(self, t):
        return np.sin(_HALF_PI * special.betainc(self.a, self.b, t)) ** 2

    def _one_minus_alpha(self, t):
        # cos^2(pi/2 I_t(a,b)) = sin^2(pi/2 I_{1-t}(b,a)): accurate near t = 1
        return np.sin(_HALF_PI * special.betainc(self.b, self.a, 1.0 - t)) ** 2

    def _theta(self, t):
        return _HALF_PI * special.betainc(self.a, self.b, t)

    def _gamma_dot(self, t):
        return self._density(t)

    def _alpha_dot(self, t):
        # sin(pi I) = sin(pi min(I, 1 - I)), with 1 - I = I_{1-t}(b, a) computed directly so that the
        # factor is accurate near t = 1 (where sin(pi * 1.0) would be 1.2e-16, not 0).
        i_lo = special.betainc(self.a, self.b, t)
        i_hi = special.betainc(self.b, self.a, 1.0 - t)
        with np.errstate(invalid="ignore"):
            out = _HALF_PI * np.sin(math.pi * np.minimum(i_lo, i_hi)) * self._density(t)
        # At the endpoints use the one-sided limits (0 * inf there when a or b < 1); the finite one, at a shape
        # of exactly 1/2, only then (B(a, b)^2 underflows to 0 for large shapes, where it is not needed).
        def limit(p: float) -> float:
            if p != 0.5:
                return math.inf if p < 0.5 else 0.0
            return math.pi**2 / (2.0 * math.exp(2.0 * special.betaln(self.a, self.b))) / p

        out = np.where(t == 0.0, limit(self.a), out)
        return np.where(t == 1.0, limit(self.b), out)

    def _t_of_gamma(self, g):
        return special.betaincinv(self.a, self.b, g)

    def _t_of_alpha(self, a):
        return special.betaincinv(self.a, self.b, np.arcsin(np.sqrt(a)) / _HALF_PI)


# ---------------------------------------------------------------------------------------------------
# Dream's own count rule


@dataclass(frozen=True)
class Dream(Schedule):
    r"""``dream:eps``: the per-step counts of Dream's ``diffusion_generate``.

    Dream's mask level runs down a uniform grid from 1 to ``eps`` over :math:`N` steps, :math:`s_k = 1 -
    (1 - \varepsilon)k/N`, and step :math:`k` unmasks :math:`\lfloor m_{k-1}(1 - s_k/s_{k-1}) \rfloor` of the
    :math:`m_{k-1}` tokens still masked (the last step all of them).

    Why :meth:`counts` departs from the rounding rule of every other family (docs/design.md §2, a rounding
    of the cumulative fraction :math:`L\alpha(t_k)`): Dream floors the *remaining* count at each step, in
    float32, and a schedule that is to reproduce Dream's tokens must reproduce that recursion exactly — the
    two rules differ by a token here and there (e.g. at :math:`L = 256`, :math:`N = 7`).

    As a schedule, :math:`\alpha(t) = (1 - \varepsilon)t` for :math:`t < 1` and :math:`\alpha(1) = 1` (the
    last step reveals what is left), which is also what the ancestral sampler needs for Dream's ``origin``
    algorithm: :math:`\pi_k = 1 - s_k/s_{k-1}`.
    """

    eps: float = 1e-3
    family: ClassVar[str] = "dream"

    def __post_init__(self) -> None:
        e = self.eps
        if isinstance(e, bool) or not isinstance(e, (int, float, np.integer, np.floating)) or not (
            math.isfinite(e) and 0 <= e < 1
        ):
            raise ScheduleSpecError(f"dream eps must be a number in [0, 1), got {e!r}")
        object.__setattr__(self, "eps", float(e))

    @property
    def spec(self) -> str:
        return f"dream:{_fmt(self.eps)}"

    def _alpha(self, t):
        return np.where(t < 1.0, (1.0 - self.eps) * t, 1.0)

    def _one_minus_alpha(self, t):
        return np.where(t < 1.0, 1.0 - (1.0 - self.eps) * t, 0.0)

    def _alpha_dot(self, t):
        return np.full_like(t, 1.0 - self.eps)

    def _t_of_alpha(self, a):
        # alpha jumps from 1 - eps to 1 at t = 1: the smallest t reaching any a beyond 1 - eps is 1
        return np.where(a < 1.0 - self.eps, a / (1.0 - self.eps), 1.0)

    def mask_levels(self, steps: int) -> np.ndarray:
        r"""Dream's grid :math:`s_0 = 1, ..., s_N = \varepsilon` as float32, bit for bit what Dream's float32
        ``linspace(1, eps, N + 1)`` gives, so that counts and reveal probabilities match Dream's token for token.

        That ``linspace`` takes the step :math:`h = (\varepsilon - 1)/N` in float32 and rounds each point once
        from the exact value: :math:`1 + h k` for the first half, :math:`\varepsilon - h (N - k)` for the rest
        (the tests check this against torch for every :math:`N` up to 2,000)."""
        n = _positive_int(steps, "steps")
        start, end = np.float32(1.0), np.float32(self.eps)
        h = np.float64((end - start) / np.float32(n))
        k = np.arange(n + 1, dtype=np.float64)
        levels = np.where(k < (n + 1) // 2, np.float64(start) + h * k, np.float64(end) - h * (n - k))
        return levels.astype(np.float32)

    def counts(self, length: int, steps: int) -> np.ndarray:
        r"""Dream's counts: :math:`\lfloor m (1 - s_k/s_{k-1}) \rfloor` of the :math:`m` still masked (in float32,
        as Dream computes it), the last step all of them."""
        length = _positive_int(length, "length")
        s = self.mask_levels(steps)
        out = np.zeros(steps, dtype=np.int64)
        left = length
        for k in range(steps):
            c = left if k == steps - 1 else int(np.float32(left) * (np.float32(1.0) - s[k + 1] / s[k]))
            out[k], left = c, left - c
        return out


# ---------------------------------------------------------------------------------------------------
# Free-form tables


@dataclass(frozen=True)
class Table(Schedule):
    r"""``table:f1,...,f(N-1)``: a free-form schedule given by :math:`\alpha(k/N) = f_k` at the interior
    points of an :math:`N`-step grid (non-decreasing, in [0, 1]), :math:`\alpha(0)=0`,
    :math:`\alpha(1)=1`, and piecewise linear in between. This is how optimised schedules are written
    down and replayed: on its own grid, ``Table.from_counts(c).counts(sum(c), len(c))`` gives back ``c``.
    """

    fractions: tuple[float, ...]
    family: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        f = tuple(float(x) for x in self.fractions)
        object.__setattr__(self, "fractions", f)
        for x in f:
            if not (math.isfinite(x) and 0.0 <= x <= 1.0):
                raise ScheduleSpecError(f"table fractions must lie in [0, 1], got {x!r}")
        for x, y in zip(f, f[1:]):
            if y < x:
                raise ScheduleSpecError(f"table fractions must be non-decreasing, got {x!r} then {y!r}")

    @classmethod
    def from_counts(cls, counts) -> "Table":
        """The table whose grid fractions are the cumulative shares of ``counts`` (one entry per step)."""
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim != 1 or len(c) < 1 or np.any(c < 0) or c.sum() <= 0:
            raise ValueError(f"counts must be a non-empty list of non-negative numbers with a positive sum, got {counts!r}")
        return cls(tuple((np.cumsum(c)[:-1] / c.sum()).tolist()))

    @property
    def spec(self) -> str:
        return "table:" + ",".join(_fmt(x) for x in self.fractions)

    @property
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.array((0.0,) + self.fractions + (1.0,))
        return np.linspace(0.0, 1.0, len(values)), values

    def _alpha(self, t):
        ts, vs = self._knots
        return np.interp(t, ts, vs)

    def _one_minus_alpha(self, t):
        ts, vs = self._knots
        return np.interp(t, ts, 1.0 - vs)

    def _alpha_dot(self, t):
        ts, vs = self._knots
        n = len(ts) - 1
        seg = np.clip(np.floor(t * n).astype(np.int64), 0, n - 1)
        return (vs[seg + 1] - vs[seg]) * n

    def _t_of_alpha(self, a):
        ts, vs = self._knots
        j = np.clip(np.searchsorted(vs, a, side="left"), 1, len(vs) - 1)
        lo, hi = vs[j - 1], vs[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(hi > lo, (a - lo) / (hi - lo), 0.0)
        return np.where(a <= 0.0, 0.0, ts[j - 1] + frac * (ts[j] - ts[j - 1]))


@dataclass(frozen=True)
class PerBlock(Schedule):
    r"""``blocks:S1;S2;...;SB``: one schedule per semi-autoregressive block — block :math:`b` of a sampler
    with ``block_length`` is filled with :math:`S_b`'s counts (its share of the steps, which every scheduled
    sampler splits evenly over the blocks), so a profile with one curve per block can give each block its
    own schedule (:func:`~mdm_energy.profile.profile_schedule`). The number of schedules must be the number of
    blocks. Anywhere a single curve is needed (plots, energies) it is the mean :math:`\alpha = \frac1B\sum_b
    \alpha_b`."""

    schedules: tuple[Schedule, ...]
    family: ClassVar[str] = "blocks"

    def __post_init__(self) -> None:
        scheds = tuple(parse_schedule(x) for x in self.schedules)
        if not scheds:
            raise ScheduleSpecError("a blocks: schedule needs at least one schedule")
        if any(isinstance(x, PerBlock) for x in scheds):
            raise ScheduleSpecError("a blocks: schedule cannot contain another blocks: schedule")
        object.__setattr__(self, "schedules", scheds)

    @property
    def spec(self) -> str:
        return "blocks:" + ";".join(x.spec for x in self.schedules)

    def block(self, index: int) -> Schedule:
        """Block ``index``'s schedule."""
        return self.schedules[index]

    def _alpha(self, t):
        return np.mean([x._alpha(t) for x in self.schedules], axis=0)

    def _one_minus_alpha(self, t):
        return np.mean([x._one_minus_alpha(t) for x in self.schedules], axis=0)

    def _alpha_dot(self, t):
        return np.mean([x._alpha_dot(t) for x in self.schedules], axis=0)

    def _t_of_alpha(self, a):
        grid = np.linspace(0.0, 1.0, 4097)  # alpha is non-decreasing: invert on a fine grid
        return np.interp(a, np.maximum.accumulate(self._alpha(grid)), grid)


# ---------------------------------------------------------------------------------------------------
# Spec strings


def single_schedule(schedule: "Schedule | str", where: str) -> Schedule:
    """``schedule`` parsed, refusing a ``blocks:`` schedule where there is one block (``where`` says which rule):
    its per-block counts would otherwise be replaced silently by its mean curve's."""
    parsed = parse_schedule(schedule)
    if isinstance(parsed, PerBlock):
        raise ValueError(f"{where} has one block, so a blocks: schedule ({len(parsed.schedules)} block schedules) "
                         "does not apply: give one schedule")
    return parsed


def _numbers(family: str, body: str, count: int | None) -> list[float]:
    parts = body.split(",") if body.strip() else []
    if count is not None and len(parts) != count:
        raise ScheduleSpecError(f"malformed schedule spec '{family}:{body}': {family} takes {count} number(s)")
    out = []
    for p in parts:
        try:
            out.append(strict_float(p))
        except ValueError:
            raise ScheduleSpecError(f"malformed schedule spec '{family}:{body}': {p.strip()!r} is not a finite decimal "
                                    "number") from None
    return out


@dataclass(frozen=True)
class ScheduleParam:
    """One number of a parametric schedule family, with the range a tuner searches by default.

    ``low``/``high`` ``None``: the number is not tunable (e.g. Dream's ``eps``). ``grid``: the default
    values of the grid and halving strategies (empty: the family has no default grid).
    """

    name: str
    low: "float | None" = None
    high: "float | None" = None
    log: bool = False
    grid: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a schedule parameter name must be an identifier, got {self.name!r}")
        if (self.low is None) != (self.high is None):
            raise ValueError(f"schedule parameter {self.name!r} needs both low and high, or neither")
        if self.low is not None:
            lo, hi = float(self.low), float(self.high)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (self.log and lo <= 0):
                raise ValueError(f"schedule parameter {self.name!r} has a bad range ({self.low!r}, {self.high!r})")


@dataclass(frozen=True)
class ScheduleFamily:
    """A named family of schedules: how its spec string is parsed and which numbers a tuner may search.

    ``params`` ``()``: the family takes no numbers (``linear``); ``None``: any count (``table``). ``build``
    receives the numbers in order and returns the :class:`Schedule`.
    """

    name: str
    params: "tuple[ScheduleParam, ...] | None"
    build: Callable[..., Schedule]

    @property
    def tunable(self) -> bool:
        """Whether a tuner can search it: it has numbers and every one has a range."""
        return bool(self.params) and all(p.low is not None for p in self.params)

    def parse(self, body: "str | None") -> Schedule:
        """The schedule of the spec ``name:body`` (``body`` ``None`` when there is no colon)."""
        name, params = self.name, self.params
        if params == () and body is not None:
            raise ScheduleSpecError(f"malformed schedule spec '{name}:{body}': {name} takes no parameters")
        if params != () and body is None:
            raise ScheduleSpecError(f"malformed schedule spec '{name}': {name} needs parameters ('{name}:…')")
        if params == ():
            return self.build()
        numbers = _numbers(name, body, None if params is None else len(params))
        if params is None:
            return self.build(tuple(numbers))
        return self.build(*numbers)


_FAMILIES: dict[str, ScheduleFamily] = {}


def register_schedule(name: str, build: Callable[..., Schedule], *,
                      params: "Sequence[ScheduleParam] | None" = ()) -> ScheduleFamily:
    """Make a schedule family usable by name: in spec strings (``name`` or ``name:x,y``), hence in every
    sampler, command and lm-eval ``model_args``, and in the tuner (if each parameter has a range).

    ``build`` (often the :class:`Schedule` subclass itself) receives the spec's numbers in order, or one
    tuple of them with ``params=None`` (any count). A name registered twice is refused (``ValueError``).
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name) or name != name.lower():
        raise ValueError(f"a schedule family name must be lower-case letters, digits, '-' or '_', got {name!r}")
    if name in _FAMILIES:
        raise ValueError(f"schedule family {name!r} is already registered")
    if not callable(build):
        raise ValueError(f"schedule family {name!r}: build must be callable, got {build!r}")
    if params is not None:
        params = tuple(params)
        if any(not isinstance(p, ScheduleParam) for p in params):
            raise ValueError(f"schedule family {name!r}: params must be ScheduleParam instances")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"schedule family {name!r} names a parameter twice: {names}")
    family = ScheduleFamily(name, params, build)
    _FAMILIES[name] = family
    return family


def schedule_family(name: str) -> ScheduleFamily:
    """The registered family ``name`` (``ValueError`` naming the known families otherwise)."""
    if name not in _FAMILIES:
        from .registry import load_plugins

        load_plugins()  # a third-party family may come from an installed plug-in
    if name not in _FAMILIES:
        raise ScheduleSpecError(f"unknown schedule family {name!r} (known: {', '.join(schedule_families())})")
    return _FAMILIES[name]


class _BlocksFamily(ScheduleFamily):
    """The ``blocks:`` family: its body is schedule specs separated by ``;``, not numbers."""

    def parse(self, body: "str | None") -> Schedule:
        if body is None or not body.strip():
            raise ScheduleSpecError("malformed schedule spec 'blocks': blocks needs schedules ('blocks:S1;S2;…')")
        return PerBlock(tuple(part.strip() for part in body.split(";")))


_PAPER = tuple(round(0.1 * k, 1) for k in range(1, 11))
register_schedule("linear", Linear)
register_schedule("sin2", Sin2)
register_schedule("sine", Sine)
register_schedule("maskgit", MaskGIT)
register_schedule("poly", Poly, params=(ScheduleParam("k", 0.25, 4.0, log=True),))
register_schedule("beta", Beta, params=(ScheduleParam("a", 0.1, 1.0, grid=_PAPER), ScheduleParam("b", 0.1, 1.0, grid=_PAPER)))
register_schedule("table", Table, params=None)
register_schedule("dream", Dream, params=(ScheduleParam("eps"),))
_FAMILIES["blocks"] = _BlocksFamily("blocks", None, PerBlock)


#: The hand-crafted schedules every comparison and tuning study reports as baselines.
HAND_CRAFTED = ("linear", "sin2", "sine", "maskgit")


def schedule_families() -> list[str]:
    """Names of the schedule families that :func:`parse_schedule` knows."""
    return sorted(_FAMILIES)


def parse_schedule(spec: "str | Schedule") -> Schedule:
    """Build a schedule from a spec string such as ``linear``, ``poly:2`` or ``beta:0.9,0.3``.

    Raises :class:`ScheduleSpecError` (a ``ValueError``) naming the bad part of the spec.
    """
    if isinstance(spec, Schedule):
        return spec
    if not isinstance(spec, str):
        raise ScheduleSpecError(f"a schedule spec must be a string, got {spec!r}")
    text = spec.strip()
    name, sep, body = text.partition(":")
    name = name.strip().lower()
    try:
        family = schedule_family(name)
    except ScheduleSpecError:
        raise ScheduleSpecError(
            f"unknown schedule family {name!r} in spec {spec!r} (known: {', '.join(schedule_families())})"
        ) from None
    return family.parse(body if sep else None)
