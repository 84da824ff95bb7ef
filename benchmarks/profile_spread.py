"""How much the profile schedule's quality depends on the validation prompts and seed it was estimated from.

benchmarks/real_tasks.py derives each task's profile schedule from one confidence-order profile (256 rows of
validation prompts, seed 3) and finds it below linear at a few step counts (sudoku at N = 18, pycode at 24). Is
that a property of the method at that N, or of the one profile it was measured with? For each task here:

* ``--draws`` independent profiles (:func:`real_tasks.task_profile`; draw 0 is real_tasks.py's own, seed 3; draw
  k > 0 draws its validation prompts and the profile's rows with seed ``3 + 1000 k``), each with the default
  statistic, the confidence order and real_tasks' 256 rows;
* each draw's schedule at every step count of real_tasks' grid, scored on real_tasks.py's paired test items
  (:class:`real_tasks.TestItems`: the same items and per-item seeds, low_confidence remasking) beside linear:
  the paired difference ± its standard error, and over the draws their mean and standard deviation.

A draw-0 schedule that differs from the one real_tasks.json recorded stops the script (the two would not be
the same experiment). Per-item scores go to this script's own benchmarks/results/profile_spread_items.npz; a
cell real_tasks.py already computed (same items, seeds, weights and schedule) is read from its cache, never
written.

    python benchmarks/profile_spread.py [--tasks sudoku,pycode] [--draws 4]

Writes benchmarks/results/profile_spread.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_tasks  # noqa: E402  (the paired test items, the step grid, the cache)
from schedule_baselines import Cells  # noqa: E402  (an own cache file beside real_tasks' read-only one)

RESULTS = real_tasks.RESULTS
ROWS = 256  # real_tasks.py's rows per profile


def draw_seed(k: int) -> int:
    """The validation-prompt and sampling seed of draw ``k`` (draw 0: real_tasks.py's)."""
    return real_tasks.PROFILE_SEED + 1000 * k


def run_task(name: str, args, cells: Cells) -> dict:
    """One task's ``args.draws`` profiles and their schedules' paired differences to linear (module docstring)."""
    from mdm_energy.profile import profile_schedule

    items = real_tasks.TestItems.load(name)
    steps = real_tasks.CONFIG[name]["steps"]
    L, t0 = items.task.gen_len, time.time()
    recorded = json.loads((RESULTS / "real_tasks.json").read_text())["tasks"].get(name)
    if recorded is None:
        raise SystemExit(f"{name}: real_tasks.json has no table for it; run benchmarks/real_tasks.py --tasks {name} first")
    # a table from before real_tasks.json recorded its weights is checked by draw 0's schedules below instead
    if recorded.get("checkpoint", items.digest) != items.digest:
        raise SystemExit(f"{name}: real_tasks.json was measured on other weights; rerun benchmarks/real_tasks.py "
                         f"--tasks {name} first")
    key = lambda spec, n: f"{items.tag}|fixed|{spec}|{n}"  # noqa: E731  (real_tasks' cell key: shared reads)
    linear = {n: cells.get(key("linear", n), items.fixed("linear", n), key("linear", n)) for n in steps}
    out = {"metric": recorded["metric"], "steps": steps, "L": L, "n": len(items.test), "checkpoint": items.digest,
           "linear": {str(n): float(linear[n].mean()) for n in steps}, "draws": []}
    for k in range(args.draws):
        tp = time.time()
        seed = draw_seed(k)
        prof = real_tasks.task_profile(items, "confidence", samples=ROWS, seed=seed)
        seconds = time.time() - tp
        draw = {"seed": seed, "profile_seconds": round(seconds, 1), "row_calls": ROWS * L, "cells": {}}
        for n in steps:
            spec = profile_schedule(prof, n).table
            if k == 0 and spec != recorded["profile"]["confidence"]["specs"][str(n)]:
                raise SystemExit(f"{name} N={n}: draw 0 is not real_tasks.py's profile schedule ({spec} vs "
                                 f"{recorded['profile']['confidence']['specs'][str(n)]})")
            s = cells.get(key(spec, n), items.fixed(spec, n), key(spec, n))
            diff, se = real_tasks._paired(s, linear[n])
            draw["cells"][str(n)] = {"spec": spec, "counts": _counts(spec, L, n), "value": float(s.mean()),
                                     "diff": diff, "diff_se": se}
        out["draws"].append(draw)
        print(f"  {name} draw {k} (seed {seed}, profiled in {seconds:.0f} s): "
              + " ".join(f"N={n} {draw['cells'][str(n)]['diff']:+.3f}" for n in steps), file=sys.stderr, flush=True)
    out["summary"] = {}
    for n in steps:
        diffs = np.array([dr["cells"][str(n)]["diff"] for dr in out["draws"]])
        out["summary"][str(n)] = {"mean_diff": float(diffs.mean()),
                                  "sd_diff": float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0,
                                  "at_least_linear": int((diffs >= 0).sum())}
    out["seconds"] = time.time() - t0
    return out


def _counts(spec: str, L: int, steps: int) -> list[int]:
    """A schedule's tokens per step on a window of ``L`` in ``steps`` calls, as the samplers count them."""
    from mdm_energy.schedules import parse_schedule

    return [int(c) for c in parse_schedule(spec).counts(L, steps)]


def _markdown(res: dict, meta: dict) -> str:
    out = ["# How much the profile schedule depends on the profile it was estimated from", "",
           f"Regenerate: `{meta['command']}` ({meta['minutes']:.1f} min on {meta['threads']} threads). Each task: "
           f"{meta['draws']} confidence-order profiles ({ROWS} rows, the default statistic) from independent "
           "validation prompts and seeds (draw 0 = benchmarks/real_tasks.py's), each draw's schedule scored on "
           "real_tasks' paired test items. Cells: paired difference to linear ± s.e.; `mean ± sd`: over the draws; "
           "`≥ linear`: draws at or above linear.", ""]
    for name, r in res.items():
        out += [f"## {name} ({r['metric']}, L = {r['L']}, {r['n']} test items)", "",
                "| N | linear | " + " | ".join(f"draw {k}" for k in range(len(r["draws"]))) + " | mean ± sd | ≥ linear |",
                "|---|---|" + "---|" * len(r["draws"]) + "---|---|"]
        for n in r["steps"]:
            c = [dr["cells"][str(n)] for dr in r["draws"]]
            s = r["summary"][str(n)]
            sd = f" ± {s['sd_diff']:.3f}" if len(c) > 1 else ""
            out.append(f"| {n} | {r['linear'][str(n)]:.3f} | " + " | ".join(f"{x['diff']:+.3f} ± {x['diff_se']:.3f}"
                                                                         for x in c)
                       + f" | {s['mean_diff']:+.3f}{sd} | {s['at_least_linear']}/{len(c)} |")
        out += ["", "Tokens per step of each draw's schedule at the step counts where a draw fell below linear by more "
                "than two standard errors:", ""]
        low = [n for n in r["steps"] if any(dr["cells"][str(n)]["diff"] < -2 * dr["cells"][str(n)]["diff_se"]
                                            for dr in r["draws"])]
        for n in low:
            for k, dr in enumerate(r["draws"]):
                c = dr["cells"][str(n)]
                out.append(f"- N = {n}, draw {k} ({c['diff']:+.3f}): {c['counts']}")
        if not low:
            out.append("- none")
        out += ["", f"Model calls per draw's profile: {r['draws'][0]['row_calls']:,} row-calls "
                f"({ROWS} rows × {r['L']} positions).", ""]
    return "\n".join(out) + "\n"


def _plot(res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res), figsize=(5 * len(res), 3.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], res.items()):
        for k, dr in enumerate(r["draws"]):
            y = [dr["cells"][str(n)]["diff"] for n in r["steps"]]
            e = [2 * dr["cells"][str(n)]["diff_se"] for n in r["steps"]]
            ax.errorbar(np.asarray(r["steps"]) * (1 + 0.02 * (k - (len(r["draws"]) - 1) / 2)), y, yerr=e, fmt="o-",
                        ms=3, lw=1, capsize=2, label=f"draw {k}" + (" (real_tasks')" if k == 0 else ""))
        ax.axhline(0, color="k", lw=0.8)
        real_tasks.style_axis(ax, {**r, "metric": f"{r['metric']}: profile − linear"}, name)
    fig.tight_layout()
    fig.savefig(RESULTS / "profile_spread.png", dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="sudoku,pycode", help="comma-separated (default: the two where real_tasks' "
                    "profile fell below linear somewhere)")
    ap.add_argument("--draws", type=int, default=4, help="profiles per task, draw 0 being real_tasks.py's (default 4)")
    args = ap.parse_args()
    if args.draws < 1:
        ap.error(f"--draws must be at least 1, got {args.draws}")
    unknown = [t for t in args.tasks.split(",") if t and t not in real_tasks.CONFIG]
    if unknown:
        ap.error(f"unknown task {unknown[0]!r} (choose from {', '.join(real_tasks.CONFIG)})")
    import torch

    t0 = time.time()
    cells = Cells(RESULTS / "profile_spread_items.npz", shared=real_tasks._cache())
    res = real_tasks.run_tasks(args.tasks, run_task, args, cells)
    meta = {"command": " ".join(["python benchmarks/profile_spread.py", *sys.argv[1:]]), "draws": args.draws,
            "minutes": (time.time() - t0) / 60, "threads": torch.get_num_threads()}
    if not res:
        raise SystemExit("no task with a checkpoint: nothing measured")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile_spread.json").write_text(json.dumps({"meta": meta, "tasks": res}, indent=1) + "\n")
    _plot(res)
    (RESULTS / "profile_spread.md").write_text(_markdown(res, meta))
    print((RESULTS / "profile_spread.md").read_text())


if __name__ == "__main__":
    main()
