"""SGLang's ``JointThreshold``: unmasking and editing in one call, for LLaDA 2.1-style models (docs/generation.md).

Each call, for every row still working on its block:

* **mask to token** — every masked position whose candidate (argmax at temperature 0) has probability
  :math:`p > \\tau` (``threshold``); when none does, the most confident masked position;
* **token to token** — every already committed position of the block (never a prompt token) whose candidate
  differs from the token there and has :math:`p > \\tau_e` (``edit_threshold``) takes the candidate.

Both sets come from the same call. Once nothing in the block is masked, each further call counts as a
*post-edit step*; the row is done with its block at the first call that changes nothing, or when a call finds
more than ``max_post_edit_steps`` post-edit steps behind it (that call is made and its edits are dropped, as
SGLang does). A block therefore takes at most its length plus ``max_post_edit_steps + 1`` calls.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Block, Decision, RunState, Sampler, Step
from .ops import select_top_k

__all__ = ["JointThresholdSampler"]


class JointThresholdSampler(Sampler):
    """Threshold unmasking plus threshold edits of committed tokens (module docstring)."""

    name = "joint-threshold"
    threshold: float
    edit_threshold: float
    max_post_edit_steps: int

    def block_steps(self, run: RunState, block: Block) -> int:
        return block.length + self.max_post_edit_steps + 1

    def need(self, run: RunState, block: Block, masked: Tensor) -> "Tensor | None":
        if block.scratch is None:  # per row: post-edit steps taken, done with this block
            B = run.active.shape[0]
            block.scratch = (torch.zeros(B, dtype=torch.long, device=masked.device),
                             torch.zeros(B, dtype=torch.bool, device=masked.device))
        need = run.active & ~block.scratch[1]
        return need if bool(need.any()) else None

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        post, done = block.scratch
        rows, x = step.rows, run.canvas.x[step.rows]
        editable = block.positions & ~run.canvas.prompt_mask[rows]
        cand, conf = self.candidates(run, step, editable, "low_confidence")
        has_mask = masked.any(-1)
        post[rows] += (~has_mask).long()
        over = ~has_mask & (post[rows] > self.max_post_edit_steps)
        above = masked & (conf > self.threshold)
        first = select_top_k(torch.where(masked, conf, float("-inf")), torch.ones_like(rows))
        m2t = torch.where(above.any(-1, keepdim=True), above, first & masked)
        t2t = editable & ~masked & (conf > self.edit_threshold) & (cand != x)
        transfer = (m2t | t2t) & ~over.unsqueeze(-1)
        done[rows] |= over | ~transfer.any(-1)
        return Decision(transfer, cand)
