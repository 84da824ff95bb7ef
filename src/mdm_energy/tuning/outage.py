r"""Riding out a database outage: bounded retries around every call a worker makes to a study on a server.

A study spread over machines lives on a database server, and servers go away for a while: a restart for
maintenance (``pg_ctl restart``), a fail-over, a dropped connection. A worker must not die of it. Every
storage call of a worker — claiming a point, recording a score or an attribute, reading the trials, the
report at the end — goes through :class:`PatientRDBStorage`, which retries a call that failed for a
*transient* reason (:func:`transient`: the connection was lost, refused or timed out, the server is
shutting down or starting) with exponential backoff, 0.25 s doubling to at most 5 s, until it succeeds or
``patience`` seconds (default :data:`~mdm_energy.limits.STORAGE_PATIENCE`, 60) have passed since the first failure. Then the
worker stops with :class:`StorageOutage`: one line naming the storage, exit status
:data:`EXIT_STORAGE_OUTAGE` (75, ``EX_TEMPFAIL``) on the command line, and the study resumes on rerun.
Any other error (bad data, an integrity error, a finished trial) is raised at once.

Why retrying is safe. Each retried call is one transaction, so a failed attempt changed nothing — except
when the server committed and only its reply was lost. For reads and attribute writes a repeat is
harmless. Finishing a trial twice makes the repeat fail with Optuna's ``UpdateFinishedTrialError``, which
the claim protocol reads as "finished" (:func:`~mdm_energy.tuning._optuna.finish_trial`). Creating a trial
twice leaves an orphan ``RUNNING`` trial of this process beside the new one; the claim protocol fails it as
stale before evaluating (on a grid or halving point, :func:`~mdm_energy.tuning.claims.evaluate_point`; for an
ask-and-tell trial — tpe, random, Pareto — :func:`~mdm_energy.tuning.claims.ask_worker`), so the point is
scored once and the orphan takes no place in the budget.
A trial interrupted because the worker gave up stays ``RUNNING`` under the worker's process id and is
failed as stale and redone once by the next run (:func:`~mdm_energy.tuning.claims.fail_stale`).

Only the outermost call retries (a retried method that calls another does not multiply the patience), and
heartbeats are not retried here: the heartbeat thread beats again at its next interval anyway.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from ..limits import MAX_STORAGE_PATIENCE, STORAGE_PATIENCE

__all__ = ["EXIT_STORAGE_OUTAGE", "impatient", "StorageOutage", "transient", "patiently", "check_patience",
           "patient_rdb_storage"]

#: Exit status of a command whose study storage stayed unreachable for its patience (``EX_TEMPFAIL``).
EXIT_STORAGE_OUTAGE = 75

_FIRST_DELAY, _MAX_DELAY = 0.25, 5.0
_ACTIVE = threading.local()  # depth of patient calls in this thread: only the outermost one retries

T = TypeVar("T")


class StorageOutage(RuntimeError):
    """The study storage stayed unreachable for the worker's whole patience (``seconds``, the patience the
    worker was given, not the time its last attempt happened to end); nothing finished is lost. The command
    line exits with its ``exit_status``."""

    exit_status = EXIT_STORAGE_OUTAGE

    def __init__(self, url: "str | None", seconds: "float | None", reason: str) -> None:
        self.url, self.seconds, self.reason = url, seconds, reason
        where = f"the study storage {url}" if url else "the study storage"
        took = f" for {seconds:g} s" if seconds is not None else ""
        super().__init__(f"{where} stayed unreachable{took} ({reason}); the study keeps every finished trial: "
                         "rerun the same command to resume it")


def check_patience(seconds: float) -> float:
    """``seconds`` as a float when it is a usable patience (0 — give up at the first failure — to
    :data:`~mdm_energy.limits.MAX_STORAGE_PATIENCE`), else ``ValueError`` naming it."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"storage patience must be a number of seconds, got {seconds!r}") from None
    if not 0.0 <= value <= MAX_STORAGE_PATIENCE:  # also refuses nan
        raise ValueError(f"storage patience must be between 0 and {MAX_STORAGE_PATIENCE:g} seconds, got {seconds!r}")
    return value


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the server could not be reached right now:
    SQLAlchemy's ``OperationalError``, ``InterfaceError``, ``DisconnectionError`` or pool ``TimeoutError``, or
    any database error that invalidated its connection. Optuna wraps commit failures in
    ``StorageInternalError``; the chain is followed through it."""
    import sqlalchemy.exc as sx

    seen: "BaseException | None" = exc
    for _ in range(16):  # a chain is short; a cycle must not loop forever
        if seen is None:
            return False
        if isinstance(seen, (sx.OperationalError, sx.InterfaceError, sx.DisconnectionError, sx.TimeoutError)):
            return True
        if isinstance(seen, sx.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    """The first line of the deepest message in ``exc``'s chain (the driver's own words)."""
    while exc.__cause__ is not None or getattr(exc, "orig", None) is not None:
        exc = getattr(exc, "orig", None) or exc.__cause__
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def patiently(call: Callable[[], T], url: "str | None", patience: float,
              sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """``call()``, retried after transient failures with backoff (0.25 s doubling to 5 s, the last wait cut
    to end at the deadline) for up to ``patience`` seconds after the first failure; then
    :class:`StorageOutage` naming ``url``. ``sleep`` and ``clock`` are the waiting and the time it tells."""
    started, delay = None, _FIRST_DELAY
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - sorted into transient and not below
            if not transient(exc):
                raise
            now = clock()
            started = now if started is None else started
            waited = now - started
            if waited >= patience:  # named by the patience: a slow last attempt under load must not change the line
                raise StorageOutage(url, patience, _reason(exc)) from None
            sleep(min(delay, patience - waited))
            delay = min(2 * delay, _MAX_DELAY)


def _shown(url: str) -> str:
    """``url`` with any password hidden (it goes into error messages)."""
    try:
        import sqlalchemy

        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse is shown as given
        return url


#: The storage methods a study and Optuna's cache in front of it call: each is one transaction, retried.
_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
    "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "get_trial_user_attrs", "get_trial_system_attrs", "get_trial_id_from_study_id_trial_number",
    "get_trial", "get_all_trials", "_get_trials", "get_best_trial", "_get_best_trial_id", "_get_stale_trial_ids",
)


def _inside(call: Callable[[], T]) -> T:
    """Run one attempt of a patient call: calls it makes go straight through (only the outermost retries)."""
    _ACTIVE.depth = getattr(_ACTIVE, "depth", 0) + 1
    try:
        return call()
    finally:
        _ACTIVE.depth -= 1


@contextlib.contextmanager
def impatient(seconds: float = 0.0) -> Iterator[None]:
    """Within the block, this thread's patient calls wait at most ``seconds`` (default: try once): for
    clean-up on the way out of an interrupt, which must not hold a stopping worker for a whole patience."""
    before = getattr(_ACTIVE, "cap", None)
    _ACTIVE.cap = seconds if before is None else min(before, seconds)
    try:
        yield
    finally:
        _ACTIVE.cap = before


def _capped(patience: float) -> float:
    """``patience``, or less inside :func:`impatient`."""
    cap = getattr(_ACTIVE, "cap", None)
    return patience if cap is None else min(patience, cap)


def _patient(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self, *args: Any, **kwargs: Any) -> Any:
        attempt = functools.partial(method, self, *args, **kwargs)
        if getattr(_ACTIVE, "depth", 0):
            return attempt()
        return patiently(lambda: _inside(attempt), self.shown_url, _capped(self.patience))

    return call


@functools.cache
def _patient_class() -> type:
    """Optuna's ``RDBStorage`` with :data:`_RETRIED` made patient (built on first use: optuna loads lazily)."""
    from optuna.storages import RDBStorage

    from ._optuna import read_study_user_attr

    attrs = {name: _patient(getattr(RDBStorage, name)) for name in _RETRIED}
    attrs["get_study_user_attr"] = _patient(read_study_user_attr)  # one attribute alone (see _optuna)
    attrs["__doc__"] = "Optuna's RDBStorage whose calls ride out a server outage (mdm_energy.tuning.outage)."
    attrs["__module__"] = __name__
    return type("PatientRDBStorage", (RDBStorage,), attrs)


def patient_rdb_storage(url: str, patience: float = STORAGE_PATIENCE, **kwargs: Any):
    """An Optuna ``RDBStorage`` on ``url`` (``kwargs`` as for it) whose every call — connecting included —
    rides out an outage of up to ``patience`` seconds (:func:`patiently`)."""
    cls = _patient_class()
    patience = check_patience(patience)

    def connect():
        storage = cls.__new__(cls)
        storage.patience, storage.shown_url = patience, _shown(url)
        _inside(lambda: cls.__init__(storage, url, **kwargs))
        return storage

    return patiently(connect, _shown(url), _capped(patience))
