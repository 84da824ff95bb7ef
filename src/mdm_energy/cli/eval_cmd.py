"""``mdm-energy eval``: a trained checkpoint's task metric under a schedule, sampler and step count."""

from __future__ import annotations

import argparse

from ._common import CLIError, emit, non_negative_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a trained checkpoint on its task's held-out test set")
    p.add_argument("--task", required=True, help="countdown | sudoku")
    p.add_argument("--checkpoint", required=True, help="folder with model.safetensors and config.json")
    p.add_argument("--schedule", default="linear", help="schedule spec (default linear)")
    p.add_argument("--steps", "-N", type=positive_int("steps"), required=True)
    p.add_argument("--remasking", choices=("random", "low_confidence", "margin", "entropy"), default="low_confidence")
    p.add_argument("--temperature", type=non_negative_float("temperature"), default=0.0)
    p.add_argument("--limit", type=positive_int("limit"), default=200, help="test examples (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..models import load_model
    from ..sampling import FixedCountSampler
    from ..schedules import parse_schedule
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import evaluate

    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    schedule = parse_schedule(args.schedule)
    task = get_task(args.task)
    model = load_model(args.checkpoint)
    if model.config.vocab_size != task.vocab.size or model.config.max_len < task.prompt_len + task.gen_len:
        raise CLIError(f"checkpoint {args.checkpoint!r} was not trained for the {args.task} task")
    sampler = FixedCountSampler(schedule, args.steps, remasking=args.remasking, temperature=args.temperature)
    r = evaluate(task, model, task.examples("test", args.limit, seed=args.seed), sampler, seed=args.seed)
    payload = {"metric": r.metric, "value": r.value, "stderr": r.stderr, "n": r.n, "nfe": r.nfe}
    emit(args.json, payload, lambda: f"{args.task} {schedule.spec} N={args.steps} {args.remasking}: "
         f"{r.metric} = {r.value:.4f} ± {r.stderr:.4f} (n={r.n}, NFE={r.nfe:g})")
