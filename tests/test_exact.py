"""Exact sampler laws against an independent brute-force reference, Monte Carlo, and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from _exact_reference import confidence_reference_law, fixed_assignments, independent_assignments, reference_law
from _stats import chi_square_pvalue

from mdm_energy.exact import (
    DistributionSpecError,
    ExactDenoiser,
    KLObjective,
    compositions,
    exact_sampler,
    infocurve_bound,
    infocurve_counts,
    kl_divergence,
    law_confidence,
    law_fixed_random,
    law_independent,
    load_distribution,
    optimal_counts,
    optimal_reveal,
    tv_distance,
)
from mdm_energy.exact.search import counts_schedule
from mdm_energy.reveal import reveal_probabilities
from mdm_energy.schedules import parse_schedule
from mdm_energy.tuning import ExactKLObjective, SearchSpace, beta_grid, exact_grid_study


def random_law(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(d**n, 0.7)).reshape((d,) * n)


SMALL = {
    "random-4x3": random_law(4, 3, 0),
    "random-5x2": random_law(5, 2, 1),
}


# --- an independent reference: sum over reveal-step assignments (tests/_exact_reference.py) ---------


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("counts", [[1, 2, 1], [0, 3, 1], [4, 0, 0], [2, 2], [1, 1, 1, 1]])
def test_fixed_random_law_matches_reference(name, counts):
    q = SMALL[name]
    if sum(counts) != q.ndim:
        counts = counts[:-1] + [counts[-1] + q.ndim - sum(counts)]
    den = ExactDenoiser(q)
    np.testing.assert_allclose(law_fixed_random(den, counts), reference_law(den.q, fixed_assignments(counts)), atol=1e-13)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("pis", [[0.3, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0], [0.25, 0.1, 0.6, 1.0]])
def test_independent_law_matches_reference(name, pis):
    den = ExactDenoiser(SMALL[name])
    np.testing.assert_allclose(law_independent(den, pis), reference_law(den.q, independent_assignments(pis)), atol=1e-13)


def test_toy1_zero_probability_contexts_use_the_uniform_posterior():
    den = ExactDenoiser(load_distribution("toy1"))
    np.testing.assert_allclose(law_fixed_random(den, [2, 2, 1]), reference_law(den.q, fixed_assignments([2, 2, 1])), atol=1e-13)
    np.testing.assert_allclose(den.posterior([0, 1, -1, -1, -1])[2], [0.5, 0.5])


# --- Monte Carlo: an independent sampler written from the sampler definitions --------------------


def mc_sample(den: ExactDenoiser, sampler: str, schedule: str, steps: int, K: int, seed: int, rule: "str | None" = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, d = den.n, den.d
    x = np.zeros((K, n), dtype=np.int64)
    rev = np.zeros((K, n), dtype=bool)
    s = parse_schedule(schedule)
    counts = s.counts(n, steps)
    pis = reveal_probabilities(s, steps, sampler) if sampler in ("ancestral", "euler") else None
    for k in range(steps):
        post = np.zeros((K, n, d))
        masks = rev @ (1 << np.arange(n))
        for S in np.unique(masks):
            rows = np.where(masks == S)[0]
            for i in range(n):
                if S >> i & 1:
                    continue
                cond = den.conditional(int(S), i)
                zero = np.zeros((len(rows), 1), np.int64)
                idx = tuple(x[rows, j][:, None] if S >> j & 1 else (np.arange(d)[None, :] if j == i else zero) for j in range(n))
                post[rows, i] = cond[idx]  # shape (rows, d)
        cand = (post.cumsum(-1) < rng.random((K, n, 1))).sum(-1).clip(max=d - 1)
        conf = np.take_along_axis(post, cand[..., None], -1)[..., 0]
        if sampler == "fixed":
            c = counts[k]
            if c == 0:
                continue
            if rule == "random":
                key = np.where(rev, np.inf, rng.random((K, n)))
                chosen = np.argsort(key, axis=1)[:, :c]
            else:
                if rule == "margin":
                    top = np.sort(post, axis=-1)
                    conf = top[..., -1] - top[..., -2]
                elif rule == "entropy":
                    conf = np.sum(np.where(post > 0, post * np.log(np.where(post > 0, post, 1)), 0), axis=-1)
                key = np.where(rev, np.inf, -np.round(conf, 12))
                chosen = np.argsort(key, axis=1, kind="stable")[:, :c]
            new = np.zeros((K, n), dtype=bool)
            np.put_along_axis(new, chosen, True, axis=1)
        else:
            new = (~rev) & (rng.random((K, n)) < pis[k])
        x = np.where(new, cand, x)
        rev |= new
    assert rev.all()
    return x


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize(
    "sampler,rule,schedule,steps",
    [("fixed", "random", "beta:0.9,0.3", 3), ("ancestral", None, "sin2", 3), ("euler", None, "linear", 4),
     ("fixed", "low_confidence", "linear", 3), ("fixed", "low_confidence", "beta:0.3,0.9", 2)],
)
def test_law_agrees_with_monte_carlo(name, sampler, rule, schedule, steps):
    den = ExactDenoiser(SMALL[name])
    law = exact_sampler(den, sampler, schedule, steps, remasking=rule).law
    samples = mc_sample(den, sampler, schedule, steps, K=20_000, seed=1234, rule=rule)
    assert chi_square_pvalue(samples, law) > 1e-3


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("rule", ["margin", "entropy"])
def test_margin_and_entropy_remasking_laws_agree_with_monte_carlo(name, rule):
    den = ExactDenoiser(SMALL[name])
    law = exact_sampler(den, "fixed", "sin2", 3, remasking=rule).law
    assert law.sum() == pytest.approx(1.0)
    samples = mc_sample(den, "fixed", "sin2", 3, K=20_000, seed=99, rule=rule)
    assert chi_square_pvalue(samples, law) > 1e-3


def rules_disagree() -> np.ndarray:
    """A law whose first position is a coin (top-1 0.5, margin 0) and whose second has top-1 0.45 but margin
    0.15: top-1 and margin disagree on what to commit first, and the third token depends on both."""
    p0, p1 = [0.5, 0.5, 0.0], [0.45, 0.3, 0.25]
    q = np.zeros((3, 3, 3))
    for a, b, c in itertools.product(range(3), repeat=3):
        q[a, b, c] = p0[a] * p1[b] * (0.8 if c == (a + b) % 3 else 0.1)
    return q


@pytest.mark.parametrize("name", sorted(SMALL) + ["rules-disagree"])
@pytest.mark.parametrize("rule", ["low_confidence", "margin", "entropy"])
@pytest.mark.parametrize("counts", [[1, 1, 2], [2, 2], [1, 3], [1, 2]])
def test_confidence_laws_match_a_brute_force_reference(name, rule, counts):
    q = SMALL[name] if name in SMALL else rules_disagree()
    counts = counts[:-1] + [counts[-1] + q.ndim - sum(counts)]
    np.testing.assert_allclose(law_confidence(ExactDenoiser(q), counts, rule), confidence_reference_law(q, counts, rule),
                               atol=1e-12)


def test_remasking_argument_checks():
    with pytest.raises(ValueError, match="'frobnicate'"):
        exact_sampler("toy1", "fixed", "linear", 3, remasking="frobnicate")
    with pytest.raises(ValueError, match="ancestral sampler does not take 'remasking'"):
        exact_sampler("toy1", "ancestral", "linear", 3, remasking="margin")
    with pytest.raises(ValueError, match="no law for the threshold sampler"):
        exact_sampler("toy1", "threshold", "linear", 3)
    with pytest.raises(ValueError, match="unknown sampler 'confidence'.*--remasking low_confidence"):
        exact_sampler("toy1", "confidence", "linear", 3)
    a = exact_sampler("toy2", "fixed", "linear", 3).law  # the default rule is low_confidence, as in the samplers
    b = exact_sampler("toy2", "fixed", "linear", 3, remasking="low_confidence").law
    np.testing.assert_array_equal(a, b)


# --- properties and closed forms ------------------------------------------------------------------


@pytest.mark.parametrize("dist", ["toy1", "toy2", "markov:5,3,0", "potts:5,2,1", "templates:4,3,2"])
@pytest.mark.parametrize("sampler,rule", [("fixed", "random"), ("ancestral", None), ("euler", None), ("fixed", "low_confidence")])
@pytest.mark.parametrize("schedule", ["linear", "sin2", "beta:1,0.2", "beta:0.3,0.9"])
def test_every_law_sums_to_one(dist, sampler, rule, schedule):
    from scipy import stats

    r = exact_sampler(dist, sampler, schedule, 3, remasking=rule)
    assert r.law.sum() == pytest.approx(1.0, abs=1e-12) and r.law.min() >= -1e-15
    q = ExactDenoiser(dist).q.reshape(-1)
    assert r.kl == pytest.approx(stats.entropy(q, r.law.reshape(-1)), abs=1e-12)  # scipy's KL, independently
    assert r.tv == pytest.approx(0.5 * np.abs(q - r.law.reshape(-1)).sum(), abs=1e-15)
    assert (r.counts is not None) == (sampler == "fixed")


@pytest.mark.parametrize("dist", ["toy1", "toy2", "markov:5,3,0", "potts:6,2,1", "templates:4,3,2"])
def test_one_token_per_step_is_exact(dist):
    n = load_distribution(dist).n
    r = exact_sampler(dist, "fixed", "linear", n, remasking="random")
    assert r.counts == [1] * n
    assert r.kl < 1e-12 and r.tv < 1e-12


@pytest.mark.parametrize("k1", [1, 2, 3, 4, 5])
def test_toy1_success_probability_closed_form(k1):
    den = ExactDenoiser("toy1")
    rest = 5 - k1
    counts = [k1, rest // 2, rest - rest // 2]
    law = law_fixed_random(den, counts)
    assert law[0, 0, 0, 0, 0] + law[1, 1, 1, 1, 1] == pytest.approx(2.0 ** (1 - k1), abs=1e-14)
    assert kl_divergence(den.q, law) == pytest.approx((k1 - 1) * math.log(2), abs=1e-12)


def test_reveal_probabilities():
    for spec in ["linear", "sin2", "beta:0.9,0.3", "poly:3"]:
        s = parse_schedule(spec)
        pis = reveal_probabilities(s, 6, "ancestral")
        alpha = 1 - np.cumprod(1 - pis)
        np.testing.assert_allclose(alpha, s.alpha(np.arange(1, 7) / 6), atol=1e-12)
    e = reveal_probabilities("linear", 4, "euler")
    np.testing.assert_allclose(e[:-1], 1 - np.exp(-0.25 / (1 - np.array([0, 0.25, 0.5]))), atol=1e-14)
    assert e[-1] == 1.0
    assert reveal_probabilities("sin2", 4, "euler")[0] == 0.0  # alpha'(0) = 0
    with pytest.raises(ValueError, match=r"unknown reveal rule 'fixed' \(known: ancestral, euler\)"):
        reveal_probabilities("linear", 4, "fixed")


def test_confidence_takes_the_most_confident_with_ties_to_the_lower_position():
    # x0 is deterministic given nothing; x1 uniform: one step of one token must commit x0.
    q = np.zeros((2, 2))
    q[1, :] = 0.5
    den = ExactDenoiser(q)
    law = law_confidence(den, [1, 1])
    np.testing.assert_allclose(law, q, atol=1e-15)
    # a fully symmetric law: every confidence ties, so position 0 is always committed first
    u = np.full((2, 2), 0.25)
    np.testing.assert_allclose(law_confidence(ExactDenoiser(u), [1, 1]), u, atol=1e-15)


def test_kl_and_tv():
    q = np.array([0.5, 0.5, 0.0])
    assert kl_divergence(q, np.array([0.25, 0.25, 0.5])) == pytest.approx(math.log(2))
    assert kl_divergence(q, np.array([1.0, 0.0, 0.0])) == math.inf
    assert tv_distance(q, np.array([0.25, 0.25, 0.5])) == pytest.approx(0.5)


# --- information curve -----------------------------------------------------------------------------


def ordered_partition_kl(den: ExactDenoiser, counts) -> float:
    """E over uniformly random orderings of KL(q || q_order), q_order(x) = prod_m q(x_{S_m} marginals | past)."""
    n = den.n
    steps = [k for k, c in enumerate(counts) for _ in range(c)]
    taus = set(itertools.permutations(steps))
    total = 0.0
    for tau in taus:
        law = np.ones((1,) * n)
        past = 0
        for k in range(len(counts)):
            block = [i for i in range(n) if tau[i] == k]
            for i in block:
                law = law * den.conditional(past, i)
            for i in block:
                past |= 1 << i
        total += kl_divergence(den.q, np.broadcast_to(law, den.q.shape))
    return total / len(taus)


@pytest.mark.parametrize("dist", ["markov:5,2,0", "potts:5,2,3", "templates:4,3,1", "toy2"])
def test_information_curve_bound_is_the_mean_ordering_kl_and_upper_bounds_the_exact_kl(dist):
    den = ExactDenoiser(dist)
    Z = den.information_curve()
    assert Z[0] == 0 and np.all(np.diff(Z) >= -1e-12)  # more context, more information
    for counts in compositions(den.n, 3):
        bound = infocurve_bound(Z, counts)
        assert bound == pytest.approx(ordered_partition_kl(den, counts), abs=1e-10)
        assert bound >= kl_divergence(den.q, law_fixed_random(den, counts)) - 1e-12


def test_infocurve_dp_finds_the_minimal_bound():
    den = ExactDenoiser("templates:5,3,4")
    Z = den.information_curve()
    for N in (2, 3, 4):
        ic = infocurve_counts(Z, N)
        counts, value = ic.counts, ic.bound
        brute = min(infocurve_bound(Z, c) for c in compositions(den.n, N))
        assert value == pytest.approx(brute, abs=1e-12)
        assert infocurve_bound(Z, counts) == pytest.approx(value, abs=1e-12)


def test_the_dp_never_spends_a_call_on_nothing_and_loses_nothing_by_it():
    """Brute force over every composition: on non-decreasing curves (exact, seeded random, flat, stepped)
    the DP's bound is the minimum over *all* compositions, empty steps included, yet none of its steps is
    empty; on a flat curve (every bound 0) it gives the evenest counts."""
    rng = np.random.default_rng(7)
    curves = [ExactDenoiser("templates:5,3,4").information_curve(), np.zeros(6), np.r_[0, 0, 0, 0, 1.0, 1.0],
              *[np.r_[0.0, np.cumsum(rng.exponential(size=6) * (rng.random(6) < 0.5))] for _ in range(6)]]
    for Z in curves:
        n = len(Z)
        for N in range(1, n + 1):
            ic = infocurve_counts(Z, N)
            assert sum(ic.counts) == n and len(ic.counts) == N and min(ic.counts) >= 1, (Z, N, ic)
            brute = min(infocurve_bound(Z, c) for c in compositions(n, N))
            assert ic.bound == pytest.approx(brute, abs=1e-12) == infocurve_bound(Z, ic.counts)
    for n, N in ((6, 4), (24, 12), (24, 5)):  # the countdown case: a flat start must not give table:0,0,0,...
        counts = infocurve_counts(np.zeros(n), N).counts
        assert max(counts) - min(counts) <= 1, counts
    assert infocurve_counts(np.zeros(3), 5).counts == [0, 0, 1, 1, 1]  # more steps than tokens: empties unavoidable


# --- search ----------------------------------------------------------------------------------------


def test_compositions_are_all_and_distinct():
    comps = list(compositions(5, 3))
    assert len(comps) == math.comb(7, 2) == len(set(comps))
    assert all(sum(c) == 5 and min(c) >= 0 for c in comps)


def test_optimal_counts_exhaustive_and_local():
    den = ExactDenoiser("markov:6,2,3")
    obj = KLObjective(den, "fixed", 3, "random")
    opt = optimal_counts(obj)
    assert opt.method == "exhaustive"
    assert opt.kl == pytest.approx(min(kl_divergence(den.q, law_fixed_random(den, c)) for c in compositions(6, 3)))
    local = optimal_counts(KLObjective(den, "fixed", 3, "random"), starts=[[6, 0, 0]], max_exhaustive=1)
    assert local.method == "local" and local.kl <= obj.of_counts([6, 0, 0]) and sum(local.counts) == 6


@pytest.mark.parametrize("sampler,rule", [("fixed", "random"), ("ancestral", None), ("euler", None), ("fixed", "low_confidence")])
def test_grid_study_optimum_beats_everything_it_reports(sampler, rule):
    den = ExactDenoiser("potts:5,2,0")
    r = exact_grid_study(den, sampler, 3, remasking=rule, space=SearchSpace(values={"a": (0.2, 0.5, 1.0), "b": (0.3, 0.9)}))
    assert len(r.grid) == 6
    best = min(r.grid, key=lambda g: g.kl)
    assert r.best == best
    for g in r.grid:  # the grid really is scored by exact KL
        assert g.kl == pytest.approx(exact_sampler(den, sampler, f"beta:{g.a},{g.b}", 3, rule).kl, abs=1e-12)
    for name, kl in r.baselines.items():  # baselines scored by the exact engine, independently
        assert kl == pytest.approx(exact_sampler(den, sampler, name, 3, rule).kl, abs=1e-12)
    ic = r.infocurve
    assert ic.kl == pytest.approx(exact_sampler(den, sampler, counts_schedule(ic.counts), 3, rule).kl, abs=1e-12)
    opt = r.optimum.kl
    if sampler == "fixed":  # the optimum is the best of every composition of 5 tokens into 3 steps
        brute = min(exact_sampler(den, sampler, counts_schedule(c), 3, rule).kl for c in compositions(5, 3))
        assert opt == pytest.approx(brute, abs=1e-12) and sum(r.optimum.counts) == 5
        assert exact_sampler(den, sampler, counts_schedule(r.optimum.counts), 3, rule).kl == pytest.approx(opt)
    else:  # never worse than a 51 x 51 grid over the two free reveal probabilities
        ticks = np.linspace(0, 1, 51)
        grid = min(kl_divergence(den.q, law_independent(den, [p1, p2, 1.0])) for p1 in ticks for p2 in ticks)
        assert opt <= grid + 1e-9


@pytest.mark.parametrize("sampler", ["ancestral", "euler"])
@pytest.mark.parametrize("dist,steps", [("markov:4,3,1", 2), ("templates:5,2,3", 2), ("potts:4,2,0", 3)])
def test_reveal_optimum_against_a_brute_force_grid_over_the_probabilities(sampler, dist, steps):
    """Nelder-Mead over pi_1..pi_{N-1} against an exhaustive grid (step 1/2000 for N = 2, 1/100 for N = 3),
    and the reported alpha grid reproduces the reported KL."""
    den = ExactDenoiser(dist)
    obj = KLObjective(den, sampler, steps)
    opt = optimal_reveal(obj)
    ticks = np.linspace(0.0, 1.0, 2001 if steps == 2 else 101)
    grid_min = min(kl_divergence(den.q, law_independent(den, list(p) + [1.0]))
                   for p in itertools.product(ticks, repeat=steps - 1))
    assert opt.kl <= grid_min + 1e-9  # never worse than the grid
    assert opt.kl >= grid_min - 0.02 * grid_min  # and the grid, fine enough, is not far behind the true optimum
    alpha = np.asarray(opt.alpha)
    pis = 1.0 - (1.0 - alpha) / np.concatenate([[1.0], 1.0 - alpha[:-1]])
    pis[-1] = 1.0
    assert kl_divergence(den.q, law_independent(den, pis.tolist())) == pytest.approx(opt.kl, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("dist", ["markov:6,2,3", "potts:6,2,1", "templates:6,3,2", "markov:7,2,0"])
@pytest.mark.parametrize("steps", [3, 4])
def test_local_search_reaches_the_exhaustive_optimum_for_random_remasking(dist, steps):
    den = ExactDenoiser(dist)
    exhaustive = optimal_counts(KLObjective(den, "fixed", steps, "random"))
    obj = KLObjective(den, "fixed", steps, "random")
    local = optimal_counts(obj, starts=[obj.counts("linear")], max_exhaustive=0)
    assert (exhaustive.method, local.method) == ("exhaustive", "local")
    brute = min(kl_divergence(den.q, law_fixed_random(den, c)) for c in compositions(den.n, steps))
    assert exhaustive.kl == pytest.approx(brute, abs=1e-14) and local.kl == pytest.approx(brute, abs=1e-14)


def test_local_search_ends_at_a_local_optimum_for_confidence_rules():
    """With low_confidence the KL over counts has local optima: the local search ends at one (no single
    moved token helps) and is never better than exhaustive search."""
    den = ExactDenoiser("markov:6,2,3")
    obj = KLObjective(den, "fixed", 3, "low_confidence")
    local = optimal_counts(obj, starts=[obj.counts("linear")], max_exhaustive=0)
    exhaustive = optimal_counts(KLObjective(den, "fixed", 3, "low_confidence"))
    assert local.kl >= exhaustive.kl - 1e-15
    for i, j in itertools.permutations(range(3), 2):
        if local.counts[i]:
            moved = list(local.counts)
            moved[i] -= 1
            moved[j] += 1
            assert obj.of_counts(moved) >= local.kl - 1e-15


# --- distributions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,shape", [("toy1", (2,) * 5), ("toy2", (2,) * 5), ("markov:6,3,0", (3,) * 6),
                                        ("potts:5,4,1", (4,) * 5), ("templates:7,2,9", (2,) * 7)])
def test_builtin_distributions(spec, shape):
    d1, d2 = load_distribution(spec), load_distribution(spec)
    assert d1.probs.shape == shape and d1.probs.sum() == pytest.approx(1.0) and np.all(d1.probs >= 0)
    np.testing.assert_array_equal(d1.probs, d2.probs)  # seeded


def test_toy_targets():
    t1, t2 = load_distribution("toy1").probs, load_distribution("toy2").probs
    assert t1[0, 0, 0, 0, 0] == t1[1, 1, 1, 1, 1] == 0.5
    assert np.count_nonzero(t2) == 20
    for x in zip(*np.nonzero(t2)):
        assert list(x).count(0) in (2, 3)


def test_npy_file_is_normalised(tmp_path):
    w = np.arange(1, 9, dtype=float).reshape(2, 2, 2)
    np.save(tmp_path / "w.npy", w)
    np.testing.assert_allclose(load_distribution(str(tmp_path / "w.npy")).probs, w / w.sum())


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: -np.ones((2, 2)), "non-negative"),
        (lambda: np.zeros((3, 3)), "all zero"),
        (lambda: np.ones((2, 3)), "equal sides"),
        (lambda: np.ones((1, 1)), "at least 2"),
        (lambda: np.full((2, 2), np.nan), "finite"),
        (lambda: np.ones((2,) * 16), "too large for the exact engine"),
    ],
)
def test_bad_weights(tmp_path, make, match):
    np.save(tmp_path / "w.npy", make())
    with pytest.raises(DistributionSpecError, match=match):
        load_distribution(str(tmp_path / "w.npy"))


@pytest.mark.parametrize("spec,match", [("toy3", "unknown distribution"), ("markov:5,2", "expected markov:n,d,seed"),
                                        ("potts:a,2,0", "integers"), ("toy1:3", "takes no parameters"),
                                        ("markov:12,4,0", "too large"), ("missing.npy", "no such .npy file")])
def test_bad_specs(spec, match):
    with pytest.raises(DistributionSpecError, match=match):
        load_distribution(spec)


def test_confidence_refuses_large_laws():
    with pytest.raises(ValueError, match="Monte Carlo"):
        exact_sampler("markov:9,4,0", "fixed", "linear", 3, remasking="low_confidence")


def test_parallel_grid_equals_sequential():
    den = ExactDenoiser("markov:5,3,2")
    space = SearchSpace(values={"a": (0.3, 0.8), "b": (0.4, 1.0)})
    seq = beta_grid(ExactKLObjective(den, "ancestral", 3), space)
    par = beta_grid(ExactKLObjective(den, "ancestral", 3), space, workers=2)
    assert [(g.a, g.b) for g in par] == [(g.a, g.b) for g in seq]
    np.testing.assert_allclose([g.kl for g in par], [g.kl for g in seq], rtol=1e-12)


# --- the built-in laws against their definitions -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 3])
def test_markov_laws_are_homogeneous_sticky_first_order_chains(seed):
    q = load_distribution(f"markov:5,3,{seed}").probs
    pair = [q.sum(axis=tuple(k for k in range(5) if k not in (i, i + 1))) for i in range(4)]
    trans = [p / p.sum(axis=1, keepdims=True) for p in pair]
    for t in trans[1:]:
        np.testing.assert_allclose(t, trans[0], atol=1e-12)  # the same transition rows at every step
    assert np.all(np.diag(trans[0]) >= 2 / 3 - 1e-12)  # sticky: +2 on the diagonal before normalising
    # first order: q(x_3 | x_1, x_2) = q(x_3 | x_2)
    triple = q.sum(axis=(3, 4))
    cond = triple / triple.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(cond, np.broadcast_to(trans[0][None], cond.shape), atol=1e-12)


def test_potts_laws_are_pairwise_equality_models():
    """log q(x) = sum_{i<j} J_ij [x_i = x_j] + sum_i h_i(x_i) + c: every third-order interaction vanishes, and each
    pairwise term depends on (x_i, x_j) only through x_i = x_j."""
    n, d = 4, 4
    lq = np.log(load_distribution(f"potts:{n},{d},1").probs)
    for i, j, k in itertools.combinations(range(n), 3):
        for a, b in itertools.product(range(1, d), repeat=2):
            for c in range(1, d):
                idx = lambda u, v, w: tuple(u if m == i else v if m == j else w if m == k else 0 for m in range(n))  # noqa: E731
                delta = (lq[idx(a, b, c)] - lq[idx(0, b, c)] - lq[idx(a, 0, c)] - lq[idx(a, b, 0)]
                         + lq[idx(0, 0, c)] + lq[idx(0, b, 0)] + lq[idx(a, 0, 0)] - lq[idx(0, 0, 0)])
                assert abs(delta) < 1e-10
    for i, j in itertools.combinations(range(n), 2):  # the (i, j) interaction: a constant off the diagonal
        inter = np.array([[lq[tuple(u if m == i else v if m == j else 0 for m in range(n))] for v in range(d)] for u in range(d)])
        inter = inter - inter[:, :1] - inter[:1, :] + inter[0, 0]  # remove the fields h_i, h_j
        off = [inter[u, v] - inter[u, u] - inter[v, v] + inter[0, 0] for u in range(1, d) for v in range(1, d) if u != v]
        np.testing.assert_allclose(off, off[0], atol=1e-10)


def test_template_laws_are_mixtures_of_three_products():
    q = load_distribution("templates:6,3,4").probs
    for split in range(1, 6):  # every flattening of a mixture of 3 product laws has rank <= 3
        sv = np.linalg.svd(q.reshape(3**split, -1), compute_uv=False)
        assert np.sum(sv > 1e-12 * sv[0]) <= 3
    assert np.all(q > 0)  # resampled tokens: full support
