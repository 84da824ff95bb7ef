"""``mdm-energy eval``: a trained checkpoint's task metric under a sampler, its schedule and options."""

from __future__ import annotations

import argparse

from ._common import CLIError, emit, positive_int, seed_int
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a trained checkpoint on its task's held-out test set")
    p.add_argument("--task", required=True, help="countdown | sudoku | pycode")
    p.add_argument("--checkpoint", required=True, help="folder with model.safetensors and config.json")
    p.add_argument("--limit", type=positive_int("limit"), default=200, help="test examples (default 200)")
    p.add_argument("--seed", type=seed_int(), default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_sampler_arguments(p, default="fixed")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..models import load_model
    from ..registry import sampler_spec
    from ..sampling import make_sampler
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import check_checkpoint, evaluate, load_task_examples

    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    given = given_sampler_options(args)
    check_sampler_options(args.sampler, given)
    if sampler_spec(args.sampler).needs_steps and args.steps is None:
        raise CLIError(f"--steps is required for the {args.sampler} sampler")
    sampler = make_sampler(args.sampler, **given)
    task = get_task(args.task)
    model = load_model(args.checkpoint)
    check_checkpoint(task, model, args.checkpoint)
    r = evaluate(task, model, load_task_examples(task, "test", args.limit, args.seed), sampler, seed=args.seed)
    payload = {"metric": r.metric, "value": r.value, "stderr": r.stderr, "n": r.n, "nfe": r.nfe, "sampler": repr(sampler)}
    emit(args.json, payload, lambda: f"{args.task} {sampler!r}: {r.metric} = {r.value:.4f} ± {r.stderr:.4f} "
         f"(n={r.n}, NFE={r.nfe:g})")
