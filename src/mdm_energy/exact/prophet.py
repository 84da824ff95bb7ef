r"""Exact output law of Prophet (``prophet``: fixed counts until the answer region's logit gap clears the phase's
threshold, then everything in one call) on an explicit law, and its expected number of model calls.

Prophet is the fixed-count sampler with a test before each step's commits. With :math:`f_k(S)(x_S)` the
probability of being still running after :math:`k` steps with the revealed set :math:`S` and values
:math:`x_S` (the recursion of :mod:`.laws`), step :math:`k` (count :math:`c_k`, number :math:`n_k` among the
:math:`N` steps asked for) makes a model call from every state it is in and computes the mean gap over the
answer region :math:`A`,

.. math:: \bar g(S, x_S) = \frac{1}{|A|} \sum_{i \in A} g_i, \qquad
          g_i = \begin{cases} \ell_i^{(1)} - \ell_i^{(2)} & i \notin S \\ 0 - (-10^9) = 10^9 & i \in S \end{cases}

with :math:`\ell_i = \log q(\cdot \mid x_S)` over the :math:`d` values (``-1e9`` for a zero probability, top two
by value, equal values a gap of 0) — exactly the logits :class:`~mdm_energy.sampling.ExactTorchDenoiser` gives:
the log posterior at a masked position and a one-hot (0 for the token, ``-1e9`` elsewhere; the mask id is
never proposed) at a revealed one, so a revealed region position has gap :math:`10^9`. Where
:math:`\bar g \ge \tau(n_k / N)` (:func:`~mdm_energy.exit_rule.phase_threshold`) the run exits: every masked
position is drawn independently from :math:`q(x_i \mid x_S)` and the run ends with :math:`k` calls,

.. math:: P(x) \mathrel{+}= f_{k-1}(S)(x_S)\,[\bar g(S, x_S) \ge \tau_k] \prod_{i \notin S} q(x_i \mid x_S);

elsewhere :math:`f_{k-1}(S)\,[\bar g < \tau_k]` takes the step's fixed-count commits (``random``: a uniform
:math:`c_k`-subset; a confidence rule: the :math:`c_k` best-scored of a full candidate vector), as in
:func:`~mdm_energy.exact.law_fixed_random` and :func:`~mdm_energy.exact.law_confidence`. The expected number of
calls is :math:`\sum_k \sum_{S, x_S} f_{k-1}(S)(x_S)` over the steps that call the model.

**Zero-count steps** still call the model and test the gap, unless ``skip_empty_steps`` is set or the block
has more steps than positions (then they are dropped, and the others keep their numbers among the steps
asked for): the torch sampler's rule. A run that revealed every position before trailing zero-count steps
still calls at them, and exits at the first (its gap is :math:`10^9`) unless the threshold is above that.

**Rounding.** The gap is formed in float64 by numpy here and by torch in the sampler; the two may differ in
the last bits (``log``, the order of the mean's sum), so a threshold equal to a reachable gap to within
:math:`10^{-12}` is decided by round-off in either — :func:`prophet_gaps` lists the reachable gaps, to keep
thresholds away from them.

This is the law of the ``prophet`` torch sampler at temperature 1 over one block without guidance, on the
exact denoiser (:func:`mdm_energy.registry.exact_check_options`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..exit_rule import answer_region, phase_threshold
from ..registry import REMASKING
from .denoiser import ExactDenoiser
from .laws import Law, _accumulate, check_confidence_size, confidence_step, random_step

__all__ = ["NEG_LOGIT", "REVEALED_GAP", "PROPHET_OPTIONS", "law_prophet", "prophet_gap", "prophet_gaps",
           "prophet_options"]

#: The logit :class:`~mdm_energy.sampling.ExactTorchDenoiser` gives a zero probability.
NEG_LOGIT = -1e9
#: The gap the torch sampler sees at a revealed position of the exact denoiser: its one-hot, 0 - (-1e9).
REVEALED_GAP = 0.0 - NEG_LOGIT
#: The ``prophet`` options its exact law depends on (besides the schedule, the steps and ``remasking``).
PROPHET_OPTIONS = ("gap_early", "gap_mid", "gap_late", "answer_start", "answer_length", "skip_empty_steps")


def prophet_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`law_prophet` among a ``prophet`` sampler's validated options ``opts``."""
    return {"remasking": opts.get("remasking", "low_confidence"), **{k: opts[k] for k in PROPHET_OPTIONS if k in opts}}


def _logits(p: np.ndarray) -> np.ndarray:
    """The exact torch denoiser's logits of probabilities ``p``: log p, ``-1e9`` where p = 0."""
    with np.errstate(divide="ignore"):
        return np.where(p > 0, np.log(np.maximum(p, 1e-300)), NEG_LOGIT)


def prophet_gap(den: ExactDenoiser, S: int, region: Sequence[int]) -> np.ndarray:
    r"""The mean top-1 minus top-2 logit gap over the positions ``region`` of every state with revealed set ``S``,
    in broadcast form over :math:`S` (module docstring: :math:`10^9` at a revealed position)."""
    total = np.zeros((1,) * den.n)
    for i in region:
        if S >> i & 1:
            g: "np.ndarray | float" = REVEALED_GAP
        else:
            top = np.sort(_logits(den.conditional(S, i)), axis=i)
            g = np.take(top, [-1], axis=i) - np.take(top, [-2], axis=i)
        total = total + g
    return total / len(region)


def prophet_gaps(den: ExactDenoiser, answer_start: int = 0, answer_length: "int | None" = None) -> np.ndarray:
    """Every distinct mean gap over the answer region, over all revealed sets and values (sorted): a threshold
    equal to one of them is decided by round-off (module docstring)."""
    lo, hi = answer_region(den.n, answer_start, answer_length)
    region = range(lo, hi)
    return np.unique(np.concatenate([prophet_gap(den, S, region).reshape(-1) for S in range(den.full + 1)]))


def law_prophet(
    den: ExactDenoiser,
    counts: Sequence[int],
    remasking: str = "low_confidence",
    gap_early: float = 7.5,
    gap_mid: float = 5.0,
    gap_late: float = 2.5,
    answer_start: int = 0,
    answer_length: "int | None" = None,
    skip_empty_steps: bool = False,
) -> tuple[np.ndarray, float]:
    """The exact output law (shape ``(d,)*n``) of Prophet with the per-step ``counts`` of one block (the
    schedule's, zero counts included: ``len(counts)`` is the number of steps) and its expected number of model
    calls (module docstring). ``remasking`` is any rule of the fixed-count sampler."""
    counts = [int(c) for c in counts]
    if not counts or sum(counts) != den.n or min(counts) < 0:
        raise ValueError(f"counts must be non-negative and sum to n={den.n}, got {counts}")
    if remasking not in REMASKING:
        raise ValueError(f"unknown remasking rule {remasking!r} (known: {', '.join(REMASKING)})")
    if remasking != "random":
        check_confidence_size(den)
    lo, hi = answer_region(den.n, int(answer_start), answer_length)
    region, steps, shape = range(lo, hi), len(counts), den.q.shape
    dropped = steps > den.n  # the cap rule: more steps than positions drops the zero-count steps
    gaps: dict[int, np.ndarray] = {}
    out = np.zeros(shape)
    calls = 0.0
    f: Law = {0: np.ones((1,) * den.n)}
    for k, c in enumerate(counts):
        if c == 0 and (dropped or skip_empty_steps):
            continue  # no model call, no gap test
        tau = phase_threshold(k + 1, steps, gap_early, gap_mid, gap_late)
        new: Law = {}
        for S, fS in f.items():
            calls += float(fS.sum())
            if S not in gaps:
                gaps[S] = prophet_gap(den, S, region)
            exits = gaps[S] >= tau
            stay = fS
            if exits.any():
                done = np.where(exits, fS, 0.0)
                for i in range(den.n):
                    if not S >> i & 1:  # every masked position: its candidate of this call, given x_S
                        done = done * den.conditional(S, i)
                out += np.broadcast_to(done, shape)
                if exits.all():
                    continue
                stay = np.where(exits, 0.0, fS)
            if c == 0:
                _accumulate(new, S, stay)
            elif remasking == "random":
                random_step(den, S, stay, c, new)
            else:
                confidence_step(den, S, stay, c, remasking, new)
        f = new
    for S, fS in f.items():  # the runs that never exited have revealed every position
        if S != den.full:
            raise RuntimeError("the sampler did not reveal every position")
        out += np.broadcast_to(fS, shape)
    return out, calls
