r"""The exact denoiser of an explicit law: posteriors :math:`q(x_i \mid x_S)` by summation.

Arrays here are in *broadcast form*: an array over a set of revealed positions :math:`S` has ``n``
axes, of size ``d`` on the positions in :math:`S` and size 1 elsewhere. Products of such arrays
broadcast to the union of their sets, which is what the exact dynamic programmes need, and every
operation is vectorised over all values of the revealed tokens at once.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .distributions import ExplicitDistribution, load_distribution

__all__ = ["ExactDenoiser", "popcount", "positions"]


def popcount(mask: int) -> int:
    """Number of positions in a bitmask set."""
    return bin(mask).count("1")


def positions(mask: int, n: int) -> list[int]:
    """The positions (ascending) in a bitmask set over ``n`` positions."""
    return [i for i in range(n) if mask >> i & 1]


class ExactDenoiser:
    r"""Marginals :math:`q(x_S)`, conditionals :math:`q(x_i \mid x_S)` and entropies of an explicit law.

    Sets of positions are bitmasks (bit ``i`` set = position ``i`` revealed). A sampler that
    reveals several tokens at once can reach a context of probability zero under the law (toy1:
    ``a`` and ``b`` revealed together); there the posterior is undefined, and this denoiser answers
    with the uniform law on ``[d]`` — the maximum-entropy choice, used identically by the exact laws
    and by the torch samplers run on this denoiser.
    """

    def __init__(self, dist: "ExplicitDistribution | str | np.ndarray") -> None:
        if not isinstance(dist, ExplicitDistribution):
            dist = load_distribution(dist)
        self.dist = dist
        self.q = dist.probs
        self.n, self.d = dist.n, dist.d
        self.full = (1 << self.n) - 1
        self.marginal = lru_cache(maxsize=None)(self._marginal)
        self.conditional = lru_cache(maxsize=None)(self._conditional)

    def _marginal(self, S: int) -> np.ndarray:
        """:math:`q(x_S)` in broadcast form (sums over the positions outside S)."""
        if S == self.full:
            return self.q
        j = next(i for i in range(self.n) if not S >> i & 1)  # drop one more position from S | {j}
        return self.marginal(S | (1 << j)).sum(axis=j, keepdims=True)

    def _conditional(self, S: int, i: int) -> np.ndarray:
        r""":math:`q(x_i \mid x_S)` in broadcast form over :math:`S \cup \{i\}` (uniform where :math:`q(x_S) = 0`)."""
        if S >> i & 1:
            raise ValueError(f"position {i} is already in the revealed set")
        num, den = self.marginal(S | (1 << i)), self.marginal(S)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0 / self.d)

    def entropy(self, S: int) -> float:
        """Joint entropy :math:`H(X_S)` in nats."""
        p = self.marginal(S).reshape(-1)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def posterior(self, tokens: "np.ndarray | list[int]", mask_id: int = -1) -> np.ndarray:
        r"""Per-position posteriors for one partially masked sequence: shape ``(n, d)``.

        ``tokens`` holds values in ``[0, d)`` or ``mask_id`` for masked positions. Row ``i`` is
        :math:`q(x_i = \cdot \mid x_S)` for masked ``i`` and the one-hot of the token otherwise.
        """
        x = np.asarray(tokens).reshape(-1)
        if x.size != self.n:
            raise ValueError(f"expected {self.n} tokens, got {x.size}")
        S = sum(1 << i for i in range(self.n) if x[i] != mask_id)
        out = np.zeros((self.n, self.d))
        for i in range(self.n):
            if S >> i & 1:
                out[i, int(x[i])] = 1.0
                continue
            cond = self.conditional(S, i)
            index = tuple(int(x[j]) if S >> j & 1 else (slice(None) if j == i else 0) for j in range(self.n))
            out[i] = cond[index]
        return out

    def information_curve(self) -> np.ndarray:
        r""":math:`Z_j = \mathbb E\,I(X_i; X_S)` for :math:`j = 1..n`, with :math:`i` a uniform position and
        :math:`S` a uniform set of :math:`j-1` other positions (docs/design.md §5); :math:`Z_1 = 0`."""
        n = self.n
        H = np.array([self.entropy(S) for S in range(1 << n)])
        sums = np.zeros(n + 1)
        for S in range(1 << n):
            k = popcount(S)
            for i in range(n):
                if not S >> i & 1:  # I(X_i; X_S) = H(X_i) + H(X_S) - H(X_{S+i})
                    sums[k + 1] += H[1 << i] + H[S] - H[S | (1 << i)]
        Z = np.array([sums[j] / (n * math.comb(n - 1, j - 1)) for j in range(1, n + 1)])
        Z[0] = 0.0
        return np.maximum(Z, 0.0)
