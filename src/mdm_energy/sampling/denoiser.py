"""The denoiser protocol and its adapters.

A *denoiser* maps token ids ``(B, T)`` (with ``mask_id`` at masked positions) and an optional
attention mask ``(B, T)`` to logits ``(B, T, V)`` of the clean token at every position. It carries
``mask_id``, ``vocab_size``, an optional ``eos_id`` and optional ``stop_ids`` (every token that ends an
answer: EOS, end-of-turn; ``{eos_id}`` when absent). Samplers only ever call it this way, so any model
fits once wrapped:

* :class:`CallableDenoiser` — a plain function ``fn(tokens)`` or ``fn(tokens, attention_mask)``;
* :class:`~mdm_energy.integrations.huggingface.HFDenoiser` — any model whose output has ``.logits``;
* :class:`ExactTorchDenoiser` — the exact posteriors of an explicit law, for checking samplers
  against exact laws.

**Pairwise calls** (optional; the ``wino`` sampler needs them). A denoiser that can run a sequence under any
boolean query-by-key attention mask has ``pairwise(tokens, allowed, position_ids) -> logits``: ``tokens``
``(B, S)``, ``allowed`` ``(B, S, S)`` (True: query ``q`` may attend key ``k``), ``position_ids`` ``(B, S)``
(several tokens may share a position). The position ids of its plain call on a canvas come from
``position_ids(attention_mask, length)`` where it has one, else they are ``0 .. T - 1``; so the plain call
is the pairwise call with those positions and every padding key refused. A denoiser whose ``pairwise`` exists
but cannot run for its model says so with ``supports_pairwise = False``; :func:`check_pairwise` refuses it.

**Block-causal denoisers** (``block_causal = True``: LLaDA 2.x, SDAR,
:class:`~mdm_energy.integrations.block_diffusion.BlockDiffusionDenoiser`) also have ``block_size``,
``make_canvas(prompts, gen_length, batch_size, device, pad_id, max_length)`` (the canvas laid out on the model's
blocks), ``begin(sampler, canvas)`` (a run's state: the keys and values of finished blocks),
``block_logits(state, tokens, rows, lo, hi, attention_mask)`` (the logits of block ``[lo, hi)`` alone) and
``finish(output, state)`` (the output in the usual layout); the decoding loop calls these instead of the plain call.
"""

from __future__ import annotations

import inspect
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = ["Denoiser", "CallableDenoiser", "ExactTorchDenoiser", "check_denoiser", "stop_ids_of", "check_pairwise",
           "plain_positions"]


@runtime_checkable
class Denoiser(Protocol):
    """Token ids ``(B, T)`` (+ optional attention mask) -> logits ``(B, T, V)``."""

    mask_id: int
    vocab_size: int
    eos_id: "int | None"

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor: ...


def check_denoiser(denoiser: Denoiser) -> None:
    """Raise ``ValueError`` if the denoiser's ids are inconsistent (``mask_id`` outside the vocabulary)."""
    for name in ("mask_id", "vocab_size"):
        if not hasattr(denoiser, name):
            raise TypeError(f"a denoiser needs a {name} attribute; wrap plain functions in CallableDenoiser")
    V, m = int(denoiser.vocab_size), int(denoiser.mask_id)
    if V < 2:
        raise ValueError(f"vocab_size must be at least 2, got {V}")
    if not 0 <= m < V:
        raise ValueError(f"mask_id {m} is outside the vocabulary [0, {V})")
    eos = getattr(denoiser, "eos_id", None)
    if eos is not None and not 0 <= int(eos) < V:
        raise ValueError(f"eos_id {eos} is outside the vocabulary [0, {V})")
    bad = [i for i in (getattr(denoiser, "stop_ids", None) or ()) if not 0 <= int(i) < V]
    if bad:
        raise ValueError(f"stop id {bad[0]} is outside the vocabulary [0, {V})")


def stop_ids_of(denoiser: Denoiser) -> set[int]:
    """The tokens that end an answer: the denoiser's ``stop_ids``, else its ``eos_id``, else none."""
    ids = getattr(denoiser, "stop_ids", None)
    if ids:
        return {int(i) for i in ids}
    eos = getattr(denoiser, "eos_id", None)
    return set() if eos is None else {int(eos)}


def check_pairwise(denoiser: Denoiser, who: str) -> None:
    """Raise ``ValueError`` (one line naming the model class) unless ``denoiser`` runs pairwise calls (module
    docstring) on logits that predict each position at that position; ``who`` is what needs them."""
    cls = type(getattr(denoiser, "model", denoiser)).__name__
    if not callable(getattr(denoiser, "pairwise", None)) or not getattr(denoiser, "supports_pairwise", True):
        raise ValueError(f"{who} needs a model that takes a 4-D attention mask and position ids; {cls} does not")
    if getattr(denoiser, "shift_logits", False):
        raise ValueError(f"{who} needs logits that predict each position at that position; {cls}'s are shifted "
                         "(shift_logits: each position predicts the next, Dream-style)")


def plain_positions(denoiser: Denoiser, attention_mask: "Tensor | None", batch: int, length: int,
                    device: torch.device) -> Tensor:
    """``(B, T)``: the position ids of the denoiser's plain call on a canvas (``0 .. T - 1`` unless it says)."""
    own = getattr(denoiser, "position_ids", None)
    if callable(own):
        return own(attention_mask, length).to(device).expand(batch, length)
    return torch.arange(length, device=device).expand(batch, length)


class CallableDenoiser:
    """Wrap ``fn(tokens)`` or ``fn(tokens, attention_mask)`` returning logits ``(B, T, V)``; ``pairwise`` (optional)
    is ``pairwise(tokens, allowed, position_ids)`` returning logits, for the samplers that need pairwise calls
    (module docstring)."""

    def __init__(self, fn: Callable[..., Tensor], mask_id: int, vocab_size: int, eos_id: "int | None" = None,
                 stop_ids: "tuple[int, ...] | None" = None,
                 pairwise: "Callable[[Tensor, Tensor, Tensor], Tensor] | None" = None) -> None:
        self.fn, self.mask_id, self.vocab_size, self.eos_id = fn, int(mask_id), int(vocab_size), eos_id
        self.stop_ids = tuple(int(i) for i in stop_ids) if stop_ids else None
        if pairwise is not None and not callable(pairwise):
            raise ValueError(f"pairwise must be a callable (tokens, allowed, position_ids) -> logits, got {pairwise!r}")
        self.pairwise_fn = pairwise
        self.supports_pairwise = pairwise is not None
        check_denoiser(self)
        try:
            params = inspect.signature(fn).parameters
            self._takes_mask = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params.values())
        except (TypeError, ValueError):  # builtins without a signature
            self._takes_mask = True

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        return self.fn(tokens, attention_mask) if self._takes_mask else self.fn(tokens)

    def pairwise(self, tokens: Tensor, allowed: Tensor, position_ids: Tensor) -> Tensor:
        if self.pairwise_fn is None:
            raise ValueError("this CallableDenoiser was given no pairwise callable")
        return self.pairwise_fn(tokens, allowed, position_ids)


class ExactTorchDenoiser:
    r"""The exact denoiser of an explicit law on :math:`[d]^n` as a torch denoiser.

    Token ids are ``0..d-1`` and ``mask_id = d`` (so ``vocab_size = d + 1``). Logits are
    :math:`\log q(x_i \mid x_S)` at masked positions (the uniform law where the context has probability
    zero, as in the exact engine) and a one-hot at revealed positions, so a solver that does not
    freeze unmasked tokens copies them through. Zero probabilities get the finite logit ``-1e9``,
    whose softmax is exactly 0 in float32 and float64.
    """

    NEG = -1e9

    def __init__(self, dist) -> None:
        from ..exact import ExactDenoiser

        self.exact = dist if isinstance(dist, ExactDenoiser) else ExactDenoiser(dist)
        self.n, self.d = self.exact.n, self.exact.d
        self.mask_id, self.vocab_size, self.eos_id = self.d, self.d + 1, None

    def probabilities(self, tokens: Tensor) -> Tensor:
        """Posterior probabilities ``(B, n, d + 1)`` (the mask column is 0)."""
        if tokens.ndim != 2 or tokens.shape[1] != self.n:
            raise ValueError(f"expected token ids of shape (B, {self.n}), got {tuple(tokens.shape)}")
        x = tokens.detach().cpu().numpy().astype(np.int64)
        B, n, d = x.shape[0], self.n, self.d
        revealed = x != self.mask_id
        out = np.zeros((B, n, d + 1))
        rows_all = np.arange(B)
        out[rows_all[:, None], np.arange(n)[None, :], np.where(revealed, x, d)] = revealed.astype(float)
        masks = revealed @ (1 << np.arange(n))
        for S in np.unique(masks):
            rows = np.nonzero(masks == S)[0]
            zero = np.zeros((len(rows), 1), np.int64)
            for i in range(n):
                if S >> i & 1:
                    continue
                cond = self.exact.conditional(int(S), i)
                idx = tuple(x[rows, j][:, None] if S >> j & 1 else (np.arange(d)[None, :] if j == i else zero) for j in range(n))
                out[rows, i, :d] = cond[idx]
        return torch.from_numpy(out).to(tokens.device)

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        p = self.probabilities(tokens)
        return torch.where(p > 0, torch.log(p.clamp_min(1e-300)), torch.full_like(p, self.NEG))
