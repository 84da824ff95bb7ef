"""Token-for-token record of every built-in sampler on the committed checkpoints, to compare code versions.

Runs each built-in sampler over a set of configurations (defaults, blocks, temperature with per-row seeds,
end-token controls and early stop, key/value caches, guidance, every remasking rule and Dream algorithm,
zero-count steps) on 8 test prompts of each committed task checkpoint, and writes one line per run: the
SHA-256 of its tokens, per-row model calls, batched calls, trajectory and stopped rows, beside the mean
model calls (so a difference says where it is).

    python scripts/sampler_golden.py --out before.json           # on one version of the code
    python scripts/sampler_golden.py --compare before.json       # on another: every run must match

``benchmarks/results/sampler_golden.json`` is the record of the samplers before they moved into one decoding
loop (commit c839ef9); ``--compare`` it after any change that must keep every output token for token.
About 6 minutes on 2 cores.

Exit status 0 when every run matches (or when only writing), 1 when any differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("countdown", "sudoku", "pycode")

# (sampler, options); each is run on every task (block lengths are fractions of the task window)
COMMON = [{}, {"block": 2}, {"temperature": 1.0}, {"stop_at_eos": True}, {"logits_eos_inf": True},
          {"confidence_eos_eot_inf": True, "stop_at_eos": True}, {"block": 2, "cache": "dual"},
          {"block": 2, "cache": "prefix", "cache_refresh": 2}, {"cfg_scale": 0.5}, {"suppress_tokens": (5, 6)}]
SCHEDULED = [{"steps": 8}, {"steps": 8, "schedule": "beta:0.9,0.3"}, {"steps": 6, "schedule": "table:0,0,0.5,0.5,1"},
             {"steps": 8, "block": 2, "schedule": "sin2"}]
RUNS: list[tuple[str, dict]] = []
for name in ("fixed", "ancestral", "euler", "threshold", "entropy-bounded", "factor", "dream", "threshold-floor",
             "threshold-cap"):
    scheduled = name in ("fixed", "ancestral", "euler", "dream", "threshold-floor", "threshold-cap")
    ranked = name not in ("ancestral", "euler")
    for opts in COMMON + (SCHEDULED if scheduled else []):
        if "confidence_eos_eot_inf" in opts and not ranked:
            continue
        o = dict(opts)
        if scheduled and "steps" not in o:
            o["steps"] = 8
        RUNS.append((name, o))
for rule in ("random", "margin", "entropy"):
    RUNS += [("fixed", {"steps": 8, "remasking": rule}), ("fixed", {"steps": 8, "remasking": rule, "temperature": 1.0})]
RUNS += [("fixed", {"steps": 6, "schedule": "table:0,0,0.5,0.5,1", "skip_empty_steps": True})]
for alg in ("maskgit_plus", "topk_margin", "entropy"):
    RUNS += [("dream", {"steps": 8, "alg": alg}), ("dream", {"steps": 8, "alg": alg, "temperature": 0.7, "top_p": 0.9}),
             ("dream", {"steps": 8, "alg": alg, "alg_temp": 0.5, "temperature": 1.0, "top_k": 5})]
RUNS += [("threshold", {"threshold": 0.5}), ("entropy-bounded", {"epsilon": 1.0}), ("factor", {"factor": 2.0}),
         ("threshold-floor", {"steps": 8, "threshold": 0.6}), ("threshold-cap", {"steps": 8, "threshold": 0.6})]


def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(b"|" if t is None else t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_all() -> dict[str, dict]:
    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.sampling import make_sampler
    from mdm_energy.tasks import get_task

    out: dict[str, dict] = {}
    for task_name in TASKS:
        task = get_task(task_name)
        model = load_model(ROOT / "checkpoints" / task_name)
        den = as_denoiser(model)
        prompts = task.prompts(task.examples("test", 8, seed=3))
        for name, opts in RUNS:
            o = dict(opts)
            if "block" in o:  # the smallest number of blocks (> 1) that divides the window
                o.pop("block")
                blocks = next(k for k in range(2, task.gen_len + 1) if task.gen_len % k == 0)
                o["block_length"] = task.gen_len // blocks
                if "steps" in o:
                    o["steps"] = -(-o["steps"] // blocks) * blocks
            key = f"{task_name} {name} {json.dumps(opts, sort_keys=True)}"
            sampler = make_sampler(name, **o)
            res = sampler(den, prompts, task.gen_len, seeds=list(range(100, 108)), return_trajectory=True)
            out[key] = {"digest": _digest(res.tokens, res.nfe, torch.tensor([res.calls]), res.trajectory, res.stopped),
                        "nfe": float(res.nfe.double().mean())}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", help="write the record to this JSON file")
    g.add_argument("--compare", help="compare this run with a record written by --out")
    args = p.parse_args()
    now = run_all()
    if args.out:
        Path(args.out).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{len(now)} runs recorded in {args.out}")
        return 0
    before = json.loads(Path(args.compare).read_text())
    differ = [k for k in before if k not in now or now[k] != before[k]]
    missing = [k for k in now if k not in before]
    for k in differ:
        print(f"DIFFERS  {k}: {before[k]} -> {now.get(k)}")
    print(f"{len(before) - len(differ)} of {len(before)} runs token-for-token identical"
          + (f"; {len(missing)} new runs not in the record" if missing else ""))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
