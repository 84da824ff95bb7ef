"""``mdm-energy profile``: a model's information profile from unlabelled prompts, and the schedule it implies.

The profile h(j) is the mean entropy of the model's prediction at a masked position once j positions of
its completion are revealed (docs/design.md §5); the counts per step that minimise the information-curve
bound come from it with no labels and no task metric, printed as a ``table:`` spec usable wherever a
schedule is, with the nearest ``beta:a,b``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .._parse import strict_int
from ._common import CLIError, _typed, add_trust_remote_code, check_output_path, emit, format_table, non_negative_float, positive_int, progress_bar, seed_int

#: Longest prompts file read (bytes): a profile needs hundreds of prompts, not millions.
MAX_PROMPTS_BYTES = 64 * 1024 * 1024


def _steps_list(text: str):
    return _typed("steps", lambda t: tuple(strict_int(p) for p in t.split(",")), lambda v: all(1 <= x <= 1_000_000 for x in v),
                  "a comma-separated list of step counts >= 1")(text)


def register(sub: argparse._SubParsersAction) -> None:
    from ..profile import ORDERS

    p = sub.add_parser("profile", help="a model's information profile from unlabelled prompts, and its schedule",
                       description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="DIR", help="one of our checkpoint folders or a Hugging Face dLLM folder")
    src.add_argument("--checkpoint", metavar="DIR", help="one of our checkpoint folders (same as --model)")
    src.add_argument("--load", metavar="FILE", help="a profile saved with --save, instead of a model")
    p.add_argument("--task", help="prompts from this task's validation split (its answers are not used)")
    p.add_argument("--prompts", metavar="FILE", help="one prompt per line, or JSONL with \"prompt\" (and optional "
                   "\"completion\": unlabelled answers revealed instead of generating)")
    p.add_argument("--length", "-L", type=positive_int("length"), help="generation window (default: the task's, or 128)")
    p.add_argument("--samples", "-K", type=positive_int("samples", maximum=1_000_000), default=256,
                   help="completions to average over (default 256)")
    p.add_argument("--order", choices=ORDERS, default="random",
                   help="reveal order: random (random remasking, ancestral, Euler; default) or confidence (the "
                   "low_confidence sampler's own path)")
    p.add_argument("--temperature", type=non_negative_float("temperature"),
                   help="generation temperature (default 1 for the random order, 0 for confidence)")
    p.add_argument("--steps", "-N", type=_steps_list, help="also print the schedule for these step counts, e.g. 8,16")
    p.add_argument("--batch-size", type=positive_int("batch-size"), default=128)
    p.add_argument("--seed", type=seed_int(), default=0)
    add_trust_remote_code(p)
    p.add_argument("--save", metavar="FILE", help="write the profile (JSON) for later --load")
    p.add_argument("--plot", metavar="FILE", help="the profile and its schedules as a figure (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _read_prompts(path: str) -> tuple[list[str], "list[str] | None"]:
    """Prompts (and completions, when every JSONL line has one) from a file; errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"prompts file not found: {path!r}")
    if p.stat().st_size > MAX_PROMPTS_BYTES:
        raise CLIError(f"prompts file {path!r} is larger than {MAX_PROMPTS_BYTES // 2**20} MiB")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"prompts file {path!r} is not UTF-8 text (byte {exc.start})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise CLIError(f"prompts file {path!r} is empty")
    if p.suffix.lower() != ".jsonl":
        return lines, None
    prompts, completions = [], []
    for k, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise CLIError(f"{path!r} line {k} is not JSON") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise CLIError(f"{path!r} line {k} has no \"prompt\" string")
        prompts.append(row["prompt"])
        completions.append(row.get("completion"))
    given = [c for c in completions if c is not None]
    if given and len(given) != len(completions):
        raise CLIError(f"{path!r}: give a \"completion\" on every line or on none")
    if any(not isinstance(c, str) for c in given):
        raise CLIError(f"{path!r}: every \"completion\" must be a string")
    return prompts, (completions if given else None)


def _check_outputs(args: argparse.Namespace) -> None:
    from ..plots import check_plot_path

    if args.plot is not None:
        check_plot_path(args.plot, "--plot")
    if args.save is not None:
        check_output_path(args.save, "--save")


def _estimate(args: argparse.Namespace):
    from ..integrations.local import load_local_model
    from ..profile import estimate_profile
    from ..tasks import TASKS, get_task

    if args.task is None and args.prompts is None:
        raise CLIError("give prompts: --task T or --prompts FILE")
    if args.task is not None and args.prompts is not None:
        raise CLIError("give --task or --prompts, not both")
    if args.task is not None and args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    texts, answers = _read_prompts(args.prompts) if args.prompts else (None, None)
    if answers is not None and args.order != "random":
        raise CLIError("given completions are revealed in random order: use --order random")
    folder = args.model or args.checkpoint
    model = load_local_model(folder, trust_remote_code=args.trust_remote_code)
    if model.uniform is not None:
        raise CLIError(f"{folder!r} is a uniform-noise model (DiffusionGemma): the information profile reveals masked "
                       "positions, and it has no mask")
    if args.task is not None:
        if model.task is None:
            raise CLIError(f"--task needs one of our task checkpoints; {folder!r} is a Hugging Face model: use --prompts")
        if model.task != args.task:
            raise CLIError(f"checkpoint {folder!r} was trained for {model.task}, not {args.task}")
        task = get_task(args.task)
        prompts = task.prompts(task.examples("valid", min(args.samples, 4096), seed=args.seed))
    else:
        prompts = [model.encode(t) for t in texts]
    length = args.length or model.gen_length
    limit = getattr(model.denoiser, "max_length", None)
    longest = max(len(p) for p in prompts)
    if limit is not None and longest + length > limit:
        raise CLIError(f"a prompt of {longest} tokens plus --length {length} exceeds the model's window of {limit}")
    too_many = [n for n in args.steps or () if n > length]
    if too_many:
        raise CLIError(f"--steps {too_many[0]} exceeds the window of {length} (at most one call per token)")
    completions = [model.encode_answer(a, length) for a in answers] if answers is not None else None
    with progress_bar(args.samples, "profile") as progress:
        prof = estimate_profile(model.denoiser, prompts, length, samples=args.samples, order=args.order,
                                completions=completions, temperature=args.temperature, batch_size=args.batch_size,
                                seed=args.seed, progress=progress)
    return dataclasses.replace(prof, source=f"{folder} on {args.task or args.prompts}")


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from ..profile import load_profile, profile_schedule

    _check_outputs(args)
    if args.load:
        given = [f for f, v in (("--task", args.task), ("--prompts", args.prompts), ("--length", args.length),
                                ("--temperature", args.temperature)) if v is not None]
        if given:
            raise CLIError(f"{given[0]} does not apply to a profile loaded with --load")
        prof = load_profile(args.load)
    else:
        prof = _estimate(args)
    too_many = [n for n in args.steps or () if n > prof.length]
    if too_many:
        raise CLIError(f"--steps {too_many[0]} exceeds the window of {prof.length} (at most one call per token)")
    schedules = [profile_schedule(prof, n) for n in args.steps or ()]
    if args.save is not None and not args.load:
        prof.save(args.save)
    if args.plot is not None:
        from ..plots import plot_profile

        plot_profile(prof, schedules, args.plot)
    payload = {"profile": prof.as_json(), "schedules": [s.as_json() for s in schedules]}

    def human() -> str:
        h = np.asarray(prof.entropy) / np.log(2)
        se = np.asarray(prof.stderr) / np.log(2)
        picks = sorted(set(np.linspace(0, prof.length - 1, min(prof.length, 12)).round().astype(int).tolist()))
        rows = [[str(j), f"{h[j]:.4f}", f"{se[j]:.4f}"] for j in picks]
        out = [f"information profile of {prof.source or 'a model'}: {prof.samples} samples, {prof.order} order, "
               f"{prof.calls} batched model calls", format_table(["revealed j", "h(j) bits", "s.e."], rows)]
        for s in schedules:
            out += [f"N={s.steps}: counts {s.counts}", f"  {s.table}", f"  nearest {s.beta} (counts {s.beta_counts})"]
        return "\n".join(out)

    emit(args.json, payload, human)
