"""Which statistic makes the information profile's schedule work where users run it: padded windows, the
confidence order, blocks (issue #27, items 1 and 4).

For each real task (countdown, countdown-long, sudoku, pycode; ``CONFIG`` of benchmarks/real_tasks.py gives
the test items and the step grid), in one process:

* one confidence-order profile of the model on validation prompts (no answers), every statistic of
  :data:`mdm_energy.profile.STATISTICS` from the same model calls (``mean``: today's, the mean entropy of a
  masked position; ``total``: the total remaining entropy; ``committed``: the entropy the sampler still
  commits; ``answer``: the mean over the answer span);
* each statistic's schedule at every step count of the grid, scored on the paired test items of
  real_tasks.py (:class:`TestItems`: the same items, the same per-item seeds, low_confidence remasking)
  beside linear: the paired difference ± its standard error;
* **blocks** (countdown-long, block_length 24: three blocks): the block profile on the sampler's own path
  through the blocks, one schedule per block (``blocks:`` spec) against one shared by all blocks (the
  mean curve's ``table:``), against linear, all with block_length 24.

Per-item scores are cached in benchmarks/results/profile_statistics_items.npz (its own file: never the
tracked real_tasks_items.npz), keyed by the weights' fingerprint.

    python benchmarks/profile_statistics.py [--tasks countdown,countdown-long,sudoku,pycode] [--quick]

Writes benchmarks/results/profile_statistics{,_quick}.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_tasks  # noqa: E402  (the paired test items, the step grid, the cache cell)

RESULTS = real_tasks.RESULTS
ITEMS = RESULTS / "profile_statistics_items.npz"
#: the block study: task and block length (must divide the window and every step count of its grid)
BLOCKS = {"countdown-long": 24}


def _profiles(items, samples: int, block_length=None):
    from mdm_energy.models import as_denoiser
    from mdm_energy.profile import STATISTICS, estimate_profiles

    task = items.task
    t0 = time.time()
    profs = estimate_profiles(as_denoiser(items.model), task.prompts(task.examples("valid", 256, seed=3)), task.gen_len,
                              samples=samples, order="confidence", statistics=STATISTICS, block_length=block_length,
                              seed=3)
    return profs, time.time() - t0


def _row(label, spec, n, s, ref):
    d = s - ref
    return {"schedule": label, "spec": spec, "steps": n, "value": float(s.mean()),
            "stderr": float(s.std(ddof=1) / math.sqrt(len(s))), "diff_linear": float(d.mean()),
            "diff_se": float(d.std(ddof=1) / math.sqrt(len(d)))}


def _blocked(items, spec: str, n: int, block_length: int):
    """A cell runner: the fixed-count sampler (low_confidence) with ``block_length``."""
    def run():
        from mdm_energy.sampling import FixedCountSampler
        from mdm_energy.tasks.evaluate import evaluate

        r = evaluate(items.task, items.model, items.test,
                     FixedCountSampler(spec, n, remasking="low_confidence", block_length=block_length),
                     item_seeds=items.seeds)
        return r.scores, [n] * len(items.test), None
    return run


def run_task(name: str, args, cache: dict) -> dict:
    from mdm_energy.profile import STATISTICS, profile_schedule

    cfg = real_tasks.CONFIG[name]
    items = real_tasks.TestItems.load(name, args.quick)
    samples = 64 if args.quick else 256
    t0 = time.time()
    profs, secs = _profiles(items, samples)
    print(f"{name}: profiled in {secs:.0f} s", file=sys.stderr, flush=True)
    steps = cfg["steps"]
    lin = {n: real_tasks._cell(cache, f"{items.tag}|fixed|linear|{n}", items.fixed("linear", n))[0] for n in steps}
    rows = [_row("linear", "linear", n, lin[n], lin[n]) for n in steps]
    specs: dict = {}
    for st in STATISTICS:
        specs[st] = {}
        for n in steps:
            sched = profile_schedule(profs[st], n)
            specs[st][n] = {"table": sched.table, "counts": sched.counts}
            s, _ = real_tasks._cell(cache, f"{items.tag}|fixed|{sched.table}|{n}", items.fixed(sched.table, n))
            rows.append(_row(st, sched.table, n, s, lin[n]))
        print(f"  {name} {st}: " + " ".join(f"{r['value']:.3f}" for r in rows if r["schedule"] == st), file=sys.stderr,
              flush=True)
    out = {"metric": items.task.metric, "L": items.task.gen_len, "n": len(items.test), "steps": steps,
           "samples": samples, "profile_seconds": secs, "rows": rows, "specs": specs,
           "profiles": {st: [v / math.log(2) for v in p.entropy] for st, p in profs.items()}}
    if name in BLOCKS:
        out["blocks"] = _block_study(items, args, cache, BLOCKS[name], samples)
    out["seconds"] = time.time() - t0
    return out


def _block_study(items, args, cache, block_length: int, samples: int) -> dict:
    from mdm_energy.profile import DEFAULT_STATISTIC, profile_schedule

    steps = [n for n in real_tasks.CONFIG[items.name]["steps"] if n % (items.task.gen_len // block_length) == 0]
    profs, secs = _profiles(items, samples, block_length)
    prof = profs[DEFAULT_STATISTIC]
    tag = f"{items.tag}|B={block_length}"
    lin = {n: real_tasks._cell(cache, f"{tag}|fixed|linear|{n}", _blocked(items, "linear", n, block_length))[0]
           for n in steps}
    rows = [_row("linear", "linear", n, lin[n], lin[n]) for n in steps]
    for mode in ("each", "shared"):
        for n in steps:
            sched = profile_schedule(prof, n, blocks=mode)
            s, _ = real_tasks._cell(cache, f"{tag}|fixed|{sched.table}|{n}", _blocked(items, sched.table, n, block_length))
            rows.append(_row(f"{DEFAULT_STATISTIC}, {mode}", sched.table, n, s, lin[n]))
    print(f"  {items.name} blocks of {block_length}: " + "; ".join(
        f"{r['schedule']} N={r['steps']} {r['value']:.3f}" for r in rows), file=sys.stderr, flush=True)
    return {"block_length": block_length, "steps": steps, "statistic": DEFAULT_STATISTIC, "profile_seconds": secs,
            "rows": rows}


def _table(rows: list, steps: list) -> list[str]:
    lines = ["| schedule | " + " | ".join(f"N={n}" for n in steps) + " | mean diff |", "|---|" + "---|" * (len(steps) + 1)]
    for label in dict.fromkeys(r["schedule"] for r in rows):
        cells, diffs = [], []
        for n in steps:
            r = next((r for r in rows if r["schedule"] == label and r["steps"] == n), None)
            if r is None:
                cells.append("")
                continue
            diffs.append(r["diff_linear"])
            cells.append(f"{r['value']:.3f}" + ("" if label == "linear" else f" ({r['diff_linear']:+.3f} ± {r['diff_se']:.3f})"))
        lines.append(f"| `{label}` | " + " | ".join(cells) + f" | {'' if label == 'linear' else f'{np.mean(diffs):+.3f}'} |")
    return lines


def _markdown(all_res: dict, meta: dict) -> str:
    lines = ["# Which statistic the information profile should be made of", "",
             f"Regenerate: `{meta['command']}` ({meta['minutes']:.0f} min on {meta['threads']} threads)"
             + (" — **quick mode: 40 test items, 64 profile samples; a smoke run, not the measurement**" if meta["quick"]
                else "") + ". Test split, paired items and seeds as benchmarks/real_tasks.py; low_confidence "
             "remasking; every profile in the confidence order (the default sampler's) from validation prompts "
             "only. Cells: value (paired difference to linear ± s.e.); `mean diff`: over the grid.", ""]
    stats = list(dict.fromkeys(r["schedule"] for res in all_res.values() for r in res["rows"] if r["schedule"] != "linear"))
    lines += ["Summary: each statistic's mean paired difference to linear over the step grid, per task, and the worst "
              "task (the default is the statistic whose worst task is best; ties to the sounder rationale, "
              "src/mdm_energy/profile.py):", "",
              "| statistic | " + " | ".join(all_res) + " | worst |", "|---|" + "---|" * (len(all_res) + 1)]
    for st in stats:
        per = [np.mean([r["diff_linear"] for r in res["rows"] if r["schedule"] == st]) for res in all_res.values()]
        lines.append(f"| `{st}` | " + " | ".join(f"{v:+.3f}" for v in per) + f" | {min(per):+.3f} |")
    lines.append("")
    for name, res in all_res.items():
        lines += [f"## {name} ({res['metric']}, L = {res['L']}, {res['n']} test items, profile of {res['samples']} "
                  f"completions in {res['profile_seconds']:.0f} s)", ""] + _table(res["rows"], res["steps"]) + [""]
        lines += ["Schedules (counts per step):", ""]
        for st, by_n in res["specs"].items():
            lines.append(f"- `{st}`: " + "; ".join(f"N={n} {v['counts']}" for n, v in by_n.items()))
        lines.append("")
        if "blocks" in res:
            b = res["blocks"]
            lines += [f"### {name} with block_length {b['block_length']} ({res['L'] // b['block_length']} blocks): one "
                      f"schedule per block against one shared ({b['statistic']} statistic)", ""] + \
                _table(b["rows"], b["steps"]) + [""]
    lines += ["![the statistics' schedules against linear](" + meta["png"] + ")", ""]
    return "\n".join(lines)


def _plot(all_res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_res), figsize=(4.8 * len(all_res), 4.0), squeeze=False)
    for ax, (name, res) in zip(axes[0], all_res.items()):
        for k, label in enumerate(dict.fromkeys(r["schedule"] for r in res["rows"])):
            pts = [r for r in res["rows"] if r["schedule"] == label]
            ax.errorbar([r["steps"] for r in pts], [r["value"] for r in pts], yerr=[r["stderr"] for r in pts],
                        fmt="-o" if label in ("linear", "total") else ":.", ms=3, capsize=2, label=label, color=f"C{k}")
        real_tasks.style_axis(ax, res, f"{name} (n={res['n']})", legend_size=7, minor_ticks=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="countdown,countdown-long,sudoku,pycode")
    ap.add_argument("--quick", action="store_true", help="40 test items and 64 profile samples per task (a smoke run)")
    ap.add_argument("--fresh", action="store_true", help="ignore the cache of per-item scores")
    ap.add_argument("--rewrite", action="store_true", help="only rebuild the table and plot from the saved .json")
    args = ap.parse_args()

    import torch

    stem = "profile_statistics" + ("_quick" if args.quick else "")
    if args.rewrite:
        saved = json.loads((RESULTS / f"{stem}.json").read_text())
        _plot(saved["tasks"], RESULTS / f"{stem}.png")
        (RESULTS / f"{stem}.md").write_text(_markdown(saved["tasks"], saved["meta"]))
        print((RESULTS / f"{stem}.md").read_text())
        return

    real_tasks.ITEMS = ITEMS  # the cell cache of this script, not real_tasks'
    cache = {} if args.fresh else real_tasks._cache()
    t0 = time.time()
    all_res = real_tasks.run_tasks(args.tasks, run_task, args, cache)
    meta = {"command": " ".join(["python benchmarks/profile_statistics.py", *sys.argv[1:]]), "quick": args.quick,
            "minutes": (time.time() - t0) / 60, "threads": torch.get_num_threads(), "png": f"{stem}.png"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "tasks": all_res}, indent=1, default=str) + "\n")
    _plot(all_res, RESULTS / f"{stem}.png")
    (RESULTS / f"{stem}.md").write_text(_markdown(all_res, meta))
    print((RESULTS / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
