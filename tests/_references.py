"""Pieces of the authors' decoding rules shared by the token-for-token references of the sampler tests
(test_klass, test_pc_sampler, test_prophet, test_wino, test_dus), written from the papers' code as plain loops.

They use torch only, never the samplers under test: the references must stay independent of the code they check.
"""

from __future__ import annotations

import torch

__all__ = ["llada_counts", "gumbel_noise", "llada_candidates"]


def llada_counts(masked: int, steps: int) -> list[int]:
    """LLaDA's ``get_num_transfer_tokens`` for one row: ``masked`` tokens split evenly over ``steps``, the
    remainder one by one to the first steps (``masked // steps`` each, the first ``masked % steps`` one more)."""
    base, extra = divmod(masked, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def gumbel_noise(uniforms: torch.Tensor) -> torch.Tensor:
    """Gumbel noise ``-log(-log u)`` from uniforms, clamped away from 0 (float64)."""
    return -torch.log(-torch.log(uniforms.clamp_min(torch.finfo(torch.float64).tiny)))


def llada_candidates(logits: torch.Tensor, positions: "list[int]", temperature: float, rng,
                     prob: "torch.Tensor | None" = None) -> "tuple[dict[int, int], dict[int, float]]":
    """Each position's candidate and its confidence, per row as in LLaDA's loop (the package's conventions).

    ``logits`` is one row's ``(S, V)`` (the banned ids already at -inf). At temperature 0 the candidate at ``t``
    is ``argmax logits[t]``; above, ``argmax(logits[t] / temperature + g)`` with ``g`` the Gumbel noise of one
    row of ``V`` uniforms per position, drawn from the row's stream ``rng`` (``rng.segments``) for all
    ``positions`` at once, in their order. With ``prob`` (the untempered ``(S, V)`` softmax) the confidence of
    ``t`` is ``prob[t, candidate]`` rounded to 12 decimals; without it, no confidences (``{}``)."""
    vocab = logits.shape[-1]
    if temperature > 0:
        unif = rng.segments(torch.tensor([0]), torch.tensor([len(positions)]), vocab)
    cand, conf = {}, {}
    for j, t in enumerate(positions):
        if temperature > 0:
            cand[t] = int((logits[t].double() / temperature + gumbel_noise(unif[j])).argmax())
        else:
            cand[t] = int(logits[t].argmax())
        if prob is not None:
            conf[t] = round(float(prob[t, cand[t]]), 12)
    return cand, conf
