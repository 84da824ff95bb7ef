"""Scoring a trained model on a task with a sampler and schedule, and the task objective for the tuner."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..schedules import Schedule
from .base import Example, Task

__all__ = ["TaskEval", "evaluate", "task_objective", "check_checkpoint", "load_task_examples"]

#: Upper bound on the memory one evaluated example takes (the example, its prompt ids, output and scores).
EXAMPLE_BYTES = 4096


def load_task_examples(task: Task, split: str, n: int, seed: int = 0) -> list[Example]:
    """``task.examples(split, n, seed)`` after checking that ``n`` examples fit in memory."""
    from ..limits import check_memory

    check_memory(n * EXAMPLE_BYTES, f"{n:,} {task.name} examples")
    return task.examples(split, n, seed=seed)


def check_checkpoint(task: Task, model, where: str) -> None:
    """Refuse a model whose vocabulary or window does not fit ``task`` (a checkpoint of another task)."""
    cfg = model.config
    if cfg.vocab_size != task.vocab.size or cfg.max_len < task.prompt_len + task.gen_len or cfg.causal:
        raise ValueError(f"checkpoint {where!r} was not trained for the {task.name} task")


@dataclass(frozen=True)
class TaskEval:
    metric: str
    value: float
    stderr: float
    n: int
    nfe: float
    scores: tuple
    outputs: tuple  # the decoded answers, in the order of the examples


def evaluate(task: Task, model, examples: list[Example], sampler, seed: int = 0, batch_size: int = 128) -> TaskEval:
    """Generate an answer for every example with ``sampler`` and score it; mean, standard error, mean NFE."""
    from ..models import as_denoiser

    den = as_denoiser(model)
    g = torch.Generator().manual_seed(seed)
    scores, nfe, outputs = [], [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        out = sampler(den, task.prompts(batch), task.gen_len, generator=g)
        for ex, row in zip(batch, out.generated):
            outputs.append(task.vocab.decode(row.tolist()))
            scores.append(task.score(ex, outputs[-1]))
        nfe += out.nfe.tolist()
    s = np.asarray(scores, dtype=np.float64)
    stderr = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else math.nan
    return TaskEval(task.metric, float(s.mean()), stderr, len(s), float(np.mean(nfe)), tuple(scores), tuple(outputs))


def task_objective(task: Task, model, steps: int, *, split: str = "valid", n: int = 200, seed: int = 0, **options):
    """A :class:`~mdm_energy.tuning.TaskObjective` (maximised) scoring schedules of the fixed-count sampler
    with ``steps`` steps and ``options`` (e.g. ``remasking``, ``temperature``) on held-out ``split`` items."""
    from ..registry import sampler_options
    from ..sampling import FixedCountSampler
    from ..tuning import TaskObjective

    opts = sampler_options("fixed", steps=steps, **options)
    items = load_task_examples(task, split, n, seed)

    def score_fn(schedule: Schedule, subset: list[Example]) -> list[float]:
        return list(evaluate(task, model, subset, FixedCountSampler(**{**opts, "schedule": schedule}), seed=seed).scores)

    return TaskObjective(score_fn, items, direction="maximize", name=f"task:{task.name}:{opts['remasking']}:N{steps}")
