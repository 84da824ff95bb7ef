"""The exact law of ReMDM (reveal and re-mask) against a brute-force chain, closed forms and its reductions."""

from __future__ import annotations

import itertools
import json
from math import comb

import numpy as np
import pytest

from mdm_energy.cli import main
from mdm_energy.exact import (
    ExactDenoiser,
    KLObjective,
    exact_options,
    exact_sampler,
    law_independent,
    law_remdm,
    load_distribution,
    remdm_plan,
    true_optimum,
)
from mdm_energy.revision import RevisionPlan, revision_plan


# --- an independent reference: the whole chain over (d+1)^n states, built by loops --------------------


def _posterior(q: np.ndarray, x: tuple, U: list[int], i: int) -> np.ndarray:
    """q(x_i = . | x_U) by summing the law over the sequences that agree with x on U (uniform off the support)."""
    d = q.shape[0]
    num = np.zeros(d)
    for y in itertools.product(range(d), repeat=q.ndim):
        if all(y[j] == x[j] for j in U):
            num[y[i]] += q[y]
    total = num.sum()
    return num / total if total > 0 else np.full(d, 1.0 / d)


def _outcomes(q: np.ndarray):
    """For every state x over {0..d-1, M=d}^n, every per-position outcome: (x, y, #revealed, #stayed masked,
    #kept, #re-masked, product of the posteriors of the revealed values given x's unmasked positions)."""
    n, d = q.ndim, q.shape[0]
    rows = []
    for x in itertools.product(range(d + 1), repeat=n):
        U = [j for j in range(n) if x[j] != d]
        choices = []
        for i in range(n):
            if x[i] == d:  # masked: each value (revealed, weight c * posterior) or stays masked (1 - c)
                post = _posterior(q, x, U, i)
                choices.append([(v, "reveal", post[v]) for v in range(d)] + [(d, "stay", 1.0)])
            else:  # unmasked: kept (1 - sigma) or re-masked (sigma)
                choices.append([(x[i], "keep", 1.0), (d, "remask", 1.0)])
        for combo in itertools.product(*choices):
            y = tuple(v for v, _, _ in combo)
            kinds = [k for _, k, _ in combo]
            prod = 1.0
            for _, _, p in combo:
                prod *= p
            rows.append((x, y, kinds.count("reveal"), kinds.count("stay"), kinds.count("keep"), kinds.count("remask"), prod))
    return rows


def reference_remdm(q: np.ndarray, plan: RevisionPlan) -> tuple[np.ndarray, float]:
    """The law after the plan's steps and the expected number of steps that reveal at least one position."""
    n, d = q.ndim, q.shape[0]
    states = list(itertools.product(range(d + 1), repeat=n))
    index = {x: k for k, x in enumerate(states)}
    rows = _outcomes(q)
    P = np.zeros(len(states))
    P[index[(d,) * n]] = 1.0
    calls = 0.0
    for k in range(1, plan.steps + 1):
        a_t, a_s, s = float(plan.alpha[k - 1]), float(plan.alpha[k]), float(plan.sigma[k - 1])
        c = 1.0 if a_t >= 1.0 else min(max((a_s - (1.0 - s) * a_t) / (1.0 - a_t), 0.0), 1.0)
        new = np.zeros_like(P)
        for x, y, rev, stay, keep, rem, prod in rows:
            w = P[index[x]] * prod * c**rev * (1.0 - c) ** stay * (1.0 - s) ** keep * s**rem
            new[index[y]] += w
            if rev:
                calls += w
        P = new
    law = np.array([P[index[x]] for x in itertools.product(range(d), repeat=n)]).reshape(q.shape)
    return law, calls


CHAIN_CASES = [
    ("toy1", "linear", 6, "cap", 0.3, {}),
    ("toy1", "sin2", 7, "rescale", 0.6, {}),
    ("toy1", "linear", 8, "rescale", 1.0, {"revise_from": 0.4}),
    ("toy1", "linear", 6, "loop", 0.1, {"loop_start": 0.3, "loop_end": 0.7, "loop_alpha": 0.6}),
    ("markov:4,3,0", "linear", 5, "cap", 0.04, {}),
    ("markov:4,3,0", "beta:0.5,1", 6, "rescale", 0.5, {}),
    ("markov:4,3,0", "linear", 7, "loop", 0.2, {"loop_start": 0.3, "loop_end": 0.7, "loop_alpha": 0.5}),
    ("potts:4,2,1", "sin2", 5, "cap", 1.0, {}),
    ("toy2", "linear", 6, "rescale", 1.0, {}),  # sigma = 1 at the early steps: every committed token re-masked
]


@pytest.mark.parametrize("dist,schedule,steps,rule,eta,extra", CHAIN_CASES)
def test_law_and_calls_match_a_brute_force_chain(dist, schedule, steps, rule, eta, extra):
    den = ExactDenoiser(dist)
    plan = revision_plan(schedule, steps, rule, eta, length=den.n, **extra)
    assert plan.sigma.max() > 0  # the case revises
    law, calls = law_remdm(den, plan)
    ref_law, ref_calls = reference_remdm(den.q, plan)
    np.testing.assert_allclose(law, ref_law, rtol=0, atol=1e-12)
    assert calls == pytest.approx(ref_calls, abs=1e-12)
    assert 1.0 <= calls <= steps


@pytest.mark.parametrize("alpha,sigma", [
    ([0.0, 0.6, 0.2, 1.0], [0.0, 0.5, 0.0]),  # c_2 < 0 is clipped to 0: a step that only re-masks (no call)
    ([0.0, 0.5, 0.5, 0.5, 1.0], [0.0, 0.0, 0.3, 0.0]),  # a step where nothing moves, then a constant-level revision
    ([0.0, 0.3, 0.7, 1.0, 1.0], [1.0, 1.0, 0.2, 0.0]),  # sigma = 1 and a last step with nothing masked
])
def test_hand_made_plans_match_the_brute_force_chain(alpha, sigma):
    den = ExactDenoiser("markov:4,2,3")
    plan = RevisionPlan("cap", np.array(alpha), np.array(sigma))
    law, calls = law_remdm(den, plan)
    ref_law, ref_calls = reference_remdm(den.q, plan)
    np.testing.assert_allclose(law, ref_law, rtol=0, atol=1e-12)
    assert calls == pytest.approx(ref_calls, abs=1e-12)


# --- reductions and closed forms -------------------------------------------------------------------


@pytest.mark.parametrize("dist", ["toy1", "toy2", "markov:5,3,0", "templates:4,3,2"])
@pytest.mark.parametrize("schedule", ["linear", "sin2", "beta:0.3,0.9"])
def test_no_remasking_is_independent_reveals_with_pi_c(dist, schedule):
    den = ExactDenoiser(dist)
    plan = revision_plan(schedule, 6, "cap", 0.0, length=den.n)
    assert not plan.sigma.any()
    law, calls = law_remdm(den, plan)
    pis = [float(plan.reveal(k)) for k in range(1, plan.steps + 1)]
    np.testing.assert_allclose(law, law_independent(den, pis), rtol=0, atol=1e-12)
    # and the ancestral sampler's law: with sigma = 0 the reveal probability is MDLM's
    np.testing.assert_allclose(law, exact_sampler(den, "ancestral", schedule, 6).law, rtol=0, atol=1e-12)
    # P(step k reveals something) = sum over the masked count m of P(m) (1 - (1 - pi_k)^m), m ~ Binomial
    expected, still = 0.0, 1.0  # still: P(a given position is masked before step k)
    for pi in pis:
        expected += sum(comb(den.n, m) * still**m * (1 - still) ** (den.n - m) * (1 - (1 - pi) ** m) for m in range(1, den.n + 1))
        still *= 1 - pi
    assert calls == pytest.approx(expected, abs=1e-12)


def _product_law(n: int, d: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).dirichlet(np.ones(d), size=n)
    q = np.ones((1,) * n)
    for i, r in enumerate(rows):
        shape = [1] * n
        shape[i] = d
        q = q * r.reshape(shape)
    return q


@pytest.mark.parametrize("rule,eta,extra", [("cap", 0.04, {}), ("cap", 1.0, {}), ("rescale", 0.3, {}),
                                            ("rescale", 1.0, {"revise_from": 0.5}),
                                            ("loop", 0.1, {"loop_start": 0.3, "loop_end": 0.7, "loop_alpha": 0.7}),
                                            ("loop", 0.5, {"loop_start": 0.2, "loop_end": 0.8, "loop_alpha": 0.6})])
@pytest.mark.parametrize("schedule,steps", [("linear", 10), ("sin2", 7), ("beta:2,0.5", 12)])
def test_a_product_law_is_sampled_exactly_by_every_rule(rule, eta, extra, schedule, steps):
    """Independent positions: every posterior is the marginal, so each position's last draw has its law, whatever
    the reveal and re-mask times."""
    q = _product_law(4, 3, seed=steps)
    den = ExactDenoiser(load_distribution(q))
    law, _ = law_remdm(den, revision_plan(schedule, steps, rule, eta, length=den.n, **extra))
    np.testing.assert_allclose(law, den.q, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dist", ["toy1", "toy2", "markov:6,3,0", "potts:5,3,1", "templates:5,3,2"])
@pytest.mark.parametrize("rule,eta", [("cap", None), ("rescale", 0.5), ("loop", None)])
def test_every_law_is_a_probability_law(dist, rule, eta):
    r = exact_sampler(dist, "remdm", "linear", 20, options={"sigma": rule, "eta": eta})
    assert r.law.sum() == pytest.approx(1.0, abs=1e-12) and r.law.min() >= -1e-15
    assert r.law.shape == load_distribution(dist).probs.shape
    assert np.isfinite(r.kl) and r.kl >= 0 and 0 <= r.tv <= 1
    assert r.nfe == 20 and r.counts is None and 1.0 <= r.expected_calls <= 20


def test_exact_sampler_takes_the_registry_defaults_and_the_plan_of_remdm_plan():
    den = ExactDenoiser("markov:5,3,0")
    r = exact_sampler(den, "remdm", "linear", 4)  # sigma cap, eta the authors' (0.04: fewer steps than tokens)
    law, calls = law_remdm(den, revision_plan("linear", 4, "cap", 0.04, length=5))
    np.testing.assert_array_equal(r.law, law)
    assert r.expected_calls == calls
    opts = exact_options("remdm", "sin2", 9, options={"sigma": "rescale", "eta": 0.2})
    plan = remdm_plan(opts, den.n)
    assert plan.rule == "rescale" and plan.steps == 9 and plan.alpha[-1] == 1.0
    assert exact_sampler(den, "ancestral", "linear", 4).expected_calls is None


def test_revision_changes_the_law_and_can_help():
    """On a dependent law, revision moves the law (a check that sigma is used at all): with N > n steps the
    rescaled rule at eta 0.5 is closer to toy1 than no revision."""
    base = exact_sampler("toy1", "remdm", "linear", 20, options={"eta": 0.0})
    revised = exact_sampler("toy1", "remdm", "linear", 20, options={"sigma": "rescale", "eta": 0.5})
    assert revised.kl < base.kl - 1e-3


# --- errors --------------------------------------------------------------------------------------------


def test_bad_input_is_refused():
    den = ExactDenoiser("toy1")
    with pytest.raises(ValueError, match="sigma='conf'"):
        exact_sampler(den, "remdm", "linear", 4, options={"sigma": "conf"})
    with pytest.raises(ValueError, match="sigma='conf'"):
        law_remdm(den, revision_plan("linear", 4, "conf", length=5))
    with pytest.raises(ValueError, match="eta must"):
        exact_sampler(den, "remdm", "linear", 4, options={"eta": 1.5})
    with pytest.raises(ValueError, match="above \\(1 - loop_alpha\\)/loop_alpha"):
        exact_sampler(den, "remdm", "linear", 20, options={"sigma": "loop", "eta": 0.5})
    with pytest.raises(ValueError, match="leave no step for the loop phase"):
        exact_sampler(den, "remdm", "linear", 1, options={"sigma": "loop"})
    with pytest.raises(ValueError, match="does not take 'remasking'"):
        exact_sampler(den, "remdm", "linear", 4, remasking="random")
    with pytest.raises(ValueError, match="2 alphas and 3 sigmas"):
        law_remdm(den, RevisionPlan("cap", np.array([0.0, 1.0]), np.zeros(3)))
    with pytest.raises(ValueError, match="sigma must lie in \\[0, 1\\]"):
        law_remdm(den, RevisionPlan("cap", np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.5])))
    with pytest.raises(RuntimeError, match="left mass"):  # alpha_N < 1: masked positions remain
        law_remdm(den, RevisionPlan("cap", np.array([0.0, 0.5]), np.zeros(1)))
    with pytest.raises(ValueError, match="ReMDM law of n=12 tokens"):
        law_remdm(ExactDenoiser("markov:12,3,0"), revision_plan("linear", 4, "cap", 0.04, length=12))
    with pytest.raises(ValueError, match="not a function of either"):
        true_optimum(KLObjective(den, "remdm", 4, options={"eta": 0.1}))


def test_the_kl_objective_scores_remdm_schedules_as_the_engine_does():
    """KLObjective (the tuner's exact objective) on remdm: the engine's KL for each schedule, memoised by plan."""
    den = ExactDenoiser("toy1")
    kl = KLObjective(den, "remdm", 12, options={"sigma": "rescale", "eta": 0.5})
    for spec in ("linear", "sin2", "beta:0.4,0.8"):
        want = exact_sampler(den, "remdm", spec, 12, options={"sigma": "rescale", "eta": 0.5}).kl
        assert kl(spec) == pytest.approx(want, rel=1e-12)
    kl("linear")
    assert kl.evaluations == 3
    assert KLObjective(den, "remdm", 12, options={"sigma": "rescale", "eta": 0.0})("linear") != kl("linear")


# --- the command line -----------------------------------------------------------------------------------


def test_exact_command_runs_remdm(capsys):
    assert main(["exact", "--dist", "toy1", "--sampler", "remdm", "--schedule", "linear", "-N", "20",
                 "--sigma", "loop", "--eta", "0.05", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = exact_sampler("toy1", "remdm", "linear", 20, options={"sigma": "loop", "eta": 0.05})
    assert out["kl"] == pytest.approx(r.kl, abs=1e-15) and out["expected_calls"] == pytest.approx(r.expected_calls)
    assert out["sigma"] == "loop" and out["eta"] == 0.05 and out["nfe"] == 20
    assert main(["exact", "--dist", "toy1", "--sampler", "remdm", "--schedule", "linear", "-N", "8"]) == 0
    text = capsys.readouterr().out
    assert "sigma cap, eta 0.008" in text and "expected model calls" in text


@pytest.mark.parametrize("argv,message", [
    (["--sigma", "conf"], "sigma='conf'"),
    (["--eta", "1.5"], "eta must"),
    (["--sigma", "loop", "--eta", "0.5"], "loop_alpha"),
    (["--sampler", "fixed", "--sigma", "cap"], "--sigma does not apply to the fixed sampler"),
])
def test_exact_command_refuses_bad_remdm_options_in_one_line(capsys, argv, message):
    base = ["exact", "--dist", "toy1", "--schedule", "linear", "-N", "20"]
    argv = argv if "--sampler" in argv else ["--sampler", "remdm"] + argv
    try:
        code = main(base + argv)
    except SystemExit as exc:  # argparse refuses a value its type check rejects
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
