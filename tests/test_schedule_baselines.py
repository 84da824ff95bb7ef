"""The literature's schedules as baselines: Jump Your Steps (KLUB exact against brute force, the Monte Carlo KLUB
against the exact one, the hierarchical search against exhaustive search), Chen-Cong-Li's TC/DTC schedules (TC and
DTC against their definitions), and randomised step sizes (the mixture law against its definition)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mdm_energy.exact import ExactDenoiser, compositions, counts_schedule, infocurve_bound, infocurve_counts
from mdm_energy.exact.correlation import (correlation_counts, curve_correlation_counts, curve_correlations, dtc_counts,
                                          dual_total_correlation, law_randomised, randomised_counts, scale_counts,
                                          tc_counts, total_correlation)
from mdm_energy.exact.laws import law_fixed_random
from mdm_energy.jys import ModelKLUB, curve_klub, exhaustive_argmax, golden_section_argmax, jys_counts
from mdm_energy.sampling import ExactTorchDenoiser
from mdm_energy.schedules import parse_schedule

LAWS = ["markov:5,3,0", "templates:5,3,1", "toy2"]


# --- independent references, written from the definitions ----------------------------------------------------


def _marg(q: np.ndarray, keep: "set[int]") -> np.ndarray:
    """q summed over the axes outside ``keep`` (kept as size-1 axes)."""
    axes = tuple(i for i in range(q.ndim) if i not in keep)
    return q.sum(axis=axes, keepdims=True) if axes else q


def brute_klub(q: np.ndarray, a: int, m: int, b: int) -> float:
    """(b - m) * E KL(q(x_i | x_{S_m}) || q(x_i | x_{S_a})): S_m uniform of size m, S_a a uniform subset of size a,
    i uniform outside S_m, x from q — every triple enumerated, every posterior summed out of q."""
    n = q.ndim
    total, count = 0.0, 0
    for Sm in itertools.combinations(range(n), m):
        for Sa in itertools.combinations(Sm, a):
            for i in (j for j in range(n) if j not in Sm):
                pm = _marg(q, set(Sm) | {i}) / np.maximum(_marg(q, set(Sm)), 1e-300)
                pa = _marg(q, set(Sa) | {i}) / np.maximum(_marg(q, set(Sa)), 1e-300)
                joint = _marg(q, set(Sm) | {i})  # x_{S_m}, x_i: the expectation's weights
                on = joint > 0
                term = np.where(on, joint * (np.log(np.where(on, pm, 1)) - np.log(np.where(on, pa, 1))), 0.0)
                total += float(np.broadcast_to(term, joint.shape).sum())
                count += 1
    return (b - m) * total / count


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def reference_golden(f, a, b, err=0.25, max_iter=32):
    """The authors' golden-section variant rewritten from its description: bracket (a+1.001, b-1.001), first probe
    at the 0.382 point, then in the larger side; an improving probe becomes the centre (ends unchanged), a worse
    one moves the end of its side; answer: the best point evaluated (ends included, first of equals)."""
    phi = 1.618
    pts, vals = [], []

    def ev(x):
        pts.append(x)
        vals.append(f(int(round(x))))
        return vals[-1]

    lo, hi = a + 1.001, b - 1.001
    c = lo + (hi - lo) / (1 + phi)
    ev(lo), ev(c), ev(hi)
    fc = vals[1]
    for _ in range(max_iter):
        if not hi - lo > err:
            break
        left = c - lo > hi - c
        x = c - (c - lo) / (1 + phi) if left else c + (hi - c) / (1 + phi)
        fx = ev(x)
        if fx > fc:
            c, fc = x, fx
        elif left:
            lo = x
        else:
            hi = x
    k = max(range(len(vals)), key=lambda j: (vals[j], -j))
    return int(round(pts[k]))


# --- JYS ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("law", LAWS)
def test_exact_klub_is_the_brute_force_expected_posterior_kl(law):
    den = ExactDenoiser(law)
    klub = curve_klub(den.information_curve())
    for a, m, b in [(0, 1, 5), (0, 2, 4), (1, 3, 5), (2, 3, 4), (0, 4, 5)]:
        assert klub(a, m, b) == pytest.approx(brute_klub(den.q, a, m, b), rel=1e-9, abs=1e-12)


def test_the_klub_is_the_bound_drop_of_the_split():
    den = ExactDenoiser("markov:6,3,1")
    Z, klub, n = den.information_curve(), curve_klub(den.information_curve()), den.n
    for a, m, b in [(0, 2, 6), (1, 4, 6), (3, 4, 5)]:
        drop = infocurve_bound(Z, [a, b - a, n - b]) - infocurve_bound(Z, [a, m - a, b - m, n - b])
        assert klub(a, m, b) == pytest.approx(drop, abs=1e-12)


def test_the_authors_rate_term():
    Z = np.linspace(0, 1, 8)
    assert curve_klub(Z, rate_term=True)(1, 3, 6) - curve_klub(Z)(1, 3, 6) == pytest.approx(3 * math.log(7 / 5))


@pytest.mark.parametrize("seed", range(6))
def test_golden_section_matches_the_reference_rewrite_and_finds_a_unimodal_peak(seed):
    rng = np.random.default_rng(seed)
    vals = rng.normal(size=40)
    f = lambda k: float(vals[k])  # noqa: E731
    for a, b in [(0, 39), (3, 20), (5, 8), (10, 12)]:
        assert golden_section_argmax(f, a, b)[0] == reference_golden(f, a, b)
    peak = int(rng.integers(2, 60))
    g = lambda k: -abs(k - peak) - 0.01 * k  # noqa: E731  (unimodal, one peak)
    assert golden_section_argmax(g, 0, 64)[0] == peak
    assert exhaustive_argmax(g, 0, 64)[0] == peak


@pytest.mark.parametrize("law", LAWS + ["potts:6,3,2"])
def test_two_steps_by_exhaustive_jys_are_the_best_two_step_bound(law):
    den = ExactDenoiser(law)
    Z, n = den.information_curve(), den.n
    j = jys_counts(curve_klub(Z), n, 2, search="exhaustive")
    best = min(infocurve_bound(Z, c) for c in compositions(n, 2) if min(c) > 0)
    assert infocurve_bound(Z, j.counts) == pytest.approx(best, abs=1e-12)
    assert infocurve_bound(Z, infocurve_counts(Z, 2).counts) == pytest.approx(best, abs=1e-12)


def test_four_steps_are_two_levels_of_per_interval_argmax():
    den = ExactDenoiser("markov:7,3,3")
    Z, n = den.information_curve(), den.n
    k = curve_klub(Z)
    m = max(range(1, n), key=lambda x: (k(0, x, n), -x))  # level 1
    left = max(range(1, m), key=lambda x: (k(0, x, m), -x)) if m >= 2 else None
    right = max(range(m + 1, n), key=lambda x: (k(m, x, n), -x)) if n - m >= 2 else None
    cuts = sorted({0, m, n} | {c for c in (left, right) if c is not None})
    j = jys_counts(k, n, 4, search="exhaustive")
    assert j.levels[1] == [0, m, n] and j.levels[2] == cuts
    assert j.counts == [b - a for a, b in zip(cuts, cuts[1:])]


@pytest.mark.parametrize("law", LAWS + ["potts:6,3,2", "templates:7,3,0"])
def test_jys_never_beats_the_dp_on_the_bound_and_never_has_an_empty_step(law):
    den = ExactDenoiser(law)
    Z, n = den.information_curve(), den.n
    for N in range(1, n + 1):
        for search in ("golden", "exhaustive"):
            j = jys_counts(curve_klub(Z), n, N, search=search)
            assert len(j.counts) == N and sum(j.counts) == n and min(j.counts) >= 1
            assert infocurve_bound(Z, infocurve_counts(Z, N).counts) <= infocurve_bound(Z, j.counts) + 1e-12
            assert parse_schedule(j.spec).counts(n, N).tolist() == j.counts  # a table: usable everywhere
    assert jys_counts(curve_klub(Z), n, n + 2).counts == [1] * n + [0, 0]  # more steps than tokens


def test_jys_refuses_bad_input():
    k = curve_klub(np.zeros(4))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        jys_counts(k, 4, 0)
    with pytest.raises(ValueError, match="unknown search 'best'"):
        jys_counts(k, 4, 2, search="best")
    with pytest.raises(ValueError, match="need 0 <= a < m < b <= 4, got a=2, m=2, b=3"):
        k(2, 2, 3)


def test_the_model_klub_converges_to_the_exact_one_and_counts_its_calls():
    den = ExactDenoiser("markov:4,3,0")
    rng = np.random.default_rng(0)
    flat = den.q.reshape(-1)
    xs = np.stack(np.unravel_index(rng.choice(flat.size, size=6000, p=flat), den.q.shape), axis=1)
    mc = ModelKLUB(ExactTorchDenoiser(den), None, 4, samples=6000, completions=xs.tolist(), batch_size=3000, seed=1)
    exact = curve_klub(den.information_curve())
    for a, m, b in [(0, 1, 4), (0, 2, 4), (1, 2, 3)]:
        assert mc(a, m, b) == pytest.approx(exact(a, m, b), abs=0.02 + 0.05 * exact(a, m, b))
    assert mc.calls == 3 * 2 and mc.row_calls == 3 * 6000  # counts 0, 1, 2: one call per batch each, cached
    j = jys_counts(mc, 4, 2, search="exhaustive")
    assert j.calls == mc.calls and j.counts == jys_counts(exact, 4, 2, search="exhaustive").counts


def test_the_model_klub_generates_its_own_completions():
    den = ExactDenoiser("toy2")
    mc = ModelKLUB(ExactTorchDenoiser(den), None, 5, samples=64, batch_size=32, seed=0)
    assert mc.generation_calls == 5 * 2 and mc.calls == 10
    j = jys_counts(mc, 5, 3)
    assert sum(j.counts) == 5 and min(j.counts) >= 1 and j.calls > 10


# --- Chen-Cong-Li and randomised sizes -----------------------------------------------------------------------


@pytest.mark.parametrize("law", LAWS)
def test_tc_and_dtc_from_their_definitions_and_the_information_curve(law):
    den = ExactDenoiser(law)
    q, n = den.q, den.n
    H = entropy(q.reshape(-1))
    tc = sum(entropy(_marg(q, {i}).reshape(-1)) for i in range(n)) - H
    dtc = H - sum(H - entropy(_marg(q, set(range(n)) - {i}).reshape(-1)) for i in range(n))  # H(X_i | X_-i)
    Z = den.information_curve()
    assert total_correlation(den) == pytest.approx(tc, abs=1e-10) == pytest.approx(Z.sum(), abs=1e-10)
    assert dual_total_correlation(den) == pytest.approx(dtc, abs=1e-10)
    assert dtc == pytest.approx(n * Z[-1] - Z.sum(), abs=1e-10)


@pytest.mark.parametrize("law", LAWS + ["potts:6,3,0"])
def test_tc_and_dtc_from_an_information_curve_and_from_a_model_profile(law):
    """The curve formulas against the entropy definitions; then the estimate a real model allows — its
    random-order mean profile at temperature 1 — against the law's exact TC and DTC (Monte Carlo, 12,000
    completions: within 5% + 0.01 nats), and the choice between the two schedules it makes."""
    from mdm_energy.profile import estimate_profile

    den = ExactDenoiser(law)
    tc, dtc = total_correlation(den), dual_total_correlation(den)
    assert curve_correlations(den.information_curve()) == pytest.approx((tc, dtc), abs=1e-10)
    prof = estimate_profile(ExactTorchDenoiser(den), None, den.n, samples=12_000, batch_size=4000, seed=3,
                            order="random", statistic="mean")
    est = curve_correlations(prof.information_curve())
    assert est == pytest.approx((tc, dtc), abs=0.01, rel=0.05), (est, tc, dtc)
    for N in (2, 3, den.n):
        which, counts = curve_correlation_counts(den.information_curve(), N)
        assert (which, counts) == correlation_counts(den, N)
    with pytest.raises(ValueError, match="non-empty 1-d array"):
        curve_correlations([])


def test_tc_and_dtc_schedules():
    for n, N in [(8, 4), (24, 6), (81, 9), (5, 5), (10, 1)]:
        tc, dtc = tc_counts(n, N), dtc_counts(n, N)
        for c in (tc, dtc):
            assert len(c) == N and sum(c) == n and min(c) >= 1
        assert tc == sorted(tc, reverse=True) and dtc == sorted(dtc)  # shrinking / growing sizes
    assert dtc_counts(8, 4) == [1, 1, 2, 4] and tc_counts(8, 4) == [4, 2, 1, 1]
    assert scale_counts("linear", 8, 4) == [2, 2, 2, 2]
    den = ExactDenoiser("markov:6,3,1")
    which, counts = correlation_counts(den, 3)
    assert which == ("tc" if total_correlation(den) <= dual_total_correlation(den) else "dtc")
    with pytest.raises(ValueError, match="unknown scale 'log'"):
        scale_counts("log", 8, 4)


@pytest.mark.parametrize("scale", ["tc", "dtc", "linear"])
def test_randomised_sizes_probabilities_are_the_offsets_measure(scale):
    n, N = 9, 4
    r = randomised_counts(scale, n, N)
    assert sum(p for _, p in r.outcomes) == pytest.approx(1.0)
    assert all(sum(c) == n and len(c) == N and min(c) >= 1 for c, _ in r.outcomes)
    inv = {"dtc": lambda g: (n + 1) ** g - 1, "tc": lambda g: n + 1 - (n + 1) ** (1 - g), "linear": lambda g: n * g}[scale]
    us = (np.arange(200_000) + 0.5) / 200_000  # the offset on a fine grid: the frequency of each count vector
    freq: dict = {}
    for u in us[::97]:
        cuts = [0] + [min(max(int(math.floor(inv((m - u) / N) + 0.5 + 1e-9)), 0), n) for m in range(1, N)] + [n]
        for m in range(1, N):  # no empty step: each cut past the one before, room left for the rest
            cuts[m] = min(max(cuts[m], cuts[m - 1] + 1), n - (N - m))
        c = tuple(b - a for a, b in zip(cuts, cuts[1:]))
        freq[c] = freq.get(c, 0) + 1
    total = sum(freq.values())
    for c, p in r.outcomes:
        assert freq.get(c, 0) / total == pytest.approx(p, abs=0.01)


def test_the_randomised_law_is_the_mixture_of_its_draws():
    den = ExactDenoiser("markov:5,3,0")
    r = randomised_counts("dtc", 5, 3)
    law = law_randomised(den, r, lambda c: law_fixed_random(den, c))
    want = sum(p * law_fixed_random(den, c) for c, p in r.outcomes)
    assert np.allclose(law, want) and law.sum() == pytest.approx(1.0)
    assert counts_schedule([1, 1, 3]).spec.startswith("table:")


def test_the_confidence_order_klub_follows_the_greedy_low_confidence_path():
    """order='confidence' at temperature 0 on an exact law: every row walks the same greedy path (commit the most
    probable value at the most confident position, one per call); the KLUB is the posterior KL along it."""
    den = ExactDenoiser("markov:4,3,0")
    x, S, path = [-1] * 4, [], []
    for _ in range(4):  # the reference path, from the exact posteriors
        post = den.posterior(x)
        i = max((j for j in range(4) if x[j] < 0), key=lambda j: (post[j].max(), -j))
        x[i] = int(post[i].argmax())
        S.append(i)
        path.append(list(x))

    def post_at(k):
        return den.posterior([v if j in S[:k] else -1 for j, v in enumerate(path[-1])])

    mc = ModelKLUB(ExactTorchDenoiser(den), None, 4, samples=8, order="confidence", batch_size=8)
    for a, m, b in [(0, 1, 4), (1, 2, 4), (0, 2, 3)]:
        pa, pm = post_at(a), post_at(m)
        kl = [float(np.sum(np.where(pm[i] > 0, pm[i] * np.log(np.where(pm[i] > 0, pm[i], 1) / pa[i]), 0)))
              for i in range(4) if i not in S[:m]]
        assert mc(a, m, b) == pytest.approx((b - m) * np.mean(kl), abs=1e-6)
    with pytest.raises(ValueError, match="unknown order 'left'"):
        ModelKLUB(ExactTorchDenoiser(den), None, 4, order="left")


@pytest.mark.parametrize("law", LAWS + ["markov:8,4,0", "templates:7,3,0", "toy1"])
def test_the_tc_and_dtc_schedules_meet_their_bounds(law):
    """bound(tc) <= (g - 1)(TC + Z_n) and bound(dtc) <= (g - 1)(DTC + Z_n), g = (n+1)^(1/N), at every N."""
    den = ExactDenoiser(law)
    Z, n = den.information_curve(), den.n
    tc, dtc = total_correlation(den), dual_total_correlation(den)
    for N in range(1, n + 1):
        g = (n + 1) ** (1 / N)
        assert infocurve_bound(Z, tc_counts(n, N)) <= (g - 1) * (tc + Z[-1]) + 1e-12
        assert infocurve_bound(Z, dtc_counts(n, N)) <= (g - 1) * (dtc + Z[-1]) + 1e-12
