r"""Where a study lives: Optuna storage URLs, checking them early, opening studies, cleaning up (docs/design.md §6).

A study lives in an Optuna storage: a SQLite file by default, any URL Optuna accepts (PostgreSQL/MySQL
for several machines), ``journal:PATH`` for a journal file, or ``None`` for a throwaway in-memory study
in this process. This module is the storage half of the tuner: which URLs are accepted and why a bad
one is refused before anything is created (:func:`check_storage`), how each kind is opened (SQLite
with a long lock timeout; a database server with Optuna's heartbeat, so a dead worker on another
machine is noticed, and with every call riding out an outage of the server, :mod:`.outage`), the lock
that lets several commands create one new SQLite file together, and the clean-up that leaves nothing
behind after a first run that completed nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..limits import STORAGE_PATIENCE
from ._optuna import optuna
from .outage import StorageOutage, impatient, patient_rdb_storage

__all__ = ["DEFAULT_STORAGE", "HEARTBEAT_SECONDS", "check_storage", "file_of", "heartbeat_seconds", "optuna_storage",
           "open_study", "creates_file", "discard_if_empty"]

DEFAULT_STORAGE = "sqlite:///mdm-energy-studies.db"
_MEMORY_URLS = ("sqlite://", "sqlite:///", "sqlite:///:memory:")
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")


def file_of(url: str) -> "Path | None":
    """The file behind a SQLite or journal storage URL (``None`` for server databases)."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    return None


def creates_file(url: "str | None") -> bool:
    """Whether opening ``url`` would create its file now (so a run that fails may remove it again)."""
    path = file_of(url) if url else None
    return path is not None and not path.exists()


def check_storage(url: "str | None") -> None:
    """Fail early (``ValueError`` naming the URL) on a storage that cannot hold a resumable study: an
    in-memory URL, an unknown scheme, a SQLite or journal file in a missing or read-only folder, a folder
    where the file should be, a file that is not a SQLite database, or a damaged one. ``None`` (this process's memory,
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
    path = file_of(url)
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
        _check_sqlite_file(path)


def _check_sqlite_file(path: Path) -> None:
    """Read a SQLite study file once, read-only (``PRAGMA quick_check``): a damaged one — cut short, partly
    overwritten — is refused naming the file before Optuna touches it, so it is left exactly as it is (the
    user may still recover it), instead of failing later in the middle of a run."""
    import sqlite3
    from urllib.parse import quote

    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=60)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        reason = " ".join(str(exc).split())
    else:
        if rows == [("ok",)]:
            return
        reason = "; ".join(" ".join(str(r[0]).split()) for r in rows[:2])
    raise ValueError(f"storage file {str(path)!r} is damaged ({reason[:200]}); it was left as it is: restore it "
                     "from a copy or give another file")


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
def _creation_lock(url: "str | None") -> Iterator[None]:
    """Hold an exclusive lock on a SQLite file while Optuna creates its tables and the study, so that
    several commands started together on a new file do not race on the schema (other storages lock
    themselves)."""
    path = file_of(url) if url and url.startswith("sqlite:///") else None
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
    """The heartbeat interval of database-server workers: ``MDM_ENERGY_HEARTBEAT`` seconds, or
    :data:`HEARTBEAT_SECONDS`; ``ValueError`` when the variable is not a positive whole number."""
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


def optuna_storage(url: "str | None", patience: float = STORAGE_PATIENCE):
    """The Optuna storage object of ``url`` (``None``: Optuna's in-memory storage of this process). On a
    database server every call rides out an outage of up to ``patience`` seconds (:mod:`.outage`); a SQLite
    file waits for its lock up to 60 s instead."""
    if url is None:
        return None
    op = optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return op.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    if url.startswith("sqlite"):  # one machine: a dead worker is found by its process id
        return op.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    beat = heartbeat_seconds()
    with warnings.catch_warnings():  # Optuna calls its heartbeat experimental; we use it on purpose (see above)
        warnings.simplefilter("ignore", op.exceptions.ExperimentalWarning)
        return patient_rdb_storage(url, patience, engine_kwargs=_server_kwargs(url), heartbeat_interval=beat,
                                   grace_period=4 * beat)


def open_study(storage: "str | None", name: str, direction: "str | Sequence[str]",
               patience: float = STORAGE_PATIENCE):
    """Create or load an Optuna study (a storage URL, ``journal:PATH``, or ``None`` for memory); several
    ``direction`` values make a multi-objective study. On a database server the study's calls ride out an
    outage of up to ``patience`` seconds, then raise :class:`~.outage.StorageOutage`."""
    check_storage(storage)
    how = {"direction": direction} if isinstance(direction, str) else {"directions": list(direction)}
    try:
        with _creation_lock(storage):
            return optuna().create_study(storage=optuna_storage(storage, patience), study_name=name,
                                         load_if_exists=True, **how)
    except (ValueError, StorageOutage):
        raise
    except Exception as exc:  # noqa: BLE001 - any backend error means the storage is unusable
        raise ValueError(f"cannot open storage {storage!r}: {' '.join(str(exc).split())[:300]}") from None


def discard_if_empty(storage: "str | None", name: str, created_file: bool) -> None:
    """After a run that completed nothing: delete its study if it holds no trial, and the SQLite file if this
    run created it and no study is left in it — a refused or interrupted first run leaves nothing behind."""
    if storage is None:
        return
    op = optuna()
    try:
        with _creation_lock(storage), impatient():  # one try: the error that brought us here comes first
            st = optuna_storage(storage)
            study = op.load_study(study_name=name, storage=st)
            if study.get_trials(deepcopy=False):
                return
            op.delete_study(study_name=name, storage=st)
            remaining = op.get_all_study_summaries(storage=st)
            if hasattr(st, "engine"):
                st.engine.dispose()
        if created_file and not remaining:
            path = file_of(storage)
            if path is not None and path.exists():
                path.unlink()
    except Exception:  # noqa: BLE001 - cleaning up must never hide the error that brought us here
        pass
