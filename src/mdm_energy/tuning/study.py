r"""Resumable, parallel schedule tuning over Beta (a, b) on Optuna storage (DESIGN.md §6).

A *study* lives in an Optuna storage: a SQLite file by default, or any URL Optuna accepts
(PostgreSQL/MySQL for several machines, ``journal:PATH`` for a journal file). Every evaluation is one
Optuna trial with parameters ``a`` and ``b`` and user attributes ``n``, ``stderr``, ``spec``,
``strategy`` (and ``rung``/``size`` for successive halving), so a study can be inspected with Optuna's
own tools.

Safety, by construction:

* **resume** — finished trials are read back and never redone; a trial left ``RUNNING`` by a process
  that died (same host, pid gone: a SIGKILL, a crash) is marked failed-stale and its point is redone;
* **no duplicate grid points**, even across workers — a worker creates its trial in ``RUNNING`` state
  with fixed parameters *before* evaluating, then checks the storage: if another trial holds the same
  point (finished, or running with a lower trial number), it abandons its own (``PRUNED``, attribute
  ``duplicate``) without evaluating. Trial numbers are assigned atomically by the storage, so exactly
  one of any two racing workers proceeds;
* **failures** — an evaluation that raises is recorded as ``FAIL`` with its error text, and the study
  goes on.

Strategies: ``grid`` (the paper's 10×10 grid by default), ``halving`` (successive halving: every grid
point on a small random subset, the best ``1/eta`` re-scored on ``eta`` times larger subsets, as the
paper did by hand), ``tpe`` (Optuna's TPE) and ``random`` (Optuna's random sampler).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import socket
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..schedules import Beta
from .objectives import Objective, Score

__all__ = ["STRATEGIES", "BASELINES", "SearchSpace", "TuneResult", "open_study", "tune", "study_trials"]

STRATEGIES = ("grid", "halving", "tpe", "random")
BASELINES = ("linear", "sin2", "sine", "maskgit")
PAPER_GRID = tuple(round(0.1 * k, 1) for k in range(1, 11))
_STORED = (1e-6, 1e6)  # the distribution every (a, b) is stored under (grid, halving)


@dataclass(frozen=True)
class SearchSpace:
    """Bounds and scale of (a, b), and the grid values for ``grid``/``halving``."""

    a_bounds: tuple[float, float] = (0.1, 1.0)
    b_bounds: tuple[float, float] = (0.1, 1.0)
    log: bool = False
    a_values: tuple[float, ...] = PAPER_GRID
    b_values: tuple[float, ...] = PAPER_GRID

    def __post_init__(self) -> None:
        for name, (lo, hi) in (("a", self.a_bounds), ("b", self.b_bounds)):
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
                raise ValueError(f"{name} bounds must satisfy 0 < low < high, got ({lo!r}, {hi!r})")
        for name, vals in (("a", self.a_values), ("b", self.b_values)):
            if not vals or any(not (math.isfinite(v) and v > 0) for v in vals):
                raise ValueError(f"{name} grid values must be positive numbers, got {list(vals)!r}")

    def grid(self) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a in self.a_values for b in self.b_values]


@dataclass
class TuneResult:
    strategy: str
    direction: str
    best: dict
    baselines: dict
    evaluations: int
    new_evaluations: int
    trials: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "best": self.best,
            "baselines": {name: v["value"] for name, v in self.baselines.items()},
            "evaluations": self.evaluations,
            "new_evaluations": self.new_evaluations,
            "strategy": self.strategy,
        }


# --- storage ---------------------------------------------------------------------------------------


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def check_storage(url: str) -> None:
    """Fail early (``ValueError``) on a storage that cannot be written: a SQLite file in a missing or
    read-only folder, or a journal file there."""
    path = None
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif url.startswith("journal:"):
        path = url[len("journal:"):]
    if path is not None:
        p = Path(path)
        parent = p.parent if str(p.parent) else Path(".")
        if p.exists() and not os.access(p, os.W_OK):
            raise ValueError(f"storage file is not writable: {path!r}")
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ValueError(f"storage folder does not exist or is not writable: {str(parent)!r} (storage {url!r})")


def _storage(url: str):
    optuna = _optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def open_study(storage: str, name: str, direction: str, sampler=None):
    """Create or load an Optuna study (a storage URL, or ``journal:PATH``)."""
    optuna = _optuna()
    check_storage(storage)
    try:
        return optuna.create_study(storage=_storage(storage), study_name=name, direction=direction,
                                   load_if_exists=True, sampler=sampler)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any backend error means the storage is unusable
        raise ValueError(f"cannot open storage {storage!r}: {exc}") from None


# --- trials ------------------------------------------------------------------------------------------


def _key(a: float, b: float, rung: int = 0) -> str:
    return f"{a:.12g},{b:.12g},{rung}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_stale(study) -> int:
    """Mark RUNNING trials of dead processes on this host as failed-stale; returns how many."""
    optuna = _optuna()
    host, n = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1))):
            study._storage.set_trial_user_attr(t._trial_id, "stale", True)
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            n += 1
    return n


def _holders(study, key: str) -> list:
    """Trials that hold a point: finished (complete, or failed by the objective) or running."""
    S = _optuna().trial.TrialState
    out = []
    for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING)):
        if t.user_attrs.get("key") == key and not t.user_attrs.get("stale"):
            out.append(t)
    return out


def _record(study, trial_id: int, objective: Objective, a: float, b: float, size: "int | None", seed: int) -> None:
    optuna = _optuna()
    storage, S = study._storage, optuna.trial.TrialState
    try:
        score: Score = objective.evaluate(Beta(a, b), size=size, seed=seed)
        if not math.isfinite(score.value):
            raise ValueError(f"objective returned a non-finite score {score.value!r}")
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        storage.set_trial_user_attr(trial_id, "error", f"{type(exc).__name__}: {exc}")
        storage.set_trial_user_attr(trial_id, "traceback", traceback.format_exc(limit=5))
        storage.set_trial_state_values(trial_id, S.FAIL)
        return
    storage.set_trial_user_attr(trial_id, "n", score.n)
    storage.set_trial_user_attr(trial_id, "stderr", score.stderr)
    storage.set_trial_state_values(trial_id, S.COMPLETE, values=[score.value])


def _evaluate_point(study, objective: Objective, strategy: str, a: float, b: float, rung: int = 0,
                    size: "int | None" = None, seed: int = 0, run_id: str = "") -> bool:
    """Claim and evaluate one fixed point; returns False when another trial already holds it."""
    optuna = _optuna()
    S = optuna.trial.TrialState
    key = _key(a, b, rung)
    if _holders(study, key):
        return False
    dist = optuna.distributions.FloatDistribution(*_STORED, log=True)
    template = optuna.trial.create_trial(
        state=S.RUNNING,
        params={"a": a, "b": b},
        distributions={"a": dist, "b": dist},
        user_attrs={"key": key, "strategy": strategy, "rung": rung, "size": size, "spec": Beta(a, b).spec,
                    "host": socket.gethostname(), "pid": os.getpid(), "run": run_id},
    )
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    number = study._storage.get_trial_number_from_id(trial_id)
    rivals = [t for t in _holders(study, key) if t._trial_id != trial_id and (t.state != S.RUNNING or t.number < number)]
    if rivals:  # someone else holds this point: abandon without evaluating
        study._storage.set_trial_user_attr(trial_id, "duplicate", True)
        study._storage.set_trial_state_values(trial_id, S.PRUNED)
        return False
    _record(study, trial_id, objective, a, b, size, seed)
    return True


def _points_worker(storage: str, name: str, objective: Objective, strategy: str, points: Sequence[tuple],
                   run_id: str, n_workers: int, worker: int) -> None:
    study = open_study(storage, name, objective.direction)
    shift = worker * len(points) // n_workers  # start workers at different places: they rarely race
    order = list(points[shift:]) + list(points[:shift])
    for a, b, rung, size, seed in order:
        _evaluate_point(study, objective, strategy, a, b, rung, size, seed, run_id)


def _sampler_worker(storage: str, name: str, objective: Objective, strategy: str, space: SearchSpace,
                    budget: int, seed: int, run_id: str, worker: int) -> None:
    optuna = _optuna()
    S = optuna.trial.TrialState
    sampler = (optuna.samplers.TPESampler(seed=seed + worker, multivariate=True, n_startup_trials=8)
               if strategy == "tpe" else optuna.samplers.RandomSampler(seed=seed + worker))
    study = open_study(storage, name, objective.direction, sampler=sampler)
    while True:
        held = [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING))
                if t.user_attrs.get("strategy") == strategy and not t.user_attrs.get("stale")]
        if len(held) >= budget:
            return
        trial = study.ask()
        a = trial.suggest_float("a", *space.a_bounds, log=space.log)
        b = trial.suggest_float("b", *space.b_bounds, log=space.log)
        for k, v in {"key": _key(a, b), "strategy": strategy, "spec": Beta(a, b).spec,
                     "host": socket.gethostname(), "pid": os.getpid(), "run": run_id}.items():
            trial.set_user_attr(k, v)
        _record(study, trial._trial_id, objective, a, b, None, 0)


def _run_workers(target: Callable, args: tuple, workers: int, progress: "Callable[[], None] | None") -> None:
    if workers <= 1:
        target(*args, 0)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=target, args=args + (w,)) for w in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if progress:
                progress()
            time.sleep(0.2)
    finally:
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"{len(bad)} tuning worker(s) exited abnormally (exit codes {bad})")


# --- the public entry point ---------------------------------------------------------------------------


def study_trials(study) -> list[dict]:
    """Every trial as a plain dict (number, state, a, b, value, n, stderr, spec, strategy, rung, error)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        out.append({
            "number": t.number, "state": t.state.name, "a": t.params.get("a"), "b": t.params.get("b"),
            "value": t.value, "n": t.user_attrs.get("n"), "stderr": t.user_attrs.get("stderr"),
            "spec": t.user_attrs.get("spec"), "strategy": t.user_attrs.get("strategy"),
            "rung": t.user_attrs.get("rung", 0), "size": t.user_attrs.get("size"),
            "error": t.user_attrs.get("error"), "duplicate": bool(t.user_attrs.get("duplicate")),
            "stale": bool(t.user_attrs.get("stale")),
        })
    return out


def _completed(study, strategy: str) -> list:
    S = _optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE,)) if t.user_attrs.get("strategy") == strategy]


def _halving_plan(objective: Objective, n0: int, eta: int) -> list[int | None]:
    if objective.max_size is None:
        return [None]  # exact objectives have no subsets: one rung
    sizes, s = [], max(1, n0)
    while s < objective.max_size:
        sizes.append(s)
        s *= eta
    return sizes + [objective.max_size]


def tune(
    objective: Objective,
    strategy: str = "grid",
    budget: "int | None" = None,
    storage: str = "sqlite:///mdm-energy-studies.db",
    study_name: "str | None" = None,
    workers: int = 1,
    seed: int = 0,
    space: "SearchSpace | None" = None,
    halving_min_size: int = 25,
    halving_eta: int = 3,
    progress: "Callable[[int], None] | None" = None,
) -> TuneResult:
    """Run (or resume) a tuning study and return the best (a, b), the baselines and the trial counts.

    ``budget`` is the number of evaluations for ``tpe``/``random`` (default 25) and, if given, caps the
    grid for ``grid``/``halving`` (a seeded random subset of the points). ``progress(completed)`` is
    called as trials finish.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValueError(f"budget must be a positive integer, got {budget!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    space = space or SearchSpace()
    name = study_name or f"{objective.name}:{strategy}"
    study = open_study(storage, name, objective.direction)
    _fail_stale(study)
    run_id = uuid.uuid4().hex  # tags the trials this call evaluates: new_evaluations counts them

    def tick() -> None:
        if progress:
            progress(len(_completed(study, strategy)))

    # baselines once per study, stored as study attributes
    for base in BASELINES:
        if f"baseline:{base}" not in study.user_attrs:
            s = objective.evaluate(base)
            study.set_user_attr(f"baseline:{base}", {"value": s.value, "n": s.n, "stderr": s.stderr})

    if strategy in ("tpe", "random"):
        _run_workers(_sampler_worker, (storage, name, objective, strategy, space, budget or 25, seed, run_id), workers, tick)
    else:
        points = space.grid()
        if budget is not None and budget < len(points):
            keep = np.random.default_rng(seed).permutation(len(points))[:budget]
            points = [points[i] for i in sorted(keep)]
        sizes = _halving_plan(objective, halving_min_size, halving_eta) if strategy == "halving" else [None]
        for rung, size in enumerate(sizes):
            jobs = [(a, b, rung, size, seed + rung) for a, b in points]
            _run_workers(_points_worker, (storage, name, objective, strategy, jobs, run_id, workers), workers, tick)
            if rung + 1 < len(sizes):  # keep the best 1/eta for the next, larger subset
                done = {(t.params["a"], t.params["b"]): t.value for t in _completed(study, strategy)
                        if t.user_attrs.get("rung") == rung}
                ranked = sorted(done, key=lambda p: done[p], reverse=objective.direction == "maximize")
                points = ranked[: max(1, math.ceil(len(ranked) / halving_eta))]
    tick()
    done = _completed(study, strategy)
    if not done:
        raise RuntimeError("no trial completed: every evaluation failed (see the trials' error attributes)")
    top_rung = max(t.user_attrs.get("rung", 0) for t in done)
    finalists = [t for t in done if t.user_attrs.get("rung", 0) == top_rung]
    sign = 1.0 if objective.direction == "minimize" else -1.0
    best = min(finalists, key=lambda t: (sign * t.value, t.params["a"], t.params["b"]))  # ties: smallest (a, b)
    baselines = {b: study.user_attrs[f"baseline:{b}"] for b in BASELINES}
    return TuneResult(
        strategy=strategy,
        direction=objective.direction,
        best={"a": best.params["a"], "b": best.params["b"], "score": best.value,
              "n": best.user_attrs.get("n"), "stderr": best.user_attrs.get("stderr")},
        baselines=baselines,
        evaluations=len(done),
        new_evaluations=sum(1 for t in done if t.user_attrs.get("run") == run_id),
        trials=study_trials(study),
    )

