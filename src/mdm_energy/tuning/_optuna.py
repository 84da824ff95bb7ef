"""The few Optuna calls the tuner makes beyond the public ``ask``/``tell``, in one place, and why.

A grid point must be *claimed* before it is evaluated, so that two workers — processes or machines
sharing one storage — never evaluate the same point. Optuna's public API lets a sampler choose the
parameters (``study.ask``) or queues fixed ones (``study.enqueue_trial``), but a queued trial can be
popped by any worker, so neither tells a worker "this trial, with these parameters, is yours". Creating
the trial directly in the storage, already ``RUNNING`` and with its parameters fixed, does: the storage
numbers trials atomically, and among the trials that hold one point the lowest number wins. That call
(``create_new_trial``), a trial's storage id and setting an attribute on a trial another process created
(the storage's ``set_trial_user_attr``) are not public API, so they live here and nowhere else; finishing
a trial goes through the public ``study.tell``. The ask-and-tell strategies create their trials the same way,
already carrying their owner, and then wrap one as ``study.ask`` does (:func:`asked_trial`: the live
``Trial(study, trial_id)``, after clearing the study's cached trial list), so that no interrupt between
Optuna's create and the worker's naming itself can leave a trial without an owner.

Reading one study attribute: ``study.user_attrs`` reads, decodes and deep-copies *every* attribute of the study,
and the item scores live there, one attribute per schedule (:mod:`.items`), so reading one schedule's scores that
way costs the whole study's — quadratic over a study's life (a 100-point grid spent most of its time there). An RDB
storage keeps one row per (study, key); :func:`study_user_attr` reads that row alone (the storage's table model and
session helper, not public API).

Workers on other machines: a process id means nothing there, so a storage on a database server is opened
with Optuna's heartbeat (``RDBStorage(heartbeat_interval=..., grace_period=...)``). A worker beats for its
running trial while it evaluates (:func:`heartbeat`); a trial whose beat stopped longer than the grace
period ago belongs to a dead worker (:func:`stale_trial_ids`, the storage's own query, not public API).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any, Iterator

__all__ = ["optuna", "create_running_trial", "asked_trial", "trial_id", "set_trial_attr", "finish_trial", "heartbeat",
           "stale_trial_ids", "study_user_attr", "read_study_user_attr"]


def optuna():
    """The optuna module, imported on first use and set to log warnings only."""
    import optuna as _optuna

    _optuna.logging.set_verbosity(_optuna.logging.WARNING)
    return _optuna


def create_running_trial(study, params: dict[str, float], distributions: dict, user_attrs: dict[str, Any]) -> tuple[int, int]:
    """Create a ``RUNNING`` trial with fixed ``params`` in the study's storage; returns ``(trial_id, number)``."""
    op = optuna()
    template = op.trial.create_trial(state=op.trial.TrialState.RUNNING, params=params, distributions=distributions,
                                     user_attrs=user_attrs)
    storage = study._storage
    tid = storage.create_new_trial(study._study_id, template_trial=template)
    return tid, storage.get_trial_number_from_id(tid)


def asked_trial(study, tid: int):
    """The live trial for running trial ``tid`` (made by :func:`create_running_trial`), ready for the sampler's
    suggestions: what ``study.ask`` returns after it creates a trial. ``ask`` creates the trial without
    attributes, so a worker stopped before it names itself leaves an ownerless trial ``RUNNING``; creating it
    already named, then wrapping it as ``ask`` does, closes that window. The wrapping is not public API:
    ``optuna.trial.Trial(study, tid)`` (the sampler's ``before_trial`` runs in it) after clearing the study's
    cached trial list, as ``ask`` does, so the sampler sees every trial finished so far."""
    study._thread_local.cached_all_trials = None
    return optuna().trial.Trial(study, tid)


def trial_id(trial) -> int:
    """The storage id of a (frozen or live) trial."""
    return trial._trial_id


def set_trial_attr(study, tid: int, key: str, value: Any) -> bool:
    """Set a user attribute on the running trial with storage id ``tid``, whichever process created it;
    False (nothing set) when the trial has finished meanwhile — see :func:`finish_trial`."""
    try:
        study._storage.set_trial_user_attr(tid, key, value)
    except optuna().exceptions.UpdateFinishedTrialError:
        return False
    return True


def finish_trial(study, number: int, state: str, value: "float | list[float] | None" = None) -> bool:
    """Finish the running trial ``number`` as ``COMPLETE`` (with ``value``), ``FAIL`` or ``PRUNED``.

    False, leaving it as it is, when the trial has finished already: the first attempt of a retried call
    committed but its reply was lost (:mod:`.outage`), or another worker failed it as stale while this one
    could not reach the storage — then that worker's verdict stands and the point is redone once."""
    op = optuna()
    values = None if value is None else (list(value) if isinstance(value, (list, tuple)) else [value])
    try:
        study.tell(number, values=values, state=getattr(op.trial.TrialState, state))
    except (op.exceptions.UpdateFinishedTrialError, ValueError):  # ValueError: Optuna's "Cannot tell a FAIL trial"
        if not any(t.number == number and t.state.is_finished() for t in study.get_trials(deepcopy=False)):
            raise
        return False
    return True


def _heartbeat_storage(study):
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    return storage if is_heartbeat_enabled(storage) else None


@contextlib.contextmanager
def heartbeat(study, tid: int) -> Iterator[None]:
    """Beat for trial ``tid`` every heartbeat interval while the block runs (nothing if the storage has no
    heartbeat)."""
    storage = _heartbeat_storage(study)
    if storage is None:
        yield
        return
    interval = storage.get_heartbeat_interval()
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(tid)
            except Exception:  # noqa: BLE001 - a missed beat (the server is away) is retried at the next interval
                pass
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{tid}", daemon=True)
    thread.start()  # its first beat is at once
    try:
        yield
    finally:
        stop.set()
        thread.join()


def stale_trial_ids(study) -> set[int]:
    """Storage ids of running trials whose heartbeat is older than the grace period (any machine)."""
    storage = _heartbeat_storage(study)
    if storage is None:
        return set()
    return set(storage._get_stale_trial_ids(study._study_id))


#: What :func:`read_study_user_attr` returns for a key the study does not have.
MISSING = object()


def read_study_user_attr(storage, study_id: int, key: str) -> Any:
    """The value of one user attribute of study ``study_id`` in an ``RDBStorage``, or :data:`MISSING` — one row
    of the storage's ``study_user_attributes`` table, decoded as the storage decodes it."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        row = (session.query(models.StudyUserAttributeModel)
               .filter(models.StudyUserAttributeModel.study_id == study_id)
               .filter(models.StudyUserAttributeModel.key == key).one_or_none())
        return MISSING if row is None else json.loads(row.value_json)


def study_user_attr(study, key: str, default: Any = None) -> Any:
    """One user attribute of ``study`` (``default`` when absent), read alone from an RDB storage (a patient one
    rides out an outage as for every other call) and through the public ``study.user_attrs`` elsewhere."""
    from optuna.storages import RDBStorage

    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDB storage in its cache
    patient = getattr(storage, "get_study_user_attr", None)
    if patient is not None:
        value = patient(study._study_id, key)
    elif isinstance(storage, RDBStorage):
        value = read_study_user_attr(storage, study._study_id, key)
    else:
        return study.user_attrs.get(key, default)
    return default if value is MISSING else value
