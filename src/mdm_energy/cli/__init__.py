"""The ``mdm-energy`` command line (docs/design.md §8).

Every subcommand takes ``--json`` and then prints exactly one JSON object on stdout; progress and
logs go to stderr. Bad input exits with status 2 and a one-line message naming the bad value, before
anything is written.
"""

from __future__ import annotations

import sys
from typing import Sequence

from ._common import ArgumentParser, CLIError

__all__ = ["main", "build_parser"]


def build_parser() -> ArgumentParser:
    from .. import __version__
    from . import (
        bench_cmd,
        demo_cmd,
        energy_cmd,
        eval_cmd,
        exact_cmd,
        lm_eval_cmd,
        sample_cmd,
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (demo_cmd, schedule_cmd, energy_cmd, exact_cmd, toy_cmd, sample_cmd, tune_cmd, train_cmd, eval_cmd, bench_cmd,
                   lm_eval_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except (CLIError, ValueError) as exc:
        print(f"mdm-energy: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdm-energy: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
