"""Scoring a trained model on a task with a sampler and schedule, and the task objective for the tuner."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..schedules import Schedule
from .base import Example, Task

__all__ = ["TaskEval", "evaluate", "task_objective", "task_pareto_objective", "check_checkpoint", "load_task_examples"]

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
    item_nfe: tuple = ()  # the model calls each answer took


def evaluate(task: Task, model, examples: list[Example], sampler, seed: int = 0, batch_size: int = 128,
             item_seeds: "list[int] | None" = None) -> TaskEval:
    """Generate an answer for every example with ``sampler`` and score it; mean, standard error, mean NFE.

    ``model`` is a trained :class:`~mdm_energy.models.MDMTransformer` or any denoiser already (an exact law's,
    :class:`~mdm_energy.sampling.ChainDenoiser`). ``item_seeds`` (one per example) seed each example's random draws on
    its own, so its answer does not depend on the other examples it is batched with; otherwise one generator
    seeded by ``seed`` serves all."""
    from ..models import as_denoiser
    from ..sampling import check_denoiser

    if item_seeds is not None and len(item_seeds) != len(examples):
        raise ValueError(f"item_seeds must give one seed per example ({len(examples)}), got {len(item_seeds)}")
    den = as_denoiser(model) if isinstance(model, torch.nn.Module) else model
    check_denoiser(den)
    g = torch.Generator().manual_seed(seed)
    scores, nfe, outputs = [], [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        seeds = None if item_seeds is None else item_seeds[start:start + batch_size]
        out = sampler(den, task.prompts(batch), task.gen_len, generator=g, seeds=seeds)
        for ex, row in zip(batch, out.generated):
            outputs.append(task.vocab.decode(row.tolist()))
            scores.append(task.score(ex, outputs[-1]))
        nfe += out.nfe.tolist()
    s = np.asarray(scores, dtype=np.float64)
    stderr = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else math.nan
    return TaskEval(task.metric, float(s.mean()), stderr, len(s), float(np.mean(nfe)), tuple(scores), tuple(outputs),
                    tuple(int(v) for v in nfe))


def task_objective(task: Task, model, steps: int, *, split: str = "valid", n: int = 200, seed: int = 0, **options):
    """A :class:`~mdm_energy.tuning.TaskObjective` (maximised) scoring schedules of the fixed-count sampler
    with ``steps`` steps and ``options`` (e.g. ``remasking``, ``temperature``) on held-out ``split`` items."""
    from ..registry import sampler_options
    from ..sampling import FixedCountSampler
    from ..tuning import TaskObjective

    opts = sampler_options("fixed", steps=steps, **options)
    items = list(enumerate(load_task_examples(task, split, n, seed)))

    def score_fn(schedule: Schedule, subset: list[tuple[int, Example]]) -> list[float]:
        """Each item's draws are seeded by its index, so its score is the same in any subset (stored scores
        are reused exactly)."""
        sampler = FixedCountSampler(**{**opts, "schedule": schedule})
        seeds = [seed * 1_000_003 + i for i, _ in subset]
        return list(evaluate(task, model, [ex for _, ex in subset], sampler, item_seeds=seeds).scores)

    tag = f":{task.score_tag}" if task.score_tag else ""  # a study's stored item scores are of this score rule
    return TaskObjective(score_fn, items, direction="maximize",
                         name=f"task:{task.name}:{opts['remasking']}:N{steps}{tag}")


def task_pareto_objective(task: Task, model, *, split: str = "valid", n: int = 200, seed: int = 0, **fixed):
    """A :class:`~mdm_energy.tuning.pareto.SamplerObjective` for :func:`~mdm_energy.tuning.pareto.pareto_tune`:
    any sampler configuration scored on the same held-out ``split`` items with the same per-item seeds
    (paired across configurations), returning the task metric and the mean model calls per answer.
    ``fixed`` options (e.g. ``temperature``) apply to every sampler that takes them."""
    from ..registry import sampler_spec
    from ..sampling import make_sampler
    from ..tuning.objectives import Score
    from ..tuning.pareto import SamplerObjective

    items = load_task_examples(task, split, n, seed)
    seeds = [seed * 1_000_003 + i for i in range(len(items))]

    def fn(sampler: str, options: dict) -> tuple[Score, float]:
        takes = sampler_spec(sampler).defaults
        s = make_sampler(sampler, **{k: v for k, v in fixed.items() if k in takes}, **options)
        r = evaluate(task, model, items, s, item_seeds=seeds)
        return Score(r.value, r.n, r.stderr), r.nfe

    extra = "".join(f":{k}={v}" for k, v in sorted(fixed.items())) + (f":{task.score_tag}" if task.score_tag else "")
    return SamplerObjective(fn, name=f"task:{task.name}:{split}{len(items)}{extra}", fixed=fixed)
