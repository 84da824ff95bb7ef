r"""Two objectives at once — quality up, mean model calls down — over a sampler's parameters (docs/design.md §6).

:func:`pareto_tune` searches the parameters of one sampler: :math:`(a, b)` of its Beta schedule and its
number of steps (scheduled samplers), and its threshold, entropy bound or factor (adaptive ones), with
Optuna's multi-objective TPE or random search. Each trial's values are (task quality, mean model calls
per answer); the **front** is the set of trials no other trial beats on both. The study has the same
guarantees as :func:`~mdm_energy.tuning.tune`: Optuna storage, resume without redoing finished trials, a
dead worker's trial redone, a budget spent once across workers. The hand-crafted schedules (fixed-count
sampler at every step count of the space) and the adaptive baselines (threshold, entropy-bounded) are
scored once per study, so a report places the front among them on the same axes.
"""

from __future__ import annotations

import json
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

from ..registry import sampler_spec
from ..schedules import HAND_CRAFTED, Beta
from ._optuna import finish_trial, heartbeat, optuna, set_trial_attr, trial_id
from .objectives import Score
from .study import (AskJob, _claim_objective, _discard_if_empty, _fail_stale, _file_of, _run_workers, ask_worker,
                    open_study, optuna_sampler)

__all__ = ["PARETO_STRATEGIES", "ParetoObjective", "SamplerObjective", "ParetoSpace", "ParetoPoint", "ParetoResult",
           "pareto_tune", "ADAPTIVE_BASELINES"]

#: Strategies that search two objectives at once (grid and halving rank by one score).
PARETO_STRATEGIES = ("tpe", "random")
#: The adaptive decoders every Pareto study places beside its front.
ADAPTIVE_BASELINES: tuple[tuple[str, dict[str, float]], ...] = (
    ("threshold", {"threshold": 0.5}), ("threshold", {"threshold": 0.7}), ("threshold", {"threshold": 0.9}),
    ("entropy-bounded", {"epsilon": 0.1}), ("entropy-bounded", {"epsilon": 0.5}), ("entropy-bounded", {"epsilon": 2.0}),
)


class ParetoObjective(ABC):
    """Scores one configuration of a sampler: its quality (a :class:`Score`, maximised) and its mean number
    of model calls per answer (minimised)."""

    @property
    @abstractmethod
    def name(self) -> str: ...

    @abstractmethod
    def evaluate(self, sampler: str, options: dict[str, Any]) -> tuple[Score, float]: ...


class SamplerObjective(ParetoObjective):
    """A :class:`ParetoObjective` from a function ``fn(sampler, options) -> (Score, mean calls)``."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], tuple[Score, float]], name: str) -> None:
        self.fn, self._name = fn, name

    @property
    def name(self) -> str:
        return self._name

    def evaluate(self, sampler: str, options: dict[str, Any]) -> tuple[Score, float]:
        return self.fn(sampler, options)


def _check_bounds(name: str, lo: float, hi: float, low: float, high: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo < hi <= high):
        raise ValueError(f"{name} bounds must satisfy {low} <= low < high <= {high}, got ({lo!r}, {hi!r})")


@dataclass(frozen=True)
class ParetoSpace:
    """Where the Pareto search looks: Beta (a, b) bounds and step counts (scheduled samplers), and the bounds
    of the threshold, entropy bound and factor (the samplers that take them)."""

    a_bounds: tuple[float, float] = (0.1, 1.0)
    b_bounds: tuple[float, float] = (0.1, 1.0)
    steps: tuple[int, ...] = (8,)
    threshold_bounds: tuple[float, float] = (0.3, 0.99)
    epsilon_bounds: tuple[float, float] = (0.01, 4.0)
    factor_bounds: tuple[float, float] = (0.25, 4.0)

    def __post_init__(self) -> None:
        _check_bounds("a", *self.a_bounds, 1e-3, 1e3)
        _check_bounds("b", *self.b_bounds, 1e-3, 1e3)
        _check_bounds("threshold", *self.threshold_bounds, 0.0, 1.0)
        _check_bounds("epsilon", *self.epsilon_bounds, 1e-6, 1e6)
        _check_bounds("factor", *self.factor_bounds, 1e-6, 1e6)
        if not self.steps or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.steps):
            raise ValueError(f"steps must be positive integers, got {list(self.steps)!r}")

    def suggest(self, trial, sampler: str) -> dict[str, Any]:
        """The sampler options of one trial (Optuna suggests each searched parameter)."""
        takes = sampler_spec(sampler).defaults
        out: dict[str, Any] = {}
        if "schedule" in takes:
            a = trial.suggest_float("a", *self.a_bounds, log=True)
            b = trial.suggest_float("b", *self.b_bounds, log=True)
            out["schedule"] = Beta(round(a, 4), round(b, 4)).spec  # the schedule run is the one printed
            out["steps"] = trial.suggest_categorical("steps", list(self.steps)) if len(self.steps) > 1 else self.steps[0]
        for key, bounds, log in (("threshold", self.threshold_bounds, False), ("epsilon", self.epsilon_bounds, True),
                                 ("factor", self.factor_bounds, True)):
            if key in takes:
                out[key] = round(trial.suggest_float(key, *bounds, log=log), 4)
        if not out:
            raise ValueError(f"the {sampler} sampler has no parameter this search can tune")
        return out


@dataclass(frozen=True)
class ParetoPoint:
    """One scored configuration: the sampler, its options, quality (± s.e. over ``n`` items), mean calls."""

    sampler: str
    options: dict[str, Any]
    quality: float
    stderr: float
    nfe: float
    n: "int | None" = None
    number: "int | None" = None  # the trial number (None for a baseline)
    label: str = ""

    def command(self) -> str:
        """The command-line arguments that reproduce this configuration."""
        parts = [f"--sampler {self.sampler}"]
        for k, v in self.options.items():
            parts.append(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}")
        return " ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "command": self.command()}


def dominates(p: ParetoPoint, q: ParetoPoint) -> bool:
    """``p`` is at least as good as ``q`` on both objectives and better on one."""
    return p.quality >= q.quality and p.nfe <= q.nfe and (p.quality > q.quality or p.nfe < q.nfe)


def front_of(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The points no other point dominates, by increasing mean calls."""
    return sorted((p for p in points if not any(dominates(q, p) for q in points)), key=lambda p: (p.nfe, -p.quality))


@dataclass(frozen=True)
class ParetoResult:
    sampler: str
    strategy: str
    front: list[ParetoPoint]
    baselines: list[ParetoPoint]
    trials: list[ParetoPoint]
    evaluations: int
    new_evaluations: int
    failed: int = 0
    meta: dict = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "strategy": self.strategy, "evaluations": self.evaluations,
                "new_evaluations": self.new_evaluations, "failed": self.failed,
                "front": [p.as_json() for p in self.front], "baselines": [p.as_json() for p in self.baselines]}


def _baselines(space: ParetoSpace) -> list[tuple[str, str, dict[str, Any]]]:
    out = [(f"{name} N={n}", "fixed", {"schedule": name, "steps": n}) for n in space.steps for name in HAND_CRAFTED]
    out += [(f"{s} {next(iter(o))}={next(iter(o.values()))}", s, dict(o)) for s, o in ADAPTIVE_BASELINES]
    return out


def _propose(space: ParetoSpace, sampler: str, trial) -> dict[str, Any]:
    options = space.suggest(trial, sampler)
    return {"options": json.dumps(options, sort_keys=True), "key": json.dumps(options, sort_keys=True)}


def _record(objective: ParetoObjective, sampler: str, study, trial) -> None:
    tid, number = trial_id(trial), trial.number
    options = json.loads(trial.user_attrs["options"]) if "options" in trial.user_attrs else {}
    try:
        with heartbeat(study, tid):
            score, nfe = objective.evaluate(sampler, options)
        if not (math.isfinite(score.value) and math.isfinite(nfe)):
            raise ValueError(f"objective returned a non-finite score {score.value!r} or mean calls {nfe!r}")
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        set_trial_attr(study, tid, "error", f"{type(exc).__name__}: {exc}")
        finish_trial(study, number, "FAIL")
        return
    set_trial_attr(study, tid, "n", score.n)
    set_trial_attr(study, tid, "stderr", score.stderr)
    finish_trial(study, number, "COMPLETE", [score.value, float(nfe)])


def pareto_tune(
    objective: ParetoObjective,
    *,
    sampler: str,
    strategy: str = "tpe",
    budget: int = 40,
    storage: "str | None" = "sqlite:///mdm-energy-studies.db",
    study_name: "str | None" = None,
    workers: int = 1,
    seed: int = 0,
    space: "ParetoSpace | None" = None,
    progress: "Callable[[int], None] | None" = None,
) -> ParetoResult:
    """Run (or resume) a two-objective search of ``sampler``'s parameters and return its front, the baselines
    and every trial (see the module docstring). ``budget`` trials in all, over every worker and run."""
    from ..limits import check_workers

    sampler_spec(sampler)  # an unknown name: the registry's message
    if strategy not in PARETO_STRATEGIES:
        raise ValueError(f"strategy {strategy!r} cannot search two objectives at once (use: {', '.join(PARETO_STRATEGIES)})")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    check_workers(workers)
    if storage is None and workers > 1:
        raise ValueError("an in-memory study (storage=None) cannot be shared by worker processes; give a storage URL")
    space = space or ParetoSpace()
    space.suggest(optuna().trial.FixedTrial({"a": 0.5, "b": 0.5, "steps": space.steps[0], "threshold": 0.5,
                                             "epsilon": 0.5, "factor": 1.0}), sampler)  # a sampler with nothing to tune
    name = study_name or f"pareto:{objective.name}:{sampler}:{strategy}"
    path = _file_of(storage) if storage else None
    created_file = path is not None and not path.exists()
    study = open_study(storage, name, ("maximize", "minimize"))
    try:
        _claim_objective(study, name, _Named(f"pareto:{objective.name}:{sampler}"))
        return _run(study, objective, sampler, strategy, budget, storage, name, workers, seed, space, progress)
    except BaseException:
        _discard_if_empty(storage, name, created_file)
        raise


@dataclass(frozen=True)
class _Named:
    name: str


def _run(study, objective, sampler, strategy, budget, storage, name, workers, seed, space, progress) -> ParetoResult:
    _fail_stale(study)
    run_id = uuid.uuid4().hex
    for label, base, options in _baselines(space):  # once per study
        key = f"baseline:{label}"
        if key not in study.user_attrs:
            score, nfe = objective.evaluate(base, options)
            study.set_user_attr(key, {"sampler": base, "options": options, "quality": score.value,
                                      "stderr": score.stderr, "n": score.n, "nfe": float(nfe)})
    opener = (lambda: study) if workers == 1 else partial(open_study, storage, name, ("maximize", "minimize"))
    job = AskJob("pareto", budget, run_id, partial(optuna_sampler, strategy, seed), partial(_propose, space, sampler),
                 partial(_record, objective, sampler))

    def tick() -> None:
        if progress:
            progress(len(_complete(study)))

    _run_workers(ask_worker, (opener, objective, job), workers, tick)
    tick()
    return _result(study, sampler, strategy, run_id)


def _complete(study) -> list:
    S = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.user_attrs.get("strategy") == "pareto"]


def _result(study, sampler: str, strategy: str, run_id: str) -> ParetoResult:
    S = optuna().trial.TrialState
    done = _complete(study)
    points = [ParetoPoint(sampler, json.loads(t.user_attrs["options"]), t.values[0], t.user_attrs.get("stderr") or 0.0,
                          t.values[1], t.user_attrs.get("n"), t.number) for t in done]
    baselines = [ParetoPoint(v["sampler"], v["options"], v["quality"], v["stderr"] or 0.0, v["nfe"], v["n"],
                             label=k[len("baseline:"):])
                 for k, v in sorted(study.user_attrs.items()) if k.startswith("baseline:")]
    failed = sum(1 for t in study.get_trials(deepcopy=False, states=(S.FAIL,)) if not t.user_attrs.get("stale"))
    if not points:
        raise RuntimeError("no trial completed: every evaluation failed (see the trials' error attributes)")
    return ParetoResult(sampler=sampler, strategy=strategy, front=front_of(points), baselines=baselines, trials=points,
                        evaluations=len(points), new_evaluations=sum(1 for t in done if t.user_attrs.get("run") == run_id),
                        failed=failed)
