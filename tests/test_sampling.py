"""Samplers: counts per step, exact laws (chi-square), invariants, guidance, errors, adapters."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from _exact_reference import blocked, fixed_assignments, independent_assignments, reference_law
from _stats import chi_square_pvalue

from mdm_energy.cli import main
from mdm_energy.exact import ExactDenoiser, exact_sampler
from mdm_energy.registry import exact_check_options
from mdm_energy.reveal import reveal_probabilities
from mdm_energy.sampling import (
    AncestralSampler,
    CallableDenoiser,
    EntropyBoundedSampler,
    EulerSampler,
    ExactTorchDenoiser,
    FixedCountSampler,
    ThresholdSampler,
    make_sampler,
    select_top_k,
)
from mdm_energy.schedules import Table, parse_schedule

V, MASK = 11, 10


def random_logits_denoiser(seed: int = 0, vocab: int = V, mask_id: int = MASK) -> CallableDenoiser:
    """Logits that depend on the tokens seen, so runs are not trivially constant."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(vocab, vocab, generator=g)

    def fn(tokens, attention_mask=None):
        return table[tokens] + 0.1 * tokens.sum(-1, keepdim=True).unsqueeze(-1).float()

    return CallableDenoiser(fn, mask_id=mask_id, vocab_size=vocab)


def per_call_counts(traj: torch.Tensor, calls: int) -> list[int]:
    return [int((traj == k).sum(-1)[0]) for k in range(1, calls + 1)]


# --- counts per step -------------------------------------------------------------------------------


@pytest.mark.parametrize("L,N", [(256, 8), (64, 64), (96, 32), (12, 3)])
@pytest.mark.parametrize("remasking", ["low_confidence", "random", "margin", "entropy"])
def test_linear_counts_follow_llada(L, N, remasking):
    out = FixedCountSampler("linear", N, remasking=remasking)(random_logits_denoiser(), None, L, batch_size=2,
                                                             generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert per_call_counts(out.trajectory, out.calls) == [L // N] * N
    assert out.calls == N and out.nfe.tolist() == [N, N]
    assert (out.generated != MASK).all()


@pytest.mark.parametrize("spec", ["beta:0.9,0.3", "beta:1,0.2", "beta:0.3,0.9", "beta:1,1"])
def test_beta_counts_follow_design(spec):
    out = FixedCountSampler(spec, 8)(random_logits_denoiser(), None, 256, generator=torch.Generator().manual_seed(0),
                                     return_trajectory=True)
    assert per_call_counts(out.trajectory, 8) == parse_schedule(spec).counts(256, 8).tolist()


def test_blocks_use_the_schedule_per_block_and_fill_in_order():
    s = FixedCountSampler("beta:0.9,0.3", steps=8, block_length=16)
    out = s(random_logits_denoiser(), [[1, 2, 3]], 64, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    traj = out.trajectory[0, out.gen_start:].reshape(4, 16)
    per_block = parse_schedule("beta:0.9,0.3").counts(16, 2).tolist()
    for b in range(4):
        assert [int((traj[b] == 2 * b + k).sum()) for k in (1, 2)] == per_block
    assert all(traj[b].max() < traj[b + 1].min() for b in range(3))


# --- exact laws (chi-square, >= 20,000 samples, fixed seeds) -----------------------------------------


def small_laws():
    rng = np.random.default_rng(7)
    return {
        "random-4x3": rng.dirichlet(np.full(81, 0.7)).reshape((3,) * 4),
        "random-5x2": rng.dirichlet(np.full(32, 0.7)).reshape((2,) * 5),
    }


LAWS = small_laws()
CASES = [
    ("fixed", "random", "beta:0.9,0.3", 3),
    ("fixed", "low_confidence", "linear", 3),
    ("fixed", "margin", "sin2", 3),
    ("fixed", "entropy", "beta:0.3,0.9", 2),
    ("ancestral", None, "sin2", 3),
    ("euler", None, "linear", 4),
]


@pytest.mark.parametrize("law_name", sorted(LAWS))
@pytest.mark.parametrize("sampler,remasking,schedule,steps", CASES)
def test_samplers_match_exact_laws(law_name, sampler, remasking, schedule, steps):
    q = LAWS[law_name]
    den = ExactTorchDenoiser(ExactDenoiser(q))
    given = {"remasking": remasking} if remasking else {}
    s = make_sampler(sampler, **exact_check_options(sampler, schedule=schedule, steps=steps, **given))  # the registry's pairing
    out = s(den, None, den.n, batch_size=20_000, generator=torch.Generator().manual_seed(2024))
    law = exact_sampler(den.exact, sampler, schedule, steps, remasking).law
    assert chi_square_pvalue(out.generated.numpy(), law) > 1e-3


@pytest.mark.parametrize("sampler,remasking,schedule", [("fixed", "random", "beta:0.9,0.3"), ("fixed", "random", "sin2"),
                                                       ("ancestral", None, "sin2"), ("euler", None, "linear")])
def test_several_blocks_follow_the_brute_force_law(sampler, remasking, schedule):
    """n = 4 in two blocks of 2 with 2 steps each: the law of the torch sampler against the sum over every
    reveal-step assignment that keeps block 0 before block 1 (tests/_exact_reference.py)."""
    q = LAWS["random-4x3"]
    den = ExactTorchDenoiser(ExactDenoiser(q))
    given = {"remasking": remasking} if remasking else {}
    s = make_sampler(sampler, schedule=schedule, steps=4, temperature=1.0, block_length=2, **given)
    out = s(den, None, 4, batch_size=20_000, generator=torch.Generator().manual_seed(11))
    if sampler == "fixed":
        per_block = lambda size: fixed_assignments(parse_schedule(schedule).counts(size, 2).tolist())(size)  # noqa: E731
    else:
        pis = reveal_probabilities(schedule, 2, sampler).tolist()
        per_block = lambda size: independent_assignments(pis)(size)  # noqa: E731
    law = reference_law(q, blocked(per_block, blocks=2, steps_per_block=2))
    assert law.sum() == pytest.approx(1.0)
    assert chi_square_pvalue(out.generated.numpy(), law) > 1e-3


@pytest.mark.parametrize("sampler,remasking,schedule,steps", [("fixed", "random", "beta:0.9,0.3", 2),
                                                              ("fixed", "low_confidence", "linear", 2),
                                                              ("fixed", "margin", "sin2", 3), ("ancestral", None, "sin2", 3)])
def test_prompted_runs_follow_the_conditional_law(sampler, remasking, schedule, steps):
    """A prompt fixes the first two positions: the generated three follow the exact law of the sampler on
    q(x_3 x_4 x_5 | prompt), computed by the exact engine on that conditional law."""
    q = LAWS["random-5x2"]
    prompt = [1, 0]
    conditional = q[tuple(prompt)] / q[tuple(prompt)].sum()
    den = ExactTorchDenoiser(ExactDenoiser(q))
    given = {"remasking": remasking} if remasking else {}
    s = make_sampler(sampler, **exact_check_options(sampler, schedule=schedule, steps=steps, **given))
    out = s(den, [prompt], 3, batch_size=20_000, generator=torch.Generator().manual_seed(12))
    assert (out.tokens[:, :2] == torch.tensor(prompt)).all()
    law = exact_sampler(conditional, sampler, schedule, steps, remasking).law
    assert chi_square_pvalue(out.generated.numpy(), law) > 1e-3


def test_flow_matching_euler_solver_gives_the_same_law():
    pytest.importorskip("flow_matching")
    from flow_matching.path import MixtureDiscreteProbPath
    from flow_matching.solver import MixtureDiscreteEulerSolver
    from flow_matching.utils import ModelWrapper

    from mdm_energy import as_convex_scheduler

    q = LAWS["random-5x2"]
    den = ExactTorchDenoiser(ExactDenoiser(q))

    class Posterior(ModelWrapper):  # copies unmasked tokens through (one-hot), as the solver needs
        def forward(self, x, t, **extras):
            return den.probabilities(x).float()

    spec, N, K = "sin2", 4, 20_000
    solver = MixtureDiscreteEulerSolver(Posterior(torch.nn.Identity()), MixtureDiscreteProbPath(as_convex_scheduler(spec)), den.vocab_size)
    torch.manual_seed(11)
    x0 = torch.full((K, den.n), den.mask_id)
    theirs = solver.sample(x_init=x0, step_size=None, time_grid=torch.linspace(0, 1, N + 1)).numpy()
    ours = EulerSampler(spec, N)(den, None, den.n, batch_size=K, generator=torch.Generator().manual_seed(12)).generated.numpy()
    law = exact_sampler(den.exact, "euler", spec, N).law
    assert chi_square_pvalue(theirs, law) > 1e-3
    assert chi_square_pvalue(ours, law) > 1e-3


# --- invariants --------------------------------------------------------------------------------------


class Recorder:
    """Wraps a denoiser and counts its calls; as a step callback it checks, after every call, that no
    revealed token of the whole canvas ever changed (a call may serve only some rows, so the canvas the
    callback sees is the one to compare)."""

    def __init__(self, inner):
        self.inner, self.mask_id, self.vocab_size, self.eos_id = inner, inner.mask_id, inner.vocab_size, None
        self.last = None
        self.calls = self.checks = 0

    def __call__(self, tokens, attention_mask=None):
        self.calls += 1
        return self.inner(tokens, attention_mask)

    def check(self, step, tokens, committed):
        if self.last is not None:
            was = self.last != self.mask_id
            assert torch.equal(tokens[was], self.last[was]), "an unmasked token changed"
            assert not committed[was].any(), "a revealed position was committed again"
        self.last = tokens.clone()
        self.checks += 1


@pytest.mark.parametrize("sampler", [FixedCountSampler("sin2", 8, block_length=8), AncestralSampler("linear", 8),
                                     EulerSampler("beta:0.9,0.3", 8, block_length=16), ThresholdSampler(0.5),
                                     EntropyBoundedSampler(0.5, block_length=8)])
def test_prompt_and_unmasked_tokens_never_change(sampler):
    rec = Recorder(random_logits_denoiser(3))
    prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 1]]
    out = sampler(rec, prompts, 32, generator=torch.Generator().manual_seed(5), return_trajectory=True,
                  callback=rec.check)
    P = out.gen_start
    assert P == 5
    for b, p in enumerate(prompts):
        assert out.tokens[b, P - len(p):P].tolist() == p  # prompts intact, left-padded
        assert out.attention_mask[b].tolist() == [False] * (P - len(p)) + [True] * (len(p) + 32)
    assert (out.generated != MASK).all()
    assert (out.trajectory[:, :P] == 0).all() and (out.trajectory[:, P:] > 0).all()
    assert rec.calls == out.calls == rec.checks


def test_non_finite_logits_name_the_call():
    calls = {"n": 0}

    def fn(tokens):
        calls["n"] += 1
        logits = torch.zeros(tokens.shape + (V,))
        if calls["n"] == 3:
            logits[0, -1, 2] = float("nan")
        return logits

    with pytest.raises(ValueError, match="non-finite logits .* at model call 3"):
        FixedCountSampler("linear", 8)(CallableDenoiser(fn, MASK, V), None, 16)


def test_minus_inf_logits_are_allowed_and_never_chosen():
    def fn(tokens):
        logits = torch.full(tokens.shape + (V,), float("-inf"))
        logits[..., 4] = 0.0
        logits[..., 5] = -1.0
        return logits

    out = FixedCountSampler("linear", 4, temperature=1.0)(CallableDenoiser(fn, MASK, V), None, 8, generator=torch.Generator().manual_seed(0))
    assert set(out.generated.unique().tolist()) <= {4, 5}


def test_mask_token_is_never_committed():
    def fn(tokens):
        logits = torch.zeros(tokens.shape + (V,))
        logits[..., MASK] = 100.0  # a model that loves the mask token
        return logits

    out = FixedCountSampler("linear", 4)(CallableDenoiser(fn, MASK, V), None, 8)
    assert (out.generated != MASK).all()


def test_seeded_runs_repeat():
    s = FixedCountSampler("beta:0.9,0.3", 8, remasking="random", temperature=1.0)
    den = random_logits_denoiser(1)
    a = s(den, None, 32, batch_size=4, generator=torch.Generator().manual_seed(9)).tokens
    b = s(den, None, 32, batch_size=4, generator=torch.Generator().manual_seed(9)).tokens
    c = s(den, None, 32, batch_size=4, generator=torch.Generator().manual_seed(10)).tokens
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- options -------------------------------------------------------------------------------------------


def test_classifier_free_guidance_formula():
    seen = []

    def fn(tokens):
        seen.append(tokens.shape[0])
        prompt_visible = (tokens[:, :1] != MASK).float().unsqueeze(-1)  # (B, 1, 1)
        cond = torch.zeros(tokens.shape + (V,))
        cond[..., 0], uncond = 1.0, torch.zeros(tokens.shape + (V,))
        uncond[..., 0] = 3.0
        return prompt_visible * cond + (1 - prompt_visible) * uncond

    den = CallableDenoiser(fn, MASK, V)
    plain = FixedCountSampler("linear", 2)(den, [[1]], 4)
    assert (plain.generated == 0).all()
    guided = FixedCountSampler("linear", 2, cfg_scale=1.0)(den, [[1]], 4)
    # guided logit of token 0: 3 + 2 * (1 - 3) = -1 < 0 = every other token: token 0 is never chosen
    assert (guided.generated != 0).all()
    assert guided.nfe.tolist() == [2] and seen[-1] == 2  # one batched call per step: conditional + unconditional


def test_skip_empty_steps_and_the_warning():
    """Within the window (N <= L) a zero-count step still makes LLaDA's call unless skip_empty_steps; beyond
    it (N > L) the zero-count steps make no call, with one warning, and the tokens are those of the run that
    commits the same counts without the empty steps (a zero-count step changes nothing)."""
    den = random_logits_denoiser()
    table = "table:0,0,0.5,0.5,1"  # 6 steps on 8 positions: counts 0,0,4,0,4,... with empty steps
    counts = parse_schedule(table).counts(8, 6)
    assert (counts == 0).any()
    full = FixedCountSampler(table, 6)(den, None, 8)
    skip = FixedCountSampler(table, 6, skip_empty_steps=True)(den, None, 8)
    assert full.nfe.item() == 6 and skip.nfe.item() == int((counts > 0).sum())
    assert torch.equal(full.tokens, skip.tokens)
    with pytest.warns(UserWarning, match="the 4 steps that would unmask nothing make no model call"):
        capped = FixedCountSampler("linear", 8)(den, None, 4, return_trajectory=True)
    assert capped.nfe.item() == 4 and (capped.generated != MASK).all()
    for schedule, steps, length in (("beta:0.9,0.3", 30, 8), ("sin2", 40, 6), ("linear", 9, 4)):
        kept = [c for c in parse_schedule(schedule).counts(length, steps).tolist() if c]
        replay = Table.from_counts(kept)  # the same counts, without the empty steps
        for temperature in (0.0, 1.0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                over = FixedCountSampler(schedule, steps, temperature=temperature)(den, None, length, seeds=[7])
            same = FixedCountSampler(replay, len(kept), temperature=temperature)(den, None, length, seeds=[7])
            assert torch.equal(over.tokens, same.tokens) and over.nfe.item() == len(kept) <= length


def test_ancestral_counts_only_calls_that_reveal():
    out = AncestralSampler("beta:1,0.2", 64)(random_logits_denoiser(), None, 8, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert (out.nfe <= 8).all() and out.calls <= 64  # at most one useful call per revealed token
    assert (out.generated != MASK).all()


def test_adaptive_extremes():
    den = random_logits_denoiser(2)
    one_by_one = ThresholdSampler(threshold=1.0)(den, None, 12)
    assert one_by_one.nfe.item() == 12
    at_once = ThresholdSampler(threshold=0.0, block_length=4)(den, None, 12)
    assert at_once.nfe.item() == 3
    eb_tight = EntropyBoundedSampler(epsilon=0.0)(den, None, 12)
    assert eb_tight.nfe.item() == 12
    eb_loose = EntropyBoundedSampler(epsilon=1e9)(den, None, 12)
    assert eb_loose.nfe.item() == 1


def test_entropy_bounded_prefix_rule():
    def fn(tokens):
        logits = torch.zeros(tokens.shape + (V,))
        logits[:, 0, 3] = 50.0  # H ~ 0
        logits[:, 1, :2] = 5.0  # two likely tokens among nine: H ~ 0.97
        return logits  # position 2: uniform over the ten non-mask tokens, H = log 10

    p = torch.softmax(torch.tensor([5.0, 5.0] + [0.0] * 8, dtype=torch.float64), -1)
    h1 = float(-(p * p.log()).sum())
    den = CallableDenoiser(fn, MASK, V)
    # sorted H = [~0, h1, log 10]; the sums of the entropies before each: [0, ~0, h1]
    out = EntropyBoundedSampler(epsilon=h1 + 0.01)(den, None, 3, return_trajectory=True)
    assert out.trajectory[0].tolist() == [1, 1, 1]
    out = EntropyBoundedSampler(epsilon=h1 - 0.01)(den, None, 3, return_trajectory=True)
    assert out.trajectory[0].tolist() == [1, 1, 2]


def test_select_top_k_ties_go_to_the_lower_position():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.5, float("-inf")]], dtype=torch.float64)
    assert select_top_k(scores, torch.tensor([2])).tolist() == [[True, True, False, False, False]]
    assert select_top_k(scores, torch.tensor([5])).tolist() == [[True, True, True, True, False]]


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,call,match",
    [
        (lambda: FixedCountSampler("linear", 0), None, "steps must be a positive integer, got 0"),
        (lambda: AncestralSampler("linear", -2), None, "got -2"),
        (lambda: FixedCountSampler("linear", 8, block_length=5), dict(gen_length=32), "block_length 5 does not divide gen_length 32"),
        (lambda: FixedCountSampler("linear", 6, block_length=8), dict(gen_length=32), "steps 6 is not divisible by the number of blocks 4"),
        (lambda: FixedCountSampler("linear", 8, temperature=-0.5), None, "temperature must be a finite number >= 0, got -0.5"),
        (lambda: FixedCountSampler("linear", 8, remasking="top"), None, "'top'"),
        (lambda: FixedCountSampler("linear", 8), dict(gen_length=32, max_length=30, prompts=[[1, 2]]), "exceeds the model window of 30"),
        (lambda: FixedCountSampler("linear", 8), dict(gen_length=32, prompts=[[1, 99]]), "prompt token 99"),
        (lambda: FixedCountSampler("linear", 8), dict(gen_length=0), "gen_length must be a positive integer, got 0"),
        (lambda: ThresholdSampler(1.5), None, "threshold must lie in"),
        (lambda: make_sampler("gibbs"), None, "'gibbs'"),
    ],
)
def test_bad_input_raises_value_error(build, call, match):
    with pytest.raises(ValueError, match=match):
        s = build()
        if call is not None:
            s(random_logits_denoiser(), **call)


def test_mask_id_outside_the_vocabulary():
    with pytest.raises(ValueError, match="mask_id 11 is outside the vocabulary"):
        CallableDenoiser(lambda t: t, mask_id=11, vocab_size=11)


# --- Hugging Face adapter -------------------------------------------------------------------------------


def test_huggingface_bert_for_masked_lm():
    transformers = pytest.importorskip("transformers")
    from mdm_energy.integrations.huggingface import HFDenoiser

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=48)
    model = transformers.BertForMaskedLM(cfg).eval()
    seen = []
    original = model.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("attention_mask"))
        return original(*args, **kwargs)

    model.forward = spy
    den = HFDenoiser(model, mask_id=3, eos_id=2)
    assert den.max_length == 48 and den.vocab_size == 40
    out = FixedCountSampler("beta:0.9,0.3", 4, block_length=8)(den, [[5, 6, 7], [8]], 16, generator=torch.Generator().manual_seed(0),
                                                               return_trajectory=True)
    assert out.tokens.shape == (2, 19) and (out.generated != 3).all()
    assert seen[0] is not None and seen[0][1, :2].tolist() == [0, 0]  # the padding is masked out for the model
    per_block = parse_schedule("beta:0.9,0.3").counts(8, 2).tolist()
    assert [int((out.trajectory[0] == k).sum()) for k in range(1, 5)] == per_block * 2
    with pytest.raises(ValueError, match="exceeds the model window of 48"):
        FixedCountSampler("linear", 4)(den, [[5] * 40], 16)


def test_huggingface_shifted_logits():
    from mdm_energy.integrations.huggingface import HFDenoiser

    class Out:
        def __init__(self, logits):
            self.logits = logits

    class Model:
        config = None

        def __call__(self, input_ids, attention_mask=None):
            return Out(torch.arange(input_ids.shape[1]).float().view(1, -1, 1).expand(input_ids.shape[0], -1, 5))

    den = HFDenoiser(Model(), mask_id=4, vocab_size=5, shift_logits=True)
    logits = den(torch.zeros((1, 4), dtype=torch.long))
    assert logits[0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0]  # position j now holds the prediction made at j - 1


# --- the check hook ----------------------------------------------------------------------------------


def test_sample_exact_cli(capsys):
    code = main(["sample-exact", "--dist", "toy2", "--sampler", "ancestral", "--schedule", "sin2", "--steps", "3",
                 "--samples", "50", "--seed", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    obj = json.loads(out)
    assert set(obj) == {"samples", "nfe"} and len(obj["samples"]) == 50 and len(obj["nfe"]) == 50
    q = ExactDenoiser("toy2").q
    assert all(len(s) == 5 and q[tuple(s)] >= 0 for s in obj["samples"])
    main(["sample-exact", "--dist", "toy2", "--sampler", "ancestral", "--schedule", "sin2", "--steps", "3",
          "--samples", "50", "--seed", "3", "--json"])
    assert json.loads(capsys.readouterr()[0]) == obj  # seeded


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--dist", "toy1", "--sampler", "fixed", "--samples", "5"], "--steps is required"),
        (["--dist", "toy1", "--sampler", "ancestral", "--steps", "2", "--samples", "0"], "got '0'"),
        (["--dist", "toy1", "--sampler", "euler", "--steps", "2", "--samples", "5", "--remasking", "margin"],
         "--remasking does not apply to the euler sampler"),
        (["--dist", "toy1", "--sampler", "threshold", "--schedule", "sin2", "--samples", "5"],
         "--schedule does not apply to the threshold sampler"),
        (["--dist", "nope", "--sampler", "threshold", "--samples", "5"], "'nope'"),
        (["--dist", "toy1", "--sampler", "threshold", "--samples", "5", "--threshold", "2"], "threshold must lie in [0, 1], got '2'"),
        (["--dist", "toy1", "--sampler", "fixed", "--steps", "2", "--samples", "5", "--schedule", "beta:0,1"], "got 0"),
    ],
)
def test_sample_exact_bad_input(capsys, argv, needle):
    code = main(["sample-exact", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1


def test_inverse_cdf_draws_follow_the_softmax_law():
    from scipy import stats

    from mdm_energy.sampling.ops import _inverse_cdf

    V, M, tau = 600, 40_000, 0.7  # 600 tokens: three chunks of 256, the last one padded
    g = torch.Generator().manual_seed(0)
    row = torch.randn(V, generator=g) * 2
    row[:5] += 4.0  # a few likely tokens and a long tail
    draws = _inverse_cdf(row.expand(M, V).contiguous(), tau, torch.Generator().manual_seed(1))
    p = torch.softmax(row.double() / tau, -1).numpy()
    observed = np.bincount(draws.numpy(), minlength=V).astype(float)
    keep = p * M >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(p[keep], p[~keep].sum()) * M
    assert draws.max() < V and stats.chisquare(obs, exp).pvalue > 1e-3


def test_large_vocabularies_use_the_inverse_cdf_path_and_sample_validly():
    from mdm_energy.sampling import ops

    den = random_logits_denoiser(4, vocab=300, mask_id=299)
    old = ops.GUMBEL_MAX_ELEMENTS
    ops.GUMBEL_MAX_ELEMENTS = 0  # force the inverse-CDF path
    try:
        out = FixedCountSampler("linear", 4, temperature=1.0)(den, None, 16, batch_size=3, generator=torch.Generator().manual_seed(0))
    finally:
        ops.GUMBEL_MAX_ELEMENTS = old
    assert ((out.generated >= 0) & (out.generated < 299)).all()


def test_bench_sampler_cli(capsys):
    code = main(["bench-sampler", "-B", "2", "-L", "16", "-V", "50", "-N", "4", "-T", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    obj = json.loads(out)
    assert {"ms_per_step", "model_ms_per_call", "naive_ms_per_step"} <= set(obj)
    assert all(obj[k] > 0 for k in ("ms_per_step", "model_ms_per_call", "naive_ms_per_step"))


@pytest.mark.parametrize("sampler", ["fixed", "ancestral"])
def test_sample_exact_defaults_follow_the_exact_law(capsys, sampler):
    """With only --steps given, sample-exact runs the sampler as the exact engine defines it (temperature 1,
    the registry's default remasking and schedule), so its samples follow `exact`'s law."""
    assert main(["sample-exact", "--dist", "toy2", "--sampler", sampler, "--steps", "3", "--samples", "20000", "--json"]) == 0
    samples = np.asarray(json.loads(capsys.readouterr()[0])["samples"])
    law = exact_sampler("toy2", sampler, "linear", 3).law
    assert chi_square_pvalue(samples, law) > 1e-3
    if sampler == "fixed":  # and not the law of the other remasking rule
        other = exact_sampler("toy2", "fixed", "linear", 3, "random").law
        assert chi_square_pvalue(samples, other) < 1e-6


def test_confidence_scores_follow_their_formulas():
    """Each remasking score against its formula, computed here in float64 numpy from softmax probabilities."""
    from mdm_energy.sampling import confidence_scores

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 12, generator=g) * 3
    cand = torch.randint(0, 12, (50,), generator=g)
    p = torch.softmax(logits.double(), -1).numpy()
    top = np.sort(p, axis=-1)[:, ::-1]
    expected = {
        "low_confidence": p[np.arange(50), cand.numpy()],
        "margin": top[:, 0] - top[:, 1],
        "entropy": (p * np.log(p)).sum(-1),  # minus the entropy: the most certain first
    }
    for rule, want in expected.items():
        got = confidence_scores(logits, cand, rule, None).numpy()
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=rule)
    r = confidence_scores(logits, cand, "random", torch.Generator().manual_seed(1)).numpy()
    assert r.min() >= 0 and r.max() < 1 and len(np.unique(r)) == 50
