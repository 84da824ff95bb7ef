"""``mdm-energy exact`` and ``mdm-energy exact-grid``: exact sampling error on explicit laws (docs/design.md §5)."""

from __future__ import annotations

import argparse
import math

from ..registry import exact_law_options
from ._common import CLIError, emit, format_table, positive_floats, positive_int, progress_bar
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options

DIST_HELP = "a built-in law (toy1, toy2, markov:n,d,seed, potts:n,d,seed, templates:n,d,seed) or a .npy weight array"
EXACT_OPTIONS = ("schedule", "steps", "remasking")
#: ReMDM's options (the remdm sampler's exact law depends on them); the other exact samplers refuse them.
REVISION_OPTIONS = ("sigma", "eta", "revise_from", "loop_start", "loop_end", "loop_alpha")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "exact",
        help="exact KL and TV between a law and what a sampler draws from it",
        description="Compute the exact output law of a sampler run on the exact denoiser of an explicit law "
        "(candidates at temperature 1, the model's own law), and KL(q || law) in nats and the total-variation distance.",
    )
    p.add_argument("--dist", required=True, help=DIST_HELP)
    add_sampler_arguments(p, exact=True, options=EXACT_OPTIONS + exact_law_options())
    p.add_argument("--law", action="store_true", help="also output the law (row-major order of the array)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_exact)

    g = sub.add_parser(
        "exact-grid",
        help="exact KL over a Beta (a, b) grid, with baselines, the true optimum and the information-curve schedule",
        description="Shorthand for `tune --objective exact --strategy grid --optimum` on a throwaway study: "
        "scores beta:a,b on a grid (default a, b in {0.1, ..., 1.0}, as in the paper) by exact KL, together with "
        "linear/sin2/sine/maskgit, the optimal schedule and the information-curve DP schedule.",
    )
    g.add_argument("--dist", required=True, help=DIST_HELP)
    add_sampler_arguments(g, exact=True, options=("steps", "remasking"))
    g.add_argument("--a-values", type=positive_floats("a-values"), help="comma-separated a values (default 0.1,...,1.0)")
    g.add_argument("--b-values", type=positive_floats("b-values"), help="comma-separated b values (default 0.1,...,1.0)")
    g.add_argument("--workers", type=positive_int("workers"), default=1, help="processes scoring the grid (default 1)")
    g.add_argument("--plot", metavar="FILE.png", help="draw the KL heatmap with the baselines marked")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.set_defaults(run=run_grid)


def load_exact(args: argparse.Namespace):
    """The exact denoiser of ``--dist``, after checking that ``--sampler`` and its options have an exact law on it."""
    from ..exact import ExactDenoiser, check_confidence_size, load_distribution, remdm_plan
    from ..registry import exact_check_options, sampler_spec

    given = given_sampler_options(args, EXACT_OPTIONS + exact_law_options())
    check_sampler_options(args.sampler, given)
    if getattr(args, "steps", None) is None:
        raise CLIError(f"--steps is required for the {args.sampler} sampler")
    opts = exact_check_options(args.sampler, **given)
    den = ExactDenoiser(load_distribution(args.dist))
    if opts.get("remasking") not in (None, "random"):
        check_confidence_size(den)
    if sampler_spec(args.sampler).exact_law == "remdm":
        remdm_plan(opts, den.n)  # refuses an eta the rule cannot take, loop phases that do not fit, ...
    if sampler_spec(args.sampler).exact_law == "prophet":
        from ..exit_rule import answer_region

        answer_region(den.n, opts["answer_start"], opts["answer_length"])  # refuses a region outside the window
    return den, opts


def revision_options(opts: dict) -> dict:
    """The ReMDM options among the validated ``opts`` (empty for the other samplers)."""
    return {k: opts[k] for k in REVISION_OPTIONS if k in opts}


def law_options(opts: dict) -> dict:
    """The options an exact law depends on (ReMDM's, Prophet's, DUS's, ...) among the validated ``opts``."""
    return {k: opts[k] for k in exact_law_options() if k in opts}


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.6g}"


def run_exact(args: argparse.Namespace) -> None:
    from ..exact import exact_sampler

    if args.schedule is None:
        raise CLIError("--schedule is required (e.g. linear or beta:0.9,0.3)")
    den, opts = load_exact(args)
    revision = revision_options(opts)
    r = exact_sampler(den, args.sampler, opts["schedule"], args.steps, opts.get("remasking"), law_options(opts))
    payload: dict = {"kl": r.kl, "tv": r.tv, "nfe": r.nfe}
    if r.counts is not None:
        payload["counts"] = r.counts
    if r.expected_calls is not None:
        payload["expected_calls"] = r.expected_calls
    if revision:
        from ..revision import default_eta

        eta = revision["eta"] if revision["eta"] is not None else default_eta(revision["sigma"], r.steps, den.n)
        payload.update(sigma=revision["sigma"], eta=eta)
    if args.law:
        payload["law"] = r.law.reshape(-1).tolist()

    def human() -> str:
        lines = [
            f"law {den.dist.name} (n={den.n}, d={den.d}), sampler {r.sampler}"
            + (f" ({r.remasking})" if r.remasking else "")
            + (f" (sigma {payload['sigma']}, eta {payload['eta']:g})" if revision else "")
            + f", schedule {r.schedule}, N={r.steps}, NFE={r.nfe}"
            + (f", expected model calls {r.expected_calls:.4g}" if r.expected_calls is not None else "")
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
    from ..limits import check_workers
    from ..plots import check_plot_path, plot_kl_heatmap
    from ..tuning import SearchSpace, exact_grid_study

    if args.plot is not None:
        check_plot_path(args.plot, "--plot")
    check_workers(args.workers)
    den, opts = load_exact(args)
    space = SearchSpace(values={name: v for name, v in (("a", args.a_values), ("b", args.b_values)) if v})
    space.grid()  # refuses a grid larger than a study runs
    label = f"{args.sampler}" + (f"/{opts['remasking']}" if "remasking" in opts else "")
    with progress_bar(len(space.grid()), f"exact-grid {label} N={args.steps}") as progress:
        study = exact_grid_study(den, args.sampler, args.steps, remasking=opts.get("remasking"), space=space,
                                 workers=args.workers, progress=progress)
    if args.plot is not None:
        plot_kl_heatmap(
            [g.a for g in study.grid], [g.b for g in study.grid], [g.kl for g in study.grid], study.baselines, args.plot,
            title=f"{den.dist.name}: {label}, N={args.steps}",
            extra={"optimum": study.optimum.kl, "information-curve DP": study.infocurve.kl},
        )

    def human() -> str:
        opt = study.optimum.kl

        def gap(kl: float) -> str:
            if math.isinf(kl):
                return "inf"
            return "0%" if kl <= opt + 1e-12 else (f"+{100 * (kl / opt - 1):.1f}%" if opt > 1e-12 else f"+{kl:.2e}")

        b, ic, o = study.best, study.infocurve, study.optimum
        rows = [[f"best grid beta:{b.a:g},{b.b:g}", _num(b.kl), gap(b.kl)]]
        rows += [[name, _num(kl), gap(kl)] for name, kl in study.baselines.items()]
        rows.append([f"information-curve DP {ic.counts}", _num(ic.kl), gap(ic.kl)])
        sched = o.counts if o.counts is not None else [round(x, 4) for x in o.alpha]
        rows.append([f"optimum ({o.method}) {sched}", _num(opt), "0%"])
        head = f"law {den.dist.name} (n={den.n}, d={den.d}), sampler {label}, N={args.steps}: KL(q || sampler) in nats"
        tail = f"\nwrote {args.plot}" if args.plot is not None else ""
        return head + "\n" + format_table(["schedule", "KL", "gap to optimum"], rows) + tail

    emit(args.json, study.as_json(), human)
