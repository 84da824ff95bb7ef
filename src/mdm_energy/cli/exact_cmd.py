"""``mdm-energy exact`` and ``mdm-energy exact-grid``: exact sampling error on explicit laws (DESIGN.md §5)."""

from __future__ import annotations

import argparse
import math
import sys

from ._common import emit, format_table, positive_floats, positive_int

SAMPLER_CHOICES = ("fixed", "ancestral", "euler", "confidence")
DIST_HELP = "a built-in law (toy1, toy2, markov:n,d,seed, potts:n,d,seed, templates:n,d,seed) or a .npy weight array"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exact",
        help="exact KL and TV between a law and what a sampler draws from it",
        description="Compute the exact output law of a sampler run on the exact denoiser of an explicit law, "
        "and KL(q || law) in nats and the total-variation distance.",
    )
    p.add_argument("--dist", required=True, help=DIST_HELP)
    p.add_argument("--sampler", required=True, choices=SAMPLER_CHOICES, help="fixed-count random, ancestral, euler, or fixed-count confidence")
    p.add_argument("--schedule", required=True, help="schedule spec, e.g. linear or beta:0.9,0.3")
    p.add_argument("--steps", "-N", type=positive_int("steps"), required=True, help="number of steps N")
    p.add_argument("--remasking", choices=("random", "low_confidence", "margin", "entropy"),
                   help="rule of the fixed sampler (default random); confidence = fixed with low_confidence")
    p.add_argument("--law", action="store_true", help="also output the law (row-major order of the array)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_exact)

    g = sub.add_parser(
        "exact-grid",
        help="exact KL over a Beta (a, b) grid, with baselines, the true optimum and the information-curve schedule",
        description="Score beta:a,b on a grid (default a, b in {0.1, ..., 1.0}, as in the paper) by exact KL, "
        "together with linear/sin2/sine/maskgit, the optimal schedule and the information-curve DP schedule.",
    )
    g.add_argument("--dist", required=True, help=DIST_HELP)
    g.add_argument("--sampler", required=True, choices=SAMPLER_CHOICES)
    g.add_argument("--steps", "-N", type=positive_int("steps"), required=True)
    g.add_argument("--a-values", type=positive_floats("a-values"), help="comma-separated a values (default 0.1,...,1.0)")
    g.add_argument("--b-values", type=positive_floats("b-values"), help="comma-separated b values (default 0.1,...,1.0)")
    g.add_argument("--workers", type=positive_int("workers"), default=1, help="processes scoring the grid (default 1)")
    g.add_argument("--plot", metavar="FILE.png", help="draw the KL heatmap with the baselines marked")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(run=run_grid)


def _load(args: argparse.Namespace):
    from ..exact import ExactDenoiser, load_distribution
    from ..exact.laws import _check_confidence_size, _remasking

    rule = _remasking(args.sampler, getattr(args, "remasking", None))
    den = ExactDenoiser(load_distribution(args.dist))
    if rule not in (None, "random"):
        _check_confidence_size(den)
    return den


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.6g}"


def run_exact(args: argparse.Namespace) -> None:
    from ..exact import exact_sampler
    from ..schedules import parse_schedule

    schedule = parse_schedule(args.schedule)
    den = _load(args)
    r = exact_sampler(den, args.sampler, schedule, args.steps, args.remasking)
    payload: dict = {"kl": r.kl, "tv": r.tv, "nfe": r.nfe}
    if r.counts is not None:
        payload["counts"] = r.counts
    if args.law:
        payload["law"] = r.law.reshape(-1).tolist()

    def human() -> str:
        lines = [
            f"law {den.dist.name} (n={den.n}, d={den.d}), sampler {r.sampler}"
            + (f" ({args.remasking})" if args.remasking else "")
            + f", schedule {r.schedule}, N={r.steps}, NFE={r.nfe}"
            + (f", counts {r.counts}" if r.counts is not None else ""),
            f"KL(q || sampler) = {_num(r.kl)} nats    TV = {r.tv:.6g}",
        ]
        if args.law:
            import numpy as np

            q, p = den.q.reshape(-1), r.law.reshape(-1)
            idx = np.argsort(-np.maximum(q, p), kind="stable")[:32]
            rows = [["".join(map(str, np.unravel_index(i, den.q.shape))), f"{q[i]:.6f}", f"{p[i]:.6f}"] for i in idx]
            lines.append(format_table(["sequence", "target", "sampler"], rows))
            if len(q) > 32:
                lines.append(f"(the 32 most likely of {len(q)} sequences; --json gives them all)")
        return "\n".join(lines)

    emit(args.json, payload, human)


def run_grid(args: argparse.Namespace) -> None:
    from ..exact import DEFAULT_GRID, exact_grid_study
    from ..plots import check_plot_path, plot_kl_heatmap

    if args.plot:
        check_plot_path(args.plot)
    den = _load(args)
    a_values = args.a_values or list(DEFAULT_GRID)
    b_values = args.b_values or list(DEFAULT_GRID)

    def progress(items, total=None):
        from tqdm.auto import tqdm

        return tqdm(items, total=total, desc=f"exact-grid {args.sampler} N={args.steps}", file=sys.stderr, disable=None)

    study = exact_grid_study(den, args.sampler, args.steps, a_values, b_values, progress, args.workers)
    payload = {k: study[k] for k in ("grid", "best", "baselines", "optimum", "infocurve")}
    if args.plot:
        plot_kl_heatmap(
            study["grid"], study["baselines"], args.plot,
            title=f"{den.dist.name}: {args.sampler}, N={args.steps}",
            extra={"optimum": study["optimum"]["kl"], "information-curve DP": study["infocurve"]["kl"]},
        )

    def human() -> str:
        opt = study["optimum"]["kl"]

        def gap(kl: float) -> str:
            if math.isinf(kl):
                return "inf"
            return "0%" if kl <= opt + 1e-12 else (f"+{100 * (kl / opt - 1):.1f}%" if opt > 1e-12 else f"+{kl:.2e}")

        b = study["best"]
        rows = [[f"best grid beta:{b['a']:g},{b['b']:g}", _num(b["kl"]), gap(b["kl"])]]
        rows += [[name, _num(kl), gap(kl)] for name, kl in study["baselines"].items()]
        ic = study["infocurve"]
        rows.append([f"information-curve DP {ic['counts']}", _num(ic["kl"]), gap(ic["kl"])])
        o = study["optimum"]
        sched = o.get("counts") or [round(x, 4) for x in o["alpha"]]
        rows.append([f"optimum ({o['method']}) {sched}", _num(opt), "0%"])
        head = f"law {den.dist.name} (n={den.n}, d={den.d}), sampler {args.sampler}, N={args.steps}: KL(q || sampler) in nats"
        tail = f"\nwrote {args.plot}" if args.plot else ""
        return head + "\n" + format_table(["schedule", "KL", "gap to optimum"], rows) + tail

    emit(args.json, payload, human)
