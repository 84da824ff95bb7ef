"""Tuning workers ride out a database outage: a real PostgreSQL server restarted and stopped under running
workers, the backoff and give-up rule of :func:`patiently`, and the two retries that could count a point
twice (a create or a finish whose commit landed but whose reply was lost), injected at the commit.

References: the grid itself (every point exactly once COMPLETE, read back from the server with plain Optuna),
the backoff rule written out in the test (0.25 s doubling to 5 s, cut at the deadline), the objective's
own call count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import sqlalchemy.orm
from sqlalchemy import event

from mdm_energy.schedules import Beta, schedule_family
from mdm_energy.tuning import CallableObjective, SearchSpace, tune
from mdm_energy.tuning.claims import BETA, evaluate_point, record, scored
from mdm_energy.tuning.outage import EXIT_STORAGE_OUTAGE, StorageOutage, patient_rdb_storage, patiently, transient

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
A_VALUES, B_VALUES = (0.2, 0.4, 0.6, 0.8, 1.0), (0.3, 0.6, 0.9, 1.2)


def _lost(message: str = "server closed the connection unexpectedly") -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("COMMIT", {}, Exception(message))


# --- the rule: which errors are retried, how long, how often --------------------------------------------------

def test_backoff_doubles_to_five_seconds_and_gives_up_at_the_patience():
    clock, sleeps = [0.0], []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s

    def down():
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from _lost()

    with pytest.raises(StorageOutage) as info:
        patiently(down, "postgresql://mdm@db:5432/x", 20.0, sleep=sleep, clock=lambda: clock[0])
    expected, total, d = [], 0.0, 0.25  # the rule, written out: 0.25 s doubling to 5 s, the last cut at 20 s
    while total < 20.0:
        expected.append(min(d, 20.0 - total))
        total += expected[-1]
        d = min(2 * d, 5.0)
    assert sleeps == pytest.approx(expected) and sum(sleeps) == pytest.approx(20.0)
    msg = str(info.value)
    assert "postgresql://mdm@db:5432/x stayed unreachable for 20 s" in msg and "rerun" in msg
    assert "server closed the connection unexpectedly" in msg and "\n" not in msg
    assert StorageOutage.exit_status == EXIT_STORAGE_OUTAGE == 75


def test_a_transient_failure_is_retried_until_the_call_succeeds():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise _lost("connection refused")
        return "ok"

    assert patiently(flaky, "u", 60.0, sleep=sleeps.append, clock=lambda: 0.0) == "ok"
    assert len(calls) == 4 and sleeps == [0.25, 0.5, 1.0]


@pytest.mark.parametrize("error", [
    ValueError("bad data"),
    sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
    optuna.exceptions.UpdateFinishedTrialError("finished"),
    optuna.exceptions.StorageInternalError("x"),  # a commit error that is not about the connection
])
def test_other_errors_are_raised_at_once(error):
    sleeps = []

    def fails():
        raise error

    with pytest.raises(type(error)):
        patiently(fails, "u", 60.0, sleep=sleeps.append, clock=lambda: 0.0)
    assert sleeps == [] and not transient(error)


def test_patience_is_checked():
    from mdm_energy.tuning.outage import check_patience

    for bad in (-1, float("nan"), float("inf"), 1e9, "soon"):
        with pytest.raises(ValueError, match="storage patience"):
            check_patience(bad)
    assert check_patience(0) == 0.0


# --- the two retries that could count a point twice, injected at the commit ------------------------------------

@pytest.fixture
def lose_reply_once():
    """Arm: the next commit whose statements touch ``table`` lands in the database, then reports a lost
    connection — the one case where a retry repeats work that was done."""
    armed: dict[str, str] = {}
    touched: set[str] = set()

    def before_flush(session, *_):
        touched.update(type(o).__tablename__ for o in list(session.new) + list(session.dirty)
                       if hasattr(type(o), "__tablename__"))

    def after_commit(session):
        hit = armed.get("table") in touched
        touched.clear()
        if hit:
            armed.clear()
            raise _lost()

    event.listen(sqlalchemy.orm.Session, "before_flush", before_flush)
    event.listen(sqlalchemy.orm.Session, "after_commit", after_commit)
    yield armed
    event.remove(sqlalchemy.orm.Session, "before_flush", before_flush)
    event.remove(sqlalchemy.orm.Session, "after_commit", after_commit)


def _patient_study(tmp_path: Path):
    storage = patient_rdb_storage(f"sqlite:///{tmp_path / 's.db'}", patience=5.0)
    return optuna.create_study(study_name="s", storage=storage, direction="maximize")


def test_a_created_trial_whose_reply_was_lost_is_evaluated_once(tmp_path, lose_reply_once):
    study = _patient_study(tmp_path)
    calls = []
    objective = CallableObjective(lambda s: calls.append(s.spec) or 1.0, name="one")
    lose_reply_once["table"] = "trials"  # the create commits, its reply is lost, the retry creates a second trial
    assert evaluate_point(study, objective, "grid", schedule_family(BETA), (0.5, 0.5), run_id="r1")
    states = Counter((t.state.name, bool(t.user_attrs.get("stale"))) for t in study.get_trials())
    assert states == {("COMPLETE", False): 1, ("FAIL", True): 1}  # the orphan failed as stale, not a rival
    assert calls == ["beta:0.5,0.5"]
    assert not lose_reply_once  # the fault did fire


@pytest.mark.parametrize("strategy", ["random", "tpe"])
def test_an_asked_trial_whose_create_reply_was_lost_is_evaluated_once(tmp_path, lose_reply_once, strategy):
    """Ask-and-tell workers (tpe, random; Pareto shares the worker) create their trials already named: the first
    attempt of a retried create is this worker's orphan, failed as stale at once — it holds no place in the
    budget, and every place of the budget is evaluated."""
    from functools import partial

    from mdm_energy.tuning.claims import AskJob, ask_worker, optuna_sampler
    from mdm_energy.tuning.study import _propose, _record_proposed

    study = _patient_study(tmp_path)
    calls = []
    objective = CallableObjective(lambda s: calls.append(s.spec) or 1.0, name="one")
    space = SearchSpace(bounds={"a": (0.1, 1.5), "b": (0.1, 1.5)})
    job = AskJob(strategy, 3, "r1", partial(optuna_sampler, strategy, 0), partial(_propose, space),
                 partial(_record_proposed, objective, space))
    lose_reply_once["table"] = "trials"  # the first create commits, its reply is lost, the retry creates another
    ask_worker(lambda: study, objective, job, 0)
    trials = study.get_trials()
    assert Counter((t.state.name, bool(t.user_attrs.get("stale"))) for t in trials) == {
        ("COMPLETE", False): 3, ("FAIL", True): 1}
    assert [t.number for t in trials if t.user_attrs.get("stale")] == [0]  # the orphan is the first attempt
    assert len(calls) == 3 and not lose_reply_once


def test_a_finish_whose_reply_was_lost_keeps_its_score(tmp_path, lose_reply_once):
    study = _patient_study(tmp_path)
    objective = CallableObjective(lambda s: 0.75, name="one")
    trial = study.ask()
    lose_reply_once["table"] = "trials"  # the COMPLETE commits, its reply is lost, the retry finds it finished
    record(study, trial._trial_id, trial.number, scored(objective, lambda: Beta(0.5, 0.5)))
    (t,) = study.get_trials()
    assert t.state.name == "COMPLETE" and t.value == 0.75 and "stderr" in t.user_attrs
    assert not lose_reply_once


# --- a real server taken away under running workers --------------------------------------------------------------

def _tune_cmd(url: str, study: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mdm_energy", "tune", "--objective", "task", "--task", "countdown",
            "--checkpoint", str(CHECKPOINT), "--limit", "8", "--steps", "4", "--strategy", "grid",
            "--a-values", ",".join(map(str, A_VALUES)), "--b-values", ",".join(map(str, B_VALUES)),
            "--storage", url, "--study", study, "--json", *extra]


def _trials(url: str, study: str) -> "list | None":
    """The study's trials read with plain Optuna (``None`` while the server is away)."""
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception:  # noqa: BLE001 - the server is restarting
        return None
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    except Exception:  # noqa: BLE001 - not created yet, or the server went away meanwhile
        return None
    finally:
        storage.engine.dispose()


def _wait_complete(url: str, study: str, n: int, procs: list, timeout: float = 240.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        trials = _trials(url, study) or []
        if sum(t.state.name == "COMPLETE" for t in trials) >= n:
            return
        if all(p.poll() is not None for p in procs):
            raise AssertionError(f"the workers ended before {n} points were done: "
                                 f"{[p.communicate()[1][-800:] for p in procs]}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} points done after {timeout} s")


def _still_running(procs: list, before: str) -> None:
    for p in procs:
        if p.poll() is not None:
            raise AssertionError(f"a worker ended (exit {p.returncode}) before {before}: {p.communicate()[1][-800:]}")


def _each_point_once(url: str, study: str) -> list:
    trials = _trials(url, study)
    done = Counter((t.params["a"], t.params["b"]) for t in trials if t.state.name == "COMPLETE")
    assert set(done) == {(a, b) for a in A_VALUES for b in B_VALUES} and max(done.values()) == 1, done
    assert not [t for t in trials if t.state.name == "RUNNING"]
    return trials


def test_two_workers_ride_out_a_restart_and_an_outage_of_the_server(postgres_server):
    url, study = postgres_server.url, "restart"
    procs = [subprocess.Popen(_tune_cmd(url, study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        _wait_complete(url, study, 3, procs)
        _still_running(procs, "the restart")
        assert postgres_server.run("restart").returncode == 0  # pg_ctl restart -m fast: connections are cut
        _wait_complete(url, study, 8, procs)
        _still_running(procs, "the outage")
        assert postgres_server.run("stop").returncode == 0
        time.sleep(3.0)  # three seconds without a server
        assert postgres_server.run("start").returncode == 0
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-2000:]
        assert "error" not in err, err
        json.loads(out)
    trials = _each_point_once(url, study)
    by_worker = Counter(t.user_attrs.get("pid") for t in trials if t.state.name == "COMPLETE")
    assert set(by_worker) == {p.pid for p in procs}  # both did work


def test_a_worker_gives_up_after_its_patience_and_the_rerun_completes_the_study(postgres_server, tmp_path):
    url, study = postgres_server.url, "outage"
    cmd = _tune_cmd(url, study, "--storage-patience", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_complete(url, study, 2, [proc])
        assert postgres_server.run("stop").returncode == 0
        t0 = time.time()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill() if proc.poll() is None else None
    waited = time.time() - t0
    assert proc.returncode == EXIT_STORAGE_OUTAGE, err[-2000:]
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"mdm-energy: error: the study storage {url} stayed unreachable for 2 s"), err
    assert "rerun the same command to resume" in err
    assert waited < 60, waited  # gave up after its patience (plus one evaluation at most), not the default 60 s
    assert postgres_server.run("start").returncode == 0
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    result = json.loads(rerun.stdout)
    trials = _each_point_once(url, study)
    assert result["evaluations"] == len(A_VALUES) * len(B_VALUES)
    assert result["new_evaluations"] < len(A_VALUES) * len(B_VALUES)  # the first run's points were kept
    for t in trials:  # a trial left running by the worker that gave up is failed as stale and redone once
        if t.state.name == "FAIL":
            assert t.user_attrs.get("stale"), t.user_attrs


def test_in_process_tune_raises_storage_outage(postgres_server):
    """The Python API: ``tune(storage_patience=...)`` raises :class:`StorageOutage` when the server stays away."""
    calls = []

    def score(s):
        calls.append(s.spec)
        if len(calls) == 6:  # the baselines are 4 evaluations; during the second grid point, the server goes
            assert postgres_server.run("stop").returncode == 0
        return 1.0

    with pytest.raises(StorageOutage, match="stayed unreachable for 1 s"):
        tune(CallableObjective(score, name="c"), strategy="grid", storage=postgres_server.url, study_name="api",
             space=SearchSpace(values={"a": (0.5, 1.0, 2.0), "b": (0.5,)}), storage_patience=1.0)


def test_clean_up_on_the_way_out_tries_the_storage_once(postgres_server):
    """Inside ``impatient()`` (the release of an interrupted trial) a lost server is given up on at once, not
    after the worker's whole patience."""
    from mdm_energy.tuning.outage import impatient
    from mdm_energy.tuning.storage import open_study

    study = open_study(postgres_server.url, "impatient", "maximize", patience=30.0)
    assert postgres_server.run("stop").returncode == 0
    t0 = time.time()
    with impatient(), pytest.raises(StorageOutage):
        study.get_trials(deepcopy=False)
    with impatient(), pytest.raises(StorageOutage):  # connecting anew is capped too
        patient_rdb_storage(postgres_server.url, patience=30.0)
    assert time.time() - t0 < 5.0


def test_a_trial_left_without_an_owner_is_failed_as_stale_after_ten_minutes(tmp_path):
    """A trial that never carried an owner (made by a plain Optuna ``ask``: another tool, or a worker of an earlier
    version stopped before it named itself) is failed-stale by a run ten minutes later, not before."""
    import datetime

    from mdm_energy.tuning.claims import OWNERLESS_SECONDS, fail_stale

    study = _patient_study(tmp_path)
    orphan = study.ask()  # no attributes: no owner
    named = study.ask()
    named.set_user_attr("host", "elsewhere")  # owned by a live worker on another machine
    start = next(t for t in study.get_trials() if t.number == orphan.number).datetime_start
    assert fail_stale(study, now=start + datetime.timedelta(seconds=10)) == 0
    assert fail_stale(study, now=start + datetime.timedelta(seconds=OWNERLESS_SECONDS + 1)) == 1
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[orphan.number].state.name == "FAIL" and by_number[orphan.number].user_attrs["stale"]
    assert by_number[named.number].state.name == "RUNNING"
