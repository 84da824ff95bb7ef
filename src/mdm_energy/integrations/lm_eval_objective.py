"""Tune a schedule on an lm-eval benchmark: each trial runs the task through the ``mdm_energy`` model.

The paper's workflow: take a model and a benchmark, score Beta (a, b) schedules on random subsets of
50–150 problems, re-score the finalists on larger sets. :class:`LMEvalObjective` is that benchmark as an
:class:`~mdm_energy.tuning.ItemObjective` — an item is one document of the task's evaluation split, its
score the task's per-document metric (``exact_match``, ``acc``, …; a mean-aggregated metric). The tuner
keeps every item's score with the study, so successive halving's growing subsets, a finalist re-scored on
a larger set, or a trial redone after its worker died never generate an item twice.

The model is loaded once per process, on first use (the tuner evaluates the baselines first, so forked
workers inherit it). Local task folders (``include_path``: YAML + JSONL) work offline; relative
``data_files`` in a task's YAML are read from that folder. A task whose few-shot examples are drawn at
random draws them in the order the documents are served, so a document's context may differ between
subsets; its stored score is reused as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..registry import SAMPLERS, sampler_spec
from ..schedules import Schedule
from ..tuning.objectives import ItemObjective
from .lm_eval import MDMEnergyLM, parse_model_args

__all__ = ["LMEvalObjective"]

#: The few-shot seed lm-eval's ``simple_evaluate`` uses by default, set before every evaluation.
FEWSHOT_SEED = 1234


@contextlib.contextmanager
def _inside(folder: "str | None") -> Iterator[None]:
    """Run with ``folder`` as the working directory (relative ``data_files`` of local tasks resolve there)."""
    if folder is None:
        yield
        return
    here = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


class LMEvalObjective(ItemObjective):
    """The per-document metric of one lm-eval task under a schedule (its direction from the task config).

    ``model_args`` are the ``mdm_energy`` model's (a string as on lm-eval's command line, or a dict) without
    ``schedule`` — the tuner sets it per trial — and ``steps`` is the number of model calls. ``metric`` is
    ``NAME`` or ``NAME,FILTER`` as in lm-eval's results (default: the task's first metric under its first
    filter). ``limit`` keeps a ``seed``-ed random pool of that many documents. ``apply_chat_template``,
    ``fewshot_as_multiturn`` and ``confirm_run_unsafe_code`` (code tasks: humaneval, mbpp) are lm-eval's own
    switches of the same names. ``lm`` is an already built
    :class:`~mdm_energy.integrations.lm_eval.MDMEnergyLM` to use instead of loading one.
    """

    chunk = 32

    def __init__(self, model_args: "str | dict[str, Any]", task: str, *, steps: int, include_path: "str | None" = None,
                 metric: "str | None" = None, limit: "int | None" = None, seed: int = 0,
                 apply_chat_template: bool = False, fewshot_as_multiturn: bool = False,
                 confirm_run_unsafe_code: bool = False, lm: "MDMEnergyLM | None" = None) -> None:
        super().__init__()
        args = parse_model_args(model_args) if isinstance(model_args, str) else dict(model_args)
        if "schedule" in args:
            raise ValueError("model_args must not set schedule: the tuner sets it for each trial")
        sampler = args.get("sampler", "fixed")
        if isinstance(sampler, str) and sampler in SAMPLERS and not sampler_spec(sampler).scheduled:
            raise ValueError(f"the lm-eval objective tunes the schedule and the {sampler} sampler takes none "
                             f"(schedule-driven samplers: {', '.join(n for n in SAMPLERS if sampler_spec(n).scheduled)})")
        if "steps" in args and args["steps"] != steps:
            raise ValueError(f"model_args set steps={args['steps']!r} but the tuner was given steps {steps}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if include_path is not None and not Path(include_path).is_dir():
            raise ValueError(f"include path {include_path!r} is not a folder")
        self.model_args, self.steps, self.task_name = {**args, "steps": steps}, steps, task
        self.include_path = None if include_path is None else str(Path(include_path).resolve())
        self._lm = lm
        self.switches = {"apply_chat_template": bool(apply_chat_template),
                         "fewshot_as_multiturn": bool(fewshot_as_multiturn),
                         "confirm_run_unsafe_code": bool(confirm_run_unsafe_code)}
        self.task = self._load_task()
        if getattr(self.task, "UNSAFE_CODE", False) and not confirm_run_unsafe_code:
            raise ValueError(f"lm-eval task {task!r} runs generated code: confirm with confirm_run_unsafe_code "
                             "(--confirm-run-unsafe-code)")
        self.metric, self.filter, higher = self._metric(metric)
        self.direction = "maximize" if higher else "minimize"
        n = len(list(self.task.eval_docs))
        if n < 1:
            raise ValueError(f"lm-eval task {task!r} has no evaluation documents")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        self.pool = sorted(np.random.default_rng(seed).permutation(n)[:limit].tolist()) if limit else list(range(n))
        self.seed, self.limit = seed, limit

    # --- the task -------------------------------------------------------------------------------------
    def _load_task(self):
        from lm_eval.tasks import TaskManager, get_task_dict

        manager = None
        if self.include_path is not None:  # a local task: skip indexing lm-eval's thousands of built-in tasks
            manager = TaskManager(include_path=self.include_path, include_defaults=False)
        if manager is None or self.task_name not in manager.all_tasks:
            manager = TaskManager(include_path=self.include_path)
        if self.task_name not in manager.all_tasks:
            close = [t for t in manager.all_tasks if self.task_name.split("_")[0] in t][:5]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise ValueError(f"lm-eval does not know the task {self.task_name!r}{hint}")
        with _inside(self.include_path):
            tasks = get_task_dict([self.task_name], manager)
        if len(tasks) != 1 or not hasattr(next(iter(tasks.values())), "eval_docs"):
            raise ValueError(f"lm-eval task {self.task_name!r} is a group of tasks; tune on one task")
        task = next(iter(tasks.values()))
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        return task

    def _metric(self, metric: "str | None") -> tuple[str, str, bool]:
        from lm_eval.api.metrics import mean

        names = list(self.task.aggregation())
        filters = [f.name for f in getattr(self.task, "_filters", [])] or ["none"]
        name, _, filt = (metric or "").partition(",")
        name, filt = name or names[0], filt or filters[0]
        if name not in names:
            raise ValueError(f"task {self.task_name!r} has no metric {name!r} (it has: {', '.join(names)})")
        if filt not in filters:
            raise ValueError(f"task {self.task_name!r} has no filter {filt!r} (it has: {', '.join(filters)})")
        if self.task.aggregation()[name] is not mean:
            raise ValueError(f"metric {name!r} of {self.task_name!r} is not a mean over documents, so it has no "
                             "per-document score to tune on")
        return name, filt, bool(self.task.higher_is_better().get(name, True))

    @property
    def name(self) -> str:
        canon = json.dumps({"args": self.model_args, "include": self.include_path, "limit": self.limit,
                            "seed": self.seed, "chat": self.switches["apply_chat_template"],
                            "multiturn": self.switches["fewshot_as_multiturn"]}, sort_keys=True, default=str)
        model = Path(str(self.model_args.get("pretrained", "model"))).name
        digest = hashlib.sha256(canon.encode()).hexdigest()[:10]
        return f"lm-eval:{self.task_name}:{self.metric},{self.filter}:{model}:N{self.steps}:{digest}"

    @property
    def item_count(self) -> int:
        return len(self.pool)

    # --- scoring -------------------------------------------------------------------------------------
    def lm(self) -> MDMEnergyLM:
        """The model, loaded on first use (once per process)."""
        if self._lm is None:
            self._lm = MDMEnergyLM(**self.model_args)
        return self._lm

    def score_items(self, schedule: Schedule, ids: Sequence[int]) -> list[float]:
        from lm_eval.evaluator import evaluate

        lm = self.lm()
        lm.set_options(schedule=schedule, steps=self.steps)
        docs = [self.pool[i] for i in ids]
        self.task.set_fewshot_seed(seed=FEWSHOT_SEED)
        out = evaluate(lm=lm, task_dict={self.task_name: self.task}, samples={self.task_name: sorted(docs)},
                       log_samples=True, bootstrap_iters=0, **self.switches)
        if out is None:  # not rank 0 of a data-parallel launch
            raise ValueError("tune with the lm-eval objective in one process per worker, not under a data-parallel launch")
        by_doc = {int(s["doc_id"]): float(s[self.metric]) for s in out["samples"][self.task_name]
                  if s.get("filter") == self.filter}
        missing = [d for d in docs if d not in by_doc]
        if missing:
            raise ValueError(f"lm-eval returned no {self.metric} for documents {missing[:5]} of {self.task_name!r}")
        return [by_doc[d] for d in docs]
