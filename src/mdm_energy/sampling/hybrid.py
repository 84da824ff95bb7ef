r"""Schedule-aware adaptive samplers: a mask schedule and a confidence threshold working together.

Adaptive decoding (Fast-dLLM's threshold) decides how many tokens to commit from the model's confidence;
a schedule fixes them in advance. These samplers combine the two, with the schedule's cumulative counts
:math:`C_k = \sum_{m \le k} c_m` (per block, docs/design.md §2) and a row's revealed count :math:`r`:

* :class:`ThresholdFloorSampler` — the schedule as a **floor**: call :math:`k` commits the
  :math:`\max(1, C_k - r)` most confident candidates *and* every candidate whose probability clears the
  threshold. It never makes more than ``steps`` calls (the last step's floor is everything left) and makes
  fewer when confident tokens run ahead of the schedule. At ``threshold = 1`` it is the fixed-count
  sampler with ``low_confidence`` remasking (unless a candidate is certain).
* :class:`ThresholdCapSampler` — the schedule as a **ceiling**: call :math:`k` commits the candidates that
  clear the threshold, at least one, but at most :math:`\max(1, C_k - r)` (after ``steps`` calls, no
  ceiling), so early calls cannot over-commit. At ``threshold = 0`` it is the fixed-count sampler.
* :class:`EntropyFloorSampler` — the schedule as a floor under the **entropy bound** (EB-Sampler): call
  :math:`k` commits the :math:`\max(n_\varepsilon, C_k - r)` lowest-entropy masked positions, where
  :math:`n_\varepsilon \ge 1` is the largest sorted prefix with :math:`\sum H - \max H \le \varepsilon`. At
  ``epsilon = 0`` it is the fixed-count sampler with ``entropy`` remasking (unless entropies are zero, or the
  schedule has a step that commits nothing: the floor commits at least one).
* :class:`ThresholdCountSampler` — the schedule's **per-step** count as a floor (LLaDA 2.x's ``generate``,
  SDAR's ``low_confidence_dynamic``): call :math:`k` commits every candidate whose probability is *above*
  the threshold when at least :math:`c_k` of them are, else the :math:`c_k` most confident — i.e. the
  :math:`\max(c_k, n_k)` most confident, :math:`n_k` the number above the threshold. Unlike the floor above it
  does not catch up with the cumulative count: a call that ran ahead does not lower the next call's count.

Candidates and confidences are LLaDA's (the probability of the drawn candidate, untempered).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step
from .ops import entropy_bound_count, select_top_k

__all__ = ["ThresholdFloorSampler", "ThresholdCapSampler", "EntropyFloorSampler", "ThresholdCountSampler"]


class ScheduledThresholdSampler(ScheduledSampler):
    """A threshold rule with the schedule's cumulative counts :math:`C_k` of one block's steps."""

    threshold: float

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        return Plan(counts=self.block_counts(gen_length, num_blocks))

    def _limit(self, masked: Tensor, block: Block, target: int) -> Tensor:
        """``max(1, C_k - r)`` per row: the schedule's cumulative count less what the row has revealed."""
        revealed = block.length - masked.sum(-1)
        return (target - revealed).clamp(min=1)


class ThresholdFloorSampler(ScheduledThresholdSampler):
    """The schedule as a floor under the threshold rule (see the module docstring)."""

    name = "threshold-floor"

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        floor = select_top_k(conf, self._limit(masked, block, run.plan.cumulative[block.step]))
        return Decision((floor | (conf >= self.threshold)) & masked, cand)


class ThresholdCapSampler(ScheduledThresholdSampler):
    """The threshold rule under the schedule as a ceiling (see the module docstring)."""

    name = "threshold-cap"

    def block_steps(self, run: RunState, block: Block) -> int:
        return block.length  # at least one token per row per call: block_len calls suffice

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        passing = (masked & (conf >= self.threshold)).sum(-1).clamp(min=1)
        cumulative = run.plan.cumulative
        if block.step < len(cumulative):
            passing = torch.minimum(passing, self._limit(masked, block, cumulative[block.step]))
        return Decision(select_top_k(conf, passing) & masked, cand)


class EntropyFloorSampler(ScheduledThresholdSampler):
    """The schedule as a floor under the entropy bound (see the module docstring)."""

    name = "entropy-floor"
    epsilon: float

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, neg_entropy = self.candidates(run, step, masked, "entropy")
        bounded = entropy_bound_count(-neg_entropy, self.epsilon)  # -neg_entropy is +inf where not eligible
        floor = self._limit(masked, block, run.plan.cumulative[block.step])
        return Decision(select_top_k(neg_entropy, torch.maximum(bounded, floor)) & masked, cand)


class ThresholdCountSampler(ScheduledThresholdSampler):
    """The step's own count as a floor under a strict threshold (see the module docstring).

    With a count larger than what is masked (a block-causal model's first block, which holds the prompt's last
    tokens) every masked position is committed. A zero-count step still calls the model and commits what clears
    the threshold, as the authors' loop does."""

    name = "threshold-count"

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        above = (masked & (conf > self.threshold)).sum(-1)
        count = torch.full_like(above, run.plan.counts[block.step])
        return Decision(select_top_k(conf, torch.maximum(count, above)) & masked, cand)
