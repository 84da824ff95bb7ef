"""``mdm-energy profile``: a model's information profile from unlabelled prompts, and the schedule it implies.

The profile u(j) says how much uncertainty is left once j positions of the model's completion are revealed
(by default the total remaining entropy, along the path of the sampler the schedule is for; docs/design.md
§5); the counts per step that minimise the information-curve bound come from it with no labels and no task
metric, printed as a ``table:`` spec (with ``--block-length``, one per block: a ``blocks:`` spec) usable
wherever a schedule is, with the nearest ``beta:a,b``.

A block-diffusion model (LLaDA 2.x, SDAR) is profiled in its own blocks, through its cache, on the path its
samplers take (the first block decoded holds the prompt's end); its schedules are for ``--steps-per-block``,
as ``generate`` takes them.

The reveal order follows the sampler options (``--sampler``, ``--remasking``, ``--temperature``,
``--block-length``; by default the default sampler's: ``fixed`` with low_confidence remasking, the
confidence order), so that ``profile`` and then ``eval``/``generate`` with the printed options and spec is
the matched path. ``--order`` overrides it, and is refused when it contradicts the sampler options given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .._parse import strict_int
from ._common import CLIError, _typed, add_trust_remote_code, check_output_path, emit, format_table, positive_int, progress_bar, seed_int
from ._sampler_args import add_sampler_arguments, check_sampler_options, flag, given_sampler_options

#: Longest prompts file read (bytes): a profile needs hundreds of prompts, not millions.
MAX_PROMPTS_BYTES = 64 * 1024 * 1024


def _steps_list(text: str):
    return _typed("steps", lambda t: tuple(strict_int(p) for p in t.split(",")), lambda v: all(1 <= x <= 1_000_000 for x in v),
                  "a comma-separated list of step counts >= 1")(text)


#: The sampler options the profile's path takes (the others do not change the order of reveals).
PATH_OPTIONS = ("remasking", "temperature", "block_length")
#: Samplers whose positions are revealed at random (the random order), besides random remasking.
RANDOM_ORDER_SAMPLERS = ("ancestral", "euler")


def register(sub: argparse._SubParsersAction) -> None:
    from ..profile import BLOCK_SCHEDULES, DEFAULT_BLOCK_SCHEDULE, DEFAULT_STATISTIC, MAX_PROFILE_LENGTH, MAX_SAMPLES, ORDERS, STATISTICS

    p = sub.add_parser("profile", help="a model's information profile from unlabelled prompts, and its schedule",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="DIR", help="one of our checkpoint folders or a Hugging Face dLLM folder")
    src.add_argument("--checkpoint", metavar="DIR", help="one of our checkpoint folders (same as --model)")
    p.add_argument("--load", metavar="FILE", help="a profile saved with --save, instead of profiling (with --model: "
                   "checked to be that model's)")
    p.add_argument("--task", help="prompts from this task's validation split (its answers are not used)")
    p.add_argument("--prompts", metavar="FILE", help="one prompt per line, or JSONL with \"prompt\" (and optional "
                   "\"completion\": unlabelled answers revealed instead of generating)")
    p.add_argument("--length", "-L", type=positive_int("length", maximum=MAX_PROFILE_LENGTH),
                   help="generation window (default: the task's, or 128)")
    p.add_argument("--samples", "-K", type=positive_int("samples", maximum=MAX_SAMPLES), default=256,
                   help="completions to average over (default 256)")
    p.add_argument("--statistic", choices=STATISTICS, default=None,
                   help=f"what the profile measures (default {DEFAULT_STATISTIC}: the total remaining entropy; mean: "
                   "the mean entropy of a masked position; committed: the entropy each call commits; answer: the "
                   "mean over the positions before the first committed end token)")
    p.add_argument("--order", choices=ORDERS, default=None,
                   help="reveal order (default: the sampler's; random for random remasking, ancestral, Euler and "
                   "Dream's origin, else confidence, the sampler's own path)")
    p.add_argument("--blocks", choices=BLOCK_SCHEDULES, default=None,
                   help=f"with --block-length: one schedule per block (each; default {DEFAULT_BLOCK_SCHEDULE}) or one "
                   "shared by all blocks")
    p.add_argument("--steps", "-N", type=_steps_list, help="also print the schedule for these step counts, e.g. 8,16")
    p.add_argument("--steps-per-block", type=_steps_list, metavar="N[,N...]",
                   help="block-diffusion models (LLaDA 2.x, SDAR): also print the schedule for these steps per block "
                   "of the model (as generate --steps-per-block takes them)")
    p.add_argument("--batch-size", type=positive_int("batch-size"), default=128)
    p.add_argument("--seed", type=seed_int(), default=0)
    add_trust_remote_code(p)
    p.add_argument("--save", metavar="FILE", help="write the profile (JSON) for later --load")
    p.add_argument("--plot", metavar="FILE", help="the profile and its schedules as a figure (.png, .pdf, .svg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_sampler_arguments(p, default="fixed", options=PATH_OPTIONS,
                          help_extra={"temperature": "; the profile's generation temperature"})
    p.set_defaults(run=run, sampler=None)  # None: not given (the default sampler's path, and --order may say)


def _path(args: argparse.Namespace) -> tuple[str, "str | None", dict]:
    """The profile's order and remasking rule from the sampler options (refusing a contradicting ``--order``),
    and the sampler options that make the matched path."""
    from ..registry import sampler_spec

    sampler = args.sampler or "fixed"
    if "schedule" not in sampler_spec(sampler).params:
        raise CLIError(f"the {sampler} sampler takes no schedule: profile for a sampler that does (e.g. fixed)")
    given = given_sampler_options(args)
    check_sampler_options(sampler, given)
    defaults = sampler_spec(sampler).defaults
    remasking = given.get("remasking", defaults.get("remasking"))
    if sampler in RANDOM_ORDER_SAMPLERS or (sampler == "dream" and defaults.get("alg") == "origin"):
        order, remasking = "random", "random"
    elif remasking == "random":
        order = "random"
    else:
        order, remasking = "confidence", remasking if remasking in ("low_confidence", "margin", "entropy") else "low_confidence"
    explicit = args.sampler is not None or "remasking" in given
    if args.order is not None and args.order != order:
        if explicit:
            said = f"--remasking {given['remasking']}" if "remasking" in given else f"--sampler {sampler}"
            raise CLIError(f"--order {args.order} contradicts {said} (its order is {order}): leave --order out")
        order, remasking = args.order, "random" if args.order == "random" else "low_confidence"
    temperature = given.get("temperature", defaults.get("temperature"))
    path = {"sampler": sampler, **({"remasking": remasking} if "remasking" in sampler_spec(sampler).params else {}),
            "temperature": temperature, **({"block_length": given["block_length"]} if "block_length" in given else {})}
    return order, remasking, path


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


def _check_step_options(args: argparse.Namespace, block_causal: bool, length: int, block_length: "int | None",
                        what: str) -> None:
    """``--steps`` for a window, ``--steps-per-block`` for a block-causal model's blocks; ``what`` names the model
    or profile in the message."""
    if block_causal:
        if args.steps:
            raise CLIError(f"--steps does not apply to {what} (block diffusion: steps are per block, and how many "
                           "blocks a run decodes depends on its prompt): give --steps-per-block")
        big = [n for n in args.steps_per_block or () if n > block_length]
        if big:
            raise CLIError(f"--steps-per-block {big[0]} exceeds the model's blocks of {block_length} (at most one call "
                           "per token)")
        return
    if args.steps_per_block:
        raise CLIError(f"--steps-per-block is for block-diffusion models (LLaDA 2.x, SDAR), not {what}: give --steps")
    _check_steps(args.steps, length, block_length)


def _check_steps(steps, length: int, block_length: "int | None") -> None:
    too_many = [n for n in steps or () if n > length]
    if too_many:
        raise CLIError(f"--steps {too_many[0]} exceeds the window of {length} (at most one call per token)")
    if block_length:
        nb = length // block_length
        odd = [n for n in steps or () if n % nb]
        if odd:
            raise CLIError(f"--steps {odd[0]} is not divisible by the {nb} blocks of --block-length {block_length} "
                           "(the samplers split the steps evenly over the blocks)")


def _estimate(args: argparse.Namespace):
    from ..integrations.local import load_local_model
    from ..profile import DEFAULT_STATISTIC, estimate_profile, model_fingerprint
    from ..tasks import TASKS, get_task

    if args.task is None and args.prompts is None:
        raise CLIError("give prompts: --task T or --prompts FILE")
    if args.task is not None and args.prompts is not None:
        raise CLIError("give --task or --prompts, not both")
    if args.task is not None and args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    order, remasking, path = _path(args)
    texts, answers = _read_prompts(args.prompts) if args.prompts else (None, None)
    if answers is not None and order != "random":
        raise CLIError("given completions are revealed in random order: give --order random (or a random-order "
                       "sampler)")
    folder = args.model or args.checkpoint
    model = load_local_model(folder, trust_remote_code=args.trust_remote_code)
    if model.uniform is not None:
        raise CLIError(f"{folder!r} is a uniform-noise model (DiffusionGemma): the information profile reveals masked "
                       "positions, and it has no mask")
    length = args.length or model.gen_length
    bl = path.get("block_length")
    if getattr(model.denoiser, "block_causal", False):  # its own blocks, from the one holding the prompt's end
        size = int(model.denoiser.block_size)
        if bl is not None and bl != size:
            raise CLIError(f"--block-length {bl} differs from the model's block size {size} (a block-causal model "
                           "decodes its own blocks; leave --block-length out)")
        if answers is not None:
            raise CLIError("given completions are not supported on a block-diffusion model (its blocks start inside "
                           "the prompt): give prompts without \"completion\"")
        _check_step_options(args, True, length, size, f"the block-diffusion model {folder!r}")
    else:
        if bl is not None and length % bl:
            raise CLIError(f"--block-length {bl} does not divide the window of {length}")
        if bl is not None and answers is not None:
            raise CLIError("given completions are revealed over the whole window: leave --block-length out")
        _check_step_options(args, False, length, bl, repr(folder))
    if args.task is not None:
        if model.task is None:
            raise CLIError(f"--task needs one of our task checkpoints; {folder!r} is a Hugging Face model: use --prompts")
        if model.task != args.task:
            raise CLIError(f"checkpoint {folder!r} was trained for {model.task}, not {args.task}")
        task = get_task(args.task)
        prompts = task.prompts(task.examples("valid", min(args.samples, 4096), seed=args.seed))
    else:
        prompts = [model.encode(t) for t in texts]
    limit = getattr(model.denoiser, "max_length", None)
    longest = max(len(p) for p in prompts)
    if limit is not None and longest + length > limit:
        raise CLIError(f"a prompt of {longest} tokens plus --length {length} exceeds the model's window of {limit}")
    completions = [model.encode_answer(a, length) for a in answers] if answers is not None else None
    with progress_bar(args.samples, "profile") as progress:
        prof = estimate_profile(model.denoiser, prompts, length, samples=args.samples, order=order,
                                statistic=args.statistic or DEFAULT_STATISTIC, remasking=remasking, block_length=bl,
                                completions=completions, temperature=path["temperature"], batch_size=args.batch_size,
                                seed=args.seed, progress=progress)
    meta = {**prof.meta, "sampler": path}
    return dataclasses.replace(prof, source=f"{folder} on {args.task or args.prompts}", meta=meta,
                               model=model_fingerprint(folder))


def _matched(prof) -> str:
    """The sampler options of the path the profile was measured on, in command-line spelling."""
    path = dict(prof.meta.get("sampler") or {})
    if not path:
        path = {"sampler": "fixed", "remasking": "random" if prof.order == "random" else prof.meta.get("remasking", "low_confidence")}
        if prof.block_length:
            path["block_length"] = prof.block_length
    if prof.layout == "block-causal":  # the model's own blocks: generate takes no --block-length for them
        path.pop("block_length", None)
    parts = [f"--sampler {path.pop('sampler')}"]
    for k, v in path.items():
        if v is not None and not (k == "temperature" and v == 0.0):
            parts.append(f"{flag(k)} {v:g}" if isinstance(v, float) else f"{flag(k)} {v}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from ..profile import check_profile_model, load_profile, model_fingerprint, profile_schedule

    _check_outputs(args)
    folder = args.model or args.checkpoint
    if (args.blocks is not None and args.load is None and getattr(args, "block_length", None) is None
            and args.steps_per_block is None):
        raise CLIError("--blocks applies to a profile with blocks: give --block-length (or, for a block-diffusion "
                       "model, --steps-per-block)")
    if args.load:
        given = [f for f, v in (("--task", args.task), ("--prompts", args.prompts), ("--length", args.length),
                                ("--order", args.order), ("--sampler", args.sampler), ("--statistic", args.statistic),
                                *((flag(k), v) for k, v in given_sampler_options(args).items()))
                 if v is not None]
        if given:
            raise CLIError(f"{given[0]} does not apply to a profile loaded with --load (it was measured with "
                           "its own; profile again to change it)")
        prof = load_profile(args.load)
        if folder is not None:
            if not Path(folder).is_dir():
                raise CLIError(f"model folder {folder!r} does not exist")
            try:
                check_profile_model(prof, model_fingerprint(folder), f"profile file {args.load!r}")
            except ValueError as exc:
                raise CLIError(str(exc)) from None
    else:
        if folder is None:
            raise CLIError("give a model (--model DIR or --checkpoint DIR) or a saved profile (--load FILE)")
        prof = _estimate(args)
    if args.blocks is not None and not prof.block_length:
        raise CLIError("--blocks applies to a profile with blocks: give --block-length")
    causal = prof.layout == "block-causal"
    _check_step_options(args, causal, prof.length, prof.block_length,
                        (f"profile file {args.load!r}" if args.load else "the profile")
                        + (" (of a block-diffusion model)" if causal else " (of a window)"))
    try:
        schedules = ([profile_schedule(prof, steps_per_block=n, blocks=args.blocks) for n in args.steps_per_block or ()]
                     if causal else [profile_schedule(prof, n, blocks=args.blocks) for n in args.steps or ()])
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.save is not None and not args.load:
        prof.save(args.save)
    if args.plot is not None:
        from ..plots import plot_profile

        plot_profile(prof, schedules, args.plot)
    payload = {"profile": prof.as_json(), "schedules": [s.as_json() for s in schedules], "matched": _matched(prof)}

    def human() -> str:
        h = np.asarray(prof.entropy) / np.log(2)
        se = np.asarray(prof.stderr) / np.log(2)
        picks = sorted(set(np.linspace(0, prof.length - 1, min(prof.length, 12)).round().astype(int).tolist()))
        rows = [[str(j), f"{h[j]:.4f}", f"{se[j]:.4f}"] for j in picks]
        blocks = (f", {prof.blocks} blocks of the model's {prof.block_length} (block 0 holds the prompt's end)" if causal
                  else f", {prof.blocks} blocks of {prof.block_length}" if prof.block_length else "")
        out = [f"information profile of {prof.source or 'a model'}: {prof.samples} samples, {prof.order} order, "
               f"statistic {prof.statistic}{blocks}, {prof.calls} batched model calls",
               format_table(["revealed j", "u(j) bits", "s.e."], rows)]
        for s in schedules:
            steps = f"{s.steps_per_block} steps per block" if causal else f"N={s.steps}"
            out += [f"{steps}: counts {s.counts}", f"  {s.table}", f"  nearest {s.beta} (counts {s.beta_counts})"]
        if schedules:
            out.append(f"matched sampler options (the path profiled): {_matched(prof)} --schedule SPEC "
                       + ("--steps-per-block N" if causal else "-N N"))
        return "\n".join(out)

    emit(args.json, payload, human)

