"""The prophet sampler (Prophet, "Diffusion Language Models Know the Answer Before Decoding") against a reference
written here from the authors' rule, token for token and call for call, on tiny seeded models; its schedule, its
phases, its batches, and what it refuses."""

from __future__ import annotations

import json
import math
from pathlib import Path

from functools import partial

import pytest
import torch

from _references import llada_candidates, llada_counts
from _tiny_mdm import PositionFromMask, scale_weights
from _tiny_mdm import tiny_transformer as _tiny_transformer
from mdm_energy.cli import main
from mdm_energy.models import as_denoiser
from mdm_energy.sampling import CallableDenoiser, make_sampler
from mdm_energy.sampling.prophet import PHASE_BOUNDS, phase_threshold
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import Table, parse_schedule

V, MASK, EOS, PAD = 30, 29, 28, 0
PROMPTS = [[3, 9, 14], [5, 1, 12, 7, 2], [8]]  # different lengths: the batch is left-padded
SEEDS = [21, 22, 23]
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"


class Sharp:
    """A tiny seeded bidirectional transformer whose logits are multiplied by ``scale``: logit gaps of a few units
    (scale 1) up to the tens, so that the authors' thresholds (7.5, 5, 2.5) are crossed at different steps."""

    def __init__(self, seed: int, scale: float = 1.0) -> None:
        self.model, self.scale = PositionFromMask(seed, vocab=V), scale

    @torch.no_grad()
    def __call__(self, tokens, attention_mask=None):
        return self.scale * self.model(tokens, attention_mask)

    def denoiser(self) -> CallableDenoiser:
        return CallableDenoiser(self, mask_id=MASK, vocab_size=V, eos_id=EOS)

    def row(self, tokens: list[int], pad: int) -> torch.Tensor:
        """The logits ``(T, V)`` of one left-padded row alone (its padding masked out)."""
        am = torch.tensor([[False] * pad + [True] * (len(tokens) - pad)])
        return self(torch.tensor([tokens]), am)[0]


def reference_counts(schedule: str, B: int, per: int) -> list[int]:
    """The counts of a block's steps in the reference: LLaDA's rule for ``linear`` (the authors' code), the
    schedule's own counts for the others (sin2, beta: ours by definition)."""
    return llada_counts(B, per) if schedule == "linear" else parse_schedule(schedule).counts(B, per).tolist()


def our_schedule(schedule: str, B: int, per: int) -> str:
    """What our sampler is given for the reference's ``schedule``: itself, except ``linear`` where our rounding
    differs from LLaDA's (steps that do not divide the block): then the table of LLaDA's counts."""
    if schedule == "linear" and parse_schedule("linear").counts(B, per).tolist() != llada_counts(B, per):
        return Table.from_counts(llada_counts(B, per)).spec
    return schedule


# --- the reference -------------------------------------------------------------------------------------------


@torch.no_grad()
def prophet_reference(row_logits, prompt, pad, G, steps, B, gaps, *, schedule="linear", answer_start=0,
                      answer_length=None, temperature=0.0, cfg_scale=0.0, seed=0, banned=(MASK,)):
    """Prophet for one prompt, from the authors' ``generate``: LLaDA's block loop with ``steps // blocks`` steps
    per block, each committing its count of the block's most confident candidates — and, after every model call
    and before those commits, the mean top-1 minus top-2 logit over the answer region (window offsets
    ``answer_start`` .. ``answer_start + answer_length - 1``, clipped; every position, masked or not) against
    the threshold of the phase of ``step / steps`` (step 1-based over all blocks: early below 0.33, mid below
    0.67, late after); once it clears, every masked position of the window takes the call's candidate and
    nothing more is called. The package's conventions: the banned ids are never proposed and left out of the
    softmax and of the gap, confidences are rounded to 12 decimals with ties to the lower position, candidates
    at temperature > 0 are Gumbel-max draws from the row's own stream (one row of V uniforms per position drawn,
    in position order). A block with more steps than positions runs only the steps that commit something, each
    keeping its number. Returns the window, the calls, and the step of the exit (None: no exit)."""
    P = pad + len(prompt)
    x = [PAD] * pad + list(prompt) + [MASK] * G
    rng = RowRNG(None, 1, torch.device("cpu"), seeds=[seed])
    early, mid, late = gaps
    blocks = G // B
    per = steps // blocks
    counts = reference_counts(schedule, B, per)
    numbered = [(i, c) for i, c in enumerate(counts) if c or per <= B]  # beyond the positions: zero steps dropped
    lo_a = P + answer_start
    hi_a = P + G if answer_length is None else min(P + G, lo_a + answer_length)
    calls = 0

    def logits_now():
        z = row_logits(x, pad).clone()
        if cfg_scale > 0:
            u = row_logits([MASK if pad <= j < P else t for j, t in enumerate(x)], pad)
            z = u + (cfg_scale + 1.0) * (z - u)
        z[:, list(banned)] = -math.inf
        return z

    def draw(z, positions):
        cand, _ = llada_candidates(z, positions, temperature, rng)
        return [cand[j] for j in positions]

    for b in range(blocks):
        lo, hi = P + b * B, P + (b + 1) * B
        for i, n in numbered:
            step = b * per + i + 1
            z = logits_now()
            calls += 1
            region = []
            for j in range(lo_a, hi_a):
                top = sorted(z[j].double().tolist(), reverse=True)
                region.append(top[0] - top[1])
            gap = sum(region) / len(region)
            progress = step / steps
            tau = early if progress < 0.33 else (mid if progress < 0.67 else late)
            if gap >= tau:
                rest = [j for j in range(P, P + G) if x[j] == MASK]
                for j, c in zip(rest, draw(z, rest)):
                    x[j] = c
                return x[P:], calls, step
            masked = [j for j in range(lo, hi) if x[j] == MASK]
            if n == 0 or not masked:
                continue
            cand = dict(zip(masked, draw(z, masked)))
            prob = torch.softmax(z.double(), -1)
            conf = {j: round(float(prob[j, cand[j]]), 12) for j in masked}
            for j in sorted(masked, key=lambda j: (-conf[j], j))[:n]:
                x[j] = cand[j]
    return x[P:], calls, None


# --- parity ----------------------------------------------------------------------------------------------------

DEFAULT_GAPS = (7.5, 5.0, 2.5)
CASES = [  # (seed, scale, G, steps, block, gaps, answer_start, answer_length, temperature, cfg, schedule)
    (0, 3.0, 16, 16, 4, DEFAULT_GAPS, 0, None, 0.0, 0.0, "linear"),  # the authors' thresholds, whole window
    (1, 3.0, 16, 16, 8, DEFAULT_GAPS, 10, 5, 0.0, 0.0, "linear"),  # their region: five positions
    (2, 4.0, 16, 8, 4, DEFAULT_GAPS, 12, 5, 0.0, 0.0, "linear"),  # a region clipped at the end of the window
    (3, 1.0, 12, 12, 4, (2.6, 2.0, 1.2), 0, None, 0.0, 0.0, "linear"),
    (4, 1.0, 16, 8, 8, (3.0, 1.8, 1.0), 4, 3, 0.0, 0.0, "linear"),
    (5, 2.0, 12, 6, 4, (6.0, 4.0, 3.0), 0, None, 0.0, 0.0, "sin2"),  # another schedule: its counts before the exit
    (6, 2.0, 16, 12, 8, (7.0, 5.0, 2.0), 0, 4, 0.0, 0.0, "beta:0.9,0.3"),  # some steps commit nothing
    (7, 3.0, 16, 16, 4, DEFAULT_GAPS, 0, None, 0.8, 0.0, "linear"),  # temperature: draws from each row's stream
    (8, 2.0, 16, 8, 4, (6.0, 4.0, 2.5), 0, None, 0.0, 0.5, "linear"),  # guidance: the gap of the guided logits
    (9, 1.0, 12, 12, 12, (1e9, 1e9, 1e9), 0, None, 0.0, 0.0, "linear"),  # never exits: LLaDA's sampler
    (10, 2.0, 8, 24, 4, (6.0, 4.0, 2.0), 0, None, 0.0, 0.0, "linear"),  # more steps than positions
    (11, 2.0, 16, 6, 8, (6.0, 4.0, 2.5), 0, None, 0.0, 0.0, "linear"),  # 3 steps per block of 8: LLaDA's 3, 3, 2
]


def _case_id(c):
    return f"seed{c[0]}-x{c[1]:g}-G{c[2]}-N{c[3]}-B{c[4]}-{'/'.join(f'{g:g}' for g in c[5])}-A{c[6]}:{c[7]}-T{c[8]}-cfg{c[9]}-{c[10]}"


def _run_case(case, **extra):
    seed, scale, G, steps, B, gaps, a0, alen, temp, cfg, schedule = case
    model = Sharp(seed, scale)
    sampler = make_sampler("prophet", steps=steps, block_length=B, gap_early=gaps[0], gap_mid=gaps[1],
                           gap_late=gaps[2], answer_start=a0, answer_length=alen, temperature=temp, cfg_scale=cfg,
                           schedule=our_schedule(schedule, B, steps // (G // B)), **extra)
    return model, sampler(model.denoiser(), PROMPTS, G, pad_id=PAD, seeds=SEEDS)


def _reference_rows(case, model):
    seed, scale, G, steps, B, gaps, a0, alen, temp, cfg, schedule = case
    P = max(map(len, PROMPTS))
    return [prophet_reference(model.row, prompt, P - len(prompt), G, steps, B, gaps, schedule=schedule,
                              answer_start=a0, answer_length=alen, temperature=temp, cfg_scale=cfg, seed=SEEDS[r])
            for r, prompt in enumerate(PROMPTS)]


@pytest.mark.filterwarnings("ignore:.*steps that would unmask nothing")
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_prophet_matches_the_reference_token_for_token(case):
    model, out = _run_case(case)
    rows = _reference_rows(case, model)
    for r, (want, calls, _) in enumerate(rows):
        assert out.generated[r].tolist() == want, f"row {r}"
        assert int(out.nfe[r]) == calls, f"row {r}"
    assert out.calls == max(calls for _, calls, _ in rows)  # a row that exits leaves the batch; the others go on


@pytest.mark.filterwarnings("ignore:.*steps that would unmask nothing")
def test_the_cases_exercise_every_branch():
    """Exits in each phase, rows that never exit, exits that fill later blocks, exits in the last block, and a
    batch whose rows exit at different calls: the parity above is not vacuous."""
    phases, no_exit, later_blocks, last_block, mixed = set(), 0, 0, 0, 0
    for case in CASES:
        seed, scale, G, steps, B, *_ = case
        rows = _reference_rows(case, Sharp(seed, scale))
        per = steps // (G // B)
        for _, _, step in rows:
            if step is None:
                no_exit += 1
                continue
            p = step / steps
            phases.add(0 if p < PHASE_BOUNDS[0] else 1 if p < PHASE_BOUNDS[1] else 2)
            block = (step - 1) // per
            later_blocks += block < G // B - 1
            last_block += block == G // B - 1
        mixed += len({calls for _, calls, _ in rows}) > 1
    assert phases == {0, 1, 2} and no_exit and later_blocks and last_block and mixed, (phases, no_exit, later_blocks,
                                                                                       last_block, mixed)


def test_linear_counts_are_llada_counts_where_the_steps_divide_the_block():
    """Before the exit the default schedule gives LLaDA's counts (the cases above use these)."""
    for B, per in [(4, 4), (8, 4), (4, 2), (12, 12), (8, 8), (32, 8)]:
        assert parse_schedule("linear").counts(B, per).tolist() == llada_counts(B, per)


def test_some_cases_check_the_authors_counts_where_ours_differ():
    """The reference's linear counts are LLaDA's: where our linear rounds otherwise (steps that do not divide the
    block, or more steps than positions), the parity runs ours on the table of LLaDA's counts."""
    differ = [c for c in CASES if our_schedule(c[10], c[4], c[3] // (c[2] // c[4])) != c[10]]
    assert {(c[2], c[3], c[4]) for c in differ} == {(8, 24, 4), (16, 6, 8)}


#: Our transformer, tiny and random, in float64, with large weights (scale 8).
tiny_transformer = partial(_tiny_transformer, vocab=V, mask_id=MASK, eos_id=EOS, pad_id=PAD)


@pytest.mark.parametrize("seed,gaps,block,cfg", [(0, (0.45, 0.35, 0.3), 4, 0.0), (1, (0.45, 0.45, 0.45), 8, 0.0),
                                                 (2, (0.5, 0.45, 0.4), 4, 1.0)])
def test_our_transformer_matches_the_reference(seed, gaps, block, cfg):
    """Our transformer (its logit gaps are a few tenths: thresholds to match), left-padded rows, guidance."""
    model = tiny_transformer(seed)

    @torch.no_grad()
    def row(tokens, pad):
        am = torch.tensor([[False] * pad + [True] * (len(tokens) - pad)])
        return model(torch.tensor([tokens]), am)[0]

    out = make_sampler("prophet", steps=16, block_length=block, gap_early=gaps[0], gap_mid=gaps[1], gap_late=gaps[2],
                       cfg_scale=cfg)(as_denoiser(model), PROMPTS, 16, pad_id=PAD, seeds=SEEDS)
    P = max(map(len, PROMPTS))
    exits = []
    for r, prompt in enumerate(PROMPTS):
        want, calls, step = prophet_reference(row, prompt, P - len(prompt), 16, 16, block, gaps, cfg_scale=cfg)
        assert out.generated[r].tolist() == want and int(out.nfe[r]) == calls
        exits.append(step)
    assert any(s is not None and s < 16 for s in exits)


def test_a_hugging_face_model_matches_the_reference():
    """A tiny LLaDA-like Hugging Face model through the adapter (left padding as its attention mask), in float32."""
    pytest.importorskip("transformers")
    from _tiny_mdm import TinyMDM, TinyMDMConfig

    from mdm_energy.integrations.huggingface import HFDenoiser

    torch.manual_seed(3)
    model = scale_weights(TinyMDM(TinyMDMConfig(vocab_size=V, mask_token_id=MASK, eos_token_id=EOS)).eval(), 4.0)

    @torch.no_grad()
    def row(tokens, pad):
        am = torch.tensor([[False] * pad + [True] * (len(tokens) - pad)])
        return model(input_ids=torch.tensor([tokens]), attention_mask=am).logits[0]

    gaps = (0.45, 0.35, 0.28)  # its gaps are a few tenths
    out = make_sampler("prophet", steps=16, block_length=4, gap_early=gaps[0], gap_mid=gaps[1], gap_late=gaps[2])(
        HFDenoiser(model, mask_id=MASK), PROMPTS, 16, pad_id=PAD)
    P = max(map(len, PROMPTS))
    exits = []
    for r, prompt in enumerate(PROMPTS):
        want, calls, step = prophet_reference(row, prompt, P - len(prompt), 16, 16, 4, gaps)
        assert out.generated[r].tolist() == want and int(out.nfe[r]) == calls
        exits.append(step)
    assert len(set(exits)) == 3 and None not in exits, exits  # three rows, three exit calls


# --- the phases, ties and the edges ------------------------------------------------------------------------------


def test_the_phase_thresholds_follow_the_progress():
    """Step n of N: early below 0.33, mid below 0.67, late from there on (the authors' comparisons, in floats)."""
    got = [phase_threshold(n, 100, 3.0, 2.0, 1.0) for n in range(1, 101)]
    assert got == [3.0] * 32 + [2.0] * 34 + [1.0] * 34
    assert [phase_threshold(n, 3, 3.0, 2.0, 1.0) for n in (1, 2, 3)] == [2.0, 2.0, 1.0]  # 1/3 is not below 0.33
    assert phase_threshold(1, 1, 3.0, 2.0, 1.0) == 1.0  # one step: late


def constant(logits_row: list[float]):
    """A denoiser whose every position gets the same logits (every confidence ties, every gap is known)."""
    row = torch.tensor(logits_row, dtype=torch.float64)
    return CallableDenoiser(lambda t, am=None: row.expand(*t.shape, V).clone(), mask_id=MASK, vocab_size=V,
                            eos_id=EOS)


def test_a_gap_equal_to_the_threshold_exits_and_ties_go_to_the_lower_position():
    """Every position: top-1 logit 5.5 on token 4, top-2 3.0 (gap exactly 2.5): with the authors' thresholds the row
    exits at the first late step (step 6 of 8: 0.75), not before; before it, each step commits the count's first
    positions (all confidences tie)."""
    logits = [0.0] * V
    logits[4], logits[7] = 5.5, 3.0
    seen = []
    out = make_sampler("prophet", steps=8, block_length=4)(constant(logits), [[1, 2]], 8,
                                                           callback=lambda n, x, c: seen.append(c[0, 2:].tolist()))
    assert out.nfe.tolist() == [6] and out.generated.tolist() == [[4] * 8]
    assert seen[:2] == [[True, False, False, False] + [False] * 4, [False, True, False, False] + [False] * 4]
    assert seen[5] == [False] * 5 + [True] * 3  # step 6 (block 2, its second step): everything left, at once
    logits[4] = 5.49  # just below: no exit, LLaDA's eight calls
    assert make_sampler("prophet", steps=8, block_length=4)(constant(logits), [[1, 2]], 8).nfe.tolist() == [8]


def test_the_gap_leaves_out_what_is_never_proposed():
    """The mask token's logit (and a suppressed id's) never makes a gap: top-1 and top-2 come from the rest."""
    logits = [0.0] * V
    logits[MASK], logits[4], logits[7] = 50.0, 5.0, 4.0  # gap 1 among proposable tokens, 45 with the mask id
    assert make_sampler("prophet", steps=4, gap_early=2.0, gap_mid=2.0, gap_late=2.0)(
        constant(logits), [[1]], 4).nfe.tolist() == [4]
    logits[MASK], logits[7], logits[9] = 0.0, 0.5, 4.0  # gap 1; 4.5 once token 9 is suppressed
    assert make_sampler("prophet", steps=4, gap_early=2.0, gap_mid=2.0, gap_late=2.0)(
        constant(logits), [[1]], 4).nfe.tolist() == [4]
    out = make_sampler("prophet", steps=4, gap_early=2.0, gap_mid=2.0, gap_late=2.0, suppress_tokens=(9,))(
        constant(logits), [[1]], 4)
    assert out.nfe.tolist() == [1] and out.generated.tolist() == [[4] * 4]


def test_threshold_zero_exits_at_the_first_call_with_its_argmax_everywhere():
    model = Sharp(3, 2.0)
    out = make_sampler("prophet", steps=8, block_length=4, gap_early=0.0)(model.denoiser(), PROMPTS, 8, pad_id=PAD)
    P = out.gen_start
    for r, prompt in enumerate(PROMPTS):
        z = model.row(out.tokens[r, :P].tolist() + [MASK] * 8, P - len(prompt))
        z[:, MASK] = -math.inf
        assert out.generated[r].tolist() == z[P:].argmax(-1).tolist()
    assert out.nfe.tolist() == [1, 1, 1] and out.calls == 1


@pytest.mark.filterwarnings("ignore:.*steps that would unmask nothing")
@pytest.mark.parametrize("schedule,steps,block", [("linear", 8, 4), ("sin2", 6, None), ("beta:0.9,0.3", 12, 4),
                                                  ("linear", 5, None)])
def test_without_an_exit_it_is_the_fixed_count_sampler_of_its_schedule(schedule, steps, block):
    """The schedule (and steps) drive the counts before the exit: with thresholds no gap reaches, the tokens and
    NFE are those of ``fixed`` with the same schedule, steps, blocks and temperature."""
    den = Sharp(1, 2.0).denoiser()
    run = dict(schedule=schedule, steps=steps, block_length=block, temperature=0.5)
    never = make_sampler("prophet", **run, gap_early=1e6, gap_mid=1e6, gap_late=1e6)(den, PROMPTS, 8, pad_id=PAD,
                                                                                    seeds=SEEDS)
    fixed = make_sampler("fixed", **run)(den, PROMPTS, 8, pad_id=PAD, seeds=SEEDS)
    assert never.generated.tolist() == fixed.generated.tolist() and never.nfe.tolist() == fixed.nfe.tolist()


def test_an_exit_keeps_the_tokens_already_committed_and_fills_the_later_blocks():
    """Up to the exit call the run is the fixed-count run; the exit call commits every masked position left, later
    blocks included, and nothing after it changes."""
    den = Sharp(0, 3.0).denoiser()
    traj = make_sampler("prophet", steps=16, block_length=4)(den, PROMPTS, 16, pad_id=PAD, return_trajectory=True)
    fixed = make_sampler("fixed", steps=16, block_length=4)(den, PROMPTS, 16, pad_id=PAD, return_trajectory=True)
    P = traj.gen_start
    for r in range(len(PROMPTS)):
        k = int(traj.nfe[r])
        when = traj.trajectory[r, P:]
        before = when < k
        assert torch.equal(traj.generated[r][before], fixed.generated[r][before])
        assert torch.equal(when[before], fixed.trajectory[r, P:][before])
        assert int(when.max()) == k and bool((when[~before] == k).all())
    assert (traj.nfe < 16).any()
    assert any(int(traj.nfe[r]) <= 12 for r in range(len(PROMPTS)))  # an exit before the last block


@pytest.mark.filterwarnings("ignore:.*steps that would unmask nothing")
def test_more_steps_than_positions_keep_each_steps_phase():
    """A block of 4 with 12 steps runs its 4 steps that commit something; each keeps its number among the 12, so
    the first call of the run is step 3 of 24 (its schedule's first non-zero step), still early."""
    logits = [0.0] * V
    logits[4], logits[7] = 5.5, 3.0  # gap 2.5 everywhere: exits at the first late step
    out = make_sampler("prophet", steps=24, block_length=4, gap_early=9.0, gap_mid=9.0, gap_late=2.5)(
        constant(logits), [[1]], 8, return_trajectory=True)
    counts = parse_schedule("linear").counts(4, 12).tolist()
    kept = [i for i, c in enumerate(counts) if c]
    late = [b * 12 + i + 1 for b in range(2) for i in kept if (b * 12 + i + 1) / 24 >= 0.67]
    calls_before = sum(1 for b in range(2) for i in kept if b * 12 + i + 1 < late[0])
    assert out.nfe.tolist() == [calls_before + 1]


# --- batches, end tokens ------------------------------------------------------------------------------------------


def test_each_row_of_a_batch_gets_what_it_gets_alone():
    """Rows exit at different calls; a row's tokens and NFE never depend on the rest of its batch."""
    model = Sharp(0, 3.0)
    sampler = make_sampler("prophet", steps=16, block_length=4, temperature=0.7)
    batch = sampler(model.denoiser(), PROMPTS, 16, pad_id=PAD, seeds=SEEDS)
    assert len(set(batch.nfe.tolist())) > 1
    for r, prompt in enumerate(PROMPTS):
        alone = sampler(model.denoiser(), [prompt], 16, seeds=[SEEDS[r]])
        assert alone.generated[0].tolist() == batch.generated[r].tolist() and alone.nfe[0] == batch.nfe[r]


def test_stop_at_eos_and_the_exit_work_together():
    """A row that commits an end token with nothing masked before it stops (its rest becomes EOS) unless it has
    exited first; rows that do neither are the rows of the run without stop_at_eos."""
    model = PositionFromMask(5, vocab=V, end_bias=4.0, end_ids=(EOS,))
    den = CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V, eos_id=EOS)
    run = dict(steps=16, block_length=4, gap_early=6.0, gap_mid=4.0, gap_late=1.5)
    plain = make_sampler("prophet", **run)(den, PROMPTS, 16, pad_id=PAD)
    out = make_sampler("prophet", **run, stop_at_eos=True)(den, PROMPTS, 16, pad_id=PAD)
    assert (out.nfe <= plain.nfe).all()
    for r in range(len(PROMPTS)):
        if out.nfe[r] == plain.nfe[r]:
            assert out.generated[r].tolist() == plain.generated[r].tolist()
        else:
            w = out.generated[r].tolist()
            first = w.index(EOS)
            assert out.stopped[r] and all(t == EOS for t in w[first:])
    assert (out.nfe < plain.nfe).any()


# --- what it refuses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options,needle", [
    ({"gap_early": -1.0}, "gap_early must be a finite number >= 0, got -1.0"),
    ({"gap_mid": float("inf")}, "gap_mid must be a finite number, got inf"),
    ({"gap_late": "high"}, "gap_late must be a finite number, got 'high'"),
    ({"answer_start": -1}, "answer_start must be an integer >= 0, got -1"),
    ({"answer_start": 1.5}, "answer_start must be an integer >= 0, got 1.5"),
    ({"answer_length": 0}, "answer_length must be a positive integer, got 0"),
    ({"cache": "prefix"}, "the prophet sampler does not take 'cache'"),
    ({"threshold": 0.9}, "the prophet sampler does not take 'threshold'"),
    ({"remasking": "lowest"}, "unknown remasking rule 'lowest'"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError) as err:
        make_sampler("prophet", **options)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_region_outside_the_window_is_refused_before_any_call():
    calls = []
    den = CallableDenoiser(lambda t, am=None: calls.append(1) or torch.zeros(*t.shape, V), mask_id=MASK, vocab_size=V)
    with pytest.raises(ValueError, match=r"^answer_start 8 lies outside the generation window of 8 positions "
                                         r"\(offsets 0 to 7\)$"):
        make_sampler("prophet", steps=4, answer_start=8)(den, [[1]], 8)
    assert calls == []
    make_sampler("prophet", steps=4, answer_start=7, answer_length=50)(den, [[1]], 8)  # clipped to the window


def test_the_defaults_are_the_authors():
    s = make_sampler("prophet")
    assert (s.gap_early, s.gap_mid, s.gap_late) == (7.5, 5.0, 2.5) and PHASE_BOUNDS == (0.33, 0.67)
    assert (s.remasking, s.schedule.spec, s.temperature, s.cfg_scale) == ("low_confidence", "linear", 0.0, 0.0)
    assert (s.answer_start, s.answer_length) == (0, None)


def _main(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--sampler", "prophet",
                            "--steps", "24", "--limit", "4", "--json"], capsys)
    obj = json.loads(out)
    assert code == 0 and obj["n"] == 4 and 1 <= obj["nfe"] <= 24
    assert obj["sampler"].startswith("ProphetSampler(schedule='linear', steps=24, remasking='low_confidence', "
                                     "gap_early=7.5, gap_mid=5.0, gap_late=2.5")
    code, out, _ = _main(["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--sampler", "prophet",
                          "-N", "24", "--gap-early", "12", "--answer-start", "2", "--answer-length", "5", "--json"],
                         capsys)
    assert code == 0 and "answer_start=2, answer_length=5" in json.loads(out)["sampler"]
    base = ["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--sampler", "prophet", "--steps", "24",
            "--limit", "2"]
    for extra, needle in [
        (["--gap-early", "-1"], "gap-early must be a finite number >= 0, got '-1'"),
        (["--gap-late", "x"], "gap-late must be a number, got 'x'"),
        (["--answer-start", "-1"], "answer-start must be an integer >= 0, got '-1'"),
        (["--answer-length", "0"], "answer-length must be a positive integer, got '0'"),
        (["--answer-start", "24"], "answer_start 24 lies outside the generation window of 24 positions"),
        (["--threshold", "0.5"], "--threshold does not apply to the prophet sampler"),
        (["--cache", "prefix"], "--cache does not apply to the prophet sampler"),
    ]:
        code, out, err = _main(base + extra, capsys)
        assert code == 2 and out == "" and needle in err and err.count("\n") == 1, (extra, err)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_tune_pareto_searches_the_phase_thresholds(tmp_path, capsys):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "prophet", "--steps-values", "8,24", "--strategy", "tpe", "--budget", "2",
            "--storage",
            f"sqlite:///{tmp_path}/p.db", "--json"]
    code, out, err = _main(argv, capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["evaluations"] == 2 and obj["front"]
    for t in obj["front"]:
        o = t["options"]
        assert 1.0 <= o["gap_early"] <= 15.0 and 0.5 <= o["gap_mid"] <= 10.0 and 0.25 <= o["gap_late"] <= 7.5
        assert o["schedule"].startswith("beta:") and o["steps"] in (8, 24) and "--sampler prophet" in t["command"]


def test_the_pareto_search_keeps_the_phase_thresholds_in_order():
    """The gaps fall as decoding progresses (early >= mid >= late): every proposal keeps that order, within the
    registry's ranges, and still spreads over them (independent draws would break the order in most trials)."""
    import optuna

    from mdm_energy.tuning.pareto import ParetoSpace

    space, study = ParetoSpace(steps=(8,)), optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    proposals = []
    for _ in range(200):
        trial = study.ask()
        proposals.append(space.suggest(trial, "prophet"))
        study.tell(trial, 0.0)
    for o in proposals:
        assert 1.0 <= o["gap_early"] <= 15.0 and 0.5 <= o["gap_mid"] <= 10.0 and 0.25 <= o["gap_late"] <= 7.5, o
        assert o["gap_early"] >= o["gap_mid"] >= o["gap_late"], o
    assert max(o["gap_early"] for o in proposals) > 10 and min(o["gap_late"] for o in proposals) < 0.5


def test_tune_pareto_holds_the_answer_region_and_the_empty_steps_fixed(tmp_path, capsys, monkeypatch):
    """--answer-start, --answer-length and --skip-empty-steps are not searched: every prophet trial runs with them
    and every front point's command carries them (the switch as its bare flag); the fixed-count baselines, which
    take skip_empty_steps too, run and print it as well."""
    import mdm_energy.sampling as sampling

    built, make = [], sampling.make_sampler
    monkeypatch.setattr(sampling, "make_sampler", lambda name, **kw: built.append((name, kw)) or make(name, **kw))
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "prophet", "--steps-values", "8", "--answer-start", "4", "--answer-length",
            "6", "--skip-empty-steps", "--strategy", "tpe", "--budget", "2", "--storage", f"sqlite:///{tmp_path}/p.db",
            "--json"]
    code, out, err = _main(argv, capsys)
    assert code == 0, err
    obj = json.loads(out)
    runs = [kw for name, kw in built if name == "prophet"]  # the one-item check first, then the trials
    assert len([kw for kw in runs if "gap_early" in kw]) == 2 and len(runs) == 3
    assert all(kw["answer_start"] == 4 and kw["answer_length"] == 6 and kw["skip_empty_steps"] for kw in runs)
    assert obj["front"] and all("--answer-start 4 --answer-length 6" in t["command"] and
                                "--skip-empty-steps" in t["command"] and "True" not in t["command"] for t in obj["front"])
    fixed = [b for b in obj["baselines"] if b["sampler"] == "fixed"]
    assert fixed and all(b["options"]["skip_empty_steps"] is True and b["command"].startswith(
        "--sampler fixed --skip-empty-steps ") for b in fixed)
    assert all("--answer-start" not in b["command"] for b in obj["baselines"])
