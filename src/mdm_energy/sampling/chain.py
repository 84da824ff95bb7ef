r"""The exact denoiser of an order-:math:`k` Markov chain over a canvas: posteriors by forward–backward.

The law of a canvas :math:`x_0 \dots x_{T-1}` given its first :math:`k` tokens is

.. math:: q(x_k, \dots, x_{T-1} \mid x_{<k}) = \prod_{t=k}^{T-1} P(x_t \mid x_{t-k}, \dots, x_{t-1}),

with :math:`P` a table of shape ``(V,)*(k+1)`` (the last axis the next token). Given the revealed tokens
:math:`x_S` (every position before the first masked one among them, so the chain's start is known), the
posterior of a masked position is exact:

.. math:: q(x_t = c \mid x_S) \propto \sum_{r} \alpha_t(r, c)\, \beta_t(r, c),

where a state is the last :math:`k` tokens, :math:`\alpha_t` is the forward message (the law of the state
after :math:`t` and the evidence up to :math:`t`) and :math:`\beta_t` the backward one (the evidence after
:math:`t` given that state); evidence is the one-hot of a revealed token and all ones at a masked position.
Each message step is one batched matrix product over the :math:`V^{k+1}` table, normalised so nothing
underflows. Where the revealed tokens from the first masked position's context on have probability zero under
the chain the posterior is undefined and this denoiser answers the uniform law over the tokens the chain emits —
the convention of :class:`~mdm_energy.sampling.ExactTorchDenoiser` (tokens before that context are not read: by
the Markov property they change no posterior where one is defined).

Unlike the explicit laws of :mod:`mdm_energy.exact.distributions` (at most :math:`2^{24}` states in all), a chain's size
is its table's, not :math:`V^T`: a character trigram of a task's text is exact over a whole canvas. So a
sampler run on it is a decoder run on a model that knows its law exactly — what a decoder's own
choices (greedy, confidence order) do to text, apart from any model's errors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["ChainDenoiser", "MAX_CHAIN_ENTRIES"]

#: the largest transition table (entries) a chain may have: 2**24 float64 entries are 128 MiB
MAX_CHAIN_ENTRIES = 1 << 24
#: memory for one chunk of stored backward messages (rows × positions × states × 8 bytes): a pycode batch of
#: 128 rows of an order-2 chain in one chunk (its matrix products run 1.4× faster per row than 34 at a time)
_CHUNK_BYTES = 1 << 30


class ChainDenoiser:
    r"""Exact posteriors of an order-``k`` Markov chain (module docstring) as a sampler denoiser.

    ``transition`` has shape ``(V,)*(k+1)``; each row (last axis) is a probability law over the ``V`` ids,
    zero at ``mask_id``. Logits are :math:`\log q(x_t \mid x_S)` at masked positions, a one-hot at revealed
    ones (so a sampler that does not freeze revealed tokens copies them through) and ``-1e9`` for
    probability zero (exactly 0 after a softmax in float32 and float64).
    """

    NEG = -1e9

    def __init__(self, transition: "np.ndarray | Tensor", mask_id: int, eos_id: "int | None" = None,
                 stop_ids: "tuple[int, ...] | None" = None) -> None:
        P = torch.as_tensor(np.asarray(transition), dtype=torch.float64)
        if P.ndim < 2 or len(set(P.shape)) != 1:
            raise ValueError(f"transition must have shape (V,)*(k+1) with k >= 1, got {tuple(P.shape)}")
        V = P.shape[0]
        if not 0 <= mask_id < V:
            raise ValueError(f"mask_id {mask_id} is outside the vocabulary [0, {V})")
        if not torch.isfinite(P).all() or (P < 0).any():
            raise ValueError("transition probabilities must be finite and non-negative")
        if (P[..., mask_id] != 0).any():
            raise ValueError(f"the chain must never emit the mask id {mask_id}")
        rows = P.sum(-1)
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-9):
            worst = float((rows - 1).abs().max())
            raise ValueError(f"every transition row must sum to 1 (largest error {worst:.3g})")
        self.order, self.V = P.ndim - 1, V
        self.mask_id, self.vocab_size, self.eos_id = int(mask_id), V, eos_id
        self.stop_ids = tuple(int(i) for i in stop_ids) if stop_ids else None
        self.table = P.reshape(V, V ** (self.order - 1), V)  # (oldest token, the k - 1 between, next token)
        self.emits = P.reshape(-1, V).amax(0) > 0  # the ids some context may emit

    @classmethod
    def fit(cls, windows: Tensor, order: int, mask_id: int, emit: "Tensor | None" = None, start: "int | None" = None,
            smoothing: float = 0.01, eos_id: "int | None" = None) -> "ChainDenoiser":
        r"""The order-``k`` chain with counts from ``windows`` ``(N, T)``: every position ``t >= start`` (default
        ``k``) counts its token after the ``k`` before it, and each row is :math:`(n(s, c) + \delta)/(n(s) +
        \delta |E|)` over the emitted ids :math:`E` (``emit``, a boolean ``(V,)``; default every id but the mask),
        so unseen contexts get the uniform law on :math:`E`."""
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if not smoothing > 0 or not math.isfinite(smoothing):
            raise ValueError(f"smoothing must be a positive number, got {smoothing!r}")
        x = torch.as_tensor(windows, dtype=torch.long)
        if x.ndim != 2 or x.shape[1] <= order:
            raise ValueError(f"windows must have shape (N, T) with T > order {order}, got {tuple(x.shape)}")
        if emit is not None and int(x.max()) >= emit.numel():
            raise ValueError(f"windows hold id {int(x.max())}, outside emit's {emit.numel()} ids")
        V = int(x.max()) + 1 if emit is None else int(emit.numel())
        V = max(V, mask_id + 1)
        entries = V ** (order + 1)
        if entries > MAX_CHAIN_ENTRIES:
            raise ValueError(f"an order-{order} chain over {V} ids has {entries:,} transition entries; the most "
                             f"this denoiser takes is {MAX_CHAIN_ENTRIES:,} (lower the order)")
        start = order if start is None else int(start)
        if not order <= start < x.shape[1]:
            raise ValueError(f"start must lie in [{order}, {x.shape[1]}), got {start}")
        if emit is None:
            emit = torch.ones(V, dtype=torch.bool)
            emit[mask_id] = False
        emit = torch.as_tensor(emit, dtype=torch.bool)
        index = torch.zeros((x.shape[0], x.shape[1] - start), dtype=torch.long)
        for j in range(order + 1):  # the flat index of (x_{t-k}, ..., x_t) in the (V,)*(k+1) table
            index = index * V + x[:, start - order + j:x.shape[1] - order + j]
        counts = torch.bincount(index.reshape(-1), minlength=entries).to(torch.float64).reshape(-1, V)
        counts = (counts + smoothing) * emit.to(torch.float64)
        return cls((counts / counts.sum(-1, keepdim=True)).reshape((V,) * (order + 1)), mask_id, eos_id)

    def probabilities(self, tokens: Tensor) -> Tensor:
        """Posterior probabilities ``(B, T, V)`` of every position (one-hot where revealed)."""
        if tokens.ndim != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(tokens.shape)}")
        x = tokens.detach().cpu().to(torch.long)
        B, T = x.shape
        out = torch.zeros((B, T, self.V), dtype=torch.float64)
        masked = x == self.mask_id
        out.scatter_(2, torch.where(masked, 0, x)[..., None], (~masked)[..., None].to(torch.float64))
        if not masked.any():
            return out.to(tokens.device)
        first = int(masked.any(0).nonzero()[0])
        if first < self.order:
            raise ValueError(f"position {first} is masked, but the chain needs the first {self.order} tokens revealed")
        per_row = max(1, _CHUNK_BYTES // (8 * (T - first) * self.V ** self.order))
        for lo in range(0, B, per_row):
            rows = slice(lo, min(B, lo + per_row))
            post = self._window(x[rows, first - self.order:], masked[rows, first - self.order:])
            out[rows, first:] = torch.where(masked[rows, first:, None], post, out[rows, first:])
        return out.to(tokens.device)

    def _window(self, x: Tensor, masked: Tensor) -> Tensor:
        """Posteriors ``(n, W - k, V)`` of a window whose first ``k`` tokens are revealed."""
        n, W = x.shape
        k, V, P = self.order, self.V, self.table
        R = P.shape[1]
        evidence = torch.where(masked[..., None], torch.ones(()), torch.nn.functional.one_hot(
            torch.where(masked, 0, x), V).to(torch.float64))  # (n, W, V)
        beta = torch.empty((n, W - k, R, V), dtype=torch.float64)  # beta[:, t - k]: the state after t, as (r, c)
        beta[:, -1] = 1.0
        for j in range(W - k - 2, -1, -1):
            nxt = beta[:, j + 1] * evidence[:, j + k + 1, None, :]  # (n, R, V) over the state after t + 1
            b = torch.einsum("arc,nrc->nar", P, nxt).reshape(n, R, V)  # over the state after t, (a, r) flattened
            beta[:, j] = b / b.sum((1, 2), keepdim=True).clamp_min(1e-300)
        start = x[:, :k]
        alpha = torch.zeros((n, V ** k), dtype=torch.float64)
        flat = torch.zeros(n, dtype=torch.long)
        for j in range(k):
            flat = flat * V + start[:, j]
        alpha[torch.arange(n), flat] = 1.0
        post = torch.empty((n, W - k, V), dtype=torch.float64)
        uniform = self.emits.to(torch.float64) / self.emits.sum()
        for j in range(W - k):
            a = torch.einsum("nar,arc->nrc", alpha.reshape(n, V, R), P) * evidence[:, j + k, None, :]
            mass = a.sum((1, 2), keepdim=True)
            alpha = (a / mass.clamp_min(1e-300)).reshape(n, R * V)
            joint = (a * beta[:, j]).sum(1)  # (n, V): the law of x_t and all evidence, up to a constant
            z = joint.sum(-1, keepdim=True)
            post[:, j] = torch.where(z > 0, joint / z.clamp_min(1e-300), uniform)
        return post

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        p = self.probabilities(tokens)
        return torch.where(p > 0, torch.log(p.clamp_min(1e-300)), torch.full_like(p, self.NEG))
