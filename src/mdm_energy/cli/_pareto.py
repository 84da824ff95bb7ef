"""``mdm-energy tune --pareto``: the quality / model-calls front of one sampler on a task checkpoint."""

from __future__ import annotations

import argparse

from ._common import CLIError, check_output_path, emit, format_table, progress_bar
from ._sampler_args import check_sampler_options, given_sampler_options

#: Options a Pareto run holds fixed when given (the search sets the schedule, steps and every option the registry
#: gives a search range — threshold, epsilon, factor, ReMDM's eta, DUS's dilation, KLASS's kl_*, Prophet's gap_*,
#: PC-Sampler's position_decay): the candidates' temperature and remasking rule, whether empty steps call the
#: model, the structure of a revising decoder (ReMDM's sigma rule, its switch and loop phases, ReMDM-LLaDA's loop),
#: Prophet's monitored answer region, PC-Sampler's clip and token prior, and DUS's first stride.
FIXED_OPTIONS = ("temperature", "remasking", "skip_empty_steps", "sigma", "revise_from", "loop_start", "loop_end",
                 "loop_alpha", "remask_count", "loop_steps", "answer_start", "answer_length", "calibration_clip",
                 "token_prior", "dilation_skip")


def _check(args: argparse.Namespace) -> None:
    from ..tuning.pareto import PARETO_STRATEGIES

    if args.strategy not in PARETO_STRATEGIES:
        raise CLIError(f"--pareto needs a strategy that searches two objectives at once ({', '.join(PARETO_STRATEGIES)}), "
                       f"not {args.strategy!r}")
    if args.objective != "task":
        raise CLIError("--pareto tunes a task checkpoint: give --objective task --task T --checkpoint DIR")
    if not args.task or not args.checkpoint:
        raise CLIError("--objective task needs --task and --checkpoint")
    wrong = [f for f, v in (("--optimum", args.optimum or None), ("--a-values", args.a_values),
                            ("--b-values", args.b_values), ("--values", args.values),
                            ("--model-args", args.model_args),
                            ("--eta", getattr(args, "eta", None)),
                            ("--dilation", getattr(args, "dilation", None))) if v is not None]  # what --pareto searches
    if wrong:
        raise CLIError(f"{wrong[0]} does not apply to --pareto")
    if args.steps_values and any(v != int(v) for v in args.steps_values):
        raise CLIError(f"--steps-values must be whole numbers, got {list(args.steps_values)}")
    if args.report is not None:
        check_output_path(args.report, "--report", folder=True)


def _preflight(sampler: str, given: dict, steps: "int | None", task, model, seed: int) -> None:
    """Run the sampler once, with the options held fixed (the searched ones at their defaults), on one item:
    a fixed option that no trial could run with — a dilation that does not fit the window, an answer region
    outside it, a token prior with an id outside the vocabulary — is refused in one line (``ValueError``)
    before the study is written to, not found as a study of failed trials."""
    from ..sampling import make_sampler
    from ..tasks.evaluate import evaluate, load_task_examples

    probe = make_sampler(sampler, **given, **({"steps": steps} if steps is not None else {}))
    evaluate(task, model, load_task_examples(task, "valid", 1, seed), probe)


def run_pareto(args: argparse.Namespace) -> None:
    from ..limits import check_workers
    from ..models import load_model
    from ..registry import sampler_spec
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import check_checkpoint, task_pareto_objective
    from ..tuning import check_storage
    from ..tuning.pareto import ParetoSpace, pareto_tune
    from ..tuning.reports import write_pareto_report
    from .tune_cmd import merged_numbers

    _check(args)
    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r} (known: {', '.join(sorted(TASKS))})")
    spec = sampler_spec(args.sampler)
    steps = tuple(int(v) for v in args.steps_values) if args.steps_values else ((args.steps,) if args.steps else ())
    if spec.needs_steps and not steps:
        raise CLIError(f"--pareto with the {args.sampler} sampler needs --steps or --steps-values")
    given = given_sampler_options(args, FIXED_OPTIONS)
    check_sampler_options(args.sampler, given)
    bounds, _ = merged_numbers(args)
    if not steps and spec.scheduled:  # a sampler whose default steps mean something by themselves (klass)
        steps = (int(spec.defaults["steps"]),)
    space = ParetoSpace(steps=steps or (8,), threshold_bounds=args.threshold_bounds, epsilon_bounds=args.epsilon_bounds,
                        factor_bounds=args.factor_bounds, family=args.family, bounds=bounds)
    check_workers(args.workers)
    check_storage(args.storage)
    task = get_task(args.task)
    model = load_model(args.checkpoint)
    check_checkpoint(task, model, args.checkpoint)
    _preflight(args.sampler, given, steps[0] if spec.scheduled else None, task, model, args.seed)
    objective = task_pareto_objective(task, model, n=args.limit or 200, seed=args.seed, **given)
    budget = args.budget or 40
    with progress_bar(budget, f"tune --pareto {args.strategy}") as progress:
        result = pareto_tune(objective, sampler=args.sampler, strategy=args.strategy, budget=budget,
                             storage=args.storage, study_name=args.study, workers=args.workers, seed=args.seed,
                             space=space, progress=progress, storage_patience=args.storage_patience)
    files = write_pareto_report(result, objective.name, args.report) if args.report is not None else None
    payload = result.as_json()

    def human() -> str:
        rows = [[f"{p.quality:.4f} ± {p.stderr:.4f}", f"{p.nfe:.2f}", p.command()] for p in result.front]
        base = [[f"{p.quality:.4f} ± {p.stderr:.4f}", f"{p.nfe:.2f}", p.label] for p in result.baselines]
        out = [f"{objective.name}, {args.sampler}, {result.strategy}: {result.evaluations} evaluations "
               f"({result.new_evaluations} new); the front:", format_table(["quality", "mean calls", "configuration"], rows),
               "baselines:", format_table(["quality", "mean calls", "baseline"], base)]
        if files:
            out.append(f"report: {files['report']}")
        return "\n".join(out)

    emit(args.json, payload, human)
