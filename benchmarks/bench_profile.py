"""Speed of the information profile: profiling each task checkpoint, and the schedule's dynamic programme.

* wall time of ``estimate_profile`` with 256 completions (both orders) on each committed checkpoint,
  against the time of one evaluation of the linear schedule at N = L on the same number of prompts
  (the same model calls: profiling costs one such generation);
* wall time of the information-curve DP for L = 1,024 and N = 64 (median of 5).

    python benchmarks/bench_profile.py [--samples 256]

Writes benchmarks/results/profile_speed.md and profile_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    args = ap.parse_args()

    import torch

    from mdm_energy.exact import infocurve_counts
    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.profile import estimate_profile, profile_schedule
    from mdm_energy.sampling import FixedCountSampler
    from mdm_energy.tasks import get_task

    rows = []
    for name in args.tasks.split(","):
        ck = ROOT / "checkpoints" / name
        if not (ck / "model.safetensors").exists():
            continue
        task, model = get_task(name), load_model(ck)
        den = as_denoiser(model)
        prompts = task.prompts(task.examples("valid", args.samples, seed=0))
        L = task.gen_len
        t0 = time.perf_counter()
        FixedCountSampler("linear", L)(den, prompts[:128], L) if args.samples >= 128 else None
        gen = (time.perf_counter() - t0) * args.samples / 128
        for order in ("random", "confidence"):
            t0 = time.perf_counter()
            prof = estimate_profile(den, prompts, L, samples=args.samples, order=order, seed=0)
            sec = time.perf_counter() - t0
            sched = profile_schedule(prof, max(2, L // 4))
            rows.append({"task": name, "L": L, "order": order, "samples": args.samples, "seconds": sec,
                         "generation_seconds": gen, "ratio": sec / gen, "steps": sched.steps, "counts": sched.counts,
                         "beta": sched.beta})
            print(f"{name} {order}: {sec:.1f} s ({sec / gen:.2f}x one generation)", file=sys.stderr, flush=True)
    Z = np.sort(np.random.default_rng(0).random(1024)).cumsum() / 1024
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        infocurve_counts(Z, 64)
        times.append(time.perf_counter() - t0)
    dp = statistics.median(times)
    meta = {"threads": torch.get_num_threads(), "command": " ".join(["python benchmarks/bench_profile.py", *sys.argv[1:]])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "profile_speed.json").write_text(json.dumps({"meta": meta, "profiles": rows, "dp_seconds": dp}, indent=1) + "\n")
    lines = ["# Information profile: speed", "", f"Regenerate: `{meta['command']}` ({meta['threads']} torch threads).", "",
             "| task | L | order | completions | seconds | vs one generation at N = L | N = L/4 schedule |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['L']} | {r['order']} | {r['samples']} | {r['seconds']:.1f} | {r['ratio']:.2f}x | "
                     f"{r['counts']} (nearest {r['beta']}) |")
    lines += ["", f"Information-curve DP, L = 1,024, N = 64: {dp:.3f} s (median of 5).", ""]
    (RESULTS / "profile_speed.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
