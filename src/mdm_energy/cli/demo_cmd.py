"""``mdm-energy demo``: the project's main job on embedded defaults (no downloads).

The work is :func:`mdm_energy.demo.run_demo`; this module parses the options, writes the report folder
(``report.md``, ``schedules.png``, ``toy.png``, ``exact_grid.png``, ``demo.json``) and prints the text.
"""

from __future__ import annotations

import argparse
import sys

from ._common import check_output_path, emit, positive_int, steps_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a tour of schedules, counts, energies, exact KL and real tasks on built-in defaults")
    p.add_argument("--out", default="mdm-energy-demo", help="folder for the report, figures and JSON (default ./mdm-energy-demo)")
    p.add_argument("--length", "-L", type=positive_int("length"), default=256, help="generation length (default 256)")
    p.add_argument("--steps", "-N", type=steps_int(), default=8, help="sampling steps (default 8)")
    p.add_argument("--checkpoints", default="checkpoints", help="folder of trained task models (default ./checkpoints)")
    p.add_argument("--limit", type=positive_int("limit"), default=100, help="test examples per real-task cell (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..demo import demo_text, run_demo, write_demo
    from ..demo.render import demo_json

    out = check_output_path(args.out, "--out", folder=True)
    result = run_demo(length=args.length, steps=args.steps, checkpoints=args.checkpoints, limit=args.limit,
                      log=lambda msg: print(msg, file=sys.stderr))
    files = write_demo(result, out)
    emit(args.json, demo_json(result, files), lambda: demo_text(result, files))
