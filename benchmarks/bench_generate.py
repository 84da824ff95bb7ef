"""Early stop at the end token: model calls and wall time with and without ``stop_at_eos``, same answers.

On each committed task checkpoint (``checkpoints/<task>/``), the fixed-count sampler (low_confidence,
linear schedule) answers the same test prompts at N in {L/8, L/4, L/2, L} steps, once without and once
with ``stop_at_eos``, in the same process. Reported per cell: mean NFE of each run, their ratio, the wall
time of each and their ratio, and whether every decoded answer is identical (it must be).

    python benchmarks/bench_generate.py [--limit 200] [--tasks countdown,sudoku,pycode]

Writes benchmarks/results/generate.md and generate.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    args = ap.parse_args()

    import torch

    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.sampling import FixedCountSampler
    from mdm_energy.tasks import get_task

    rows = []
    for name in args.tasks.split(","):
        task, model = get_task(name), load_model(ROOT / "checkpoints" / name)
        den = as_denoiser(model)
        examples = task.examples("test", args.limit, seed=0)
        prompts = task.prompts(examples)
        L = task.gen_len
        for steps in sorted({max(1, L // 8), max(1, L // 4), max(1, L // 2), L}):
            cell = {"task": name, "L": L, "steps": steps}
            answers = {}
            for stop in (False, True):
                sampler = FixedCountSampler("linear", steps, stop_at_eos=stop)
                t0 = time.perf_counter()
                out = sampler(den, prompts, L, generator=torch.Generator().manual_seed(0))
                cell[f"seconds_{stop}"] = time.perf_counter() - t0
                cell[f"nfe_{stop}"] = float(out.nfe.float().mean())
                answers[stop] = [task.vocab.decode(r.tolist()) for r in out.generated]
                if stop:
                    cell["stopped_share"] = float(out.stopped.float().mean())
            cell["identical"] = answers[False] == answers[True]
            cell["nfe_ratio"] = cell["nfe_True"] / cell["nfe_False"]
            cell["time_ratio"] = cell["seconds_True"] / cell["seconds_False"]
            rows.append(cell)
            print(f"{name} N={steps}: NFE {cell['nfe_False']:.1f} -> {cell['nfe_True']:.1f} ({cell['nfe_ratio']:.2f}x), "
                  f"time {cell['time_ratio']:.2f}x, identical {cell['identical']}", file=sys.stderr, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["# Early stop at the end token (`stop_at_eos`)", "",
             f"Fixed-count sampler, low_confidence, linear schedule, {args.limit} test prompts per task, one batch; "
             "both runs in the same process. Regenerate: `python benchmarks/bench_generate.py`.", "",
             "| task | L | N | NFE without | NFE with | NFE ratio | time ratio | rows stopped early | answers identical |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in rows:
        lines.append(f"| {c['task']} | {c['L']} | {c['steps']} | {c['nfe_False']:.1f} | {c['nfe_True']:.1f} | "
                     f"{c['nfe_ratio']:.2f} | {c['time_ratio']:.2f} | {c['stopped_share']:.0%} | {c['identical']} |")
    (RESULTS / "generate.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "generate.md").read_text())


if __name__ == "__main__":
    main()
