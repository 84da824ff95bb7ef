r"""Vectorised building blocks shared by every sampler: candidates, confidence scores, top-k selection.

All of them act on the rows of a flat ``(M, V)`` logits matrix — only the positions a step may
commit, never the whole ``(B, T, V)`` tensor — so the per-step cost beyond the model call scales with
the number of eligible positions.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..registry import REMASKING

__all__ = ["TIE_DECIMALS", "GUMBEL_MAX_ELEMENTS", "Uniform", "draw_candidates", "confidence_scores", "select_top_k",
           "top_two_logits", "logit_gap"]

#: Scores equal to this many decimals are tied (and ties go to the lower position), so float
#: round-off cannot reorder positions whose scores are equal in exact arithmetic. The exact engine
#: uses the same rule, which is what lets the two be compared law for law.
TIE_DECIMALS = 12


#: Above this many logits (rows x vocabulary) a temperature draw uses the two-level inverse CDF
#: instead of float64 Gumbel noise: same law, without a float64 random number per vocabulary entry.
GUMBEL_MAX_ELEMENTS = 1 << 22
_CHUNK = 256


#: ``uniform(width)``: an ``(M, width)`` float64 tensor of uniforms in [0, 1), row ``i`` for logits row ``i``
#: (from that row's own stream, :class:`~mdm_energy.sampling.rng.RowRNG`).
Uniform = Callable[[int], Tensor]


def _global_uniform(rows: int, device: torch.device, generator: "torch.Generator | None" = None) -> Uniform:
    """Uniforms from one generator (for callers outside a sampler run)."""
    return lambda width: torch.rand((rows, width), dtype=torch.float64, device=device, generator=generator)


def draw_candidates(logits: Tensor, temperature: float, uniform: "Uniform | torch.Generator | None") -> Tensor:
    r"""One token per row: ``argmax`` for ``temperature == 0``, else a draw from ``softmax(logits / τ)``.

    Small problems use the Gumbel-max trick in **float64**, as LLaDA does:
    :math:`\arg\max_v (\ell_v/\tau + g_v)`, :math:`g_v = -\log(-\log U_v)`. In float32 (let alone
    bf16) a uniform has 24 bits, so the Gumbel noise is cut near 16.6 and coarsely quantised in its
    tail; over tens of thousands of vocabulary entries that visibly biases which low-probability
    tokens win (LLaDA reports that low-precision Gumbel-max degrades generation). In float64 the cut
    sits near 36.7 and the bias is negligible.

    One float64 uniform per vocabulary entry is, however, the dominant cost of a step on a CPU at
    LLM scale, so above :data:`GUMBEL_MAX_ELEMENTS` logits the same categorical law is drawn by a
    two-level inverse CDF with **one float64 uniform per row**: unnormalised probabilities
    ``exp(ℓ/τ - max)`` in the logits' precision (float32 at least), summed per chunk of 256 tokens,
    then a float64 cumulative sum over chunks and inside the chosen chunk. The precision that matters
    — the running sums that decide which token a uniform falls on — is float64, so no part of the
    vocabulary is truncated or quantised, and probabilities keep the model's own float32 resolution.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    if not callable(uniform):
        uniform = _global_uniform(logits.shape[0], logits.device, uniform)
    if logits.numel() <= GUMBEL_MAX_ELEMENTS:
        u = uniform(logits.shape[-1])
        gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)))
        return (logits.to(torch.float64) / temperature + gumbel).argmax(dim=-1)
    return _inverse_cdf(logits, temperature, uniform)


def _inverse_cdf(logits: Tensor, temperature: float, uniform: "Uniform | torch.Generator | None") -> Tensor:
    M, V = logits.shape
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    z = z / temperature
    w = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    pad = (-V) % _CHUNK
    if pad:
        w = torch.cat([w, w.new_zeros(M, pad)], dim=-1)
    chunks = w.view(M, -1, _CHUNK)
    chunk_cdf = chunks.sum(-1).to(torch.float64).cumsum(-1)
    if not callable(uniform):
        uniform = _global_uniform(M, logits.device, uniform)
    u = uniform(1)
    target = u * chunk_cdf[:, -1:]
    c = torch.searchsorted(chunk_cdf, target, right=True).clamp(max=chunk_cdf.shape[1] - 1)
    before = torch.where(c > 0, chunk_cdf.gather(1, (c - 1).clamp_min(0)), torch.zeros_like(target))
    inner = chunks.gather(1, c.unsqueeze(-1).expand(M, 1, _CHUNK)).squeeze(1).to(torch.float64).cumsum(-1)
    j = torch.searchsorted(inner, target - before, right=True).clamp(max=_CHUNK - 1)
    return (c * _CHUNK + j).squeeze(-1).clamp(max=V - 1)


def top_two_logits(logits: Tensor) -> Tensor:
    """``(..., 2)`` float64: the largest and the second largest logit of each row (the ``margin`` rule's and
    Prophet's ingredients; ties keep both equal)."""
    return logits.topk(2, dim=-1).values.to(torch.float64)


def logit_gap(logits: Tensor) -> Tensor:
    """``(...)`` float64: top-1 minus top-2 logit of each row (Prophet's confidence gap; on log-probabilities
    the same, the normaliser cancels)."""
    top = top_two_logits(logits)
    return top[..., 0] - top[..., 1]


def confidence_scores(logits: Tensor, candidates: Tensor, rule: str, uniform: "Uniform | torch.Generator | None" = None,
                      lse: "Tensor | None" = None) -> Tensor:
    """Float64 score per row, higher = committed first (docs/design.md §4).

    ``low_confidence``: the model's probability of the candidate (LLaDA's default); ``margin``: top-1
    minus top-2 probability; ``entropy``: minus the entropy; ``random``: a uniform draw. Probabilities
    come from the untempered logits; ``lse`` (their log-normaliser, computed by the caller in the
    logits' precision) is reused, and the final probabilities are formed in float64.
    """
    if rule == "random":
        if not callable(uniform):
            uniform = _global_uniform(candidates.shape[0], logits.device, uniform)
        return uniform(1)[:, 0]
    if lse is None:
        lse = torch.logsumexp(logits, dim=-1)
    lse64 = lse.to(torch.float64).unsqueeze(-1)
    if rule == "low_confidence":
        score = (logits.gather(-1, candidates.unsqueeze(-1)).to(torch.float64) - lse64).squeeze(-1).exp()
    elif rule == "margin":
        top = (top_two_logits(logits) - lse64).exp()
        score = top[..., 0] - top[..., 1]
    elif rule == "entropy":
        logp = logits - lse.unsqueeze(-1).to(logits.dtype)
        p = logp.exp()
        score = (p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1).to(torch.float64)
    else:
        raise ValueError(f"unknown remasking rule {rule!r} (known: {', '.join(REMASKING)})")
    return torch.round(score, decimals=TIE_DECIMALS)


def entropy_bound_count(entropy: Tensor, epsilon: float) -> Tensor:
    r"""EB-Sampler's count per row: the largest :math:`n \ge 1` such that the :math:`n` smallest entropies satisfy
    :math:`\sum_{j \le n} H_{(j)} - H_{(n)} \le \varepsilon` (ascending, stable: ties to the lower position;
    ``+inf`` marks a position that is not eligible and never counts). The ``1e-12`` keeps a sum that equals the
    bound in exact arithmetic from failing by a rounding."""
    sorted_h = torch.sort(entropy, dim=-1, stable=True).values
    finite = torch.nan_to_num(sorted_h, posinf=0.0)
    before = torch.cumsum(finite, dim=-1) - finite  # the sum of the earlier (smaller) entropies
    return (torch.isfinite(sorted_h) & (before <= epsilon + 1e-12)).sum(-1).clamp_min(1)


def select_top_k(scores: Tensor, k: Tensor) -> Tensor:
    """Boolean mask of the ``k[b]`` highest ``scores[b]`` in each row (``-inf`` = never), ties to the lower index.

    A stable descending sort keeps equal scores in position order; ranks then come from one scatter,
    so there is no per-row loop.
    """
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    return (rank < k.unsqueeze(-1)) & torch.isfinite(scores)
