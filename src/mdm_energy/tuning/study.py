r"""The strategy runner: resumable, parallel tuning of a parametric schedule family (docs/design.md §6).

:func:`tune` searches the numbers of one registered schedule family (Beta ``a, b`` by default; any
family whose :class:`~mdm_energy.schedules.ScheduleFamily` declares its parameters) for the best score
of an objective. A study lives in Optuna storage (:mod:`.storage`); workers share it through the
trial-claim protocol (:mod:`.claims`), which makes resume, stale workers, no duplicate grid points and
failures safe. This module holds what is particular to a search: the :class:`SearchSpace`, the
strategies and the result.

Strategies: ``grid`` (the paper's 10×10 Beta grid by default, or a family's declared grid),
``halving`` (successive halving: every grid point on a small random subset, the best ``1/eta``
re-scored on ``eta`` times larger subsets, as the paper did by hand), ``tpe`` (Optuna's TPE) and
``random`` (Optuna's random sampler). This is the one grid runner of the package: the exact engine's
Beta grids (:mod:`.exact_grid`) run through it too.

Stored trials have one Optuna parameter per family parameter, named after it (``a`` and ``b`` for
Beta), so a Beta study written before families resumes unchanged.
"""

from __future__ import annotations

import itertools
import math
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Callable, Mapping

import numpy as np

from .._parse import positive_int
from ..limits import STORAGE_PATIENCE, check_workers
from ..schedules import HAND_CRAFTED, Schedule, ScheduleFamily, ScheduleParam, schedule_family
from ._optuna import optuna, trial_id
from .claims import (BETA, AskJob, ask_worker, bind_objective, claim_family, claim_objective, fail_stale,
                     family_attrs, family_of_trial, optuna_sampler, point_key, points_worker, record, run_workers,
                     scored, stored_distribution)
from .objectives import Objective, Score
from .outage import check_patience
from .storage import DEFAULT_STORAGE, check_storage, creates_file, discard_if_empty, open_study

__all__ = ["STRATEGIES", "BASELINES", "PAPER_GRID", "DEFAULT_STORAGE", "MAX_TRIALS", "SearchSpace", "Trial",
           "TuneResult", "RunConfig", "check_storage", "open_study", "tune", "study_trials"]

STRATEGIES = ("grid", "halving", "tpe", "random")
BASELINES = HAND_CRAFTED
#: The paper's grid of a and b values: 0.1, 0.2, ..., 1.0 (Beta's declared default grid).
PAPER_GRID = tuple(round(0.1 * k, 1) for k in range(1, 11))
#: The most trials one study runs: each worker scans the study's trials before claiming a point, so the
#: cost of a study grows with the square of its size.
MAX_TRIALS = 2_500


def _numbers(value: Any, what: str) -> tuple[float, ...]:
    """``value`` as a tuple of finite floats, or ``ValueError`` naming ``what`` and the value."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers, got {value!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be finite numbers, got {list(out)!r}")
    return out


@dataclass(frozen=True)
class SearchSpace:
    """Where a study searches: a schedule family (``"beta"`` by default), the bounds of its parameters for
    ``tpe``/``random`` and their grid values for ``grid``/``halving``.

    Bounds and grid values default to the family's declaration (Beta: each of ``a``, ``b`` in [0.1, 1] and
    the paper's grid 0.1, ..., 1.0); ``bounds``/``values`` override them per parameter name. ``log``
    searches every parameter on a log scale (a parameter declared ``log`` always is). Refused with one
    ``ValueError`` naming the bad value: an unknown family or parameter name, a family without parameters,
    a parameter with neither a range nor grid values, bounds that are not finite with low < high (and low > 0
    on a log scale), and bounds or grid values the family cannot build a schedule from. A missing range or
    grid is refused when a strategy needs it (:meth:`ranges`, :meth:`grid`).
    """

    family: str = BETA
    bounds: "Mapping[str, tuple[float, float]] | None" = None
    values: "Mapping[str, tuple[float, ...]] | None" = None
    log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.family, str):
            raise ValueError(f"family must be the name of a schedule family, got {self.family!r}")
        fam = schedule_family(self.family)
        if fam.params is None:
            raise ValueError(f"schedule family {fam.name!r} takes any count of numbers, so it has no search space")
        if not fam.params:
            raise ValueError(f"schedule family {fam.name!r} has no parameters to tune")
        names = [p.name for p in fam.params]
        bounds = dict(self.bounds or {})
        values = dict(self.values or {})
        for given in (bounds, values):
            for key in given:
                if key not in names:
                    raise ValueError(f"unknown parameter {key!r} of schedule family {fam.name!r} "
                                     f"(its parameters: {', '.join(names)})")
        ranges: dict[str, tuple[float, float]] = {}
        grids: dict[str, tuple[float, ...]] = {}
        for p in fam.params:
            scale_log = self.log or p.log
            if p.name in bounds:
                pair = _numbers(bounds[p.name], f"{p.name} bounds")
                if len(pair) != 2:
                    raise ValueError(f"{p.name} bounds must be (low, high), got {bounds[p.name]!r}")
                ranges[p.name] = pair
            elif p.low is not None and p.high is not None:
                ranges[p.name] = (float(p.low), float(p.high))
            if p.name in ranges:
                lo, hi = ranges[p.name]
                if not lo < hi or (scale_log and lo <= 0):
                    rule = "0 < low < high (a log scale)" if scale_log else "low < high"
                    raise ValueError(f"{p.name} bounds must satisfy {rule}, got ({lo!r}, {hi!r})")
            if p.name in values:
                vals = _numbers(values[p.name], f"{p.name} grid values")
                if not vals:
                    raise ValueError(f"{p.name} grid values must be a non-empty list of numbers, got []")
                grids[p.name] = vals
            elif p.grid:
                grids[p.name] = tuple(float(v) for v in p.grid)
            if p.name not in ranges and p.name not in grids:
                raise ValueError(f"schedule family {fam.name!r} is not tunable: its parameter {p.name!r} has no "
                                 "default search range or grid (give bounds or values for it)")
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_family", fam)
        object.__setattr__(self, "_ranges", ranges)
        object.__setattr__(self, "_grids", grids)
        self._check_buildable(ranges, "bounds")
        self._check_buildable(grids, "grid values")

    def _check_buildable(self, numbers: Mapping[str, tuple[float, ...]], what: str) -> None:
        """Build the family at every given number of each parameter, the others at their first number, so
        that a range end or grid value the family refuses (Beta's a <= 0, say) is refused here, by name."""
        if len(numbers) != len(self.params):
            return
        base = [numbers[p.name][0] for p in self.params]
        for i, p in enumerate(self.params):
            for v in numbers[p.name]:
                try:
                    self.build(base[:i] + [v] + base[i + 1:])
                except ValueError as exc:
                    raise ValueError(f"{p.name} {what} include {v!r}, which the {self.family} family refuses: "
                                     f"{exc}") from None

    @property
    def schedule_family(self) -> ScheduleFamily:
        """The family's declaration."""
        return self._family  # type: ignore[attr-defined]

    @property
    def params(self) -> tuple[ScheduleParam, ...]:
        return self._family.params  # type: ignore[attr-defined]

    @property
    def names(self) -> tuple[str, ...]:
        """The family's parameter names, in the order ``build`` takes them."""
        return tuple(p.name for p in self.params)

    def build(self, values) -> Schedule:
        """The schedule of one point (its numbers in the order of :attr:`names`)."""
        return self._family.build(*values)  # type: ignore[attr-defined]

    def ranges(self) -> dict[str, tuple[float, float, bool]]:
        """``(low, high, log)`` of every parameter, for ``tpe``/``random``; ``ValueError`` when one has no range."""
        missing = [p.name for p in self.params if p.name not in self._ranges]  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"schedule family {self.family!r} has no default search range for {missing[0]!r}; "
                             "give bounds for it (tpe and random need them)")
        return {p.name: (*self._ranges[p.name], self.log or p.log) for p in self.params}  # type: ignore[attr-defined]

    def grid(self) -> list[tuple[float, ...]]:
        """Every grid point (row-major in the parameters' order), for ``grid``/``halving``; ``ValueError``
        when a parameter has no grid values, the grid is larger than a study runs, or a value lies outside
        the range the study stores it under."""
        missing = [p.name for p in self.params if p.name not in self._grids]  # type: ignore[attr-defined]
        if missing:
            raise ValueError(f"schedule family {self.family!r} has no default grid for {missing[0]!r}; "
                             "give grid values for it (grid and halving need them)")
        axes = [self._grids[p.name] for p in self.params]  # type: ignore[attr-defined]
        size = math.prod(len(a) for a in axes)
        if size > MAX_TRIALS:
            raise ValueError(f"the grid has {size:,} points, more than the {MAX_TRIALS:,} a study runs")
        for p, axis in zip(self.params, axes):
            d = stored_distribution(p)
            bad = [v for v in axis if not d.low <= v <= d.high]
            if bad:
                raise ValueError(f"{p.name} grid value {bad[0]!r} lies outside [{d.low:g}, {d.high:g}], the range a "
                                 "study stores it under")
        return [tuple(point) for point in itertools.product(*axes)]

    def suggest(self, trial) -> tuple[float, ...]:
        """One point suggested by an Optuna trial: a float per parameter, named after it."""
        return tuple(trial.suggest_float(name, lo, hi, log=log) for name, (lo, hi, log) in self.ranges().items())


@dataclass(frozen=True)
class Trial:
    """One trial of a study as the tuner sees it (states are Optuna's: COMPLETE, FAIL, PRUNED, RUNNING).

    ``params`` are the family's numbers by name; ``a`` and ``b`` read Beta's (``None`` for other families)."""

    number: int
    state: str
    params: dict[str, float] = field(hash=False)
    value: "float | None"
    n: "int | None" = None
    stderr: "float | None" = None
    spec: "str | None" = None
    strategy: "str | None" = None
    rung: int = 0
    size: "int | None" = None
    error: "str | None" = None
    duplicate: bool = False
    stale: bool = False
    family: str = BETA

    @property
    def a(self) -> "float | None":
        return self.params.get("a")

    @property
    def b(self) -> "float | None":
        return self.params.get("b")

    def point(self, names: "tuple[str, ...]") -> tuple:
        """The trial's numbers in the order of ``names`` (``None`` where one is missing)."""
        return tuple(self.params.get(n) for n in names)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {"number": out.pop("number"), "state": out.pop("state"), "a": self.a, "b": self.b, **out}


@dataclass(frozen=True)
class TuneResult:
    """What a tuning run returns: the best finalist, the baselines and every trial of the study."""

    strategy: str
    direction: str
    best: Trial
    baselines: dict[str, Score]
    evaluations: int
    new_evaluations: int
    trials: list[Trial] = field(default_factory=list)
    family: str = BETA

    def as_json(self) -> dict[str, Any]:
        b = self.best
        return {
            "best": {"a": b.a, "b": b.b, "params": dict(b.params), "spec": b.spec, "score": b.value, "n": b.n,
                     "stderr": b.stderr},
            "baselines": {name: s.value for name, s in self.baselines.items()},
            "evaluations": self.evaluations,
            "new_evaluations": self.new_evaluations,
            "strategy": self.strategy,
        }


@dataclass(frozen=True)
class RunConfig:
    """One tuning run, as :func:`tune` checked it: the strategy and its budget, where the study lives and its
    name, how many workers share it, the seed, the search space, the successive-halving plan and how long
    its workers wait for a lost database server."""

    strategy: str
    budget: "int | None"
    storage: "str | None"
    name: str
    workers: int
    seed: int
    space: SearchSpace
    halving_min_size: int = 50
    halving_eta: int = 3
    storage_patience: float = STORAGE_PATIENCE


def study_trials(study) -> list[Trial]:
    """Every trial of an Optuna study as a :class:`Trial` (a trial without a ``family`` attribute is Beta's)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        family = family_of_trial(u)
        try:
            order = [p.name for p in schedule_family(family).params or ()]
        except ValueError:  # a family registered by another process only: keep Optuna's order
            order = []
        params = {k: t.params[k] for k in order if k in t.params}
        params.update({k: v for k, v in t.params.items() if k not in params})
        out.append(Trial(
            number=t.number, state=t.state.name, params=params, value=t.value,
            n=u.get("n"), stderr=u.get("stderr"), spec=u.get("spec"), strategy=u.get("strategy"),
            rung=u.get("rung", 0) or 0, size=u.get("size"), error=u.get("error"),
            duplicate=bool(u.get("duplicate")), stale=bool(u.get("stale")), family=family,
        ))
    return out


def _completed(study, strategy: str) -> list:
    S = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.user_attrs.get("strategy") == strategy]


def _halving_plan(objective: Objective, n0: int, eta: int) -> "list[int | None]":
    if objective.max_size is None:
        return [None]  # exact objectives have no subsets: one rung
    sizes, s = [], max(1, n0)
    while s < objective.max_size:
        sizes.append(s)
        s *= eta
    return sizes + [objective.max_size]


def tune(
    objective: Objective,
    *,
    strategy: str = "grid",
    budget: "int | None" = None,
    storage: "str | None" = DEFAULT_STORAGE,
    study_name: "str | None" = None,
    workers: int = 1,
    seed: int = 0,
    space: "SearchSpace | None" = None,
    halving_min_size: int = 50,
    halving_eta: int = 3,
    progress: "Callable[[int], None] | None" = None,
    storage_patience: float = STORAGE_PATIENCE,
) -> TuneResult:
    """Run (or resume) a tuning study and return the best point of the space's family, the baselines and the
    trial counts.

    ``budget`` is the number of evaluations for ``tpe``/``random`` (default 25) and, if given, caps the
    grid for ``grid``/``halving`` (a seeded random subset of the points). ``storage=None`` keeps the
    study in this process's memory (one worker; nothing to resume). ``progress(completed)`` is called
    as trials finish. ``halving`` scores every point on ``halving_min_size`` items (50, as the paper), keeps
    the best ``1/halving_eta`` and multiplies the subset by ``halving_eta`` until it holds every item; the
    subsets of one ``seed`` are nested, and an :class:`~mdm_energy.tuning.ItemObjective` keeps each item's
    score with the study, so no item is scored twice for one schedule. A study holds one objective and one
    schedule family: a name reused for another is refused. The default study name is
    ``OBJECTIVE:STRATEGY`` for Beta and ``OBJECTIVE:FAMILY:STRATEGY`` for another family. On a database
    server every worker rides out an outage of up to ``storage_patience`` seconds (retrying with backoff),
    then stops with :class:`~.outage.StorageOutage`; the study resumes on rerun.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if budget is not None:
        positive_int(budget, "budget")
        if budget > MAX_TRIALS:
            raise ValueError(f"budget must be at most {MAX_TRIALS:,}, got {budget:,}")
    check_workers(positive_int(workers, "workers"))
    positive_int(halving_min_size, "halving_min_size")
    if positive_int(halving_eta, "halving_eta") < 2:
        raise ValueError(f"halving_eta must be at least 2, got {halving_eta}")
    if storage is None and workers > 1:
        raise ValueError("an in-memory study (storage=None) cannot be shared by worker processes; give a storage URL")
    space = space or SearchSpace()
    if strategy in ("grid", "halving"):
        space.grid()  # refuses a missing or too large grid before anything is created
    else:
        space.ranges()
    family = "" if space.family == BETA else f"{space.family}:"
    config = RunConfig(strategy=strategy, budget=budget, storage=storage,
                       name=study_name or f"{objective.name}:{family}{strategy}", workers=workers, seed=seed,
                       space=space, halving_min_size=halving_min_size, halving_eta=halving_eta,
                       storage_patience=check_patience(storage_patience))
    created_file = creates_file(storage)
    study = open_study(storage, config.name, objective.direction, config.storage_patience)
    try:
        claim_objective(study, config.name, objective)
        claim_family(study, config.name, space.family)
        return _run(study, objective, config, progress)
    except BaseException:
        discard_if_empty(storage, config.name, created_file)
        raise


def _propose(space: SearchSpace, trial) -> dict[str, Any]:
    """The user attributes of a point an Optuna sampler suggests: its key and spec (and family, if not Beta)."""
    values = space.suggest(trial)
    try:
        spec = space.build(values).spec
    except ValueError:  # the trial fails with the family's error when it is recorded
        spec = None
    return {"key": point_key(values), "spec": spec, **family_attrs(space.schedule_family)}


def _record_proposed(objective: Objective, space: SearchSpace, study, trial) -> None:
    values = [trial.params[name] for name in space.names]
    record(study, trial_id(trial), trial.number, scored(objective, lambda: space.build(values)))


def _run(study, objective: Objective, config: RunConfig, progress: "Callable[[int], None] | None") -> TuneResult:
    fail_stale(study)
    run_id = uuid.uuid4().hex  # tags the trials this call evaluates: new_evaluations counts them
    bind_objective(objective, study)
    strategy, space = config.strategy, config.space
    opener = ((lambda: study) if config.workers == 1
              else partial(open_study, config.storage, config.name, objective.direction, config.storage_patience))

    def tick() -> None:
        if progress:
            progress(len(_completed(study, strategy)))

    for base in BASELINES:  # once per study, stored as study attributes
        if f"baseline:{base}" not in study.user_attrs:
            s = objective.evaluate(base)
            study.set_user_attr(f"baseline:{base}", {"value": s.value, "n": s.n, "stderr": s.stderr})

    if strategy in ("tpe", "random"):
        job = AskJob(strategy, config.budget or 25, run_id, partial(optuna_sampler, strategy, config.seed),
                     partial(_propose, space), partial(_record_proposed, objective, space))
        run_workers(ask_worker, (opener, objective, job), config.workers, tick, config.storage)
    else:
        points = space.grid()
        if config.budget is not None and config.budget < len(points):
            keep = np.random.default_rng(config.seed).permutation(len(points))[:config.budget]
            points = [points[i] for i in sorted(keep)]
        sizes = (_halving_plan(objective, config.halving_min_size, config.halving_eta) if strategy == "halving"
                 else [None])
        for rung, size in enumerate(sizes):
            jobs = [(p, rung, size, config.seed) for p in points]  # one seed: each rung's subset contains the last
            run_workers(points_worker, (opener, objective, strategy, space.schedule_family, jobs, run_id,
                                        config.workers), config.workers, tick, config.storage)
            if rung + 1 < len(sizes):  # keep the best 1/eta for the next, larger subset
                done = {tuple(t.params[n] for n in space.names): t.value for t in _completed(study, strategy)
                        if t.user_attrs.get("rung") == rung}
                ranked = sorted(done, key=lambda p: done[p], reverse=objective.direction == "maximize")
                points = ranked[: max(1, math.ceil(len(ranked) / config.halving_eta))]
    tick()
    return _result(study, objective, config, run_id)


def _result(study, objective: Objective, config: RunConfig, run_id: str) -> TuneResult:
    strategy, names = config.strategy, config.space.names
    trials = study_trials(study)
    done = [t for t in trials if t.state == "COMPLETE" and t.strategy == strategy]
    if not done:
        raise RuntimeError("no trial completed: every evaluation failed (see the trials' error attributes)")
    top_rung = max(t.rung for t in done)
    sign = 1.0 if objective.direction == "minimize" else -1.0
    best = min((t for t in done if t.rung == top_rung), key=lambda t: (sign * t.value, t.point(names)))  # ties: smallest point
    runs = {t.number: t.user_attrs.get("run") for t in _completed(study, strategy)}
    return TuneResult(
        strategy=strategy,
        direction=objective.direction,
        best=best,
        baselines={b: Score(**study.user_attrs[f"baseline:{b}"]) for b in BASELINES},
        evaluations=len(done),
        new_evaluations=sum(1 for t in done if runs.get(t.number) == run_id),
        trials=trials,
        family=config.space.family,
    )

