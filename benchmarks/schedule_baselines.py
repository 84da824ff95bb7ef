"""The literature's schedules beside ours: Jump Your Steps, Chen-Cong-Li's TC/DTC schedules, randomised sizes.

**Exact laws** (the laws, samplers and step counts of benchmarks/bench_exact.py: templates, potts, markov at
n = 8, d = 4, seed 0; N in {2, 4}; fixed-count random and ancestral): the exact KL and its gap to the true
optimum of

* ``linear``; ``tuned Beta`` — the best Beta of the 10x10 grid on the exact KL itself (an oracle: it uses the law);
* ``infocurve DP`` — ours: the information-curve DP (on a real model, the profile schedule);
* ``JYS`` — Jump Your Steps on the count grid, the KLUB exact from the law (``JYS+rate``: with the authors'
  rate-mismatch term; ``JYS exh.``: exhaustive per-interval search instead of their golden section);
* ``CCL TC`` / ``CCL DTC`` — Chen-Cong-Li's total / dual-total-correlation schedules, and ``CCL`` the one the
  law's TC vs DTC picks;
* ``rand. TC`` / ``rand. DTC`` — randomised step sizes (the Zhao-Cai idea, as read here): the exact KL of the
  mixture law over the draws.

The optimum, the grid's best Beta and their schedules come from benchmarks/results/exact.json (bench_exact.py;
the search over reveal probabilities takes minutes per setting), checked by recomputing linear's and the DP's
KL here (``--recompute`` recomputes them).

**Real tasks** (benchmarks/real_tasks.py's ``TestItems`` and checkpoints, low_confidence remasking, paired items,
this script's own cache file): quality at each N of each task's grid for ``profile`` (today's default: the
confidence-order information profile), ``JYS`` (the KLUB estimated with the model on its own completions of
validation prompts, the authors' random nested masks), ``JYS conf.`` (ours: the nested sets along the low_confidence
sampler's own path, as the profile's confidence order), ``CCL TC`` / ``CCL DTC`` (no model call: their counts depend
on L and N only) and ``CCL`` (the one of the two that the model's TC vs DTC picks, both estimated from its
random-order mean profile at temperature 1, the model's own law), the tuned Beta
(checkpoints/<task>/tuned_schedule.json) and ``linear``, with the model calls each spends to derive its schedule.

    python benchmarks/schedule_baselines.py [--quick] [--tasks countdown,...] [--exact-only | --real-only]

``--quick``: countdown only, 40 test items, 64 profiling / KLUB rows (about 5 min here; the full run: all four
tasks, the benchmark's test sets, 256 rows).
Writes benchmarks/results/schedule_baselines.md, .json and .png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

LAWS = ["templates:8,4,0", "potts:8,4,0", "markov:8,4,0"]
STEPS = [2, 4]
SAMPLERS = ["fixed", "ancestral"]
#: beyond bench_exact: step counts that are not powers of two (JYS's last level is partial there), fixed-count
#: random only (its optimum is exhaustive and cheap; the ancestral one is a minutes-long search per setting)
EXTRA_STEPS = [3, 5, 6]
EXACT_METHODS = ["linear", "tuned Beta", "infocurve DP", "JYS", "JYS exh.", "JYS+rate", "CCL", "CCL TC", "CCL DTC",
                 "rand. TC", "rand. DTC"]
REAL_METHODS = ["linear", "tuned Beta", "profile", "JYS", "JYS conf.", "CCL", "CCL TC", "CCL DTC"]


# --- exact laws ------------------------------------------------------------------------------------------


def _reference(dist: str, N: int, sampler: str, recompute: bool) -> dict:
    """optimum / best grid Beta / linear / DP of one setting: from exact.json unless asked to recompute."""
    path = RESULTS / "exact.json"
    if not recompute and path.exists():
        for e in json.loads(path.read_text()).get("quality", []):
            if e["dist"] == dist and e["N"] == N and e["sampler"] == sampler:
                return {"optimum": e["optimum"], "optimum_schedule": e["optimum_schedule"], "tuned": e["best_grid"],
                        "tuned_ab": e["best_grid_ab"], "linear": e["linear"], "infocurve": e["infocurve"],
                        "source": "exact.json"}
    from mdm_energy.exact import ExactDenoiser
    from mdm_energy.tuning import exact_grid_study

    r = exact_grid_study(ExactDenoiser(dist), sampler, N, remasking="random" if sampler == "fixed" else None)
    return {"optimum": r.optimum.kl, "optimum_schedule": r.optimum.counts or r.optimum.alpha, "tuned": r.best.kl,
            "tuned_ab": [r.best.a, r.best.b], "linear": r.baselines["linear"], "infocurve": r.infocurve.kl,
            "source": "recomputed"}


def exact_part(recompute: bool = False) -> list[dict]:
    from mdm_energy.exact import ExactDenoiser, KLObjective, counts_schedule, infocurve_counts, kl_divergence
    from mdm_energy.exact.correlation import (correlation_counts, dtc_counts, dual_total_correlation, law_randomised,
                                              randomised_counts, tc_counts, total_correlation)
    from mdm_energy.exact.laws import sampler_law
    from mdm_energy.jys import curve_klub, jys_counts

    rows = []
    for dist in LAWS:
        den = ExactDenoiser(dist)
        Z, n = den.information_curve(), den.n
        tc, dtc = total_correlation(den), dual_total_correlation(den)
        for N, sampler in [(N, s) for N in STEPS for s in SAMPLERS] + [(N, "fixed") for N in EXTRA_STEPS]:
            t0 = time.perf_counter()
            remasking = "random" if sampler == "fixed" else None
            kl = KLObjective(den, sampler, N, remasking)
            ref = _reference(dist, N, sampler, recompute)
            counts = {"infocurve DP": infocurve_counts(Z, N).counts}
            jys = {"JYS": jys_counts(curve_klub(Z), n, N), "JYS exh.": jys_counts(curve_klub(Z), n, N, search="exhaustive"),
                   "JYS+rate": jys_counts(curve_klub(Z, rate_term=True), n, N)}
            counts.update({k: v.counts for k, v in jys.items()})
            which, ccl = correlation_counts(den, N)
            counts.update({"CCL": ccl, "CCL TC": tc_counts(n, N), "CCL DTC": dtc_counts(n, N)})
            values = {"linear": kl("linear"), "tuned Beta": ref["tuned"]}
            values.update({k: kl(counts_schedule(c)) for k, c in counts.items()})
            if abs(values["linear"] - ref["linear"]) > 1e-9 or abs(values["infocurve DP"] - ref["infocurve"]) > 1e-9:
                raise RuntimeError(f"{dist} N={N} {sampler}: exact.json disagrees with this engine; rerun with --recompute")
            draws = {}
            for label, scale in (("rand. TC", "tc"), ("rand. DTC", "dtc")):
                r = randomised_counts(scale, n, N)
                law = law_randomised(den, r, lambda c: sampler_law(den, sampler, counts_schedule(c), N, remasking)[0])
                values[label] = kl_divergence(den.q, law)
                draws[label] = r.as_json()
            opt = ref["optimum"]
            rows.append({"dist": dist, "N": N, "sampler": sampler, "optimum": opt, "extended": N not in STEPS,
                         "optimum_schedule": ref["optimum_schedule"], "tuned_ab": ref["tuned_ab"],
                         "reference_source": ref["source"], "tc": tc, "dtc": dtc, "ccl_choice": which,
                         "kl": values, "gap_pct": {k: 100 * (v / opt - 1) for k, v in values.items()},
                         "counts": counts, "randomised": draws,
                         "jys_evaluations": {k: v.evaluations for k, v in jys.items()},
                         "seconds": time.perf_counter() - t0})
            print(f"  {dist} N={N} {sampler:9s} opt {opt:.4f} JYS {values['JYS']:.4f} DP {values['infocurve DP']:.4f} "
                  f"({rows[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return rows


# --- real tasks ------------------------------------------------------------------------------------------


class Cells:
    """Per-item scores of each (task, schedule, N) cell in this script's own .npz file; a cell real_tasks.py has
    already computed (the same ``TestItems.fixed(spec, N)`` on the same items, seeds and weights, so the same
    scores) is read from its cache instead of recomputed — read only: nothing here writes real_tasks' file."""

    def __init__(self, path: Path, shared: "dict | None" = None) -> None:
        self.path = path
        self.shared = shared or {}
        self.data: dict = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                self.data = {k: z[k] for k in z.files}

    def get(self, key: str, run, shared_key: "str | None" = None) -> np.ndarray:
        """The scores of ``key``: this file's, else real_tasks' under ``shared_key``, else computed by ``run``."""
        if key not in self.data and shared_key is not None and f"{shared_key}|s" in self.shared:
            return self.shared[f"{shared_key}|s"].astype(np.float64)
        if key not in self.data:
            self.data[key] = np.asarray(run()[0], dtype=np.float32)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **self.data)
            os.replace(tmp, self.path)
        return self.data[key].astype(np.float64)


def _jys_grid(klub, L: int, steps: list[int], rows: int, batch: int = 64) -> tuple[dict, dict]:
    """JYS's schedule at every N of the grid from one KLUB (its cache shared across N), and the calls spent: for
    the whole grid, and per N those its own search needed (the completions plus one call per revealed count)."""
    from mdm_energy.jys import jys_counts

    out, per_n = {}, {}
    batches = math.ceil(rows / batch)
    for N in steps:
        used: set[int] = set()

        def traced(a, m, b, used=used):
            used.update((a, m))
            return klub(a, m, b)

        out[N] = jys_counts(traced, L, N)
        per_n[N] = {"calls": klub.generation_calls + len(used) * batches,
                    "row_calls": (L * rows if klub.generation_calls else 0) + len(used) * rows,
                    "klub_evaluations": out[N].evaluations}
    return out, {"per_N": per_n, "calls": klub.calls, "row_calls": klub.row_calls, "order": klub.order}


def real_part(tasks: list[str], quick: bool, cells: Cells) -> dict:
    from real_tasks import CONFIG, TestItems, has_checkpoint

    from mdm_energy.exact import counts_schedule, curve_correlation_counts, curve_correlations, dtc_counts, tc_counts
    from mdm_energy.jys import ModelKLUB
    from mdm_energy.models import as_denoiser
    from mdm_energy.profile import estimate_profile, profile_schedule

    rows_n = 64 if quick else 256
    out = {}
    for name in tasks:
        if not has_checkpoint(name):
            continue
        t0 = time.time()
        items = TestItems.load(name, quick)
        task, L, steps = items.task, items.task.gen_len, CONFIG[name]["steps"]
        den = as_denoiser(items.model)
        prompts = task.prompts(task.examples("valid", 256, seed=3))
        tuned_info = items.tuned_schedule()
        tp = time.time()
        prof = estimate_profile(den, prompts, L, samples=rows_n, order="confidence", seed=3)
        t_prof = time.time() - tp
        # Chen-Cong-Li's choice needs the law's TC and DTC: estimated from the model's own law, the random-order
        # mean profile at temperature 1 (the TC and DTC schedules themselves need no model call)
        tr = time.time()
        law_prof = estimate_profile(den, prompts, L, samples=rows_n, order="random", statistic="mean", seed=3)
        law_curve = law_prof.information_curve()
        tc, dtc = curve_correlations(law_curve)
        ccl = {N: curve_correlation_counts(law_curve, N) for N in steps}
        t_law = time.time() - tr
        jys, jys_cost = {}, {}
        for label, order in (("JYS", "random"), ("JYS conf.", "confidence")):
            tj = time.time()
            klub = ModelKLUB(den, prompts[:rows_n], L, samples=rows_n, order=order, seed=3)
            jys[label], jys_cost[label] = _jys_grid(klub, L, steps, rows_n)
            jys_cost[label]["seconds"] = time.time() - tj  # the completions included
        specs = {"linear": {N: "linear" for N in steps}, "tuned Beta": {N: tuned_info["schedule"] for N in steps},
                 "profile": {N: profile_schedule(prof, N).table for N in steps}}
        specs.update({label: {N: j.spec for N, j in by_n.items()} for label, by_n in jys.items()})
        specs.update({"CCL": {N: counts_schedule(ccl[N][1]).spec for N in steps},
                      "CCL TC": {N: counts_schedule(tc_counts(L, N)).spec for N in steps},
                      "CCL DTC": {N: counts_schedule(dtc_counts(L, N)).spec for N in steps}})
        res = {"L": L, "n": len(items.test), "checkpoint": items.digest, "metric": task.metric, "steps": steps,
               "specs": specs, "rows": [],
               "cost": {"linear": {"calls": 0, "row_calls": 0},
                        "tuned Beta": {"calls": None, "row_calls": tuned_info.get("row_calls"),
                                       "note": f"TPE on validation, {tuned_info.get('budget')} evaluations of "
                                               f"{tuned_info.get('validation_examples')} items at N = {tuned_info.get('steps')}"},
                        "profile": {"calls": prof.calls, "row_calls": prof.samples * L, "seconds": t_prof},
                        **jys_cost,
                        "CCL": {"calls": law_prof.calls, "row_calls": law_prof.samples * L, "seconds": t_law,
                                "tc": tc, "dtc": dtc, "choice": {N: ccl[N][0] for N in steps}},
                        "CCL TC": {"calls": 0, "row_calls": 0}, "CCL DTC": {"calls": 0, "row_calls": 0}},
               "jys_counts": {label: {N: j.counts for N, j in by_n.items()} for label, by_n in jys.items()},
               "ccl_counts": {"CCL TC": {N: tc_counts(L, N) for N in steps}, "CCL DTC": {N: dtc_counts(L, N) for N in steps}}}
        for method in REAL_METHODS:
            for N in steps:
                spec = specs[method][N]
                s = cells.get(f"{items.tag}|{spec}|{N}", items.fixed(spec, N), f"{items.tag}|fixed|{spec}|{N}")
                lin = cells.get(f"{items.tag}|linear|{N}", items.fixed("linear", N), f"{items.tag}|fixed|linear|{N}")
                d = s - lin
                res["rows"].append({"method": method, "steps": N, "spec": spec, "value": float(s.mean()),
                                    "stderr": float(s.std(ddof=1) / math.sqrt(len(s))), "diff_linear": float(d.mean()),
                                    "diff_se": float(d.std(ddof=1) / math.sqrt(len(d)))})
            print(f"  {name} {method}: " + " ".join(f"{r['value']:.3f}" for r in res["rows"] if r["method"] == method),
                  file=sys.stderr, flush=True)
        res["seconds"] = time.time() - t0
        out[name] = res
    return out


# --- report ----------------------------------------------------------------------------------------------


def _exact_tables(exact: list, title: str, intro: str) -> list[str]:
    """The KL table, the mean and median gaps and the counts of some exact-law settings."""
    lines: list[str] = []
    lines += [title, "", intro + " Each cell: exact KL(q ‖ sampler) "
              "in nats (gap to the optimum). `tuned Beta` is the best Beta of the 10x10 grid on the exact KL (an oracle); "
              "`infocurve DP` is ours; `JYS` Jump Your Steps with the exact KLUB (golden section; `exh.` exhaustive per "
              "interval; `+rate` with the authors' rate-mismatch term); `CCL` Chen–Cong–Li's TC/DTC schedules (`CCL`: "
              "the one the law's TC vs DTC picks); `rand.` the randomised-size schedules (mixture law).", "",
              "| law | N | sampler | optimum | " + " | ".join(EXACT_METHODS) + " |", "|---|---|---|---|" + "---|" * len(EXACT_METHODS)]
    for e in exact:
        cells = [f"{e['kl'][m]:.4f} ({e['gap_pct'][m]:+.1f}%)" for m in EXACT_METHODS]
        lines.append(f"| {e['dist']} | {e['N']} | {e['sampler']} | {e['optimum']:.4f} | " + " | ".join(cells) + " |")
    mean = {m: float(np.mean([e["gap_pct"][m] for e in exact])) for m in EXACT_METHODS}
    med = {m: float(np.median([e["gap_pct"][m] for e in exact])) for m in EXACT_METHODS}
    lines += ["", f"Mean gap over the {len(exact)} settings: " + ", ".join(f"{m} {v:+.1f}%" for m, v in mean.items()) + ".",
              "", "Median gap: " + ", ".join(f"{m} {v:+.1f}%" for m, v in med.items()) + ".", "",
              "Counts per step (the same for both samplers at a given law and N):", "",
              "| law | N | TC | DTC | DP | JYS | JYS exh. | JYS+rate | CCL TC | CCL DTC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in exact:
        if e["sampler"] != "fixed":
            continue
        c = e["counts"]
        lines.append(f"| {e['dist']} | {e['N']} | {e['tc']:.3f} | {e['dtc']:.3f} | {c['infocurve DP']} | {c['JYS']} | "
                     f"{c['JYS exh.']} | {c['JYS+rate']} | {c['CCL TC']} | {c['CCL DTC']} |")
    lines += [""]
    return lines


def _markdown(exact: list, real: dict, meta: dict) -> str:
    lines = ["# The literature's schedules beside ours", "", f"Regenerate: `{meta['command']}` ({meta['minutes']:.1f} min "
             f"on {meta['threads']} threads).", ""]
    if exact:
        lines += _exact_tables([e for e in exact if not e.get("extended")], "## Exact laws: KL gap to the true optimum",
                               "Laws, samplers and step counts of bench_exact.py (n = 8, d = 4, seed 0).")
        ext = [e for e in exact if e.get("extended")]
        if ext:
            lines += _exact_tables(ext, "## Exact laws, step counts that are not powers of two (fixed-count random)",
                                   "Beyond bench_exact.py: N = " + ", ".join(str(n) for n in EXTRA_STEPS) + ", where "
                                   "JYS's last level splits only some intervals; the optimum is exhaustive.")
    if meta.get("kept_from_earlier_runs"):
        lines += [f"The tables of {', '.join(meta['kept_from_earlier_runs'])} are kept from an earlier run (this one ran "
                  "the others).", ""]
    for name, res in real.items():  # in JSON form: keys by N are strings
        steps = res["steps"]
        lines += [f"## {name} ({res['metric']}, L = {res['L']}, {res['n']} test items{', quick' if meta['quick'] else ''})", "",
                  "Low_confidence remasking, paired items; each cell: value (paired difference to linear ± s.e.).", "",
                  "| schedule | " + " | ".join(f"N={n}" for n in steps) + " | model calls to derive it |",
                  "|---|" + "---|" * len(steps) + "---|"]
        for method in [m for m in REAL_METHODS if any(r["method"] == m for r in res["rows"])]:  # an older table: its own
            cells = []
            for n in steps:
                r = next(r for r in res["rows"] if r["method"] == method and r["steps"] == n)
                cells.append(f"{r['value']:.3f}" + ("" if method == "linear" else f" ({r['diff_linear']:+.3f} ± {r['diff_se']:.3f})"))
            cost = res["cost"][method]
            if method.startswith("JYS"):
                per = cost["per_N"]
                c = (f"{cost['calls']} batched calls / {cost['row_calls']:,} row-calls for the whole grid (per N: "
                     + ", ".join(f"{n}: {per[str(n)]['row_calls']:,}" for n in steps) + " row-calls)")
            elif method == "tuned Beta":
                c = f"~{cost['row_calls']:,} row-calls ({cost['note']})" if cost.get("row_calls") else cost["note"]
            elif method == "profile":
                c = f"{cost['calls']} batched calls / {cost['row_calls']:,} row-calls (every N)"
            elif method == "CCL":
                c = (f"{cost['calls']} batched calls / {cost['row_calls']:,} row-calls (every N): the model's TC "
                     f"{cost['tc']:.2f} and DTC {cost['dtc']:.2f} nats from its random-order mean profile pick "
                     f"{'TC' if cost['tc'] <= cost['dtc'] else 'DTC'}")
            else:
                c = "0"
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {c} |")
        for label, by_n in {**res["jys_counts"], **res.get("ccl_counts", {})}.items():
            lines += ["", f"{label} counts: " + "; ".join(f"N={n}: {by_n[str(n)]}" for n in steps)]
        lines += [""]
    lines += ["![schedule baselines](schedule_baselines.png)", ""]
    return "\n".join(lines)


def _plot(exact: list, real: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from real_tasks import style_axis

    panels = (1 if exact else 0) + len(real)
    if not panels:
        return
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    k = 0
    if exact:
        ax = axes[0][0]
        labels = [f"{e['dist'].split(':')[0]}\nN={e['N']} {e['sampler'][:3]}" for e in exact]
        x = np.arange(len(exact))
        for j, m in enumerate(["linear", "tuned Beta", "infocurve DP", "JYS", "CCL", "rand. DTC"]):
            ax.plot(x, [max(e["gap_pct"][m], 0.01) for e in exact], "o-" if m in ("JYS", "infocurve DP") else ".:",
                    label=m, color=f"C{j}")
        ax.set(yscale="log", ylabel="KL gap to the optimum (%)", title="exact laws (n=8, d=4; a gap of 0 drawn at 0.01%)")
        ax.set_xticks(x, labels, fontsize=5, rotation=90)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
        k = 1
    for ax, (name, res) in zip(axes[0][k:], real.items()):
        for j, m in enumerate(REAL_METHODS):
            pts = [r for r in res["rows"] if r["method"] == m]
            if not pts:  # an older table, without the method
                continue
            ax.errorbar([r["steps"] for r in pts], [r["value"] for r in pts], yerr=[r["stderr"] for r in pts], fmt="-o",
                        ms=3, capsize=2, label=m, color=f"C{j}")
        style_axis(ax, res, f"{name} (L={res['L']}, n={res['n']})")
    fig.tight_layout()
    fig.savefig(RESULTS / "schedule_baselines.png", dpi=130)
    plt.close(fig)


def _kept_tables(real: dict, args, meta: dict) -> dict:
    """This run's real-task tables over the last run's for the tasks it did not run (real_tasks.py's
    ``merged_tables``: only tables measured on the task's weights of today), when both are full runs: a
    ``--quick`` run, or one after a quick run, keeps nothing."""
    from real_tasks import merged_tables

    path = RESULTS / "schedule_baselines.json"
    last_quick = not path.is_file() or json.loads(path.read_text()).get("meta", {}).get("quick", True)
    return merged_tables(real, path, meta, args.quick or last_quick)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=None, help="comma-separated (default: all four; with --quick, countdown)")
    ap.add_argument("--quick", action="store_true", help="real tasks on 40 test items, 64 profiling/KLUB rows, countdown only "
                    "unless --tasks says otherwise")
    ap.add_argument("--exact-only", action="store_true")
    ap.add_argument("--real-only", action="store_true")
    ap.add_argument("--recompute", action="store_true", help="recompute the optimum and the Beta grid (slow)")
    ap.add_argument("--cache", default=None, help="per-item score cache (default: "
                    "benchmarks/results/schedule_baselines_items.npz; with --quick, a temporary file)")
    args = ap.parse_args()

    import torch

    t0 = time.time()
    exact = [] if args.real_only else exact_part(args.recompute)
    real = {}
    if not args.exact_only:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.cache) if args.cache else (Path(tmp) / "items.npz" if args.quick
                                                       else RESULTS / "schedule_baselines_items.npz")
            tasks = args.tasks or ("countdown" if args.quick else "countdown,countdown-long,sudoku,pycode")
            from real_tasks import _cache as real_tasks_cells

            real = real_part([t for t in tasks.split(",") if t], args.quick,
                             Cells(path, shared=None if args.quick else real_tasks_cells()))
    meta = {"command": " ".join(["python benchmarks/schedule_baselines.py", *sys.argv[1:]]),
            "minutes": (time.time() - t0) / 60, "threads": torch.get_num_threads(), "quick": args.quick}
    RESULTS.mkdir(parents=True, exist_ok=True)
    real = _kept_tables(real, args, meta)
    (RESULTS / "schedule_baselines.json").write_text(json.dumps({"meta": meta, "exact": exact, "tasks": real}, indent=1,
                                                                default=str) + "\n")
    _plot(exact, real)
    (RESULTS / "schedule_baselines.md").write_text(_markdown(exact, real, meta))
    print((RESULTS / "schedule_baselines.md").read_text())


if __name__ == "__main__":
    main()
