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

Candidates and confidences are LLaDA's (the probability of the drawn candidate, untempered).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..schedules import Schedule
from .base import _RunState
from .ops import select_top_k
from .samplers import _Scheduled, candidates_at

__all__ = ["ThresholdFloorSampler", "ThresholdCapSampler"]


class _ScheduledThreshold(_Scheduled):
    def __init__(self, schedule: "Schedule | str" = "linear", steps: int = 64, threshold: float = 0.9,
                 temperature: float = 0.0, block_length: "int | None" = None, cfg_scale: float = 0.0,
                 logits_eos_inf: bool = False, suppress_tokens: tuple = (), stop_at_eos: bool = False,
                 cache: str = "none", cache_refresh: "int | None" = None, confidence_eos_eot_inf: bool = False) -> None:
        super().__init__(schedule=schedule, steps=steps, threshold=threshold, temperature=temperature,
                         block_length=block_length, cfg_scale=cfg_scale, logits_eos_inf=logits_eos_inf,
                         suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos, cache=cache,
                         cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _plan(self, gen_length: int, num_blocks: int) -> list[int]:
        """The cumulative counts :math:`C_k` of one block's steps."""
        per_block = self._steps_per_block(num_blocks)
        return np.cumsum(self.schedule.counts(gen_length // num_blocks, per_block)).tolist()

    def _limit(self, run: _RunState, masked: Tensor, block_len: int, target: int) -> Tensor:
        """``max(1, C_k - r)`` per row: the schedule's cumulative count less what the row has revealed."""
        revealed = block_len - masked.sum(-1)
        return (target - revealed).clamp(min=1)


class ThresholdFloorSampler(_ScheduledThreshold):
    """The schedule as a floor under the threshold rule (see the module docstring)."""

    name = "threshold-floor"

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for target in run.plan:
            masked_all = self._masked(run, in_block)
            step = self._call(run, masked_all.any(-1))
            if step is None:
                return  # every row is done: the calls left are saved
            masked = masked_all[step.rows]
            cand, conf = candidates_at(self, run, step, masked, "low_confidence")
            floor = select_top_k(conf, self._limit(run, masked, block_len, target))
            self._commit(run, step, (floor | (conf >= self.threshold)) & masked, cand)


class ThresholdCapSampler(_ScheduledThreshold):
    """The threshold rule under the schedule as a ceiling (see the module docstring)."""

    name = "threshold-cap"

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for k in range(block_len):  # at least one token per row per call: block_len calls suffice
            masked_all = self._masked(run, in_block)
            step = self._call(run, masked_all.any(-1))
            if step is None:
                return
            masked = masked_all[step.rows]
            cand, conf = candidates_at(self, run, step, masked, "low_confidence")
            passing = (masked & (conf >= self.threshold)).sum(-1).clamp(min=1)
            if k < len(run.plan):
                passing = torch.minimum(passing, self._limit(run, masked, block_len, run.plan[k]))
            self._commit(run, step, select_top_k(conf, passing) & masked, cand)
