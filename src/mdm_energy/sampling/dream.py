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
from ..schedules import Dream
from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step, spread
from .ops import draw_candidates, select_top_k

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


class DreamSampler(ScheduledSampler):
    """Dream's ``diffusion_generate`` (see the module docstring); ``schedule`` ``dream:eps`` is Dream's own."""

    name = "dream"
    alg: str
    alg_temp: float
    top_p: "float | None"
    top_k: "int | None"

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """Per block step: the reveal probability (``origin``, as float32 values, compared with float32 draws as
        Dream does) or the count (the other algorithms)."""
        per_block = self._steps_per_block(num_blocks)
        if self.alg != "origin":
            return Plan(counts=self.block_counts(gen_length, num_blocks))
        if isinstance(self.schedule, Dream):  # Dream's float32 grid and ratio, so that draws compare as Dream's do
            s = torch.from_numpy(self.schedule.mask_levels(per_block))
            pi = [float(1 - s[k + 1] / s[k]) if k < per_block - 1 else 1.0 for k in range(per_block)]
        else:
            pi = [float(torch.tensor(p)) for p in reveal_probabilities(self.schedule, per_block, "ancestral").tolist()]
        return Plan(reveal=tuple(pi))

    def _dream_scores(self, run: RunState, step: Step, where: Tensor) -> tuple[Tensor, Tensor]:
        """Dream's candidates and confidences at ``where`` ``(R, T)``; confidence -inf elsewhere."""
        flat, _ = self.logits_at(run, step, where)
        counts = where.sum(1)
        cand, conf = dream_candidates(flat, self.temperature, self.top_p, self.top_k, self.alg,
                                      lambda width: run.rng.segments(step.rows, counts, width))
        return spread(where, cand, self._last_resort(run, cand, conf.double()))

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        """Dream calls the model at every step; ``origin`` reveals each masked position with the step's
        probability, the other algorithms commit the step's count of positions."""
        if self.alg == "origin":
            u = run.rng.segments(step.rows, masked.sum(1), 1, dtype=torch.float32)[:, 0]
            chosen = torch.zeros_like(masked)
            chosen[masked] = u < torch.tensor(run.plan.reveal[block.step], dtype=torch.float32, device=u.device)
            cand, _ = self._dream_scores(run, step, chosen)
        else:
            cand, conf = self._dream_scores(run, step, masked)
            chosen = self._positions(run, step, masked, conf, run.plan.counts[block.step])
        return Decision(chosen, cand)

    def _positions(self, run: RunState, step: Step, masked: Tensor, conf: Tensor, count: int) -> Tensor:
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
