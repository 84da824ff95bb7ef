"""Keep third-party chatter off stderr while a command runs, so that an error is the one line the contract promises.

transformers, datasets, huggingface_hub, lm-eval, optuna and torch write warnings, log records and progress
bars to stderr as they load a model or a task (``Loading weights: 100%|…``, ``Generating test split``, lm-eval's
``INFO`` lines, numpy's ``RuntimeWarning`` with its source line): printed before our one-line refusal they turn
it into seven. :func:`quiet_libraries` is the one place that silences them, for the duration of a command:

* Python warnings: ours (a :class:`UserWarning` raised from this package, e.g. "some steps unmask nothing")
  are printed as one line ``mdm-energy: warning: …``; every other warning is dropped;
* :mod:`logging`: every record is dropped (this package logs nothing; the libraries' records are theirs);
* progress bars and verbosity of the Hugging Face libraries and tqdm: off, through their environment
  switches (read when they are imported) and, for one already imported, through its own API.

``--debug`` (or ``MDM_ENERGY_DEBUG=1``) leaves all of it as the libraries have it. Our own progress bars pass
``disable`` explicitly, so ``TQDM_DISABLE`` leaves them alone (shown on a terminal, hidden otherwise).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

__all__ = ["quiet_libraries"]

#: Environment switches of the libraries (set only where the user has not set them).
QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

_PACKAGE = str(Path(__file__).resolve().parents[1])


def _show_ours(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning``: a warning of this package as one line on stderr; any other, nothing."""
    if issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(_PACKAGE):
        print(f"mdm-energy: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _quiet_imported() -> "list[contextlib.AbstractContextManager]":
    """Switch off the progress bars and verbosity of the libraries already imported (an in-process caller may
    have imported them before the environment switches were set); returns what restores them."""
    restore = []
    hub = sys.modules.get("huggingface_hub")
    if hub is not None:
        from huggingface_hub import utils as hub_utils

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            restore.append(hub_utils.enable_progress_bars)
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        tf_level = tf_logging.get_verbosity()
        tf_logging.set_verbosity_error()
        restore.append(lambda: tf_logging.set_verbosity(tf_level))
        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            restore.append(tf_logging.enable_progress_bar)
    if "datasets" in sys.modules:
        import datasets

        if datasets.is_progress_bar_enabled():
            datasets.disable_progress_bars()
            restore.append(datasets.enable_progress_bars)
    tqdm_std = sys.modules.get("tqdm.std")
    if tqdm_std is not None:  # TQDM_DISABLE is read when tqdm is imported: for one imported already, the same
        init = tqdm_std.tqdm.__dict__["__init__"]  # default set the way tqdm sets it (a bar given 'disable' keeps it)
        tqdm_std.tqdm.__init__ = functools.partialmethod(init, disable=True)
        restore.append(lambda: setattr(tqdm_std.tqdm, "__init__", init))
    if "optuna" in sys.modules:
        import optuna

        optuna_level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        restore.append(lambda: optuna.logging.set_verbosity(optuna_level))
    return restore


@contextlib.contextmanager
def quiet_libraries(debug: bool) -> Iterator[None]:
    """Within the block, third-party warnings, log records and progress bars stay off stderr (see the module
    docstring); everything is restored afterwards. With ``debug`` nothing changes."""
    if debug:
        yield
        return
    saved_env = {k: os.environ.get(k) for k in QUIET_ENVIRONMENT}
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    saved_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    restore = _quiet_imported()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_ours
            yield
    finally:
        for undo in reversed(restore):
            undo()
        logging.disable(saved_disable)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
