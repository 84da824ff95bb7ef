"""``mdm-energy train --task T --minutes M --out DIR``: train (or resume) a small MDM on a task."""

from __future__ import annotations

import argparse

from ._common import CLIError, check_output_path, emit, positive_float, positive_int, seed_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume a small masked diffusion model on a task",
                       description="Trains for --minutes of wall time; rerunning with the same --out resumes exactly "
                       "from the last checkpoint (written every --checkpoint-minutes and at the end).")
    p.add_argument("--task", required=True, help="countdown | sudoku | pycode | pycode-reference (the pycode perplexity LM)")
    p.add_argument("--minutes", type=positive_float("minutes"), required=True,
                   help="wall-time budget over all runs into --out, data preparation included")
    p.add_argument("--out", required=True, help="checkpoint folder")
    p.add_argument("--batch-size", type=positive_int("batch-size"), default=64)
    p.add_argument("--lr", type=positive_float("lr"), default=1e-3)
    p.add_argument("--max-steps", type=positive_int("max-steps"), default=20_000, help="horizon of the cosine decay")
    p.add_argument("--train-examples", type=positive_int("train-examples"), default=20_000)
    p.add_argument("--d-model", type=positive_int("d-model"), help="width (default 192, or the --init model's)")
    p.add_argument("--layers", type=positive_int("layers"), help="depth (default 4, or the --init model's)")
    p.add_argument("--warmup-steps", type=positive_int("warmup-steps"), default=200)
    p.add_argument("--checkpoint-minutes", type=positive_float("checkpoint-minutes"), default=3.0)
    p.add_argument("--valid-every", type=positive_int("valid-every"), default=500,
                   help="steps between two validation losses on held-out examples (default 500)")
    p.add_argument("--valid-examples", type=positive_int("valid-examples"), default=512)
    p.add_argument("--patience", type=positive_int("patience"),
                   help="stop after this many validation losses without a new best (default: never)")
    p.add_argument("--cache", metavar="DIR", help="cache the training pool here, so later runs start at once")
    p.add_argument("--init", metavar="DIR",
                   help="start from the weights of this model folder (same task and size) with a new optimiser and "
                   "learning-rate schedule: a warm start, e.g. to train a committed checkpoint longer")
    p.add_argument("--device", default="cpu",
                   help="where the model trains: cpu (default), cuda, cuda:N or mps; every random draw stays on the CPU, "
                   "so the batches and masks are the same on every device, and a run may resume on another device")
    p.add_argument("--seed", type=seed_int(), default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..tasks import TASKS, get_task
    from ..training import TrainConfig, check_device, train

    if args.task not in TASKS and args.task != "pycode-reference":
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    out = check_output_path(args.out, "--out", folder=True)
    if args.init and args.task == "pycode-reference":
        raise CLIError("--init warm-starts a task model; the pycode-reference LM always starts afresh")
    if args.init:  # the size defaults to the warm start's
        from ..models import load_config

        try:
            init = load_config(args.init)
        except ValueError as exc:
            raise CLIError(f"--init: {exc}") from None
        args.d_model, args.layers = args.d_model or init.d_model, args.layers or init.n_layers
    args.d_model, args.layers = args.d_model or 192, args.layers or 4
    if args.d_model % 4:
        raise CLIError(f"--d-model must be divisible by the 4 heads, got {args.d_model}")
    check_device(args.device)  # before anything is read or built
    if args.cache and Path(args.cache).exists() and not Path(args.cache).is_dir():
        raise CLIError(f"--cache exists and is not a folder: {args.cache!r}")
    cfg = TrainConfig(task=args.task, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, max_steps=args.max_steps,
                      train_examples=args.train_examples, seed=args.seed, checkpoint_seconds=60 * args.checkpoint_minutes,
                      d_model=args.d_model, n_layers=args.layers, d_ff=4 * args.d_model, warmup_steps=args.warmup_steps,
                      valid_every=args.valid_every, valid_examples=args.valid_examples, patience=args.patience,
                      cache=str(Path(args.cache).resolve()) if args.cache else None,
                      init=str(Path(args.init).resolve()) if args.init else None, device=args.device)
    if args.task == "pycode-reference":
        from ..training import train_reference_lm

        summary = train_reference_lm(out, cfg)
    else:
        summary = train(get_task(args.task), out, cfg)
    payload = summary.as_json()
    emit(args.json, payload, lambda: "\n".join(f"{k}: {v}" for k, v in payload.items()) + f"\ncheckpoint: {out}")
