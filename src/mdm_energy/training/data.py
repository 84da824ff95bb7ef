"""Training data: a pool of encoded examples, generated once with a progress bar and cached on disk.

Generating examples is slow for some tasks (a unique sudoku puzzle takes ~25 ms), so a training run draws
its batches from a *pool* built once from :meth:`Task.train_stream` — fresh examples, never a few epochs
over a small set — and cached as ``pool-<task>-<seed>-<n>.safetensors`` (token ids as ``uint8``) in a
cache folder, so that later runs and resumed runs start at once. A pool is built within the run's time
budget; a pool cut short by the deadline is used but not cached.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .._io import atomic_write, tensors_writer
from ..tasks.base import Example, Task

__all__ = ["EXAMPLE_BYTES", "POOL_VERSION", "EncodedPool", "default_cache", "prepare_examples", "training_pool"]

#: Upper bound on the memory one prepared example takes (Python objects, encoded ids and masks).
EXAMPLE_BYTES = 4096
#: Bumped whenever a task's training stream changes, so that an old cache is not reused.
POOL_VERSION = 2


@dataclass(frozen=True)
class EncodedPool:
    """Token ids ``(n, T)`` (``uint8`` for vocabularies up to 256) and the prompt mask ``(n, T)`` of ``n``
    training examples."""

    ids: torch.Tensor
    prompt_mask: torch.Tensor

    def __len__(self) -> int:
        return self.ids.shape[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index].long(), self.prompt_mask[index]


def default_cache() -> Path:
    """``$MDM_ENERGY_CACHE``, else ``~/.cache/mdm-energy``."""
    return Path(os.environ.get("MDM_ENERGY_CACHE") or Path.home() / ".cache" / "mdm-energy")


def prepare_examples(task: Task, split: str, n: int, seed: int, *, deadline: "float | None" = None,
                     progress: bool = True) -> list[Example]:
    """The first ``n`` examples of ``split`` (``train`` means :meth:`Task.train_stream`), generated with a
    progress bar; stops early at ``deadline`` (a ``time.time()`` value) or when the stream ends."""
    from tqdm.auto import tqdm

    from ..limits import check_memory
    from ..tasks.base import check_split

    check_memory(n * EXAMPLE_BYTES, f"{n:,} {task.name} examples")
    stream = task.train_stream(seed) if check_split(split) == "train" else task.stream(split, seed)
    out: list[Example] = []
    bar = tqdm(total=n, desc=f"prepare {task.name} {split} data", file=sys.stderr, disable=not progress or None)
    try:
        for ex in stream:
            if len(out) >= n or (deadline is not None and time.time() >= deadline):
                break
            out.append(ex)
            bar.update(1)
    finally:
        bar.close()
    return out


def training_pool(task: Task, n: int, seed: int, *, cache: "str | os.PathLike[str] | None" = None,
                  deadline: "float | None" = None, progress: bool = True, split: str = "train") -> EncodedPool:
    """The pool of ``n`` examples of ``split`` (``train``: the training stream; fewer if the task has fewer),
    from ``cache`` when it is there."""
    from safetensors.torch import load_file

    # an evaluation split holds the examples the task scores, which its score version can change (pycode v2
    # drops comment-only references): part of the name, so a split of the older rule is rebuilt
    scored = f"-{task.score_tag}" if split != "train" and task.score_tag else ""
    name = f"pool-{task.name}-{split}-s{seed}-n{n}-v{POOL_VERSION}{scored}.safetensors"
    path = Path(cache) / name if cache is not None else None
    if path is not None and path.is_file():
        try:
            data = load_file(path)
            return EncodedPool(data["ids"], data["prompt_mask"])
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt, not trusted
            pass
    examples = prepare_examples(task, split, n, seed, deadline=deadline, progress=progress)
    if not examples:
        return EncodedPool(torch.zeros((0, task.prompt_len + task.gen_len), dtype=torch.uint8),
                           torch.zeros((0, task.prompt_len + task.gen_len), dtype=torch.bool))
    ids, prompt_mask = task.encode(examples)
    pool = EncodedPool(ids.to(torch.uint8 if task.vocab.size <= 256 else torch.int32), prompt_mask)
    complete = len(examples) == n or (deadline is None or time.time() < deadline)  # the stream simply ended
    if path is not None and complete:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, tensors_writer({"ids": pool.ids, "prompt_mask": pool.prompt_mask}), suffix=".safetensors")
    return pool
