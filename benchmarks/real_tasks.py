"""Real-task evidence: schedules against steps on three tasks with MDMs trained here.

For each task with a checkpoint under ``checkpoints/<task>/``:

* the tuner picks a Beta schedule on the held-out *validation* split (TPE, low step count);
* on the *test* split, the metric (mean ± standard error) of linear, sin2, sine, maskgit and the tuned
  Beta at 4-5 step counts from L/16 to L, with low_confidence and random remasking;
* the adaptive baselines (confidence threshold, entropy-bounded) on the same NFE axis;
* pycode also gets the generative perplexity under the reference LM and the unigram entropy.

    python benchmarks/real_tasks.py [--limit 200] [--tasks countdown,sudoku,pycode]

Writes benchmarks/results/real_tasks.md, real_tasks.json and real_<task>.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STEPS = {"countdown": [2, 4, 8, 24], "sudoku": [6, 12, 27, 81], "pycode": [6, 12, 24, 48, 96]}
TUNE_STEPS = {"countdown": 4, "sudoku": 12, "pycode": 12}
LIMITS = {"countdown": 200, "sudoku": 100, "pycode": 100}  # test examples per cell (sudoku/pycode cost more per call)
SCHEDULES = ["linear", "sin2", "sine", "maskgit"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, help="test examples per evaluation (default: 200 countdown, 100 otherwise)")
    ap.add_argument("--tune-limit", type=int, default=100, help="validation examples for the tuner")
    ap.add_argument("--tune-budget", type=int, default=12)
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    ap.add_argument("--checkpoints", default=str(ROOT / "checkpoints"))
    args = ap.parse_args()

    from mdm_energy.models import load_model
    from mdm_energy.sampling import EntropyBoundedSampler, FixedCountSampler, ThresholdSampler
    from mdm_energy.tasks import get_task
    from mdm_energy.tasks.evaluate import evaluate, task_objective
    from mdm_energy.tuning import SearchSpace, tune

    previous = RESULTS / "real_tasks.json"
    all_rows = json.loads(previous.read_text()) if previous.exists() else {}  # runs task by task merge here
    for name in args.tasks.split(","):
        ck = Path(args.checkpoints) / name
        if not (ck / "model.safetensors").exists():
            print(f"skip {name}: no checkpoint at {ck}", file=sys.stderr)
            continue
        t0 = time.time()
        task, model = get_task(name), load_model(ck)
        test = task.examples("test", args.limit or LIMITS[name], seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            obj = task_objective(task, model, TUNE_STEPS[name], remasking="low_confidence", n=args.tune_limit, seed=1)
            tuned = tune(obj, strategy="tpe", budget=args.tune_budget, storage=f"sqlite:///{tmp}/t.db",
                         space=SearchSpace((0.1, 1.5), (0.1, 1.5)), seed=0)
        tuned_spec = f"beta:{tuned.best.a:.3g},{tuned.best.b:.3g}"
        (ck / "tuned_schedule.json").write_text(json.dumps(
            {"schedule": tuned_spec, "validation_score": tuned.best.value, "steps": TUNE_STEPS[name],
             "budget": args.tune_budget, "validation_examples": args.tune_limit}, indent=2) + "\n")
        print(f"{name}: tuned {tuned_spec} on validation (N={TUNE_STEPS[name]}): {tuned.best.value:.3f}", file=sys.stderr)
        rows = []
        extra = {}
        if name == "pycode" and (Path(args.checkpoints) / "pycode-reference" / "model.safetensors").exists():
            from mdm_energy.tasks import unigram_entropy
            from mdm_energy.training import perplexity

            extra["reference"] = load_model(Path(args.checkpoints) / "pycode-reference")
            extra["ref_ppl_data"] = perplexity(extra["reference"], task, [e.prompt for e in test], [e.answer for e in test])
            extra["entropy_data"] = unigram_entropy([e.answer for e in test])
        for remasking in ("low_confidence", "random"):
            for spec in SCHEDULES + [tuned_spec]:
                for n in STEPS[name]:
                    r = evaluate(task, model, test, FixedCountSampler(spec, n, remasking=remasking), seed=0)
                    row = {"schedule": spec, "remasking": remasking, "steps": n, "nfe": r.nfe, "value": r.value,
                           "stderr": r.stderr, "n": r.n}
                    if "reference" in extra and remasking == "low_confidence":
                        outs = list(r.outputs)
                        row["gen_ppl"] = perplexity(extra["reference"], task, [e.prompt for e in test], outs)
                        row["unigram_entropy"] = unigram_entropy(outs)
                    rows.append(row)
        for label, sampler in [(f"threshold {th}", ThresholdSampler(th)) for th in (0.5, 0.7, 0.9)] + \
                               [(f"entropy-bounded {eps}", EntropyBoundedSampler(eps)) for eps in (0.1, 0.5, 2.0)]:
            r = evaluate(task, model, test, sampler, seed=0)
            rows.append({"schedule": label, "remasking": "adaptive", "steps": None, "nfe": r.nfe, "value": r.value,
                         "stderr": r.stderr, "n": r.n})
        all_rows[name] = {"metric": task.metric, "gen_len": task.gen_len, "tuned": tuned_spec,
                          "tuned_validation_score": tuned.best.value, "rows": rows,
                          "seconds": time.time() - t0,
                          **{k: v for k, v in extra.items() if k != "reference"}}
        _plot(name, all_rows[name])
        print(f"{name}: done in {time.time() - t0:.0f} s", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "real_tasks.json").write_text(json.dumps(all_rows, indent=2) + "\n")
    (RESULTS / "real_tasks.md").write_text(_markdown(all_rows, args))
    print((RESULTS / "real_tasks.md").read_text())


def _plot(name: str, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for remasking, style in (("low_confidence", "-o"), ("random", ":x")):
        for spec in SCHEDULES + [res["tuned"]]:
            pts = [r for r in res["rows"] if r["schedule"] == spec and r["remasking"] == remasking]
            ax.errorbar([r["nfe"] for r in pts], [r["value"] for r in pts], yerr=[r["stderr"] for r in pts], fmt=style,
                        ms=4, capsize=2, label=f"{spec} ({remasking})" if remasking == "low_confidence" or spec == res["tuned"] else None)
    ada = [r for r in res["rows"] if r["remasking"] == "adaptive"]
    ax.scatter([r["nfe"] for r in ada], [r["value"] for r in ada], marker="*", s=90, color="k", label="adaptive (threshold / EB)", zorder=5)
    ax.set(xscale="log", xlabel="NFE (model calls)", ylabel=res["metric"], title=f"{name}: metric against model calls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(RESULTS / f"real_{name}.png", dpi=130, bbox_inches="tight")
    plt.close(fig)


def _markdown(all_rows: dict, args) -> str:
    lines = ["# Real tasks: small MDMs trained here (checkpoints/<task>/)", "",
             f"Test split, {args.limit or 'countdown 200, sudoku 100, pycode 100'} examples per cell; mean ± standard error. The tuned Beta was chosen by TPE "
             f"({args.tune_budget} evaluations) on {args.tune_limit} validation examples. Regenerate: "
             "`python benchmarks/real_tasks.py`.", ""]
    for name, res in all_rows.items():
        steps = [n for n in STEPS[name] if any(r["steps"] == n for r in res["rows"])]
        lines += [f"## {name} ({res['metric']}, L = {res['gen_len']}); tuned schedule `{res['tuned']}`", ""]
        for remasking in ("low_confidence", "random"):
            lines += [f"**{remasking}**", "", "| schedule | " + " | ".join(f"N={n}" for n in steps) + " |",
                      "|---|" + "---|" * len(steps)]
            for spec in SCHEDULES + [res["tuned"]]:
                cells = []
                for n in steps:
                    r = next(r for r in res["rows"] if r["schedule"] == spec and r["remasking"] == remasking and r["steps"] == n)
                    cells.append(f"{r['value']:.3f} ± {r['stderr']:.3f}")
                lines.append(f"| {spec} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += ["**adaptive baselines**", "", "| sampler | NFE | value |", "|---|---|---|"]
        for r in res["rows"]:
            if r["remasking"] == "adaptive":
                lines.append(f"| {r['schedule']} | {r['nfe']:.1f} | {r['value']:.3f} ± {r['stderr']:.3f} |")
        if "ref_ppl_data" in res:
            lines += ["", f"pycode generative perplexity under the reference LM (data itself: {res['ref_ppl_data']:.2f}; "
                      f"unigram entropy of the data {res['entropy_data']:.2f} bits/char), low_confidence:", "",
                      "| schedule | " + " | ".join(f"N={n}" for n in steps) + " |", "|---|" + "---|" * len(steps)]
            for spec in ["linear", res["tuned"]]:
                cells = []
                for n in steps:
                    r = next(r for r in res["rows"] if r["schedule"] == spec and r["remasking"] == "low_confidence" and r["steps"] == n)
                    cells.append(f"{r['gen_ppl']:.1f} ({r['unigram_entropy']:.2f} b)")
                lines.append(f"| {spec} | " + " | ".join(cells) + " |")
        lines += ["", f"![{name}](real_{name}.png)", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
