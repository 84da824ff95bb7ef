"""Model sizes of one task compared on validation loss: at equal training steps and at equal minutes.

The runs are one ``train_task_models.py`` sweep over sizes (``--configs``), each from scratch with its cosine
horizon set for the same minutes, on the same pools and the same fixed-mask validation set, one after the
other on the same machine (a baseline measured in the same run):

    python benchmarks/train_task_models.py --work W --cache C --tasks countdown --export COPY \\
        --configs 128:4:1e-3:128,192:6:1e-3:128 --sweep-minutes 25 --final-minutes 25
    python benchmarks/model_sizes.py --work W --task countdown

(``--export`` a copy of ``checkpoints/``: a sweep replaces the committed weights where it beats them.) For each
run it reads ``W/<task>/<run>/trainer.json`` and reports, against the baseline (the first configuration):

* at equal steps ``s*`` (the last step count at which every run validated): the best validation loss up to
  ``s*`` — the sample efficiency, what a faster machine buys (the slower run's schedule is the further annealed
  at ``s*``, which favours it; at equal batches both saw the same examples);
* at equal minutes ``m*`` (the shortest run): the best validation loss up to ``m*`` — what this machine buys;
* steps per second, parameters and the best loss of the whole run.

Writes ``benchmarks/results/model_sizes_<task>.{md,json,png}`` (the plot: validation loss against steps and
against minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class SizeRun:
    """One configuration of the sweep: its size, speed, and validation losses at the matched budgets."""

    name: str
    parameters: int
    steps: int
    minutes: float
    steps_per_second: float
    best_valid: float
    at_steps: float  # best validation loss up to the matched step count
    at_minutes: float  # best validation loss up to the matched minutes
    valid_log: list[list[float]]  # [step, seconds, loss] as the trainer logged it


def best_up_to(valid_log: list[list[float]], column: int, limit: float) -> float:
    """The lowest validation loss logged at or before ``limit`` (steps: column 0, seconds: column 1)."""
    losses = [row[2] for row in valid_log if row[column] <= limit + 1e-9]
    if not losses:
        raise SystemExit(f"no validation before {limit:g} ({'steps' if column == 0 else 'seconds'}): "
                         "validate more often (--valid-every) or train longer")
    return min(losses)


def read_record(work: Path, task: str) -> dict:
    """The sweep's ``record.json`` in ``work/<task>`` (its runs, commands and load average)."""
    record_file = work / task / "record.json"
    if not record_file.is_file():
        raise SystemExit(f"{record_file} not found: run the sweep first (this script's docstring has the command)")
    return json.loads(record_file.read_text())


def compare(work: Path, task: str, record: dict) -> tuple[list[SizeRun], int, float]:
    """The sweep's runs in ``work/<task>`` (order of the record's configurations) at the matched budgets."""
    record_file = work / task / "record.json"
    metas = {name: json.loads((work / task / name / "trainer.json").read_text()) for name in record["runs"]}
    if len(metas) < 2:
        raise SystemExit(f"{record_file} holds one configuration: a comparison needs two or more (--configs)")
    common = set.intersection(*({int(row[0]) for row in m["valid_log"]} for m in metas.values()))
    if not common:
        raise SystemExit(f"the runs in {work / task} never validated at the same step count: give them one "
                         "--valid-every")
    steps = max(common)
    seconds = min(float(m["elapsed"]) for m in metas.values())
    runs = [SizeRun(name=name, parameters=int(record["runs"][name]["parameters"]), steps=int(m["step"]),
                    minutes=float(m["elapsed"]) / 60, steps_per_second=float(m["step"]) / float(m["elapsed"]),
                    best_valid=float(m["best_valid"]), at_steps=best_up_to(m["valid_log"], 0, steps),
                    at_minutes=best_up_to(m["valid_log"], 1, seconds), valid_log=m["valid_log"])
            for name, m in metas.items()]
    return runs, steps, seconds / 60


def markdown(task: str, runs: list[SizeRun], steps: int, minutes: float, record: dict) -> str:
    base = runs[0]
    lines = [f"# Model sizes on {task}: validation loss at equal steps and at equal minutes", "",
             f"`python benchmarks/model_sizes.py --task {task}` over the sweep's runs (each from scratch, its cosine "
             "horizon set for its minutes; the same pools and fixed-mask validation set; one after the other on this "
             f"machine, {record['date']}; the 1-minute load average while they trained: mean "
             f"{record['load']['mean']:.2f}, max {record['load']['max']:.2f}, about 2 meaning the training alone). "
             f"Ratios are to the baseline **{base.name}**, measured in the same sweep. The sweep's commands:", "",
             *[f"    {c}" for c in record["commands"]], "",
             f"| run | parameters | steps/s | best loss up to step {steps:,} (ratio) | best loss up to minute "
             f"{minutes:.1f} (ratio) | steps | best loss of the run |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.name} | {r.parameters:,} | {r.steps_per_second:.2f} | {r.at_steps:.4f} "
                     f"({r.at_steps / base.at_steps:.3f}) | {r.at_minutes:.4f} ({r.at_minutes / base.at_minutes:.3f}) | "
                     f"{r.steps:,} | {r.best_valid:.4f} |")
    lines += ["", "At equal steps the slower run's schedule is the further annealed, which favours it; at equal minutes "
              "both schedules have ended. Equal steps is what a faster machine (a GPU) buys, equal minutes what "
              "this one does.", "", f"![validation loss against steps and minutes](model_sizes_{task}.png)", ""]
    return "\n".join(lines)


def plot(task: str, runs: list[SizeRun], steps: int, minutes: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for r in runs:
        label = f"{r.name} ({r.parameters / 1e6:.2f}M)"
        axes[0].plot([row[0] for row in r.valid_log], [row[2] for row in r.valid_log], "o-", ms=2.5, label=label)
        axes[1].plot([row[1] / 60 for row in r.valid_log], [row[2] for row in r.valid_log], "o-", ms=2.5, label=label)
    axes[0].axvline(steps, color="grey", ls="--", lw=0.8)
    axes[1].axvline(minutes, color="grey", ls="--", lw=0.8)
    axes[0].set(xlabel="training steps", ylabel="validation loss (fixed masks)", yscale="log",
                title=f"{task}: equal steps (dashed: {steps:,})")
    axes[1].set(xlabel="minutes on this machine", title=f"equal minutes (dashed: {minutes:.1f})")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="the train_task_models.py --work folder of the sweep")
    ap.add_argument("--task", required=True)
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the table, JSON and plot")
    args = ap.parse_args()
    record = read_record(args.work, args.task)
    runs, steps, minutes = compare(args.work, args.task, record)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"model_sizes_{args.task}"
    text = markdown(args.task, runs, steps, minutes, record)
    data = {"task": args.task, "date": record["date"], "matched_steps": steps, "matched_minutes": minutes,
            "baseline": runs[0].name, "sweep_commands": record["commands"],
            "load": {k: record["load"][k] for k in ("mean", "max")}, "runs": [asdict(r) for r in runs]}
    plot(args.task, runs, steps, minutes, stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text, file=sys.stdout)


if __name__ == "__main__":
    main()
