r"""Random-position samplers: each masked position is revealed independently with the step's probability.

:class:`AncestralSampler` (MDLM/MD4) and :class:`EulerSampler` (flow_matching's mixture Euler rule) take
:math:`\pi_k` from :func:`~mdm_energy.reveal.reveal_probabilities`, and the value of a revealed position is
drawn from the model. Which positions reveal is decided before the model is called, so a step that reveals
nothing costs no model call.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..reveal import reveal_probabilities
from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step

__all__ = ["RandomRevealSampler", "AncestralSampler", "EulerSampler"]


class RandomRevealSampler(ScheduledSampler):
    """Each masked position of the block is revealed at step k with probability pi_k, independently, by the
    reveal rule ``reveal_rule`` (:data:`~mdm_energy.reveal.REVEAL_RULES`)."""

    reveal_rule: ClassVar[str] = "ancestral"

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """The reveal probabilities of one block's steps."""
        pi = reveal_probabilities(self.schedule, self._steps_per_block(num_blocks), self.reveal_rule)
        return Plan(reveal=tuple(pi.tolist()))

    def need(self, run: RunState, block: Block, masked: Tensor) -> Tensor:
        """Draw which masked positions reveal now; only rows revealing something need the model."""
        pi = run.plan.reveal[block.step]
        rows = masked.any(-1).nonzero(as_tuple=True)[0]
        if pi >= 1.0:
            reveal = masked[rows]
        else:
            reveal = masked[rows] & (run.rng.uniform(rows, (masked.shape[1],)) < pi)
        need = torch.zeros_like(run.active)
        need[rows[reveal.any(-1)]] = True
        block.scratch = (rows, reveal)
        return need

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        rows, reveal = block.scratch
        where = reveal[torch.searchsorted(rows, step.rows)]
        cand, _ = self.candidates(run, step, where, None)
        return Decision(where, cand)


class AncestralSampler(RandomRevealSampler):
    r"""MDLM/MD4 ancestral sampling: :math:`\pi_k = (\alpha_k - \alpha_{k-1})/(1-\alpha_{k-1})`, values
    drawn from the model at ``temperature`` (default 1, the model's own law)."""

    name = "ancestral"
    reveal_rule = "ancestral"


class EulerSampler(RandomRevealSampler):
    r"""flow_matching's mixture Euler rule: :math:`\pi_k = 1 - \exp(-h\,\dot\alpha/(1-\alpha))` at
    :math:`t_{k-1}`, and the last step reveals everything."""

    name = "euler"
    reveal_rule = "euler"
