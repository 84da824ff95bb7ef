r"""The samplers of docs/design.md §4: schedule-driven (fixed-count, ancestral, Euler) and adaptive ones.

Names, options and defaults come from :mod:`mdm_energy.registry`, the one sampler vocabulary.

* :class:`FixedCountSampler` — LLaDA's ``generate``: step :math:`k` draws a candidate for every masked
  position of the current block and commits exactly ``counts[k]`` of them (the schedule's counts,
  docs/design.md §2), chosen by a remasking rule.
* :class:`AncestralSampler` (MDLM/MD4) and :class:`EulerSampler` (flow_matching's mixture Euler rule)
  — each masked position is revealed independently with the step's probability :math:`\pi_k`
  (:func:`~mdm_energy.reveal.reveal_probabilities`), its value drawn from the model. Which positions
  reveal is decided before the model is called, so a step that reveals nothing costs no model call.
* :class:`ThresholdSampler` and :class:`FactorSampler` (Fast-dLLM) and :class:`EntropyBoundedSampler`
  (EB-Sampler) — not schedule-driven: each call commits as many tokens as a confidence rule allows, at
  least one. Dream's algorithms are :class:`~mdm_energy.sampling.dream.DreamSampler`.

Each ``_fill_block`` is a short loop: pick the rows that need a model call, call it once, choose
candidates and positions for those rows, commit.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..registry import sampler_names, sampler_options
from ..reveal import reveal_probabilities
from ..schedules import Schedule
from .base import Sampler, Step, _RunState, steps_per_block
from .ops import confidence_scores, draw_candidates, select_top_k

__all__ = [
    "FixedCountSampler",
    "AncestralSampler",
    "EulerSampler",
    "ThresholdSampler",
    "EntropyBoundedSampler",
    "FactorSampler",
    "DreamSampler",
    "ThresholdFloorSampler",
    "ThresholdCapSampler",
    "SAMPLER_CLASSES",
    "make_sampler",
]


def candidates_at(sampler: Sampler, run: _RunState, step: Step, where: Tensor, rule: "str | None"):
    """Candidates (and scores by ``rule``, if given) at the positions ``where`` ``(R, T)`` of the step's rows,
    as ``(R, T)`` tensors; scores are -inf elsewhere. Random draws come from each row's own stream."""
    flat, lse = sampler._rows(run, step, where)  # (M, V): only the positions this step may commit
    counts = where.sum(1)

    def uniform(width: int) -> Tensor:
        return run.rng.segments(step.rows, counts, width)

    cand = draw_candidates(flat, sampler.temperature, uniform)
    cand_full = torch.zeros(where.shape, dtype=torch.long, device=where.device)
    cand_full[where] = cand
    if rule is None:
        return cand_full, None
    scores = sampler._last_resort(run, cand, confidence_scores(flat, cand, rule, uniform, lse))
    score_full = torch.full(where.shape, float("-inf"), dtype=torch.float64, device=where.device)
    score_full[where] = scores
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
        logits_eos_inf: bool = False,
        suppress_tokens: tuple = (),
        stop_at_eos: bool = False,
        cache: str = "none",
        cache_refresh: "int | None" = None,
        confidence_eos_eot_inf: bool = False,
        skip_empty_steps: bool = False,
    ) -> None:
        super().__init__(schedule=schedule, steps=steps, remasking=remasking, temperature=temperature,
                         block_length=block_length, cfg_scale=cfg_scale, logits_eos_inf=logits_eos_inf,
                         suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos, cache=cache,
                         cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf,
                         skip_empty_steps=skip_empty_steps)

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
            masked_all = self._masked(run, in_block)
            step = self._call(run, masked_all.any(-1) if count else run.active)
            if step is None:
                continue  # nobody needed a call
            masked = masked_all[step.rows]
            if count == 0:  # a zero-token step: the call was made (and counted), and reported as committing nothing
                self._commit(run, step, torch.zeros_like(masked), run.canvas.x[step.rows])
                continue
            k = masked.sum(-1).clamp(max=count)
            if self.remasking == "random" and not self.confidence_eos_eot_inf:
                # positions are chosen independently of the candidates: draw candidates only for them
                keys = run.rng.uniform(step.rows, (masked.shape[1],))
                chosen = select_top_k(torch.where(masked, keys, float("-inf")), k)
                cand, _ = candidates_at(self, run, step, chosen, None)
            else:
                cand, score = candidates_at(self, run, step, masked, self.remasking)
                chosen = select_top_k(score, k)
            self._commit(run, step, chosen, cand)


class _RandomReveal(_Scheduled):
    """Each masked position of the block is revealed at step k with probability pi_k, independently."""

    def __init__(self, schedule: "Schedule | str" = "linear", steps: int = 64, temperature: float = 1.0,
                 block_length: "int | None" = None, cfg_scale: float = 0.0, logits_eos_inf: bool = False,
                 suppress_tokens: tuple = (), stop_at_eos: bool = False, cache: str = "none",
                 cache_refresh: "int | None" = None) -> None:
        super().__init__(schedule=schedule, steps=steps, temperature=temperature, block_length=block_length,
                         cfg_scale=cfg_scale, logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens,
                         stop_at_eos=stop_at_eos, cache=cache, cache_refresh=cache_refresh)

    def _plan(self, gen_length: int, num_blocks: int) -> list[float]:
        """The reveal probabilities of one block's steps."""
        return reveal_probabilities(self.schedule, self._steps_per_block(num_blocks), self.name).tolist()

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for pi in run.plan:
            masked = self._masked(run, in_block)
            rows = masked.any(-1).nonzero(as_tuple=True)[0]
            if pi >= 1.0:
                reveal = masked[rows]
            else:
                reveal = masked[rows] & (run.rng.uniform(rows, (masked.shape[1],)) < pi)
            need = torch.zeros_like(run.active)
            need[rows[reveal.any(-1)]] = True
            step = self._call(run, need)
            if step is None:
                continue  # nothing to reveal: the model output would be unused
            where = reveal[torch.searchsorted(rows, step.rows)]
            cand, _ = candidates_at(self, run, step, where, None)
            self._commit(run, step, where, cand)


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

    def __init__(self, temperature: float = 0.0, block_length: "int | None" = None, cfg_scale: float = 0.0,
                 logits_eos_inf: bool = False, suppress_tokens: tuple = (), stop_at_eos: bool = False,
                 cache: str = "none", cache_refresh: "int | None" = None, confidence_eos_eot_inf: bool = False,
                 **rule) -> None:
        super().__init__(**rule, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale,
                         logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos,
                         cache=cache, cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for _ in range(block_len):  # at least one token per row per call: block_len calls suffice
            masked_all = self._masked(run, in_block)
            step = self._call(run, masked_all.any(-1))
            if step is None:
                return
            masked = masked_all[step.rows]
            commit, cand = self._choose(run, step, masked)
            self._commit(run, step, commit, cand)

    def _choose(self, run: _RunState, step: Step, masked: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _best_one(self, conf: Tensor) -> Tensor:
        return select_top_k(conf, torch.ones(conf.shape[0], dtype=torch.long, device=conf.device))


class ThresholdSampler(_Adaptive):
    """Fast-dLLM's confidence threshold: commit every masked position whose candidate has probability
    >= ``threshold``, and always at least the most confident one."""

    name = "threshold"

    def __init__(self, threshold: float = 0.9, temperature: float = 0.0, block_length: "int | None" = None,
                 cfg_scale: float = 0.0, logits_eos_inf: bool = False, suppress_tokens: tuple = (),
                 stop_at_eos: bool = False, cache: str = "none", cache_refresh: "int | None" = None,
                 confidence_eos_eot_inf: bool = False) -> None:
        super().__init__(threshold=threshold, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale,
                         logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos,
                         cache=cache, cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _choose(self, run: _RunState, step: Step, masked: Tensor) -> tuple[Tensor, Tensor]:
        cand, conf = candidates_at(self, run, step, masked, "low_confidence")
        return (masked & (conf >= self.threshold)) | self._best_one(conf), cand


class FactorSampler(_Adaptive):
    r"""Fast-dLLM's factor rule: with the masked positions' confidences sorted, :math:`c_1 \ge c_2 \ge \dots`,
    commit the longest prefix in which every :math:`c_n` (:math:`n \ge 2`) satisfies :math:`(n + 1)(1 - c_n)
    \le f` — the more tokens committed together, the surer each must be — and always the first.

    (Fast-dLLM's code also commits the whole block when only its last candidate fails the test; this class
    follows the rule as stated.)"""

    name = "factor"

    def __init__(self, factor: float = 1.0, temperature: float = 0.0, block_length: "int | None" = None,
                 cfg_scale: float = 0.0, logits_eos_inf: bool = False, suppress_tokens: tuple = (),
                 stop_at_eos: bool = False, cache: str = "none", cache_refresh: "int | None" = None,
                 confidence_eos_eot_inf: bool = False) -> None:
        super().__init__(factor=factor, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale,
                         logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos,
                         cache=cache, cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _choose(self, run: _RunState, step: Step, masked: Tensor) -> tuple[Tensor, Tensor]:
        cand, conf = candidates_at(self, run, step, masked, "low_confidence")
        ranked = torch.sort(conf, dim=-1, descending=True, stable=True).values  # -inf (not masked) last
        n = torch.arange(1, conf.shape[1] + 1, device=conf.device, dtype=torch.float64)
        ok = torch.isfinite(ranked) & ((n + 1) * (1.0 - ranked) <= self.factor)
        ok[:, 0] = torch.isfinite(ranked[:, 0])
        k = ok.long().cumprod(-1).sum(-1).clamp_min(1)  # the longest prefix of passes, at least one
        return select_top_k(conf, k) & masked, cand


class EntropyBoundedSampler(_Adaptive):
    r"""EB-Sampler: sort masked positions by entropy (ascending, ties to the lower position) and commit
    the largest prefix whose entropies satisfy :math:`\sum H - \max H \le \varepsilon` (at least one)."""

    name = "entropy-bounded"

    def __init__(self, epsilon: float = 0.1, temperature: float = 0.0, block_length: "int | None" = None,
                 cfg_scale: float = 0.0, logits_eos_inf: bool = False, suppress_tokens: tuple = (),
                 stop_at_eos: bool = False, cache: str = "none", cache_refresh: "int | None" = None,
                 confidence_eos_eot_inf: bool = False) -> None:
        super().__init__(epsilon=epsilon, temperature=temperature, block_length=block_length, cfg_scale=cfg_scale,
                         logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos,
                         cache=cache, cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _choose(self, run: _RunState, step: Step, masked: Tensor) -> tuple[Tensor, Tensor]:
        cand, neg_entropy = candidates_at(self, run, step, masked, "entropy")
        entropy = -neg_entropy  # +inf where not eligible
        sorted_h = torch.sort(entropy, dim=-1, stable=True).values
        finite = torch.nan_to_num(sorted_h, posinf=0.0)
        before = torch.cumsum(finite, dim=-1) - finite  # the sum of the earlier (smaller) entropies
        ok = torch.isfinite(sorted_h) & (before <= self.epsilon + 1e-12)
        k = ok.sum(-1).clamp_min(1)
        return select_top_k(neg_entropy, k) & masked, cand


from .dream import DreamSampler  # noqa: E402  (it builds on the classes above)
from .hybrid import ThresholdCapSampler, ThresholdFloorSampler  # noqa: E402  (likewise)

#: The torch class of every sampler of the registry.
SAMPLER_CLASSES: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (FixedCountSampler, AncestralSampler, EulerSampler, ThresholdSampler,
                              EntropyBoundedSampler, FactorSampler, DreamSampler, ThresholdFloorSampler,
                              ThresholdCapSampler)
}
assert set(SAMPLER_CLASSES) == set(sampler_names()), "every registry sampler needs a torch class"


def make_sampler(name: str, **options) -> Sampler:
    """A sampler by its registry name (:mod:`mdm_energy.registry`) with ``options``; an option the sampler
    does not take raises ``ValueError`` naming it (nothing is silently ignored)."""
    sampler_options(name, **options)  # unknown names and options: the registry's message
    return SAMPLER_CLASSES[name](**options)
