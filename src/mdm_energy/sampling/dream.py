r"""Dream's ``diffusion_generate`` algorithms as one sampler, with any schedule.

Dream (Ye et al., 2025) draws its candidates from a tempered, top-p / top-k filtered distribution, and
scores them on that same distribution — unlike LLaDA, whose confidences come from the untempered
model. Its ``alg`` decides which positions each step commits:

* ``origin`` — every masked position independently with probability :math:`\pi_k` (the ancestral rule;
  with Dream's own grid of mask levels :math:`s_k`, :math:`\pi_k = 1 - s_k/s_{k-1}` and the last step
  commits the rest);
* ``maskgit_plus`` / ``topk_margin`` / ``entropy`` — the step's count (Dream's floor rule with the
  default ``dream:eps`` schedule, any schedule's counts otherwise) of the most confident candidates by the
  candidate's probability, top-1 minus top-2, or minus the entropy; with ``alg_temp`` > 0 the positions
  are drawn instead, without replacement, with probabilities ``softmax(confidence / alg_temp)``.

Random draws come from each row's own stream (:class:`~mdm_energy.sampling.rng.RowRNG`), so runs match
Dream's law, and Dream's tokens exactly whenever nothing is random (temperature 0, ``alg_temp`` 0, a
confidence algorithm).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..reveal import reveal_probabilities
from ..schedules import Dream, Schedule
from .base import Step, _RunState
from .ops import draw_candidates, select_top_k
from .samplers import _Scheduled

__all__ = ["DreamSampler", "filter_top_p", "filter_top_k", "dream_candidates"]


def filter_top_p(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p`` (always the most
    likely one); the others get the lowest finite logit, so their probability is zero."""
    ordered, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
    drop = cumulative > top_p
    drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses top_p
    drop[..., 0] = False
    remove = torch.zeros_like(drop).scatter(-1, order, drop)
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def filter_top_k(logits: Tensor, top_k: int) -> Tensor:
    """Keep the ``top_k`` largest logits (and any tied with the last of them); the others get the lowest
    finite logit."""
    kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def dream_candidates(logits: Tensor, temperature: float, top_p: "float | None", top_k: "int | None", alg: str,
                     uniform) -> tuple[Tensor, Tensor]:
    """Dream's candidates and confidences for ``(M, V)`` logits: the distribution is ``softmax(logits / τ)``
    (τ > 0) after the top-p and top-k filters; τ = 0 takes its most likely token. Confidence: the
    candidate's probability (``origin``, ``maskgit_plus``), top-1 minus top-2 (``topk_margin``), or
    :math:`\\sum_v p_v \\log(p_v + 10^{-10})` (``entropy``)."""
    z = logits.double()
    if temperature > 0:
        z = z / temperature
    if top_p is not None and top_p < 1:
        z = filter_top_p(z, top_p)
    if top_k is not None:
        z = filter_top_k(z, top_k)
    probs = torch.softmax(z, dim=-1)
    if temperature > 0:
        cand = draw_candidates(torch.log(probs), 1.0, uniform)
        confidence = probs.gather(-1, cand.unsqueeze(-1)).squeeze(-1)
    else:
        confidence, cand = probs.max(dim=-1)
    if alg == "topk_margin":
        top = probs.topk(min(2, probs.shape[-1]), dim=-1).values
        confidence = top[..., 0] - (top[..., 1] if top.shape[-1] > 1 else 0.0)
    elif alg == "entropy":
        confidence = (probs * torch.log(probs + 1e-10)).sum(-1)
    return cand, confidence


class DreamSampler(_Scheduled):
    """Dream's ``diffusion_generate`` (see the module docstring); ``schedule`` ``dream:eps`` is Dream's own."""

    name = "dream"

    def __init__(
        self,
        schedule: "Schedule | str" = "dream:0.001",
        steps: int = 64,
        alg: str = "origin",
        alg_temp: float = 0.0,
        top_p: "float | None" = None,
        top_k: "int | None" = None,
        temperature: float = 0.0,
        block_length: "int | None" = None,
        cfg_scale: float = 0.0,
        logits_eos_inf: bool = False,
        suppress_tokens: tuple = (),
        stop_at_eos: bool = False,
        cache: str = "none",
        cache_refresh: "int | None" = None,
        confidence_eos_eot_inf: bool = False,
    ) -> None:
        super().__init__(schedule=schedule, steps=steps, alg=alg, alg_temp=alg_temp, top_p=top_p, top_k=top_k,
                         temperature=temperature, block_length=block_length, cfg_scale=cfg_scale,
                         logits_eos_inf=logits_eos_inf, suppress_tokens=suppress_tokens, stop_at_eos=stop_at_eos,
                         cache=cache, cache_refresh=cache_refresh, confidence_eos_eot_inf=confidence_eos_eot_inf)

    def _plan(self, gen_length: int, num_blocks: int) -> list:
        """Per block step: the reveal probability (``origin``) or the count (the other algorithms)."""
        per_block = self._steps_per_block(num_blocks)
        if self.alg != "origin":
            return self.schedule.counts(gen_length // num_blocks, per_block).tolist()
        if isinstance(self.schedule, Dream):  # Dream's float32 grid and ratio, so that draws compare as Dream's do
            s = self.schedule.mask_levels(per_block)
            return [1 - s[k + 1] / s[k] if k < per_block - 1 else torch.tensor(1.0) for k in range(per_block)]
        return [torch.tensor(p) for p in reveal_probabilities(self.schedule, per_block, "ancestral").tolist()]

    def _candidates(self, run: _RunState, step: Step, where: Tensor) -> tuple[Tensor, Tensor]:
        """Dream's candidates and confidences at ``where`` ``(R, T)``; confidence -inf elsewhere."""
        flat, _ = self._rows(run, step, where)
        counts = where.sum(1)
        cand, conf = dream_candidates(flat, self.temperature, self.top_p, self.top_k, self.alg,
                                      lambda width: run.rng.segments(step.rows, counts, width))
        cand_full = torch.zeros(where.shape, dtype=torch.long, device=where.device)
        cand_full[where] = cand
        conf_full = torch.full(where.shape, float("-inf"), dtype=torch.float64, device=where.device)
        conf_full[where] = self._last_resort(run, cand, conf.double())
        return cand_full, conf_full

    def _fill_block(self, run: _RunState, in_block: Tensor, block_len: int, block_index: int) -> None:
        for item in run.plan:
            masked_all = self._masked(run, in_block)
            step = self._call(run, masked_all.any(-1))  # Dream calls the model at every step
            if step is None:
                return
            masked = masked_all[step.rows]
            if self.alg == "origin":
                u = run.rng.segments(step.rows, masked.sum(1), 1, dtype=torch.float32)[:, 0]
                chosen = torch.zeros_like(masked)
                chosen[masked] = u < item.to(u.device)
                cand, _ = self._candidates(run, step, chosen)
            else:
                cand, conf = self._candidates(run, step, masked)
                chosen = self._positions(run, step, masked, conf, int(item))
            self._commit(run, step, chosen, cand)

    def _positions(self, run: _RunState, step: Step, masked: Tensor, conf: Tensor, count: int) -> Tensor:
        """The ``count`` positions to commit: the most confident, or drawn by ``softmax(confidence / alg_temp)``
        without replacement (last-resort candidates only once the others are taken)."""
        k = masked.sum(-1).clamp(max=count)
        if self.alg_temp == 0:
            return select_top_k(conf, k)
        regular = torch.isfinite(conf) & (conf > -1e299)
        weights = torch.softmax(torch.where(regular, conf / self.alg_temp, float("-inf")), dim=-1)
        weights = torch.nan_to_num(weights, nan=0.0)  # rows without a regular candidate
        drawn = run.rng.multinomial(step.rows, weights, torch.minimum(k, regular.sum(-1)))
        rest = (k - drawn.sum(-1)).clamp_min(0)
        leftovers = torch.where(masked & ~drawn, conf, float("-inf"))
        return drawn | select_top_k(leftovers, rest)
