"""Real-task evidence: schedules against model calls on the task models trained here, on large paired test sets.

For each task with a checkpoint under ``checkpoints/<task>/`` (countdown, its long-window variant, sudoku,
pycode), in one process:

* a Beta schedule tuned on the *validation* split (TPE, at a low step count) and the zero-label
  schedule of the model's information profile (profiled on validation prompts, no answers used);
* on the *test* split — countdown 1,000 items, sudoku 500, pycode 300 — every schedule (linear, sin2,
  beta:0.9,0.3, beta:1,0.2, the tuned Beta, the profile's) at every step count of a grid,
  low_confidence remasking, each item with the same seed in every cell (paired);
* each cell's difference to linear at the same step count with its paired standard error;
* **steps to match**: for each schedule, the fewest steps at which it reaches linear's quality at the
  reference step count, as the ratio reference / steps with a 95% paired-bootstrap interval (the
  paper's "2x fewer steps");
* the adaptive decoders (threshold, entropy-bounded) and the peer rules that decide which tokens and when to
  stop (Prophet, KLASS, PC-Sampler, DUS at their authors' settings) on the same quality / model-calls axes;
* pycode: unigram entropy and generative perplexity under the reference LM, against the data's.

Per-item scores are cached in benchmarks/results/real_tasks_items.npz, so an interrupted run resumes where
it stopped (``--fresh`` starts over).

    python benchmarks/real_tasks.py [--tasks countdown,countdown-long,sudoku,pycode] [--quick]

Writes benchmarks/results/real_tasks.md, real_tasks.json, real_tasks_items.npz and real_tasks.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ITEMS = RESULTS / "real_tasks_items.npz"
#: test items, the step grid of every schedule, the step counts run for linear only (the references of
#: "steps to match" and N = L), the reference step counts, the tuner's step count, and whether the ablation
#: ``profile-random`` (the random-order profile used with the confidence sampler: a mismatched order) is run —
#: on the cheapest task only, to keep the whole benchmark within an hour
CONFIG = {
    "countdown": {"n": 1000, "steps": [2, 3, 4, 6, 8, 12, 16, 24], "extra": [], "refs": [12, 24], "tune": 6,
                  "ablation": True},
    "countdown-long": {"n": 1000, "steps": [3, 6, 9, 12, 18, 24, 36], "extra": [72], "refs": [36, 72], "tune": 18},
    "sudoku": {"n": 500, "steps": [6, 9, 12, 18, 27], "extra": [40, 81], "refs": [27, 40], "tune": 12},
    "pycode": {"n": 300, "steps": [8, 12, 16, 24, 32], "extra": [48, 96], "refs": [32, 48], "tune": 16},
}
#: the hand-crafted schedules: linear, the paper's sin2, and the two it found best on code (few tokens early)
FIXED = ["linear", "sin2", "beta:0.9,0.3", "beta:1,0.2"]
ADAPTIVE = [("threshold", {"threshold": t}) for t in (0.5, 0.7, 0.8, 0.9, 0.95)] + \
           [("entropy-bounded", {"epsilon": e}) for e in (0.1, 0.3, 1.0, 3.0)]
BOOT = 1000
#: PC-Sampler's position decay per task in the authors' scripts (countdown 1, sudoku 0, the rest 0.25).
PC_DECAY = {"countdown": 1.0, "countdown-long": 1.0, "sudoku": 0.0}


def peer_rules(name: str, L: int) -> list[tuple[str, str, dict]]:
    """The rules that decide which tokens and when to stop, each at its authors' published settings (steps =
    the window's length, as in all of theirs) — ``(label, sampler, options)``; benchmarks/pareto.py shares the
    labels, so the cells are computed once."""
    return [(f"prophet linear N={L} gaps=7.5/5/2.5", "prophet", {"steps": L, "gap_early": 7.5, "gap_mid": 5.0,
                                                                 "gap_late": 2.5}),
            ("klass 0.9/0.01", "klass", {"threshold": 0.9, "kl_threshold": 0.01, "steps": L}),
            (f"pc-sampler linear N={L} decay={PC_DECAY.get(name, 0.25):g}", "pc-sampler",
             {"steps": L, "position_decay": PC_DECAY.get(name, 0.25)}),
            (f"dus B={L}", "dus", {})]


def _cache() -> dict:
    if not ITEMS.exists():
        return {}
    with np.load(ITEMS, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _save(cache: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = ITEMS.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **cache)
    os.replace(tmp, ITEMS)


def _cell(cache, key, run, used: "list | None" = None):
    """Per-item (scores, nfe) of one configuration, from the cache or computed and cached (``used`` collects
    the keys, for the compute time of what a table shows)."""
    if used is not None:
        used.append(key)
    if f"{key}|s" not in cache:
        t0 = time.time()
        scores, nfe, outputs = run()
        cache[f"{key}|s"], cache[f"{key}|n"] = np.asarray(scores, dtype=np.float32), np.asarray(nfe, dtype=np.float32)
        cache[f"{key}|t"] = np.asarray([time.time() - t0])  # the wall time it took, kept with the scores
        if outputs is not None:
            cache[f"{key}|o"] = np.asarray(outputs)
        _save(cache)
    return cache[f"{key}|s"].astype(np.float64), cache[f"{key}|n"].astype(np.float64)


@dataclass
class TestItems:
    """One task's paired test set — its checkpoint (and its weights' digest,
    :func:`mdm_energy.tasks.tuned.weights_digest`), test items and one
    seed per item — and the cache tag under which each configuration's per-item scores are stored. This script
    and pareto.py both build it here, so their cells score the same items with the same seeds and share one
    cache."""

    name: str
    checkpoint: Path
    digest: str
    task: Any
    model: Any
    test: list
    seeds: list

    @property
    def tag(self) -> str:
        """``task|items|weights``, and ``|sv<k>`` once the task's score has changed (``Task.score_tag``): a
        cell is reused only for the same items, weights and metric."""
        return f"{self.name}|{len(self.test)}|{self.digest}" + (f"|{self.task.score_tag}" if self.task.score_tag else "")

    @classmethod
    def load(cls, name: str, quick: bool = False) -> "TestItems":
        from mdm_energy.models import load_model
        from mdm_energy.tasks import get_task
        from mdm_energy.tasks.tuned import weights_digest

        n = 40 if quick else CONFIG[name]["n"]
        ck = ROOT / "checkpoints" / name
        task = get_task(name)
        test = task.examples("test", n, seed=0)
        return cls(name, ck, weights_digest(ck), task, load_model(ck), test, [10_007 * k + 1 for k in range(len(test))])

    def tuned_schedule(self, required: bool = True) -> "dict | None":
        """The record of ``checkpoints/<task>/tuned_schedule.json`` (``schedule``, its validation score, how it
        was tuned) if it was tuned on these weights under this score rule
        (:func:`mdm_energy.tasks.tuned.tuned_schedule`, the one reader of that file). Otherwise ``None`` when
        not ``required`` (the caller tunes again), else the script stops with one line saying how to tune it —
        so no benchmark runs a schedule tuned on retrained-away weights or under an older metric."""
        from mdm_energy.tasks.tuned import tuned_schedule

        info, why = tuned_schedule(self.checkpoint, self.task)
        if info is not None or not required:
            return info
        raise SystemExit(f"{why}: run `python benchmarks/real_tasks.py --tasks {self.name}` first, which tunes it "
                         "on these weights")

    def fixed(self, spec: str, n: int):
        """A cell runner: the fixed-count sampler (low_confidence) with ``spec`` in ``n`` steps (pycode keeps
        its outputs, for the text-quality table)."""
        def run():
            from mdm_energy.sampling import FixedCountSampler
            from mdm_energy.tasks.evaluate import evaluate

            r = evaluate(self.task, self.model, self.test, FixedCountSampler(spec, n, remasking="low_confidence"),
                         item_seeds=self.seeds)
            return r.scores, [n] * len(self.test), r.outputs if self.name == "pycode" else None
        return run

    def sampler(self, sampler: str, keep_outputs: bool = False, **options):
        """A cell runner: any sampler of the registry, with each item's own model-call count (and its answers
        with ``keep_outputs``, for a text-quality measure)."""
        def run():
            from mdm_energy.sampling import make_sampler
            from mdm_energy.tasks.evaluate import evaluate

            r = evaluate(self.task, self.model, self.test, make_sampler(sampler, **options), item_seeds=self.seeds)
            return r.scores, r.item_nfe, r.outputs if keep_outputs else None
        return run


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def _steps_to_match(curves: dict, steps: list, ref_scores: np.ndarray, rng) -> dict:
    """For each schedule, the fewest steps reaching linear's mean at the reference, as ref / steps with a 95%
    paired-bootstrap interval (resampling items jointly across every cell)."""
    n = len(ref_scores)
    idx = rng.integers(0, n, size=(BOOT, n))
    out = {}
    for spec, by_n in curves.items():
        ratios = []
        for rows in [np.arange(n)[None, :], idx]:
            target = ref_scores[rows].mean(-1)
            means = np.stack([by_n[s][rows].mean(-1) for s in steps], axis=-1)  # (R, len(steps))
            reach = means >= target[:, None] - 1e-12
            first = np.where(reach.any(-1), reach.argmax(-1), -1)
            ratios.append(np.where(first >= 0, np.asarray(steps, dtype=float)[first], np.inf))
        point, boot = ratios[0][0], ratios[1]
        with np.errstate(invalid="ignore"):  # resamples that never reach the target are +inf
            lo, hi = float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
        out[spec] = {"steps": point, "lo": lo, "hi": hi}
    return out


#: The seed of the profile behind each task's profile schedule: it draws the validation prompts and the profile's rows.
PROFILE_SEED = 3


def task_profile(items: TestItems, order: str = "confidence", samples: int = 256, seed: int = PROFILE_SEED):
    """The information profile a task's profile schedule comes from: ``samples`` rows (cycling 256 validation
    prompts drawn with ``seed``; no answers) in ``order``, the model's own calls drawn with ``seed`` — validation
    data only, so the schedule never sees a test item."""
    from mdm_energy.models import as_denoiser
    from mdm_energy.profile import estimate_profile

    task = items.task
    return estimate_profile(as_denoiser(items.model), task.prompts(task.examples("valid", 256, seed=seed)), task.gen_len,
                            samples=samples, order=order, seed=seed)


def run_task(name: str, args, cache: dict) -> dict:
    from mdm_energy.profile import profile_schedule
    from mdm_energy.tasks.evaluate import task_objective
    from mdm_energy.tasks.tuned import TUNED_FILE, tuned_stamp
    from mdm_energy.tuning import SearchSpace, tune

    cfg = dict(CONFIG[name])
    items = TestItems.load(name, args.quick)
    ck, task, model, test, tag = items.checkpoint, items.task, items.model, items.test, items.tag
    L = task.gen_len
    t0 = time.time()
    used: list[str] = []  # the cells this table shows

    # 1. the tuned Beta (validation, TPE) and the profile's schedule (validation prompts only)
    tuned_path = ck / TUNED_FILE
    tuned_info = items.tuned_schedule(required=False)
    if args.retune or tuned_info is None:  # none, or tuned on other weights: tune again
        t_tune = time.time()
        obj = task_objective(task, model, cfg["tune"], remasking="low_confidence", n=args.tune_limit, seed=1)
        with tempfile.TemporaryDirectory() as tmp:
            r = tune(obj, strategy="tpe", budget=args.tune_budget, storage=f"sqlite:///{tmp}/t.db",
                     space=SearchSpace(bounds={"a": (0.1, 1.5), "b": (0.1, 1.5)}), seed=0)
        tuned_info = {"schedule": f"beta:{r.best.a:.3g},{r.best.b:.3g}", "validation_score": r.best.value,
                      "steps": cfg["tune"], "budget": args.tune_budget, "validation_examples": args.tune_limit,
                      "row_calls": (args.tune_budget + 4) * args.tune_limit * cfg["tune"],
                      **tuned_stamp(ck, task),
                      "seconds": round(time.time() - t_tune, 1)}
        if not args.quick:
            tuned_path.write_text(json.dumps(tuned_info, indent=2) + "\n")
    tuned = tuned_info["schedule"]
    profile_seconds, profiles, prof = {}, {}, {}
    for order in ("confidence", "random") if cfg.get("ablation") else ("confidence",):
        tp = time.time()
        prof[order] = task_profile(items, order, samples=64 if args.quick else 256)
        profile_seconds[order] = time.time() - tp
        profiles[order] = {n: profile_schedule(prof[order], n) for n in cfg["steps"]}
    print(f"{name}: tuned {tuned}; profiled in {profile_seconds} s", file=sys.stderr, flush=True)
    label_order = {"profile": "confidence", "profile-random": "random"}

    # 2. every schedule at every step count, paired items
    curves: dict[str, dict[int, np.ndarray]] = {}
    specs = FIXED + [tuned] + [label for label, order in label_order.items() if order in prof]
    for spec in specs:
        curves[spec] = {}
        for n in cfg["steps"]:
            real = profiles[label_order[spec]][n].table if spec in label_order else spec
            curves[spec][n], _ = _cell(cache, f"{tag}|fixed|{real}|{n}", items.fixed(real, n), used)
        print(f"  {name} {spec}: " + " ".join(f"{curves[spec][n].mean():.3f}" for n in cfg["steps"]), file=sys.stderr,
              flush=True)
    for n in cfg["extra"]:  # linear only: the references and N = L
        curves["linear"][n], _ = _cell(cache, f"{tag}|fixed|linear|{n}", items.fixed("linear", n), used)
    adaptive = []
    for sampler, opts in ADAPTIVE:
        label = f"{sampler} {next(iter(opts.values()))}"
        s, nfe = _cell(cache, f"{tag}|{label}", items.sampler(sampler, **opts), used)
        adaptive.append({"label": label, "value": float(s.mean()), "stderr": float(s.std(ddof=1) / math.sqrt(len(s))),
                         "nfe": float(nfe.mean())})
    for label, sampler, opts in peer_rules(name, L):
        s, nfe = _cell(cache, f"{tag}|{label}", items.sampler(sampler, **opts), used)
        adaptive.append({"label": label, "value": float(s.mean()), "stderr": float(s.std(ddof=1) / math.sqrt(len(s))),
                         "nfe": float(nfe.mean())})

    # 3. tables: values, paired differences to linear, steps to match
    rows = []
    for spec in specs:
        for n in sorted(curves[spec]):
            s = curves[spec][n]
            diff, se = _paired(s, curves["linear"][n])
            rows.append({"schedule": spec, "spec": profiles[label_order[spec]][n].table if spec in label_order else spec,
                         "steps": n,
                         "value": float(s.mean()), "stderr": float(s.std(ddof=1) / math.sqrt(len(s))),
                         "diff_linear": diff, "diff_se": se})
    rng = np.random.default_rng(0)
    match = {ref: _steps_to_match({s: curves[s] for s in specs}, cfg["steps"], curves["linear"][ref], rng)
             for ref in cfg["refs"]}
    out = {"metric": task.metric, "checkpoint": items.digest, "L": L, "n": len(test), "steps": cfg["steps"] + cfg["extra"], "tuned": tuned_info,
           "profile": {order: {"samples": prof[order].samples, "seconds": profile_seconds[order],
                               "row_calls": prof[order].samples * L,
                               "specs": {n: p.table for n, p in profiles[order].items()},
                               "nearest_beta": {n: p.beta for n, p in profiles[order].items()},
                               "entropy_bits": [h / math.log(2) for h in prof[order].entropy]}
                       for order in prof},
           "rows": rows, "adaptive": adaptive,
           "match": {str(ref): m for ref, m in match.items()}, "seconds": time.time() - t0,
           "cell_seconds": float(sum(float(cache[f"{k}|t"][0]) for k in used if f"{k}|t" in cache))}
    if name == "pycode":
        out["pycode"] = _pycode_quality(task, test, cache, tag, tuned, cfg["steps"], cfg["extra"])
    return out


def text_quality(ref, task, prompts: list[str], texts: list[str]) -> dict:
    """Generative perplexity of ``texts`` under the reference model ``ref`` and the unigram entropy of their
    characters (bits/char): pycode's two measures of text, for its answers and for the data alike."""
    from mdm_energy.tasks import unigram_entropy
    from mdm_energy.training import perplexity

    return {"gen_ppl": perplexity(ref, task, prompts, texts), "unigram_entropy": unigram_entropy(texts)}


def _pycode_quality(task, test, cache, tag, tuned, steps, extra) -> dict:
    from mdm_energy.models import load_model

    ref = load_model(ROOT / "checkpoints" / "pycode-reference")
    prompts = [e.prompt for e in test]
    out = {"data": text_quality(ref, task, prompts, [e.answer for e in test])}
    for spec in ("linear", tuned):
        for n in steps + (extra if spec == "linear" else []):
            out[f"{spec}|{n}"] = text_quality(ref, task, prompts, [str(t) for t in cache[f"{tag}|fixed|{spec}|{n}|o"]])
    return out


def run_tasks(names: str, run_one, args, cache: dict) -> dict:
    """``{task: run_one(task, args, cache)}`` for each comma-separated task that has a checkpoint under
    ``checkpoints/<task>/`` (the others are skipped, said on stderr), each one's seconds printed as it ends —
    the task loop of real_tasks.py and profile_statistics.py."""
    out = {}
    for name in [t for t in names.split(",") if t]:
        if not has_checkpoint(name):
            continue
        out[name] = run_one(name, args, cache)
        print(f"{name}: {out[name]['seconds']:.0f} s", file=sys.stderr, flush=True)
    return out


def has_checkpoint(name: str) -> bool:
    """Whether ``checkpoints/<name>/`` holds weights; if not, says on stderr that the task is skipped."""
    if (ROOT / "checkpoints" / name / "model.safetensors").exists():
        return True
    print(f"skip {name}: no checkpoint", file=sys.stderr)
    return False


def style_axis(ax, res: dict, title: str, xlabel: str = "steps N", legend_size: int = 6,
               minor_ticks: bool = True) -> None:
    """A real-task panel's axes: log steps (or calls) labelled at the task's step grid, the task's metric, a
    grid and a legend — shared by the real-task benchmarks' plots (``minor_ticks=False``: no minor marks)."""
    import matplotlib.ticker

    ax.set(xscale="log", xlabel=xlabel, ylabel=res["metric"], title=title)
    ax.set_xticks(res["steps"], [str(n) for n in res["steps"]])  # the step grid, not log-scale labels
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if not minor_ticks:
        ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def _plot(all_res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(all_res)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        res = all_res[name]
        for k, spec in enumerate(FIXED + [res["tuned"]["schedule"], "profile", "profile-random"]):
            pts = [r for r in res["rows"] if r["schedule"] == spec]
            if not pts:
                continue
            ax.errorbar([r["steps"] for r in pts], [r["value"] for r in pts], yerr=[r["stderr"] for r in pts],
                        fmt="-o" if spec in ("linear", "profile", res["tuned"]["schedule"]) else ":.", ms=3, capsize=2,
                        label=spec if spec != res["tuned"]["schedule"] else f"tuned {spec}", color=f"C{k}")
        ada = res["adaptive"]
        ax.scatter([a["nfe"] for a in ada], [a["value"] for a in ada], marker="*", s=70, color="k", zorder=5,
                   label="adaptive and peer rules")
        style_axis(ax, res, f"{name} (L={res['L']}, n={res['n']})", xlabel="model calls per answer")
    fig.tight_layout()
    fig.savefig(RESULTS / "real_tasks.png", dpi=130)
    plt.close(fig)


def _fresh_minutes(all_res: dict) -> float:
    """The wall time of a run from an empty cache: every cell, the profiles and the tuning (as each was timed)."""
    return sum(r["cell_seconds"] + sum(p["seconds"] for p in r["profile"].values()) + r["tuned"].get("seconds", 0.0)
               for r in all_res.values()) / 60


def _markdown(all_res: dict, meta: dict) -> str:
    lines = ["# Real tasks: schedules against model calls on the models trained here", "",
             f"Regenerate: `{meta['command']}` ({meta['minutes']:.0f} min on {meta['threads']} threads for this run; the "
             "evaluation of every cell, summed over the runs that computed them: "
             + ", ".join(f"{n} {r['cell_seconds'] / 60:.1f} min" for n, r in all_res.items()) + "; a run from scratch, "
             f"with tuning and profiling, {_fresh_minutes(all_res):.0f} min"
             + "".join(f"; {n}'s tuning, done in an earlier run, not timed" for n, r in all_res.items()
                       if "seconds" not in r["tuned"]) + "). Test split; "
             "every cell scores the same items with the same per-item seeds (paired); low_confidence remasking. "
             "`diff` is the paired difference to linear at the same step count ± its standard error.", "",
             *([f"The tables of {', '.join(meta['kept_from_earlier_runs'])} are kept from an earlier run (this one "
                "ran the others).", ""] if meta.get("kept_from_earlier_runs") else []),
             "What these tables say about the paper's claims, written by hand from them: "
             "[real_tasks_findings.md](real_tasks_findings.md).", ""]
    for name, res in all_res.items():
        steps = res["steps"]
        t = res["tuned"]
        lines += [f"## {name} ({res['metric']}, L = {res['L']}, {res['n']} test items)", "",
                  f"Tuned on validation: `{t['schedule']}` (TPE, {t.get('budget')} evaluations of "
                  f"{t.get('validation_examples')} items at N = {t.get('steps')}). `profile`: the information-profile "
                  f"schedule from {res['profile']['confidence']['samples']} completions of validation prompts (no "
                  f"answers) in the low_confidence sampler's own order, {res['profile']['confidence']['seconds']:.0f} s, "
                  f"{res['profile']['confidence']['row_calls']:,} row-calls"
                  + (" (`profile-random`: random order, an ablation)" if "random" in res["profile"] else "") + "; the "
                  f"tuner used about {t.get('row_calls', 0):,} row-calls.", "",
                  "| schedule | " + " | ".join(f"N={n}" for n in steps) + " |", "|---|" + "---|" * len(steps)]
        specs = list(dict.fromkeys(r["schedule"] for r in res["rows"]))
        for spec in specs:
            cells = []
            for n in steps:
                r = next((r for r in res["rows"] if r["schedule"] == spec and r["steps"] == n), None)
                if r is None:
                    cells.append("")
                    continue
                d = "" if spec == "linear" else f" ({r['diff_linear']:+.3f} ± {r['diff_se']:.3f})"
                cells.append(f"{r['value']:.3f}{d}")
            label = f"tuned `{spec}`" if spec == t["schedule"] else f"`{spec}`"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Steps to match linear (the fewest steps reaching linear's quality at the reference; "
                  "ratio reference / steps, 95% paired-bootstrap interval):", "",
                  "| schedule | " + " | ".join(f"linear at N={ref}" for ref in res["match"]) + " |",
                  "|---|" + "---|" * len(res["match"])]
        for spec in specs:
            cells = []
            for ref, m in res["match"].items():
                s = m[spec]
                if not math.isfinite(s["steps"]):
                    cells.append("not reached")
                else:
                    lo = int(ref) / s["hi"] if math.isfinite(s["hi"]) else 0.0
                    hi = int(ref) / s["lo"] if math.isfinite(s["lo"]) else 0.0
                    cells.append(f"N={s['steps']:.0f}: {int(ref) / s['steps']:.2f}x [{lo:.2f}, {hi:.2f}]")
            lines.append(f"| `{spec}` | " + " | ".join(cells) + " |")
        lines += ["", "Adaptive decoders and the peer rules (authors' settings) on the same items:", "", "| sampler | mean calls | value |", "|---|---|---|"]
        for a in res["adaptive"]:
            lines.append(f"| {a['label']} | {a['nfe']:.2f} | {a['value']:.3f} ± {a['stderr']:.3f} |")
        if "pycode" in res:
            pc = res["pycode"]
            lines += ["", f"pycode text quality (data: generative perplexity {pc['data']['gen_ppl']:.2f}, unigram "
                      f"entropy {pc['data']['unigram_entropy']:.2f} bits/char):", "",
                      "| schedule | " + " | ".join(f"N={n}" for n in steps) + " |", "|---|" + "---|" * len(steps)]
            for spec in ("linear", t["schedule"]):
                lines.append(f"| `{spec}` | " + " | ".join(
                    f"{pc[f'{spec}|{n}']['gen_ppl']:.2f} ({pc[f'{spec}|{n}']['unigram_entropy']:.2f} b)"
                    if f"{spec}|{n}" in pc else "" for n in steps) + " |")
        lines += [""]
    lines += ["![quality against model calls](real_tasks.png)", ""]
    return "\n".join(lines)


def table_digest(table: dict, digest_key: str = "checkpoint") -> "str | None":
    """The weights' digest a results table was measured on: its ``digest_key`` entry, or for a table from before
    that key was recorded, its tuned schedule's (tuned on the same weights in the same run)."""
    tuned = table.get("tuned")
    return table.get(digest_key, tuned.get("checkpoint") if isinstance(tuned, dict) else None)


def merged_tables(new: dict, path: Path, meta: dict, quick: bool, digest_key: str = "checkpoint") -> dict:
    """This run's task tables (in their JSON form) over those of ``path`` for the tasks it did not run, in the
    order of :data:`CONFIG` — so rerunning one task (say after retraining it) keeps the others' tables, which
    pareto.py reads; a ``--quick`` run keeps nothing. A kept table must name today's weights of its
    ``checkpoints/<task>/`` (:func:`table_digest`, :func:`mdm_energy.tasks.tuned.weights_digest`): one measured on
    weights since retrained away, or recording none, is dropped, said on stderr. The kept tasks are listed in
    ``meta``."""
    from mdm_energy.tasks.tuned import weights_digest

    new = json.loads(json.dumps(new, default=str))
    old = {} if quick or not path.is_file() else json.loads(path.read_text()).get("tasks", {})
    kept = []
    for name in [n for n in old if n not in new]:
        ck = ROOT / "checkpoints" / name
        if table_digest(old[name], digest_key) == (weights_digest(ck) if (ck / "model.safetensors").is_file() else None):
            kept.append(name)
        else:
            print(f"{name}: the last run's table is dropped: measured on other weights than checkpoints/{name}'s",
                  file=sys.stderr)
    if kept:
        meta["kept_from_earlier_runs"] = kept
    merged = {**{n: old[n] for n in kept}, **new}
    return {n: merged[n] for n in dict.fromkeys([*CONFIG, *merged]) if n in merged}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="countdown,countdown-long,sudoku,pycode")
    ap.add_argument("--tune-limit", type=int, default=200, help="validation items for the tuner")
    ap.add_argument("--tune-budget", type=int, default=16)
    ap.add_argument("--retune", action="store_true", help="tune again even if checkpoints/<task>/tuned_schedule.json was tuned on these weights")
    ap.add_argument("--quick", action="store_true", help="40 test items per task: a smoke run (writes nothing to checkpoints)")
    ap.add_argument("--fresh", action="store_true", help="ignore the cache of per-item scores")
    args = ap.parse_args()

    import torch

    cache = {} if args.fresh else _cache()
    t0 = time.time()
    all_res = run_tasks(args.tasks, run_task, args, cache)
    meta = {"command": " ".join(["python benchmarks/real_tasks.py", *sys.argv[1:]]), "minutes": (time.time() - t0) / 60,
            "threads": torch.get_num_threads()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    all_res = merged_tables(all_res, RESULTS / "real_tasks.json", meta, args.quick)
    (RESULTS / "real_tasks.json").write_text(json.dumps({"meta": meta, "tasks": all_res}, indent=1) + "\n")
    _plot(all_res)
    (RESULTS / "real_tasks.md").write_text(_markdown(all_res, meta))
    print((RESULTS / "real_tasks.md").read_text())


if __name__ == "__main__":
    main()
