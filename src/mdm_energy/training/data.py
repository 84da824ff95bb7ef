"""Training data: examples streamed from a task with a progress bar, within the run's time budget."""

from __future__ import annotations

import sys
import time

from ..tasks.base import Example, Task

__all__ = ["EXAMPLE_BYTES", "prepare_examples"]

#: Upper bound on the memory one prepared example takes (Python objects, encoded ids and masks).
EXAMPLE_BYTES = 4096


def prepare_examples(task: Task, split: str, n: int, seed: int, *, deadline: "float | None" = None,
                     progress: bool = True) -> list[Example]:
    """The first ``n`` examples of ``split`` (as :meth:`Task.examples` gives them), generated with a progress
    bar; stops early at ``deadline`` (a ``time.time()`` value), returning what it has by then."""
    from tqdm.auto import tqdm

    from ..limits import check_memory
    from ..tasks.base import check_split

    check_memory(n * EXAMPLE_BYTES, f"{n:,} {task.name} examples")
    out: list[Example] = []
    bar = tqdm(total=n, desc=f"prepare {task.name} {split} data", file=sys.stderr, disable=not progress or None)
    try:
        for ex in task.stream(check_split(split), seed):
            if len(out) >= n or (deadline is not None and time.time() >= deadline):
                break
            out.append(ex)
            bar.update(1)
    finally:
        bar.close()
    return out
