"""Information profiles of block-diffusion models (LLaDA 2.x, SDAR) in their own layout (issue #27): the profile
of each family's tiny model against a naive reference written here — each row alone, every block recomputed
from the whole prefix under the authors' block mask, no cache, the greedy commit by hand — the reach of the
first block (whose first positions hold the prompt's tail), the weighted schedule against a brute force over
compositions, the schedules run by the sampler, and the command line with its bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from test_block_diffusion import EOS, MASK, PROMPTS, block_mask, choose, error_line, save_folder, tiny
from test_block_diffusion import one_thread  # noqa: F401  (its autouse fixture: tiny models on one thread)
from mdm_energy.exact import compositions, infocurve_bound, infocurve_counts, infocurve_counts_shared
from mdm_energy.integrations.block_diffusion import BlockDiffusionDenoiser
from mdm_energy.profile import STATISTICS, InformationProfile, estimate_profiles, load_profile, profile_schedule
from mdm_energy.sampling import make_sampler


# --- the reference: one row, full recompute, by hand ----------------------------------------------------------


@torch.no_grad()
def reference_records(model, prompt: list, L: int, B: int, additive: bool) -> list:
    """``[(index, {statistic: value})]`` of one row decoded alone, one token per call, greedy: every block from
    the one holding the prompt's end, the whole prefix through the model under the block mask at each call; the
    call's statistics over the block's masked positions (entropies without the mask id); the masked position
    whose most likely token is most likely is committed. ``index`` = block (from the first decoded) × B + the
    tokens committed in the block so far."""
    P = len(prompt)
    nb = -(-(P + L) // B)
    x = list(prompt) + [MASK] * (nb * B - P)
    mask = block_mask(nb * B, B, additive)
    first, out = P // B, []
    for b in range(first, nb):
        lo, hi = b * B, (b + 1) * B
        free = [i for i in range(lo, hi) if i >= P]
        calls = []
        while True:
            masked = [i for i in range(lo, hi) if x[i] == MASK]
            if not masked:
                break
            logits = model(torch.tensor([x[:hi]]), attention_mask=mask[..., :hi, :hi],
                           position_ids=torch.arange(hi)[None]).logits[0].double()
            logits[:, MASK] = -math.inf
            lp = torch.log_softmax(logits, -1)
            H = [float(-(lp[i].exp() * lp[i].nan_to_num(neginf=0.0)).sum()) for i in range(hi)]
            ends = [i for i in range(P, len(x)) if x[i] == EOS]
            span = [i for i in masked if i < (ends[0] if ends else len(x))]
            total = sum(H[i] for i in masked)
            stats = {"mean": total / len(masked), "total": total / B,
                     "answer": sum(H[i] for i in span) / len(span) if span else 0.0}
            conf = {i: round(float(lp[i].max().exp()), 12) for i in masked}
            (pick,) = choose(conf, 1)
            x[pick] = int(logits[pick].argmax())
            calls.append(((b - first) * B + len(free) - len(masked), stats, H[pick]))
        tail = 0.0
        for idx, stats, committed in reversed(calls):  # the entropy the sampler will still commit in the block
            tail += committed
            stats["committed"] = tail / B
        out += [(idx, stats) for idx, stats, _ in calls]
    return out


def pooled(records_per_row: list, size: int) -> tuple[dict, np.ndarray]:
    """The mean of each statistic at each index over all rows' records, and the records per index."""
    sums = {s: np.zeros(size) for s in STATISTICS}
    count = np.zeros(size)
    for rows in records_per_row:
        for idx, stats in rows:
            count[idx] += 1
            for s in STATISTICS:
                sums[s][idx] += stats[s]
    return {s: sums[s] / np.maximum(count, 1) for s in STATISTICS}, count


# --- the profile against the reference ---------------------------------------------------------------------------


def test_the_first_block_is_reached_as_far_as_each_prompt_leaves_it_masked():
    """SDAR (blocks of 4) on prompts of 5 and 11 tokens (tails r = 1 and 3) with L = 6: the rows decode 2 and 3
    blocks, so the profile has 3; block 0 has 3 tokens to commit in the first row and 1 in the second, so indices
    1, 2 are reached by half the rows and index 3 by none; block 1 by every row, block 2 by the second; a batch of
    both makes 3 + 4 + 4 calls."""
    model = tiny("sdar", 0)
    K = 6
    prof = estimate_profiles(BlockDiffusionDenoiser(model), PROMPTS, 6, samples=K, batch_size=2)["total"]
    assert prof.layout == "block-causal" and prof.length == 12 and prof.block_length == 4 and prof.blocks == 3
    assert list(prof.reached) == [K, K // 2, K // 2, 0] + [K] * 4 + [K // 2] * 4
    assert prof.calls == (3 + 4 + 4) * (K // 2)
    assert prof.entropy[3] == 0.0 and math.isnan(prof.stderr[3])
    assert list(prof.weights(0)) == [1.0, 0.5, 0.5, 0.0] and list(prof.weights(2)) == [1.0] * 4
    assert prof.meta["answer_length"] == 6


@pytest.mark.parametrize("family,B,L,eos_bias", [("sdar", 4, 6, 6.0), ("llada2", 8, 12, 6.0)])
@pytest.mark.parametrize("block_cache", [True, False])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_the_profile_is_the_naive_recompute_of_each_row(family, B, L, eos_bias, block_cache, batch_size):
    """Every statistic at every index equals the pooled records of the reference (each row alone, no cache, the
    whole prefix recomputed), for both families, with and without the model's cache. The two prompts' layouts
    decode different numbers of blocks (SDAR, L = 6: 2 and 3; LLaDA 2.x, blocks of 8, L = 12: 3 and 2), and the
    batches mix them (batch_size 3 over 2 prompts: rows [0, 1, 0] then [1]) or hold one (a batch with fewer
    blocks than the profile)."""
    extra = {"block_length": 8} if family == "llada2" else {}
    model = tiny(family, 1, eos_bias=eos_bias, **extra)
    den = BlockDiffusionDenoiser(model, family, block_cache=block_cache)
    samples = 4
    profs = estimate_profiles(den, PROMPTS, L, samples=samples, batch_size=batch_size)
    rows = [reference_records(model, PROMPTS[k % 2], L, B, additive=family == "llada2") for k in range(samples)]
    blocks = [-(-(len(p) % B + L) // B) for p in PROMPTS]
    assert len(set(blocks)) == 2
    size = max(blocks) * B
    want, count = pooled(rows, size)
    assert (count[::B] > 0).all() and (count == 0).any()  # the first block's tail is unreached: the case under test
    for s in STATISTICS:
        got = profs[s]
        assert got.length == size and list(got.reached) == count.astype(int).tolist()
        np.testing.assert_allclose(got.entropy, want[s], rtol=0, atol=1e-9, err_msg=s)
    assert not np.allclose(profs["answer"].entropy, profs["mean"].entropy)  # an end token was committed mid-window


def test_the_random_order_through_the_cache_is_the_random_order_recomputed():
    """Random remasking at temperature 1 (the model's law): the cached run draws the same tokens and gives the
    same profile as the run that recomputes every block from the prefix."""
    model = tiny("sdar", 2, eos_bias=1.0)
    got = [estimate_profiles(BlockDiffusionDenoiser(model, block_cache=c), PROMPTS, 7, samples=8, batch_size=4,
                             order="random", seed=3) for c in (True, False)]
    for s in STATISTICS:
        np.testing.assert_allclose(got[0][s].entropy, got[1][s].entropy, rtol=0, atol=1e-9)
        assert got[0][s].reached == got[1][s].reached


def test_window_profiles_keep_their_layout():
    from mdm_energy.exact import ExactDenoiser, load_distribution
    from mdm_energy.sampling import ExactTorchDenoiser

    prof = estimate_profiles(ExactTorchDenoiser(ExactDenoiser(load_distribution("markov:4,3,2"))), None, 4,
                             samples=8, statistics=("total",))["total"]
    assert prof.layout == "window" and prof.reached == () and list(prof.weights(0)) == [1.0] * 4


# --- the schedule ------------------------------------------------------------------------------------------


def truncated_bound(Z: np.ndarray, counts, m: int) -> float:
    """One row's bound when it has only ``m`` tokens to commit in the block: the sampler clamps the counts to
    what is masked, so its cumulative counts are ``min(c, m)`` — the plain bound of the clamped steps."""
    cum = np.minimum(np.cumsum([0, *counts]), m)
    return sum(float(np.sum(Z[a:b] - Z[a])) for a, b in zip(cum, cum[1:]) if b > a)


@pytest.mark.parametrize("seed", range(6))
def test_the_weighted_dp_minimises_the_rows_clamped_bounds(seed):
    """Rows with different numbers of tokens ``m`` in the block (as many as the prompt's tail leaves): the
    weighted DP's counts — weights the share of rows with a ``j``-th token — minimise the sum of the rows'
    clamped bounds over every composition of the block into ``per`` non-empty steps (brute force)."""
    rng = np.random.default_rng(seed)
    B = 6
    Z = np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, B - 1))])
    ms = rng.integers(1, B + 1, size=4)
    w = np.array([(ms > j).mean() for j in range(B)]) / (ms > 0).mean()
    for per in range(1, B + 1):
        got = infocurve_counts(Z, per, w).counts
        assert min(got) >= 1 and sum(got) == B
        cost = sum(truncated_bound(Z, got, m) for m in ms)
        best = min(sum(truncated_bound(Z, c, m) for m in ms) for c in compositions(B, per) if min(c) > 0)
        assert cost == pytest.approx(best, abs=1e-9)
        assert infocurve_bound(Z, got, w) * len(ms) == pytest.approx(cost, abs=1e-9)
    shared = infocurve_counts_shared([Z, Z[::-1].cumsum() / 10], 3, [w, np.ones(B)]).counts
    brute = min((c for c in compositions(B, 3) if min(c) > 0),
                key=lambda c: infocurve_bound(Z, c, w) + infocurve_bound(Z[::-1].cumsum() / 10, c))
    assert infocurve_bound(Z, shared, w) + infocurve_bound(Z[::-1].cumsum() / 10, shared) == pytest.approx(
        infocurve_bound(Z, brute, w) + infocurve_bound(Z[::-1].cumsum() / 10, brute), abs=1e-12)


def hand_profile(first_reach: list, u0: list, rest: list) -> InformationProfile:
    """A block-causal profile of two blocks of 4 with block 0 reached as ``first_reach``."""
    ent = [*u0, *rest]
    reached = [*first_reach, 10, 10, 10, 10]
    return InformationProfile(length=8, entropy=tuple(ent), stderr=(0.01,) * 8, samples=10, order="confidence",
                              calls=0, block_length=4, layout="block-causal", reached=tuple(reached))


def test_a_step_never_goes_to_tokens_no_row_has():
    """Every prompt leaves 3 tokens in block 0 (r = 1; index 3 is no row's): at 2 steps per block the weighted
    bound picks (1, 3) — 0.8 against 1.0 for (2, 2), which would pay for the missing token as if it were real:
    the unweighted DP of the same curve picks (2, 2) (1.0 against 1.6) — and a flat curve (nothing to learn)
    gives the real tokens a step each where r = 2."""
    prof = hand_profile([10, 10, 10, 0], [2.0, 1.0, 0.2, 0.0], [3.0, 2.0, 1.0, 0.5])
    assert list(prof.smoothed()[:4]) == [2.0, 1.0, 0.2, 0.2]  # the unreached index carries the fit before it
    s = profile_schedule(prof, steps_per_block=2)
    assert s.block_counts[0] == [1, 3] and s.steps == 4 and s.steps_per_block == 2
    assert s.bound == pytest.approx(0.8 + infocurve_bound(prof.information_curve(1), s.block_counts[1]))
    assert infocurve_counts(prof.information_curve(0), 2).counts == [2, 2]
    flat = hand_profile([10, 10, 0, 0], [1.0] * 4, [1.0] * 4)
    assert profile_schedule(flat, steps_per_block=2).block_counts[0] == [1, 3]
    assert profile_schedule(flat, steps_per_block=2, blocks="shared").block_counts == [[1, 3], [1, 3]]
    with pytest.raises(ValueError, match="takes steps_per_block"):
        profile_schedule(prof, 4)
    with pytest.raises(ValueError, match="steps_per_block 5 exceeds the profile's blocks of 4"):
        profile_schedule(prof, steps_per_block=5)


def per_call_counts(den, spec: str, prompt: list, L: int, per: int) -> tuple[list, int]:
    """Each block's tokens committed call by call (block 0: the one holding the prompt's end), from the sampler's
    callback on the model's canvas, and the row's model calls."""
    canvas = den.make_canvas([prompt], L)
    B = den.block_size
    per_block: list[list[int]] = [[] for _ in range(canvas.length // B)]

    def seen(call, x, committed):
        pos = committed[0].nonzero().flatten().tolist()
        if pos:
            per_block[(pos[0] - canvas.start) // B].append(len(pos))

    out = make_sampler("fixed", schedule=spec, steps=den.total_steps([prompt], L, per))(den, [prompt], L, callback=seen)
    return per_block, int(out.nfe[0])


def test_the_profile_s_schedules_run_block_by_block_and_on_fewer_blocks():
    """A ``blocks:`` schedule of three blocks runs through the sampler: each block's calls commit its own counts,
    block 0's clamped to what the prompt leaves masked; on a prompt whose layout has one block fewer the first
    two blocks' schedules are used; a schedule for fewer blocks than the layout decodes is refused."""
    from mdm_energy.exact import counts_schedule

    den = BlockDiffusionDenoiser(tiny("sdar", 4, eos_bias=1.0))
    L, own = 6, [[1, 3], [2, 2], [3, 1]]
    spec = "blocks:" + ";".join(counts_schedule(c).spec for c in own)
    for prompt in PROMPTS:  # tails of 1 and 3: 2 blocks, then 3
        got, nfe = per_call_counts(den, spec, prompt, L, 2)
        left = 4 - len(prompt) % 4
        first = [n for n in (min(own[0][0], left), min(own[0][1], left - min(own[0][0], left))) if n]
        assert got == [first] + own[1:len(got)]
        assert nfe == sum(len(c) for c in got) and len(got) == (2 if len(prompt) == 5 else 3)
    with pytest.raises(ValueError, match="has 2 block schedules and these prompts' layout decodes 3 blocks"):
        make_sampler("fixed", schedule="blocks:linear;sin2", steps=6)(den, [PROMPTS[1]], L)


def test_a_profile_s_schedule_spends_every_call_on_a_token():
    """End to end on SDAR: the profile's schedule at 2 steps per block commits, in every block of each prompt,
    its tokens in as many calls as it has tokens up to 2 — block 0 of the prompt with tail 3 holds one token
    and takes one call, the other blocks two — and the row's model calls are exactly those."""
    den = BlockDiffusionDenoiser(tiny("sdar", 5, eos_bias=1.0))
    L = 6
    prof = estimate_profiles(den, PROMPTS, L, samples=4, batch_size=2, statistics=("total",))["total"]
    s = profile_schedule(prof, steps_per_block=2)
    assert all(min(c) >= 1 and sum(c) == 4 for c in s.block_counts)
    for prompt in PROMPTS:
        got, nfe = per_call_counts(den, s.table, prompt, L, 2)
        left = 4 - len(prompt) % 4
        assert len(got[0]) == min(2, left) and sum(got[0]) == left
        assert all(len(c) == 2 and sum(c) == 4 for c in got[1:])
        assert nfe == sum(len(c) for c in got)


# --- the command line -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdar_folder(tmp_path_factory):
    return save_folder(tmp_path_factory.mktemp("blockprofile") / "sdar", "sdar")


def test_profile_command_on_a_block_diffusion_model(sdar_folder, tmp_path, capsys):
    """``profile`` on SDAR: a block-causal profile with schedules per block; its spec runs in ``generate`` with
    the same ``--steps-per-block``; ``--load`` gives the same schedules, and is checked to be the model's."""
    from mdm_energy.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("ab\nhello there\n")
    saved = tmp_path / "prof.json"
    base = ["profile", "--model", str(sdar_folder), "--trust-remote-code"]
    assert main(base + ["--prompts", str(prompts), "--length", "8", "--samples", "4", "--steps-per-block", "2,4",
                        "--save", str(saved), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["layout"] == "block-causal" and out["profile"]["block_length"] == 4
    assert [s["steps_per_block"] for s in out["schedules"]] == [2, 4]
    assert "--sampler fixed" in out["matched"] and "--block-length" not in out["matched"]
    assert load_profile(saved).layout == "block-causal"
    spec = out["schedules"][0]["table"]
    assert main(["generate", "--model", str(sdar_folder), "--trust-remote-code", "--prompt", "ab", "--gen-length",
                 "8", "--sampler", "fixed", "--schedule", spec, "--steps-per-block", "2", "--json"]) == 0
    assert 2 <= json.loads(capsys.readouterr().out)["nfe"] <= 6  # 2 or 3 blocks, at most 2 calls each
    assert main(base + ["--load", str(saved), "--steps-per-block", "2,4", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["schedules"] == out["schedules"]
    assert main(base[:1] + ["--load", str(saved), "--steps-per-block", "2"]) == 0
    assert "--steps-per-block N" in capsys.readouterr().out


def test_profile_bad_input_on_a_block_diffusion_model(sdar_folder, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("ab\nhello there\n")
    saved = tmp_path / "prof.json"
    base = ["profile", "--model", str(sdar_folder), "--trust-remote-code", "--prompts", str(prompts), "--length", "8",
            "--samples", "2", "--save", str(saved)]
    assert "--block-length 3 differs from the model's block size 4" in error_line(capsys, base + ["--block-length", "3"])
    assert "give --steps-per-block" in error_line(capsys, base + ["--steps", "4"])
    assert "--steps-per-block 5 exceeds the model's blocks of 4" in error_line(capsys, base + ["--steps-per-block", "5"])
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps({"prompt": "ab", "completion": "cdefghij"}) + "\n")
    assert "not supported on a block-diffusion model" in error_line(
        capsys, base[:4] + ["--prompts", str(jsonl), "--length", "8", "--order", "random", "--save", str(saved)])
    assert not saved.exists()
    window = tmp_path / "w.json"
    InformationProfile(length=4, entropy=(1.0, 0.5, 0.2, 0.1), stderr=(0.1,) * 4, samples=2, order="confidence",
                       calls=4).save(window)
    assert "--steps-per-block is for block-diffusion models" in error_line(
        capsys, ["profile", "--load", str(window), "--steps-per-block", "2"])
    damaged = tmp_path / "d.json"
    data = json.loads(window.read_text())
    for change, needle in (({"layout": "blocks"}, "unknown layout 'blocks'"),
                           ({"layout": "block-causal", "block_length": 2}, "needs its block_length and 4 reached"),
                           ({"reached": [1, 1, 1, 1]}, "a window profile has no reached counts"),
                           ({"layout": "block-causal", "block_length": 2, "reached": [2, 1, 0, 1]},
                            "reached counts must be >= 0, and >= 1 at each block's start")):
        damaged.write_text(json.dumps({**data, **change}))
        assert needle in error_line(capsys, ["profile", "--load", str(damaged), "--steps", "2"])
    assert not saved.exists()
