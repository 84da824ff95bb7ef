"""``mdm-energy tune``: a resumable, parallel search for the best Beta (a, b) schedule (DESIGN.md §6)."""

from __future__ import annotations

import argparse
import sys

from ._common import CLIError, bounds, emit, format_table, positive_floats, positive_int
from .exact_cmd import DIST_HELP


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="find the best Beta (a, b) schedule: grid, successive halving or TPE on Optuna storage",
        description="Tune beta:a,b for an objective (exact KL of a sampler on an explicit law). Trials live in "
        "Optuna storage (SQLite by default): rerunning the same command resumes without redoing finished "
        "trials, and --workers K processes share one study without evaluating a grid point twice.",
    )
    p.add_argument("--objective", choices=("exact", "task"), default="exact",
                   help="exact: KL on an explicit law (--dist, --sampler); task: a trained checkpoint's metric on "
                   "held-out validation items (--task, --checkpoint)")
    p.add_argument("--dist", help=DIST_HELP)
    p.add_argument("--sampler", choices=("fixed", "ancestral", "euler", "confidence"))
    p.add_argument("--task", help="countdown | sudoku (task objective)")
    p.add_argument("--checkpoint", help="trained model folder (task objective)")
    p.add_argument("--limit", type=positive_int("limit"), default=200, help="validation items of a task objective (default 200)")
    p.add_argument("--remasking", choices=("random", "low_confidence", "margin", "entropy"), help="remasking rule")
    p.add_argument("--steps", "-N", type=positive_int("steps"), required=True)
    p.add_argument("--strategy", required=True, help="grid | halving | tpe | random")
    p.add_argument("--budget", type=positive_int("budget"), help="evaluations for tpe/random (default 25); caps grid/halving points")
    p.add_argument("--a-bounds", type=bounds("a-bounds"), default=(0.1, 1.0), help="LOW,HIGH for a (tpe/random; default 0.1,1)")
    p.add_argument("--b-bounds", type=bounds("b-bounds"), default=(0.1, 1.0), help="LOW,HIGH for b (tpe/random; default 0.1,1)")
    p.add_argument("--scale", choices=("linear", "log"), default="linear", help="search scale for tpe/random")
    p.add_argument("--a-values", type=positive_floats("a-values"), help="grid values of a (default 0.1,...,1.0)")
    p.add_argument("--b-values", type=positive_floats("b-values"), help="grid values of b (default 0.1,...,1.0)")
    p.add_argument("--storage", default="sqlite:///mdm-energy-studies.db", help="Optuna storage URL or journal:PATH "
                   "(default sqlite:///mdm-energy-studies.db)")
    p.add_argument("--study", help="study name (default derived from the objective and strategy)")
    p.add_argument("--workers", type=positive_int("workers"), default=1, help="processes sharing the study (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", metavar="DIR", help="write heatmap, best schedules, markdown table and all trials here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..tuning import STRATEGIES, ExactKLObjective, SearchSpace, tune, write_report
    from ..tuning.study import PAPER_GRID, check_storage

    if args.strategy not in STRATEGIES:
        raise CLIError(f"unknown strategy {args.strategy!r} (known: {', '.join(STRATEGIES)})")
    if args.report:
        rp = Path(args.report)
        if rp.exists() and not rp.is_dir():
            raise CLIError(f"--report exists and is not a folder: {args.report!r}")
        parent = rp.parent if str(rp.parent) else Path(".")
        if not parent.is_dir():
            raise CLIError(f"folder for --report does not exist: {str(parent)!r}")
    space = SearchSpace(args.a_bounds, args.b_bounds, args.scale == "log",
                        args.a_values or PAPER_GRID, args.b_values or PAPER_GRID)
    check_storage(args.storage)
    if args.objective == "exact":
        if not args.dist or not args.sampler:
            raise CLIError("--objective exact needs --dist and --sampler")
        objective = ExactKLObjective(args.dist, args.sampler, args.steps, args.remasking)
        length = objective.den.n
    else:
        from ..models import load_model
        from ..tasks import TASKS, get_task
        from ..tasks.evaluate import task_objective

        if not args.task or not args.checkpoint:
            raise CLIError("--objective task needs --task and --checkpoint")
        if args.task not in TASKS:
            raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
        task = get_task(args.task)
        objective = task_objective(task, load_model(args.checkpoint), args.steps, args.remasking or "low_confidence",
                                   n=args.limit, seed=args.seed)
        length = task.gen_len

    from tqdm.auto import tqdm

    total = args.budget or (25 if args.strategy in ("tpe", "random") else len(space.grid()))
    bar = tqdm(total=total, desc=f"tune {args.strategy}", file=sys.stderr, disable=None)

    def progress(done: int) -> None:
        bar.n = min(done, total)
        bar.refresh()

    try:
        result = tune(objective, args.strategy, args.budget, args.storage, args.study, args.workers, args.seed, space,
                      progress=progress)
    finally:
        bar.close()
    files = write_report(result, objective.name, args.steps, length, args.report) if args.report else None
    payload = result.as_json()

    def human() -> str:
        b = result.best
        rows = [[f"best beta:{b['a']:.4g},{b['b']:.4g}", f"{b['score']:.6g}"]]
        rows += [[name, f"{v['value']:.6g}"] for name, v in result.baselines.items()]
        label = "KL (nats)" if args.objective == "exact" else "score"
        out = [f"{objective.name}, strategy {result.strategy}: {result.evaluations} evaluations in study "
               f"({result.new_evaluations} new)", format_table(["schedule", label], rows)]
        if files:
            out.append(f"report: {files['report']}")
        return "\n".join(out)

    emit(args.json, payload, human)
