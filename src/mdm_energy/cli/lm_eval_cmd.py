"""``mdm-energy lm-eval ARGS…``: lm-eval's command line with the ``mdm_energy`` model registered.

Same arguments as ``lm_eval`` (e.g. ``run --model mdm_energy --model_args … --tasks …``); useful where
the installed ``.pth`` hook is not active (editable installs).
"""

from __future__ import annotations

import argparse
import sys

from ._common import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm-eval", help="run lm-evaluation-harness with the mdm_energy model registered",
                       description=__doc__, add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for lm_eval")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    run_lm_eval(args.args)


def run_lm_eval(argv: list[str]) -> None:
    """Run lm-eval's own command line on ``argv`` with the ``mdm_energy`` model registered."""
    try:
        from lm_eval.__main__ import cli_evaluate

        import mdm_energy.integrations.lm_eval  # noqa: F401  (registers the model)
    except ImportError as exc:
        raise CLIError(f"lm-eval is not installed ({exc}); pip install 'mdm-energy[lm-eval]'") from None
    saved = sys.argv
    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
