"""Sampler overhead: `mdm-energy bench-sampler` at B=16, L=256, V=32,000, N=64, T in {0, 1}.

Targets: overhead <= 10% of a model call at T=0 and <= 20% at T=1. Every figure is measured in the
same run as its baselines (the model call and a naive LLaDA-style step).

    python benchmarks/bench_sampler.py [--batch 16 --length 256 --vocab 32000 --steps 64]

Writes benchmarks/results/sampler.md and sampler.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mdm_energy.sampling.bench import bench_sampler

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for temperature, target in ((0.0, 0.10), (1.0, 0.20)):
        r = bench_sampler(args.batch, args.length, args.vocab, args.steps, temperature)
        r["target_overhead_vs_model"] = target
        rows.append(r)
        print(json.dumps(r), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sampler.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# Sampler overhead per step (B={args.batch}, L={args.length}, V={args.vocab}, N={args.steps}, low_confidence, "
        f"{rows[0]['threads']} CPU threads)",
        "",
        "| T | sampler ms/step | model ms/call | naive LLaDA-style ms/step | overhead / model | target | naive / model | speed-up vs naive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['temperature']:g} | {r['ms_per_step']:.1f} | {r['model_ms_per_call']:.1f} | {r['naive_ms_per_step']:.1f} | "
            f"{r['overhead_vs_model']:.2f} | <= {r['target_overhead_vs_model']:.2f} | {r['naive_vs_model']:.2f} | {r['speedup_vs_naive']:.1f}x |"
        )
    lines += ["", "Regenerate: `python benchmarks/bench_sampler.py` (or `mdm-energy bench-sampler -T 1 --json`)."]
    (RESULTS / "sampler.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
