"""Data-parallel evaluation under ``accelerate launch`` (or ``torchrun``): rank, world size and collectives.

lm-eval splits an evaluation over processes itself when the model reports ``rank`` and ``world_size``:
each rank builds its share of the requests, and the model's ``all_gather``, ``gather_object`` and
``barrier`` bring the results together. The launchers set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address in the environment; this module starts ``torch.distributed`` from them — ``gloo`` on
the CPU, ``nccl`` on GPUs — and gives the collectives lm-eval calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["World", "join_world"]


@dataclass(frozen=True)
class World:
    """This process's place among the evaluation processes (``size`` 1: alone, no collectives)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor``, stacked (0-d tensors) or concatenated along the first axis."""
        if self.size == 1:
            return tensor if tensor.ndim else tensor.reshape(1)
        import torch.distributed as dist

        parts = [torch.zeros_like(tensor) for _ in range(self.size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts) if tensor.ndim == 0 else torch.cat(parts)

    def gather_object(self, obj: Any, dst: int = 0) -> "list | None":
        """Every rank's ``obj`` on rank ``dst`` (a list in rank order), ``None`` elsewhere."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size if self.rank == dst else None
        dist.gather_object(obj, out, dst=dst)
        return out

    def all_gather_object(self, obj: Any) -> list:
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out: list = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


def join_world(device: str) -> World:
    """The :class:`World` of this process from the launcher's environment, starting ``torch.distributed``
    (``gloo`` for the CPU, ``nccl`` for CUDA) when there are several processes."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if str(device).startswith("cuda") else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))
