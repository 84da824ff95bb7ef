r"""DUS, the Dilated Unmasking Scheduler ("Plan for Speed: Dilated Scheduling for Masked Diffusion Language Models",
Luxembourg, Permuter & Nachmani 2025): each block is revealed in dilated groups of positions far apart, one
group per model call, every masked position of the group at once.

**The rule** (``dus``). A block of :math:`B` positions is split into the groups
:math:`G_1, \dots, G_K` of :func:`~mdm_energy.dilation.dilated_groups` (base :math:`a` = ``dilation``, skip
:math:`e` = ``dilation_skip``; for :math:`B = 2^m`, :math:`a = 2`: :math:`K = \log_2 B` groups of sizes
:math:`2, 2, 4, \dots, B/2`). Call :math:`k` of the block draws a candidate :math:`\hat x_t` for every masked
:math:`t \in G_k` (argmax at temperature 0, a Gumbel-max draw from the row's own stream otherwise) and commits
all of them: nothing is ranked, the groups are fixed by :math:`B, a, e` alone, before the model is called.
So every block costs :math:`K` calls (fewer for a row that stops at an end token), and the whole window
:math:`(G/B)\,K`. A dilation whose first stride :math:`\lfloor B/a^e \rfloor` is 0 is refused.

**The schedule-driven variant** (``dus-schedule``). The block's dilated order
:math:`o = G_1 \Vert G_2 \Vert \dots \Vert G_K` (:func:`~mdm_energy.dilation.dilated_order`) is cut by the
schedule's counts :math:`c_1, \dots, c_N` for the block (``schedule``, ``steps`` split evenly over blocks):
step :math:`k` commits the positions :math:`o[C_{k-1} : C_k]`, :math:`C_k = \sum_{m \le k} c_m`. A step whose
count is 0 makes no model call (it is left out of the plan, so a block runs at most :math:`B` steps). With counts :math:`|G_1|, \dots, |G_K|` it is ``dus``.

Because the positions of each step never depend on the model, the output law at temperature 1 is that of a
fixed reveal order: every token of step :math:`k` is drawn from the model's conditional given what the
earlier steps revealed, independently of the others of its step (the exact law ``fixed-order``,
:func:`mdm_energy.exact.law_fixed_order`).

Guidance is LLaDA's (the unconditional half masks the prompt); the authors' code masks every unmasked token
there instead, and its optional confidence re-masking (tokens of a group below a threshold masked again, and
never filled again) is not offered. Key/value caches apply as for every block-wise sampler.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..dilation import check_dilation, dilated_groups, dilated_order, order_groups
from .base import Block, Decision, Plan, RunState, Sampler, ScheduledSampler, Step

__all__ = ["DusSampler", "DusScheduleSampler"]


class DusSampler(Sampler):
    """DUS: each call of a block commits every masked position of its next dilated group (module docstring)."""

    name = "dus"
    dilation: int
    dilation_skip: int

    def __init__(self, *args, **options) -> None:
        super().__init__(*args, **options)
        if self.block_length is not None:
            check_dilation(self.block_length, self.dilation, self.dilation_skip)

    def groups(self, block_length: int, num_blocks: int) -> list[list[int]]:
        """The offsets each step of a block commits, in order (every block uses the same)."""
        return dilated_groups(block_length, self.dilation, self.dilation_skip)

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """The size of each step's group (the dilation is checked against the block here, before any call)."""
        return Plan(counts=tuple(len(g) for g in self.groups(gen_length // num_blocks, num_blocks)))

    def need(self, run: RunState, block: Block, masked: Tensor) -> Tensor:
        """The rows with a masked position in this step's group (none at an empty step: no call)."""
        if block.scratch is None:  # each position's step in this block (-1 outside it)
            step_of = torch.full(block.positions.shape, -1, dtype=torch.long, device=masked.device)
            num_blocks = run.canvas.length // block.length
            for k, group in enumerate(self.groups(block.length, num_blocks)):
                if group:
                    step_of[torch.tensor(group, device=masked.device) + block.lo] = k
            block.scratch = step_of
        return (masked & (block.scratch == block.step)).any(-1)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        where = masked & (block.scratch == block.step)
        cand, _ = self.candidates(run, step, where, None)
        return Decision(where, cand)


class DusScheduleSampler(ScheduledSampler, DusSampler):
    """DUS's dilated order, cut by the schedule's counts: step k commits the next ``c_k`` positions of the order
    (module docstring); a zero-count step makes no model call."""

    name = "dus-schedule"

    def groups(self, block_length: int, num_blocks: int) -> list[list[int]]:
        """The offsets each step of a block commits: the dilated order cut by the schedule's non-zero counts.
        A zero-count step commits nothing and makes no call, so leaving it out of the plan changes neither the
        tokens, the random streams nor the NFE; it keeps ``-N 100000`` from looping over empty steps."""
        counts = [c for c in self.block_counts(block_length * num_blocks, num_blocks) if c]
        return order_groups(dilated_order(block_length, self.dilation, self.dilation_skip), counts)
