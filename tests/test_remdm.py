"""ReMDM token for token against references written here from the authors' published rules, on tiny seeded models.

``remdm`` (random positions): the step rule of ReMDM's MDLM sampler — from the state before the step, a
committed token is masked again with probability σ, a masked position is revealed with probability
``(α_s − (1 − σ) α_t)/(1 − α_t)`` (the weight of the tokens in the authors' update; the mask keeps
``(1 − α_s − σ α_t)/(1 − α_t)``), its value drawn from the model's call on that state — with σ by the
paper's strategies: max-capped ``min(η, (1 − α_s)/α_t)``, rescaled ``η min(1, (1 − α_s)/α_t)``, confidence
(a softmax over the committed tokens of minus their commit-time probability, times that bound) and loop
(the paper's Algorithm 3: phases of step counts, the mask level held at ``α_on`` with σ = η). Here α runs on
this package's grid ``t_k = k/N`` (α = 0 all masked), so α_t is the level before the step and α_s after it.

``remdm-llada`` (low confidence): ReMDM-LLaDA's block loop — commit the schedule's count of the most
confident sampled candidates; in the loop phase first re-mask the ``r`` tokens of the block whose
commit-time confidence is lowest, then commit ``r``; commit-time confidences are kept per position.

The references take their random numbers from the same per-row streams as the package (one uniform per
position per step, then one Gumbel vector per revealed position), so equal laws are not enough: the
tokens must agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _tiny_mdm import PositionFromMask
from mdm_energy.cli import main
from mdm_energy.sampling import CallableDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import parse_schedule

V, MASK, EOS = 30, 29, 28
PROMPTS = [[3, 9, 14], [5, 1, 12, 7, 2]]


def Tiny(seed: int = 2) -> PositionFromMask:
    return PositionFromMask(seed, vocab=V)


def denoiser(model) -> CallableDenoiser:
    return CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V, eos_id=EOS)


def canvas(prompts, gen_length):
    P = max(len(p) for p in prompts)
    x = torch.tensor([[0] * (P - len(p)) + p + [MASK] * gen_length for p in prompts])
    am = torch.tensor([[False] * (P - len(p)) + [True] * (len(p) + gen_length) for p in prompts])
    prompt = torch.tensor([[False] * (P - len(p)) + [True] * len(p) + [False] * gen_length for p in prompts])
    return P, x, am, prompt


def row_logits(model, x, am, r, cfg_scale, prompt):
    """The model's logits for row ``r`` alone (with guidance: the unconditional pass masks the prompt)."""
    xr, ar = x[r:r + 1], am[r:r + 1]
    logits = model(xr, ar)
    if cfg_scale > 0:
        un = xr.clone()
        un[prompt[r:r + 1]] = MASK
        uncond = model(un, ar)
        logits = uncond + (cfg_scale + 1) * (logits - uncond)
    logits = logits[0].clone()
    logits[:, MASK] = -math.inf
    return logits


def gumbel_draw(logits_rows, u, temperature):
    g = -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)))
    return (logits_rows.double() / temperature + g).argmax(-1)


def sigma_of(rule, eta, a_t, a_s):
    """σ (for conf: its bound) of one step, by the paper's formulas."""
    bound = min(1.0, (1 - a_s) / a_t) if a_t > 0 else 1.0
    if rule == "cap":
        return min(eta, (1 - a_s) / a_t) if a_t > 0 else eta
    if rule == "rescale":
        return eta * bound
    return eta * bound  # conf: spread over the committed tokens


def loop_levels(schedule, N, eta, start, end, alpha_on):
    """Algorithm 3: n1 steps up to α_on, the loop at α_on with σ = η, n3 steps to 1 (at least one each)."""
    s = parse_schedule(schedule)
    n1 = max(1, math.ceil(start * N))
    n3 = max(1, N - math.ceil(end * N))
    n2 = N - n1 - n3
    a = [alpha_on * float(s.alpha(j / n1)) for j in range(n1 + 1)] + [alpha_on] * n2
    a += [alpha_on + (1 - alpha_on) * float(s.alpha(j / n3)) for j in range(1, n3 + 1)]
    sig = [0.0] * n1 + [eta] * n2 + [0.0] * n3
    return a, sig


@torch.no_grad()
def remdm_reference(model, prompts, L, N, rule, eta, schedule="linear", block=None, cfg_scale=0.0, temperature=1.0,
                    seed=0, loop=(0.45, 0.95, 0.9)):
    P, x, am, prompt = canvas(prompts, L)
    R = len(prompts)
    rng = RowRNG(torch.Generator().manual_seed(seed), R, torch.device("cpu"))
    B = block or L
    per = N // (L // B)
    if rule == "loop":
        alpha, sig = loop_levels(schedule, per, eta, *loop)
    else:
        s = parse_schedule(schedule)
        alpha = [float(s.alpha(k / per)) for k in range(per + 1)]
        sig = [sigma_of(rule, eta, alpha[k - 1], alpha[k]) for k in range(1, per + 1)]
    conf = torch.zeros(x.shape, dtype=torch.float64)
    remasks, calls = 0, [0] * R
    for b in range(L // B):
        lo, hi = P + b * B, P + (b + 1) * B
        for k in range(1, per + 1):
            a_t, a_s, sk = alpha[k - 1], alpha[k], sig[k - 1]
            plans = []
            for r in range(R):
                u = rng.uniform(torch.tensor([r]), (x.shape[1],))[0]
                committed = [j for j in range(lo, hi) if x[r, j] != MASK]
                if rule == "conf" and committed:
                    w = torch.softmax(torch.tensor([-float(conf[r, j]) for j in committed], dtype=torch.float64), 0)
                    s_of = {j: sk * float(wj) for j, wj in zip(committed, w)}
                else:
                    s_of = {j: sk for j in committed}
                s_mask = 0.0 if rule == "conf" else sk
                c = 1.0 if a_t >= 1 else min(1.0, max(0.0, (a_s - (1 - s_mask) * a_t) / (1 - a_t)))
                reveal = [j for j in range(lo, hi) if x[r, j] == MASK and float(u[j]) < c]
                again = [j for j in committed if float(u[j]) < s_of[j]]
                plans.append((reveal, again))
            new = x.clone()
            for r, (reveal, again) in enumerate(plans):
                if reveal:
                    calls[r] += 1
                    logits = row_logits(model, x, am, r, cfg_scale, prompt)
                    u = rng.segments(torch.tensor([r]), torch.tensor([len(reveal)]), V)
                    cand = gumbel_draw(logits[reveal], u, temperature)
                    p = torch.softmax(logits[reveal].double(), -1)
                    for i, j in enumerate(reveal):
                        new[r, j] = cand[i]
                        conf[r, j] = p[i, cand[i]]
                for j in again:
                    new[r, j] = MASK
                remasks += len(again)
            x = new
    return x[:, P:].tolist(), calls, remasks


CASES = [
    ("cap", 0.2, "linear", None, 0.0, 12),
    ("cap", 0.3, "beta:0.9,0.3", 4, 0.0, 12),
    ("rescale", 0.5, "linear", None, 1.5, 12),
    ("rescale", 0.3, "sin2", 4, 0.0, 24),
    ("conf", 1.0, "linear", None, 0.0, 12),
    ("conf", 0.6, "beta:0.9,0.3", 4, 0.0, 24),
    ("loop", 0.1, "linear", None, 0.0, 16),
    ("loop", 0.05, "sin2", 4, 1.0, 24),
]


@pytest.mark.parametrize("rule,eta,schedule,block,cfg,steps", CASES)
def test_remdm_matches_the_reference_token_for_token(rule, eta, schedule, block, cfg, steps):
    model = Tiny()
    sampler = make_sampler("remdm", sigma=rule, eta=eta, schedule=schedule, steps=steps, block_length=block,
                           cfg_scale=cfg)
    out = sampler(denoiser(model), PROMPTS, 8, pad_id=0, generator=torch.Generator().manual_seed(5))
    tokens, calls, remasks = remdm_reference(model, PROMPTS, 8, steps, rule, eta, schedule, block, cfg, seed=5)
    assert out.generated.tolist() == tokens
    assert out.nfe.tolist() == calls
    assert remasks > 0  # revision happened: the comparison is not the non-revising sampler's


def test_more_steps_than_positions_keep_revising():
    """Inference-time scaling: N > L is allowed and keeps re-masking (unlike the fixed-count cap)."""
    model = Tiny()
    out = make_sampler("remdm", steps=40, sigma="cap", eta=0.2)(denoiser(model), PROMPTS, 8, pad_id=0,
                                                                  generator=torch.Generator().manual_seed(1))
    tokens, calls, remasks = remdm_reference(model, PROMPTS, 8, 40, "cap", 0.2, seed=1)
    assert out.generated.tolist() == tokens and out.nfe.tolist() == calls
    assert remasks > 8 and max(calls) > 8


def test_prompt_and_other_blocks_are_never_remasked():
    model = Tiny()
    seen = []

    def watch(step, x, committed):
        seen.append(x.clone())

    sampler = make_sampler("remdm", steps=24, sigma="rescale", eta=1.0, block_length=4)
    out = sampler(denoiser(model), PROMPTS, 8, pad_id=0, generator=torch.Generator().manual_seed(3), callback=watch)
    P = out.gen_start
    for x in seen:
        assert x[0, P - 3:P].tolist() == PROMPTS[0] and x[1, :P].tolist() == PROMPTS[1]
    second = [x for x in seen if (x[:, P + 4:] != MASK).any()]
    first_block = out.tokens[:, P:P + 4]
    assert all(torch.equal(x[:, P:P + 4], first_block) for x in second)  # a finished block stays as it is


# --- ReMDM-LLaDA ------------------------------------------------------------------------------------


@torch.no_grad()
def remdm_llada_reference(model, prompts, L, N, block, r, loop_start, loop_steps, schedule="linear",
                          temperature=1.0, seed=0):
    P, x, am, prompt = canvas(prompts, L)
    R = len(prompts)
    rng = RowRNG(torch.Generator().manual_seed(seed), R, torch.device("cpu"))
    B = block or L
    per = N // (L // B)
    counts = parse_schedule(schedule).counts(B, per).tolist()
    before = math.ceil(loop_start * per)
    loop = loop_steps if loop_steps is not None else per
    turns = [("commit", c) for c in counts[:before]] + [("loop", r)] * loop + [("commit", c) for c in counts[before:]]
    calls, remasks = [0] * R, 0
    for b in range(L // B):
        lo, hi = P + b * B, P + (b + 1) * B
        cache = torch.full(x.shape, math.inf, dtype=torch.float64)
        for kind, n in turns:
            for row in range(R):
                if kind == "loop":
                    committed = [j for j in range(lo, hi) if x[row, j] != MASK]
                    lowest = sorted(committed, key=lambda j: (float(cache[row, j]), j))[:n]
                    for j in lowest:
                        x[row, j], cache[row, j] = MASK, math.inf
                    remasks += len(lowest)
                    n = len(lowest)
                masked = [j for j in range(lo, hi) if x[row, j] == MASK]
                if not masked or n == 0:
                    continue
                calls[row] += 1
                logits = row_logits(model, x, am, row, 0.0, prompt)
                u = rng.segments(torch.tensor([row]), torch.tensor([len(masked)]), V)
                cand = gumbel_draw(logits[masked], u, temperature) if temperature > 0 else logits[masked].argmax(-1)
                p = torch.softmax(logits[masked].double(), -1)
                conf = p[torch.arange(len(masked)), cand]
                best = sorted(range(len(masked)), key=lambda i: (-float(conf[i]), i))[:n]
                for i in best:
                    x[row, masked[i]] = cand[i]
                    cache[row, masked[i]] = conf[i]
    return x[:, P:].tolist(), calls, remasks


LLADA_CASES = [
    (8, None, 1, 0.875, None, "linear", 1.0),  # the published setting: steps = block, 7/8 before the loop
    (8, 4, 1, 0.5, None, "linear", 1.0),
    (4, None, 2, 0.5, 3, "beta:0.9,0.3", 1.0),
    (8, 4, 1, 0.75, 2, "sin2", 0.0),
]


@pytest.mark.parametrize("steps,block,r,start,loop_steps,schedule,temperature", LLADA_CASES)
def test_remdm_llada_matches_the_reference(steps, block, r, start, loop_steps, schedule, temperature):
    model = Tiny(seed=4)
    sampler = make_sampler("remdm-llada", steps=steps, block_length=block, remask_count=r, loop_start=start,
                           loop_steps=loop_steps, schedule=schedule, temperature=temperature)
    out = sampler(denoiser(model), PROMPTS, 8, pad_id=0, generator=torch.Generator().manual_seed(2))
    tokens, calls, remasks = remdm_llada_reference(model, PROMPTS, 8, steps, block, r, start, loop_steps, schedule,
                                                   temperature, seed=2)
    assert out.generated.tolist() == tokens
    assert out.nfe.tolist() == calls
    assert remasks > 0


def test_remdm_llada_published_setting_makes_twice_the_calls():
    """steps = block length = 8, loop_start 7/8: 7 tokens, 8 loop calls, the last token — 16 calls."""
    out = make_sampler("remdm-llada", steps=8)(denoiser(Tiny()), PROMPTS, 8, pad_id=0,
                                               generator=torch.Generator().manual_seed(0))
    assert out.nfe.tolist() == [16, 16]


# --- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,needle", [
    ({"eta": 1.5}, "eta must lie in [0, 1], got 1.5"),
    ({"sigma": "loop", "eta": 0.2}, "eta 0.2 is above (1 - loop_alpha)/loop_alpha"),
    ({"sigma": "loop", "loop_start": 0.9, "loop_end": 0.5}, "0 < loop_start < loop_end < 1"),
    ({"sigma": "loop", "revise_from": 0.5}, "revise_from does not apply to sigma='loop'"),
    ({"sigma": "switch"}, "'switch'"),
    ({"revise_from": 1.0}, "revise_from must lie in [0, 1)"),
    ({"sigma": "cap", "loop_alpha": 0.3}, "loop_alpha applies to sigma='loop' only"),
    ({"sigma": "loop", "steps": 2}, "2 steps leave no step for the loop phase"),
])
def test_bad_remdm_options(options, needle):
    with pytest.raises(ValueError) as err:
        make_sampler("remdm", **{"steps": 8, **options})(denoiser(Tiny()), PROMPTS, 8, pad_id=0)
    assert needle in str(err.value)


def test_remdm_llada_refuses_a_remask_count_of_the_whole_block():
    with pytest.raises(ValueError, match="remask_count 8 must be below the block length 8"):
        make_sampler("remdm-llada", steps=8, remask_count=8)(denoiser(Tiny()), PROMPTS, 8, pad_id=0)


def test_remdm_takes_no_option_it_cannot_honour():
    with pytest.raises(ValueError, match="does not take 'remasking'"):
        make_sampler("remdm", remasking="margin")
    with pytest.raises(ValueError, match="does not take 'eta'"):
        make_sampler("remdm-llada", eta=0.1)


def test_remdm_switch_revises_only_late():
    """revise_from: no step before it re-masks anything (ReMDM-switch)."""
    model = Tiny()
    x_prev, remasked_at = [None], []

    def watch(step, x, committed):
        if x_prev[0] is not None:
            again = (x_prev[0] != MASK) & (x == MASK)
            if again.any():
                remasked_at.append(step)
        x_prev[0] = x.clone()

    make_sampler("remdm", steps=30, sigma="rescale", eta=1.0, revise_from=0.6)(
        denoiser(model), PROMPTS[:1], 8, generator=torch.Generator().manual_seed(0), callback=watch)
    assert remasked_at and min(remasked_at) > 1
    plan = make_sampler("remdm", steps=30, sigma="rescale", eta=1.0, revise_from=0.6).plan(8, 1)
    assert all(s == 0 for s in plan.sigma[:18]) and any(s > 0 for s in plan.sigma[18:])


def test_the_command_line_refuses_bad_remdm_values(capsys):
    for argv in (["--eta", "2"], ["--sigma", "loop", "--eta", "0.5"]):
        code = main(["sample-exact", "--dist", "toy1", "--samples", "50", "--sampler", "remdm", "--steps", "8", *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "eta" in err, err


def test_plan_sigma_matches_the_paper(tmp_path):
    """The plan's σ per rule against the paper's formulas, and c_k keeps the forward marginals: the chance of
    still being masked after step k is 1 − α_k for every σ (one committed-or-masked position, from all masked)."""
    from mdm_energy.revision import revision_plan
    for rule, eta in (("cap", 0.05), ("rescale", 0.4)):
        plan = revision_plan("sin2", 16, rule, eta)
        a = parse_schedule("sin2").alpha(np.arange(17) / 16)
        want = [sigma_of(rule, eta, a[k - 1], a[k]) for k in range(1, 17)]
        assert np.allclose(plan.sigma, want, atol=1e-15)
        masked = 1.0
        for k in range(1, 17):  # P(masked after) = P(masked)(1 − c) + P(committed) σ
            masked = masked * (1 - plan.reveal(k)) + (1 - masked) * plan.sigma[k - 1]
            assert masked == pytest.approx(1 - a[k], abs=1e-12)


# --- tuning the schedule with the revision parameters --------------------------------------------------


CKPT = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints" / "countdown")


def test_tune_pareto_searches_eta_with_the_schedule_and_keeps_the_rule(tmp_path, capsys):
    """--pareto on remdm: every trial draws Beta (a, b), the steps and η; the fixed --sigma is in every command,
    and rerunning a printed command gives the trial's score (the search scored what it says)."""
    import json

    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CKPT, "--sampler", "remdm",
            "--sigma", "rescale", "--steps-values", "8,24", "--strategy", "random", "--budget", "3", "--limit", "12",
            "--storage", f"sqlite:///{tmp_path}/t.db", "--study", "r", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    trials = out["front"]
    assert out["evaluations"] == 3 and trials
    assert all(t["options"]["sigma"] == "rescale" and "--sigma rescale" in t["command"] for t in trials)
    assert all(0.002 <= t["options"]["eta"] <= 0.1 and t["options"]["schedule"].startswith("beta:") for t in trials)
    from mdm_energy.models import load_model
    from mdm_energy.tasks import get_task
    from mdm_energy.tasks.evaluate import task_pareto_objective

    t = trials[0]
    opts = {k: v for k, v in t["options"].items() if k != "sigma"}
    score, nfe = task_pareto_objective(get_task("countdown"), load_model(CKPT), n=12, sigma="rescale").evaluate("remdm", opts)
    assert score.value == pytest.approx(t["quality"]) and nfe == pytest.approx(t["nfe"])
    bad = argv[:-1] + ["--loop-alpha", "2"]
    assert main(bad) == 2 and "loop-alpha must lie in (0, 1), got '2'" in capsys.readouterr().err


# --- the torch sampler follows the exact law ---------------------------------------------------------------


def _random_law(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(d ** n, 0.6)).reshape((d,) * n)


@pytest.mark.parametrize("sigma,eta,schedule,steps", [
    ("cap", 0.3, "linear", 8),
    ("rescale", 0.6, "sin2", 6),
    ("loop", 0.1, "linear", 10),
    ("cap", 0.2, "beta:0.5,1.5", 12),  # beyond N = L
])
def test_remdm_follows_its_exact_law(sigma, eta, schedule, steps):
    """20,000 rows of the torch sampler on the exact denoiser of a random law (n = 4, d = 3) against the exact
    engine's law of the reveal-and-remask chain (Pearson chi-square, p > 1e-3), and their mean model calls
    against the exact expected calls (5 standard errors)."""
    from _stats import chi_square_pvalue
    from mdm_energy.exact import ExactDenoiser, exact_sampler
    from mdm_energy.registry import exact_check_options
    from mdm_energy.sampling import ExactTorchDenoiser

    q = _random_law(4, 3, seed=11)
    den = ExactTorchDenoiser(ExactDenoiser(q))
    given = {"sigma": sigma, "eta": eta}
    opts = exact_check_options("remdm", schedule=schedule, steps=steps, **given)
    out = make_sampler("remdm", **opts)(den, None, 4, batch_size=20_000, generator=torch.Generator().manual_seed(77))
    exact = exact_sampler(den.exact, "remdm", schedule, steps, options=given)
    assert chi_square_pvalue(out.generated.numpy(), exact.law) > 1e-3
    nfe = out.nfe.double()
    assert abs(float(nfe.mean()) - exact.expected_calls) < 5 * float(nfe.std()) / math.sqrt(len(nfe)) + 1e-9
    assert exact.kl > 0


def test_the_chi_square_check_sees_a_wrong_remasking_probability():
    """The same check fails when the torch sampler runs another η than the law: the test can tell them apart."""
    from _stats import chi_square_pvalue
    from mdm_energy.exact import ExactDenoiser, exact_sampler
    from mdm_energy.sampling import ExactTorchDenoiser

    q = _random_law(4, 3, seed=11)
    den = ExactTorchDenoiser(ExactDenoiser(q))
    out = make_sampler("remdm", sigma="rescale", eta=1.0, schedule="linear", steps=8, temperature=1.0)(
        den, None, 4, batch_size=20_000, generator=torch.Generator().manual_seed(78))
    law = exact_sampler(den.exact, "remdm", "linear", 8, options={"sigma": "rescale", "eta": 0.0}).law
    assert chi_square_pvalue(out.generated.numpy(), law) < 1e-6


def test_tune_the_exact_objective_of_remdm(tmp_path, capsys):
    """tune --objective exact --sampler remdm: the Beta search scores each schedule with ReMDM's exact KL at the
    given sigma and eta: the best trial's KL and the baselines' are the engine's."""
    import json

    from mdm_energy.exact import exact_sampler

    argv = ["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "remdm", "--sigma", "cap", "--eta", "0.3",
            "-N", "10", "--strategy", "tpe", "--budget", "6", "--storage", f"sqlite:///{tmp_path}/e.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    best, opts = out["best"], {"sigma": "cap", "eta": 0.3}
    assert out["evaluations"] == 6
    assert best["score"] == pytest.approx(exact_sampler("toy1", "remdm", best["spec"], 10, options=opts).kl, rel=1e-9)
    assert out["baselines"]["linear"] == pytest.approx(exact_sampler("toy1", "remdm", "linear", 10, options=opts).kl)


@pytest.mark.parametrize("argv,needle", [
    (["--objective", "task", "--task", "countdown", "--checkpoint", CKPT, "--sigma", "cap"],
     "--sigma does not apply to the fixed sampler"),
    (["--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CKPT, "--sampler", "remdm",
      "--eta", "0.1"], "--eta does not apply to --pareto"),
    (["--objective", "exact", "--dist", "toy1", "--sampler", "remdm", "--sigma", "conf"], "no law for sigma='conf'"),
    (["--objective", "exact", "--dist", "toy1", "--sampler", "remdm", "--remask-count", "3"],
     "--remask-count does not apply to the remdm sampler"),
])
def test_tune_refuses_revision_flags_it_cannot_honour(argv, needle, capsys, tmp_path):
    assert main(["tune", *argv, "-N", "8", "--strategy", "tpe", "--storage", f"sqlite:///{tmp_path}/x.db"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "x.db").exists()


# --- caches, early stop and blocks work under revision ------------------------------------------------------


def _cached_model():
    from mdm_energy.models import MDMConfig, MDMTransformer

    torch.manual_seed(0)
    model = MDMTransformer(MDMConfig(vocab_size=V, mask_id=MASK, eos_id=EOS, pad_id=0, max_len=48, d_model=32,
                                     n_layers=2, n_heads=2, d_ff=64))
    return model.double().eval()


@pytest.mark.parametrize("name,options", [
    ("remdm", {"sigma": "rescale", "eta": 0.5, "steps": 24}),
    ("remdm-llada", {"steps": 8, "remask_count": 2}),
])
def test_revision_with_an_exact_cache_is_token_identical(name, options):
    """A prefix or dual cache refreshed at every call (cache_refresh=1) is exact: the same tokens and calls as
    without a cache, while committed tokens of the block are being re-masked."""
    from mdm_energy.models import as_denoiser

    den = as_denoiser(_cached_model())
    prompts = [[3, 9, 14, 4], [5, 1, 12, 7]]
    base = make_sampler(name, block_length=4, **options)(den, prompts, 8, generator=torch.Generator().manual_seed(9))
    for cache in ("prefix", "dual"):
        out = make_sampler(name, block_length=4, cache=cache, cache_refresh=1, **options)(
            den, prompts, 8, generator=torch.Generator().manual_seed(9))
        assert torch.equal(out.tokens, base.tokens) and torch.equal(out.nfe, base.nfe)
    spans = []
    span = den.span
    den.span = lambda *a, **k: spans.append(1) or span(*a, **k)  # the cached path, refreshed only at block starts
    out = make_sampler(name, block_length=4, cache="prefix", **options)(
        den, prompts, 8, generator=torch.Generator().manual_seed(9))
    assert spans and not bool((out.generated == MASK).any())


def test_stop_at_eos_under_revision_stops_a_row_exactly_where_it_finished():
    """stop_at_eos under revision: up to the first call after which a row has an end token with nothing masked
    before it, the run is the run without early stop, call for call; at that call the row's masked positions after
    its end token become EOS (and it makes no more calls), nothing else changes."""
    model = PositionFromMask(1, vocab=V, end_bias=6.0, end_ids=(EOS,))
    den = denoiser(model)
    prompts = [[3, 9, 14], [5, 1, 12, 7, 2], [4, 4], [8, 2, 6]]
    kw = dict(steps=16, sigma="cap", eta=0.1)
    states = {False: [], True: []}
    for stop in (False, True):
        out = make_sampler("remdm", stop_at_eos=stop, **kw)(
            den, prompts, 10, pad_id=0, generator=torch.Generator().manual_seed(4),
            callback=lambda c, x, committed, stop=stop: states[stop].append(x.clone()))
        if stop:
            stopped, start = out.stopped, out.gen_start
    assert bool(stopped.any())
    free, early = states[False], states[True]
    c = next(i for i, (a, b) in enumerate(zip(free, early)) if not torch.equal(a, b))
    assert all(torch.equal(a, b) for a, b in zip(free[:c], early[:c]))
    w = free[c][:, start:]
    first = torch.where((w == EOS).any(1), (w == EOS).long().argmax(1), torch.full((w.shape[0],), w.shape[1]))
    done = (first < w.shape[1]) & ~((w == MASK) & (torch.arange(w.shape[1]) < first[:, None])).any(1)
    fill = done[:, None] & (w == MASK) & (torch.arange(w.shape[1]) > first[:, None])
    assert bool(done.any()) and torch.equal(early[c][:, start:], torch.where(fill, torch.full_like(w, EOS), w))
