"""Key/value caches of block-wise decoding: wall time per generated token, and quality on the task checkpoints.

Speed (one process, same model and prompts, ratios against the uncached run of the same process): a
randomly initialised 4-layer transformer of ours (d_model 256, 4 heads, d_ff 1024, vocabulary 1024) at
the shape of a real evaluation — prompt 512, generation 256, block 32 — with the fixed-count sampler
(low_confidence, linear schedule, ``--steps`` calls), uncached vs ``cache=prefix`` vs ``cache=dual``
(refreshed at each block start). Each mode is timed ``--repeats`` times; the median counts.

Quality: on each committed checkpoint (``checkpoints/<task>/``), the same test items answered uncached, with
the prefix cache and with the dual cache (three blocks) at N = L/4 and L/2 (rounded to a multiple of the
block count); the paired difference of the task metric against uncached, with its standard error, and
the share of generated tokens that differ.

    python benchmarks/bench_cache.py [--repeats 3] [--steps 64] [--limit 300] [--tasks countdown,sudoku,pycode]

Writes benchmarks/results/cache.md, cache.json and cache.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODES = ("none", "prefix", "dual")


def speed(repeats: int, steps: int, batch: int) -> list[dict]:
    import torch

    from mdm_energy.models import MDMConfig, MDMTransformer, as_denoiser
    from mdm_energy.sampling import make_sampler

    torch.manual_seed(0)
    P, L, block = 512, 256, 32
    model = MDMTransformer(MDMConfig(vocab_size=1024, mask_id=1023, eos_id=1, pad_id=0, max_len=P + L, d_model=256,
                                     n_layers=4, n_heads=4, d_ff=1024)).eval()
    den = as_denoiser(model)
    prompts = torch.randint(2, 1000, (batch, P))
    rows = []
    for mode in MODES:
        sampler = make_sampler("fixed", steps=steps, block_length=block, cache=mode)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sampler(den, prompts, L)
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        rows.append({"mode": mode, "seconds": sec, "ms_per_token": 1000 * sec / (L * batch), "runs": times})
        print(f"speed {mode}: {sec:.2f} s per run ({rows[-1]['ms_per_token']:.2f} ms per token)", file=sys.stderr,
              flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["speedup"] = base / r["seconds"]
    return rows


def _rounded(n: int, blocks: int) -> int:
    return max(blocks, blocks * round(n / blocks))


def quality(limit: int, tasks: list[str]) -> list[dict]:
    import numpy as np
    import torch

    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.sampling import make_sampler
    from mdm_energy.tasks import get_task

    rows = []
    for name in tasks:
        task, model = get_task(name), load_model(ROOT / "checkpoints" / name)
        den = as_denoiser(model)
        examples = task.examples("test", limit, seed=0)
        prompts = task.prompts(examples)
        L, blocks = task.gen_len, 3
        for steps in sorted({_rounded(L // 4, blocks), _rounded(L // 2, blocks)}):
            runs = {}
            for mode in MODES:
                sampler = make_sampler("fixed", steps=steps, block_length=L // blocks, cache=mode)
                t0 = time.perf_counter()
                out = sampler(den, prompts, L, generator=torch.Generator().manual_seed(0))
                texts = [task.vocab.decode(r.tolist()) for r in out.generated]
                runs[mode] = {"seconds": time.perf_counter() - t0, "tokens": out.generated,
                              "scores": np.array([task.score(e, t) for e, t in zip(examples, texts)], dtype=float)}
            for mode in MODES:
                d = runs[mode]["scores"] - runs["none"]["scores"]
                rows.append({
                    "task": name, "L": L, "steps": steps, "block_length": L // blocks, "mode": mode, "n": len(d),
                    "metric": float(runs[mode]["scores"].mean()),
                    "diff": float(d.mean()), "diff_se": float(d.std(ddof=1) / math.sqrt(len(d))),
                    "tokens_changed": float((runs[mode]["tokens"] != runs["none"]["tokens"]).float().mean()),
                    "seconds": runs[mode]["seconds"], "time_ratio": runs["none"]["seconds"] / runs[mode]["seconds"],
                })
                r = rows[-1]
                print(f"quality {name} N={steps} {mode}: {r['metric']:.3f} (diff {r['diff']:+.3f} ± {r['diff_se']:.3f}), "
                      f"{r['tokens_changed']:.1%} tokens changed, {r['time_ratio']:.2f}x", file=sys.stderr, flush=True)
    return rows


def plot(speed_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r["mode"] for r in speed_rows], [r["ms_per_token"] for r in speed_rows], color=["#888", "#4a8", "#27c"])
    for i, r in enumerate(speed_rows):
        ax.text(i, r["ms_per_token"], f"{r['speedup']:.1f}x", ha="center", va="bottom")
    ax.set_ylabel("ms per generated token")
    ax.set_title("prompt 512, generation 256, block 32")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=64, help="model calls of the speed run (default 64)")
    ap.add_argument("--batch", type=int, default=1, help="prompts per batch in the speed run (default 1)")
    ap.add_argument("--limit", type=int, default=300, help="test items per task in the quality run")
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    args = ap.parse_args()

    import torch

    t0 = time.time()
    speed_rows = speed(args.repeats, args.steps, args.batch)
    quality_rows = quality(args.limit, [t for t in args.tasks.split(",") if t])
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"threads": torch.get_num_threads(), "cpus": os.cpu_count(), "wall_seconds": time.time() - t0,
            "command": " ".join(["python benchmarks/bench_cache.py", *sys.argv[1:]])}
    (RESULTS / "cache.json").write_text(json.dumps({"meta": meta, "speed": speed_rows, "quality": quality_rows},
                                                   indent=1) + "\n")
    plot(speed_rows, RESULTS / "cache.png")
    lines = ["# Key/value caches of block-wise decoding", "",
             f"Regenerate: `{meta['command']}` ({meta['threads']} torch threads, {meta['wall_seconds'] / 60:.1f} min).", "",
             f"## Speed: prompt 512, generation 256, block 32, {args.steps} calls, batch {args.batch}", "",
             "A randomly initialised 4-layer transformer (d_model 256, d_ff 1024); median of "
             f"{args.repeats} runs; speed-up against the uncached run of the same process.", "",
             "| cache | s per run | ms per token | speed-up |", "|---|---|---|---|"]
    for r in speed_rows:
        lines.append(f"| {r['mode']} | {r['seconds']:.2f} | {r['ms_per_token']:.2f} | {r['speedup']:.2f}x |")
    lines += ["", "![wall time per token](cache.png)", "",
              "## Quality on the committed checkpoints (same test items, paired against uncached)", "",
              "Fixed-count sampler, low_confidence, linear schedule, three blocks; the cache is refreshed at each "
              "block start. `diff` is the mean paired difference of the metric against uncached ± its standard error.",
              "", "| task | L | N | cache | metric | diff ± s.e. | tokens changed | time ratio |",
              "|---|---|---|---|---|---|---|---|"]
    for r in quality_rows:
        lines.append(f"| {r['task']} | {r['L']} | {r['steps']} | {r['mode']} | {r['metric']:.3f} | "
                     f"{r['diff']:+.3f} ± {r['diff_se']:.3f} | {r['tokens_changed']:.1%} | {r['time_ratio']:.2f}x |")
    (RESULTS / "cache.md").write_text("\n".join(lines) + "\n")
    print((RESULTS / "cache.md").read_text())


if __name__ == "__main__":
    main()
