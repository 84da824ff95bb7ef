r"""WINO ("Wide-In, Narrow-Out", 2025): draft generously, and in the same model call verify what was drafted
before, re-masking the tokens the model no longer believes.

**One call, two views.** For a block :math:`[s, s + B)` each call runs the row's canvas followed by a
*shadow*: :math:`B` mask tokens that carry the block's position ids (:class:`ShadowView`). Under its
attention mask, a real query sees every real key and no shadow key, so the real positions get exactly the
logits of a plain call; shadow query :math:`i` sees every real key except its counterpart :math:`s + i`, and
every shadow key, so it predicts position :math:`s + i` from everything else the canvas holds — a
leave-one-out view of the block. Padding keys are never attended. The call is one model call (one NFE).

**The rule**, per row and per call, with :math:`M` the masked positions of the block and :math:`m = |M|`
before the call, :math:`c_t` the model's probability of the candidate :math:`\hat x_t` at :math:`t \in M`
(real view), and :math:`U` the positions of the block committed before the call:

* *wide in* (draft): :math:`D = \{t \in M : c_t > \tau\}` (``threshold``, strict), cut to the
  :math:`a_{\max} = \min(\max(\lfloor 0.7 m \rfloor, 5), 20)` most confident, and never empty (the most
  confident one when nothing clears :math:`\tau`). The drafts are committed: :math:`x_t \leftarrow \hat x_t`.
* *narrow out* (verify), only when :math:`|D| > 1`: with :math:`q_i` the shadow view's probability of the
  committed token :math:`x_{s+i}`, re-mask :math:`R = \{s + i \in U : q_i < \tau_v\}` (``verify_threshold``,
  strict); if :math:`|R| \ge \ell` it is cut to the :math:`\ell - 1` lowest :math:`q_i`, where :math:`\ell` is
  the previous call's :math:`|D|` in this block (:data:`FIRST_LAST_ACCEPT` at the block's start, when
  :math:`U` is empty anyway). Tokens drafted by this call are never verified by it.

A block ends when nothing in it is masked. Each call removes at least one mask net of the previous call's
drafts (:math:`|R| \le \ell - 1`), so a block of :math:`B` positions takes at most :math:`B` calls. Ties in
either ranking go to the lower position; rows are independent (each keeps its own :math:`\ell`).

Candidates are the argmax at ``temperature`` 0 (the authors' setting) and a Gumbel-max draw from each row's
own stream otherwise; confidences always come from the untempered logits, as in the authors' code. As in
every sampler here, the mask token and suppressed ids are never proposed and are left out of both
softmaxes (the authors' code normalises over the whole vocabulary). Classifier-free guidance applies to
both views (the unconditional half runs the same layout with the prompt masked). No key/value cache: every
call runs the whole canvas plus the shadow.

The denoiser must run pairwise calls (:mod:`mdm_energy.sampling.denoiser`); others are refused at the start
of the run.
"""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import Tensor

from .base import Block, Decision, RunState, Sampler, Step
from .denoiser import Denoiser, check_pairwise, plain_positions
from .ops import confidence_scores, select_top_k

__all__ = ["WinoSampler", "ShadowView", "shadow_attention", "draft_cap", "DRAFT_SHARE", "DRAFT_FLOOR",
           "DRAFT_CEILING", "FIRST_LAST_ACCEPT"]

#: WINO's per-call draft cap is :math:`\min(\max(\lfloor 0.7\,m \rfloor, 5), 20)` for :math:`m` masked positions
#: in the block: at most 70% of what is left (:data:`DRAFT_SHARE`, floored in exact arithmetic), but always
#: room for :data:`DRAFT_FLOOR` and never more than :data:`DRAFT_CEILING` tokens in one call — the authors'
#: fixed constants, which no option exposes.
DRAFT_SHARE = Fraction(7, 10)
DRAFT_FLOOR = 5
DRAFT_CEILING = 20
#: The "previous call's draft count" a block starts from. Verification caps re-masks at that count minus one;
#: the block's first call has nothing to verify, so this value never acts (kept as the authors set it).
FIRST_LAST_ACCEPT = 30


def draft_cap(masked: Tensor) -> Tensor:
    r""":math:`\min(\max(\lfloor 0.7 m \rfloor, 5), 20)` for each count :math:`m` of masked positions (integers)."""
    share = masked * DRAFT_SHARE.numerator // DRAFT_SHARE.denominator
    return share.clamp(DRAFT_FLOOR, DRAFT_CEILING)


def shadow_attention(length: int, lo: int, hi: int, device: "torch.device | None" = None) -> Tensor:
    """``(S, S)`` boolean, ``S = length + (hi - lo)``: which key each query may attend in the layout ``[canvas of
    length positions | shadow of the block [lo, hi)]`` (True: may attend). Canvas queries see the whole
    canvas and no shadow; shadow query ``i`` sees the canvas except position ``lo + i``, and the whole shadow."""
    n = hi - lo
    allowed = torch.zeros((length + n, length + n), dtype=torch.bool, device=device)
    allowed[:, :length] = True
    allowed[length:, length:] = True
    i = torch.arange(n, device=device)
    allowed[length + i, lo + i] = False
    return allowed


class ShadowView:
    """The verification layout of the block ``[lo, hi)`` (a :class:`~mdm_energy.sampling.base.View`): the canvas,
    then ``hi - lo`` mask tokens with the block's position ids, under :func:`shadow_attention` with the
    row's padding keys refused; one pairwise call of the denoiser."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi, self.extra = lo, hi, hi - lo

    def __call__(self, denoiser: Denoiser, tokens: Tensor, attention_mask: "Tensor | None") -> Tensor:
        R, T = tokens.shape
        dev = tokens.device
        shadow = torch.full((R, self.extra), int(denoiser.mask_id), dtype=tokens.dtype, device=dev)
        positions = plain_positions(denoiser, attention_mask, R, T, dev)
        positions = torch.cat([positions, positions[:, self.lo:self.hi]], dim=1)
        allowed = shadow_attention(T, self.lo, self.hi, dev).expand(R, -1, -1)
        if attention_mask is not None:
            keys = torch.cat([attention_mask.bool(), torch.ones((R, self.extra), dtype=torch.bool, device=dev)], dim=1)
            allowed = allowed & keys[:, None, :]
        return denoiser.pairwise(torch.cat([tokens, shadow], dim=1), allowed, positions)


class WinoSampler(Sampler):
    """WINO: every call drafts the masked positions whose confidence exceeds ``threshold`` (at most
    :func:`draft_cap`, at least one) and, when it drafted more than one, re-masks the block's earlier tokens
    whose leave-one-out probability is below ``verify_threshold`` (module docstring)."""

    name = "wino"
    threshold: float
    verify_threshold: float

    def __init__(self, *args, **options) -> None:
        super().__init__(*args, **options)
        if self.verify_threshold < self.threshold:
            raise ValueError(f"the wino sampler's verify_threshold {self.verify_threshold:g} is below its threshold "
                             f"{self.threshold:g}: a token would pass verification with less confidence than its draft "
                             "needed")

    def begin(self, run: RunState) -> None:
        check_pairwise(run.denoiser, "the wino sampler")

    def call_model(self, run: RunState, need: Tensor, view=None) -> "Step | None":
        """The loop's call, through the current block's :class:`ShadowView` (counted once, like any call)."""
        return super().call_model(run, need, view if view is not None else ShadowView(run.block.lo, run.block.hi))

    def need(self, run: RunState, block: Block, masked: Tensor) -> "Tensor | None":
        if block.scratch is None:  # each row's previous draft count, afresh in every block
            block.scratch = torch.full(run.active.shape, FIRST_LAST_ACCEPT, dtype=torch.long, device=masked.device)
        return super().need(run, block, masked)

    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        x = run.canvas.x
        T = x.shape[1]
        rows = step.rows
        cand, conf = self.candidates(run, Step(rows, step.logits[:, :T]), masked, "low_confidence")
        above = (masked & (conf > self.threshold)).sum(-1)
        drafted = torch.minimum(above.clamp_min(1), draft_cap(masked.sum(-1)))
        draft = select_top_k(conf, drafted) & masked
        held = self._committed(run, rows, block)  # committed in this block before this call
        last = block.scratch[rows]
        block.scratch[rows] = drafted
        verify = held & (drafted > 1).unsqueeze(1)
        if not bool(verify.any()):
            return Decision(draft, cand)
        shadow = Step(rows, step.logits[:, T:], block.lo)  # shadow slot i stands for position lo + i
        flat, lse = self.logits_at(run, shadow, verify)
        back = torch.full(verify.shape, float("inf"), dtype=torch.float64, device=x.device)
        back[verify] = confidence_scores(flat, x[rows][verify], "low_confidence", lse=lse)
        doubtful = verify & (back < self.verify_threshold)
        low = doubtful.sum(-1)
        count = torch.where(low >= last, last - 1, low)
        remask = select_top_k(torch.where(doubtful, -back, float("-inf")), count)
        return Decision(draft, cand, remask=remask)
