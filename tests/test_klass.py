"""The klass sampler (KLASS, KL-Adaptive Stability Sampling) against a reference written here from the authors' LLaDA
decoding loop, token for token and call for call, on tiny seeded models; the history across blocks and under the
caches; the schedule-driven fallback; what it refuses; the commands."""

from __future__ import annotations

import json
import math
from pathlib import Path

from functools import partial

import pytest
import torch
from _references import llada_candidates, llada_counts
from _tiny_mdm import tiny_transformer as _tiny_transformer

from mdm_energy.cli import main
from mdm_energy.models import as_denoiser
from mdm_energy.sampling import CallableDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import Table, parse_schedule

V, MASK, EOS, PAD = 24, 23, 22, 0
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]  # different lengths: the batch is left-padded
EPS = 1e-12


#: Our transformer, tiny and random, in float64, with enlarged weights (scale 16): confident predictions that still
#: move from call to call, so both stable and unstable confident positions occur.
tiny_transformer = partial(_tiny_transformer, vocab=V, mask_id=MASK, eos_id=EOS, pad_id=PAD, scale=16.0)


# --- the reference -------------------------------------------------------------------------------------------


@torch.no_grad()
def klass_reference(model, prompt, G, B, steps, tau, delta, H, *, pad=0, masked_batch=False, temperature=0.0,
                    seed=0, cfg_scale=0.0, counts=None, fill=False):
    """KLASS for one prompt, written after the authors' LLaDA loop: blocks in order, at most ``steps / blocks`` calls
    per block, leaving the block as soon as nothing in it is masked; every call runs the whole row. At each call the
    float64 distribution p of every position is compared with the previous call's (a zero vector before the first
    call) by sum p (log(p + 1e-12) - log(q + 1e-12)); each position keeps the last H of these (zeros at the start,
    never reset). At the block's call j, a masked position of the block is ready when j >= H - 1, its H divergences
    are all < delta and its confidence is > tau; all ready positions are committed, else the k_j most confident,
    k_j = LLaDA's count (``counts`` replaces them). The package's conventions: the mask token is left out of the
    softmax, scores are rounded to 12 decimals, ties go to the lower position, at temperature > 0 candidates are
    Gumbel-max draws from the row's stream (confidences and divergences untempered). ``fill`` is the package's
    fallback: at least one token, never more than is masked, one after the steps, until the block is full.
    Returns the window, the calls and counts of what happened."""
    P = pad + len(prompt)
    x = [PAD] * pad + list(prompt) + [MASK] * G
    T = P + G
    am = torch.tensor([[t >= pad for t in range(T)]]) if masked_batch else None
    blocks = G // B
    assert steps % blocks == 0
    per_block = steps // blocks
    rng = RowRNG(None, 1, torch.device("cpu"), seeds=[seed])
    history = torch.zeros((T, H), dtype=torch.float64)
    p_prev = torch.zeros((T, V), dtype=torch.float64)
    stats = {"calls": 0, "ready_calls": 0, "multi_ready": 0, "fallback_calls": 0, "unstable_confident": 0,
             "ready_at_gate": 0, "left_masked": 0, "count_outside": 0, "first_kl": math.inf}
    for b in range(blocks):
        s, e = P + b * B, P + (b + 1) * B
        k_of = counts if counts is not None else llada_counts(B, per_block)
        j = 0
        while j < per_block or fill:
            masked = [t for t in range(s, e) if x[t] == MASK]
            if not masked:
                break
            logits = model(torch.tensor([x]), am)[0].clone()
            if cfg_scale > 0:
                uncond = [MASK if pad <= t < P else v for t, v in enumerate(x)]
                u = model(torch.tensor([uncond]), am)[0]
                logits = u + (cfg_scale + 1.0) * (logits - u)
            stats["calls"] += 1
            logits[:, MASK] = -math.inf
            p = torch.softmax(logits.double(), -1)
            kl = (p * (torch.log(p + EPS) - torch.log(p_prev + EPS))).sum(-1)
            if stats["calls"] == 1:
                stats["first_kl"] = float(kl[s:e].min())
            history = torch.cat([history[:, 1:], kl[:, None]], dim=1)
            p_prev = p
            cand, conf = llada_candidates(logits, masked, temperature, rng, p)
            stable = {t: j >= H - 1 and all(float(v) < delta for v in history[t]) for t in masked}
            ready = [t for t in masked if stable[t] and conf[t] > tau]
            stats["unstable_confident"] += sum(conf[t] > tau and not stable[t] for t in masked)
            if ready:
                chosen = ready
                stats["ready_calls"] += 1
                stats["multi_ready"] += len(ready) > 1
                stats["ready_at_gate"] += b > 0 and j == H - 1
            else:
                k = k_of[j] if j < len(k_of) else 0
                if fill:
                    k = min(max(1, k), len(masked))
                elif not 1 <= k <= len(masked):  # the authors' code commits nothing, or overwrites other positions
                    stats["count_outside"] += 1
                    k = min(k, len(masked))
                chosen = sorted(masked, key=lambda t: (-conf[t], t))[:k]
                stats["fallback_calls"] += 1
            for t in chosen:
                x[t] = cand[t]
            j += 1
        stats["left_masked"] += sum(x[t] == MASK for t in range(s, e))
    return x[P:], stats


# --- parity ----------------------------------------------------------------------------------------------------

CASES = [  # (seed, gen_length, block, steps, threshold, kl_threshold, kl_history, temperature, cfg_scale, scale)
    (0, 16, 8, 16, 0.3, 0.05, 2, 0.0, 0.0, 16.0),
    (1, 16, 8, 16, 0.25, 0.2, 1, 0.0, 0.0, 16.0),
    (2, 24, 8, 24, 0.3, 0.1, 3, 0.0, 0.0, 16.0),
    (3, 16, 16, 16, 0.35, 0.05, 2, 0.0, 0.0, 16.0),  # one block
    (4, 16, 4, 32, 0.3, 0.05, 2, 0.0, 0.0, 16.0),  # more steps than positions: LLaDA's trailing zero counts never act
    (5, 24, 8, 24, 0.9, 0.01, 2, 0.0, 0.0, 50.0),  # the authors' defaults (steps = positions, as in their scripts)
    (6, 16, 8, 16, 0.3, 0.1, 2, 0.8, 0.0, 16.0),  # temperature > 0: draws from each row's stream
    (7, 16, 8, 16, 0.3, 0.1, 2, 0.0, 0.5, 16.0),  # guidance
]


def run_case(case, model=None, **extra):
    seed, G, B, steps, tau, delta, H, temp, cfg, scale = case
    model = model if model is not None else tiny_transformer(seed, scale=scale)
    seeds = [11, 12, 13]
    sampler = make_sampler("klass", threshold=tau, kl_threshold=delta, kl_history=H, steps=steps, block_length=B,
                           temperature=temp, cfg_scale=cfg, **extra)
    out = sampler(as_denoiser(model), PROMPTS, G, pad_id=PAD, seeds=seeds)
    P = max(map(len, PROMPTS))
    refs = [klass_reference(model, prompt, G, B, steps, tau, delta, H, pad=P - len(prompt), masked_batch=True,
                            temperature=temp, seed=seeds[row], cfg_scale=cfg) for row, prompt in enumerate(PROMPTS)]
    return out, refs


@pytest.mark.parametrize("case", CASES, ids=lambda c: "seed{}-G{}-B{}-N{}-{}-{}-H{}-T{}-cfg{}-x{}".format(*c))
def test_our_transformer_matches_the_reference(case):
    out, refs = run_case(case)
    for row, (want, stats) in enumerate(refs):
        assert stats["left_masked"] == stats["count_outside"] == 0  # where the authors' count is meaningful
        assert stats["first_kl"] > case[5]  # the authors' zero-vector comparison is never stable either
        assert out.generated[row].tolist() == want
        assert int(out.nfe[row]) == stats["calls"]
    assert max(out.nfe.tolist()) <= out.calls <= sum(out.nfe.tolist())


def test_the_cases_exercise_every_branch():
    """Ready commits (several at once), fallbacks, confident positions held back as unstable, and commits at the
    gate of a later block (which compare the block's first call with the previous block's last): not vacuous."""
    total = {}
    for case in CASES:
        seed, G, B, steps, tau, delta, H, temp, cfg, scale = case
        model = tiny_transformer(seed, scale=scale)
        P = max(map(len, PROMPTS))
        for row, prompt in enumerate(PROMPTS):
            _, stats = klass_reference(model, prompt, G, B, steps, tau, delta, H, pad=P - len(prompt),
                                       masked_batch=True, temperature=temp, seed=11 + row, cfg_scale=cfg)
            for k in ("ready_calls", "multi_ready", "fallback_calls", "unstable_confident", "ready_at_gate"):
                total[k] = total.get(k, 0) + stats[k]
    assert all(v > 0 for v in total.values()), total


@pytest.mark.parametrize("tau,delta,H,authors_fill", [(0.3, 0.1, 2, True), (0.2, 0.3, 1, False)])
def test_llada_counts_through_a_table_schedule(tau, delta, H, authors_fill):
    """Steps that do not divide the block: LLaDA puts the remainder first, our linear rounds; the table of LLaDA's
    counts gives the authors' fallback exactly. Where ready calls commit fewer than the count, the authors' block
    runs out of steps with positions still masked (and a later count can exceed what is masked); ours goes on,
    one token per call, and always fills the block."""
    seed, G, B, steps = 8, 16, 8, 6  # 3 steps per block of 8: LLaDA's 3, 3, 2
    assert parse_schedule("linear").counts(8, 3).tolist() != llada_counts(8, 3)
    model = tiny_transformer(seed)
    table = Table.from_counts(llada_counts(8, 3)).spec
    out = make_sampler("klass", threshold=tau, kl_threshold=delta, kl_history=H, steps=steps, block_length=B,
                       schedule=table)(as_denoiser(model), PROMPTS, G, pad_id=PAD)
    assert not bool((out.generated == MASK).any())
    P = max(map(len, PROMPTS))
    left = 0
    for row, prompt in enumerate(PROMPTS):
        want, stats = klass_reference(model, prompt, G, B, steps, tau, delta, H, pad=P - len(prompt), masked_batch=True,
                                      fill=True)
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == stats["calls"]
        authors, theirs = klass_reference(model, prompt, G, B, steps, tau, delta, H, pad=P - len(prompt),
                                          masked_batch=True)
        left += theirs["left_masked"]
        if theirs["left_masked"] == theirs["count_outside"] == 0:
            assert authors == want and theirs["calls"] == stats["calls"]
    assert (left == 0) == authors_fill


def test_the_same_rows_alone_give_the_same_tokens():
    """Rows are independent: each row of the batch is the row run alone (its own history, its own calls)."""
    model = tiny_transformer(0)
    den = as_denoiser(model)
    opts = dict(threshold=0.3, kl_threshold=0.1, block_length=8, steps=16)
    out = make_sampler("klass", **opts)(den, [[1, 2, 3], [4, 5, 6]], 16)
    for row, prompt in enumerate([[1, 2, 3], [4, 5, 6]]):
        alone = make_sampler("klass", **opts)(den, [prompt], 16)
        assert torch.equal(alone.generated[0], out.generated[row]) and alone.nfe[0] == out.nfe[row]


# --- the schedule drives the fallback --------------------------------------------------------------------------


def test_never_stable_is_fixed_low_confidence():
    """With a KL threshold no divergence meets, every call is a fallback: the schedule's count of the most
    confident, i.e. the fixed sampler with low_confidence remasking on the same schedule and steps."""
    den = as_denoiser(tiny_transformer(2))
    for schedule, steps, block in (("linear", 8, 8), ("sin2", 6, None), ("maskgit", 8, 4)):
        assert 0 not in parse_schedule(schedule).counts(16 if block is None else block, steps // (16 // (block or 16)))
        kw = dict(schedule=schedule, steps=steps, block_length=block)
        a = make_sampler("klass", kl_threshold=1e-300, threshold=0.0, **kw)(den, PROMPTS, 16, pad_id=PAD)
        b = make_sampler("fixed", **kw)(den, PROMPTS, 16, pad_id=PAD)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.nfe, b.nfe)


def test_a_zero_count_step_still_commits_one_and_the_block_never_runs_out():
    """Zero-count steps of the schedule commit one token; after the steps run out, one per call: every call
    commits at least one, so the block fills in at most its length calls (the authors' count would commit nothing,
    or leave the block masked)."""
    den = as_denoiser(tiny_transformer(4))
    schedule = "beta:3,0.4"
    counts = parse_schedule(schedule).counts(16, 10).tolist()
    assert 0 in counts
    seen = []
    out = make_sampler("klass", schedule=schedule, steps=10, kl_threshold=1e-300)(
        den, [[1, 2, 3]], 16, callback=lambda c, x, committed: seen.append(int(committed.sum())))
    want = [max(1, c) for c in counts]
    done, k = 0, 0
    while done < 16:
        want_k = min(want[k] if k < len(want) else 1, 16 - done)
        assert seen[k] == want_k
        done, k = done + want_k, k + 1
    assert len(seen) == k == int(out.nfe[0]) <= 16 and not bool((out.generated == MASK).any())
    ref, stats = klass_reference(den.model, [1, 2, 3], 16, 16, 10, 0.9, 1e-300, 2, counts=counts, fill=True)
    assert out.generated[0].tolist() == ref and stats["calls"] == out.nfe[0]


# --- the history: block starts and caches ------------------------------------------------------------------------


class ConstantDenoiser:
    """The same distribution at every position and every call (divergence 0 after the first call), with a
    key/value-cache interface that computes what a prefix or dual call computes; ties everywhere."""

    mask_id, vocab_size, eos_id = MASK, V, None

    def __init__(self) -> None:
        self.row = torch.full((V,), -4.0, dtype=torch.float64)
        self.row[5] = 4.0  # the candidate 5, with probability ~0.99 at every position
        self.spans = []

    def _logits(self, tokens, width):
        return self.row.expand(tokens.shape[0], width, V).clone()

    def __call__(self, tokens, attention_mask=None):
        return self._logits(tokens, tokens.shape[1])

    def full(self, tokens, attention_mask=None):
        class Cache:
            def rows(self, idx):
                return self
        return self._logits(tokens, tokens.shape[1]), Cache()

    def span(self, tokens, start, end, cache, attention_mask=None):
        self.spans.append((start, end))
        return self._logits(tokens, end - start)


def commits_per_call(sampler, den, G):
    seen = []
    sampler(den, [[1, 2]], G, callback=lambda c, x, committed: seen.append(committed[0].nonzero().flatten().tolist()))
    return seen


@pytest.mark.parametrize("H", [1, 2, 3])
def test_a_block_start_compares_with_the_previous_blocks_last_call(H):
    """Constant predictions: in the first block nothing is stable before the H + 1-th call (the first has nothing to
    compare with); in a later block the first call compares with the previous block's last, so the H-th call
    commits the rest. Fallbacks take the lowest position on ties. A dual cache does not compute the next block,
    so a later block waits one call more; a prefix cache computes it."""
    P, B = 2, 8
    first = [[P + i] for i in range(H)] + [list(range(P + H, P + B))]
    for cache, later in (("none", H - 1), ("prefix", H - 1), ("dual", H)):
        den = ConstantDenoiser()
        seen = commits_per_call(make_sampler("klass", block_length=B, kl_history=H, cache=cache), den, 2 * B)
        assert seen[:H + 1] == first
        lo = P + B
        assert seen[H + 1:] == [[lo + i] for i in range(later)] + [list(range(lo + later, lo + B))]
        assert bool(den.spans) == (cache != "none")
    want, stats = klass_reference(lambda t, am: ConstantDenoiser()(t), [1, 2], 16, 8, 16, 0.9, 0.01, H)
    assert stats["calls"] == 2 * H + 1 + 0 and want == [5] * 16


def test_exact_caches_give_the_uncached_run():
    """A cache refreshed at every call (cache_refresh=1) computes every position: the same tokens and calls."""
    den = as_denoiser(tiny_transformer(1, max_len=48))
    kw = dict(threshold=0.3, kl_threshold=0.2, kl_history=1, block_length=8, steps=16)
    base = make_sampler("klass", **kw)(den, PROMPTS, 16, pad_id=PAD)
    for cache in ("prefix", "dual"):
        out = make_sampler("klass", cache=cache, cache_refresh=1, **kw)(den, PROMPTS, 16, pad_id=PAD)
        assert torch.equal(out.tokens, base.tokens) and torch.equal(out.nfe, base.nfe)
        approx = make_sampler("klass", cache=cache, **kw)(den, PROMPTS, 16, pad_id=PAD)
        assert not bool((approx.generated == MASK).any())


def test_stop_at_eos_rows_finish_early():
    """Rows that commit an end token with nothing masked before it stop (fewer calls, EOS after it); a row that never
    stops is the row of the run without stop_at_eos."""
    model = tiny_transformer(1)
    bias = torch.zeros(V, dtype=torch.float64)
    bias[EOS] = 1.0
    den = CallableDenoiser(lambda t, am=None: model(t, am) + bias, mask_id=MASK, vocab_size=V, eos_id=EOS)
    run = dict(threshold=0.3, kl_threshold=0.5, block_length=4, steps=16)
    plain = make_sampler("klass", **run)(den, PROMPTS, 16, pad_id=PAD)
    out = make_sampler("klass", **run, stop_at_eos=True)(den, PROMPTS, 16, pad_id=PAD)
    assert bool(out.stopped.any()) and not bool(out.stopped.all())
    for row in range(len(PROMPTS)):
        if out.stopped[row]:
            assert out.nfe[row] < plain.nfe[row] and out.generated[row, -1] == EOS
        else:
            assert out.generated[row].tolist() == plain.generated[row].tolist() and out.nfe[row] == plain.nfe[row]


# --- options, refusals, commands --------------------------------------------------------------------------------


def test_the_defaults_are_the_authors():
    s = make_sampler("klass")
    assert (s.threshold, s.kl_threshold, s.kl_history, s.steps, s.temperature) == (0.9, 0.01, 2, 256, 0.0)
    assert s.schedule.spec == "linear" and s.cache == "none"


@pytest.mark.parametrize("options,needle", [
    ({"threshold": 1.5}, r"threshold must lie in \[0, 1\], got 1.5"),
    ({"kl_threshold": 0.0}, r"kl_threshold must be a number > 0, got 0.0"),
    ({"kl_threshold": -0.1}, r"kl_threshold must be a number > 0, got -0.1"),
    ({"kl_threshold": math.inf}, r"kl_threshold must be a finite number, got inf"),
    ({"kl_history": 0}, r"kl_history must be a positive integer, got 0"),
    ({"kl_history": 1.5}, r"kl_history must be a positive integer, got 1.5"),
    ({"verify_threshold": 0.9}, "the klass sampler does not take 'verify_threshold'"),
    ({"remasking": "random"}, "the klass sampler does not take 'remasking'"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler("klass", **options)


def test_steps_that_do_not_split_over_the_blocks_are_refused():
    den = as_denoiser(tiny_transformer(0))
    # the default steps: the message says they are the default and what to give instead
    with pytest.raises(ValueError, match=r"^klass: steps 256 \(the default\) is not divisible by the 3 blocks: "
                                         r"give steps as a multiple of 3 \(e\.g\. the window length\)$"):
        make_sampler("klass", block_length=8)(den, [[1]], 24)
    with pytest.raises(ValueError, match="^steps 256 is not divisible by the number of blocks 3$"):  # given ones
        make_sampler("klass", steps=256, block_length=8)(den, [[1]], 24)
    out = make_sampler("klass", steps=24, block_length=8)(den, [[1]], 24)  # the window length, as advised
    assert out.generated.shape[1] == 24 and not (out.generated == den.mask_id).any()


def test_the_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--sampler", "klass", "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert 1 <= obj["nfe"] <= 24 and obj["sampler"].startswith("KlassSampler(schedule='linear', steps=256, threshold=0.9")
    base = ["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--sampler", "klass", "--limit", "2"]
    for argv, needle in [
        (base + ["--kl-threshold", "0"], "kl-threshold must be a number > 0, got '0'"),
        (base + ["--kl-history", "0"], "kl-history must be a positive integer, got '0'"),
        (base + ["--kl-history", "1.5"], "kl-history must be an integer, got '1.5'"),
        (base + ["--threshold", "2"], "threshold must lie in [0, 1], got '2'"),
        (base + ["--block-length", "5"], "block_length 5 does not divide gen_length 24"),
        (base + ["--verify-threshold", "0.9"], "verify-threshold"),
        (base + ["--bad-option"], "--bad-option"),
    ]:
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and needle in err and err.strip().count("\n") == 0, (argv, err)
    assert list(tmp_path.iterdir()) == []


def test_eval_runs_on_the_countdown_checkpoint(capsys):
    argv = ["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--sampler", "klass", "--limit", "4",
            "--kl-threshold", "0.02", "--kl-history", "1", "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    text = json.dumps(obj)
    assert "klass" in text.lower() and "kl_threshold" in text


def test_tune_pareto_searches_the_thresholds_and_the_window(tmp_path, capsys):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "klass", "--strategy", "tpe", "--budget", "2", "--storage",
            f"sqlite:///{tmp_path}/k.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 2 and out["front"]
    for t in out["front"]:
        o = t["options"]
        assert 0.3 <= o["threshold"] <= 0.99 and 0.001 <= o["kl_threshold"] <= 0.1 and o["kl_history"] in (1, 2, 3, 4)
        assert o["schedule"].startswith("beta:")
