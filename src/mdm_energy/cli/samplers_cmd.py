"""``mdm-energy samplers``: every registered sampler (plug-ins included) with its options, from its declaration."""

from __future__ import annotations

import argparse

from ._common import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("samplers", help="list the samplers (built-in and plug-ins), their options and exact laws",
                       description="Every registered sampler: what each model call does, its options with their "
                       "defaults and help, and the exact law the exact engine computes for it (docs/design.md §4).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..registry import sampler_names, sampler_spec, sampler_table

    payload = {"samplers": [{"name": n, "summary": (s := sampler_spec(n)).summary, "exact_law": s.exact_law,
                             "target": s.target if isinstance(s.target, str) else f"{s.target.__module__}:{s.target.__qualname__}",
                             "options": {k: {"default": o.default, "help": o.help} for k, o in s.params.items()}}
                            for n in sampler_names()]}
    emit(args.json, payload, lambda: sampler_table().rstrip("\n"))
