"""The wino sampler (WINO, "Wide-In, Narrow-Out") against a reference written here from the rule, token for token
and call for call, on tiny seeded models: our transformer and a Hugging Face model that takes a 4-D attention
mask; its verification view; and what it refuses."""

from __future__ import annotations

import json
import math
from pathlib import Path

from functools import lru_cache, partial

import pytest
import torch
from _references import llada_candidates
from _tiny_mdm import scale_weights
from _tiny_mdm import tiny_transformer as _tiny_transformer

from mdm_energy.cli import main
from mdm_energy.models import as_denoiser
from mdm_energy.sampling import CallableDenoiser, ExactTorchDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.sampling.wino import ShadowView

V, MASK, EOS, PAD = 24, 23, 22, 0
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]  # different lengths: the batch is left-padded


#: Our transformer, tiny and random, in float64, with large weights (scale 8): sharp, context-dependent
#: predictions, so that drafts clear the thresholds and verification re-masks some of them.
tiny_transformer = partial(_tiny_transformer, vocab=V, mask_id=MASK, eos_id=EOS, pad_id=PAD)


def our_forward(model):
    """Batch-1 call of our transformer with a 4-D mask and position ids (what the reference needs)."""
    return lambda tokens, allowed, pos: model(torch.tensor([tokens]), allowed[None, None],
                                              position_ids=torch.tensor([pos]))[0]


# --- the reference -------------------------------------------------------------------------------------------


@torch.no_grad()
def wino_reference(model, prompt, G, B, tau, tau_back, *, pad=0, temperature=0.0, seed=0, cfg_scale=0.0):
    """WINO for one prompt, from the rule: the layout [pad | prompt | window | B masks (shadow)], its own 4-D mask
    and position ids, plain sets and loops. ``model(tokens, allowed, positions) -> logits (S, V)``. Drafts: every
    masked position of the block with confidence > tau, at most min(max(floor(0.7 m), 5), 20), at least the
    best; when more than one was drafted, the block's earlier tokens whose shadow probability is < tau_back are
    re-masked, at most (previous draft count - 1) of the lowest. The mask token is never proposed and left out of
    the softmax; scores are rounded to 12 decimals and ties go to the lower position, as the package does; at
    temperature > 0 candidates are Gumbel-max draws from the row's stream. Returns the window, the calls and
    counts of what happened (re-masks, capped drafts, capped re-masks, fallback drafts of the best one)."""
    P = pad + len(prompt)
    x = [PAD] * pad + list(prompt) + [MASK] * G
    N = P + G  # real positions
    rng = RowRNG(None, 1, torch.device("cpu"), seeds=[seed])
    stats = {"calls": 0, "remasked": 0, "draft_capped": 0, "remask_capped": 0, "fallback": 0}
    for b in range(G // B):
        s = P + b * B
        pos = list(range(N)) + list(range(s, s + B))
        A = [[False] * (N + B) for _ in range(N + B)]
        for q in range(N + B):
            for k in range(N + B):
                if k < pad:
                    continue  # padding keys are never attended
                if q < N:
                    A[q][k] = k < N
                else:
                    A[q][k] = k >= N or k != s + (q - N)
        A = torch.tensor(A)
        committed = set()  # block offsets committed in this block
        last = 30
        while any(x[t] == MASK for t in range(s, s + B)):
            masked = [t for t in range(s, s + B) if x[t] == MASK]
            m = len(masked)
            cap = min(max(math.floor(0.7 * m), 5), 20)
            logits = model(x + [MASK] * B, A, pos).clone()
            if cfg_scale > 0:
                uncond = [MASK if pad <= t < P else t_ for t, t_ in enumerate(x)]
                u = model(uncond + [MASK] * B, A, pos)
                logits = u + (cfg_scale + 1.0) * (logits - u)
            stats["calls"] += 1
            logits[:, MASK] = -math.inf
            prob = torch.softmax(logits.double(), -1)
            cand, conf = llada_candidates(logits, masked, temperature, rng, prob)
            ranked = sorted(masked, key=lambda t: (-conf[t], t))
            D = [t for t in masked if conf[t] > tau]
            if len(D) > cap:
                D = ranked[:cap]
                stats["draft_capped"] += 1
            elif not D:
                D = ranked[:1]
                stats["fallback"] += 1
            back = {i: round(float(prob[N + i, x[s + i]]), 12) for i in committed}
            for t in D:
                x[t] = cand[t]
            R = []
            if len(D) > 1:
                R = [i for i in sorted(committed) if back[i] < tau_back]
                if len(R) >= last:
                    R = sorted(R, key=lambda i: (back[i], i))[:last - 1]
                    stats["remask_capped"] += 1
            for i in R:
                x[s + i] = MASK
            stats["remasked"] += len(R)
            committed = (committed | {t - s for t in D}) - set(R)
            last = len(D)
    return x[P:], stats


def count_remasks(mask_id):
    """A step callback that counts committed positions masked again, and the count."""
    state = {"prev": None, "remasked": 0}

    def callback(step, tokens, committed):
        if state["prev"] is not None:
            state["remasked"] += int(((state["prev"] != mask_id) & (tokens == mask_id)).sum())
        state["prev"] = tokens.clone()

    return callback, state


# --- parity ----------------------------------------------------------------------------------------------------

CASES = [  # (seed, gen_length, block, threshold, verify_threshold, temperature, cfg_scale)
    (0, 16, 8, 0.1, 0.99, 0.0, 0.0),
    (1, 16, 8, 0.2, 0.6, 0.0, 0.0),
    (2, 24, 8, 0.05, 0.9, 0.0, 0.0),
    (3, 16, 16, 0.3, 0.95, 0.0, 0.0),
    (4, 32, 32, 0.02, 0.999, 0.0, 0.0),
    (5, 16, 8, 0.6, 0.9, 0.0, 0.0),  # the authors' defaults
    (6, 16, 8, 0.1, 0.99, 0.7, 0.0),  # temperature > 0: Gumbel draws from each row's stream
    (7, 16, 8, 0.1, 0.95, 0.0, 0.5),  # guidance: both views through the unconditional half too
]


SEEDS = [11, 12, 13]  # each prompt's random stream


@lru_cache(maxsize=None)
def reference_runs(case) -> tuple:
    """The reference's ``(tokens, stats)`` of each prompt of a case (left-padded to the batch's longest prompt, our
    absolute positions), computed once for the parity test and the branch count below."""
    seed, G, B, tau, tau_back, temp, cfg = case
    model, P = tiny_transformer(seed), max(map(len, PROMPTS))
    return tuple(wino_reference(our_forward(model), prompt, G, B, tau, tau_back, pad=P - len(prompt), temperature=temp,
                                seed=SEEDS[row], cfg_scale=cfg) for row, prompt in enumerate(PROMPTS))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}-G{c[1]}-B{c[2]}-{c[3]}-{c[4]}-T{c[5]}-cfg{c[6]}")
def test_our_transformer_matches_the_reference(case):
    seed, G, B, tau, tau_back, temp, cfg = case
    model = tiny_transformer(seed)
    callback, seen = count_remasks(MASK)
    sampler = make_sampler("wino", threshold=tau, verify_threshold=tau_back, block_length=B, temperature=temp,
                           cfg_scale=cfg)
    out = sampler(as_denoiser(model), PROMPTS, G, pad_id=PAD, callback=callback, seeds=SEEDS)
    remasked = 0
    for row, (want, stats) in enumerate(reference_runs(case)):  # our absolute positions: the reference runs the padded row
        assert out.generated[row].tolist() == want
        assert int(out.nfe[row]) == stats["calls"] <= G
        remasked += stats["remasked"]
    assert seen["remasked"] == remasked
    assert max(out.nfe.tolist()) <= out.calls <= sum(out.nfe.tolist())  # batched calls: the slowest row of each block


def test_the_cases_exercise_every_branch():
    """Re-masking happens, both caps act and the fallback draft of one token occurs: the parity above is not vacuous."""
    total = {"remasked": 0, "draft_capped": 0, "remask_capped": 0, "fallback": 0}
    for case in CASES:
        for _, stats in reference_runs(case):
            for k in total:
                total[k] += stats[k]
    assert all(v > 0 for v in total.values()), total


def tiny_hf(seed: int):
    pytest.importorskip("transformers")
    from _tiny_mdm import TinyDream, TinyDreamConfig

    torch.manual_seed(seed)
    return scale_weights(TinyDream(TinyDreamConfig(vocab_size=V, mask_token_id=MASK, eos_token_id=EOS)).double().eval(),
                         6.0)


@pytest.mark.parametrize("seed,tau,tau_back", [(0, 0.1, 0.99), (1, 0.05, 0.95), (2, 0.1, 0.99)])
def test_a_hugging_face_model_with_a_4d_mask_matches_the_reference(seed, tau, tau_back):
    """A model that takes a boolean (B, 1, S, S) mask and position ids counted from each row's first real token:
    each left-padded row gives what its prompt gives alone in the reference (no padding there)."""
    from mdm_energy.integrations.huggingface import HFDenoiser

    model = tiny_hf(seed)
    den = HFDenoiser(model, mask_id=MASK, pairwise_attention=True)

    def forward(tokens, allowed, pos):
        return model(input_ids=torch.tensor([tokens]), attention_mask=allowed[None, None],
                     position_ids=torch.tensor([pos])).logits[0]

    callback, seen = count_remasks(MASK)
    out = make_sampler("wino", threshold=tau, verify_threshold=tau_back, block_length=8)(
        den, PROMPTS, 16, pad_id=PAD, callback=callback)
    remasked = 0
    for row, prompt in enumerate(PROMPTS):
        want, stats = wino_reference(forward, prompt, 16, 8, tau, tau_back)
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == stats["calls"]
        remasked += stats["remasked"]
    assert seen["remasked"] == remasked > 0


# --- the verification view ---------------------------------------------------------------------------------------


def test_the_view_gives_plain_logits_on_the_canvas_and_leave_one_out_on_the_shadow():
    """Real rows: the plain call's logits (they never see the shadow). Shadow row i: no direct attention to position
    lo + i — in a one-layer model it is then exactly independent of that token (deeper, it still sees it through
    the other positions' states, as the authors' layout does) — and padding keys are never attended."""
    x = torch.tensor([[PAD, PAD, 4, 5, 6, 10, MASK, 12, MASK, 14, MASK, MASK],
                      [1, 2, 3, 4, 5, 7, 8, MASK, 9, MASK, MASK, MASK]])
    am = torch.ones_like(x, dtype=torch.bool)
    am[0, :2] = False
    lo, hi = 5, 10
    T = x.shape[1]
    view = ShadowView(lo, hi)
    for layers in (1, 2):
        model = tiny_transformer(3, scale=1.0, layers=layers)
        den = as_denoiser(model)
        with torch.no_grad():
            logits = view(den, x, am)
            assert logits.shape == (2, T + 5, V)
            torch.testing.assert_close(logits[:, :T], model(x, am), rtol=1e-9, atol=1e-9)
            z = x.clone()
            z[0, :2] = 17
            torch.testing.assert_close(view(den, z, am)[0, 2:], logits[0, 2:], rtol=1e-9, atol=1e-9)
            if layers > 1:
                continue
            for i in range(hi - lo):  # changing position lo + i changes every shadow row but its own
                y = x.clone()
                y[:, lo + i] = 15
                changed = view(den, y, am)[:, T:]
                torch.testing.assert_close(changed[:, i], logits[:, T + i], rtol=1e-9, atol=1e-9)
                others = [T + j for j in range(hi - lo) if j != i]
                assert (changed[:, [j - T for j in others]] - logits[:, others]).abs().amax(-1).min() > 1e-6


def test_the_view_matches_the_references_own_mask_and_positions():
    model = tiny_transformer(4)
    x = [PAD, 4, 5, 6, 10, MASK, 12, MASK, MASK]
    lo, hi = 4, 8
    N, B = len(x), hi - lo
    A = torch.tensor([[k >= 1 and (k < N if q < N else (k >= N or k != lo + q - N)) for k in range(N + B)]
                      for q in range(N + B)])
    pos = list(range(N)) + list(range(lo, hi))
    am = torch.tensor([[False] + [True] * (N - 1)])
    with torch.no_grad():
        want = our_forward(model)(x + [MASK] * B, A, pos)
        got = ShadowView(lo, hi)(as_denoiser(model), torch.tensor([x]), am)[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_callable_denoiser_can_take_a_pairwise_callable_and_one_call_is_one_nfe():
    model = tiny_transformer(0)
    calls = []

    def pairwise(tokens, allowed, pos):
        calls.append(tokens.shape)
        return model(tokens, allowed[:, None], position_ids=pos)

    den = CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V, pairwise=pairwise)
    out = make_sampler("wino", threshold=0.1, verify_threshold=0.99, block_length=8)(den, [[1, 2, 3]], 16)
    want, stats = wino_reference(our_forward(model), [1, 2, 3], 16, 8, 0.1, 0.99)
    assert out.generated[0].tolist() == want and out.nfe.tolist() == [stats["calls"]] == [len(calls)]
    assert all(s == (1, 3 + 16 + 8) for s in calls)


def test_stop_at_eos_and_blocks_go_through_the_loop():
    """Rows that commit an end token with nothing masked before it stop (fewer calls, EOS at the end); the row that
    never stops is the row of the run without stop_at_eos (rows are independent)."""
    den = as_denoiser(tiny_transformer(1))
    run = dict(threshold=0.1, verify_threshold=0.9, block_length=4)
    plain = make_sampler("wino", **run)(den, PROMPTS, 16, pad_id=PAD)
    out = make_sampler("wino", **run, stop_at_eos=True)(den, PROMPTS, 16, pad_id=PAD)
    assert out.stopped.tolist() == [False, True, True]
    assert out.generated[0].tolist() == plain.generated[0].tolist() and out.nfe[0] == plain.nfe[0]
    for row in (1, 2):  # the positions still masked when a row stops become EOS
        assert out.generated[row, -1] == EOS and out.nfe[row] < plain.nfe[row]


# --- what it refuses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,needle", [
    ({"threshold": 1.5}, r"threshold must lie in \[0, 1\], got 1.5"),
    ({"verify_threshold": -0.1}, r"verify_threshold must lie in \[0, 1\], got -0.1"),
    ({"threshold": 0.8, "verify_threshold": 0.5}, "verify_threshold 0.5 is below its threshold 0.8"),
    ({"cache": "prefix"}, "the wino sampler does not take 'cache'"),
    ({"steps": 8}, "the wino sampler does not take 'steps'"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler("wino", **options)


def test_the_defaults_are_the_authors():
    s = make_sampler("wino")
    assert (s.threshold, s.verify_threshold, s.temperature) == (0.6, 0.9, 0.0)
    assert make_sampler("wino", threshold=0.9, verify_threshold=0.9).verify_threshold == 0.9  # equal is fine


def test_a_model_without_a_4d_mask_is_refused_in_one_line():
    pytest.importorskip("transformers")
    from _tiny_mdm import TinyDream, TinyDreamConfig, TinyMDM, TinyMDMConfig

    from mdm_energy.integrations.huggingface import HFDenoiser

    sampler = make_sampler("wino")
    plain = HFDenoiser(TinyMDM(TinyMDMConfig(vocab_size=V, mask_token_id=MASK)).eval())
    with pytest.raises(ValueError, match="^the wino sampler needs a model that takes a 4-D attention mask and "
                                         "position ids; TinyMDM does not$"):
        sampler(plain, [[1, 2]], 8)
    with pytest.raises(ValueError, match="CallableDenoiser does not"):
        sampler(CallableDenoiser(lambda t: torch.zeros(t.shape + (V,)), mask_id=MASK, vocab_size=V), [[1]], 8)
    with pytest.raises(ValueError, match="ExactTorchDenoiser does not"):
        sampler(ExactTorchDenoiser("toy2"), None, 2)
    dream = HFDenoiser(TinyDream(TinyDreamConfig(vocab_size=V, mask_token_id=MASK)).eval(), shift_logits=True,
                       pairwise_attention=True)
    with pytest.raises(ValueError, match="TinyDream's are shifted"):
        sampler(dream, [[1, 2]], 8)


def test_the_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--sampler", "wino", "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert 1 <= obj["nfe"] <= 24 and obj["sampler"].startswith("WinoSampler(threshold=0.6, verify_threshold=0.9")
    for argv, needle in [
        (["generate", "--model", str(CHECKPOINT), "--prompt", "1", "--sampler", "wino", "--threshold", "0.8",
          "--verify-threshold", "0.5"], "verify_threshold 0.5 is below its threshold 0.8"),
        (["generate", "--model", str(CHECKPOINT), "--prompt", "1", "--sampler", "wino", "--verify-threshold", "2"],
         "verify-threshold must lie in [0, 1], got '2'"),
        (["sample-exact", "--dist", "toy2", "--sampler", "wino", "--samples", "2"],
         "the wino sampler needs a model that takes a 4-D attention mask and position ids; ExactTorchDenoiser does not"),
    ]:
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and needle in err and err.count("\n") == 1


def test_pareto_search_never_proposes_verify_below_draft():
    """Every suggested WINO configuration has verify_threshold >= threshold (WINO refuses the others)."""
    import optuna

    from mdm_energy.tuning.pareto import ParetoSpace

    space = ParetoSpace(threshold_bounds=(0.3, 0.99))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(40):
        trial = study.ask()
        opts = space.suggest(trial, "wino")
        seen.append(opts)
        study.tell(trial, [0.0, 1.0])
    assert all(o["verify_threshold"] >= o["threshold"] for o in seen)
    assert any(o["threshold"] > 0.6 for o in seen)  # the draft threshold ranges above the verify range's start
