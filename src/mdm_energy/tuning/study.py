r"""Resumable, parallel schedule tuning over Beta (a, b) on Optuna storage (docs/design.md §6).

A *study* lives in an Optuna storage: a SQLite file by default, any URL Optuna accepts
(PostgreSQL/MySQL for several machines), ``journal:PATH`` for a journal file, or ``None`` for a
throwaway in-memory study in this process. Every evaluation is one Optuna trial with parameters ``a`` and
``b`` and user attributes ``n``, ``stderr``, ``spec``, ``strategy`` (and ``rung``/``size`` for successive
halving), so a study can be inspected with Optuna's own tools.

Safety, by construction:

* **resume** — finished trials are read back and never redone; a trial left ``RUNNING`` by a process
  that died (same host, pid gone: a SIGKILL, a crash) is marked failed-stale and its point is redone;
* **no duplicate grid points**, even across workers — a worker creates its trial in ``RUNNING`` state
  with fixed parameters *before* evaluating, then checks the storage: if another trial holds the same
  point (finished, or running with a lower trial number), it abandons its own (``PRUNED``, attribute
  ``duplicate``) without evaluating. Trial numbers are assigned atomically by the storage, so exactly
  one of any two racing workers proceeds (the storage calls this needs are in :mod:`._optuna`);
* **failures** — an evaluation that raises, or returns a non-finite score, is recorded as ``FAIL`` with
  its error text, and the study goes on.

Strategies: ``grid`` (the paper's 10×10 grid by default), ``halving`` (successive halving: every grid
point on a small random subset, the best ``1/eta`` re-scored on ``eta`` times larger subsets, as the
paper did by hand), ``tpe`` (Optuna's TPE) and ``random`` (Optuna's random sampler). This is the one
grid runner of the package: the exact engine's Beta grids (:mod:`.exact_grid`) run through it too.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import multiprocessing
import os
import socket
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..limits import check_workers
from ..schedules import HAND_CRAFTED, Beta
from ._optuna import create_running_trial, finish_trial, heartbeat, optuna, set_trial_attr, stale_trial_ids, trial_id
from .items import StudyItemStore
from .objectives import ItemObjective, Objective, Score

__all__ = ["STRATEGIES", "BASELINES", "PAPER_GRID", "DEFAULT_STORAGE", "SearchSpace", "Trial", "TuneResult",
           "check_storage", "open_study", "tune", "study_trials"]

STRATEGIES = ("grid", "halving", "tpe", "random")
BASELINES = HAND_CRAFTED
#: The paper's grid of a and b values: 0.1, 0.2, ..., 1.0.
PAPER_GRID = tuple(round(0.1 * k, 1) for k in range(1, 11))
DEFAULT_STORAGE = "sqlite:///mdm-energy-studies.db"
_STORED = (1e-6, 1e6)  # the distribution every (a, b) is stored under (grid, halving)
#: The most trials one study runs: each worker scans the study's trials before claiming a point, so the
#: cost of a study grows with the square of its size.
MAX_TRIALS = 2_500


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
        if len(self.a_values) * len(self.b_values) > MAX_TRIALS:
            raise ValueError(f"the grid has {len(self.a_values) * len(self.b_values):,} points, more than the "
                             f"{MAX_TRIALS:,} a study runs")
        return [(float(a), float(b)) for a in self.a_values for b in self.b_values]


@dataclass(frozen=True)
class Trial:
    """One trial of a study as the tuner sees it (states are Optuna's: COMPLETE, FAIL, PRUNED, RUNNING)."""

    number: int
    state: str
    a: "float | None"
    b: "float | None"
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

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


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

    def as_json(self) -> dict[str, Any]:
        b = self.best
        return {
            "best": {"a": b.a, "b": b.b, "score": b.value, "n": b.n, "stderr": b.stderr},
            "baselines": {name: s.value for name, s in self.baselines.items()},
            "evaluations": self.evaluations,
            "new_evaluations": self.new_evaluations,
            "strategy": self.strategy,
        }


# --- storage ---------------------------------------------------------------------------------------


_MEMORY_URLS = ("sqlite://", "sqlite:///", "sqlite:///:memory:")
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


def _file_of(url: str) -> "Path | None":
    """The file behind a SQLite or journal storage URL (``None`` for server databases)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    return None


def check_storage(url: "str | None") -> None:
    """Fail early (``ValueError`` naming the URL) on a storage that cannot hold a resumable study: an
    in-memory URL, an unknown scheme, a SQLite or journal file in a missing or read-only folder, a folder
    where the file should be, or a file that is not a SQLite database. ``None`` (this process's memory,
    for throwaway studies from Python) is accepted."""
    if url is None:
        return
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"storage must be a URL such as sqlite:///studies.db, got {url!r}")
    if url in _MEMORY_URLS or url.startswith("sqlite:///:memory:"):
        raise ValueError(f"storage {url!r} keeps the study in memory, so nothing could be resumed or shared; "
                         "give a file, e.g. sqlite:///studies.db")
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower()
    if not url.startswith("journal:") and (scheme not in _RDB_SCHEMES or "://" not in url):
        raise ValueError(f"unknown storage {url!r} (use sqlite:///PATH, journal:PATH, postgresql://USER@HOST/DB "
                         "or another database URL Optuna accepts)")
    path = _file_of(url)
    if path is None:
        _reach_server(url)
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"storage {url!r} names a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"storage file is not writable: {str(path)!r}")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"storage folder does not exist or is not writable: {str(parent)!r} (storage {url!r})")
    if url.startswith("sqlite:///") and path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise ValueError(f"storage file {str(path)!r} is not a SQLite database")


def _server_kwargs(url: str) -> dict[str, Any]:
    """Engine settings for a database server: check connections before use, give up connecting after 10 s."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.split(":", 1)[0].split("+", 1)[0].lower() in ("postgresql", "postgres"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    return kwargs


def _reach_server(url: str) -> None:
    """Connect once to a database server (``ValueError`` naming the URL's host when it cannot be reached or
    its driver is missing); creates nothing."""
    try:
        import sqlalchemy
    except ImportError:  # pragma: no cover - optuna depends on it
        return
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:  # noqa: BLE001 - a malformed URL
        raise ValueError(f"storage {url!r} is not a valid database URL") from None
    where = f"{parsed.host or 'localhost'}{':' + str(parsed.port) if parsed.port else ''}"
    try:
        engine = sqlalchemy.create_engine(url, **_server_kwargs(url))
    except ModuleNotFoundError as exc:
        extra = " (pip install 'mdm-energy[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
        raise ValueError(f"storage {url!r} needs the database driver {exc.name!r}{extra}") from None
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - unreachable host, refused connection, bad credentials, no database
        reason = " ".join(str(getattr(exc, "orig", exc)).split())[:200]
        raise ValueError(f"cannot reach the database server {where} of storage {url!r}: {reason}") from None
    finally:
        engine.dispose()


@contextlib.contextmanager
def _creation_lock(url: "str | None"):
    """Hold an exclusive lock on a SQLite file while Optuna creates its tables and the study, so that
    several commands started together on a new file do not race on the schema (other storages lock
    themselves)."""
    path = _file_of(url) if url and url.startswith("sqlite:///") else None
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


#: Heartbeat of workers on a database server: beat every this many seconds (``MDM_ENERGY_HEARTBEAT`` overrides);
#: a running trial whose beat is older than four intervals belongs to a dead worker and is redone.
HEARTBEAT_SECONDS = 30


def heartbeat_seconds() -> int:
    text = os.environ.get("MDM_ENERGY_HEARTBEAT", "")
    if not text:
        return HEARTBEAT_SECONDS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"MDM_ENERGY_HEARTBEAT must be a positive number of seconds, got {text!r}")
    return value


def _storage(url: "str | None"):
    if url is None:
        return None
    op = optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return op.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    if url.startswith("sqlite"):  # one machine: a dead worker is found by its process id
        return op.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    beat = heartbeat_seconds()
    return op.storages.RDBStorage(url, engine_kwargs=_server_kwargs(url), heartbeat_interval=beat,
                                  grace_period=4 * beat)


def open_study(storage: "str | None", name: str, direction: "str | Sequence[str]"):
    """Create or load an Optuna study (a storage URL, ``journal:PATH``, or ``None`` for memory); several
    ``direction`` values make a multi-objective study."""
    check_storage(storage)
    how = {"direction": direction} if isinstance(direction, str) else {"directions": list(direction)}
    try:
        with _creation_lock(storage):
            return optuna().create_study(storage=_storage(storage), study_name=name, load_if_exists=True, **how)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - any backend error means the storage is unusable
        raise ValueError(f"cannot open storage {storage!r}: {' '.join(str(exc).split())[:300]}") from None


def _discard_if_empty(storage: "str | None", name: str, created_file: bool) -> None:
    """After a run that completed nothing: delete its study if it holds no trial, and the SQLite file if this
    run created it and no study is left in it — a refused or interrupted first run leaves nothing behind."""
    if storage is None:
        return
    op = optuna()
    try:
        with _creation_lock(storage):
            st = _storage(storage)
            study = op.load_study(study_name=name, storage=st)
            if study.get_trials(deepcopy=False):
                return
            op.delete_study(study_name=name, storage=st)
            remaining = op.get_all_study_summaries(storage=st)
            if hasattr(st, "engine"):
                st.engine.dispose()
        if created_file and not remaining:
            path = _file_of(storage)
            if path is not None and path.exists():
                path.unlink()
    except Exception:  # noqa: BLE001 - cleaning up must never hide the error that brought us here
        pass


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
    """Mark RUNNING trials of dead workers as failed-stale: a process of this host that is gone, or (on a
    database server) a worker anywhere whose heartbeat stopped; returns how many."""
    host, n = socket.gethostname(), 0
    silent = stale_trial_ids(study)
    for t in study.get_trials(deepcopy=False, states=(optuna().trial.TrialState.RUNNING,)):
        dead_here = t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1)))
        if dead_here or trial_id(t) in silent:
            set_trial_attr(study, trial_id(t), "stale", True)
            finish_trial(study, t.number, "FAIL")
            n += 1
    return n


def _holders(study, key: str) -> list:
    """Trials that hold a point: finished (complete, or failed by the objective) or running."""
    S = optuna().trial.TrialState
    return [t for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING))
            if t.user_attrs.get("key") == key and not t.user_attrs.get("stale")]


def _record(study, tid: int, number: int, objective: Objective, a: float, b: float, size: "int | None", seed: int) -> None:
    """Evaluate (a, b) and finish the trial: COMPLETE with its score, or FAIL with the error text."""
    try:
        with heartbeat(study, tid):
            score: Score = objective.evaluate(Beta(a, b), size=size, seed=seed)
        if not math.isfinite(score.value):
            raise ValueError(f"objective returned a non-finite score {score.value!r}")
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        set_trial_attr(study, tid, "error", f"{type(exc).__name__}: {exc}")
        set_trial_attr(study, tid, "traceback", traceback.format_exc(limit=5))
        finish_trial(study, number, "FAIL")
        return
    set_trial_attr(study, tid, "n", score.n)
    set_trial_attr(study, tid, "stderr", score.stderr)
    finish_trial(study, number, "COMPLETE", score.value)


def _owner_attrs(strategy: str, run_id: str) -> dict[str, Any]:
    return {"strategy": strategy, "host": socket.gethostname(), "pid": os.getpid(), "run": run_id}


def _evaluate_point(study, objective: Objective, strategy: str, a: float, b: float, rung: int = 0,
                    size: "int | None" = None, seed: int = 0, run_id: str = "") -> bool:
    """Claim and evaluate one fixed point; returns False when another trial already holds it."""
    key = _key(a, b, rung)
    if _holders(study, key):
        return False
    dist = optuna().distributions.FloatDistribution(*_STORED, log=True)
    tid, number = create_running_trial(
        study, {"a": a, "b": b}, {"a": dist, "b": dist},
        {"key": key, "rung": rung, "size": size, "spec": Beta(a, b).spec, **_owner_attrs(strategy, run_id)},
    )
    S = optuna().trial.TrialState
    rivals = [t for t in _holders(study, key) if trial_id(t) != tid and (t.state != S.RUNNING or t.number < number)]
    if rivals:  # someone else holds this point: abandon without evaluating
        set_trial_attr(study, tid, "duplicate", True)
        finish_trial(study, number, "PRUNED")
        return False
    _record(study, tid, number, objective, a, b, size, seed)
    return True


def _bind(objective: Objective, study) -> None:
    """Item objectives keep their per-item scores with the study (shared by every worker)."""
    if isinstance(objective, ItemObjective):
        objective.store = StudyItemStore(study)


def _points_worker(opener: Callable[[], Any], objective: Objective, strategy: str, points: Sequence[tuple],
                   run_id: str, n_workers: int, worker: int) -> None:
    study = opener()
    _bind(objective, study)
    shift = worker * len(points) // n_workers  # start workers at different places: they rarely race
    for a, b, rung, size, seed in list(points[shift:]) + list(points[:shift]):
        _evaluate_point(study, objective, strategy, a, b, rung, size, seed, run_id)


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
    _bind(objective, study)
    study.sampler = job.new_sampler(worker)

    def held(before: "int | None" = None) -> int:
        return sum(1 for t in study.get_trials(deepcopy=False, states=(S.COMPLETE, S.FAIL, S.RUNNING))
                   if t.user_attrs.get("strategy", job.strategy if t.state == S.RUNNING else None) == job.strategy
                   and not t.user_attrs.get("stale") and not t.user_attrs.get("duplicate")
                   and (before is None or t.number < before))  # a trial just asked may not carry its attributes yet

    while held() < job.budget:
        trial = study.ask()
        for k, v in {**job.propose(trial), **_owner_attrs(job.strategy, job.run_id)}.items():
            trial.set_user_attr(k, v)
        if held(before=trial.number) >= job.budget:  # another worker took the last place first
            trial.set_user_attr("duplicate", True)
            finish_trial(study, trial.number, "PRUNED")
            return
        job.record(study, trial)


def _propose_ab(space: SearchSpace, trial) -> dict[str, Any]:
    a = trial.suggest_float("a", *space.a_bounds, log=space.log)
    b = trial.suggest_float("b", *space.b_bounds, log=space.log)
    return {"key": _key(a, b), "spec": Beta(a, b).spec}


def _record_ab(objective: Objective, study, trial) -> None:
    _record(study, trial_id(trial), trial.number, objective, trial.params["a"], trial.params["b"], None, 0)


def _run_workers(target: Callable, args: tuple, workers: int, progress: "Callable[[], None] | None") -> None:
    """Run ``target(*args, worker)`` in this process (one worker) or in ``workers`` forked processes."""
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


def study_trials(study) -> list[Trial]:
    """Every trial of an Optuna study as a :class:`Trial`."""
    out = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        out.append(Trial(
            number=t.number, state=t.state.name, a=t.params.get("a"), b=t.params.get("b"), value=t.value,
            n=u.get("n"), stderr=u.get("stderr"), spec=u.get("spec"), strategy=u.get("strategy"),
            rung=u.get("rung", 0) or 0, size=u.get("size"), error=u.get("error"),
            duplicate=bool(u.get("duplicate")), stale=bool(u.get("stale")),
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


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


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
) -> TuneResult:
    """Run (or resume) a tuning study and return the best (a, b), the baselines and the trial counts.

    ``budget`` is the number of evaluations for ``tpe``/``random`` (default 25) and, if given, caps the
    grid for ``grid``/``halving`` (a seeded random subset of the points). ``storage=None`` keeps the
    study in this process's memory (one worker; nothing to resume). ``progress(completed)`` is called
    as trials finish. ``halving`` scores every point on ``halving_min_size`` items (50, as the paper), keeps
    the best ``1/halving_eta`` and multiplies the subset by ``halving_eta`` until it holds every item; the
    subsets of one ``seed`` are nested, and an :class:`~mdm_energy.tuning.ItemObjective` keeps each item's
    score with the study, so no item is scored twice for one schedule. A study holds one objective: a name
    reused for another objective is refused.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    if budget is not None:
        _positive_int("budget", budget)
        if budget > MAX_TRIALS:
            raise ValueError(f"budget must be at most {MAX_TRIALS:,}, got {budget:,}")
    check_workers(_positive_int("workers", workers))
    _positive_int("halving_min_size", halving_min_size)
    if _positive_int("halving_eta", halving_eta) < 2:
        raise ValueError(f"halving_eta must be at least 2, got {halving_eta}")
    if storage is None and workers > 1:
        raise ValueError("an in-memory study (storage=None) cannot be shared by worker processes; give a storage URL")
    space = space or SearchSpace()
    name = study_name or f"{objective.name}:{strategy}"
    path = _file_of(storage) if storage else None
    created_file = path is not None and not path.exists()
    study = open_study(storage, name, objective.direction)
    try:
        _claim_objective(study, name, objective)
        return _run(study, objective, strategy=strategy, budget=budget, storage=storage, name=name, workers=workers,
                    seed=seed, space=space, halving_min_size=halving_min_size, halving_eta=halving_eta, progress=progress)
    except BaseException:
        _discard_if_empty(storage, name, created_file)
        raise


def _claim_objective(study, name: str, objective: Objective) -> None:
    """A study holds one objective: a name reused for another is refused (its scores would be mixed)."""
    held = study.user_attrs.get("objective")
    if held is None:
        study.set_user_attr("objective", objective.name)
    elif held != objective.name:
        raise ValueError(f"study {name!r} already holds the objective {held!r}, not {objective.name!r}; "
                         "give another study name")


def _run(study, objective: Objective, *, strategy: str, budget: "int | None", storage: "str | None", name: str,
         workers: int, seed: int, space: SearchSpace, halving_min_size: int, halving_eta: int,
         progress: "Callable[[int], None] | None") -> TuneResult:
    _fail_stale(study)
    run_id = uuid.uuid4().hex  # tags the trials this call evaluates: new_evaluations counts them
    _bind(objective, study)
    opener = (lambda: study) if workers == 1 else partial(open_study, storage, name, objective.direction)

    def tick() -> None:
        if progress:
            progress(len(_completed(study, strategy)))

    for base in BASELINES:  # once per study, stored as study attributes
        if f"baseline:{base}" not in study.user_attrs:
            s = objective.evaluate(base)
            study.set_user_attr(f"baseline:{base}", {"value": s.value, "n": s.n, "stderr": s.stderr})

    if strategy in ("tpe", "random"):
        job = AskJob(strategy, budget or 25, run_id, partial(optuna_sampler, strategy, seed), partial(_propose_ab, space),
                     partial(_record_ab, objective))
        _run_workers(ask_worker, (opener, objective, job), workers, tick)
    else:
        points = space.grid()
        if budget is not None and budget < len(points):
            keep = np.random.default_rng(seed).permutation(len(points))[:budget]
            points = [points[i] for i in sorted(keep)]
        sizes = _halving_plan(objective, halving_min_size, halving_eta) if strategy == "halving" else [None]
        for rung, size in enumerate(sizes):
            jobs = [(a, b, rung, size, seed) for a, b in points]  # one seed: each rung's subset contains the last
            _run_workers(_points_worker, (opener, objective, strategy, jobs, run_id, workers), workers, tick)
            if rung + 1 < len(sizes):  # keep the best 1/eta for the next, larger subset
                done = {(t.params["a"], t.params["b"]): t.value for t in _completed(study, strategy)
                        if t.user_attrs.get("rung") == rung}
                ranked = sorted(done, key=lambda p: done[p], reverse=objective.direction == "maximize")
                points = ranked[: max(1, math.ceil(len(ranked) / halving_eta))]
    tick()
    return _result(study, objective, strategy, run_id)


def _result(study, objective: Objective, strategy: str, run_id: str) -> TuneResult:
    trials = study_trials(study)
    done = [t for t in trials if t.state == "COMPLETE" and t.strategy == strategy]
    if not done:
        raise RuntimeError("no trial completed: every evaluation failed (see the trials' error attributes)")
    top_rung = max(t.rung for t in done)
    sign = 1.0 if objective.direction == "minimize" else -1.0
    best = min((t for t in done if t.rung == top_rung), key=lambda t: (sign * t.value, t.a, t.b))  # ties: smallest (a, b)
    runs = {t.number: t.user_attrs.get("run") for t in _completed(study, strategy)}
    return TuneResult(
        strategy=strategy,
        direction=objective.direction,
        best=best,
        baselines={b: Score(**study.user_attrs[f"baseline:{b}"]) for b in BASELINES},
        evaluations=len(done),
        new_evaluations=sum(1 for t in done if runs.get(t.number) == run_id),
        trials=trials,
    )
