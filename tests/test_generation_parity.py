"""Generation parity with LLaDA, Dream and Fast-dLLM, each rule against a reference written here from its
published description, on tiny models built here; end-of-sequence controls, early stop, callbacks and the
``generate`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny_mdm import PositionFromMask
from mdm_energy.cli import main
from mdm_energy.sampling import CallableDenoiser, ExactTorchDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import parse_schedule

V, MASK, EOS, EOT = 30, 29, 28, 27
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"


def Tiny(seed: int = 0, end_bias: float = 3.0) -> PositionFromMask:
    """A tiny bidirectional transformer with sharp, context-dependent predictions that often propose the end
    tokens (a head bias towards EOS and EoT), so the end-of-sequence controls change what is committed."""
    return PositionFromMask(seed, vocab=V, end_bias=end_bias, end_ids=(EOS, EOT))


def denoiser(model) -> CallableDenoiser:
    return CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V, eos_id=EOS, stop_ids=(EOS, EOT))


def softmax64(logits):
    return torch.softmax(logits.double(), -1)


# --- LLaDA's end-of-sequence flags ------------------------------------------------------------------------


@torch.no_grad()
def llada_reference(model, prompt, gen_length, steps, block_length, schedule="linear", logits_eos_inf=False,
                    confidence_eos_eot_inf=False):
    """LLaDA's generate at temperature 0 with low_confidence, one prompt, from the published description;
    logits_eos_inf: the EOS logit is -inf before candidates are taken; confidence_eos_eot_inf: EOS and EoT
    candidates are committed only when nothing else is left (ties to the lower position)."""
    P, L, B = len(prompt), gen_length, block_length
    x = prompt + [MASK] * L
    counts = parse_schedule(schedule).counts(B, steps // (L // B)).tolist()
    for b in range(L // B):
        for k in counts:
            logits = model(torch.tensor([x]))[0].clone()
            logits[:, MASK] = -math.inf
            if logits_eos_inf:
                logits[:, EOS] = -math.inf
            p = softmax64(logits)
            cand = p.argmax(-1)
            options = []
            for i in range(P + b * B, P + (b + 1) * B):
                if x[i] == MASK:
                    last = confidence_eos_eot_inf and int(cand[i]) in (EOS, EOT)
                    options.append((last, -float(p[i, cand[i]]), i))
            for _, _, i in sorted(options)[:k]:
                x[i] = int(cand[i])
    return x[P:]


@pytest.mark.parametrize("flags", [{}, {"logits_eos_inf": True}, {"confidence_eos_eot_inf": True},
                                   {"logits_eos_inf": True, "confidence_eos_eot_inf": True}])
@pytest.mark.parametrize("schedule,block", [("linear", 4), ("beta:0.9,0.3", 8)])
@pytest.mark.parametrize("seed", [6, 9])  # 6 proposes EoT, 9 EOS: each flag changes the output of one of them
def test_llada_eos_flags_match_the_reference(flags, schedule, block, seed):
    model = Tiny(seed=seed)
    prompts = [[3, 9, 14], [5, 1, 12, 7, 2], [20]]
    out = make_sampler("fixed", schedule=schedule, steps=4, block_length=block, **flags)(denoiser(model), prompts, 8,
                                                                                         pad_id=0)
    for row, prompt in enumerate(prompts):
        assert out.generated[row].tolist() == llada_reference(model, prompt, 8, 4, block, schedule, **flags)


def test_the_flags_change_the_output_here():
    model = Tiny(seed=6)
    plain = llada_reference(model, [3, 9, 14], 8, 4, 4)
    assert EOT in plain
    assert llada_reference(model, [3, 9, 14], 8, 4, 4, confidence_eos_eot_inf=True) != plain
    model = Tiny(seed=9)
    plain = llada_reference(model, [3, 9, 14], 8, 4, 4)
    assert EOS in plain
    no_eos = llada_reference(model, [3, 9, 14], 8, 4, 4, logits_eos_inf=True)
    assert EOS not in no_eos and no_eos != plain


def test_suppressed_tokens_are_never_proposed():
    model = Tiny(seed=3)
    out = make_sampler("fixed", steps=8, suppress_tokens=(EOS, EOT, 5))(denoiser(model), [[1, 2]], 8)
    assert not np.isin(out.generated.numpy(), [EOS, EOT, 5]).any()
    with pytest.raises(ValueError, match="suppress_tokens 30 is outside the vocabulary"):
        make_sampler("fixed", steps=8, suppress_tokens=(30,))(denoiser(model), [[1]], 8)


# --- Dream ---------------------------------------------------------------------------------------------


def dream_counts_reference(length: int, steps: int, eps: float) -> list[int]:
    s = torch.linspace(1, eps, steps + 1)
    out, left = [], length
    for i in range(steps):
        n = left if i == steps - 1 else int(torch.tensor(float(left)) * (1 - s[i + 1] / s[i]))
        out.append(n)
        left -= n
    return out


@pytest.mark.parametrize("length,steps,eps", [(256, 8, 1e-3), (64, 64, 1e-3), (100, 7, 0.05), (16, 3, 0.0)])
def test_dream_count_rule(length, steps, eps):
    counts = parse_schedule(f"dream:{eps}").counts(length, steps).tolist()
    assert counts == dream_counts_reference(length, steps, eps) and sum(counts) == length


def top_p_reference(p: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens while the probability before them is at most top_p, then renormalise."""
    order = torch.argsort(p, descending=True)
    keep = torch.zeros_like(p, dtype=torch.bool)
    before = 0.0
    for j in order.tolist():
        if before > top_p:
            break
        keep[j] = True
        before += float(p[j])
    q = torch.where(keep, p, torch.zeros_like(p))
    return q / q.sum()


def top_k_reference(p: torch.Tensor, k: int) -> torch.Tensor:
    kth = torch.sort(p, descending=True).values[k - 1]
    q = torch.where(p >= kth, p, torch.zeros_like(p))
    return q / q.sum()


@torch.no_grad()
def dream_reference(model, prompts, gen_length, steps, alg, eps=1e-3, top_p=None, top_k=None, seed=0):
    """Dream's diffusion_generate at temperature 0 from its published description, several prompts at once
    (left-padded; the model sees a padding mask): the mask levels s run from 1 to eps; ``origin`` commits
    each masked position with probability 1 - s_next/s (uniforms from each row's stream, as this package
    draws them); the other algorithms commit floor(masked * (1 - s_next/s)) (all at the last step) of the
    most confident candidates of the filtered distribution."""
    P = max(len(p) for p in prompts)
    x = torch.tensor([[0] * (P - len(p)) + p + [MASK] * gen_length for p in prompts])
    am = torch.tensor([[False] * (P - len(p)) + [True] * (len(p) + gen_length) for p in prompts])
    rng = RowRNG(torch.Generator().manual_seed(seed), len(prompts), torch.device("cpu"))
    s = torch.linspace(1, eps, steps + 1)
    for i in range(steps):
        logits = model(x, am).clone()
        logits[..., MASK] = -math.inf
        masked = x == MASK
        probs = softmax64(logits)
        for r in range(len(prompts)):
            pos = masked[r].nonzero().flatten().tolist()
            dist = [probs[r, j] for j in pos]
            if top_p is not None:
                dist = [top_p_reference(q, top_p) for q in dist]
            if top_k is not None:
                dist = [top_k_reference(q, top_k) for q in dist]
            cand = [int(q.argmax()) for q in dist]
            if alg == "origin":
                p_move = 1 - s[i + 1] / s[i] if i < steps - 1 else torch.tensor(1.0)
                u = rng.segments(torch.tensor([r]), torch.tensor([len(pos)]), 1, dtype=torch.float32)[:, 0]
                chosen = [j for j, uu in zip(range(len(pos)), u) if uu < p_move]
            else:
                if alg == "maskgit_plus":
                    conf = [float(q.max()) for q in dist]
                elif alg == "topk_margin":
                    conf = [float(q.topk(2).values[0] - q.topk(2).values[1]) for q in dist]
                else:
                    conf = [float((q * torch.log(q + 1e-10)).sum()) for q in dist]
                n = int(torch.tensor(float(len(pos))) * (1 - s[i + 1] / s[i])) if i < steps - 1 else len(pos)
                chosen = sorted(range(len(pos)), key=lambda j: (-conf[j], j))[:n]
            for j in chosen:
                x[r, pos[j]] = cand[j]
    return x[:, P:].tolist()


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("filters", [{}, {"top_p": 0.9}, {"top_k": 3}])
def test_dream_algorithms_match_the_reference(alg, filters):
    model = Tiny(seed=4, end_bias=0.0)
    prompts = [[3, 9, 14], [5, 1, 12, 7, 2]]
    sampler = make_sampler("dream", alg=alg, steps=5, schedule="dream:0.001", **filters)
    out = sampler(denoiser(model), prompts, 10, pad_id=0, generator=torch.Generator().manual_seed(7))
    assert out.generated.tolist() == dream_reference(model, prompts, 10, 5, alg, seed=7, **filters)
    if alg != "origin":
        assert out.nfe.tolist() == [5, 5]


def test_dream_alg_temp_draws_positions_by_confidence():
    """alg_temp > 0: the first step's position is drawn with probability softmax(confidence / alg_temp)."""
    model = Tiny(seed=4, end_bias=0.0)
    den = denoiser(model)
    with torch.no_grad():
        logits = model(torch.tensor([[3] + [MASK] * 4]))[0, 1:].clone()
    logits[:, MASK] = -math.inf
    conf = softmax64(logits).max(-1).values
    want = torch.softmax(conf / 0.5, 0).numpy()
    sampler = make_sampler("dream", alg="maskgit_plus", alg_temp=0.5, steps=4, schedule="table:0.25,0.5,0.75")
    out = sampler(den, [[3]], 4, batch_size=4000, return_trajectory=True, generator=torch.Generator().manual_seed(0))
    first = (out.trajectory[:, 1:] == 1).float().mean(0).numpy()
    assert np.abs(first - want).max() < 0.03


def test_dream_pairwise_attention_gives_each_row_its_own_answer():
    """A Dream-style model (pairwise boolean mask and position ids) through the Hugging Face adapter: a
    batch of prompts of different lengths gives each row what that prompt gives alone."""
    pytest.importorskip("transformers")
    from _tiny_mdm import TinyDream, TinyDreamConfig

    from mdm_energy.integrations.huggingface import HFDenoiser

    torch.manual_seed(0)
    model = TinyDream(TinyDreamConfig(vocab_size=48)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)
    den = HFDenoiser(model, mask_id=3, shift_logits=True, pairwise_attention=True)
    prompts = [[10, 11], [12, 13, 14, 15, 16], [20]]
    sampler = make_sampler("dream", alg="entropy", steps=4, top_p=0.95)
    batch = sampler(den, prompts, 8, pad_id=0).generated.tolist()
    alone = [sampler(den, [p], 8).generated[0].tolist() for p in prompts]
    assert batch == alone


# --- Fast-dLLM ------------------------------------------------------------------------------------------


@torch.no_grad()
def fast_dllm_reference(model, prompt, gen_length, block_length, rule, value):
    """Threshold: commit the most confident and every candidate with confidence >= threshold. Factor: with
    confidences sorted, commit the longest prefix where (n + 1)(1 - c_n) <= factor (n >= 2), at least one.
    Returns the tokens and the number of model calls."""
    P, x, calls = len(prompt), prompt + [MASK] * gen_length, 0
    for b in range(gen_length // block_length):
        block = range(P + b * block_length, P + (b + 1) * block_length)
        while any(x[i] == MASK for i in block):
            logits = model(torch.tensor([x]))[0].clone()
            logits[:, MASK] = -math.inf
            calls += 1
            p = softmax64(logits)
            ranked = sorted(((float(p[i].max()), -i) for i in block if x[i] == MASK), reverse=True)
            take = 1
            for n, (c, _) in enumerate(ranked[1:], start=2):
                if (c >= value) if rule == "threshold" else ((n + 1) * (1 - c) <= value):
                    take = n if rule == "factor" else take + 1
                elif rule == "factor":
                    break
            for _, neg_i in ranked[:take]:
                x[-neg_i] = int(p[-neg_i].argmax())
    return x[P:], calls


@pytest.mark.parametrize("rule,value", [("threshold", 0.5), ("threshold", 0.95), ("factor", 1.0), ("factor", 3.0)])
def test_fast_dllm_rules_match_the_reference_with_their_nfe(rule, value):
    model = Tiny(seed=5, end_bias=0.0)
    prompt = [4, 8, 15]
    out = make_sampler(rule, **{rule: value}, block_length=4)(denoiser(model), [prompt], 12)
    tokens, calls = fast_dllm_reference(model, prompt, 12, 4, rule, value)
    assert out.generated[0].tolist() == tokens and int(out.nfe[0]) == calls


# --- early stop, callbacks ---------------------------------------------------------------------------------


def test_stop_at_eos_changes_the_calls_never_the_answer_on_the_exact_denoiser():
    """Token 0 plays EOS on an explicit law; every row's answer (up to its first 0) is the same with and
    without early stop, at temperature 1 and with random remasking, and rows that stop use fewer calls."""
    rng = np.random.default_rng(3)
    q = rng.dirichlet(np.full(3**6, 0.5)).reshape((3,) * 6)
    den = ExactTorchDenoiser(q)
    den.eos_id = 0
    for name, opts in (("fixed", {"remasking": "random", "temperature": 1.0}), ("fixed", {"temperature": 1.0}),
                       ("ancestral", {})):
        runs = {}
        for stop in (False, True):
            s = make_sampler(name, schedule="linear", steps=6, stop_at_eos=stop, **opts)
            runs[stop] = s(den, None, 6, batch_size=300, generator=torch.Generator().manual_seed(1))

        def answer(row):
            row = row.tolist()
            return row[: row.index(0)] if 0 in row else row

        assert [answer(r) for r in runs[True].generated] == [answer(r) for r in runs[False].generated]
        assert (runs[True].nfe <= runs[False].nfe).all() and runs[True].nfe.sum() < runs[False].nfe.sum()
        stopped = runs[True].stopped
        assert stopped.any() and all(0 in r.tolist() for r in runs[True].generated[stopped])


def test_stop_at_eos_on_a_tiny_model_shrinks_the_batch():
    model = Tiny(seed=2, end_bias=6.0)
    seen = []
    den = CallableDenoiser(lambda t, am=None: (seen.append(t.shape[0]), model(t, am))[1], mask_id=MASK, vocab_size=V,
                           eos_id=EOS, stop_ids=(EOS, EOT))
    prompts = [[3, 9, 14], [5, 1, 12], [20, 21, 22]]
    plain = make_sampler("fixed", steps=12, block_length=4)(den, prompts, 12)
    calls_plain = list(seen)
    seen.clear()
    early = make_sampler("fixed", steps=12, block_length=4, stop_at_eos=True)(den, prompts, 12)
    stops = {EOS, EOT}

    def answer(row):
        row = row.tolist()
        cut = min([row.index(t) for t in stops if t in row], default=len(row))
        return row[:cut]

    assert [answer(r) for r in early.generated] == [answer(r) for r in plain.generated]
    assert early.stopped.any() and sum(seen) < sum(calls_plain) and min(seen) < max(seen)  # the batch shrank


def test_the_callback_sees_every_call_and_what_it_committed():
    model = Tiny(seed=6)
    log = []
    s = make_sampler("fixed", schedule="beta:0.9,0.3", steps=4)
    out = s(denoiser(model), [[1, 2]], 8, return_trajectory=True,
            callback=lambda step, tokens, committed: log.append((step, committed[0].clone(), tokens.clone())))
    assert [e[0] for e in log] == [1, 2, 3, 4]
    assert [int(e[1].sum()) for e in log] == parse_schedule("beta:0.9,0.3").counts(8, 4).tolist()
    assert torch.equal(log[-1][2], out.tokens)
    for step, committed, _ in log:
        assert torch.equal(committed, out.trajectory[0] == step)


# --- bad input and the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("options,needle", [
    ({"alg": "greedy"}, "unknown Dream algorithm 'greedy'"),
    ({"top_p": 0.0}, r"top_p must lie in \(0, 1\], got 0.0"),
    ({"top_p": 1.5}, "top_p must lie in"),
    ({"top_k": 0}, "top_k must be a positive integer, got 0"),
    ({"alg_temp": -1.0}, "alg_temp must be a finite number >= 0"),
    ({"suppress_tokens": [-1]}, "suppress_tokens must be a list of token ids >= 0"),
])
def test_bad_dream_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler("dream", **options)


def test_end_controls_need_an_end_token():
    den = CallableDenoiser(lambda t: torch.zeros(t.shape + (5,)), mask_id=4, vocab_size=5)
    with pytest.raises(ValueError, match="stop_at_eos needs a denoiser with an end token"):
        make_sampler("fixed", steps=2, stop_at_eos=True)(den, None, 4)


def test_generate_command_on_the_committed_checkpoint(capsys):
    argv = ["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--steps", "6", "--show", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    obj = json.loads(out)
    assert set(obj) == {"text", "nfe", "counts", "stopped_early", "sampler"}
    assert obj["nfe"] == 6 and sum(obj["counts"]) == 24 and "call 1:" in err and "call 6:" in err
    assert main(["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--sampler", "threshold"]) == 0
    text = capsys.readouterr()[0]
    assert text.count("\n") == 1 and set(text.strip()) <= set("0123456789+-*/() ")


@pytest.mark.parametrize("argv,needle", [
    (["--model", "/no/such/folder", "--prompt", "1", "-N", "2"], "model folder '/no/such/folder' does not exist"),
    (["--model", ".", "--prompt", "1", "-N", "2"], "no model in '.'"),
    (["--model", str(CHECKPOINT), "--prompt", "abc", "-N", "2"], "character 'a' is not in the task's vocabulary"),
    (["--model", str(CHECKPOINT), "--prompt", "1", "-N", "2", "--top-k", "3"], "--top-k does not apply to the fixed sampler"),
    (["--model", str(CHECKPOINT), "--prompt", "1", "--sampler", "dream", "--top-k", "0"], "top-k must be a positive integer"),
    (["--model", str(CHECKPOINT), "--prompt", "1", "--sampler", "dream", "--alg", "x"], "invalid choice: 'x'"),
    (["--model", str(CHECKPOINT), "--prompt", "1", "-N", "2", "--suppress-tokens", "999"],
     "suppress_tokens 999 is outside the vocabulary"),
])
def test_generate_command_bad_input(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.count("\n") == 1


def test_linear_counts_are_llada_s_when_the_steps_divide_the_block():
    """docs/generation.md: ``linear`` gives LLaDA's ``get_num_transfer_tokens`` counts when the steps divide the
    block; otherwise LLaDA puts the remainder on the first steps and ``linear`` spreads it, and the ``table:`` of
    LLaDA's cumulative fractions gives theirs."""
    from _references import llada_counts

    for block, steps in [(32, 32), (32, 8), (12, 4), (256, 64)]:
        assert list(make_sampler("fixed", steps=steps).block_counts(block, 1)) == llada_counts(block, steps)
    assert list(make_sampler("fixed", steps=4).block_counts(10, 1)) == [3, 2, 3, 2] != llada_counts(10, 4)
    assert list(make_sampler("fixed", steps=4, schedule="table:0.3,0.6,0.8").block_counts(10, 1)) == llada_counts(10, 4)
