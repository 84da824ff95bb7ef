"""Objectives: a schedule in, a score with its direction, sample size and standard error out (docs/design.md §6)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..schedules import Schedule, parse_schedule

__all__ = ["Score", "Objective", "ExactKLObjective", "CallableObjective", "ItemObjective", "TaskObjective"]


@dataclass(frozen=True)
class Score:
    """A score, the number of items it averages (``None`` for an exact value) and its standard error."""

    value: float
    n: "int | None" = None
    stderr: float = 0.0


class Objective(ABC):
    """Maps a schedule to a :class:`Score`; ``direction`` is ``"minimize"`` or ``"maximize"``.

    ``size`` (the number of items to score on) and ``seed`` (which random subset) matter to
    objectives that sample a task; ``max_size`` is how many items there are (``None``: exact).
    """

    direction: str = "minimize"
    max_size: "int | None" = None

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score: ...

    def better(self, x: float, y: float) -> bool:
        """Whether score ``x`` beats ``y`` in this objective's direction."""
        return x < y if self.direction == "minimize" else x > y


class ExactKLObjective(Objective):
    """Exact KL(q ‖ sampler) in nats of a sampler on an explicit law (minimised; exact, so n = None, s.e. 0).

    ``remasking`` is the fixed-count sampler's rule (default ``low_confidence``); KLs are memoised
    (:class:`~mdm_energy.exact.KLObjective`).
    """

    direction = "minimize"

    def __init__(self, dist, sampler: str, steps: int, remasking: "str | None" = None,
                 options: "Mapping[str, Any] | None" = None) -> None:
        from ..exact import ExactDenoiser, KLObjective, load_distribution

        den = dist if isinstance(dist, ExactDenoiser) else ExactDenoiser(load_distribution(dist))
        self.kl = KLObjective(den, sampler, steps, remasking, options)
        self.den, self.sampler, self.steps, self.remasking = den, sampler, int(steps), self.kl.remasking
        self.options = self.kl.options

    @property
    def name(self) -> str:
        rule = f"/{self.remasking}" if self.remasking else ""
        extra = "".join(f":{k}={v}" for k, v in sorted(self.options.items()))  # e.g. ReMDM's sigma and eta
        return f"exact-kl:{self.den.dist.name}:{self.sampler}{rule}{extra}:N{self.steps}"

    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score:
        return Score(float(self.kl(parse_schedule(schedule))))


class CallableObjective(Objective):
    """Any Python function of a schedule as an objective: ``fn(schedule) -> float`` (or a :class:`Score`).

        def fn(schedule):                       # e.g. run your own benchmark harness
            return my_accuracy(model, schedule)
        tune(CallableObjective(fn, direction="maximize", name="my-bench"), strategy="tpe", budget=30)

    ``name`` identifies the objective in its study (a study holds one objective). For a mean over items
    whose scores should be stored and reused (successive halving), use :class:`TaskObjective`.
    """

    def __init__(self, fn: Callable[[Schedule], "float | Score"], direction: str = "maximize",
                 name: str = "callable") -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        if not callable(fn):
            raise ValueError(f"fn must be callable, got {fn!r}")
        self.fn, self.direction, self._name = fn, direction, name

    @property
    def name(self) -> str:
        return self._name

    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score:
        out = self.fn(parse_schedule(schedule))
        return out if isinstance(out, Score) else Score(float(out))


class ItemObjective(Objective):
    """An objective that is the mean of per-item scores (a task's problems, a benchmark's documents).

    Subclasses give ``item_count`` and ``score_items(schedule, ids) -> one score per id``. ``evaluate(schedule,
    size, seed)`` scores the first ``size`` items of a ``seed``-ed permutation — the subsets of one seed are
    nested, so a larger subset contains every smaller one — and reports the mean with its standard error.
    Item scores go to ``store`` (an :class:`~mdm_energy.tuning.items.ItemStore`; the tuner binds the study's),
    written after every ``chunk`` items: a schedule re-scored on a larger subset, or a trial resumed after
    its worker died, never scores an item twice. A subclass's item scores must not depend on which other
    items are scored with it (seed randomness per item), so that stored scores are exactly reusable.
    """

    chunk: int = 64

    def __init__(self) -> None:
        from .items import ItemStore

        self.store: ItemStore = ItemStore()

    @property
    def max_size(self) -> int:  # type: ignore[override]
        return self.item_count

    @property
    @abstractmethod
    def item_count(self) -> int: ...

    @abstractmethod
    def score_items(self, schedule: Schedule, ids: Sequence[int]) -> Sequence[float]: ...

    def subset(self, size: "int | None", seed: int) -> list[int]:
        n = self.item_count if size is None else min(int(size), self.item_count)
        return [int(i) for i in np.random.default_rng(seed).permutation(self.item_count)[:n]]

    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score:
        sched = parse_schedule(schedule)
        ids = self.subset(size, seed)
        have = self.store.get(sched.spec)
        todo = [i for i in ids if i not in have]
        for start in range(0, len(todo), self.chunk):
            part = todo[start:start + self.chunk]
            scores = np.asarray(self.score_items(sched, part), dtype=np.float64)
            if scores.shape != (len(part),):
                raise ValueError(f"score_items must return one score per item ({len(part)}), got shape {scores.shape}")
            new = {i: float(v) for i, v in zip(part, scores)}
            self.store.put(sched.spec, new)
            have.update(new)
        values = np.array([have[i] for i in ids], dtype=np.float64)
        n = len(values)
        stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return Score(float(values.mean()), n, stderr)


class TaskObjective(ItemObjective):
    """A task score from sampling a model: ``score_fn(schedule, items) -> one score per item``.

    ``evaluate(schedule, size, seed)`` scores a random subset of ``size`` items (all items when
    ``size`` is ``None``), chosen by ``seed``, and reports the mean with its standard error. ``score_fn``
    must score each item independently of the others it is called with (see :class:`ItemObjective`).
    """

    def __init__(self, score_fn: Callable[[Schedule, Sequence], Sequence[float]], items: Sequence,
                 direction: str = "maximize", name: str = "task") -> None:
        super().__init__()
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        if len(items) < 1:
            raise ValueError("a task objective needs at least one item")
        self.score_fn, self.items, self.direction, self._name = score_fn, list(items), direction, name

    @property
    def name(self) -> str:
        return self._name

    @property
    def item_count(self) -> int:
        return len(self.items)

    def score_items(self, schedule: Schedule, ids: Sequence[int]) -> Sequence[float]:
        return self.score_fn(schedule, [self.items[i] for i in ids])
