"""An independent reference for sampler laws: a plain sum over reveal-step assignments, by loops.

A run of a random-position sampler is described by the step ``tau_i`` at which each position is revealed
(positions revealed at the same step are drawn independently, each given what was revealed before).
Its output law is ``sum_tau P(tau) prod_i q(x_i | x_{j : tau_j < tau_i})`` — computed here by brute force,
independently of the exact engine's dynamic programme. Blocks are assignments whose steps for block ``b``
all come after those of block ``b - 1``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = ["reference_law", "fixed_assignments", "independent_assignments", "blocked"]


def reference_law(q: np.ndarray, weight_of_assignment) -> np.ndarray:
    """law(x) = sum over tau of P(tau) * prod_i q(x_i | x_{j : tau_j < tau_i}), by loops."""
    n, d = q.ndim, q.shape[0]
    flat = q.reshape(-1)
    seqs = list(itertools.product(range(d), repeat=n))

    cache: dict = {}

    def marg(x, S):  # q(x_S) by summation over all sequences (memoised on (S, x_S))
        key = (tuple(S), tuple(x[j] for j in S))
        if key not in cache:
            cache[key] = sum(flat[k] for k, y in enumerate(seqs) if all(y[j] == x[j] for j in S))
        return cache[key]

    law = np.zeros(len(seqs))
    for tau, w in weight_of_assignment(n):
        if w == 0:
            continue
        for k, x in enumerate(seqs):
            p = w
            for i in range(n):
                S = [j for j in range(n) if tau[j] < tau[i]]
                den = marg(x, S)
                p *= marg(x, S + [i]) / den if den > 0 else 1.0 / d
            law[k] += p
    return law.reshape(q.shape)


def fixed_assignments(counts):
    """Fixed-count random: every arrangement of the step multiset (counts[k] positions at step k) equally likely."""

    def gen(n):
        total = math.factorial(n) / math.prod(math.factorial(c) for c in counts)
        steps = [k for k, c in enumerate(counts) for _ in range(c)]
        for tau in set(itertools.permutations(steps)):
            yield tau, 1.0 / total

    return gen


def independent_assignments(pis):
    """Ancestral/Euler: each position revealed at step k with probability pi_k * prod_{j<k} (1 - pi_j)."""
    w = [p * math.prod(1 - pj for pj in pis[:k]) for k, p in enumerate(pis)]

    def gen(n):
        for tau in itertools.product(range(len(pis)), repeat=n):
            yield tau, math.prod(w[k] for k in tau)

    return gen


def blocked(per_block, blocks: int, steps_per_block: int):
    """Assignments over ``blocks`` consecutive blocks of equal length, each drawn by ``per_block`` (a function
    of the block length, as above) with its steps shifted after the previous block's."""

    def gen(n):
        size = n // blocks
        parts = [list(per_block(size)) for _ in range(blocks)]
        for combo in itertools.product(*parts):
            tau = tuple(t + b * steps_per_block for b, (taus, _) in enumerate(combo) for t in taus)
            yield tau, math.prod(w for _, w in combo)

    return gen


def confidence_reference_law(q: np.ndarray, counts, rule: str) -> np.ndarray:
    """Fixed-count sampling with a confidence rule, by brute force over states and candidate vectors.

    State: the revealed values (``-1`` = masked). Each step draws a candidate for every masked position from
    its posterior given the state, scores it (``low_confidence``: the candidate's probability; ``margin``:
    top-1 minus top-2 of the posterior; ``entropy``: sum p log p of the posterior), and commits the
    ``counts[k]`` best, ties (to 12 decimals) to the lower position.
    """
    n, d = q.ndim, q.shape[0]
    seqs = list(itertools.product(range(d), repeat=n))
    flat = q.reshape(-1)

    def posterior(state, i):
        w = np.zeros(d)
        for k, y in enumerate(seqs):
            if all(state[j] in (-1, y[j]) for j in range(n)):
                w[y[i]] += flat[k]
        return w / w.sum() if w.sum() > 0 else np.full(d, 1.0 / d)

    def score(post, v):
        if rule == "low_confidence":
            return post[v]
        if rule == "margin":
            top = np.sort(post)[::-1]
            return top[0] - top[1]
        return float(np.sum(np.where(post > 0, post * np.log(np.where(post > 0, post, 1)), 0.0)))

    states = {tuple([-1] * n): 1.0}
    for c in counts:
        if c == 0:
            continue
        new: dict = {}
        for state, p_state in states.items():
            free = [i for i in range(n) if state[i] == -1]
            posts = {i: posterior(state, i) for i in free}
            for cand in itertools.product(range(d), repeat=len(free)):
                pc = p_state * math.prod(posts[i][v] for i, v in zip(free, cand))
                if pc == 0:
                    continue
                ranked = sorted(range(len(free)), key=lambda j: (-round(score(posts[free[j]], cand[j]), 12), free[j]))
                nxt = list(state)
                for j in ranked[:c]:
                    nxt[free[j]] = cand[j]
                new[tuple(nxt)] = new.get(tuple(nxt), 0.0) + pc
        states = new
    law = np.zeros(q.shape)
    for state, p in states.items():
        law[state] += p
    return law
