"""The exact law of Prophet (fixed counts with an exit test) against a brute-force walk over every path, the torch
sampler by chi-square and its mean NFE, its reductions (never exiting: ``fixed``; threshold 0: one call), the gap
the torch sampler sees on the exact denoiser, and the registry, command-line and KL-objective wiring."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from _stats import chi_square_pvalue

from mdm_energy.cli import main
from mdm_energy.exact import (
    ExactDenoiser,
    KLObjective,
    exact_options,
    exact_sampler,
    fixed_order_groups,
    kl_divergence,
    law_fixed_count,
    law_fixed_order,
    law_prophet,
    prophet_gaps,
    sampler_law,
)
from mdm_energy.exact.prophet import NEG_LOGIT, REVEALED_GAP, prophet_gap
from mdm_energy.exact.search import counts_schedule
from mdm_energy.registry import EXACT_LAWS, exact_check_options, sampler_spec
from mdm_energy.sampling import ExactTorchDenoiser, make_sampler
from mdm_energy.schedules import parse_schedule

# --- an independent reference: every path of the sampler, one sequence at a time -------------------------


def _posterior(q: np.ndarray, x: tuple, i: int) -> list[float]:
    """q(x_i = . | the revealed values of x) by summation (x: a value or None per position; uniform off the support)."""
    d = q.shape[0]
    num = [0.0] * d
    for y in itertools.product(range(d), repeat=q.ndim):
        if all(v is None or y[j] == v for j, v in enumerate(x)):
            num[y[i]] += float(q[y])
    total = sum(num)
    return [v / total for v in num] if total > 0 else [1.0 / d] * d


def _threshold(number: int, steps: int, taus: tuple) -> float:
    """The documented phases: progress number/steps below 0.33 early, below 0.67 mid, else late."""
    p = number / steps
    return taus[0] if p < 0.33 else taus[1] if p < 0.67 else taus[2]


def _gap(q: np.ndarray, x: tuple, region: range) -> float:
    """The mean top-1 minus top-2 logit the torch sampler sees: log posterior (-1e9 for 0) at a masked position, the
    one-hot (0 and -1e9) at a revealed one."""
    total = 0.0
    for i in region:
        if x[i] is not None:
            logits = [0.0, -1e9]
        else:
            logits = sorted((math.log(p) if p > 0 else -1e9 for p in _posterior(q, x, i)), reverse=True)
        total += logits[0] - logits[1]
    return total / len(region)


def reference_prophet(q: np.ndarray, counts: list, rule: str, taus: tuple, region: range,
                      skip_empty: bool = False) -> tuple[np.ndarray, float]:
    """The law and expected calls, walking every path: the exit test before each step's commits, then
    ``random`` (a uniform subset of the masked positions) or ``low_confidence`` (a full candidate vector, the
    ``c`` most probable candidates committed, ties to 12 decimals to the lower position)."""
    n, d, steps = q.ndim, q.shape[0], len(counts)
    law, calls = np.zeros(q.shape), [0.0]

    def walk(x: tuple, k: int, w: float) -> None:
        if w == 0.0:
            return
        if k == steps:
            law[x] += w
            return
        c = counts[k]
        if c == 0 and (skip_empty or steps > n):  # no call at all
            return walk(x, k + 1, w)
        calls[0] += w
        masked = [i for i in range(n) if x[i] is None]
        post = {i: _posterior(q, x, i) for i in masked}
        if _gap(q, x, region) >= _threshold(k + 1, steps, taus):  # exit: every masked position from its posterior
            for vals in itertools.product(range(d), repeat=len(masked)):
                y = list(x)
                p = w
                for i, v in zip(masked, vals):
                    y[i] = v
                    p *= post[i][v]
                law[tuple(y)] += p
            return
        if c == 0:
            return walk(x, k + 1, w)
        if rule == "random":
            for A in itertools.combinations(masked, c):
                for vals in itertools.product(range(d), repeat=c):
                    y = list(x)
                    p = w / math.comb(len(masked), c)
                    for i, v in zip(A, vals):
                        y[i] = v
                        p *= post[i][v]
                    walk(tuple(y), k + 1, p)
            return
        for vals in itertools.product(range(d), repeat=len(masked)):
            p = w
            for i, v in zip(masked, vals):
                p *= post[i][v]
            best = sorted(zip(masked, vals), key=lambda iv: (-round(post[iv[0]][iv[1]], 12), iv[0]))[:c]
            y = list(x)
            for i, v in best:
                y[i] = v
            walk(tuple(y), k + 1, p)

    walk((None,) * n, 0, 1.0)
    return law, calls[0]


def random_law(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(d**n, 0.7)).reshape((d,) * n)


def sparse_law() -> np.ndarray:
    """n = 3, d = 2 with zeros: deterministic posteriors (gap 1e9 at a masked position) and contexts of
    probability zero (uniform posterior, gap 0) that a step revealing two positions reaches."""
    q = np.zeros((2, 2, 2))
    for x, w in (((0, 0, 0), 3.0), ((0, 1, 1), 2.0), ((1, 0, 1), 1.0), ((1, 1, 1), 4.0), ((1, 1, 0), 0.5)):
        q[x] = w
    return q / q.sum()


LAWS = {"dirichlet-3x3": random_law(3, 3, 7), "dirichlet-3x2": random_law(3, 2, 11), "sparse-3x2": sparse_law()}


def away(gaps: np.ndarray, j: int) -> float:
    """A threshold between the j-th and (j+1)-th reachable gaps (never one of them, so round-off cannot decide)."""
    j = min(j, len(gaps) - 2)
    return float((gaps[j] + gaps[j + 1]) / 2)


def thresholds(den: ExactDenoiser, start: int, length, picks: tuple) -> tuple:
    gaps = prophet_gaps(den, start, length)
    return tuple(away(gaps, j) for j in picks)


REGIONS = [(0, None), (1, 1), (2, None)]
COUNTS = [[1, 1, 1], [1, 0, 2], [0, 1, 2], [2, 1, 0], [3], [1, 0, 1, 0, 1], [0, 0, 2, 1]]


@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("counts", COUNTS, ids=str)
@pytest.mark.parametrize("rule", ["random", "low_confidence"])
@pytest.mark.parametrize("region", REGIONS, ids=str)
def test_the_law_and_calls_match_every_path(name, counts, rule, region):
    q = LAWS[name]
    den = ExactDenoiser(q)
    start, length = region
    lo, hi = start, q.ndim if length is None else start + length
    for picks in ((0, 1, 2), (3, 1, 0), (5, 4, 2), (1, 6, 3)):
        taus = thresholds(den, start, length, picks)
        for skip in (False, True):
            law, calls = law_prophet(den, counts, rule, *taus, answer_start=start, answer_length=length,
                                     skip_empty_steps=skip)
            ref, ref_calls = reference_prophet(q, counts, rule, taus, range(lo, hi), skip)
            assert np.allclose(law, ref, atol=1e-12, rtol=0), (picks, skip)
            assert calls == pytest.approx(ref_calls, abs=1e-12), (picks, skip)
            assert law.sum() == pytest.approx(1.0, abs=1e-12)


def test_margin_and_entropy_rules_are_the_same_recursion():
    """The stay step of every fixed-count rule: with thresholds never reached, ``fixed``'s law of that rule."""
    den = ExactDenoiser(LAWS["dirichlet-3x3"])
    for rule in ("margin", "entropy"):
        law, calls = law_prophet(den, [1, 0, 2], rule, 2e9, 2e9, 2e9)
        assert np.array_equal(law, law_fixed_count(den, [1, 0, 2], rule)) and calls == pytest.approx(3.0, rel=1e-12)


# --- the torch sampler on the exact denoiser ------------------------------------------------------------


def test_the_gap_is_the_one_the_torch_sampler_sees():
    """On every partly masked state, the torch denoiser's logits (mask id never proposed) give prophet_gap's gap:
    log q1 - log q2 at a masked position, 0 - (-1e9) = 1e9 at a revealed one."""
    q = sparse_law()
    den = ExactDenoiser(q)
    tden = ExactTorchDenoiser(den)
    assert NEG_LOGIT == tden.NEG and REVEALED_GAP == 1e9
    n, d = den.n, den.d
    states = torch.tensor(list(itertools.product(range(d + 1), repeat=n)))
    logits = tden(states)
    logits[..., tden.mask_id] = float("-inf")
    top = logits.topk(2, dim=-1).values.to(torch.float64)
    per = (top[..., 0] - top[..., 1]).numpy()
    for region in (range(0, 3), range(1, 2), range(2, 3)):
        torch_gap = per[:, list(region)].mean(-1)
        for row, x in enumerate(states.tolist()):
            S = sum(1 << i for i in range(n) if x[i] != d)
            g = np.broadcast_to(prophet_gap(den, S, region), (d,) * n)
            index = tuple(x[i] if S >> i & 1 else 0 for i in range(n))
            assert g[index] == pytest.approx(torch_gap[row], rel=1e-14, abs=1e-12)
    revealed = states[(states != d).all(-1)][:1]
    assert per[(states == revealed).all(-1).nonzero()[0][0]].tolist() == [1e9] * n


MC_LAWS = {**LAWS, "dirichlet-4x2": random_law(4, 2, 5)}
#: (law, schedule, steps, rule, answer region, threshold picks): picked so that the exit is random (the expected
#: calls are not an integer) and, but for the last, the law differs from fixed's.
MC = [
    ("dirichlet-3x3", "linear", 3, "random", (1, 1), (0, 8, 0)),
    ("dirichlet-4x2", counts_schedule([1, 0, 1, 2]), 4, "low_confidence", (1, 2), (2, 4, 4)),  # a zero-count call
    ("dirichlet-3x3", "linear", 5, "low_confidence", (0, 2), (2, 3, 0)),  # more steps than positions: dropped
    ("dirichlet-4x2", counts_schedule([0, 2, 1, 1]), 4, "random", (1, 2), (2, 2, 9)),  # the first call commits nothing
    ("dirichlet-3x2", counts_schedule([2, 1, 0]), 3, "low_confidence", (0, None), (0, 14, 0)),  # a call after the last
]


@pytest.mark.filterwarnings("ignore:.*steps that would unmask nothing")
@pytest.mark.parametrize("name,schedule,steps,rule,region,picks", MC)
def test_the_torch_sampler_follows_the_law(name, schedule, steps, rule, region, picks):
    """20,000 rows of the torch prophet sampler (exact_check_options: temperature 1) on the exact denoiser: chi-square
    against the law, and the mean NFE within 5 standard errors of the expected calls."""
    den = ExactDenoiser(MC_LAWS[name])
    start, length = region
    g = dict(zip(("gap_early", "gap_mid", "gap_late"), thresholds(den, start, length, picks)))
    options = {**g, "answer_start": start, "answer_length": length}
    opts = exact_check_options("prophet", schedule=schedule, steps=steps, remasking=rule, **options)
    assert opts["temperature"] == 1.0
    out = make_sampler("prophet", **opts)(ExactTorchDenoiser(den), None, den.n, batch_size=20_000,
                                          generator=torch.Generator().manual_seed(17))
    r = exact_sampler(den, "prophet", schedule, steps, rule, options)
    assert chi_square_pvalue(out.generated.numpy(), r.law) > 1e-3
    nfe = out.nfe.double()
    se = float(nfe.std()) / math.sqrt(nfe.numel())
    assert abs(float(nfe.mean()) - r.expected_calls) <= max(5 * se, 1e-9), (float(nfe.mean()), r.expected_calls, se)
    assert 1.0 < r.expected_calls < steps and abs(r.expected_calls - round(r.expected_calls)) > 0.1  # a random exit
    lo, hi = start, den.n if length is None else start + length
    ref, ref_calls = reference_prophet(den.q, r.counts, rule, tuple(g.values()), range(lo, hi))
    assert np.allclose(r.law, ref, atol=1e-12) and r.expected_calls == pytest.approx(ref_calls, abs=1e-12)


# --- reductions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("counts", COUNTS, ids=str)
@pytest.mark.parametrize("rule", ["random", "low_confidence"])
def test_thresholds_never_reached_give_fixeds_law(counts, rule):
    """No gap reaches 2e9 (a revealed position gives 1e9): the law is fixed's, to the bit, and every step that calls
    does."""
    den = ExactDenoiser(LAWS["dirichlet-3x3"])
    for skip in (False, True):
        law, calls = law_prophet(den, counts, rule, 2e9, 2e9, 2e9, skip_empty_steps=skip)
        assert np.array_equal(law, law_fixed_count(den, counts, rule))
        calling = len(counts) if not (skip or len(counts) > den.n) else sum(1 for c in counts if c)
        assert calls == pytest.approx(calling, rel=1e-12)


@pytest.mark.parametrize("name", sorted(LAWS))
@pytest.mark.parametrize("counts", COUNTS, ids=str)
def test_threshold_zero_is_one_call_and_the_product_of_the_marginals(name, counts):
    den = ExactDenoiser(LAWS[name])
    product = np.ones((1,) * den.n)
    for i in range(den.n):
        product = product * den.conditional(0, i)
    for rule in ("random", "low_confidence"):
        for region in REGIONS:
            law, calls = law_prophet(den, counts, rule, 0.0, 0.0, 0.0, answer_start=region[0], answer_length=region[1])
            assert np.allclose(law, product, atol=1e-15) and calls == 1.0  # one state, mass 1


def test_the_phases_pick_the_threshold_of_the_steps_number():
    """Only the late threshold can be met (early, mid never): the exit waits for the late phase, and with the
    zero-count steps dropped the steps keep their numbers among the steps asked for."""
    den = ExactDenoiser(LAWS["dirichlet-3x3"])
    never = 2e9
    # 6 steps for 3 positions: linear gives [1, 0, 1, 0, 1, 0]; the kept steps are numbers 1, 3, 5 -> progress
    # 1/6, 1/2, 5/6: early, mid, late. The late test (threshold 0) exits at the third call.
    counts = [1, 0, 1, 0, 1, 0]
    law, calls = law_prophet(den, counts, "random", never, never, 0.0)
    assert calls == pytest.approx(3.0, rel=1e-12) and np.array_equal(law, law_fixed_count(den, counts, "random"))
    law, calls = law_prophet(den, counts, "random", never, 0.0, never)  # mid: the second call, from 1 revealed
    ref, ref_calls = reference_prophet(LAWS["dirichlet-3x3"], counts, "random", (never, 0.0, never), range(3))
    assert calls == pytest.approx(2.0, rel=1e-12) and ref_calls == pytest.approx(2.0, rel=1e-12)
    assert np.allclose(law, ref, atol=1e-12)


# --- wiring: registry, exact_sampler, command lines, the KL objective --------------------------------------


def test_prophet_declares_its_exact_law():
    assert "prophet" in EXACT_LAWS and sampler_spec("prophet").exact_law == "prophet"
    opts = exact_check_options("prophet", schedule="linear", steps=3)
    assert opts["temperature"] == 1.0 and opts["block_length"] is None and opts["remasking"] == "low_confidence"
    for bad in ({"block_length": 1}, {"cfg_scale": 1.0}, {"temperature": 0.0}, {"logits_eos_inf": True}):
        with pytest.raises(ValueError, match="exact laws are defined for"):
            exact_check_options("prophet", schedule="linear", steps=3, **bad)


def test_exact_sampler_and_sampler_law_agree_and_report_the_calls():
    den = ExactDenoiser(LAWS["dirichlet-3x3"])
    options = {"gap_early": 0.9, "gap_mid": 0.4, "gap_late": 0.1, "answer_start": 1, "answer_length": 1}
    r = exact_sampler(den, "prophet", "linear", 3, "random", options)
    law, counts = sampler_law(den, "prophet", "linear", 3, "random", options)
    direct, calls = law_prophet(den, [1, 1, 1], "random", 0.9, 0.4, 0.1, answer_start=1, answer_length=1)
    assert np.array_equal(r.law, law) and np.array_equal(law, direct) and counts == r.counts == [1, 1, 1]
    assert r.expected_calls == calls and r.nfe == 3 and r.kl == kl_divergence(den.q, law)
    assert exact_sampler(den, "fixed", "linear", 3).expected_calls is None
    with pytest.raises(ValueError, match="outside the generation window"):
        exact_sampler(den, "prophet", "linear", 3, options={"answer_start": 3})


def test_exact_sampler_passes_the_options_to_the_fixed_order_law():
    """exact_sampler hands its options to sampler_law (before, dus-schedule's dilation was dropped there)."""
    den = ExactDenoiser(random_law(6, 2, 3))
    opts = exact_options("dus-schedule", "linear", 2, options={"dilation": 3})
    want = law_fixed_order(den, fixed_order_groups(opts, den.n))
    assert np.array_equal(exact_sampler(den, "dus-schedule", "linear", 2, options={"dilation": 3}).law, want)


def test_the_kl_objective_scores_prophet_schedules_by_all_their_counts():
    den = ExactDenoiser(LAWS["dirichlet-3x3"])
    options = {"gap_early": 0.9, "gap_mid": 0.4, "gap_late": 0.1, "answer_start": 2}
    obj = KLObjective(den, "prophet", 3, "random", options)
    for counts in ([1, 0, 2], [1, 2, 0], [0, 1, 2]):
        want = kl_divergence(den.q, law_prophet(den, counts, "random", 0.9, 0.4, 0.1, answer_start=2)[0])
        assert obj(counts_schedule(counts)) == want
    assert obj.evaluations == 3 and obj.fixed


def test_exact_command_runs_prophet(capsys):
    argv = ["exact", "--dist", "toy2", "--sampler", "prophet", "--schedule", "linear", "-N", "3", "--gap-early", "0.5",
            "--gap-mid", "0.2", "--answer-start", "3", "--remasking", "random", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    den = ExactDenoiser("toy2")
    counts = parse_schedule("linear").counts(5, 3).tolist()
    law, calls = law_prophet(den, counts, "random", 0.5, 0.2, 2.5, answer_start=3)
    assert out["counts"] == counts and out["expected_calls"] == pytest.approx(calls)
    assert out["kl"] == pytest.approx(kl_divergence(den.q, law))
    assert main(["exact", "--dist", "toy1", "--sampler", "prophet", "--schedule", "linear", "-N", "4", "--gap-early",
                 "0.5"]) == 0
    assert "expected model calls" in capsys.readouterr().out
    assert main(["exact", "--dist", "toy1", "--sampler", "prophet", "--schedule", "linear", "-N", "4",
                 "--answer-start", "5"]) != 0
    err = capsys.readouterr().err
    assert "outside the generation window" in err and len(err.strip().splitlines()) == 1


def test_tune_exact_searches_prophet_schedules(tmp_path, capsys):
    argv = ["tune", "--objective", "exact", "--dist", "toy2", "--sampler", "prophet", "-N", "3", "--gap-early", "0.5",
            "--answer-start", "3", "--strategy", "grid", "--a-values", "0.5,1", "--b-values", "0.5,1", "--optimum",
            "--storage", f"sqlite:///{tmp_path / 's.db'}", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimum"]["kl"] <= out["best"]["score"] + 1e-12 and len(out["optimum"]["counts"]) == 3
