r"""Explicit data laws on :math:`[d]^n`: ``.npy`` files and seeded built-in families (docs/design.md §5).

A law is an array of shape ``(d,)*n`` of probabilities. Built-ins:

* ``toy1`` — the paper's first toy target: uniform on {aaaaa, bbbbb} (n = 5, d = 2, ``a`` = 0);
* ``toy2`` — the second: uniform on the sentences of length 5 with exactly two or three ``a``;
* ``markov:n,d,seed`` — a sticky first-order Markov chain (random initial law and transition rows);
* ``potts:n,d,seed`` — a Potts model :math:`q(x) \propto \exp(\sum_{i<j} J_{ij}[x_i = x_j] + \sum_i h_i(x_i))`
  with random couplings and fields;
* ``templates:n,d,seed`` — a mixture of a few random template sequences, each token kept with
  probability 0.85 and otherwise resampled uniformly.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._parse import strict_int
from ..limits import format_count, format_power, power_exceeds

__all__ = [
    "MAX_EXACT_STATES",
    "DistributionSpecError",
    "ExplicitDistribution",
    "load_distribution",
    "distribution_families",
    "check_law",
]

#: The largest :math:`(d+1)^n` (token values plus the mask, at every position) the exact engine accepts.
MAX_EXACT_STATES = 1 << 24


class DistributionSpecError(ValueError):
    """A distribution spec or file that cannot be used (unknown family, bad numbers, bad weights, too big)."""


@dataclass(frozen=True, eq=False)
class ExplicitDistribution:
    """A normalised law ``probs`` of shape ``(d,)*n`` and the spec or file it came from."""

    name: str
    probs: np.ndarray

    @property
    def n(self) -> int:
        return self.probs.ndim

    @property
    def d(self) -> int:
        return self.probs.shape[0]

    def flat(self) -> np.ndarray:
        """The probabilities in row-major order of the array (sequence ``x`` at index ``ravel_multi_index(x)``)."""
        return self.probs.reshape(-1)


def check_law(weights: np.ndarray, name: str = "weights", max_states: int = MAX_EXACT_STATES) -> np.ndarray:
    """Validate non-negative weights of shape ``(d,)*n`` and return them normalised (float64)."""
    w = np.asarray(weights)
    if w.dtype == object or not (np.issubdtype(w.dtype, np.number) or w.dtype == bool):
        raise DistributionSpecError(f"{name}: weights must be numbers, got dtype {w.dtype}")
    if np.iscomplexobj(w):
        raise DistributionSpecError(f"{name}: weights must be real numbers, got dtype {w.dtype}")
    w = w.astype(np.float64)
    if w.ndim < 1:
        raise DistributionSpecError(f"{name}: weights must be an array of shape (d,)*n, got a scalar")
    if len(set(w.shape)) != 1:
        raise DistributionSpecError(f"{name}: shape must be (d,)*n with equal sides, got {w.shape}")
    if w.shape[0] < 2:
        raise DistributionSpecError(f"{name}: vocabulary size d must be at least 2, got shape {w.shape}")
    _check_size(w.ndim, w.shape[0], name, max_states)
    if not np.all(np.isfinite(w)):
        raise DistributionSpecError(f"{name}: weights must be finite, found {w[~np.isfinite(w)].flat[0]!r}")
    if np.any(w < 0):
        raise DistributionSpecError(f"{name}: weights must be non-negative, found {w[w < 0].flat[0]!r}")
    total = w.sum()
    if total <= 0:
        raise DistributionSpecError(f"{name}: weights are all zero")
    return w / total


def _check_size(n: int, d: int, name: str, max_states: int = MAX_EXACT_STATES) -> None:
    """Refuse a law of ``n`` tokens over ``d`` symbols whose ``(d+1)^n`` partly masked states exceed
    ``max_states`` — in exact integers, so that any ``n`` and ``d`` a spec names are compared, not overflowed."""
    if power_exceeds(int(d) + 1, int(n), max_states):
        raise DistributionSpecError(
            f"{name}: n={format_count(int(n))}, d={format_count(int(d))} is too large for the exact engine: "
            f"(d+1)^n = {format_power(int(d) + 1, int(n))} "
            f"states (limit {max_states:,}); estimate by Monte Carlo sampling instead"
        )


# --- built-in families ---------------------------------------------------------------------------


def _toy(accept: Callable[[tuple[int, ...]], bool]) -> np.ndarray:
    w = np.zeros((2,) * 5)
    for x in itertools.product(range(2), repeat=5):
        if accept(x):
            w[x] = 1.0
    return w


def _markov(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    init = rng.dirichlet(np.ones(d))
    trans = rng.dirichlet(np.full(d, 0.5), size=d) + 2.0 * np.eye(d)  # sticky rows
    trans /= trans.sum(axis=1, keepdims=True)
    w = init.reshape((d,) + (1,) * (n - 1))
    for i in range(1, n):
        shape = [1] * n
        shape[i - 1], shape[i] = d, d
        w = w * trans.reshape(shape)
    return w


def _potts(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logw = np.zeros((d,) * n)
    eye = np.eye(d)
    for i, j in itertools.combinations(range(n), 2):
        coupling = rng.normal(0.0, 1.5 / math.sqrt(n - 1)) + (1.0 if j == i + 1 else 0.0)
        shape = [1] * n
        shape[i], shape[j] = d, d
        logw = logw + coupling * eye.reshape(shape)
    for i in range(n):
        shape = [1] * n
        shape[i] = d
        logw = logw + rng.normal(0.0, 0.5, size=d).reshape(shape)
    return np.exp(logw - logw.max())


def _templates(n: int, d: int, seed: int, k: int = 3, keep: float = 0.85) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 2.0))
    w = np.zeros((d,) * n)
    for m in range(k):
        template = rng.integers(0, d, size=n)
        comp = np.ones((1,) * n)
        for i in range(n):
            tok = np.full(d, (1.0 - keep) / d)
            tok[template[i]] += keep
            shape = [1] * n
            shape[i] = d
            comp = comp * tok.reshape(shape)
        w = w + weights[m] * comp
    return w


_FAMILIES: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "markov": _markov,
    "potts": _potts,
    "templates": _templates,
}
_FIXED: dict[str, Callable[[], np.ndarray]] = {
    "toy1": lambda: _toy(lambda x: len(set(x)) == 1),
    "toy2": lambda: _toy(lambda x: x.count(0) in (2, 3)),
}


def distribution_families() -> list[str]:
    """The built-in names (``toy1``, ``toy2``) and seeded families (``markov``, ``potts``, ``templates``)."""
    return sorted(_FIXED) + sorted(_FAMILIES)


def _parse_family(spec: str) -> np.ndarray:
    name, _, body = spec.partition(":")
    name = name.strip().lower()
    if name in _FIXED:
        if body:
            raise DistributionSpecError(f"malformed distribution spec {spec!r}: {name} takes no parameters")
        return _FIXED[name]()
    if name not in _FAMILIES:
        raise DistributionSpecError(
            f"unknown distribution {spec!r} (built-ins: {', '.join(distribution_families())}; or a .npy file)"
        )
    parts = [p.strip() for p in body.split(",")] if body else []
    if len(parts) != 3:
        raise DistributionSpecError(f"malformed distribution spec {spec!r}: expected {name}:n,d,seed")
    try:
        n, d, seed = (strict_int(p) for p in parts)
    except ValueError:
        raise DistributionSpecError(f"malformed distribution spec {spec!r}: n, d and seed must be integers") from None
    if n < 1 or d < 2 or not 0 <= seed < 2**63:
        raise DistributionSpecError(f"malformed distribution spec {spec!r}: need n >= 1, d >= 2, 0 <= seed < 2^63")
    _check_size(n, d, f"distribution {spec!r}")
    return _FAMILIES[name](n, d, seed)


def load_distribution(spec: "str | os.PathLike[str] | np.ndarray") -> ExplicitDistribution:
    """A built-in spec (``toy1``, ``markov:8,4,0``, …), a path to a ``.npy`` weight array, or an array.

    Weights are validated (finite, non-negative, not all zero, shape ``(d,)*n``, small enough) and
    normalised. Raises :class:`DistributionSpecError` naming the problem.
    """
    if isinstance(spec, np.ndarray):
        return ExplicitDistribution("array", check_law(spec, "array"))
    text = os.fspath(spec)
    if text.lower().endswith(".npy"):
        path = Path(text)
        if not path.is_file():
            raise DistributionSpecError(f"no such .npy file: {text!r}")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises several types for a corrupt file
            raise DistributionSpecError(f"cannot read {text!r} as a .npy array: {exc}") from None
        return ExplicitDistribution(text, check_law(arr, text))
    return ExplicitDistribution(text.strip(), check_law(_parse_family(text), text))
