"""Block-diffusion models — LLaDA 2.x and SDAR — decoded by the one loop: parity with each family's published
generate and with SGLang's LowConfidence and JointThreshold (each rewritten here as a plain loop from the
authors' code), the finished-block cache against a full recompute, schedules per block, the integrations
(``generate``, ``mdm-energy generate``, the lm-eval model) on tiny model folders written here, and bad input.

The tiny models (tests/_blockdiff_models.py) are ours, in the published layer layouts; float64 so that the cached
and recomputed paths agree to the last bit that matters. The references call the model the way each author does
(LLaDA 2.x: the whole prefix again at every step under the additive block mask; SDAR: a ``DynamicCache`` filled
with ``store_kv`` passes; SGLang: one block at a time). Random draws, where the authors sample, follow the package's
convention (each row's own stream, ``tests/_references.llada_candidates``) — the law is the authors' at
temperature 1, which is SDAR's published sampling setting.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from _blockdiff_models import (LLaDA2MoeConfig, LLaDA2MoeModelLM, SDARConfig, SDARForCausalLM, TinyNoCacheLM)
from _references import llada_candidates, llada_counts
from _tiny_mdm import scale_weights, tiny_tokenizer
from mdm_energy.cli import main
from mdm_energy.integrations.block_diffusion import BlockDiffusionDenoiser, block_family
from mdm_energy.sampling import make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import parse_schedule

pytest.importorskip("transformers")
warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated")

V, PAD, EOS, MASK = 47, 0, 2, 3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is many times faster than several on a shared machine."""
    held = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(held)


def tiny(family: str, seed: int, eos_bias: float = 0.0, **extra):
    """A tiny random model of the family (float64, eval, weights scaled for sharp predictions)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=V, mask_token_id=MASK, eos_token_id=EOS, pad_token_id=PAD, tiny_eos_bias=eos_bias,
                  initializer_range=0.2, **extra)
    model = (LLaDA2MoeModelLM(LLaDA2MoeConfig(**common)) if family == "llada2"
             else SDARForCausalLM(SDARConfig(block_size=4, **common)))
    return scale_weights(model.double().eval(), 3.0)


def block_mask(total: int, B: int, additive: bool):
    """The authors' block-causal mask ``(1, 1, T, T)``: block ``i`` sees blocks ``<= i``."""
    blocks = torch.arange(total) // B
    allowed = blocks.unsqueeze(1) >= blocks.unsqueeze(0)
    if not additive:
        return allowed[None, None]
    return torch.zeros(allowed.shape, dtype=torch.float64).masked_fill(~allowed, -math.inf)[None, None]


def choose(conf: dict, k: int) -> list:
    """The ``k`` most confident positions, ties to the lower position (the package's rule for torch.topk's)."""
    return [t for _, t in sorted((-round(c, 12), t) for t, c in conf.items())[:k]]


def answer(tokens: list, stops=(EOS,)) -> list:
    """An answer up to and with its first end token."""
    for k, t in enumerate(tokens):
        if t in stops:
            return tokens[:k + 1]
    return tokens


class Calls:
    """Counts a reference's model calls, and the call after which its answer is complete (an end token with
    nothing masked before it: where ours stops a row)."""

    def __init__(self, P: int) -> None:
        self.P, self.n, self.complete = P, 0, None

    def check(self, x: list) -> None:
        if self.complete is None:
            gen = x[self.P:]
            if EOS in gen and MASK not in gen[:gen.index(EOS)]:
                self.complete = self.n


def draws(logits, positions, temperature, rng):
    """Candidates and confidences at ``positions`` (the package's convention; untempered confidence)."""
    return llada_candidates(logits, positions, temperature, rng, prob=torch.softmax(logits.double(), -1))


# --- the authors' loops ------------------------------------------------------------------------------------


@torch.no_grad()
def llada2_generate(model, prompt, gen_length, steps, threshold, B=32, eos_early_stop=True, temperature=0.0, rng=None):
    """LLaDA 2.x's ``generate`` (batch 1): blocks from position 0 (the first decoded block holds the prompt's tail),
    the whole prefix recomputed at every step under the additive block mask; per step the count of
    ``get_num_transfer_tokens(B, steps)``: every masked candidate with p > threshold when at least that many,
    else the count's most confident (at most what is masked); mid-block stop when this step committed an EOS and
    nothing before it is masked, else stop after the block holding an EOS."""
    P = len(prompt)
    nb = -(-(P + gen_length) // B)
    x = list(prompt) + [MASK] * (nb * B - P)
    mask = block_mask(nb * B, B, additive=True)
    counts, calls = llada_counts(B, steps), Calls(P)
    for b in range(P // B, nb):
        end = (b + 1) * B
        for k in range(steps):
            active = [i for i in range(b * B, end) if x[i] == MASK]
            if not active:
                break
            out = model(torch.tensor([x[:end]]), attention_mask=mask[..., :end, :end],
                        position_ids=torch.arange(end)[None])
            calls.n += 1
            cand, conf = draws(out.logits[0], active, temperature, rng)
            above = [i for i in active if conf[i] > threshold]
            chosen = above if len(above) >= counts[k] else choose(conf, min(counts[k], len(active)))
            for i in chosen:
                x[i] = cand[i]
            calls.check(x)
            if eos_early_stop and any(cand[i] == EOS for i in chosen):
                first = x.index(EOS)
                if MASK not in x[P:first]:  # the authors return x[:first + 1], past gen_length when it lies there
                    return x[P:first + 1][:gen_length], calls
        if EOS in x[P:end]:
            break
    return answer(x[P:P + gen_length]), calls


@torch.no_grad()
def sdar_generate(model, prompt, gen_length, steps, strategy, threshold=0.85, B=4, temperature=0.0, rng=None):
    """SDAR's ``block_diffusion_generate`` (batch 1): the prompt's whole blocks prefilled with ``store_kv``, each
    block denoised against the cache (``store_kv=False``) for at most ``steps + 1`` turns, a turn that finds nothing
    masked stores the block and ends it; ``low_confidence_static`` commits ``num_transfer_tokens[step]`` top ones,
    ``low_confidence_dynamic`` all above the threshold when at least that many; stop after a block once an end token
    is anywhere in the answer. Returns the answer, the denoising calls and the ``store_kv`` calls."""
    from transformers.cache_utils import DynamicCache

    P = len(prompt)
    nb = -(-(P + gen_length) // B)
    x = list(prompt) + [MASK] * (nb * B - P)
    mask, pos = block_mask(nb * B, B, additive=False), torch.arange(nb * B)[None]
    cache, stores, calls = DynamicCache(), 0, Calls(P)
    pre = P // B * B
    if pre:
        model(torch.tensor([x[:pre]]), attention_mask=mask[..., :pre, :pre], position_ids=pos[:, :pre],
              past_key_values=cache, use_cache=True, store_kv=True)
        stores += 1
    counts = llada_counts(B, steps)
    for b in range(P // B, nb):
        lo, hi = b * B, (b + 1) * B
        for k in range(steps + 1):
            active = [i for i in range(lo, hi) if x[i] == MASK]
            kwargs = dict(attention_mask=mask[..., lo:hi, :hi], position_ids=pos[:, lo:hi], past_key_values=cache,
                          use_cache=True)
            if not active:
                model(torch.tensor([x[lo:hi]]), store_kv=True, **kwargs)
                stores += 1
                break
            logits = model(torch.tensor([x[lo:hi]]), store_kv=False, **kwargs).logits[0]
            calls.n += 1
            local = [i - lo for i in active]
            cand, conf = draws(logits, local, temperature, rng)
            if strategy == "low_confidence_static":
                chosen = choose(conf, counts[k])
            else:
                above = [t for t in local if conf[t] > threshold]
                chosen = above if len(above) >= counts[k] else choose(conf, counts[k])
            for t in chosen:
                x[lo + t] = cand[t]
            calls.check(x)
        if EOS in x[P:]:
            break
    return answer(x[P:P + gen_length]), calls, stores


@torch.no_grad()
def sglang_generate(model, prompt, gen_length, algorithm, B=4, threshold=0.95, edit_threshold=0.0, max_post=16,
                    additive=False):
    """SGLang's dLLM loop for one request: per block a forward, then ``step`` / forward turns until the algorithm
    reports the block done (at most ``max_steps`` turns); the first block holds the prompt's tail. ``LowConfidence``:
    done when nothing is masked, else every masked argmax with p > threshold, at least the most confident.
    ``JointThreshold``: unmask as LowConfidence (its own threshold) and, in the same step, replace every committed
    non-prompt token whose argmax differs with p > edit_threshold; after the block is full each step is a post-edit
    step, and the block is done after a step that changed nothing or found more than ``max_post`` of them. Each
    block's last forward only persists its keys and values. Returns the answer and the forwards per block."""
    P = len(prompt)
    nb = -(-(P + gen_length) // B)
    x = list(prompt) + [MASK] * (nb * B - P)
    mask = block_mask(nb * B, B, additive=additive)
    forwards = []
    for b in range(P // B, nb):
        lo, hi = b * B, (b + 1) * B
        prompt_mask = [x[i] != MASK for i in range(lo, hi)]
        post, finished, n = 0, False, 0

        def forward():
            out = model(torch.tensor([x[:hi]]), attention_mask=mask[..., :hi, :hi], position_ids=torch.arange(hi)[None])
            return torch.softmax(out.logits[0, lo:hi].double(), -1)

        p = forward()
        n += 1
        max_steps = B + 1 if algorithm == "low_confidence" else B + max_post + 1
        for _ in range(max_steps):
            cand = p.argmax(-1).tolist()
            conf = [float(p[t, cand[t]]) for t in range(B)]
            masked = [t for t in range(B) if x[lo + t] == MASK]
            if algorithm == "low_confidence":
                if not masked:
                    break
                chosen = [t for t in masked if conf[t] > threshold] or choose({t: conf[t] for t in masked}, 1)
            else:
                if finished:
                    break
                chosen = []
                if masked:
                    chosen = [t for t in masked if conf[t] > threshold] or choose({t: conf[t] for t in masked}, 1)
                else:
                    post += 1
                    if post > max_post:
                        finished = True
                if not finished:
                    chosen += [t for t in range(B) if x[lo + t] != MASK and not prompt_mask[t]
                               and conf[t] > edit_threshold and cand[t] != x[lo + t]]
                    if not chosen:
                        finished = True
            for t in chosen:
                x[lo + t] = cand[t]
            p = forward()
            n += 1
        forwards.append(n)
    return x[P:P + gen_length], forwards


def ours(family, model, prompts, gen_length, sampler, seeds=None, block_cache=True, **options):
    den = BlockDiffusionDenoiser(model, family, block_cache=block_cache)
    return make_sampler(sampler, **options)(den, prompts, gen_length, seeds=seeds, return_trajectory=True)


def windows(model, prompts, gen_length):
    """The number of blocks of a run (the sampler's steps are split evenly over them)."""
    den = BlockDiffusionDenoiser(model)
    return den.make_canvas(prompts, gen_length).length // den.block_size


# --- parity ------------------------------------------------------------------------------------------------


PROMPTS = [[5, 9, 14, 7, 21], [30, 11, 4, 4, 8, 19, 25, 33, 12, 6, 40]]


@pytest.mark.parametrize("steps,threshold", [(8, 0.95), (4, 0.7)])
def test_llada2_generate_matches_the_reference(steps, threshold):
    """LLaDA 2.x: threshold-count (steps per block, strict threshold) is its generate token for token, call for
    call, over several seeds (blocks of 8 from the config's block_length; rows that end early at EOS and rows that
    run every block; eos_early_stop: ours ends a row at the call after which its answer is complete, where the
    authors finish the block unless that call committed the EOS)."""
    ended = full = fewer = 0
    for seed, bias in ((0, 4.0), (1, 4.0), (2, 4.0), (0, 6.0)):
        model = tiny("llada2", seed, eos_bias=bias, block_length=8)
        for prompt in PROMPTS:
            L = 20
            out = ours("llada2", model, [prompt], L, "threshold-count", steps=steps * windows(model, [prompt], L),
                       threshold=threshold, stop_at_eos=True)
            ref, calls = llada2_generate(model, prompt, L, steps, threshold, B=8)
            assert answer(out.generated[0].tolist()) == ref
            assert int(out.nfe[0]) == (calls.complete if calls.complete is not None else calls.n) <= calls.n
            ended += len(ref) < L - 8
            full += EOS not in ref or len(ref) > L - 8
            fewer += int(out.nfe[0]) < calls.n
    assert ended and full and (fewer or steps != 8)


@pytest.mark.parametrize("seed", [0, 1, 3])
@pytest.mark.parametrize("strategy", ["low_confidence_static", "low_confidence_dynamic"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sdar_generate_matches_the_reference(seed, strategy, temperature):
    """SDAR: fixed (low_confidence) is low_confidence_static and threshold-count low_confidence_dynamic, token for
    token and call for call, greedy and at temperature 1 (its published settings: blocks of 4, 4 steps per block);
    the store_kv passes are ours plus the last block's (ours encodes a block only when a later block needs it)."""
    model = tiny("sdar", seed, eos_bias=1.0)
    for prompt in PROMPTS:
        L, row_seed = 14, 100 + seed
        n = windows(model, [prompt], L)
        name, opts = (("fixed", {}) if strategy == "low_confidence_static" else ("threshold-count", {"threshold": 0.85}))
        out = ours("sdar", model, [prompt], L, name, seeds=[row_seed], steps=4 * n, temperature=temperature,
                   stop_at_eos=True, **opts)
        ref, calls, stores = sdar_generate(model, prompt, L, 4, strategy, temperature=temperature,
                                           rng=RowRNG(None, 1, "cpu", [row_seed]))
        assert answer(out.generated[0].tolist()) == ref
        assert int(out.nfe[0]) == (calls.complete if calls.complete is not None else calls.n)
        assert int(out.cache_nfe[0]) == stores - 1


@pytest.mark.parametrize("seed", [0, 4])
def test_sglang_low_confidence_matches_the_reference_in_a_batch(seed):
    """SGLang's LowConfidence is our threshold sampler (p > 0.95 vs ≥: equal unless a probability is exactly the
    threshold) on SDAR: a batch of prompts of different lengths gives each row what it gets alone; SGLang's
    forwards per block are ours plus the one that persists the finished block."""
    model = tiny("sdar", seed)
    prompts = PROMPTS + [[17, 3 + 3]]
    out = ours("sdar", model, prompts, 10, "threshold", threshold=0.95)
    for row, prompt in enumerate(prompts):
        ref, forwards = sglang_generate(model, prompt, 10, "low_confidence")
        assert out.generated[row, -10:].tolist() == ref
        assert int(out.nfe[row]) == sum(forwards) - len(forwards)


@pytest.mark.parametrize("seed", [0, 5])
@pytest.mark.parametrize("family", ["sdar", "llada2"])
def test_sglang_joint_threshold_matches_the_reference_in_a_batch(seed, family):
    """SGLang's JointThreshold (unmask above 0.5, edit committed tokens above 0, at most 16 post-edit steps) is our
    joint-threshold sampler, row by row in a batch, with the same forwards less each block's persisting one."""
    B = 4 if family == "sdar" else 8
    model = tiny(family, seed, block_length=B)
    prompts = PROMPTS
    L = 10 if family == "sdar" else 18
    out = ours(family, model, prompts, L, "joint-threshold")
    edits = 0
    for row, prompt in enumerate(prompts):
        ref, forwards = sglang_generate(model, prompt, L, "joint", B=B, threshold=0.5, additive=family == "llada2")
        assert out.generated[row, -L:].tolist() == ref
        assert int(out.nfe[row]) == sum(forwards) - len(forwards)
        edits += sum(forwards) - len(forwards) > windows(model, [prompt], L) * B
    assert edits or family == "llada2"  # some block took post-edit calls


# --- the cache ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llada2", "sdar"])
@pytest.mark.parametrize("sampler,options", [("fixed", {"schedule": "beta:0.5,0.5", "temperature": 1.0}),
                                             ("threshold-floor", {"threshold": 0.8}),
                                             ("entropy-bounded", {"epsilon": 0.5, "stop_at_eos": True})])
def test_the_cached_path_gives_what_a_full_recompute_gives(family, sampler, options):
    """Keys and values of finished blocks, kept: the same tokens and calls as recomputing the whole prefix at
    every call (the block-causal model without a cache), for a batch of prompts of different lengths."""
    model = tiny(family, 7, eos_bias=1.0, block_length=4 if family == "sdar" else 8)
    L = 12 if family == "sdar" else 20
    n = windows(model, PROMPTS, L)
    if "epsilon" not in options:
        options = {**options, "steps": 4 * n}
    a = ours(family, model, PROMPTS, L, sampler, seeds=[1, 2], **options)
    b = ours(family, model, PROMPTS, L, sampler, seeds=[1, 2], block_cache=False, **options)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.nfe, b.nfe)
    assert int(a.cache_nfe.sum()) > 0 and int(b.cache_nfe.sum()) == 0


@pytest.mark.parametrize("family", ["llada2", "sdar"])
def test_a_row_gets_in_a_batch_what_it_gets_alone(family):
    """Rows of different prompt lengths, left-padded by whole blocks so that their blocks line up: each row's
    tokens, calls and cache forwards are those of its run alone (seeded draws at temperature 1, early stop)."""
    model = tiny(family, 2, eos_bias=2.0, block_length=4 if family == "sdar" else 8)
    prompts = PROMPTS + [[9], list(range(4, 20))]
    options = dict(steps=4 * windows(model, prompts, 12), temperature=1.0, stop_at_eos=True)
    batch = ours(family, model, prompts, 12, "fixed", seeds=[3, 4, 5, 6], **options)
    assert bool(batch.stopped.any())
    for row, prompt in enumerate(prompts):
        options["steps"] = 4 * windows(model, [prompt], 12)
        alone = ours(family, model, [prompt], 12, "fixed", seeds=[3 + row], **options)
        assert batch.generated[row].tolist() == alone.generated[0].tolist()
        assert int(batch.nfe[row]) == int(alone.nfe[0]) and int(batch.cache_nfe[row]) == int(alone.cache_nfe[0])


def test_the_denoising_calls_see_only_the_current_block():
    """A call's input is the current block alone (after the prompt's whole blocks, the cache): future blocks are
    never in the input, and no call is longer than a block."""
    model = tiny("sdar", 0)
    seen = []
    forward = model.forward

    def spy(input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None, store_kv=False):
        seen.append((input_ids.shape[1], store_kv))
        return forward(input_ids, attention_mask, position_ids, past_key_values, use_cache, store_kv)

    model.forward = spy
    ours("sdar", model, [PROMPTS[1]], 12, "fixed", steps=16)
    calls = [n for n, store in seen if not store]
    assert calls and max(calls) == 4
    assert [n for n, store in seen if store][0] == 8  # the prompt's two whole blocks, prefilled once


# --- schedules per block -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["beta:0.9,0.3", "sin2"])
def test_a_schedule_sets_the_counts_inside_each_block(spec):
    """The sampler's schedule applies inside every block of the model: each block's calls commit the schedule's
    counts for the block (the first block's prompt tail counts as already revealed)."""
    model = tiny("llada2", 3)
    prompt, L, per_block = PROMPTS[0], 59, 8
    out = ours("llada2", model, [prompt], L, "fixed", schedule=spec, steps=per_block * windows(model, [prompt], L))
    counts = parse_schedule(spec).counts(32, per_block).tolist()
    assert counts != llada_counts(32, per_block)  # not the linear schedule's
    traj = out.trajectory[0, out.gen_start:].tolist()
    tail = 32 - len(prompt)  # the first block's masks (its first positions hold the prompt's tail)

    def per_call(part):
        return [part.count(t) for t in sorted(set(part))]

    assert per_call(traj[tail:]) == [c for c in counts if c]  # block 2 (whole), call by call (a 0 commits nothing)
    first = [min(c, max(0, tail - sum(counts[:k]))) for k, c in enumerate(counts)]
    assert per_call(traj[:tail]) == [c for c in first if c]  # block 1: the same counts, as far as its masks go


# --- families, folders, integrations ---------------------------------------------------------------------------


def save_folder(path, family: str, seed: int = 0, **extra):
    """A tiny model folder: our modeling file (auto_map), its config (model_type, mask id, block size) and a
    character tokenizer."""
    model = tiny(family, seed, eos_bias=1.0, **extra).float()
    type(model.config).register_for_auto_class()
    type(model).register_for_auto_class("AutoModel")
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("blockdiff")
    return {f: save_folder(root / f, f) for f in ("llada2", "sdar")}


def test_a_folder_loads_only_with_trust_remote_code_and_its_family_is_detected(folders):
    from mdm_energy.integrations.huggingface import denoiser_for, load_pretrained, model_family

    with pytest.raises(ValueError, match="ships its own Python code.*--trust-remote-code") as err:
        load_pretrained(str(folders["sdar"]))
    assert "\n" not in str(err.value)
    for fam, B in (("llada2", 32), ("sdar", 4)):
        model, tok = load_pretrained(str(folders[fam]), trust_remote_code=True)
        assert model_family(model) == fam == block_family(model.config)
        den = denoiser_for(model, tok)
        assert (den.block_size, den.mask_id, den.eos_id, den.stop_ids) == (B, MASK, EOS, (EOS,))
        assert denoiser_for(model, tok, block_size=8, mask_id=4).block_size == 8


def test_generate_runs_on_each_family_folder(folders):
    from mdm_energy.integrations.huggingface import generate, load_pretrained

    for fam in ("llada2", "sdar"):
        model, tok = load_pretrained(str(folders[fam]), trust_remote_code=True)
        texts, out = generate(model, tok, ["ab", "hello there"], sampler="threshold-count", gen_length=9,
                              steps_per_block=4, return_output=True, stop_at_eos=True)
        assert len(texts) == 2 and out.generated.shape == (2, 9) and int(out.nfe.max()) >= 1
        again = generate(model, tok, ["ab", "hello there"], sampler="threshold-count", gen_length=9, steps_per_block=4,
                         stop_at_eos=True, block_options={"block_cache": False})
        assert again == texts
    with pytest.raises(ValueError, match="^give steps or steps_per_block, not both$"):
        generate(model, tok, ["ab"], sampler="fixed", gen_length=8, steps=8, steps_per_block=4)
    with pytest.raises(ValueError, match="^steps_per_block: the threshold sampler takes no steps$"):
        generate(model, tok, ["ab"], sampler="threshold", gen_length=8, steps_per_block=4)


def test_the_generate_command_runs_on_a_folder(folders, capsys):
    code = main(["generate", "--model", str(folders["sdar"]), "--trust-remote-code", "--prompt", "ab",
                 "--gen-length", "10", "--sampler", "fixed", "--schedule", "sin2", "--steps-per-block", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, None) and out["nfe"] >= 1 and sum(out["counts"]) <= 10
    code = main(["generate", "--model", str(folders["llada2"]), "--trust-remote-code", "--prompt", "ab",
                 "--gen-length", "8", "--sampler", "threshold-count", "--steps-per-block", "32", "--json"])
    assert code in (0, None) and json.loads(capsys.readouterr().out)["nfe"] >= 1


def test_the_lm_eval_model_runs_on_a_folder_and_logs_nfe(folders):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from mdm_energy.integrations.lm_eval import NFE_KEY, MDMEnergyLM

    lm = MDMEnergyLM(pretrained=str(folders["sdar"]), trust_remote_code=True, sampler="threshold-count",
                     gen_length=8, steps_per_block=4, batch_size=2, device="cpu")
    reqs = [Instance("generate_until", {}, (p, {"until": ["\n"]}), i) for i, p in enumerate(["ab", "what is 2+2"])]
    texts = lm.generate_until(reqs)
    assert len(texts) == 2
    assert all(r.args[1][NFE_KEY][0] >= 1 for r in reqs) and len(lm.nfe) == 2
    alone = MDMEnergyLM(pretrained=str(folders["sdar"]), trust_remote_code=True, sampler="threshold-count",
                        gen_length=8, steps_per_block=4, batch_size=1, device="cpu", block_cache="false")
    assert alone.generate_until([Instance("generate_until", {}, (p, {"until": ["\n"]}), i)
                                 for i, p in enumerate(["ab", "what is 2+2"])]) == texts  # batch and cache: same text
    with pytest.raises(ValueError, match="loglikelihood is not offered for block-diffusion models"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("ab", "c"), 0)])
    # the steps checks are the library's and the command line's, in model_args' words, before any model loads
    with pytest.raises(ValueError, match="^give steps or steps_per_block in model_args, not both$"):
        MDMEnergyLM(pretrained="/no/such/folder", sampler="fixed", steps=8, steps_per_block=4)
    with pytest.raises(ValueError, match="^steps_per_block in model_args: the threshold sampler takes no steps$"):
        MDMEnergyLM(pretrained="/no/such/folder", sampler="threshold", steps_per_block=4)


def test_tune_with_the_lm_eval_objective_runs_on_a_folder(folders, tmp_path, capsys):
    """``tune --objective lm-eval`` on a block-diffusion model: a task whose reference answers are what ``linear``
    generates on half the documents (and a wrong answer on the other half) scores linear 0.5 exactly, and the
    grid's trials are scored through the same model."""
    pytest.importorskip("lm_eval")
    from test_lm_eval_tuning import _yaml

    from mdm_energy.integrations.huggingface import generate, load_pretrained

    model, tok = load_pretrained(str(folders["sdar"]), trust_remote_code=True)
    questions = [f"{a}+{b}=" for a in range(1, 4) for b in range(3, 5)]
    outs = [t.split("\n")[0] for t in generate(model, tok, questions, steps=4, gen_length=8, schedule="linear",
                                                chat=False)]
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    rows = [{"question": q, "answer": o if i % 2 == 0 else o + "x"} for i, (q, o) in enumerate(zip(questions, outs))]
    (tasks / "mdm_tune_gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / "mdm_tune_gen.yaml").write_text(_yaml("mdm_tune_gen"))
    argv = ["tune", "--objective", "lm-eval", "--model-args",
            f"pretrained={folders['sdar']},trust_remote_code=True,gen_length=8,chat=False", "--tasks", "mdm_tune_gen",
            "--include-path", str(tasks), "--steps", "4", "--strategy", "grid", "--a-values", "0.5,1", "--b-values",
            "0.5", "--storage", f"sqlite:///{tmp_path}/t.db", "--study", "t", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baselines"]["linear"] == 0.5 and out["new_evaluations"] == 2 and out["best"]["n"] == len(rows)


# --- bad input ---------------------------------------------------------------------------------------------


def error_line(capsys, argv):
    code = main(argv)
    cap = capsys.readouterr()
    assert code == 2 and cap.out == "" and "Traceback" not in cap.err
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(folders, capsys):
    base = ["generate", "--model", str(folders["sdar"]), "--trust-remote-code", "--prompt", "ab", "--gen-length", "8"]
    assert "block_length 3 differs from the model's block size 4" in error_line(
        capsys, base + ["--sampler", "fixed", "--steps", "8", "--block-length", "3"])
    assert "cache 'prefix'" in error_line(
        capsys, base + ["--sampler", "fixed", "--steps", "8", "--block-length", "4", "--cache", "prefix"])
    assert "not both" in error_line(
        capsys, base + ["--sampler", "fixed", "--steps", "8", "--steps-per-block", "2"])
    assert "ships its own Python code" in error_line(capsys, base[:3] + base[4:] + ["--steps", "8"])
    assert "--steps-per-block: the threshold sampler takes no steps" in error_line(
        capsys, base + ["--sampler", "threshold", "--steps-per-block", "2"])
    config = folders["sdar"] / "config.json"
    held = config.read_text()
    try:  # a config without the mask id the family's default cannot stand in for
        config.write_text(json.dumps({k: v for k, v in json.loads(held).items() if k != "mask_token_id"}))
        assert "has no mask_token_id and the family's mask id 151669 is outside its vocabulary of 47" in error_line(
            capsys, base + ["--sampler", "fixed", "--steps", "8"])
    finally:
        config.write_text(held)


def test_a_config_without_the_family_s_fields_and_a_forward_without_a_cache_are_refused():
    model = tiny("llada2", 0)
    model.config.mask_token_id = None
    with pytest.raises(ValueError, match="has no mask_token_id and the family's mask id 156895 is outside"):
        BlockDiffusionDenoiser(model)
    assert BlockDiffusionDenoiser(model, mask_id=MASK).mask_id == MASK
    del model.config.vocab_size
    with pytest.raises(ValueError, match="config has no vocab_size"):
        BlockDiffusionDenoiser(model, mask_id=MASK)
    torch.manual_seed(0)
    plain = TinyNoCacheLM(LLaDA2MoeConfig(vocab_size=V, mask_token_id=MASK)).double().eval()
    with pytest.raises(ValueError, match="forward takes no past_key_values.*block_cache=False"):
        make_sampler("fixed", steps=32)(BlockDiffusionDenoiser(plain), [[5, 6]], 20)  # refused when the run starts
    out = make_sampler("fixed", steps=32)(BlockDiffusionDenoiser(plain, block_cache=False), [[5, 6]], 20)
    assert out.generated.shape == (1, 20)
    later = BlockDiffusionDenoiser(plain)  # the command line turns the cache off after building the denoiser
    later.block_cache = False
    assert make_sampler("fixed", steps=32)(later, [[5, 6]], 20).generated.tolist() == out.generated.tolist()
    for name, needle in (("prophet", "early exit commits every masked position"), ("wino", "verification view")):
        with pytest.raises(ValueError, match=f"the {name} sampler is not supported on a block-causal model.*{needle}"):
            make_sampler(name)(BlockDiffusionDenoiser(plain, block_cache=False), [[5]], 20)
    with pytest.raises(ValueError, match="cfg_scale 1.0.*not supported on a block-causal model"):
        make_sampler("fixed", steps=32, cfg_scale=1.0)(BlockDiffusionDenoiser(plain, block_cache=False), [[5]], 20)
