r"""The trial-claim protocol: how workers sharing one study split its work safely (docs/design.md §6).

Every evaluation is one Optuna trial. Its parameters are the schedule family's numbers (``a`` and ``b``
for Beta), and its user attributes ``key`` (the point and rung, :func:`point_key`), ``rung``, ``size``,
``spec``, ``strategy``, ``host``, ``pid`` and ``run`` (``family`` too, for a family other than Beta),
then ``n`` and ``stderr`` once scored — so a study can be inspected with Optuna's own tools.

Safety, by construction:

* **resume** — finished trials are read back and never redone; a trial left ``RUNNING`` by a process
  that died (same host, pid gone: a SIGKILL, a crash; or, on a database server, a heartbeat that
  stopped) is marked failed-stale (:func:`fail_stale`) and its point is redone;
* **no duplicate grid points**, even across workers — a worker creates its trial in ``RUNNING`` state
  with fixed parameters *before* evaluating, then checks the storage (:func:`evaluate_point`): if
  another trial holds the same point (finished, or running with a lower trial number), it abandons its
  own (``PRUNED``, attribute ``duplicate``) without evaluating. Trial numbers are assigned atomically by
  the storage, so exactly one of any two racing workers proceeds (the storage calls this needs are in
  :mod:`._optuna`);
* **a budget spent once** — an ask-and-tell worker (:func:`ask_worker`) takes a place in the budget
  only while fewer than the budget are held, trial numbers deciding a race for the last place;
* **failures** — an evaluation that raises, or returns a non-finite score, is recorded as ``FAIL`` with
  its error text, and the study goes on;
* **interrupts** — SIGINT or SIGTERM during a trial marks it failed-stale at once
  (:class:`claimed_trial`), as :func:`fail_stale` would after a crash: no trial is left ``RUNNING``
  and a rerun redoes its point; forked workers are stopped with their parent (:func:`run_workers`);
* **outages** — on a database server every storage call rides out an outage (:mod:`.outage`); a worker
  that gives up raises :class:`~.outage.StorageOutage` (a forked worker exits with
  :data:`~.outage.EXIT_STORAGE_OUTAGE`) and its running trial is redone once by the next run;
* **one objective and one schedule family per study** (:func:`claim_objective`, :func:`claim_family`),
  so scores of different things are never ranked together.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import multiprocessing
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .._signals import describe, exit_status, held
from ..schedules import Schedule, ScheduleFamily, ScheduleParam
from ._optuna import (asked_trial, create_running_trial, finish_trial, heartbeat, optuna, set_trial_attr, stale_trial_ids,
                      study_user_attr, trial_id)
from .items import StudyItemStore
from .objectives import ItemObjective, Objective, Score
from .outage import EXIT_STORAGE_OUTAGE, StorageOutage, impatient

__all__ = ["STORED_RANGE", "BETA", "point_key", "stored_distribution", "fail_stale", "claimed_trial", "holders",
           "record", "scored", "owner_attrs", "family_attrs", "evaluate_point", "bind_objective", "points_worker", "AskJob",
           "optuna_sampler", "ask_worker",
           "run_workers", "claim_objective", "claim_family", "family_of_trial"]

#: The distribution every positive grid parameter (Beta's ``a`` and ``b``) is stored under (grid, halving).
STORED_RANGE = (1e-6, 1e6)
#: The family a trial or study without a ``family`` attribute belongs to (every study before families).
BETA = "beta"


def point_key(values: Sequence[float], rung: int = 0) -> str:
    """The key of a point on a rung: its numbers to 12 significant digits and the rung, comma-joined —
    ``f"{a:.12g},{b:.12g},{rung}"`` for Beta, as every stored study has it."""
    return ",".join(f"{v:.12g}" for v in values) + f",{rung}"


def stored_distribution(param: ScheduleParam):
    """The Optuna distribution a fixed grid value of ``param`` is stored under: log-uniform over
    :data:`STORED_RANGE` for a parameter declared positive (a log scale, or a positive range), else uniform
    over ±1e6."""
    if param.log or (param.low is not None and param.low > 0):
        return optuna().distributions.FloatDistribution(*STORED_RANGE, log=True)
    return optuna().distributions.FloatDistribution(-1e6, 1e6)


def family_of_trial(user_attrs: dict[str, Any]) -> str:
    """The schedule family of a stored trial (Beta when the attribute is absent, as in every older study)."""
    return user_attrs.get("family", BETA)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: A RUNNING trial that has carried no owner (``host`` attribute) for this long has none: this package's workers
#: create every trial already named, so such a trial was made by a plain Optuna ``ask`` (another tool, or a
#: worker of an earlier version of this package stopped before it could name itself).
OWNERLESS_SECONDS = 600.0


def _ownerless(t, now: "datetime.datetime") -> bool:
    start = t.datetime_start
    return "host" not in t.user_attrs and start is not None and (now - start).total_seconds() > OWNERLESS_SECONDS


def fail_stale(study, now: "datetime.datetime | None" = None) -> int:
    """Mark RUNNING trials of dead workers as failed-stale: a process of this host that is gone, (on a
    database server) a worker anywhere whose heartbeat stopped, or a trial that has had no owner for
    :data:`OWNERLESS_SECONDS` by ``now`` (this machine's clock, as Optuna's start times); returns how many."""
    host, n = socket.gethostname(), 0
    now = now or datetime.datetime.now()
    silent = stale_trial_ids(study)
    for t in study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,)):
        dead_here = t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1)))
        if dead_here or trial_id(t) in silent or _ownerless(t, now):
            set_trial_attr(study, trial_id(t), "stale", True)
            finish_trial(study, t.number, "FAIL")
            n += 1
    return n


def _mine(t, run_id: str) -> bool:
    """Whether trial ``t`` was created by this very process in this run."""
    u = t.user_attrs
    return u.get("host") == socket.gethostname() and u.get("pid") == os.getpid() and u.get("run") == run_id


def _release(study, exc: KeyboardInterrupt, run_id: str) -> None:
    """Mark this process's running trials of run ``run_id`` failed-stale with the interrupt as their error (a
    ``KeyboardInterrupt`` from SIGINT/SIGTERM): the study keeps no trial ``RUNNING`` for a worker that is gone,
    and a rerun redoes the point (an item objective keeps the items it finished). Signals are held back while
    they are marked, so the storage is tried once, not for the whole patience (:func:`~.outage.impatient`): a
    worker told to stop during an outage stops at once, and its running trial is failed as stale by the next
    run instead."""
    with held(), impatient(), contextlib.suppress(Exception):
        for t in study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,)):
            if _mine(t, run_id):
                set_trial_attr(study, trial_id(t), "stale", True)
                set_trial_attr(study, trial_id(t), "error", f"interrupted ({describe(exc)})")
                finish_trial(study, t.number, "FAIL")


class claimed_trial:
    """``with claimed_trial(study, params, distributions, user_attrs, run_id) as (tid, number):`` — create a
    ``RUNNING`` trial (:func:`~._optuna.create_running_trial`; its ``user_attrs`` name this process and run
    ``run_id``) and release it (:func:`_release`) if SIGINT/SIGTERM stops creation or block.

    Either way the interrupt releases this process's running trials of the run: the trial — found so also when
    the signal lands after the storage committed it but before its id came back — and an orphan of a retried
    create (:mod:`.outage`) not yet failed. A class, not a generator: a generator-based context manager can take
    the signal in its ``__enter__`` after the trial exists and before either handler is in place. So wherever
    the signal lands, no trial is left ``RUNNING`` for a worker that is gone (unless the storage is out then:
    as in :func:`_release`, the next run fails it as stale)."""

    def __init__(self, study, params: dict, distributions: dict, user_attrs: dict[str, Any], run_id: str) -> None:
        self.study, self.run_id = study, run_id
        self.create = lambda: create_running_trial(study, params, distributions, user_attrs)

    def __enter__(self) -> tuple[int, int]:
        try:
            return self.create()
        except KeyboardInterrupt as exc:
            _release(self.study, exc, self.run_id)
            raise

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, KeyboardInterrupt):  # the interrupt, not a failed clean-up, is what is reported
            _release(self.study, exc, self.run_id)  # this trial, and an orphan of a retried create with it
        return False


def holders(study, key: str) -> list:
    """Trials that hold a point: finished (complete, or failed by the objective) or running."""
    S = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING))
            if t.user_attrs.get("key") == key and not t.user_attrs.get("stale")]


def record(study, tid: int, number: int, evaluate: "Callable[[], tuple[Score, list[float]]]") -> None:
    """Evaluate a trial (``evaluate()`` gives its score and the values to store: the score's, and for two
    objectives the mean calls too) and finish it: COMPLETE with the values, or FAIL with the error text (a
    schedule that cannot be built fails its trial the same way, as does a non-finite value). A storage
    outage is not the trial's failure: it propagates and the trial stays RUNNING, to be redone. A trial that
    another worker finished meanwhile (failed as stale) is left to that verdict."""
    try:
        with heartbeat(study, tid):
            score, values = evaluate()
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"objective returned a non-finite score {values[0]!r}" if len(values) == 1 else
                             f"objective returned non-finite values {values!r} (score, mean calls)")
    except StorageOutage:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        if set_trial_attr(study, tid, "error", f"{type(exc).__name__}: {exc}"):
            set_trial_attr(study, tid, "traceback", traceback.format_exc(limit=5))
            finish_trial(study, number, "FAIL")
        return
    if set_trial_attr(study, tid, "n", score.n) and set_trial_attr(study, tid, "stderr", score.stderr):
        finish_trial(study, number, "COMPLETE", values)


def scored(objective: Objective, schedule: Callable[[], Schedule], size: "int | None" = None,
           seed: int = 0) -> "Callable[[], tuple[Score, list[float]]]":
    """The evaluation :func:`record` runs for one schedule: build it (``schedule()``), score it."""

    def evaluate() -> tuple[Score, list[float]]:
        score = objective.evaluate(schedule(), size=size, seed=seed)
        return score, [score.value]

    return evaluate


def owner_attrs(strategy: str, run_id: str) -> dict[str, Any]:
    """Who runs a trial: the strategy, this host and process (for stale detection) and this run's id."""
    return {"strategy": strategy, "host": socket.gethostname(), "pid": os.getpid(), "run": run_id}


def _fail_orphans(study, orphans: Sequence) -> None:
    """Fail each of ``orphans`` — running trials of this process and run other than the one it just created:
    the first attempt of a create that was retried after its reply was lost (:mod:`.outage`) — as stale, so
    none holds a point or a place in the budget (one finished meanwhile by another worker is left as it is)."""
    for orphan in orphans:
        if set_trial_attr(study, trial_id(orphan), "stale", True):
            finish_trial(study, orphan.number, "FAIL")


def family_attrs(family: ScheduleFamily) -> dict[str, Any]:
    """The ``family`` user attribute of a trial: absent for Beta, so Beta trials are stored as they always were."""
    return {} if family.name == BETA else {"family": family.name}


def evaluate_point(study, objective: Objective, strategy: str, family: ScheduleFamily, values: Sequence[float],
                   rung: int = 0, size: "int | None" = None, seed: int = 0, run_id: str = "") -> bool:
    """Claim and evaluate one fixed point ``values`` of ``family`` (in the order of its parameters); returns
    False when another trial already holds it. A running trial of this point created by this very process
    and run is an orphan of a retried create whose first attempt committed (:mod:`.outage`): it is failed
    as stale, not taken for a rival."""
    key = point_key(values, rung)
    if holders(study, key):
        return False
    params = family.params or ()
    schedule = family.build(*values)
    S = optuna().trial.TrialState
    with claimed_trial(
        study, {p.name: v for p, v in zip(params, values)}, {p.name: stored_distribution(p) for p in params},
        {"key": key, "rung": rung, "size": size, "spec": schedule.spec, **family_attrs(family),
         **owner_attrs(strategy, run_id)}, run_id,
    ) as (tid, number):
        others = [t for t in holders(study, key) if trial_id(t) != tid]
        orphans = [t for t in others if t.state == S.RUNNING and _mine(t, run_id)]
        _fail_orphans(study, orphans)
        others = [t for t in others if t not in orphans]
        rivals = [t for t in others if t.state != S.RUNNING or t.number < number]
        if rivals:  # someone else holds this point: abandon without evaluating
            set_trial_attr(study, tid, "duplicate", True)
            finish_trial(study, number, "PRUNED")
            return False
        record(study, tid, number, scored(objective, lambda: schedule, size, seed))
    return True


def bind_objective(objective: Any, study) -> None:
    """Item objectives keep their per-item scores with the study (shared by every worker)."""
    if isinstance(objective, ItemObjective):
        objective.store = StudyItemStore(study)


def points_worker(opener: Callable[[], Any], objective: Objective, strategy: str, family: ScheduleFamily,
                  points: Sequence[tuple], run_id: str, n_workers: int, worker: int) -> None:
    """Claim and evaluate every ``(values, rung, size, seed)`` of ``points`` that no trial holds yet."""
    study = opener()
    bind_objective(objective, study)
    shift = worker * len(points) // n_workers  # start workers at different places: they rarely race
    for values, rung, size, seed in list(points[shift:]) + list(points[:shift]):
        evaluate_point(study, objective, strategy, family, values, rung, size, seed, run_id)


@dataclass(frozen=True)
class AskJob:
    """What an ask-and-tell worker needs (a strategy run by an Optuna sampler): the strategy's name and
    budget, this run's id, the Optuna sampler to make for worker ``w``, how to suggest a trial's parameters
    (``propose(trial) -> user attributes``) and how to evaluate and finish it (``record(study, trial)``)."""

    strategy: str
    budget: int
    run_id: str
    new_sampler: Callable[[int], Any]
    propose: Callable[[Any], dict[str, Any]]
    record: Callable[[Any, Any], None]


def optuna_sampler(strategy: str, seed: int, worker: int):
    """TPE (multivariate; multi-objective when the study is) or random search, seeded per worker."""
    op = optuna()
    if strategy == "tpe":
        return op.samplers.TPESampler(seed=seed + worker, multivariate=True, n_startup_trials=8)
    return op.samplers.RandomSampler(seed=seed + worker)


def ask_worker(opener: Callable[[], Any], objective: Any, job: AskJob, worker: int) -> None:
    """Ask, propose, claim a place in the budget and record, until the strategy holds ``job.budget`` trials.

    Trials that count against the budget are this strategy's finished, failed and running ones (not stale,
    not abandoned duplicates); when two workers race for the last place, trial numbers decide."""
    S = optuna().trial.TrialState
    study = opener()
    bind_objective(objective, study)
    study.sampler = job.new_sampler(worker)

    def held(before: "int | None" = None) -> int:
        return sum(1 for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING))
                   if t.user_attrs.get("strategy", job.strategy if t.state == S.RUNNING else None) == job.strategy
                   and not t.user_attrs.get("stale") and not t.user_attrs.get("duplicate")
                   and (before is None or t.number < before))  # unnamed: a plain Optuna ask (another tool)

    while held() < job.budget:  # created already named (claimed_trial), so an interrupt cannot leave it ownerless
        with claimed_trial(study, {}, {}, owner_attrs(job.strategy, job.run_id), job.run_id) as (tid, number):
            trial = asked_trial(study, tid)
            _fail_orphans(study, [t for t in study.get_trials(deepcopy=False, states=(S.RUNNING,))
                                  if _mine(t, job.run_id) and trial_id(t) != tid])
            for k, v in job.propose(trial).items():
                trial.set_user_attr(k, v)
            if held(before=number) >= job.budget:  # another worker took the last place first
                trial.set_user_attr("duplicate", True)
                finish_trial(study, number, "PRUNED")
                return
            job.record(study, trial)


def _worker_main(target: Callable, args: tuple) -> None:
    """A worker process: an interrupt ends it quietly with its exit status (143 for SIGTERM), its trial
    already released, and a storage outage it gave up on with :data:`~.outage.EXIT_STORAGE_OUTAGE` (the
    parent names the storage) — rather than with multiprocessing's traceback."""
    try:
        target(*args)
    except KeyboardInterrupt as exc:
        sys.exit(exit_status(exc))
    except StorageOutage:
        sys.exit(EXIT_STORAGE_OUTAGE)


def run_workers(target: Callable, args: tuple, workers: int, progress: "Callable[[], None] | None",
                storage: "str | None" = None) -> None:
    """Run ``target(*args, worker)`` in this process (one worker) or in ``workers`` forked processes; an
    interrupt of this process stops the workers too (SIGTERM: each releases its trial) before it goes on;
    when every worker that failed gave up on an outage of ``storage``, :class:`~.outage.StorageOutage`."""
    if workers <= 1:
        target(*args, 0)
        return
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_worker_main, args=(target, args + (w,))) for w in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            if progress:
                progress()
            time.sleep(0.2)
    except BaseException:
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad and all(code == EXIT_STORAGE_OUTAGE for code in bad):
        raise StorageOutage(storage, None, f"{len(bad)} of {workers} workers gave up waiting for it")
    if bad:
        raise RuntimeError(f"{len(bad)} tuning worker(s) exited abnormally (exit codes {bad})")


def claim_objective(study, name: str, objective: Any) -> None:
    """A study holds one objective: a name reused for another is refused (its scores would be mixed)."""
    held = study_user_attr(study, "objective")
    if held is None:
        study.set_user_attr("objective", objective.name)
    elif held != objective.name:
        raise ValueError(f"study {name!r} already holds the objective {held!r}, not {objective.name!r}; "
                         "give another study name")


def claim_family(study, name: str, family: str) -> None:
    """A study searches one schedule family: a name reused for another is refused. A study that holds trials
    but no ``family`` attribute is from before families, so it is a Beta study."""
    held = study_user_attr(study, "family")
    if held is None and study.get_trials(deepcopy=False):
        held = BETA
    if held is not None and held != family:
        raise ValueError(f"study {name!r} searches the schedule family {held!r}, not {family!r}; give another study name")
    if study_user_attr(study, "family") is None:
        study.set_user_attr("family", family)
