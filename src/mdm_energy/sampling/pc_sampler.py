r"""PC-Sampler (Position-aware Calibration, 2025): LLaDA's fixed counts, ranked by a position weight times a
calibrated confidence, so that decoding runs roughly left to right and trivial tokens do not go first.

**The score.** At each step a candidate :math:`\hat x_i` is drawn at every masked position :math:`i` of the
block :math:`[s, s + B)` (argmax, or a Gumbel-max draw at ``temperature`` > 0), with :math:`p_i` the model's
untempered probability of it. Its score is

.. math::

    \mathrm{score}_i = \underbrace{e^{-\lambda (i - s)}}_{\text{position}} \cdot
    \underbrace{\min\bigl(-p_i \log(f_{\hat x_i} + 10^{-9}),\ \alpha\bigr)}_{\text{calibrated confidence}}

with :math:`\lambda` = ``position_decay`` (0 = no position bias), :math:`\alpha` = ``calibration_clip`` and
:math:`f` the background frequency of each token (``token_prior``, :mod:`mdm_energy.token_prior`): a token
that is frequent everywhere carries little information, so its surprisal :math:`-\log f` — and its score — is
low. With ``token_prior='off'`` the calibrated confidence is :math:`p_i` itself (no clip); with the default
``uniform`` prior every token gets :math:`f = 1/V`, i.e. :math:`\min(p_i \log V, \alpha)`.

Step :math:`k` commits the ``counts[k]`` highest scores of the row (ties to the lower position), the counts of
the ``schedule`` over ``steps`` split evenly over the blocks, exactly as the ``fixed`` sampler
(:class:`~mdm_energy.sampling.fixed.FixedCountSampler`, whose zero-count-step rules apply). With
``position_decay=0`` and ``token_prior='off'`` this *is* ``fixed`` with ``low_confidence`` remasking.

The offset :math:`i - s` is counted from the start of the current block, as the authors' code does (the paper
writes it from the start of the generation; within a block the two rank alike, differing by the common factor
:math:`e^{-\lambda s}`). Deliberate differences from their code: the weight is float64, so it underflows only for
:math:`\lambda (i - s) > 745` (theirs is float32 and scores 0 — a tie in unspecified order — past
:math:`\lambda (i - s) \approx 103`); as in every sampler here, the mask token and suppressed ids are never
proposed and are left out of the softmax; ties go to the lower position; batches of any size and left-padded
prompts work. Their counts are LLaDA's (``steps`` divided evenly, the remainder on a block's first steps):
``linear`` gives the same whenever the block's steps divide its length — as in every published setting, one
token per step — and spreads a remainder otherwise (a ``table:`` schedule reproduces LLaDA's exactly).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..token_prior import read_token_counts
from .base import LAST_RESORT, Block, Decision, RunState, Step
from .fixed import FixedCountSampler
from .ops import select_top_k

__all__ = ["PCSampler", "SURPRISAL_EPS", "token_surprisal"]

#: The authors' guard inside the logarithm of the calibration, :math:`-\log(f + 10^{-9})`.
SURPRISAL_EPS = 1e-9


def token_surprisal(prior: str, vocab_size: int, device: "torch.device | None" = None) -> "Tensor | None":
    r""":math:`-\log(f_v + 10^{-9})` for every token id :math:`v < V` (float64), from a ``token_prior`` value;
    ``None`` for ``off`` (no calibration). A table with an id outside the vocabulary is refused."""
    if prior == "off":
        return None
    if prior == "uniform":
        freq = torch.full((vocab_size,), 1.0 / vocab_size, dtype=torch.float64, device=device)
    else:
        table = read_token_counts(prior)
        bad = [t for t in table.ids if t >= vocab_size]
        if bad:
            raise ValueError(f"the token_prior file {prior!r}: token id {max(bad)} is outside the vocabulary [0, {vocab_size})")
        freq = torch.full((vocab_size,), 1.0 / table.total, dtype=torch.float64, device=device)
        ids = torch.tensor(table.ids, dtype=torch.long, device=device)
        freq[ids] = torch.tensor(table.counts, dtype=torch.float64, device=device) / table.total
    return -torch.log(freq + SURPRISAL_EPS)


class PCSampler(FixedCountSampler):
    """PC-Sampler: the ``fixed`` sampler's counts, committed by position-weighted, calibrated confidence
    (module docstring). Defaults are the authors': ``position_decay`` 0.25, ``calibration_clip`` 10."""

    name = "pc-sampler"
    position_decay: float
    calibration_clip: float
    token_prior: str

    def begin(self, run: RunState) -> None:
        run.scratch["surprisal"] = token_surprisal(self.token_prior, int(run.denoiser.vocab_size), run.canvas.x.device)

    def scores(self, run: RunState, block: Block, cand: Tensor, conf: Tensor, masked: Tensor) -> Tensor:
        r"""``(R, T)`` float64: :math:`e^{-\lambda (i - s)} \min(-p_i \log(f + 10^{-9}), \alpha)` at the masked
        positions (``conf`` holds :math:`p_i`), -inf elsewhere; end-token candidates stay last with
        ``confidence_eos_eot_inf``."""
        T = masked.shape[1]
        offset = (torch.arange(T, device=masked.device, dtype=torch.float64) - block.lo).clamp_min(0.0)
        weight = torch.exp(-self.position_decay * offset)
        surprisal = run.scratch["surprisal"]
        if surprisal is not None:
            conf = torch.clamp(conf * surprisal[cand], max=self.calibration_clip)
        score = torch.where(masked, weight * conf, float("-inf"))
        if self.confidence_eos_eot_inf:
            # again, not a repeat of candidates(): there an end token's p is LAST_RESORT, but the calibration and
            # the weight above rescale it (a surprisal <= 0, f = 1, even flips its sign past the clip) and would
            # order the end tokens among themselves; set back to one value they stay last, tied, lower position first
            score = torch.where(masked & torch.isin(cand, run.stops), LAST_RESORT, score)
        return score

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        count = run.plan.counts[block.step]
        if count == 0:  # a zero-token step: the call was made (and counted), and commits nothing
            return Decision(torch.zeros_like(masked), run.canvas.x[step.rows])
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        chosen = select_top_k(self.scores(run, block, cand, conf, masked), masked.sum(-1).clamp(max=count))
        return Decision(chosen, cand)

