"""Stopping cleanly on SIGINT and SIGTERM, and holding them back while several files are renamed into place.

Python turns SIGINT into ``KeyboardInterrupt``, but SIGTERM (what ``kill``, a batch scheduler or a container
runtime sends) kills the interpreter at once: no ``finally`` runs, so temporary files stay and a tuning
trial stays ``RUNNING``. :func:`install` makes both signals raise :class:`Interrupted`, a
``KeyboardInterrupt``, so every clean-up already written for Ctrl-C (temporary files removed, an empty
study discarded, a trial marked for redoing) also runs for SIGTERM. :func:`held` defers them over a few
renames that must happen together (a checkpoint's files), so a signal never lands between two of them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["SIGNALS", "Interrupted", "install", "restore", "exit_status", "describe", "held"]

#: The signals that stop a command cleanly.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop requested by a signal (``signum``); a ``KeyboardInterrupt``, so Ctrl-C's clean-up paths handle it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> "dict[int, Any] | None":
    """Make SIGINT and SIGTERM raise :class:`Interrupted` in this process (and the processes it forks);
    returns the previous handlers for :func:`restore`, or ``None`` outside the main thread (where Python
    cannot set handlers)."""
    if not _in_main_thread():
        return None
    return {sig: signal.signal(sig, _raise) for sig in SIGNALS}


def restore(previous: "dict[int, Any] | None") -> None:
    """Put back the handlers :func:`install` replaced (so a caller such as a test runner keeps its own)."""
    for sig, handler in (previous or {}).items():
        if handler is not None:
            signal.signal(sig, handler)


def exit_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a stop: 128 + the signal's number (130 for SIGINT and a plain Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def describe(exc: KeyboardInterrupt) -> str:
    """The signal's name, e.g. ``SIGTERM`` (``SIGINT`` for a plain ``KeyboardInterrupt``)."""
    return signal.Signals(getattr(exc, "signum", signal.SIGINT)).name


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends, then deliver the first one that arrived to the handler
    that was in place (which raises, or for a default SIGTERM ends the process). Outside the main thread,
    or where a handler was not set from Python (so it could not be put back), the block runs unprotected."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS} if _in_main_thread() else {}
    if not previous or any(h is None for h in previous.values()):
        yield
        return
    caught: list[int] = []
    for sig in SIGNALS:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])
