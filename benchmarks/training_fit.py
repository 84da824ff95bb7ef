"""How far more CPU training can take a task checkpoint: a power law through its training stages' ends.

Each stage of ``benchmarks/train_task_models.py`` ends with its best weights committed; after ``K`` stages
(``checkpoints/<task>/train_summary.json`` holds the chain) the stage ends are ``K`` points
``(s_k, l_k)``: the cumulative optimiser steps when stage ``k`` ended and the validation loss of its committed
weights (half precision), read where the stage after it measured it (on the held-out set of the stage after,
so that each point is on the latest set that scored it). Through them this script fits

    l(s) = a + b * s^(-c),     a, b >= 0, c > 0

by least squares (:func:`scipy.optimize.curve_fit`; with three stage ends it interpolates them). ``a`` is the
loss that more steps of the same recipe approach and never pass; a target loss ``l* > a`` is reached at
``s* = (b / (l* - a))^(1/c)`` steps, never if ``l* <= a``. Three points make a rough fit — the script says so
when it has no more — but it turns "the curve was still falling" into a number of steps to compare with a
machine's speed. ``--by minutes`` fits against cumulative minutes of training instead (a machine's speed
changes between stages; steps do not).

    python benchmarks/training_fit.py [--tasks countdown,pycode] [--by steps|minutes] [--target countdown=0.186]

Writes benchmarks/results/training_fit.md, .json and .png (each stage's validation curve against cumulative
steps, the stage ends and the fitted law extended to the targets).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_task_models import stage_chain  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class StageEnd:
    """One stage's end: cumulative steps and minutes of training, and its committed weights' validation loss."""

    steps: int
    minutes: float
    loss: float


@dataclass(frozen=True)
class PowerLaw:
    """``loss(x) = a + b * x^(-c)`` over ``x`` (steps or minutes)."""

    a: float
    b: float
    c: float

    def __call__(self, x: float) -> float:
        return self.a + self.b * x ** (-self.c)

    def reaches(self, loss: float) -> float:
        """The ``x`` at which the law reaches ``loss``: ``(b / (loss - a))^(1/c)``; ``inf`` at or below the floor."""
        return (self.b / (loss - self.a)) ** (1.0 / self.c) if loss > self.a else math.inf


def stage_ends(record: dict) -> list[StageEnd]:
    """The stage ends of a checkpoint's ``train_summary.json`` record, oldest first (module docstring)."""
    chain = stage_chain(record)
    ends, steps, minutes = [], 0, 0.0
    for k, stage in enumerate(chain):
        steps += stage["final"]["steps"]
        minutes += stage["final"]["minutes"]
        nxt = chain[k + 1] if k + 1 < len(chain) else None
        if nxt is not None and "compared" in nxt:
            loss = nxt["compared"]["first stage"]  # the next stage's start, scored on the next stage's set
        elif "compared" in stage:
            loss = stage["compared"]["second stage"]
        else:
            loss = stage["final"]["best_valid"]
        ends.append(StageEnd(steps, minutes, float(loss)))
    return ends


def fit(x: "list[float]", loss: "list[float]") -> PowerLaw:
    """The least-squares power law through the points (module docstring); ``ValueError`` below three points."""
    import numpy as np
    from scipy.optimize import OptimizeWarning, curve_fit

    if len(x) < 3:
        raise ValueError(f"a power law a + b*x^(-c) needs at least three stage ends; this checkpoint has {len(x)}")
    xs, ys = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    scale = xs[0]  # fit over x / x_0, so b starts near the first loss's excess over the floor

    def law(u, a, b, c):
        return a + b * u ** (-c)

    a0 = max(0.0, ys.min() - (ys[0] - ys.min()) * 0.5)
    with warnings.catch_warnings():  # three points fix three parameters: no covariance to estimate, as expected
        warnings.simplefilter("ignore", OptimizeWarning)
        (a, b, c), _ = curve_fit(law, xs / scale, ys, p0=(a0, max(ys[0] - a0, 1e-6), 0.5),
                                 bounds=([0.0, 0.0, 1e-3], [ys.min(), np.inf, 10.0]), maxfev=100_000)
    return PowerLaw(float(a), float(b * scale ** c), float(c))


def analyse(task: str, by: str, targets: "list[float]") -> dict:
    record = json.loads((ROOT / "checkpoints" / task / "train_summary.json").read_text())
    ends = stage_ends(record)
    xs = [float(getattr(e, by)) for e in ends]
    out: dict = {"task": task, "by": by, "ends": [asdict(e) for e in ends]}
    try:
        law = fit(xs, [e.loss for e in ends])
    except ValueError as exc:
        out["error"] = str(exc)
        return out
    out["law"] = asdict(law)
    out["residuals"] = [e.loss - law(x) for e, x in zip(ends, xs)]
    reach = [law.reaches(t) for t in targets]  # None: never (JSON has no infinity)
    out["targets"] = [{"loss": t, by: None if math.isinf(x) else x, "more": None if math.isinf(x) else x - xs[-1]}
                      for t, x in zip(targets, reach)]
    return out


def _markdown(results: "list[dict]", command: str) -> str:
    lines = ["# How far more training goes: a power law through each checkpoint's stage ends", "",
             f"Regenerate: `{command}` (no model call). Each point: the cumulative training when a stage ended and "
             "its committed weights' validation loss on the next stage's held-out set (the last on its own). The fit "
             "is loss = a + b·x^(−c); a is the floor the same recipe approaches. With three stage ends the law "
             "interpolates them: a rough reading, not a forecast.", ""]
    for r in results:
        by = r["by"]
        lines += [f"## {r['task']}", "", "| stage | steps | minutes | validation loss |", "|---|---|---|---|"]
        lines += [f"| {k + 1} | {e['steps']:,} | {e['minutes']:.0f} | {e['loss']:.4f} |" for k, e in enumerate(r["ends"])]
        lines.append("")
        if "error" in r:
            lines += [r["error"], ""]
            continue
        law = r["law"]
        lines += [f"Fit against {by}: a = {law['a']:.4f}, b = {law['b']:.4g}, c = {law['c']:.3f} (largest residual "
                  f"{max(abs(x) for x in r['residuals']):.1e}).", ""]
        for t in r["targets"]:
            lines.append(f"- loss {t['loss']:.4f}: " + ("never (at or below the floor)" if t[by] is None else
                         f"at {t[by]:,.0f} {by}, {t['more']:,.0f} more than so far"))
        lines.append("")
    return "\n".join(lines)


def _plot(results: "list[dict]", path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for ax, r in zip(axes[0], results):
        by = r["by"]
        trainer = json.loads((ROOT / "checkpoints" / r["task"] / "trainer.json").read_text())
        offset, col, scale = 0.0, (0 if by == "steps" else 1), (1.0 if by == "steps" else 1 / 60)
        for k, meta in enumerate(stage_chain(trainer)):  # trainer logs nest their stages as records do
            ax.plot([offset + v[col] * scale for v in meta["valid_log"]], [v[2] for v in meta["valid_log"]], "-", lw=1,
                    alpha=0.7, label=f"stage {k + 1}: validation")
            offset += meta["step"] if by == "steps" else meta["elapsed"] / 60
        xs = [e[by] for e in r["ends"]]
        ax.plot(xs, [e["loss"] for e in r["ends"]], "ko", ms=5, label="stage ends (committed weights)")
        if "law" in r:
            law = PowerLaw(**r["law"])
            finite = [t[by] for t in r["targets"] if t[by] is not None]
            grid = np.geomspace(xs[0], max([xs[-1] * 3, *finite]), 200)
            ax.plot(grid, [law(x) for x in grid], "k--", lw=1, label=f"fit: floor {law.a:.3f}, c = {law.c:.2f}")
            ax.axhline(law.a, color="grey", lw=0.6, ls=":")
            for t in r["targets"]:
                ax.axhline(t["loss"], color="tab:red", lw=0.6, ls="-.")
        ax.set(xscale="log", xlabel=f"cumulative {by}", ylabel="validation loss", title=r["task"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _targets(spec: "list[str]", tasks: "list[str]") -> dict:
    out: dict = {t: [] for t in tasks}
    for item in spec:
        name, _, value = item.partition("=")
        if name not in out:
            raise SystemExit(f"--target {item!r}: {name!r} is not one of --tasks ({', '.join(tasks)})")
        try:
            out[name].append(float(value))
        except ValueError:
            raise SystemExit(f"--target {item!r}: {value!r} is not a loss") from None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="countdown,pycode")
    ap.add_argument("--by", choices=("steps", "minutes"), default="steps")
    ap.add_argument("--target", action="append", default=[], metavar="TASK=LOSS",
                    help="a validation loss to project the training to (repeatable)")
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    for t in tasks:
        if not (ROOT / "checkpoints" / t / "train_summary.json").is_file():
            ap.error(f"--tasks: {t!r} has no checkpoints/{t}/train_summary.json")
    targets = _targets(args.target, tasks)
    results = [analyse(t, args.by, targets[t]) for t in tasks]
    command = " ".join(["python benchmarks/training_fit.py", *sys.argv[1:]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training_fit.json").write_text(json.dumps({"command": command, "tasks": results}, indent=1) + "\n")
    (RESULTS / "training_fit.md").write_text(_markdown(results, command))
    _plot(results, RESULTS / "training_fit.png")
    print((RESULTS / "training_fit.md").read_text())


if __name__ == "__main__":
    main()
