"""DUS (the Dilated Unmasking Scheduler) against a reference rewritten here from the authors' generate_scheduled:
its groups, token for token and call for call on tiny seeded models (blocks, a left-padded batch, blocks whose
length is not a power of two, guidance, temperature, rows that stop early), the schedule-driven variant, its
exact law (chi-square), and what it refuses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _references import llada_candidates
from _stats import chi_square_pvalue
from _tiny_mdm import PositionFromMask

from mdm_energy.cli import main
from mdm_energy.dilation import dilated_groups, dilated_order, order_groups
from mdm_energy.exact import ExactDenoiser, KLObjective, exact_sampler, law_fixed_order
from mdm_energy.registry import exact_check_options
from mdm_energy.sampling import CallableDenoiser, ExactTorchDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import parse_schedule

V, MASK, EOS, PAD = 30, 29, 28, 0
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]  # different lengths: the batch is left-padded


def tiny(seed: int, end_bias: float = 0.0) -> PositionFromMask:
    """A tiny random bidirectional model whose logits do not depend on left padding (positions count from the
    first real token), so that each row of a padded batch can be checked against its own unpadded run."""
    return PositionFromMask(seed, vocab=V, end_bias=end_bias, end_ids=(EOS,) if end_bias else ())


def denoiser(model) -> CallableDenoiser:
    return CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V, eos_id=EOS)


# --- the reference ---------------------------------------------------------------------------------------------


def reference_levels(start: int, end: int, base: int = 2, skip: int = 1) -> list[list[int]]:
    """The authors' dilated levels over the positions start..end (inclusive), written again with sets: strides
    L // base**skip, then // base while >= 1, each level the multiples of its stride (from start) not taken yet;
    leftovers last; a last level smaller than the one before it joins it."""
    if base == 1:
        return [list(range(start, end + 1))]
    L = end - start + 1
    levels, seen = [], set()
    stride = L // base**skip
    while stride >= 1:
        new = [p for p in range(start, end + 1) if (p - start) % stride == 0 and p not in seen]
        if new:
            levels.append(new)
            seen |= set(new)
        stride //= base
    rest = [p for p in range(start, end + 1) if p not in seen]
    if rest:
        levels.append(rest)
    if len(levels) >= 2 and len(levels[-1]) < len(levels[-2]):
        levels[-2] = levels[-2] + levels[-1]
        levels.pop()
    return levels


@torch.no_grad()
def dus_reference(model, prompt, G, B, *, base=2, skip=1, temperature=0.0, seed=0, cfg_scale=0.0, stop_at_eos=False,
                  levels=None):
    """generate_scheduled(scheduler='dilated', remasking='none') for one unpadded prompt, as plain loops: per block,
    per level, one model call, then every still-masked position of the level takes its candidate (argmax, or a
    Gumbel-max draw from the row's stream at temperature > 0, positions in ascending order). ``levels(start, end)``
    replaces the dilated levels (the schedule-driven variant). The package's conventions: the mask token is never
    proposed; guidance masks the prompt (LLaDA's form); with ``stop_at_eos`` the row stops once an end token has
    nothing masked before it, its masked positions after it become EOS. Returns the window, the calls made and
    the call at which each window position was committed."""
    P = len(prompt)
    x = list(prompt) + [MASK] * G
    rng = RowRNG(None, 1, torch.device("cpu"), seeds=[seed])
    calls, when = 0, [0] * G
    for b in range(G // B):
        s = P + b * B
        for level in (levels or reference_levels)(s, s + B - 1, *(() if levels else (base, skip))):
            todo = sorted(t for t in level if x[t] == MASK)
            if not todo:
                continue  # nothing of the level is masked: no call
            logits = model(torch.tensor([x]))[0].clone()
            if cfg_scale > 0:
                uncond = [MASK] * P + x[P:]
                u = model(torch.tensor([uncond]))[0]
                logits = u + (cfg_scale + 1.0) * (logits - u)
            calls += 1
            logits[:, MASK] = -math.inf
            cand, _ = llada_candidates(logits, todo, temperature, rng)
            for t in todo:
                x[t] = cand[t]
                when[t - P] = calls
            if stop_at_eos:
                w = x[P:]
                if EOS in w and MASK not in w[:w.index(EOS)]:
                    first = w.index(EOS)
                    for t in range(first + 1, G):
                        if w[t] == MASK:
                            x[P + t], when[t] = EOS, calls
                    return x[P:], calls, when
    return x[P:], calls, when


def run_rows(sampler, model, G, **kw):
    seeds = [11, 12, 13]
    out = sampler(denoiser(model), PROMPTS, G, pad_id=PAD, seeds=seeds, return_trajectory=True)
    return out, seeds


# --- the groups -------------------------------------------------------------------------------------------------


def test_the_groups_of_the_papers_blocks():
    assert dilated_groups(8) == [[0, 4], [2, 6], [1, 3, 5, 7]]
    assert [len(g) for g in dilated_groups(32)] == [2, 2, 4, 8, 16]  # log2(32) = 5 calls
    assert dilated_groups(12) == [[0, 6], [3, 9], [1, 2, 4, 5, 7, 8, 10, 11]]
    assert dilated_groups(10) == [[0, 5], [2, 4, 6, 8], [1, 3, 7, 9]]
    assert dilated_groups(5) == [[0, 2, 4, 1, 3]]  # {1, 3} is smaller than {0, 2, 4}: merged, one call
    assert dilated_groups(24) == [[0, 12], [6, 18], [3, 9, 15, 21], [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19,
                                                                       20, 22, 23]]
    assert dilated_groups(8, 3) == [[0, 2, 4, 6], [1, 3, 5, 7]]  # strides 2 -> 0: the odd ones are leftovers
    assert dilated_groups(16, 2, 2) == [[0, 4, 8, 12], [2, 6, 10, 14], list(range(1, 16, 2))]
    assert dilated_groups(8, 1) == [list(range(8))] and dilated_groups(1) == [[0]] and dilated_groups(3) == [[0, 1, 2]]


def test_the_groups_equal_the_reference_everywhere():
    for B in range(1, 41):
        for base in (1, 2, 3, 4):
            for skip in (1, 2, 3):
                if base > 1 and B > 1 and base**skip > B:
                    continue
                want = reference_levels(0, B - 1, base, skip)
                assert dilated_groups(B, base, skip) == want, (B, base, skip)
                assert sorted(dilated_order(B, base, skip)) == list(range(B))


def test_order_groups_cuts_the_order_by_the_counts():
    assert order_groups([0, 4, 2, 6, 1, 3, 5, 7], [3, 0, 5]) == [[0, 4, 2], [], [6, 1, 3, 5, 7]]
    with pytest.raises(ValueError, match="sum to 8"):
        order_groups(list(range(8)), [3, 3])


# --- parity -----------------------------------------------------------------------------------------------------

CASES = [  # (seed, gen_length, block, dilation, dilation_skip, temperature, cfg_scale)
    (0, 16, 8, 2, 1, 0.0, 0.0),  # two blocks of the authors' default
    (1, 24, 24, 2, 1, 0.0, 0.0),  # one block of 24 (countdown's window), not a power of two
    (2, 24, 12, 2, 1, 0.0, 0.0),  # blocks of 12
    (3, 15, 5, 2, 1, 0.0, 0.0),  # blocks of 5: one merged group each
    (4, 20, 10, 2, 1, 0.0, 0.0),
    (5, 18, 9, 3, 1, 0.0, 0.0),  # base 3
    (6, 16, 16, 2, 2, 0.0, 0.0),  # skip 2: first stride 16 // 4
    (7, 16, 8, 2, 1, 0.8, 0.0),  # temperature > 0: Gumbel draws from each row's stream
    (8, 16, 8, 2, 1, 0.0, 0.5),  # guidance
    (9, 8, 8, 1, 1, 0.0, 0.0),  # base 1: the whole block in one call
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"seed{c[0]}-G{c[1]}-B{c[2]}-a{c[3]}-e{c[4]}-T{c[5]}-cfg{c[6]}")
def test_a_padded_batch_matches_the_reference(case):
    seed, G, B, base, skip, temp, cfg = case
    model = tiny(seed)
    sampler = make_sampler("dus", dilation=base, dilation_skip=skip, block_length=B, temperature=temp, cfg_scale=cfg)
    out, seeds = run_rows(sampler, model, G)
    groups = len(dilated_groups(B, base, skip))
    for row, prompt in enumerate(PROMPTS):
        want, calls, when = dus_reference(model, prompt, G, B, base=base, skip=skip, temperature=temp, seed=seeds[row],
                                          cfg_scale=cfg)
        assert out.generated[row].tolist() == want
        assert int(out.nfe[row]) == calls == (G // B) * groups
        assert out.trajectory[row, out.gen_start:].tolist() == when
    assert out.calls == (G // B) * groups  # one batched call per group
    # the rows are not all alike, so the parity is not vacuous
    assert len({tuple(r) for r in out.generated.tolist()}) == len(PROMPTS)


def test_the_default_is_the_authors_one_block_of_the_whole_window():
    model = tiny(3)
    out, seeds = run_rows(make_sampler("dus"), model, 16)
    for row, prompt in enumerate(PROMPTS):
        want, calls, _ = dus_reference(model, prompt, 16, 16, seed=seeds[row])
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == calls == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_that_stop_at_an_end_token_match_the_reference(seed):
    """End tokens are likely (a bias on EOS): rows stop at different calls of different blocks."""
    model = tiny(seed, end_bias=3.0)
    sampler = make_sampler("dus", block_length=8, stop_at_eos=True)
    out, seeds = run_rows(sampler, model, 24)
    stopped = []
    for row, prompt in enumerate(PROMPTS):
        want, calls, _ = dus_reference(model, prompt, 24, 8, seed=seeds[row], stop_at_eos=True)
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == calls
        stopped.append(calls < 9)
    assert out.stopped.tolist() == stopped


def test_some_rows_do_stop_early():
    """The stop cases above are not vacuous: some row stops before its last call, and one does not."""
    results = [dus_reference(tiny(seed, end_bias=3.0), p, 24, 8, seed=0, stop_at_eos=True)[1] < 9
               for seed in (0, 1, 2) for p in PROMPTS]
    assert any(results) and not all(results)


def test_the_key_value_caches_apply():
    """With a refresh at every call, prefix and dual give the plain run token for token (a padded batch, blocks of 6,
    both samplers); with the default refresh (block starts only) they make the same calls."""
    from mdm_energy.models import MDMConfig, MDMTransformer, as_denoiser

    torch.manual_seed(0)
    net = MDMTransformer(MDMConfig(vocab_size=V, mask_id=MASK, eos_id=EOS, pad_id=PAD, max_len=64, d_model=32,
                                   n_layers=2, n_heads=2, d_ff=64)).double().eval()
    den = as_denoiser(net)
    for name, opts in (("dus", {}), ("dus-schedule", {"steps": 12, "schedule": "sin2"})):
        plain = make_sampler(name, block_length=6, **opts)(den, PROMPTS, 24, pad_id=PAD)
        for mode in ("prefix", "dual"):
            exact = make_sampler(name, block_length=6, cache=mode, cache_refresh=1, **opts)(den, PROMPTS, 24, pad_id=PAD)
            cached = make_sampler(name, block_length=6, cache=mode, **opts)(den, PROMPTS, 24, pad_id=PAD)
            assert exact.tokens.tolist() == plain.tokens.tolist(), (name, mode)
            assert plain.nfe.tolist() == exact.nfe.tolist() == cached.nfe.tolist()
            assert (cached.generated != MASK).all()


# --- the schedule-driven variant -----------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule,steps,G,B", [("linear", 4, 16, 8), ("sin2", 6, 24, 12), ("linear", 24, 16, 8),
                                                ("beta:0.9,0.3", 3, 15, 5)])
def test_the_schedule_cuts_the_dilated_order(schedule, steps, G, B):
    """Step k of a block commits the next c_k positions of the dilated order; a zero-count step makes no call."""
    model = tiny(1)
    sampler = make_sampler("dus-schedule", schedule=schedule, steps=steps, block_length=B)
    out, seeds = run_rows(sampler, model, G)
    counts = parse_schedule(schedule).counts(B, steps // (G // B)).tolist()
    order = dilated_order(B)

    def levels(start, end):
        return [[start + i for i in g] for g in order_groups(order, counts) if g]

    for row, prompt in enumerate(PROMPTS):
        want, calls, when = dus_reference(model, prompt, G, B, seed=seeds[row], levels=levels)
        assert out.generated[row].tolist() == want and out.trajectory[row, out.gen_start:].tolist() == when
        assert int(out.nfe[row]) == calls == (G // B) * sum(1 for c in counts if c)
    first = out.trajectory[0, out.gen_start:out.gen_start + B].tolist()  # block 0: the order, count by count
    assert [sorted(i for i in range(B) if first[i] == k + 1) for k in range(len([c for c in counts if c]))] == \
        [sorted(g) for g in order_groups(order, counts) if g]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_far_more_steps_than_positions_match_the_reference_and_run_at_most_a_call_per_position(temperature):
    """-N 100000 on blocks of 8: the empty steps are left out of the plan (no Python loop over them), and the
    tokens, the calls and when each position was committed are still the reference's, which walks every step."""
    model, G, B, steps = tiny(3), 16, 8, 100_000
    sampler = make_sampler("dus-schedule", schedule="linear", steps=steps, block_length=B, temperature=temperature)
    assert len(sampler.plan(G, G // B).counts) == B  # 50,000 steps per block, 8 of them commit something
    out, seeds = run_rows(sampler, model, G)
    counts = parse_schedule("linear").counts(B, steps // (G // B)).tolist()
    assert len(counts) == steps // (G // B) and sum(1 for c in counts if c) == B
    order = dilated_order(B)

    def levels(start, end):
        return [[start + i for i in g] for g in order_groups(order, counts)]  # every step, the empty ones too

    for row, prompt in enumerate(PROMPTS):
        want, calls, when = dus_reference(model, prompt, G, B, seed=seeds[row], temperature=temperature, levels=levels)
        assert out.generated[row].tolist() == want and out.trajectory[row, out.gen_start:].tolist() == when
        assert int(out.nfe[row]) == calls == G


def test_with_the_groups_counts_the_schedule_variant_is_dus():
    """A schedule whose counts are the group sizes (2, 2, 4 for a block of 8) gives dus's tokens and calls."""
    from mdm_energy.exact.search import counts_schedule

    model = tiny(2)
    sched = counts_schedule([2, 2, 4]).spec
    a, _ = run_rows(make_sampler("dus-schedule", schedule=sched, steps=6, block_length=8), model, 16)
    b, _ = run_rows(make_sampler("dus", block_length=8), model, 16)
    assert parse_schedule(sched).counts(8, 3).tolist() == [2, 2, 4]
    assert a.generated.tolist() == b.generated.tolist() and a.nfe.tolist() == b.nfe.tolist()


# --- the exact law ------------------------------------------------------------------------------------------------


def brute_force_order_law(q: np.ndarray, groups) -> np.ndarray:
    """prod_k prod_{i in G_k} q(x_i | x_{G_<k}) for every x, from the marginals of q (uniform where q's context has
    probability 0, as the exact denoiser does)."""
    n, d = q.ndim, q.shape[0]
    law = np.zeros_like(q)
    for x in np.ndindex(q.shape):
        p, seen = 1.0, []
        for g in groups:
            for i in g:
                keep = seen + [i]
                axes = tuple(j for j in range(n) if j not in keep)
                joint = q.sum(axis=axes) if axes else q
                sub = joint.transpose(np.argsort(np.argsort(keep)))  # axes in `keep` order
                ctx = sub[tuple(x[j] for j in seen)]
                p *= ctx[x[i]] / ctx.sum() if ctx.sum() > 0 else 1.0 / d
            seen = seen + list(g)
        law[x] = p
    return law


def small_law(shape, seed=7):
    return np.random.default_rng(seed).dirichlet(np.full(int(np.prod(shape)), 0.7)).reshape(shape)


@pytest.mark.parametrize("shape,groups", [((3,) * 4, [[0, 2], [1, 3]]), ((2,) * 5, [[0, 2, 4, 1, 3]]),
                                          ((2,) * 6, [[0, 3], [1, 2, 4, 5]]), ((3,) * 4, [[3], [], [0, 1], [2]])])
def test_the_fixed_order_law_is_the_product_of_conditionals(shape, groups):
    q = small_law(shape)
    assert np.allclose(law_fixed_order(ExactDenoiser(q), groups), brute_force_order_law(q, groups), atol=1e-12)


@pytest.mark.parametrize("shape,B", [((2,) * 6, 6), ((3,) * 4, 4), ((2,) * 8, 8)])
def test_dus_follows_the_fixed_order_law(shape, B):
    """Monte Carlo of the torch dus sampler at temperature 1 (20,000 rows) against the law of its dilated order."""
    q = small_law(shape)
    den = ExactTorchDenoiser(ExactDenoiser(q))
    out = make_sampler("dus", temperature=1.0)(den, None, B, batch_size=20_000, generator=torch.Generator().manual_seed(5))
    law = law_fixed_order(den.exact, dilated_groups(B))
    assert chi_square_pvalue(out.generated.numpy(), law) > 1e-3
    assert out.nfe.tolist() == [len(dilated_groups(B))] * 20_000


@pytest.mark.parametrize("schedule,steps", [("linear", 2), ("sin2", 3), ("beta:0.9,0.3", 4)])
def test_dus_schedule_follows_its_registered_exact_law(schedule, steps):
    q = small_law((2,) * 6, seed=3)
    den = ExactTorchDenoiser(ExactDenoiser(q))
    s = make_sampler("dus-schedule", **exact_check_options("dus-schedule", schedule=schedule, steps=steps))
    out = s(den, None, 6, batch_size=20_000, generator=torch.Generator().manual_seed(9))
    result = exact_sampler(den.exact, "dus-schedule", schedule, steps)
    counts = parse_schedule(schedule).counts(6, steps).tolist()
    assert result.counts == counts and math.isclose(sum(result.law.reshape(-1)), 1.0)
    assert chi_square_pvalue(out.generated.numpy(), result.law) > 1e-3
    assert KLObjective(den.exact, "dus-schedule", steps)(schedule) == pytest.approx(result.kl, abs=1e-12)


def test_the_exact_law_is_a_law_and_not_another_samplers():
    """The dilated order is not random: its law differs from fixed-count random reveals with the same counts."""
    q = small_law((3,) * 4)
    ours = exact_sampler(q, "dus-schedule", "linear", 2)
    random = exact_sampler(q, "fixed", "linear", 2, remasking="random")
    assert ours.counts == random.counts == [2, 2] and abs(ours.kl - random.kl) > 1e-6


# --- options and what it refuses --------------------------------------------------------------------------------


def test_the_defaults_are_the_authors():
    s = make_sampler("dus")
    assert (s.dilation, s.dilation_skip, s.temperature, s.block_length, s.cfg_scale) == (2, 1, 0.0, None, 0.0)


@pytest.mark.parametrize("name,options,needle", [
    ("dus", {"dilation": 0}, "dilation must be"),
    ("dus", {"dilation_skip": 0}, "dilation_skip must be"),
    ("dus", {"dilation": 2.5}, "dilation must be"),
    ("dus", {"dilation": 5, "block_length": 4}, r"dilation 5 with dilation_skip 1 does not fit a block of 4 positions"),
    ("dus", {"dilation": 2, "dilation_skip": 4, "block_length": 8}, r"does not fit a block of 8 positions"),
    ("dus", {"threshold": 0.5}, "the dus sampler does not take 'threshold'"),
    ("dus", {"steps": 8}, "the dus sampler does not take 'steps'"),
    ("dus", {"confidence_eos_eot_inf": True}, "the dus sampler does not take 'confidence_eos_eot_inf'"),
    ("dus-schedule", {"remasking": "random"}, "the dus-schedule sampler does not take 'remasking'"),
    ("dus-schedule", {"dilation": 9, "block_length": 8}, "does not fit a block of 8 positions"),
])
def test_bad_options(name, options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler(name, **options)


def test_a_dilation_too_wide_for_the_window_is_refused_before_any_call():
    calls = []
    den = CallableDenoiser(lambda t: calls.append(1) or torch.zeros(t.shape + (V,)), mask_id=MASK, vocab_size=V)
    with pytest.raises(ValueError, match=r"^dilation 2 with dilation_skip 3 does not fit a block of 6 positions"):
        make_sampler("dus", dilation_skip=3)(den, [[1]], 6)
    assert not calls


CMD = ["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--sampler", "dus", "--limit", "4", "--json"]


def test_the_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(CMD) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert obj["nfe"] == 4 and obj["sampler"].startswith("DusSampler(dilation=2, dilation_skip=1")  # 24 -> 4 groups
    assert main(CMD[:-1] + ["--dilation", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr()[0])["nfe"] == len(dilated_groups(24, 3))
    for argv, needle in [
        (CMD + ["--dilation", "30"], "dilation 30 with dilation_skip 1 does not fit a block of 24 positions"),
        (CMD + ["--dilation", "0"], "dilation must be"),
        (CMD + ["--dilation", "two"], "dilation must be an integer, got 'two'"),
        (CMD + ["--threshold", "0.5"], "--threshold does not apply to the dus sampler"),
        (CMD + ["--steps", "8"], "--steps does not apply to the dus sampler"),
        (CMD[:6] + ["dus-schedule", "--limit", "4"], "--steps is required for the dus-schedule sampler"),
    ]:
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and needle in err and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_tune_pareto_searches_the_dilation(tmp_path, capsys):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "dus", "--strategy", "tpe", "--budget", "2", "--storage",
            f"sqlite:///{tmp_path}/d.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 2 and out["failed"] == 0 and out["front"]
    for t in out["front"]:  # the dilation is the searched parameter, within its declared range
        assert t["sampler"] == "dus" and 2 <= t["options"]["dilation"] <= 4
        assert t["command"] == f"--sampler dus --dilation {t['options']['dilation']}"
        assert t["nfe"] == len(dilated_groups(24, t["options"]["dilation"]))


def test_tune_the_exact_objective_of_dus_schedule(tmp_path, capsys):
    """tune --objective exact --sampler dus-schedule: each Beta schedule is scored with the fixed-order law's KL."""
    argv = ["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "dus-schedule", "-N", "3", "--strategy",
            "tpe", "--budget", "4", "--storage", f"sqlite:///{tmp_path}/e.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    best = out["best"]
    assert out["evaluations"] == 4
    assert best["score"] == pytest.approx(exact_sampler("toy1", "dus-schedule", best["spec"], 3).kl, rel=1e-9)
    assert out["baselines"]["linear"] == pytest.approx(exact_sampler("toy1", "dus-schedule", "linear", 3).kl)


def test_tune_pareto_holds_the_dilation_skip_fixed(tmp_path, capsys):
    """--dilation-skip is not searched: the dilation is, and every trial's groups start at stride 24 // a**2."""
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "dus", "--dilation-skip", "2", "--strategy", "tpe", "--budget", "2",
            "--storage", f"sqlite:///{tmp_path}/d.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 2 and out["failed"] == 0 and out["front"]
    for t in out["front"]:
        a = t["options"]["dilation"]
        assert t["command"] == f"--sampler dus --dilation-skip 2 --dilation {a}"
        assert t["nfe"] == len(dilated_groups(24, a, 2)) != len(dilated_groups(24, a, 1))


def test_tune_the_exact_objective_of_dus_schedule_with_a_dilation_skip(tmp_path, capsys):
    """tune --objective exact carries --dilation-skip into the fixed-order law (not silently the default)."""
    argv = ["tune", "--objective", "exact", "--dist", "markov:6,2,1", "--sampler", "dus-schedule", "-N", "3",
            "--dilation-skip", "2", "--strategy", "tpe", "--budget", "2", "--storage", f"sqlite:///{tmp_path}/e.db",
            "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    den = ExactDenoiser(__import__("mdm_energy.exact", fromlist=["load_distribution"]).load_distribution("markov:6,2,1"))
    skip2 = KLObjective(den, "dus-schedule", 3, None, {"dilation_skip": 2})(parse_schedule("linear"))
    skip1 = KLObjective(den, "dus-schedule", 3)(parse_schedule("linear"))
    assert out["baselines"]["linear"] == pytest.approx(skip2, rel=1e-9) and skip2 != pytest.approx(skip1, rel=1e-6)
