r"""The samplers of docs/design.md §4: schedule-driven (fixed-count, ancestral, Euler) and adaptive baselines.

Names, options and defaults come from :mod:`mdm_energy.registry`, the one sampler vocabulary.

* :class:`FixedCountSampler` — LLaDA's ``generate``: step :math:`k` draws a candidate for every masked
  position of the current block and commits exactly ``counts[k]`` of them (the schedule's counts,
  docs/design.md §2), chosen by a remasking rule.
* :class:`AncestralSampler` (MDLM/MD4) and :class:`EulerSampler` (flow_matching's mixture Euler rule)
  — each masked position is revealed independently with the step's probability :math:`\pi_k`
  (:func:`~mdm_energy.reveal.reveal_probabilities`), its value drawn from the model. Which positions
  reveal is decided before the model is called, so a step that reveals nothing costs no model call.
* :class:`ThresholdSampler` (Fast-dLLM) and :class:`EntropyBoundedSampler` (EB-Sampler) — not
  schedule-driven: each call commits as many tokens as a confidence rule allows, at least one.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..registry import sampler_names, sampler_options
from ..reveal import reveal_probabilities
from ..schedules import Schedule
from .base import Sampler, _RunState, steps_per_block
from .ops import confidence_scores, draw_candidates, select_top_k

__all__ = [
    "FixedCountSampler",
    "AncestralSampler",
    "EulerSampler",
    "ThresholdSampler",
    "EntropyBoundedSampler",
    "SAMPLER_CLASSES",
    "make_sampler",
]


def _candidates_at(sampler: Sampler, run: _RunState, logits: Tensor, where: Tensor, rule: "str | None"):
    """Candidates (and scores, if ``rule``) at the positions ``where``, scattered to ``(B, T)`` tensors."""
    flat, lse = sampler._rows(run, logits, where)  # (M, V): only the positions this step may commit
    cand = draw_candidates(flat, sampler.temperature, run.generator)
    cand_full = torch.zeros(where.shape, dtype=torch.long, device=where.device)
    cand_full[where] = cand
    if rule is None:
        return cand_full, None
    score_full = torch.full(where.shape, float("-inf"), dtype=torch.float64, device=where.device)
    score_full[where] = confidence_scores(flat, cand, rule, run.generator, lse)
    return cand_full, score_full


class _Scheduled(Sampler):
    """A sampler driven by a mask schedule and a number of steps (per run, split evenly over blocks)."""

    schedule: Schedule
    steps: int

    def _steps_per_block(self, num_blocks: int) -> int:
        return steps_per_block(self.steps, num_blocks)


class FixedCountSampler(_Scheduled):
    """LLaDA-style fixed counts per step, with ``random``/``low_confidence``/``margin``/``entropy`` remasking.

    With ``skip_empty_steps`` a step whose count is zero makes no model call (by default it still does,
    as LLaDA would, and the NFE says so). Defaults follow LLaDA: ``low_confidence``, temperature 0.
    """

    name = "fixed"

    def __init__(
        self,
        schedule: "Schedule | str" = "linear",
        steps: int = 64,
        remasking: str = "low_confidence",
        temperature: float = 0.0,
        block_length: "int | None" = None,
        cfg_scale: float = 0.0,
        skip_empty_steps: bool = False,
    ) -> None:
        super().__init__(schedule=schedule, steps=steps, remasking=remasking, temperature=temperature,
                         block_length=block_length, cfg_scale=cfg_scale, skip_empty_steps=skip_empty_steps)

    def _plan(self, gen_length: int, num_blocks: int) -> list[int]:
        """The counts of one block's steps (every block uses the same)."""
        per_block = self._steps_per_block(num_blocks)
        block_len = gen_length // num_blocks
        if per_block > block_len:
            warnings.warn(f"{per_block} steps per block for {block_len} positions: some steps unmask nothing", stacklevel=4)
        return self.schedule.counts(block_len, per_block).tolist()

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for count in run.plan:
            if count == 0 and self.skip_empty_steps:
                continue
            masked = self._masked(run, in_block)
            logits = self._logits(run, masked.any(-1) if count else torch.ones_like(masked[:, 0]))
            if count == 0:
                continue  # a zero-token step: the call was made (and counted), nothing is committed
            k = masked.sum(-1).clamp(max=count)
            if self.remasking == "random":
                # positions are chosen independently of the candidates: draw candidates only for them
                keys = torch.rand(masked.shape, dtype=torch.float64, device=masked.device, generator=run.generator)
                chosen = select_top_k(torch.where(masked, keys, float("-inf")), k)
                cand, _ = _candidates_at(self, run, logits, chosen, None)
            else:
                cand, score = _candidates_at(self, run, logits, masked, self.remasking)
                chosen = select_top_k(score, k)
            self._commit(run, chosen, cand[chosen])


class _RandomReveal(_Scheduled):
    """Each masked position of the block is revealed at step k with probability pi_k, independently."""

    def __init__(self, schedule: "Schedule | str" = "linear", steps: int = 64, temperature: float = 1.0,
                 block_length: "int | None" = None, cfg_scale: float = 0.0) -> None:
        super().__init__(schedule=schedule, steps=steps, temperature=temperature, block_length=block_length,
                         cfg_scale=cfg_scale)

    def _plan(self, gen_length: int, num_blocks: int) -> list[float]:
        """The reveal probabilities of one block's steps."""
        return reveal_probabilities(self.schedule, self._steps_per_block(num_blocks), self.name).tolist()

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for pi in run.plan:
            masked = self._masked(run, in_block)
            if pi >= 1.0:
                reveal = masked
            else:
                u = torch.rand(masked.shape, dtype=torch.float64, device=masked.device, generator=run.generator)
                reveal = masked & (u < pi)
            if not reveal.any():
                continue  # nothing to reveal: the model output would be unused
            logits = self._logits(run, reveal.any(-1))
            cand, _ = _candidates_at(self, run, logits, reveal, None)
            self._commit(run, reveal, cand[reveal])


class AncestralSampler(_RandomReveal):
    r"""MDLM/MD4 ancestral sampling: :math:`\pi_k = (\alpha_k - \alpha_{k-1})/(1-\alpha_{k-1})`, values
    drawn from the model at ``temperature`` (default 1, the model's own law)."""

    name = "ancestral"


class EulerSampler(_RandomReveal):
    r"""flow_matching's mixture Euler rule: :math:`\pi_k = 1 - \exp(-h\,\dot\alpha/(1-\alpha))` at
    :math:`t_{k-1}`, and the last step reveals everything."""

    name = "euler"


class _Adaptive(Sampler):
    """Calls the model until the block is unmasked, committing at least one token per row per call."""

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for _ in range(block_len):  # at least one token per row per call: block_len calls suffice
            masked = self._masked(run, in_block)
            if not masked.any():
                return
            logits = self._logits(run, masked.any(-1))
            commit, cand = self._choose(run, logits, masked)
            self._commit(run, commit, cand[commit])

    def _choose(self, run: _RunState, logits: Tensor, masked: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class ThresholdSampler(_Adaptive):
    """Fast-dLLM's confidence threshold: commit every masked position whose candidate has probability
    >= ``threshold``, and always at least the most confident one."""

    name = "threshold"

    def __init__(self, threshold: float = 0.9, temperature: float = 0.0, block_length: "int | None" = None,
                 cfg_scale: float = 0.0) -> None:
        super().__init__(threshold=threshold, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale)

    def _choose(self, run: _RunState, logits: Tensor, masked: Tensor) -> tuple[Tensor, Tensor]:
        cand, conf = _candidates_at(self, run, logits, masked, "low_confidence")
        best = select_top_k(conf, torch.ones(masked.shape[0], dtype=torch.long, device=masked.device))
        return (masked & (conf >= self.threshold)) | best, cand


class EntropyBoundedSampler(_Adaptive):
    r"""EB-Sampler: sort masked positions by entropy (ascending, ties to the lower position) and commit
    the largest prefix whose entropies satisfy :math:`\sum H - \max H \le \varepsilon` (at least one)."""

    name = "entropy-bounded"

    def __init__(self, epsilon: float = 0.1, temperature: float = 0.0, block_length: "int | None" = None,
                 cfg_scale: float = 0.0) -> None:
        super().__init__(epsilon=epsilon, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale)

    def _choose(self, run: _RunState, logits: Tensor, masked: Tensor) -> tuple[Tensor, Tensor]:
        cand, neg_entropy = _candidates_at(self, run, logits, masked, "entropy")
        entropy = -neg_entropy  # +inf where not eligible
        order = torch.sort(entropy, dim=-1, stable=True)
        sorted_h = order.values
        before = torch.cumsum(torch.nan_to_num(sorted_h, posinf=0.0), dim=-1) - torch.nan_to_num(sorted_h, posinf=0.0)
        ok = torch.isfinite(sorted_h) & (before <= self.epsilon + 1e-12)  # sum of the earlier (smaller) entropies
        k = ok.sum(-1).clamp_min(1)
        return select_top_k(neg_entropy, k) & masked, cand


#: The torch class of every sampler of the registry.
SAMPLER_CLASSES: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (FixedCountSampler, AncestralSampler, EulerSampler, ThresholdSampler, EntropyBoundedSampler)
}
assert set(SAMPLER_CLASSES) == set(sampler_names()), "every registry sampler needs a torch class"


def make_sampler(name: str, **options) -> Sampler:
    """A sampler by its registry name (:mod:`mdm_energy.registry`) with ``options``; an option the sampler
    does not take raises ``ValueError`` naming it (nothing is silently ignored)."""
    sampler_options(name, **options)  # unknown names and options: the registry's message
    return SAMPLER_CLASSES[name](**options)
