"""``mdm-energy schedule SPEC --steps N --length L``: a schedule's grid values and per-step counts."""

from __future__ import annotations

import argparse

from ..limits import MAX_LENGTH
from ..schedules import parse_schedule
from ._common import emit, format_table, positive_int, steps_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schedule",
        help="tabulate a schedule: alpha, gamma and tokens unmasked per step",
        description="Show alpha(t_k), gamma(t_k) on the grid t_k = k/N and the tokens each step unmasks "
        "(docs/design.md §2). Spec examples: linear, sin2, sine, maskgit, poly:2, beta:0.9,0.3, table:0.1,0.5,0.9.",
    )
    p.add_argument("spec", help="schedule spec string")
    p.add_argument("--steps", "-N", type=steps_int(), required=True, help="number of sampling steps N")
    p.add_argument("--length", "-L", type=positive_int("length", MAX_LENGTH), required=True, help="generation length L")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw alpha(t), gamma(t) and the counts to this file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    sched = parse_schedule(args.spec)
    if args.plot is not None:
        from ..plots import check_plot_path

        check_plot_path(args.plot, "--plot")
    t = sched.grid(args.steps)
    alpha, gamma, counts = sched.alpha(t), sched.gamma(t), sched.counts(args.length, args.steps)
    payload = {
        "t": t.tolist(),
        "alpha": alpha.tolist(),
        "gamma": gamma.tolist(),
        "counts": counts.tolist(),
        "nfe": int(args.steps),
    }

    def human() -> str:
        cum = [0] + counts.cumsum().tolist()
        rows = [
            [k, f"{t[k]:.4f}", f"{alpha[k]:.6f}", f"{gamma[k]:.6f}", counts[k - 1] if k else "", cum[k]]
            for k in range(len(t))
        ]
        head = (
            f"schedule {sched.spec}: L={args.length}, N={args.steps}, NFE={args.steps}, "
            f"empty steps={int((counts == 0).sum())}, max per step={int(counts.max())}"
        )
        return head + "\n" + format_table(["k", "t", "alpha", "gamma", "unmask", "cumulative"], rows)

    if args.plot is not None:
        from ..plots import plot_schedule

        plot_schedule(sched, args.steps, args.length, args.plot)
    emit(args.json, payload, human)
