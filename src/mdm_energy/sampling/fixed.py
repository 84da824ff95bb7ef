"""LLaDA's fixed-count sampler: each step commits exactly the schedule's count of candidates (docs/design.md §4).

Step :math:`k` draws a candidate for every masked position of the current block and commits exactly
``counts[k]`` of them (the schedule's counts, docs/design.md §2), chosen by a remasking rule: ``random``,
``low_confidence`` (the candidate's probability), ``margin`` (top-1 minus top-2) or ``entropy``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step
from .ops import select_top_k

__all__ = ["FixedCountSampler"]


class FixedCountSampler(ScheduledSampler):
    """LLaDA-style fixed counts per step, with ``random``/``low_confidence``/``margin``/``entropy`` remasking.

    With ``skip_empty_steps`` a step whose count is zero makes no model call (by default it still does,
    as LLaDA would, and the NFE says so) — except when a block has more steps than positions: then its
    zero-count steps are dropped from the plan whatever ``skip_empty_steps`` says, with one warning (the rule
    of :meth:`~mdm_energy.sampling.base.ScheduledSampler.block_counts`; with a key/value cache the refresh
    points then follow the calls made). Defaults follow LLaDA: ``low_confidence``, temperature 0.
    """

    name = "fixed"
    remasking: str
    skip_empty_steps: bool

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """The counts of one block's steps (every block uses the same); more steps than positions are capped
        by the rule of :meth:`~mdm_energy.sampling.base.ScheduledSampler.block_counts`."""
        return Plan(counts=self.block_counts(gen_length, num_blocks, cap=True))

    def need(self, run: RunState, block: Block, masked: Tensor) -> Tensor:
        """Rows with something masked; at a zero-count step every active row (LLaDA still calls the model),
        or none with ``skip_empty_steps``."""
        count = run.plan.counts[block.step]
        if count == 0:
            return torch.zeros_like(run.active) if self.skip_empty_steps else run.active
        return masked.any(-1)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        count = run.plan.counts[block.step]
        if count == 0:  # a zero-token step: the call was made (and counted), and reported as committing nothing
            return Decision(torch.zeros_like(masked), run.canvas.x[step.rows])
        k = masked.sum(-1).clamp(max=count)
        if self.remasking == "random" and not self.confidence_eos_eot_inf:
            # positions are chosen independently of the candidates: draw candidates only for them
            keys = run.rng.uniform(step.rows, (masked.shape[1],))
            chosen = select_top_k(torch.where(masked, keys, float("-inf")), k)
            cand, _ = self.candidates(run, step, chosen, None)
        else:
            cand, score = self.candidates(run, step, masked, self.remasking)
            chosen = select_top_k(score, k)
        return Decision(chosen, cand)
