"""Per-row random streams: a row's random draws never depend on the other rows of its batch.

A batch is a convenience, not part of the randomness: with one generator per row (seeded from the
run's generator), a row's output does not change when another row finishes early and leaves the batch
(``stop_at_eos``), nor with the size or composition of the batch. Every random draw of a sampler goes
through :class:`RowRNG`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RowRNG"]


class RowRNG:
    """One ``torch.Generator`` per batch row, seeded from ``generator`` (or torch's global generator)."""

    def __init__(self, generator: "torch.Generator | None", rows: int, device: torch.device,
                 seeds: "list[int] | None" = None) -> None:
        """``seeds`` (one per row) seed the rows directly: a row's draws then depend on its own seed only,
        not on the batch it was put in (how lm-eval requests and tuning items stay reproducible)."""
        if seeds is None:
            seed_device = generator.device if generator is not None else torch.device("cpu")
            seeds = torch.randint(0, 2**62, (rows,), generator=generator, device=seed_device).tolist()
        elif len(seeds) != rows:
            raise ValueError(f"seeds must give one seed per batch row ({rows}), got {len(seeds)}")
        self.device = device
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def uniform(self, rows: Tensor, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> Tensor:
        """``(R, *shape)`` uniforms in [0, 1), row ``i`` from the generator of batch row ``rows[i]``."""
        if rows.numel() == 0:
            return torch.empty((0, *shape), dtype=dtype, device=self.device)
        return torch.stack([torch.rand(shape, generator=self.generators[r], dtype=dtype, device=self.device)
                            for r in rows.tolist()])

    def segments(self, rows: Tensor, counts: Tensor, width: int, dtype: torch.dtype = torch.float64) -> Tensor:
        """``(sum(counts), width)`` uniforms: ``counts[i]`` rows of them from batch row ``rows[i]``'s generator,
        in row order (the layout of ``logits[where]`` for a ``where`` mask over those rows)."""
        parts = [torch.rand((int(c), width), generator=self.generators[r], dtype=dtype, device=self.device)
                 for r, c in zip(rows.tolist(), counts.tolist()) if c]
        if not parts:
            return torch.empty((0, width), dtype=dtype, device=self.device)
        return torch.cat(parts)

    def multinomial(self, rows: Tensor, probs: Tensor, k: Tensor) -> Tensor:
        """Row ``i`` draws ``k[i]`` distinct columns of ``probs[i]`` (without replacement), returned as a
        boolean mask of ``probs``' shape."""
        out = torch.zeros(probs.shape, dtype=torch.bool, device=probs.device)
        for i, (r, n) in enumerate(zip(rows.tolist(), k.tolist())):
            if n > 0:
                picked = torch.multinomial(probs[i], int(n), replacement=False, generator=self.generators[r])
                out[i, picked] = True
        return out
