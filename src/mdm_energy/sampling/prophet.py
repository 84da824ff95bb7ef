r"""Prophet ("Diffusion Language Models Know the Answer Before Decoding", 2025): decode as LLaDA does, and stop
calling the model as soon as the answer is already decided.

**Before the exit** the sampler is :class:`~mdm_energy.sampling.fixed.FixedCountSampler`: step :math:`k` of a
block commits exactly the schedule's count :math:`c_k` of the block's candidates, ranked by ``remasking``
(``linear`` counts and ``low_confidence``: LLaDA's sampler, the authors' base). As there, a zero-count step still
calls the model — and so checks the gap — unless ``skip_empty_steps`` is set.

**The exit check**, after every model call and before that call's commits, per row: with :math:`\ell_j` the
call's logits at position :math:`j` (after guidance, untempered, over the tokens the sampler may propose) and
:math:`A` the *answer region* — window offsets ``answer_start`` to ``answer_start + answer_length - 1``,
clipped to the window (default: the whole window) — the mean logit gap

.. math:: \bar g = \frac{1}{|A|} \sum_{j \in A} \big(\ell_j^{(1)} - \ell_j^{(2)}\big)

(top-1 minus top-2 logit, at every position of :math:`A`, masked or already committed) is compared with the
threshold of the decoding phase. The phase is the progress :math:`p = n / N` — :math:`n` the number of the
step (1-based, counted over all blocks, this call's step included), :math:`N` all the steps of the run:

.. math:: \tau(p) = \begin{cases} \tau_{\text{early}} & p < 0.33 \\ \tau_{\text{mid}} & 0.33 \le p < 0.67 \\
          \tau_{\text{late}} & p \ge 0.67 \end{cases}

(``gap_early`` 7.5, ``gap_mid`` 5.0, ``gap_late`` 2.5: the authors' defaults). When :math:`\bar g \ge \tau(p)`
the row *exits*: every masked position of its window — later blocks included — is committed with this call's
candidate (the argmax at ``temperature`` 0, a draw from the row's stream otherwise), and the row makes no more
calls. Its NFE is the number of the exit call.

**Batches.** The authors decode one prompt at a time; here every row checks its own gap, a row that exits
leaves the batch, and the others go on — each row gets what it gets alone.

**What differs from the authors' code**, deliberately: the gap is taken over the vocabulary the sampler may
propose (the mask token, suppressed ids and, with ``logits_eos_inf``, EOS left out; they use the whole
vocabulary) and formed in float64; without an answer region the whole window is monitored (their evaluation
harness monitors five positions after a forced "The answer is" prefix and never exits without one); a region
that starts outside the window is refused (theirs never exits). When a block has more steps than positions,
the steps that would unmask nothing are dropped (:meth:`~mdm_energy.sampling.base.ScheduledSampler.block_counts`)
and the progress keeps each remaining step's number among the steps asked for. No key/value cache: the gap
needs the logits of the answer region at every call, which a cached call need not compute.

**Exact law.** At temperature 1 over one block without guidance the output law and the expected number of
calls are computed exactly by :func:`mdm_energy.exact.law_prophet` (``exact_law="prophet"``); the phase rule,
step numbers and region come from :mod:`mdm_energy.exit_rule`, shared with it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..exit_rule import PHASE_BOUNDS, answer_region, phase_threshold, step_numbers
from .base import Block, Decision, RunState, Step
from .fixed import FixedCountSampler
from .ops import logit_gap

__all__ = ["ProphetSampler", "PHASE_BOUNDS", "phase_threshold"]

class ProphetSampler(FixedCountSampler):
    """Prophet: the fixed-count sampler that stops once the answer region's mean top-1 minus top-2 logit gap
    clears the phase's threshold, committing every masked position of the row's window in that call (module
    docstring)."""

    name = "prophet"
    gap_early: float
    gap_mid: float
    gap_late: float
    answer_start: int
    answer_length: "int | None"

    def region(self, gen_length: int) -> tuple[int, int]:
        """The answer region as window offsets ``[lo, hi)`` (``ValueError`` when it starts outside the window)."""
        return answer_region(gen_length, self.answer_start, self.answer_length)

    def begin(self, run: RunState) -> None:
        """The answer region on the canvas and each planned step's number among the steps asked for."""
        L = run.canvas.length
        lo, hi = self.region(L)
        T = run.canvas.x.shape[1]
        where = torch.zeros(T, dtype=torch.bool, device=run.canvas.x.device)
        where[run.canvas.start + lo: run.canvas.start + hi] = True
        blocks = len(self._blocks(L))
        per_block = self._steps_per_block(blocks)
        # zero-count steps dropped from the plan: the others keep their numbers among the steps asked for
        numbers = step_numbers(self.schedule.counts(L // blocks, per_block).tolist(), len(run.plan.counts))
        run.scratch["prophet"] = {"region": where, "numbers": numbers, "per_block": per_block,
                                  "steps": blocks * per_block}

    def gaps(self, run: RunState, step: Step) -> Tensor:
        """``(R,)`` float64: each row's mean top-1 minus top-2 logit over the answer region."""
        where = run.scratch["prophet"]["region"].expand(step.rows.numel(), -1)
        flat, _ = self.logits_at(run, step, where)
        return logit_gap(flat).view(step.rows.numel(), -1).mean(-1)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        state = run.scratch["prophet"]
        number = block.index * state["per_block"] + state["numbers"][block.step] + 1
        tau = phase_threshold(number, state["steps"], self.gap_early, self.gap_mid, self.gap_late)
        exits = self.gaps(run, step) >= tau
        if not bool(exits.any()):
            return super().decide(run, block, step, masked)
        x, rows = run.canvas.x, step.rows
        commit = torch.zeros_like(masked)
        values = x[rows].clone()
        stay = ~exits
        if bool(stay.any()):  # the other rows take this step's fixed-count commits
            kept = super().decide(run, block, Step(rows[stay], step.logits[stay], step.offset), masked[stay])
            commit[stay], values[stay] = kept.commit, kept.values
        window = torch.zeros_like(block.positions)
        window[run.canvas.start:] = True
        rest = (x[rows[exits]] == run.denoiser.mask_id) & window  # every masked position of the window
        cand, _ = self.candidates(run, Step(rows[exits], step.logits[exits], step.offset), rest, None)
        commit[exits], values[exits] = rest, cand
        run.active[rows[exits]] = False  # the row is done: no more calls
        return Decision(commit, values)
