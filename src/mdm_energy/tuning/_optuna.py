"""The few Optuna calls the tuner makes beyond ``ask``/``tell``, in one place, and why.

A grid point must be *claimed* before it is evaluated, so that two workers — processes or machines
sharing one storage — never evaluate the same point. Optuna's public API lets a sampler choose the
parameters (``study.ask``) or queues fixed ones (``study.enqueue_trial``), but a queued trial can be
popped by any worker, so neither tells a worker "this trial, with these parameters, is yours". Creating
the trial directly in the storage, already ``RUNNING`` and with its parameters fixed, does: the storage
numbers trials atomically, and among the trials that hold one point the lowest number wins. That call
(``create_new_trial``), a trial's storage id and setting an attribute on a trial another process created
(the storage's ``set_trial_user_attr``) are not public API, so they live here and nowhere else; finishing
a trial goes through the public ``study.tell``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["optuna", "create_running_trial", "trial_id", "set_trial_attr", "finish_trial"]


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


def trial_id(trial) -> int:
    """The storage id of a (frozen or live) trial."""
    return trial._trial_id


def set_trial_attr(study, tid: int, key: str, value: Any) -> None:
    """Set a user attribute on the running trial with storage id ``tid``, whichever process created it."""
    study._storage.set_trial_user_attr(tid, key, value)


def finish_trial(study, number: int, state: str, value: "float | list[float] | None" = None) -> None:
    """Finish the running trial ``number`` as ``COMPLETE`` (with ``value``), ``FAIL`` or ``PRUNED``."""
    st = getattr(optuna().trial.TrialState, state)
    values = None if value is None else (list(value) if isinstance(value, (list, tuple)) else [value])
    study.tell(number, values=values, state=st)
