"""``mdm-energy tune``: a resumable, parallel search for the best schedule of a parametric family — Beta (a, b) by
default, any registered family with ``--family`` (docs/design.md §6).

This is the canonical search command; ``mdm-energy exact-grid`` is its shorthand for
``--objective exact --strategy grid --optimum`` on a throwaway study.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import STORAGE_PATIENCE
from ._common import (CLIError, add_trust_remote_code, bounds, check_output_path, emit, format_table, named_numbers,
                      non_negative_float, positive_floats, positive_int, progress_bar, seed_int)
from ._pareto import FIXED_OPTIONS
from ._sampler_args import add_sampler_arguments, check_sampler_options, given_sampler_options
from ..registry import exact_law_options
from .exact_cmd import DIST_HELP, load_exact


def _given_options(args: argparse.Namespace) -> dict:
    """The sampler flags given on the command line, but the steps (every objective takes those separately)."""
    return {k: v for k, v in given_sampler_options(args).items() if k != "steps"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="find the best Beta (a, b) schedule, or one of another family: grid, successive halving, TPE or random "
        "search on Optuna storage",
        description="Tune beta:a,b (or the numbers of another schedule family, --family) for an objective (exact KL of a sampler on an explicit law, or a trained "
        "checkpoint's task metric). Trials live in Optuna storage (SQLite by default): rerunning the same command "
        "resumes without redoing finished trials, and --workers K processes share one study without evaluating a "
        "grid point twice.",
    )
    p.add_argument("--objective", choices=("exact", "task", "lm-eval"), default="exact",
                   help="exact: KL on an explicit law (--dist, --sampler); task: a trained checkpoint's metric on "
                   "held-out validation items (--task, --checkpoint; fixed-count sampler); lm-eval: an lm-eval "
                   "task's metric through the mdm_energy model (--model-args, --tasks)")
    p.add_argument("--dist", help=DIST_HELP)
    # the options a Pareto run holds fixed, and every option an exact law depends on (from the registry, so a new
    # exact sampler's options get flags here as in ``exact``)
    add_sampler_arguments(p, default="fixed", options=tuple(dict.fromkeys(("steps", *FIXED_OPTIONS, *exact_law_options()))),
                          help_extra={"temperature": "; task objective only (exact laws are at temperature 1)"})
    p.add_argument("--task", help="countdown | sudoku | pycode (task objective)")
    p.add_argument("--checkpoint", help="trained model folder (task objective)")
    p.add_argument("--limit", type=positive_int("limit"), help="items to tune on: validation items of a task objective "
                   "(default 200), a seeded random pool of an lm-eval task's documents (default all)")
    p.add_argument("--model-args", metavar="ARGS", help="lm-eval objective: the mdm_energy model's model_args, e.g. "
                   "pretrained=DIR,gen_length=256,block_length=32 (the tuner sets schedule; give steps with --steps)")
    p.add_argument("--tasks", metavar="TASK", help="lm-eval objective: the lm-eval task to tune on")
    p.add_argument("--include-path", metavar="DIR", help="lm-eval objective: a folder of local task YAML files")
    p.add_argument("--metric", metavar="NAME[,FILTER]", help="lm-eval objective: the metric (default the task's first)")
    p.add_argument("--device", help="lm-eval objective: the model's device, e.g. cuda:1 (one command per GPU)")
    add_trust_remote_code(p)  # lm-eval objective; the same as trust_remote_code=True in --model-args
    p.add_argument("--apply-chat-template", action="store_true", help="lm-eval objective: lm-eval's switch")
    p.add_argument("--fewshot-as-multiturn", action="store_true", help="lm-eval objective: lm-eval's switch")
    p.add_argument("--confirm-run-unsafe-code", action="store_true",
                   help="lm-eval objective: allow tasks that run generated code (humaneval, mbpp)")
    p.add_argument("--halving-min-size", type=positive_int("halving-min-size"), default=50,
                   help="items of the first successive-halving rung (default 50, as the paper)")
    p.add_argument("--halving-eta", type=_eta, default=3, help="successive halving keeps the best 1/eta and "
                   "multiplies the subset by eta (default 3)")
    p.add_argument("--strategy", required=True, help="grid | halving | tpe | random (--pareto: tpe | random)")
    p.add_argument("--pareto", action="store_true",
                   help="task objective: search the sampler's parameters (Beta a, b and steps; threshold, epsilon or "
                   "factor) for two objectives at once, quality up and mean model calls down, and report the front")
    p.add_argument("--steps-values", type=positive_floats("steps-values"),
                   help="--pareto: the step counts the search chooses from (default: --steps)")
    p.add_argument("--threshold-bounds", type=bounds("threshold-bounds"), default=(0.3, 0.99),
                   help="--pareto: LOW,HIGH of the threshold (default 0.3,0.99)")
    p.add_argument("--epsilon-bounds", type=bounds("epsilon-bounds"), default=(0.01, 4.0),
                   help="--pareto: LOW,HIGH of the entropy bound (default 0.01,4)")
    p.add_argument("--factor-bounds", type=bounds("factor-bounds"), default=(0.25, 4.0),
                   help="--pareto: LOW,HIGH of the factor (default 0.25,4)")
    p.add_argument("--budget", type=positive_int("budget"), help="evaluations for tpe/random (default 25); caps grid/halving points")
    p.add_argument("--family", default="beta", metavar="NAME",
                   help="the schedule family to tune (default beta; e.g. poly); its declared ranges and grid are the "
                   "defaults, --bounds and --values override them")
    p.add_argument("--a-bounds", type=bounds("a-bounds"), help="--family beta: LOW,HIGH for a (tpe/random; default 0.1,1)")
    p.add_argument("--b-bounds", type=bounds("b-bounds"), help="--family beta: LOW,HIGH for b (tpe/random; default 0.1,1)")
    p.add_argument("--bounds", type=named_numbers("bounds", 2), metavar="NAME=LO,HI;...",
                   help="search ranges by parameter name (tpe/random), e.g. 'k=0.5,3' for poly")
    p.add_argument("--scale", choices=("linear", "log"), default="linear", help="search scale for tpe/random "
                   "(a parameter its family declares log-scaled is always searched on a log scale)")
    p.add_argument("--a-values", type=positive_floats("a-values"), help="--family beta: grid values of a (default 0.1,...,1.0)")
    p.add_argument("--b-values", type=positive_floats("b-values"), help="--family beta: grid values of b (default 0.1,...,1.0)")
    p.add_argument("--values", type=named_numbers("values"), metavar="NAME=X,Y,...;...",
                   help="grid values by parameter name (grid/halving), e.g. 'k=0.5,1,2,4' for poly")
    p.add_argument("--storage", default="sqlite:///mdm-energy-studies.db", help="Optuna storage URL or journal:PATH "
                   "(default sqlite:///mdm-energy-studies.db)")
    p.add_argument("--storage-patience", type=non_negative_float("storage-patience"), default=STORAGE_PATIENCE,
                   metavar="SECONDS", help="on a database server, how long a worker rides out a lost connection or a "
                   f"restarting server, retrying with backoff (default {STORAGE_PATIENCE:g}); then it stops with one "
                   "line and its own exit status, and rerunning the command resumes the study")
    p.add_argument("--study", help="study name (default derived from the objective and strategy)")
    p.add_argument("--workers", type=positive_int("workers"), default=1, help="processes sharing the study (default 1)")
    p.add_argument("--seed", type=seed_int(), default=0)
    p.add_argument("--optimum", action="store_true",
                   help="exact objective: also compute the true optimal schedule and the information-curve schedule")
    p.add_argument("--report", metavar="DIR", help="write heatmap, best schedules, markdown table and all trials here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _beta_only(args: argparse.Namespace) -> list[tuple[str, str, object]]:
    """The Beta shorthands given: (flag, parameter, value) of --a-bounds, --b-bounds, --a-values, --b-values."""
    return [(flag, name, value) for flag, name, value in (
        ("--a-bounds", "a", args.a_bounds), ("--b-bounds", "b", args.b_bounds),
        ("--a-values", "a", args.a_values), ("--b-values", "b", args.b_values)) if value is not None]


def merged_numbers(args: argparse.Namespace) -> tuple[dict, dict]:
    """``(bounds, values)`` by parameter name from --bounds/--values and, for --family beta, the --a-*/--b-*
    shorthands; a shorthand with another family, or one parameter given twice, is refused by name."""
    bounds = dict(args.bounds or {})
    values = dict(getattr(args, "values", None) or {})
    for flag, name, value in _beta_only(args):
        if args.family != "beta":
            kind = "--bounds NAME=LO,HI" if flag.endswith("bounds") else "--values NAME=X,Y"
            raise CLIError(f"{flag} applies to --family beta only; give {kind} for the {args.family} family")
        target = bounds if flag.endswith("bounds") else values
        if name in target:
            raise CLIError(f"{flag} and --{'bounds' if target is bounds else 'values'} {name}=... both give {name}")
        target[name] = value
    return bounds, values


def search_space(args: argparse.Namespace):
    """The :class:`~mdm_energy.tuning.SearchSpace` the arguments describe (the family's declared defaults where
    nothing is given)."""
    from ..tuning import SearchSpace

    bounds, values = merged_numbers(args)
    return SearchSpace(args.family, bounds=bounds, values=values, log=args.scale == "log")


def _eta(text: str) -> int:
    value = positive_int("halving-eta")(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"--halving-eta must be at least 2, got {text!r}")
    return value


def _lm_eval_objective(args: argparse.Namespace):
    """The lm-eval objective; bad model_args, an unknown task or a missing folder are refused by name."""
    if not args.model_args or not args.tasks:
        raise CLIError("--objective lm-eval needs --model-args and --tasks")
    if "," in args.tasks:
        raise CLIError(f"--tasks takes one lm-eval task to tune on, got {args.tasks!r}")
    if args.steps is None:
        raise CLIError("--steps is required")
    if args.optimum:
        raise CLIError("--optimum applies to --objective exact only")
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise CLIError(f"--include-path is not a folder: {args.include_path!r}")
    try:
        from ..integrations.lm_eval import parse_model_args
        from ..integrations.lm_eval_objective import LMEvalObjective
    except ImportError as exc:
        raise CLIError(f"lm-eval is not installed ({exc}); pip install 'mdm-energy[lm-eval]'") from None
    model_args = parse_model_args(args.model_args)
    if args.device:
        model_args["device"] = args.device
    if args.trust_remote_code:
        model_args["trust_remote_code"] = True
    device = str(model_args.get("device") or "")
    if device.startswith("cuda") and args.workers > 1:
        raise CLIError("--workers > 1 forks processes, which CUDA does not survive: start one command per GPU "
                       "(--device cuda:K) on the same --storage and --study instead")
    sampler = str(model_args.get("sampler", "fixed"))
    given = _given_options(args)
    check_sampler_options(sampler, given)
    model_args.update(given)
    objective = LMEvalObjective(model_args, args.tasks, steps=args.steps, include_path=args.include_path,
                                metric=args.metric, limit=args.limit, seed=args.seed,
                                apply_chat_template=args.apply_chat_template,
                                fewshot_as_multiturn=args.fewshot_as_multiturn,
                                confirm_run_unsafe_code=args.confirm_run_unsafe_code)
    return objective, int(model_args.get("gen_length", 256))


def _objective(args: argparse.Namespace):
    """The objective the arguments describe, and the generation length its counts are shown for."""
    from ..tuning import ExactKLObjective

    if args.objective == "lm-eval":
        return _lm_eval_objective(args)
    lm_only = [f for f, v in (("--model-args", args.model_args), ("--tasks", args.tasks), ("--include-path",
               args.include_path), ("--metric", args.metric), ("--device", args.device),
               ("--apply-chat-template", args.apply_chat_template or None),
               ("--fewshot-as-multiturn", args.fewshot_as_multiturn or None),
               ("--confirm-run-unsafe-code", args.confirm_run_unsafe_code or None),
               ("--trust-remote-code", args.trust_remote_code or None)) if v is not None]
    if lm_only:
        raise CLIError(f"{lm_only[0]} applies to --objective lm-eval only")
    if args.objective == "exact":
        if not args.dist:
            raise CLIError("--objective exact needs --dist")
        if args.temperature is not None:
            raise CLIError("--temperature does not apply to --objective exact (exact laws are at temperature 1)")
        if args.limit is not None:
            raise CLIError("--limit does not apply to --objective exact (an exact objective has no items)")
        given = _given_options(args)
        check_sampler_options(args.sampler, given)  # none silently dropped
        den, opts = load_exact(args)
        carried = {k: v for k, v in given.items() if k != "remasking"}  # ReMDM's rule, DUS's first stride, ...
        objective = ExactKLObjective(den, args.sampler, args.steps, opts.get("remasking"), carried)
        return objective, den.n
    from ..models import load_model
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import check_checkpoint, task_objective

    if not args.task or not args.checkpoint:
        raise CLIError("--objective task needs --task and --checkpoint")
    if args.sampler != "fixed":
        raise CLIError(f"--objective task tunes the fixed-count sampler, not {args.sampler!r}")
    if args.optimum:
        raise CLIError("--optimum applies to --objective exact only")
    if args.steps is None:
        raise CLIError("--steps is required")
    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    given = _given_options(args)
    check_sampler_options("fixed", given)
    task = get_task(args.task)
    model = load_model(args.checkpoint)
    check_checkpoint(task, model, args.checkpoint)
    objective = task_objective(task, model, args.steps, n=args.limit or 200, seed=args.seed, **given)
    return objective, task.gen_len


def run(args: argparse.Namespace) -> None:
    from ..limits import check_workers
    from ..tuning import MAX_TRIALS, STRATEGIES, check_storage, exact_references, tune, write_report

    if args.pareto:
        from ._pareto import run_pareto

        run_pareto(args)
        return
    pareto_only = [f for f, v in (("--steps-values", args.steps_values),) if v is not None]
    if pareto_only:
        raise CLIError(f"{pareto_only[0]} applies to --pareto only")
    if args.strategy not in STRATEGIES:
        raise CLIError(f"unknown strategy {args.strategy!r} (known: {', '.join(STRATEGIES)})")
    if args.report is not None:
        check_output_path(args.report, "--report", folder=True)
    space = search_space(args)
    if args.strategy in ("grid", "halving"):
        space.grid()  # refuses a missing grid, or one larger than a study runs
    else:
        space.ranges()
    if args.budget is not None and args.budget > MAX_TRIALS:
        raise CLIError(f"--budget must be at most {MAX_TRIALS:,}, got {args.budget:,}")
    check_workers(args.workers)
    check_storage(args.storage)
    objective, length = _objective(args)

    total = args.budget or (25 if args.strategy in ("tpe", "random") else len(space.grid()))
    with progress_bar(total, f"tune {args.strategy}") as progress:
        result = tune(objective, strategy=args.strategy, budget=args.budget, storage=args.storage, study_name=args.study,
                      workers=args.workers, seed=args.seed, space=space, progress=progress,
                      halving_min_size=args.halving_min_size, halving_eta=args.halving_eta,
                      storage_patience=args.storage_patience)
    files = write_report(result, objective.name, args.steps, length, args.report) if args.report is not None else None
    payload = result.as_json()
    references = exact_references(objective) if args.optimum else None
    if references:
        payload["optimum"], payload["infocurve"] = references[0].as_json(), references[1].as_json()

    def human() -> str:
        b = result.best
        numbers = ",".join(f"{v:.4g}" for v in b.point(space.names))
        rows = [[f"best {space.family}:{numbers}", f"{b.value:.6g}"]]
        rows += [[name, f"{v.value:.6g}"] for name, v in result.baselines.items()]
        if references:
            opt, ic = references
            rows.append([f"information-curve DP {ic.counts}", f"{ic.kl:.6g}"])
            rows.append([f"optimum ({opt.method}) {opt.counts if opt.counts is not None else [round(x, 4) for x in opt.alpha]}",
                         f"{opt.kl:.6g}"])
        label = "KL (nats)" if args.objective == "exact" else "score"
        out = [f"{objective.name}, strategy {result.strategy}: {result.evaluations} evaluations in study "
               f"({result.new_evaluations} new)", format_table(["schedule", label], rows)]
        if files:
            out.append(f"report: {files['report']}")
        return "\n".join(out)

    emit(args.json, payload, human)
