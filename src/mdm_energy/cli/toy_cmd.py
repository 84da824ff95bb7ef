"""``mdm-energy toy``: the paper's toy experiment (§E.6), made exact.

Two targets on five binary tokens: ``toy1`` (aaaaa or bbbbb: every token depends on every other) and
``toy2`` (exactly two or three ``a``: nearly independent tokens). For each it prints the target law
beside the laws two schedules sample, and the best Beta (a, b) for that target. The point is that the
best schedule depends on the task: reveal one token first for toy1, many at once for toy2.
"""

from __future__ import annotations

import argparse
import itertools

from ._common import emit, format_table, positive_int
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options

TARGETS = ("toy1", "toy2")
SCHEDULES = ("beta:0.9,0.3", "beta:0.3,0.9")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("toy", help="the paper's toy experiment: exact laws of two schedules on two targets")
    p.add_argument("--steps", "-N", type=positive_int("steps", 1000), default=3,
                   help="number of steps (default 3, as in the paper; at most 1,000 for five tokens)")
    add_sampler_arguments(p, exact=True, default="fixed", options=("remasking",),
                          help_extra={"remasking": "; the toy command uses random, as the paper's toy does"})
    p.add_argument("--plot", metavar="FILE.png", help="draw the target and sampled laws side by side")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..exact import ExactDenoiser, exact_sampler, load_distribution
    from ..registry import sampler_spec
    from ..plots import check_plot_path, plot_toy
    from ..tuning import ExactKLObjective, beta_grid

    given = given_sampler_options(args, ("remasking",))
    check_sampler_options(args.sampler, given)
    takes_rule = "remasking" in sampler_spec(args.sampler).params  # the paper's toy reveals at random positions
    remasking = given.get("remasking", "random" if takes_rule else None)
    if args.plot is not None:
        check_plot_path(args.plot, "--plot")
    labels = ["".join("ab"[v] for v in x) for x in itertools.product(range(2), repeat=5)]
    targets = {}
    for name in TARGETS:
        den = ExactDenoiser(load_distribution(name))
        grid = beta_grid(ExactKLObjective(den, args.sampler, args.steps, remasking))
        best = min(grid, key=lambda g: (g.kl, g.a, g.b))
        schedules = {}
        for spec in SCHEDULES + (f"beta:{best.a:g},{best.b:g}",):
            r = exact_sampler(den, args.sampler, spec, args.steps, remasking)
            schedules[spec] = {"kl": r.kl, "tv": r.tv, "counts": r.counts, "law": r.law.reshape(-1).tolist()}
        targets[name] = {
            "target": den.q.reshape(-1).tolist(),
            "schedules": schedules,
            "best": {"a": best.a, "b": best.b, "kl": best.kl},
        }
    payload = {"steps": args.steps, "sampler": args.sampler, "remasking": remasking, "sequences": labels, "targets": targets}
    if args.plot is not None:
        panels = [
            {"title": f"{name}: best beta:{t['best']['a']:g},{t['best']['b']:g}", "labels": labels,
             "target": t["target"], "schedules": t["schedules"]}
            for name, t in targets.items()
        ]
        plot_toy(panels, args.plot, title=f"The paper's toy, exact ({args.sampler} sampler, N={args.steps})")

    def human() -> str:
        out = [f"The paper's toy (n=5, d=2, N={args.steps}, sampler {args.sampler}); KL(q || sampler) in nats"]
        for name, t in targets.items():
            out.append(f"\n{name}: best Beta on the 10x10 grid = beta:{t['best']['a']:g},{t['best']['b']:g} (KL {t['best']['kl']:.4f})")
            specs = list(t["schedules"])
            rows = []
            for i, lab in enumerate(labels):
                row = [t["target"][i]] + [t["schedules"][s]["law"][i] for s in specs]
                if max(row) > 1e-12:
                    rows.append([lab] + [f"{v:.4f}" for v in row])
            rows.append(["KL", "0"] + [f"{t['schedules'][s]['kl']:.4f}" for s in specs])
            if t["schedules"][specs[0]]["counts"] is not None:
                rows.append(["counts", ""] + [" ".join(map(str, t["schedules"][s]["counts"])) for s in specs])
            out.append(format_table(["sequence", "target"] + specs, rows))
        out.append("\nThe best schedule depends on the task: toy1 wants one token first, toy2 many at once.")
        if args.plot is not None:
            out.append(f"wrote {args.plot}")
        return "\n".join(out)

    emit(args.json, payload, human)
