r"""Two objectives at once — quality up, mean model calls down — over a sampler's parameters (docs/design.md §6).

:func:`pareto_tune` searches the parameters of one sampler: the numbers of its schedule family (Beta
:math:`(a, b)` by default) and its number of steps (scheduled samplers), and every option the sampler
registry gives a search range — the threshold, entropy bound or factor of the adaptive samplers, whose
bounds :class:`ParetoSpace` sets — with Optuna's multi-objective TPE or random search. Each trial's
values are (task quality, mean model calls per answer); the **front** is the set of trials no other
trial beats on both. The study has the same guarantees as :func:`~mdm_energy.tuning.tune` (the claim
protocol of :mod:`.claims` on the storage of :mod:`.storage`): resume without redoing finished trials,
a dead worker's trial redone, a budget spent once across workers. The hand-crafted schedules
(fixed-count sampler at every step count of the space) and the adaptive baselines (threshold,
entropy-bounded) are scored once per study, so a report places the front among them on the same axes.
"""

from __future__ import annotations

import json
import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from .._parse import positive_int
from ..limits import STORAGE_PATIENCE, check_workers
from ..registry import sampler_spec
from ..schedules import HAND_CRAFTED, SHAPE_RANGE
from ._optuna import optuna, study_user_attr, trial_id
from .claims import (BETA, AskJob, ask_worker, claim_family, claim_objective, fail_stale, optuna_sampler, record,
                     run_workers)
from .objectives import Score
from .outage import check_patience
from .storage import creates_file, discard_if_empty, open_study
from .study import SearchSpace

__all__ = ["PARETO_STRATEGIES", "ParetoObjective", "SamplerObjective", "ParetoSpace", "ParetoPoint", "ParetoResult",
           "pareto_tune", "ADAPTIVE_BASELINES", "ParetoRunConfig"]

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
    """A :class:`ParetoObjective` from a function ``fn(sampler, options) -> (Score, mean calls)``; ``fixed`` are the
    options ``fn`` adds to every sampler that takes them (shown in each point's command, so it reproduces it)."""

    def __init__(self, fn: Callable[[str, dict[str, Any]], tuple[Score, float]], name: str,
                 fixed: "Mapping[str, Any] | None" = None) -> None:
        self.fn, self._name, self.fixed = fn, name, dict(fixed or {})

    @property
    def name(self) -> str:
        return self._name

    def evaluate(self, sampler: str, options: dict[str, Any]) -> tuple[Score, float]:
        return self.fn(sampler, options)


def _check_bounds(name: str, lo: float, hi: float, low: float, high: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and low <= lo < hi <= high):
        raise ValueError(f"{name} bounds must satisfy {low} <= low < high <= {high}, got ({lo!r}, {hi!r})")


#: Options the search never takes from the registry's ranges: the schedule (the family's numbers instead)
#: and the steps (chosen from :attr:`ParetoSpace.steps`).
_SCHEDULED = ("schedule", "steps")
_BETA_DEFAULT = (0.1, 1.0)
#: Options whose search range starts at another option's value in the same trial: WINO refuses a verification
#: threshold below its draft threshold, so the search never proposes one.
_AT_LEAST = {"verify_threshold": "threshold"}
#: Options whose search range ends at another option's value in the same trial: Prophet's gap thresholds fall as
#: decoding progresses (early >= mid >= late — the later the phase, the less certainty it asks for), so the search
#: keeps that order instead of proposing a rule that is stricter late than early.
_AT_MOST = {"gap_mid": "gap_early", "gap_late": "gap_mid"}


@dataclass(frozen=True)
class ParetoSpace:
    """Where the Pareto search looks: the schedule family (``family``, Beta by default) with the bounds of its
    numbers and the step counts (scheduled samplers), and the bounds of the threshold, entropy bound and
    factor (the samplers that take them; the registry's ranges for any other option it gives one).

    For Beta, ``a_bounds``/``b_bounds`` set the bounds of a and b (``bounds`` may too, and wins); for another
    family, ``bounds`` overrides its declared ranges by parameter name and ``a_bounds``/``b_bounds`` must be
    left alone. The family's numbers are searched on a log scale unless ``log`` is False, as they always were
    for Beta; each is rounded to 4 digits, so the schedule run is the one printed."""

    a_bounds: tuple[float, float] = _BETA_DEFAULT
    b_bounds: tuple[float, float] = _BETA_DEFAULT
    steps: tuple[int, ...] = (8,)
    threshold_bounds: tuple[float, float] = (0.3, 0.99)
    epsilon_bounds: tuple[float, float] = (0.01, 4.0)
    factor_bounds: tuple[float, float] = (0.25, 4.0)
    family: str = BETA
    bounds: "Mapping[str, tuple[float, float]] | None" = None
    log: bool = True

    def __post_init__(self) -> None:
        _check_bounds("threshold", *self.threshold_bounds, 0.0, 1.0)
        _check_bounds("epsilon", *self.epsilon_bounds, 1e-6, 1e6)
        _check_bounds("factor", *self.factor_bounds, 1e-6, 1e6)
        if not self.steps or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.steps):
            raise ValueError(f"steps must be positive integers, got {list(self.steps)!r}")
        bounds = dict(self.bounds or {})
        if self.family == BETA:
            _check_bounds("a", *self.a_bounds, *SHAPE_RANGE)
            _check_bounds("b", *self.b_bounds, *SHAPE_RANGE)
            bounds = {"a": tuple(self.a_bounds), "b": tuple(self.b_bounds), **bounds}
            for name in ("a", "b"):
                if name in bounds:
                    _check_bounds(name, *bounds[name], *SHAPE_RANGE)
        elif tuple(self.a_bounds) != _BETA_DEFAULT or tuple(self.b_bounds) != _BETA_DEFAULT:
            raise ValueError(f"a_bounds and b_bounds apply to the beta family only; give bounds for the "
                             f"{self.family!r} family's parameters")
        object.__setattr__(self, "_schedule", SearchSpace(self.family, bounds=bounds, log=self.log))

    @property
    def schedule_space(self) -> SearchSpace:
        """The search space of the schedule's numbers (scheduled samplers)."""
        return self._schedule  # type: ignore[attr-defined]

    def _options(self, sampler: str) -> list[tuple[str, float, float, bool]]:
        """``(option, low, high, log)`` of every option of ``sampler`` the search tunes, in the sampler's order:
        threshold (linear), epsilon and factor (log) with this space's bounds, any other with the registry's
        range."""
        spec = sampler_spec(sampler)
        own = {"threshold": (*self.threshold_bounds, False), "epsilon": (*self.epsilon_bounds, True),
               "factor": (*self.factor_bounds, True)}
        out = []
        for name in spec.defaults:
            if name in _SCHEDULED:
                continue
            if name in own:
                out.append((name, *own[name]))
            elif (rng := spec.params[name].search) is not None:
                out.append((name, float(rng.low), float(rng.high), bool(rng.log)))
        return out

    def searched(self, sampler: str) -> list[str]:
        """The Optuna parameter names a trial of ``sampler`` suggests; ``ValueError`` when there are none, when
        the family's ranges are missing, or when a family parameter is named like a sampler option."""
        names: list[str] = []
        scheduled = "schedule" in sampler_spec(sampler).defaults
        if scheduled:
            self.schedule_space.ranges()
            names += list(self.schedule_space.names) + (["steps"] if len(self.steps) > 1 else [])
        names += [name for name, *_ in self._options(sampler)]
        if not names:
            raise ValueError(f"the {sampler} sampler has no parameter this search can tune")
        clash = sorted({n for n in names if names.count(n) > 1}
                       | (set(self.schedule_space.names) & {"steps"} if scheduled else set()))
        if clash:
            raise ValueError(f"the {self.family} family's parameter {clash[0]!r} has the name of a {sampler} option")
        return names

    def suggest(self, trial, sampler: str) -> dict[str, Any]:
        """The sampler options of one trial (Optuna suggests each searched parameter)."""
        takes = sampler_spec(sampler).defaults
        out: dict[str, Any] = {}
        if "schedule" in takes:
            values = self.schedule_space.suggest(trial)
            out["schedule"] = self.schedule_space.build([round(v, 4) for v in values]).spec  # the schedule run is the one printed
            out["steps"] = trial.suggest_categorical("steps", list(self.steps)) if len(self.steps) > 1 else self.steps[0]
        for name, lo, hi, log in self._options(sampler):
            if _AT_LEAST.get(name) in out:  # searched from the value it may not fall below
                lo = max(lo, out[_AT_LEAST[name]])
                hi = max(hi, lo)
            if _AT_MOST.get(name) in out:  # searched up to the value it may not exceed
                hi = min(hi, out[_AT_MOST[name]])
                lo = min(lo, hi)
            if isinstance(takes.get(name), int) and not isinstance(takes.get(name), bool):
                out[name] = trial.suggest_int(name, math.ceil(lo), math.floor(hi), log=log)
            else:
                out[name] = round(trial.suggest_float(name, lo, hi, log=log), 4)
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
            name = f"--{k.replace('_', '-')}"
            if isinstance(v, bool):  # a switch: its bare flag when on (the switches are off by default)
                parts += [name] if v else []
            else:
                parts.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
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
    options = json.loads(trial.user_attrs["options"]) if "options" in trial.user_attrs else {}

    def evaluate() -> tuple[Score, list[float]]:
        score, nfe = objective.evaluate(sampler, options)
        return score, [score.value, float(nfe)]

    record(study, trial_id(trial), trial.number, evaluate)


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
    storage_patience: float = STORAGE_PATIENCE,
) -> ParetoResult:
    """Run (or resume) a two-objective search of ``sampler``'s parameters and return its front, the baselines
    and every trial (see the module docstring). ``budget`` trials in all, over every worker and run. The
    default study name is ``pareto:OBJECTIVE:SAMPLER:STRATEGY``, with the family before the strategy when a
    scheduled sampler searches a family other than Beta. On a database server every worker rides out an outage
    of up to ``storage_patience`` seconds, then stops with :class:`~.outage.StorageOutage` (rerun to resume)."""
    spec = sampler_spec(sampler)  # an unknown name: the registry's message
    if strategy not in PARETO_STRATEGIES:
        raise ValueError(f"strategy {strategy!r} cannot search two objectives at once (use: {', '.join(PARETO_STRATEGIES)})")
    positive_int(budget, "budget")
    check_workers(positive_int(workers, "workers"))
    if storage is None and workers > 1:
        raise ValueError("an in-memory study (storage=None) cannot be shared by worker processes; give a storage URL")
    space = space or ParetoSpace()
    space.searched(sampler)  # a sampler with nothing to tune, or a family without ranges
    family = space.family if spec.scheduled else None
    infix = f"{family}:" if family not in (None, BETA) else ""
    config = ParetoRunConfig(sampler=sampler, strategy=strategy, budget=budget, storage=storage,
                             name=study_name or f"pareto:{objective.name}:{sampler}:{infix}{strategy}", workers=workers,
                             seed=seed, space=space, storage_patience=check_patience(storage_patience))
    created_file = creates_file(storage)
    study = open_study(storage, config.name, ("maximize", "minimize"), config.storage_patience)
    try:
        claim_objective(study, config.name, _Named(f"pareto:{objective.name}:{sampler}"))
        if family is not None:
            claim_family(study, config.name, family)
        return _run(study, objective, config, progress)
    except BaseException:
        discard_if_empty(storage, config.name, created_file)
        raise


@dataclass(frozen=True)
class _Named:
    name: str


@dataclass(frozen=True)
class ParetoRunConfig:
    """One Pareto run, as :func:`pareto_tune` checked it: the sampler, the strategy and its budget, where the
    study lives and its name, how many workers share it, the seed, the search space and how long its workers
    wait for a lost database server."""

    sampler: str
    strategy: str
    budget: int
    storage: "str | None"
    name: str
    workers: int
    seed: int
    space: ParetoSpace
    storage_patience: float = STORAGE_PATIENCE


def _run(study, objective: ParetoObjective, config: ParetoRunConfig,
         progress: "Callable[[int], None] | None") -> ParetoResult:
    fail_stale(study)
    run_id = uuid.uuid4().hex
    for label, base, options in _baselines(config.space):  # once per study
        key = f"baseline:{label}"
        if study_user_attr(study, key) is None:
            score, nfe = objective.evaluate(base, options)
            study.set_user_attr(key, {"sampler": base, "options": options, "quality": score.value,
                                      "stderr": score.stderr, "n": score.n, "nfe": float(nfe)})
    opener = ((lambda: study) if config.workers == 1
              else partial(open_study, config.storage, config.name, ("maximize", "minimize"), config.storage_patience))
    job = AskJob("pareto", config.budget, run_id, partial(optuna_sampler, config.strategy, config.seed),
                 partial(_propose, config.space, config.sampler), partial(_record, objective, config.sampler))

    def tick() -> None:
        if progress:
            progress(len(_complete(study)))

    run_workers(ask_worker, (opener, objective, job), config.workers, tick, config.storage)
    tick()
    return _result(study, config.sampler, config.strategy, run_id, getattr(objective, "fixed", {}))


def _complete(study) -> list:
    S = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.user_attrs.get("strategy") == "pareto"]


def _result(study, sampler: str, strategy: str, run_id: str, fixed: "Mapping[str, Any]") -> ParetoResult:
    S = optuna().trial.TrialState
    done = _complete(study)

    def run_with(name: str, options: dict) -> dict:  # the fixed options the run added, then the searched ones
        return {**{k: v for k, v in fixed.items() if k in sampler_spec(name).params}, **options}

    points = [ParetoPoint(sampler, run_with(sampler, json.loads(t.user_attrs["options"])), t.values[0],
                          t.user_attrs.get("stderr") or 0.0, t.values[1], t.user_attrs.get("n"), t.number) for t in done]
    baselines = [ParetoPoint(v["sampler"], run_with(v["sampler"], v["options"]), v["quality"], v["stderr"] or 0.0,
                             v["nfe"], v["n"], label=k[len("baseline:"):])
                 for k, v in sorted(study.user_attrs.items()) if k.startswith("baseline:")]
    failed = sum(1 for t in study.get_trials(deepcopy=False, states=(S.FAIL,)) if not t.user_attrs.get("stale"))
    if not points:
        raise RuntimeError("no trial completed: every evaluation failed (see the trials' error attributes)")
    return ParetoResult(sampler=sampler, strategy=strategy, front=front_of(points), baselines=baselines, trials=points,
                        evaluations=len(points), new_evaluations=sum(1 for t in done if t.user_attrs.get("run") == run_id),
                        failed=failed)
