r"""Adaptive samplers: each call commits as many tokens as a confidence rule allows, at least one per row.

Not schedule-driven: :class:`ThresholdSampler` and :class:`FactorSampler` (Fast-dLLM) and
:class:`EntropyBoundedSampler` (EB-Sampler). At least one token per row per call, so a block of length
:math:`B` takes at most :math:`B` calls.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Block, Decision, RunState, Sampler, Step
from .ops import entropy_bound_count, select_top_k

__all__ = ["ThresholdSampler", "EntropyBoundedSampler", "FactorSampler", "best_one"]


def best_one(conf: Tensor) -> Tensor:
    """``(R, T)``: each row's single most confident position."""
    return select_top_k(conf, torch.ones(conf.shape[0], dtype=torch.long, device=conf.device))


class ThresholdSampler(Sampler):
    """Fast-dLLM's confidence threshold: commit every masked position whose candidate has probability
    >= ``threshold``, and always at least the most confident one."""

    name = "threshold"
    threshold: float

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        return Decision((masked & (conf >= self.threshold)) | best_one(conf), cand)


class FactorSampler(Sampler):
    r"""Fast-dLLM's factor rule: with the masked positions' confidences sorted, :math:`c_1 \ge c_2 \ge \dots`,
    commit the longest prefix in which every :math:`c_n` (:math:`n \ge 2`) satisfies :math:`(n + 1)(1 - c_n)
    \le f` — the more tokens committed together, the surer each must be — and always the first.

    (Fast-dLLM's code also commits the whole block when only its last candidate fails the test; this class
    follows the rule as stated.)"""

    name = "factor"
    factor: float

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        ranked = torch.sort(conf, dim=-1, descending=True, stable=True).values  # -inf (not masked) last
        n = torch.arange(1, conf.shape[1] + 1, device=conf.device, dtype=torch.float64)
        ok = torch.isfinite(ranked) & ((n + 1) * (1.0 - ranked) <= self.factor)
        ok[:, 0] = torch.isfinite(ranked[:, 0])
        k = ok.long().cumprod(-1).sum(-1).clamp_min(1)  # the longest prefix of passes, at least one
        return Decision(select_top_k(conf, k) & masked, cand)


class EntropyBoundedSampler(Sampler):
    r"""EB-Sampler: sort masked positions by entropy (ascending, ties to the lower position) and commit
    the largest prefix whose entropies satisfy :math:`\sum H - \max H \le \varepsilon` (at least one)."""

    name = "entropy-bounded"
    epsilon: float

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        cand, neg_entropy = self.candidates(run, step, masked, "entropy")
        k = entropy_bound_count(-neg_entropy, self.epsilon)  # -neg_entropy is +inf where not eligible
        return Decision(select_top_k(neg_entropy, k) & masked, cand)
