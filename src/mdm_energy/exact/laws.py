r"""Exact output laws of MDM samplers on an explicit law, and their KL / TV to it (docs/design.md §5).

With :math:`f_k(S)(x_S)` the probability of having revealed exactly the set :math:`S` with values
:math:`x_S` after :math:`k` steps, the random-position samplers obey

.. math:: f_k(S) = \sum_{S' \subseteq S} f_{k-1}(S')\, P_k(S \mid S') \prod_{i \in S \setminus S'} q(x_i \mid x_{S'}),

because every token revealed in a step is drawn from the exact posterior given what was revealed
*before* the step (tokens revealed together are drawn independently). :math:`P_k` is

* fixed-count ``random``: :math:`1/\binom{n-|S'|}{c_k}` when :math:`|S \setminus S'| = c_k`;
* ``ancestral`` and ``euler``: :math:`\pi_k^{|S\setminus S'|}(1-\pi_k)^{n-|S|}` with a per-step reveal
  probability :math:`\pi_k` (:func:`reveal_probabilities`).

Subsets of new positions are enumerated depth-first with a running product of posteriors, and every
product is one numpy operation over all values of the revealed tokens, so no Python loop runs over
sequences.

Fixed-count with a confidence-ordered remasking rule (``low_confidence``, LLaDA's default, or
``margin``/``entropy``) draws a candidate for every masked position from its posterior and commits the
:math:`c_k` best-scored candidates (ties to the lower position). Its law needs the joint law of all
candidates, so each step enumerates every candidate vector — exact, but only feasible for small
:math:`d^n`.

A fixed reveal order (``fixed-order``: DUS, whose step :math:`k` reveals a set :math:`G_k` of positions fixed
before the run, :mod:`mdm_energy.dilation`) has one revealed set per step, so its law is one product,
:math:`\prod_k \prod_{i \in G_k} q(x_i \mid x_{G_1 \cup \dots \cup G_{k-1}})` (:func:`law_fixed_order`).

ReMDM (``remdm``: reveals with :math:`c_k` and re-masks committed tokens with :math:`\sigma_k`) has its own
chain over partly masked states in :mod:`.revision` (:func:`law_remdm`); :func:`exact_sampler` reports its
expected number of model calls. Prophet (``prophet``: the fixed-count recursion with an exit test before each
step's commits) is in :mod:`.prophet`, with its expected number of model calls too.

Every law here is that of the torch sampler at temperature 1 (candidates from the model's own law),
one block, no guidance: :func:`mdm_energy.registry.exact_check_options` gives those torch options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ..dilation import dilated_order, order_groups
from ..limits import check_time
from ..registry import REMASKING, exact_check_options, sampler_spec
from ..reveal import reveal_probabilities
from ..schedules import Schedule
from .denoiser import ExactDenoiser, popcount, positions
from .distributions import ExplicitDistribution, load_distribution
from .revision import law_remdm, remdm_plan

__all__ = [
    "MAX_CONFIDENCE_STATES",
    "check_confidence_size",
    "ExactResult",
    "exact_options",
    "law_fixed_random",
    "law_fixed_order",
    "fixed_order_groups",
    "law_independent",
    "law_confidence",
    "random_step",
    "confidence_step",
    "law_remdm",
    "law_fixed_count",
    "sampler_law",
    "kl_divergence",
    "tv_distance",
    "exact_sampler",
]

#: The largest d^n for which the law of a confidence-ordered remasking rule is computed exactly.
MAX_CONFIDENCE_STATES = 1 << 16
#: Confidences closer than this (relative) count as tied, so round-off in the posteriors cannot
#: reorder positions whose posteriors are equal in exact arithmetic; ties go to the lower position.
CONFIDENCE_TIE_DECIMALS = 12

Law = dict  # revealed set (bitmask) -> broadcast-form array


def _subsets(den: ExactDenoiser, S: int, fS: np.ndarray, sizes: "set[int] | None") -> Iterator[tuple[int, int, np.ndarray]]:
    """Depth-first over subsets A of the positions outside S: yields (A, |A|, f(S) * prod q(x_i | x_S))."""
    free = [i for i in range(den.n) if not S >> i & 1]
    max_size = max(sizes) if sizes is not None else len(free)
    stack = [(0, 0, 0, fS)]
    while stack:
        A, k, start, arr = stack.pop()
        if sizes is None or k in sizes:
            yield A, k, arr
        if k == max_size:
            continue
        for j in range(start, len(free)):
            i = free[j]
            stack.append((A | (1 << i), k + 1, j + 1, arr * den.conditional(S, i)))


def _accumulate(new: Law, S: int, arr: np.ndarray) -> None:
    new[S] = arr if S not in new else new[S] + arr


def _finish(den: ExactDenoiser, f: Law) -> np.ndarray:
    law = f.get(den.full)
    if law is None:
        raise RuntimeError("the sampler did not reveal every position")
    return np.broadcast_to(law, den.q.shape).copy()


def law_fixed_random(den: ExactDenoiser, counts: Sequence[int]) -> np.ndarray:
    """Exact law of fixed-count sampling with uniformly random positions (``counts`` sums to n)."""
    counts = [int(c) for c in counts]
    if sum(counts) != den.n or min(counts) < 0:
        raise ValueError(f"counts must be non-negative and sum to n={den.n}, got {counts}")
    f: Law = {0: np.ones((1,) * den.n)}
    for c in counts:
        if c == 0:
            continue
        new: Law = {}
        for S, fS in f.items():
            random_step(den, S, fS, c, new)
        f = new
    return _finish(den, f)


def random_step(den: ExactDenoiser, S: int, fS: np.ndarray, c: int, new: Law) -> None:
    """One fixed-count ``random`` step from the revealed set ``S`` (mass ``fS``): ``c`` uniformly chosen masked
    positions, each drawn from its posterior given :math:`x_S`; adds the outcomes into ``new``."""
    w = 1.0 / math.comb(den.n - popcount(S), c)
    for A, _, arr in _subsets(den, S, fS, {c}):
        _accumulate(new, S | A, w * arr)


def law_fixed_order(den: ExactDenoiser, groups: Sequence[Sequence[int]]) -> np.ndarray:
    r"""Exact law of revealing the position sets ``groups`` one after the other (each token drawn from its
    posterior given the earlier groups, independently of the rest of its group); they must partition the
    positions. :math:`\prod_k \prod_{i \in G_k} q(x_i \mid x_{G_{<k}})`, one product (empty groups are skipped)."""
    flat = [int(i) for g in groups for i in g]
    if sorted(flat) != list(range(den.n)):
        raise ValueError(f"the groups must partition the {den.n} positions, got {[list(g) for g in groups]}")
    S, arr = 0, np.ones((1,) * den.n)
    for group in groups:
        step = arr
        for i in group:
            step = step * den.conditional(S, int(i))  # given what the earlier groups revealed only
        arr = step
        for i in group:
            S |= 1 << int(i)
    return _finish(den, {S: arr})


def fixed_order_groups(options: Mapping[str, Any], n: int) -> list[list[int]]:
    """The position sets of the ``fixed-order`` law of a sampler with these (validated) options over one block
    of ``n`` positions: its dilated order (``dilation``, ``dilation_skip``) cut by the schedule's counts."""
    counts = options["schedule"].counts(n, options["steps"]).tolist()
    return order_groups(dilated_order(n, options["dilation"], options["dilation_skip"]), counts)


def law_independent(den: ExactDenoiser, pis: Sequence[float]) -> np.ndarray:
    r"""Exact law when each masked position is revealed at step :math:`k` with probability :math:`\pi_k`,
    independently (ancestral and Euler samplers); the last :math:`\pi` must be 1.

    The state is one array over :math:`\{0..d-1, M\}^n` (``M`` = index ``d``, masked). For each revealed
    set :math:`S'` the step extends :math:`f(S')` axis by axis over the masked positions: value
    :math:`v` with weight :math:`\pi\,q(x_i = v \mid x_{S'})`, or ``M`` with weight :math:`1-\pi`.
    Because every new token is conditioned on :math:`x_{S'}` alone, this builds the whole sum over
    subsets of new positions at once, in :math:`O((2d+1)^n)` work per step and :math:`2^n` numpy
    calls, without enumerating the subsets.
    """
    pis = [float(p) for p in pis]
    if not pis or pis[-1] != 1.0 or any(not 0.0 <= p <= 1.0 for p in pis):
        raise ValueError(f"reveal probabilities must lie in [0, 1] and end with 1, got {pis[:8]}")
    n, d = den.n, den.d
    active = sum(1 for p in pis if p > 0.0)
    # per step: 2^n revealed sets with ~n+1 numpy calls each (~4 us apiece), and (3d+1)^n array elements
    # in all (~0.35 ns apiece); measured from n=4..10, d=2..6 here
    check_time(active * (2**n * (n + 1) * 4e-6 + (3 * d + 1) ** n * 3.5e-10), f"the exact law over {active:,} steps")
    F = np.zeros((d + 1,) * n)
    F[(d,) * n] = 1.0  # all masked
    for pi in pis:
        if pi == 0.0:
            continue
        new = np.zeros_like(F)
        for S in range(den.full + 1):
            J = F[tuple(slice(0, d) if S >> i & 1 else slice(d, d + 1) for i in range(n))]
            if not J.any():
                continue
            free = [i for i in range(n) if not S >> i & 1]
            if pi < 1.0:
                # pi^|A| (1-pi)^(m-|A|) = (1-pi)^m r^|A|, r = pi/(1-pi): scale once, not per axis
                J = J * (1.0 - pi) ** len(free)
                r = pi / (1.0 - pi)
            for i in free:
                cond = den.conditional(S, i)  # does not depend on the other candidates
                if pi == 1.0:
                    J = J * cond
                else:  # keep the candidate (weight r) or leave i masked (weight 1; it sums out to J)
                    J = np.concatenate([J * (r * cond), J], axis=i)
            hi = d if pi == 1.0 else d + 1
            new[tuple(slice(0, d) if S >> i & 1 else slice(0, hi) for i in range(n))] += J
        F = new
    return F[(slice(0, d),) * n].copy()


def check_confidence_size(den: ExactDenoiser) -> None:
    """Refuse (``ValueError``) a law too large for the confidence rules' exact enumeration."""
    if den.d**den.n > MAX_CONFIDENCE_STATES:
        raise ValueError(
            f"the exact law of a confidence-ordered remasking rule enumerates every candidate vector: d^n = "
            f"{den.d}^{den.n} = {den.d ** den.n:,} exceeds its limit {MAX_CONFIDENCE_STATES:,}; "
            "use remasking random, or estimate the law by Monte Carlo sampling"
        )


def _scores(den: ExactDenoiser, S: int, i: int, rule: str) -> np.ndarray:
    """Remasking score of masked position i given the revealed set S (higher = committed first)."""
    cond = den.conditional(S, i)
    if rule == "low_confidence":  # probability of the candidate itself: depends on the candidate (axis i)
        return cond
    if rule == "margin":  # top-1 minus top-2 posterior probability
        top = np.sort(cond, axis=i)
        return np.take(top, [-1], axis=i) - np.take(top, [-2], axis=i)
    if rule == "entropy":  # lowest entropy first
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(np.where(cond > 0, cond * np.log(cond), 0.0), axis=i, keepdims=True)
    raise ValueError(f"unknown remasking rule {rule!r} (known: {', '.join(REMASKING)})")


def law_confidence(den: ExactDenoiser, counts: Sequence[int], rule: str = "low_confidence") -> np.ndarray:
    """Exact law of fixed-count sampling at temperature 1 that commits the ``counts[k]`` best-scored
    candidates, by remasking ``rule``: ``low_confidence`` (highest posterior probability of the
    candidate, LLaDA's default), ``margin`` (top-1 minus top-2) or ``entropy`` (lowest entropy).
    Scores equal to 12 decimals tie, and ties go to the lower position."""
    if rule not in REMASKING or rule == "random":
        raise ValueError(f"law_confidence takes a confidence rule (low_confidence, margin, entropy), not {rule!r}")
    check_confidence_size(den)
    counts = [int(c) for c in counts]
    if sum(counts) != den.n or min(counts) < 0:
        raise ValueError(f"counts must be non-negative and sum to n={den.n}, got {counts}")
    f: Law = {0: np.ones((1,) * den.n)}
    for c in counts:
        if c == 0:
            continue
        new: Law = {}
        for S, fS in f.items():
            confidence_step(den, S, fS, c, rule, new)
        f = new
    return _finish(den, f)


def confidence_step(den: ExactDenoiser, S: int, fS: np.ndarray, c: int, rule: str, new: Law) -> None:
    """One fixed-count step of a confidence ``rule`` from the revealed set ``S`` (mass ``fS``): a candidate for
    every masked position from its posterior given :math:`x_S`, the ``c`` best-scored committed (ties to 12
    decimals go to the lower position); adds the outcomes into ``new``."""
    n, shape = den.n, den.q.shape
    free = positions(den.full & ~S, n)
    # Axis i of the joint array holds x_i for i in S and the candidate for i outside S.
    joint = fS
    for i in free:
        joint = joint * den.conditional(S, i)
    joint = np.broadcast_to(joint, shape).reshape(-1)
    conf = np.stack([np.broadcast_to(_scores(den, S, i, rule), shape).reshape(-1) for i in free])
    conf = np.round(conf, CONFIDENCE_TIE_DECIMALS)
    order = np.argsort(-conf, axis=0, kind="stable")[:c]  # stable: ties keep position order
    top_mask = (np.left_shift(1, np.asarray(free)[order])).sum(axis=0)
    for T in np.unique(top_mask[joint > 0]):
        T = int(T)
        part = np.where(top_mask == T, joint, 0.0).reshape(shape)
        drop = tuple(i for i in free if not T >> i & 1)  # candidates not committed are discarded
        _accumulate(new, S | T, part.sum(axis=drop, keepdims=True) if drop else part)


def kl_divergence(q: np.ndarray, p: np.ndarray) -> float:
    r""":math:`\mathrm{KL}(q \Vert p) = \sum_x q(x) \log(q(x)/p(x))` in nats (``inf`` if p misses q's support)."""
    q, p = np.asarray(q, dtype=np.float64).reshape(-1), np.asarray(p, dtype=np.float64).reshape(-1)
    on = q > 0
    if np.any(p[on] <= 0):
        return math.inf
    return max(float(np.sum(q[on] * (np.log(q[on]) - np.log(p[on])))), 0.0)


def tv_distance(q: np.ndarray, p: np.ndarray) -> float:
    r"""Total variation :math:`\tfrac12 \sum_x |q(x) - p(x)|`."""
    return 0.5 * float(np.abs(np.asarray(q).reshape(-1) - np.asarray(p).reshape(-1)).sum())


def exact_options(sampler: str, schedule: "Schedule | str", steps: int, remasking: "str | None" = None,
                  options: "Mapping[str, Any] | None" = None) -> dict[str, Any]:
    """The validated options of the torch sampler whose law the exact engine computes (see
    :func:`mdm_energy.registry.exact_check_options`); ``remasking`` ``None`` means the sampler's default, and
    ``options`` are further options of the sampler (``remdm``: ``sigma``, ``eta``, ``revise_from``, ``loop_*``)."""
    from ..schedules import single_schedule

    schedule = single_schedule(schedule, "an exact law")  # the exact engine runs one block
    given: dict[str, Any] = {**(options or {}), "schedule": schedule, "steps": steps}
    if remasking is not None:
        given["remasking"] = remasking
    return exact_check_options(sampler, **given)


def law_fixed_count(den: ExactDenoiser, counts: Sequence[int], remasking: str) -> np.ndarray:
    """Exact law of the fixed-count sampler with per-step ``counts`` and a remasking rule."""
    if remasking == "random":
        return law_fixed_random(den, counts)
    return law_confidence(den, counts, remasking)


def sampler_law(
    den: ExactDenoiser, sampler: str, schedule: "Schedule | str", steps: int, remasking: "str | None" = None,
    options: "Mapping[str, Any] | None" = None,
) -> tuple[np.ndarray, "list[int] | None"]:
    """The exact output law of ``sampler`` with ``schedule`` over ``steps`` steps (and its counts, if fixed-count);
    ``options`` as in :func:`exact_options` (ReMDM's and Prophet's expected model calls: :func:`exact_sampler`)."""
    opts = exact_options(sampler, schedule, steps, remasking, options)
    s, law = opts["schedule"], sampler_spec(sampler).exact_law  # the law the sampler's declaration names
    if law == "fixed-count":
        counts = s.counts(den.n, steps).tolist()
        return law_fixed_count(den, counts, opts.get("remasking", "low_confidence")), counts
    if law == "remdm":
        return law_remdm(den, remdm_plan(opts, den.n))[0], None
    if law == "fixed-order":
        groups = fixed_order_groups(opts, den.n)
        return law_fixed_order(den, groups), [len(g) for g in groups]
    if law == "prophet":
        from .prophet import law_prophet, prophet_options  # it builds on this module's steps

        counts = s.counts(den.n, steps).tolist()
        return law_prophet(den, counts, **prophet_options(opts))[0], counts
    return law_independent(den, reveal_probabilities(s, steps, law)), None


@dataclass(frozen=True)
class ExactResult:
    """The exact output law of one sampler run and its distance to the target."""

    sampler: str
    schedule: str
    steps: int
    remasking: "str | None"
    kl: float
    tv: float
    nfe: int
    counts: list[int] | None
    law: np.ndarray = field(repr=False)
    #: The expected number of model calls where it differs from ``nfe`` = ``steps`` (``remdm``: a step that
    #: reveals nothing makes no call; ``prophet``: a run ends at its exit call); ``None`` for the samplers that
    #: call the model at every step.
    expected_calls: "float | None" = None


def exact_sampler(
    dist: "ExplicitDistribution | ExactDenoiser | str | np.ndarray",
    sampler: str,
    schedule: "Schedule | str",
    steps: int,
    remasking: "str | None" = None,
    options: "Mapping[str, Any] | None" = None,
) -> ExactResult:
    """KL(q ‖ law), TV and the law of ``sampler`` on ``dist`` (a spec, ``.npy`` path, array or denoiser).

    ``remasking`` picks the rule of the ``fixed`` sampler (default, as everywhere, ``low_confidence``);
    ``options`` are further sampler options (``remdm``: ``sigma``, ``eta``, ``revise_from``, ``loop_start``,
    ``loop_end``, ``loop_alpha``; ``dus-schedule``: ``dilation``, ``dilation_skip``). NFE counts every step, zero-token steps included (they still cost a model
    call); for ``remdm``, whose steps that reveal nothing make no call, and ``prophet``, whose run ends at its
    exit (options ``gap_early``, ``gap_mid``, ``gap_late``, ``answer_start``, ``answer_length``,
    ``skip_empty_steps``; :mod:`.prophet`), ``expected_calls`` is the expected number of model calls.
    """
    opts = exact_options(sampler, schedule, steps, remasking, options)
    den = dist if isinstance(dist, ExactDenoiser) else ExactDenoiser(dist if isinstance(dist, ExplicitDistribution) else load_distribution(dist))
    rule = opts.get("remasking")
    if rule not in (None, "random"):
        check_confidence_size(den)
    calls = None
    kind = sampler_spec(sampler).exact_law
    if kind == "remdm":
        law, calls = law_remdm(den, remdm_plan(opts, den.n))
        counts = None
    elif kind == "prophet":
        from .prophet import law_prophet, prophet_options

        counts = opts["schedule"].counts(den.n, steps).tolist()
        law, calls = law_prophet(den, counts, **prophet_options(opts))
    else:
        law, counts = sampler_law(den, sampler, opts["schedule"], steps, rule, options)
    return ExactResult(
        sampler=sampler,
        schedule=opts["schedule"].spec,
        steps=int(steps),
        remasking=rule,
        kl=kl_divergence(den.q, law),
        tv=tv_distance(den.q, law),
        nfe=int(steps),
        counts=counts,
        law=law,
        expected_calls=calls,
    )
