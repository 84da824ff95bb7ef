"""The task models against their targets, at one token per model call (N = L, linear, low_confidence remasking).

A task model is strong enough to judge decoders when, decoded one token per call, it does its task:

* **countdown** — at least 0.50 of the 1,000 test answers valid;
* **pycode** — its snippets as varied as code: the unigram entropy of their characters within 0.5 bits/char of
  the data's (the true continuations of the same prompts), and their generative perplexity under the
  independent reference model (checkpoints/pycode-reference) within a factor 2 of the data's.

Each is measured with three decoders at one token per call: ``greedy`` (temperature 0, low_confidence: the
sampler of every benchmark here, and the one the targets name), ``low_confidence T=1`` (the same order, each token
drawn at temperature 1) and ``random T=1`` (a uniformly random order, each token drawn at temperature 1: the
model's own joint law, apart from any decoder's choice). A greedy decoder commits the model's mode at every call,
and a better model's mode can be *more* repetitive than the data; the last row says whether what the model has
learned is within target.

The cells are real_tasks.py's (same test items, per-item seeds and weights; one shared cache): greedy is its
``fixed|linear|L`` cell, ``low_confidence T=1`` pareto.py's ``fixed linear N=L T=1`` (where pareto.py has run it),
the others computed here if missing (pycode keeps its snippets). Writes benchmarks/results/task_targets.md and
.json; a run of one task keeps the other's table while it names today's weights.

    python benchmarks/task_targets.py [--tasks countdown,pycode]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

#: the targets: countdown's share of valid answers; pycode's entropy gap (bits/char) and perplexity ratio
COUNTDOWN_VALID = 0.50
ENTROPY_GAP = 0.5
PPL_FACTOR = 2.0
#: the decoders, each at N = L with the linear schedule: (label, temperature, remasking)
DECODERS = (("greedy", 0.0, "low_confidence"), ("low_confidence T=1", 1.0, "low_confidence"),
            ("random T=1", 1.0, "random"))


def _key(tag: str, L: int, temperature: float, remasking: str = "low_confidence") -> str:
    """The cache key of N = L: real_tasks.py's fixed cell at temperature 0, pareto.py's label at temperature 1
    with low_confidence, and that label with the order appended for another remasking."""
    if temperature == 0 and remasking == "low_confidence":
        return f"{tag}|fixed|linear|{L}"
    return f"{tag}|fixed linear N={L} T={temperature:g}" + ("" if remasking == "low_confidence" else f" {remasking}")


def _runner(items, L: int, temperature: float, remasking: str = "low_confidence"):
    if temperature == 0 and remasking == "low_confidence":
        return items.fixed("linear", L)
    return items.sampler("fixed", steps=L, temperature=temperature, remasking=remasking,
                         keep_outputs=items.name == "pycode")


def measure(name: str, cache: dict) -> dict:
    """One task's rows (one per temperature) with its weights, validation loss and whether each target is met."""
    from real_tasks import TestItems, _cell, text_quality

    items = TestItems.load(name)
    L = items.task.gen_len
    summary = json.loads((items.checkpoint / "train_summary.json").read_text())
    out = {"L": L, "n": len(items.test), "weights": items.digest, "metric": items.task.metric,
           "best_valid_loss": summary["final"]["best_valid"], "rows": []}
    ref = None
    if name == "pycode":
        from mdm_energy.models import load_model

        ref = load_model(ROOT / "checkpoints" / "pycode-reference")
        prompts = [e.prompt for e in items.test]
        out["data"] = text_quality(ref, items.task, prompts, [e.answer for e in items.test])
    for decoder, temperature, remasking in DECODERS:
        key = _key(items.tag, L, temperature, remasking)
        if name == "pycode" and f"{key}|s" in cache and f"{key}|o" not in cache:
            del cache[f"{key}|s"]  # a cell stored without its snippets: run again (same seeds, same scores)
        t0 = time.time()
        s, _ = _cell(cache, key, _runner(items, L, temperature, remasking))
        row = {"decoder": decoder, "temperature": temperature, "remasking": remasking, "value": float(s.mean()),
               "stderr": float(s.std(ddof=1) / math.sqrt(len(s))), "seconds": time.time() - t0}
        if name == "countdown":
            row["met"] = row["value"] >= COUNTDOWN_VALID
        elif name == "pycode":
            row.update(text_quality(ref, items.task, prompts, [str(t) for t in cache[f"{key}|o"]]))
            row["entropy_gap"] = out["data"]["unigram_entropy"] - row["unigram_entropy"]
            row["ppl_ratio"] = row["gen_ppl"] / out["data"]["gen_ppl"]
            row["met"] = abs(row["entropy_gap"]) <= ENTROPY_GAP and 1 / PPL_FACTOR <= row["ppl_ratio"] <= PPL_FACTOR
        out["rows"].append(row)
        print(f"  {name} {decoder}: {row}", file=sys.stderr, flush=True)
    return out


def _markdown(res: dict, meta: dict) -> str:
    lines = ["# The task models against their targets (N = L, linear, low_confidence)", "",
             f"Regenerate: `{meta['command']}` ({meta['minutes']:.1f} min, reading real_tasks.py's cached cells where "
             "they exist). Targets: countdown at least "
             f"{COUNTDOWN_VALID:.2f} valid; pycode's unigram entropy within {ENTROPY_GAP} bits/char of the data's and "
             f"its generative perplexity within {PPL_FACTOR:g}x of the data's. `greedy` (temperature 0, low_confidence) "
             "is the sampler of every benchmark here and the one the targets name; `random T=1` draws from the "
             "model's own joint law, one token per call."
             + (f" Kept from an earlier run, on the same weights: {', '.join(meta['kept_from_earlier_runs'])}."
                if meta.get("kept_from_earlier_runs") else ""), ""]
    if "countdown" in res:
        r = res["countdown"]
        lines += [f"## countdown ({r['n']} test items, L = {r['L']}, weights `{r['weights']}`, best validation loss "
                  f"{r['best_valid_loss']:.4f})", "", "| decoder | valid (± s.e.) | target met |", "|---|---|---|"]
        lines += [f"| {row['decoder']} | {row['value']:.3f} ± {row['stderr']:.3f} | {'yes' if row['met'] else 'no'} |"
                  for row in r["rows"]]
        lines += [""]
    if "pycode" in res:
        r, d = res["pycode"], res["pycode"]["data"]
        lines += [f"## pycode ({r['n']} test items, L = {r['L']}, weights `{r['weights']}`, best validation loss "
                  f"{r['best_valid_loss']:.4f})", "",
                  "| decoder | pass (± s.e.) | unigram entropy (bits/char) | − data's | generative perplexity | ÷ data's | target met |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {row['decoder']} | {row['value']:.3f} ± {row['stderr']:.3f} | "
                  f"{row['unigram_entropy']:.2f} | {-row['entropy_gap']:+.2f} | {row['gen_ppl']:.2f} | "
                  f"{row['ppl_ratio']:.2f} | {'yes' if row['met'] else 'no'} |" for row in r["rows"]]
        lines += [f"| the data (true continuations) | — | {d['unigram_entropy']:.2f} | — | {d['gen_ppl']:.2f} | — | — |", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="countdown,pycode")
    args = ap.parse_args()
    names = [t for t in args.tasks.split(",") if t]
    bad = [t for t in names if t not in ("countdown", "pycode")]
    if bad:
        ap.error(f"--tasks: no target is set for {bad[0]!r} (choose from countdown, pycode)")

    from real_tasks import _cache, has_checkpoint, merged_tables

    cache = _cache()
    t0 = time.time()
    res = {name: measure(name, cache) for name in names if has_checkpoint(name)}
    meta = {"command": " ".join(["python benchmarks/task_targets.py", *sys.argv[1:]]), "minutes": (time.time() - t0) / 60}
    RESULTS.mkdir(parents=True, exist_ok=True)
    res = merged_tables(res, RESULTS / "task_targets.json", meta, quick=False, digest_key="weights")
    (RESULTS / "task_targets.json").write_text(json.dumps({"meta": meta, "tasks": res}, indent=1) + "\n")
    (RESULTS / "task_targets.md").write_text(_markdown(res, meta))
    print((RESULTS / "task_targets.md").read_text())


if __name__ == "__main__":
    main()
