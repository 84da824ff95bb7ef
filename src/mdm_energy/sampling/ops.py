r"""Vectorised building blocks shared by every sampler: candidates, confidence scores, top-k selection.

All of them act on the rows of a flat ``(M, V)`` logits matrix — only the positions a step may
commit, never the whole ``(B, T, V)`` tensor — so the per-step cost beyond the model call scales with
the number of eligible positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["TIE_DECIMALS", "draw_candidates", "confidence_scores", "select_top_k", "REMASKING_RULES"]

#: Scores equal to this many decimals are tied (and ties go to the lower position), so float
#: round-off cannot reorder positions whose scores are equal in exact arithmetic. The exact engine
#: uses the same rule, which is what lets the two be compared law for law.
TIE_DECIMALS = 12

REMASKING_RULES = ("random", "low_confidence", "margin", "entropy")


def draw_candidates(logits: Tensor, temperature: float, generator: "torch.Generator | None") -> Tensor:
    r"""One token per row: ``argmax`` for ``temperature == 0``, else a draw from ``softmax(logits / τ)``.

    Sampling uses the Gumbel-max trick in **float64**: :math:`\arg\max_v (\ell_v/\tau + g_v)` with
    :math:`g_v = -\log(-\log U_v)`. In float32 a uniform has 24 bits, so the largest Gumbel value is
    about 16.6 and the tail of the noise is cut and coarsely quantised; over tens of thousands of
    vocabulary entries that visibly biases which low-probability tokens win (LLaDA reports that low
    precision Gumbel-max degrades generation). In float64 the cut sits near 36.7 and the bias is
    negligible. Logits are promoted to float64 too, so ``ℓ/τ`` keeps the model's resolution.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    u = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)))
    return (logits.to(torch.float64) / temperature + gumbel).argmax(dim=-1)


def confidence_scores(logits: Tensor, candidates: Tensor, rule: str, generator: "torch.Generator | None") -> Tensor:
    """Float64 score per row, higher = committed first (DESIGN.md §4).

    ``low_confidence``: the model's probability of the candidate (LLaDA's default); ``margin``: top-1
    minus top-2 probability; ``entropy``: minus the entropy; ``random``: a uniform draw. Probabilities
    come from the untempered logits, in float64.
    """
    if rule == "random":
        return torch.rand(candidates.shape, dtype=torch.float64, device=logits.device, generator=generator)
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    if rule == "low_confidence":
        score = logp.gather(-1, candidates.unsqueeze(-1)).squeeze(-1).exp()
    elif rule == "margin":
        top = logp.topk(2, dim=-1).values.exp()
        score = top[..., 0] - top[..., 1]
    elif rule == "entropy":
        p = logp.exp()
        score = (p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)
    else:
        raise ValueError(f"unknown remasking rule {rule!r} (known: {', '.join(REMASKING_RULES)})")
    return torch.round(score, decimals=TIE_DECIMALS)


def select_top_k(scores: Tensor, k: Tensor) -> Tensor:
    """Boolean mask of the ``k[b]`` highest ``scores[b]`` in each row (``-inf`` = never), ties to the lower index.

    A stable descending sort keeps equal scores in position order; ranks then come from one scatter,
    so there is no per-row loop.
    """
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    return (rank < k.unsqueeze(-1)) & torch.isfinite(scores)
