"""Objectives: a schedule in, a score with its direction, sample size and standard error out (docs/design.md §6)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..schedules import Schedule, parse_schedule

__all__ = ["Score", "Objective", "ExactKLObjective", "TaskObjective"]


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

    def __init__(self, dist, sampler: str, steps: int, remasking: "str | None" = None) -> None:
        from ..exact import ExactDenoiser, KLObjective, load_distribution

        den = dist if isinstance(dist, ExactDenoiser) else ExactDenoiser(load_distribution(dist))
        self.kl = KLObjective(den, sampler, steps, remasking)
        self.den, self.sampler, self.steps, self.remasking = den, sampler, int(steps), self.kl.remasking

    @property
    def name(self) -> str:
        rule = f"/{self.remasking}" if self.remasking else ""
        return f"exact-kl:{self.den.dist.name}:{self.sampler}{rule}:N{self.steps}"

    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score:
        return Score(float(self.kl(parse_schedule(schedule))))


class TaskObjective(Objective):
    """A task score from sampling a model: ``score_fn(schedule, items) -> one score per item``.

    ``evaluate(schedule, size, seed)`` scores a random subset of ``size`` items (all items when
    ``size`` is ``None``), chosen by ``seed``, and reports the mean with its standard error.
    """

    def __init__(self, score_fn: Callable[[Schedule, Sequence], Sequence[float]], items: Sequence,
                 direction: str = "maximize", name: str = "task") -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        if len(items) < 1:
            raise ValueError("a task objective needs at least one item")
        self.score_fn, self.items, self.direction, self._name = score_fn, list(items), direction, name
        self.max_size = len(self.items)

    @property
    def name(self) -> str:
        return self._name

    def evaluate(self, schedule: "Schedule | str", size: "int | None" = None, seed: int = 0) -> Score:
        n = self.max_size if size is None else min(int(size), self.max_size)
        idx = np.random.default_rng(seed).permutation(self.max_size)[:n]
        scores = np.asarray(self.score_fn(parse_schedule(schedule), [self.items[i] for i in idx]), dtype=np.float64)
        if scores.shape != (n,):
            raise ValueError(f"score_fn must return one score per item ({n}), got shape {scores.shape}")
        stderr = float(scores.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        return Score(float(scores.mean()), n, stderr)
