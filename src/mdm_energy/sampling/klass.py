r"""KLASS (KL-Adaptive Stability Sampling, 2025): commit a masked token once the model is both sure of it and has
stopped changing its mind about it.

**The rule**, per row and per call. Let :math:`p_t(\cdot \mid i)` be the model's predictive distribution at
position :math:`i` at the row's :math:`t`-th call (float64 softmax of the call's logits), and

.. math:: D_t(i) = \sum_v p_t(v \mid i)\,\bigl(\log(p_t(v \mid i) + \epsilon) - \log(p_{t-1}(v \mid i) + \epsilon)\bigr),
          \qquad \epsilon = 10^{-12},

the KL divergence of this call's distribution from the previous call's (:data:`KL_EPS` as in the authors' code).
A masked position :math:`i` of the current block is

* *confident* when :math:`c_i = p_t(\hat x_i \mid i) > \tau` (``threshold``, strict; :math:`\hat x_i` the candidate);
* *stable* when the last :math:`H` divergences are all small: :math:`D_{t-h}(i) < \delta` for
  :math:`h = 0, \dots, H - 1` (``kl_threshold`` :math:`\delta`, strict; ``kl_history`` :math:`H`).

Every position that is both is committed (the authors' ``unmask_strategy="all"``). When none is, the call falls
back to the :math:`k_j` most confident masked positions, :math:`k_j = \max(1, c_j)` with :math:`c_j` the
schedule's count for the block's step :math:`j` (``schedule``, ``steps`` split over the blocks; 1 after the last
step), never more than is masked. Ties go to the lower position; scores are rounded as in every ranked sampler.

**The history** is per row and per position of the current block, and restarts at each block: the :math:`H`
divergences of a position are those of the block's calls :math:`j - H + 1, \dots, j` (none yet counts as
unstable), so nothing is stable before the block's :math:`H`-th call. The oldest of them, at :math:`j = H - 1`,
compares the block's first call with the row's last call before the block — the previous call's distribution at
the next block's positions is kept for that — exactly what the authors' never-reset history with its
``step >= H - 1`` gate consults. A row's first call ever has nothing to compare with (the authors compare with
a zero vector, a divergence of about :math:`27.6 - H(p)` nats: the same for any sensible :math:`\delta`). KLASS
never re-masks, so a committed position leaves the history for good.

**Key/value caches.** Each call's distributions are those it computed, cached or not. With ``prefix`` every call
computes the block and everything after it, so the history is as without a cache (distributions approximated by
the cache). With ``dual`` a cached call computes only the block: the previous block's last call then did not see
the new block's positions, its first call has nothing to compare with, and stability starts one call later.

At least one token per call: a block of :math:`B` positions takes at most :math:`B` calls. With ``linear`` and
at least as many steps per block as positions (the default 256 steps; the authors' scripts: 256 steps for 256
tokens) the fallback commits one token, the authors' setting. Differences from the authors' code, on purpose:
the mask token and suppressed ids are left out of both softmaxes (package convention); at ``temperature`` > 0
candidates are drawn from each row's stream while confidences and divergences come from the untempered
distribution (the authors take both from the Gumbel-perturbed scores); a fallback always commits at least one
token and never more than is masked (the authors' count can be zero, or exceed the masked positions and then
overwrite committed tokens; neither happens in their settings), so a block is always filled.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step
from .ops import select_top_k

__all__ = ["KlassSampler", "KL_EPS", "kl_divergence"]

#: The :math:`\epsilon` inside both logarithms of the divergence (the authors' constant).
KL_EPS = 1e-12


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    r""":math:`\sum_v p_v (\log(p_v + \epsilon) - \log(q_v + \epsilon))` over the last axis (float64 in, out)."""
    return (p * (torch.log(p + KL_EPS) - torch.log(q + KL_EPS))).sum(-1)


class _History:
    """One run's stability state for the block ``[lo, hi)``: the previous call's distributions ``prev``
    ``(B, W, V)`` at the positions ``lo .. lo + W`` (the block and the next one), whether each was computed by
    that call (``known``), and the last ``H`` divergences of each block position (``kl``, ``(B, hi - lo, H)``,
    +inf: no comparison yet)."""

    def __init__(self, rows: int, lo: int, hi: int, end: int, vocab: int, H: int, device: torch.device,
                 before: "_History | None") -> None:
        self.lo, self.n = lo, hi - lo
        W = end - lo
        self.prev = torch.zeros((rows, W, vocab), dtype=torch.float64, device=device)
        self.known = torch.zeros((rows, W), dtype=torch.bool, device=device)
        self.kl = torch.full((rows, self.n, H), float("inf"), dtype=torch.float64, device=device)
        if before is not None:  # carry the previous call's distributions at the positions both spans hold
            a, b = lo - before.lo, min(before.lo + before.known.shape[1], end) - lo
            if b > 0:
                self.prev[:, :b] = before.prev[:, a:a + b]
                self.known[:, :b] = before.known[:, a:a + b]


class KlassSampler(ScheduledSampler):
    """KLASS: each call commits every masked position whose confidence exceeds ``threshold`` and whose last
    ``kl_history`` call-to-call KL divergences are all below ``kl_threshold``; when there are none, the
    schedule's count for the step (at least one) of the most confident (module docstring)."""

    name = "klass"
    threshold: float
    kl_threshold: float
    kl_history: int

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """The fallback counts of one block's steps (the schedule's, every block the same)."""
        return Plan(counts=self.block_counts(gen_length, num_blocks))

    def block_steps(self, run: RunState, block: Block) -> int:
        return block.length  # at least one token per row per call

    def need(self, run: RunState, block: Block, masked: Tensor) -> "Tensor | None":
        if block.scratch is None:  # a new block: the history restarts, the previous call's distributions carry
            x = run.canvas.x
            end = min(block.hi + block.length, x.shape[1])
            run.scratch["klass"] = block.scratch = _History(
                x.shape[0], block.lo, block.hi, end, int(run.denoiser.vocab_size), self.kl_history, x.device,
                run.scratch.get("klass"))
        return super().need(run, block, masked)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        hist: _History = block.scratch
        rows, lo = step.rows, block.lo
        W = hist.known.shape[1]
        T = run.canvas.x.shape[1]
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        # this call's distributions at the tracked positions it computed (a dual cache's call: the block only)
        computed = min(lo + W, step.offset + step.logits.shape[1]) - lo
        where = torch.zeros((rows.numel(), T), dtype=torch.bool, device=masked.device)
        where[:, lo:lo + computed] = True
        flat, _ = self.logits_at(run, step, where)
        p = torch.softmax(flat.to(torch.float64), dim=-1).view(rows.numel(), computed, -1)
        n = hist.n
        kl = torch.full((rows.numel(), n), float("inf"), dtype=torch.float64, device=masked.device)
        seen = hist.known[rows, :n]
        kl[seen] = kl_divergence(p[:, :n][seen], hist.prev[rows, :n][seen])
        ring = torch.cat([hist.kl[rows, :, 1:], kl.unsqueeze(-1)], dim=-1)
        hist.kl[rows] = ring
        hist.prev[rows, :computed] = p
        hist.known[rows] = False
        hist.known[rows, :computed] = True
        stable = torch.zeros_like(masked)
        stable[:, lo:lo + n] = (ring < self.kl_threshold).all(-1)
        ready = masked & stable & (conf > self.threshold)
        counts = run.plan.counts
        count = max(1, counts[block.step]) if block.step < len(counts) else 1
        k = masked.sum(-1).clamp(max=count)
        fallback = select_top_k(conf, k) & masked
        some = ready.any(-1, keepdim=True)
        return Decision(torch.where(some, ready, fallback), cand)
