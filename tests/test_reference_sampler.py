"""The default sampling path — temperature 0 with low_confidence (and margin, entropy) — token for token
against a reference written here from LLaDA's published ``generate``: one prompt at a time, a per-row
top-k loop, blocks, classifier-free guidance.

The reference follows the published algorithm: for each block and each of its steps, call the model
(with guidance, ``un + (s + 1)(cond - un)`` where the unconditional input masks the prompt), take the
argmax candidate of every position, score it (probability of the candidate; top-1 minus top-2; minus the
entropy), keep only masked positions of the current block, and commit the ``k`` best of each row with
``torch.topk``. The schedule only changes ``k`` per step. Like our samplers it never proposes the mask
token itself (its logit is set to -inf).
"""

from __future__ import annotations

import pytest
import torch

from _tiny_mdm import PositionFromMask
from mdm_energy.sampling import CallableDenoiser, FixedCountSampler
from mdm_energy.schedules import parse_schedule

V, MASK, PAD = 30, 29, 0


@torch.no_grad()
def reference_generate(model, prompt: list[int], gen_length: int, steps: int, schedule: str, remasking: str,
                       block_length: "int | None", cfg_scale: float) -> list[int]:
    P, L = len(prompt), gen_length
    B = block_length or L
    x = torch.full((1, P + L), MASK, dtype=torch.long)
    x[0, :P] = torch.tensor(prompt, dtype=torch.long)
    prompt_index = x != MASK
    per_block = steps // (L // B)
    counts = parse_schedule(schedule).counts(B, per_block).tolist()
    for b in range(L // B):
        for k in counts:
            mask_index = x == MASK
            if cfg_scale > 0:
                un_x = x.clone()
                un_x[prompt_index] = MASK
                cond, un = model(torch.cat([x, un_x])).chunk(2)
                logits = un + (cfg_scale + 1) * (cond - un)
            else:
                logits = model(x)
            logits = logits.clone()
            logits[..., MASK] = float("-inf")
            x0 = logits.argmax(-1)
            p = torch.softmax(logits.double(), -1)
            if remasking == "low_confidence":
                score = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            elif remasking == "least_confident":  # not a rule of ours: the sensitivity check below
                score = -p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            elif remasking == "margin":
                top = p.topk(2, -1).values
                score = top[..., 0] - top[..., 1]
            else:  # entropy: the lowest entropy first
                score = (p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)
            score[:, P + (b + 1) * B:] = float("-inf")
            confidence = torch.where(mask_index, score, torch.tensor(float("-inf"), dtype=torch.float64))
            if k == 0:
                continue
            for row in range(x.shape[0]):  # LLaDA's per-row top-k
                chosen = torch.topk(confidence[row], k=k).indices
                x[row, chosen] = x0[row, chosen]
    return x[0, P:].tolist()


CASES = [
    ("linear", "low_confidence", None, 0.0),
    ("beta:0.9,0.3", "low_confidence", None, 0.0),
    ("linear", "low_confidence", 4, 0.0),
    ("sin2", "low_confidence", 4, 1.5),
    ("linear", "margin", None, 0.0),
    ("beta:1,0.2", "margin", 4, 0.0),
    ("linear", "entropy", None, 0.0),
    ("sin2", "entropy", 4, 1.0),
]


@pytest.mark.parametrize("schedule,remasking,block_length,cfg_scale", CASES)
def test_batched_sampler_equals_the_reference_row_by_row(schedule, remasking, block_length, cfg_scale):
    model = PositionFromMask(seed=1)
    den = CallableDenoiser(lambda t, am=None: model(t, am), mask_id=MASK, vocab_size=V)
    prompts = [[5], [7, 3, 12], [9, 9, 4, 21, 6]]  # different lengths: one left-padded batch
    sampler = FixedCountSampler(schedule, 4, remasking=remasking, block_length=block_length, cfg_scale=cfg_scale)
    out = sampler(den, prompts, 8, pad_id=PAD)
    for row, prompt in enumerate(prompts):
        expected = reference_generate(model, prompt, 8, 4, schedule, remasking, block_length, cfg_scale)
        assert out.generated[row].tolist() == expected, (row, prompt)


@pytest.mark.parametrize("schedule,block_length,cfg_scale", [("linear", None, 0.0), ("sin2", 4, 1.5)])
def test_the_output_depends_on_which_positions_are_committed(schedule, block_length, cfg_scale):
    """Committing the least confident positions instead gives other tokens here, so the agreement above
    is not an accident of a model whose answer ignores the order."""
    model = PositionFromMask(seed=1)
    for prompt in ([7, 3, 12], [9, 9, 4, 21, 6]):
        best = reference_generate(model, prompt, 8, 4, schedule, "low_confidence", block_length, cfg_scale)
        worst = reference_generate(model, prompt, 8, 4, schedule, "least_confident", block_length, cfg_scale)
        assert best != worst
