"""The ``mdm-energy`` command line (docs/design.md §8).

Every subcommand takes ``--json`` and then prints exactly one JSON object on stdout; progress and
logs go to stderr. Bad input exits with status 2 and a one-line message naming the bad value, before
anything is written; so does a file error (a full disk included); SIGINT and SIGTERM stop the command
cleanly with status 130 and 143; an internal error exits with status 1 and one line pointing to ``--debug``.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Sequence

from .. import _signals
from .._io import DISK_FULL
from ._common import ArgumentParser, CLIError
from ._quiet import quiet_libraries

__all__ = ["main", "build_parser"]


def build_parser() -> ArgumentParser:
    from .. import __version__
    from . import (
        bench_cmd,
        demo_cmd,
        energy_cmd,
        eval_cmd,
        exact_cmd,
        generate_cmd,
        lm_eval_cmd,
        profile_cmd,
        sample_cmd,
        samplers_cmd,
        schedule_cmd,
        toy_cmd,
        train_cmd,
        tune_cmd,
    )

    parser = ArgumentParser(
        prog="mdm-energy",
        description="Energy-optimal mask schedules for masked diffusion models.",
    )
    parser.add_argument("--version", action="version", version=f"mdm-energy {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (demo_cmd, schedule_cmd, energy_cmd, exact_cmd, toy_cmd, sample_cmd, tune_cmd, train_cmd, eval_cmd,
                   generate_cmd, profile_cmd, samplers_cmd, bench_cmd, lm_eval_cmd):
        module.register(sub)
    return parser


_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def _file_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about a file the user named or the disk it is on (not a bug): reported in one line
    naming the file, exit status 2."""
    return isinstance(exc, _FILE_ERRORS) or (isinstance(exc, OSError) and exc.errno in DISK_FULL)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _load_plugins() -> None:
    """Load the installed plug-ins (samplers, schedule families); one that fails is named in one warning line
    on stderr and the command goes on with the rest (naming its sampler or schedule is then bad input)."""
    import warnings

    from ..registry import load_plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        errors = load_plugins()
    for label, reason in errors.items():
        print(f"mdm-energy: warning: plug-in {label} was not loaded: {reason}", file=sys.stderr)


def main(argv: "Sequence[str] | None" = None) -> int:
    """Run the command line; returns the exit status.

    0: done; 2: bad input (one line naming the bad value, nothing written), or a file that cannot be read
    or written — a full disk too (one line naming the file; no partial or temporary file is left); 130:
    interrupted by SIGINT (Ctrl-C), 143: stopped by SIGTERM — one line, ``mdm-energy: interrupted
    (SIGNAL)``, after the same clean-up for both: no half-written file, no trial left running, and a rerun
    resumes (training from its last checkpoint, a study without redoing finished trials); 75: the study
    storage of ``tune`` stayed unreachable for ``--storage-patience`` seconds (one line; rerun to resume);
    1: an internal error — one line that says so, and ``--debug`` (anywhere before the subcommand's own
    arguments, or ``MDM_ENERGY_DEBUG=1``) shows the traceback. Without ``--debug`` the libraries' warnings,
    log records and progress bars stay off stderr (:func:`~mdm_energy.cli._quiet.quiet_libraries`), so that
    an error is one line; ``--debug`` shows them too.

    The SIGINT/SIGTERM handlers are installed here, for the command's duration (:mod:`mdm_energy._signals`).
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("MDM_ENERGY_DEBUG", "") not in ("", "0")
    if "--debug" in args_in and "lm-eval" not in args_in[: args_in.index("--debug")]:
        args_in.remove("--debug")
        debug = True
    previous = _signals.install()
    try:
        return _run(args_in, debug)
    finally:
        _signals.restore(previous)


def _run(args_in: "list[str]", debug: bool) -> int:
    """Run one command line and turn what it raises into the exit status and one line (see :func:`main`)."""
    try:
        with quiet_libraries(debug):
            if args_in[:1] == ["lm-eval"]:  # lm-eval's own command line (--help included)
                from . import lm_eval_cmd

                lm_eval_cmd.run_lm_eval(args_in[1:])
                return 0
            _load_plugins()
            args = build_parser().parse_args(args_in)
            args.run(args)
    except (CLIError, ValueError) as exc:
        if debug:
            traceback.print_exc()
        print(f"mdm-energy: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"mdm-energy: interrupted ({_signals.describe(exc)})", file=sys.stderr)
        return _signals.exit_status(exc)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place that turns a bug into one line
        if debug:
            traceback.print_exc()
        if _file_error(exc):
            where = f": {exc.filename!r}" if getattr(exc, "filename", None) else ""
            print(f"mdm-energy: error: {_one_line(exc.strerror or exc)}{where}", file=sys.stderr)
            return 2
        status = getattr(type(exc), "exit_status", None)
        if isinstance(status, int):  # an error that names its own exit status (a storage outage: 75)
            print(f"mdm-energy: error: {_one_line(exc)}", file=sys.stderr)
            return status
        print(f"mdm-energy: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
              "(rerun with --debug to see the traceback)", file=sys.stderr)
        return 1
    return 0



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
