r"""ReMDM: samplers that send committed tokens back to the mask, so that later calls can revise them.

:class:`ReMDMSampler` (``remdm``) is the random-position (MDLM-style) form of ReMDM: at step :math:`k` each
masked position of the block is revealed with probability :math:`c_k` and each committed one is masked
again with probability :math:`\sigma_k`, independently, both decided from the state before the step; the
rules for :math:`\sigma` and the plan of every step are in :mod:`mdm_energy.revision`. Revealed values are
drawn from the model's call on that state. A step that reveals nothing makes no model call (its re-masks
still happen), and the block's last step (:math:`\alpha = 1`, :math:`\sigma = 0`) reveals all that is left.

:class:`ReMDMLowConfidenceSampler` (``remdm-llada``) is ReMDM's low-confidence form for LLaDA: fixed counts
by the schedule, committed by confidence, with a *loop phase* inserted after the first
:math:`\lceil s N \rceil` steps (``loop_start`` :math:`s`): ``loop_steps`` calls, each re-masking (before the
call) the ``remask_count`` tokens of the block committed with the lowest confidence and then committing as
many of the most confident candidates — possibly the same tokens again. With ``steps`` equal to the block
length, ``linear`` and ``loop_start`` 7/8 this is the published ReMDM-LLaDA setting (28 tokens, 32 loop
calls, the last 4 tokens: 64 calls for a block of 32).

Random draws come from each row's own stream: one uniform per position of the window per step (which
positions reveal or re-mask, ``remdm``), then the candidates of the revealed positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..revision import revision_plan
from .base import Block, Decision, Plan, RunState, ScheduledSampler, Step
from .ops import select_top_k

__all__ = ["ReMDMSampler", "ReMDMLowConfidenceSampler"]


@dataclass(frozen=True)
class RevisionSteps(Plan):
    """A block's plan for a revising sampler, per loop turn: the reveal probability ``reveal`` and re-masking
    probability ``sigma`` (``remdm``), or the tokens to commit ``commits`` (``None``: as many as the turn
    re-masked) and to re-mask first ``remasks`` (``remdm-llada``)."""

    sigma: tuple[float, ...] = ()
    commits: tuple["int | None", ...] = ()
    remasks: tuple[int, ...] = ()
    rule: str = ""

    @property
    def steps(self) -> int:
        return max(super().steps, len(self.commits))


class ReMDMSampler(ScheduledSampler):
    r"""ReMDM with random positions on any schedule: reveal with :math:`c_k`, re-mask with :math:`\sigma_k`
    (:mod:`mdm_energy.revision`); defaults temperature 1 (the model's own law) and ``sigma='cap'`` with the
    authors' :math:`\eta`. Only generated positions of the current block are ever re-masked."""

    name = "remdm"
    sigma: str
    eta: "float | None"
    revise_from: float
    loop_start: "float | None"
    loop_end: "float | None"
    loop_alpha: "float | None"

    def plan(self, gen_length: int, num_blocks: int) -> RevisionSteps:
        """The revision plan of one block (every block uses the same); bad η or loop phases raise ``ValueError``."""
        rp = revision_plan(self.schedule, self._steps_per_block(num_blocks), self.sigma, self.eta, self.revise_from,
                           self.loop_start, self.loop_end, self.loop_alpha, length=gen_length // num_blocks)
        reveal = tuple(float(rp.reveal(k)) for k in range(1, rp.steps + 1))
        return RevisionSteps(reveal=reveal, sigma=tuple(float(s) for s in rp.sigma), rule=rp.rule)

    def begin(self, run: RunState) -> None:
        if self.sigma == "conf":  # the model's probability of each token when it was committed
            run.scratch["confidence"] = torch.zeros(run.canvas.x.shape, dtype=torch.float64, device=run.canvas.x.device)

    def _sigma(self, run: RunState, rows: Tensor, committed: Tensor, sigma: float) -> "Tensor | float":
        r"""The re-masking probability of each committed position: :math:`\sigma_k`, or for ``conf``
        :math:`\sigma_k\,\mathrm{softmax}(-p)` over the row's committed positions of the block."""
        if self.sigma != "conf":
            return sigma
        logits = torch.where(committed, -run.scratch["confidence"][rows], float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # a row with nothing committed: all -inf
        return sigma * weights

    def need(self, run: RunState, block: Block, masked: Tensor) -> Tensor:
        """Decide, from the state before the step, which masked positions reveal and which committed ones are
        masked again; rows that reveal something need the call, the others are re-masked at once (no call, so
        the callback sees those re-masks at the row's next call)."""
        plan, k = run.plan, block.step
        x = run.canvas.x
        rows = run.active.nonzero(as_tuple=True)[0]
        need = torch.zeros_like(run.active)
        if rows.numel() == 0:
            block.scratch = None
            return need
        committed = self._committed(run, rows, block)
        u = run.rng.uniform(rows, (x.shape[1],))
        reveal = masked[rows] & (u < plan.reveal[k])
        remask = committed & (u < self._sigma(run, rows, committed, plan.sigma[k]))
        calls = reveal.any(-1)
        if bool((~calls & remask.any(-1)).any()):  # no call: the re-masks happen now
            self.remask(run, rows[~calls], remask[~calls])
        need[rows[calls]] = True
        block.scratch = (rows, reveal, remask)
        return need

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        rows, reveal, remask = block.scratch
        idx = torch.searchsorted(rows, step.rows)
        where = reveal[idx]
        conf = self.sigma == "conf"
        cand, score = self.candidates(run, step, where, "low_confidence" if conf else None)
        if conf:
            held = run.scratch["confidence"]
            held[step.rows] = torch.where(where, score, held[step.rows])
        return Decision(where, cand, remask=remask[idx])


class ReMDMLowConfidenceSampler(ScheduledSampler):
    """ReMDM-LLaDA on any schedule: the schedule's counts committed by confidence, with a loop phase of
    ``loop_steps`` calls (default: the block's steps) after ``ceil(loop_start * steps)`` steps that re-masks the
    ``remask_count`` least confident commits of the block and commits as many (module docstring). A block of
    ``B`` positions and ``N`` steps makes ``N + loop_steps`` calls (steps with nothing to commit and nothing to
    re-mask make none). Defaults: temperature 1, as the authors sample."""

    name = "remdm-llada"
    remask_count: int
    loop_start: "float | None"
    loop_steps: "int | None"

    def plan(self, gen_length: int, num_blocks: int) -> RevisionSteps:
        """Per loop turn of a block: tokens to commit and tokens to re-mask first; ``ValueError`` when
        ``remask_count`` is not below the block length (a loop call would re-mask the whole block)."""
        block = gen_length // num_blocks
        if self.remask_count >= block:
            raise ValueError(f"remask_count {self.remask_count} must be below the block length {block}")
        counts = self.block_counts(gen_length, num_blocks)
        n = len(counts)
        start = self.loop_start if self.loop_start is not None else self.declaration().defaults["loop_start"]
        before = math.ceil(start * n - 1e-9)
        loop = self.loop_steps if self.loop_steps is not None else n
        commits = counts[:before] + (None,) * loop + counts[before:]
        remasks = (0,) * before + (self.remask_count,) * loop + (0,) * (n - before)
        return RevisionSteps(commits=commits, remasks=remasks)

    def begin(self, run: RunState) -> None:
        run.scratch["confidence"] = torch.full(run.canvas.x.shape, float("inf"), dtype=torch.float64,
                                               device=run.canvas.x.device)

    def need(self, run: RunState, block: Block, masked: Tensor) -> Tensor:
        """In the loop phase, first re-mask the least confident commits of each active row (so the call sees
        them masked); then the rows with something masked and something to commit need the call."""
        plan, k = run.plan, block.step
        r = plan.remasks[k]
        take = torch.zeros(run.active.shape, dtype=torch.long, device=run.active.device)
        if r:
            rows = run.active.nonzero(as_tuple=True)[0]
            committed = self._committed(run, rows, block)
            conf = torch.where(committed, run.scratch["confidence"][rows], float("inf"))
            n = committed.sum(-1).clamp(max=r)
            chosen = select_top_k(torch.where(committed, -conf, float("-inf")), n)  # the lowest; ties: lower position
            self.remask(run, rows, chosen)
            take[rows] = chosen.sum(-1)
            masked = self._masked(run, block.positions)
        elif plan.commits[k]:
            take[:] = plan.commits[k]
        block.scratch = take
        return masked.any(-1) & (take > 0)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        k = torch.minimum(masked.sum(-1), block.scratch[step.rows])
        cand, score = self.candidates(run, step, masked, "low_confidence")
        chosen = select_top_k(score, k)
        held = run.scratch["confidence"]
        held[step.rows] = torch.where(chosen, score, held[step.rows])
        return Decision(chosen, cand)
