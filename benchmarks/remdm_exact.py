"""Exact KL of ReMDM (reveal and re-mask) against fixed-count and ancestral sampling at the same number of steps.

On the paper's toy laws (toy1, toy2: n = 5, d = 2) and the structured families (markov, potts, templates at
n = ``--n``, d = ``--d``, seed 0), for the schedules linear and sin2 and N in {n/2, n, 2n, 4n}:

* baselines, measured in the same run: ``fixed`` with ``low_confidence`` (LLaDA's default) and with ``random``
  remasking, and ``ancestral`` (MDLM; ReMDM with sigma = 0 is exactly this law);
* ``remdm`` with sigma in cap, rescale, loop and eta in ``--etas`` (default 0, 0.01, 0.04, 0.1, 0.3; loop: eta capped by
  (1 - loop_alpha)/loop_alpha = 1/9 at the authors' loop_alpha 0.9; phases loop_start 0.45 and
  loop_end min(0.95, 1 - 1/N), so that the last phase has a step at every N);
* the KL ratio of every ReMDM run to fixed-count random, fixed-count low_confidence and ancestral, and
  its expected number of model calls (a ReMDM or ancestral step that reveals nothing makes no call; fixed
  calls the model at every step, or, with skip_empty_steps, at the min(N, n) steps with a token);
* a calls-matched baseline: fixed-count random with as many steps as the best ReMDM run's expected calls;
* **tuned pairs**: at N = 2n on each law, the tuner (``tune``, TPE over Beta (a, b), ``--tune-budget``
  evaluations, in memory) finds the best Beta schedule of ReMDM for every (rule, eta) of the grid, and of
  ancestral and fixed-count random; the best (schedule, sigma) pair against the tuned non-revising samplers.

All laws are exact (temperature 1, one block, the exact denoiser): no sampling noise.

    python benchmarks/remdm_exact.py [--n 6] [--d 3] [--etas 0,0.01,0.04,0.1,0.3] [--out benchmarks/results]

Writes remdm_exact.md, remdm_exact.json and remdm_exact.png under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mdm_energy.exact import ExactDenoiser, exact_sampler

RESULTS = Path(__file__).resolve().parent / "results"
RULES = ("cap", "rescale", "loop")
SCHEDULES = ("linear", "sin2")
LOOP_ALPHA = 0.9
BASELINES = (("fixed/low_confidence", "fixed", "low_confidence"), ("fixed/random", "fixed", "random"),
             ("ancestral", "ancestral", None))


def laws(n: int, d: int) -> list[str]:
    return ["toy1", "toy2"] + [f"{family}:{n},{d},0" for family in ("markov", "potts", "templates")]


#: N as a multiple of n (n/2 rounded down)
FACTORS = ("n/2", "n", "2n", "4n")
#: KLs below this are round-off of an exact law (fixed-count random with one token per step)
ZERO_KL = 1e-12


def step_counts(n: int) -> dict[str, int]:
    return dict(zip(FACTORS, (max(1, n // 2), n, 2 * n, 4 * n)))


def ratio(a: float, b: float) -> float:
    """a / b, inf where only b is 0 (an exact baseline), 1 where both are."""
    if b > ZERO_KL:
        return a / b
    return 1.0 if a <= ZERO_KL else math.inf


def remdm_options(rule: str, eta: float, steps: int) -> dict:
    opts = {"sigma": rule, "eta": eta}
    if rule == "loop":
        opts.update(loop_alpha=LOOP_ALPHA, loop_end=min(0.95, 1.0 - 1.0 / steps))
    return opts


def run(n: int, d: int, etas: list[float]) -> list[dict]:
    loop_cap = (1.0 - LOOP_ALPHA) / LOOP_ALPHA
    jobs = [(spec, sched, factor, N) for spec in laws(n, d) for sched in SCHEDULES
            for factor, N in step_counts(ExactDenoiser(spec).n).items()]
    rows = []
    for spec, sched, factor, N in tqdm(jobs, desc="remdm exact", file=sys.stderr):
        den = ExactDenoiser(spec)
        t0 = time.perf_counter()
        base = {}
        for label, sampler, rule in BASELINES:
            r = exact_sampler(den, sampler, sched, N, rule)
            base[label] = {"kl": r.kl, "tv": r.tv}
            if r.counts is not None:  # fixed: every step, or the steps with a token under skip_empty_steps
                base[label].update(calls=N, calls_skipping_empty=sum(1 for c in r.counts if c))
        remdm = []
        for rule in RULES:
            for eta in etas:
                if rule == "loop" and eta > loop_cap * (1 + 1e-12):
                    continue
                r = exact_sampler(den, "remdm", sched, N, options=remdm_options(rule, eta, N))
                remdm.append({"sigma": rule, "eta": eta, "kl": r.kl, "tv": r.tv, "expected_calls": r.expected_calls,
                              "ratio_fixed_random": ratio(r.kl, base["fixed/random"]["kl"]),
                              "ratio_fixed_low_confidence": ratio(r.kl, base["fixed/low_confidence"]["kl"]),
                              "ratio_ancestral": ratio(r.kl, base["ancestral"]["kl"])})
        # sigma = 0 is the ancestral law, and ancestral too skips the call of a step that reveals nothing
        base["ancestral"]["expected_calls"] = exact_sampler(den, "remdm", sched, N, options={"eta": 0.0}).expected_calls
        # the calls-matched baseline: fixed-count random with as many steps as the best ReMDM run's expected calls
        best = min(remdm, key=lambda e: (e["kl"], e["eta"]))
        matched = max(1, round(best["expected_calls"]))
        base["fixed/random, calls-matched"] = {"steps": matched, "kl": exact_sampler(den, "fixed", sched, matched, "random").kl}
        rows.append({"dist": spec, "n": den.n, "d": den.d, "schedule": sched, "factor": factor, "N": N,
                     "baselines": base, "remdm": remdm, "seconds": time.perf_counter() - t0})
    return rows


def finite(x):
    """The payload with infinite ratios as null (JSON has no infinity)."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def fmt(x: float) -> str:
    if math.isinf(x):
        return "inf"
    return f"{x:.2e}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"


def fmt_ratio(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.2f}"


def best_per_rule(row: dict) -> dict:
    out = {}
    for rule in RULES:
        cands = [e for e in row["remdm"] if e["sigma"] == rule]
        out[rule] = min(cands, key=lambda e: (e["kl"], e["eta"]))
    return out


def markdown(rows: list[dict], etas: list[float], args: argparse.Namespace, wall: float) -> str:
    lines = [
        "# ReMDM's exact KL against fixed-count and ancestral sampling",
        "",
        f"KL(q || sampler) in nats, exact (temperature 1, one block, the exact denoiser); laws toy1, toy2 (n = 5, d = 2) "
        f"and markov/potts/templates at n = {args.n}, d = {args.d}, seed 0. ReMDM: sigma in cap, rescale, loop, eta in "
        f"{', '.join(f'{e:g}' for e in etas)} (loop: eta <= 1/9, loop_alpha 0.9, loop_start 0.45, loop_end "
        "min(0.95, 1 - 1/N)). Ratios are ReMDM's KL over the baseline's, both from this run (< 1: revision helps). "
        "E[calls] is the expected number of model calls of ReMDM and ancestral (a step that reveals nothing makes "
        "none); fixed calls the model at all N steps (with skip_empty_steps: at the min(N, n) steps with a token).",
        "",
        f"Wall time of this run: {wall:.0f} s (`python benchmarks/remdm_exact.py --n {args.n} --d {args.d} --tune-budget {args.tune_budget} "
        f"--etas {','.join(f'{e:g}' for e in etas)}`).",
        "",
        "## Best eta per rule",
        "",
        "The last column is fixed-count random with N' = round(E[calls]) steps of the best ReMDM run: the "
        "same number of model calls.",
        "",
        "| law | schedule | N | fixed/low_conf | fixed/random | ancestral (E[calls]) | cap: KL (eta, E[calls]) | "
        "rescale | loop | best / ancestral | best / fixed random | fixed random at N' (N') |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        b, best = row["baselines"], best_per_rule(row)
        cells = [f"{fmt(e['kl'])} ({e['eta']:g}, {e['expected_calls']:.1f})" for e in best.values()]
        top = min(best.values(), key=lambda e: e["kl"])
        anc = f"{fmt(b['ancestral']['kl'])} ({b['ancestral']['expected_calls']:.1f})"
        lines.append(f"| {row['dist']} | {row['schedule']} | {row['N']} | {fmt(b['fixed/low_confidence']['kl'])} | "
                     f"{fmt(b['fixed/random']['kl'])} | {anc} | " + " | ".join(cells)
                     + f" | {fmt_ratio(top['ratio_ancestral'])} ({top['sigma']}) | {fmt_ratio(top['ratio_fixed_random'])} | "
                     f"{fmt(b['fixed/random, calls-matched']['kl'])} ({b['fixed/random, calls-matched']['steps']}) |")
    # KL ratio to ancestral, geometric mean over laws and schedules, by rule, eta and N/n
    factors = FACTORS
    lines += ["", "## ReMDM / ancestral by rule and eta", "",
              "Geometric mean over the laws and schedules of KL(ReMDM) / KL(ancestral) at the same N (< 1: revision helps; "
              "eta = 0 is ancestral itself for cap and rescale).", "",
              "| sigma | eta | " + " | ".join(f"N = {f}" for f in factors) + " |",
              "|---|---|" + "---|" * len(factors)]
    for rule in RULES:
        for eta in etas:
            cells = []
            for f in factors:
                rs = [e["ratio_ancestral"] for row in rows if row["factor"] == f for e in row["remdm"]
                      if e["sigma"] == rule and e["eta"] == eta and math.isfinite(e["ratio_ancestral"]) and e["ratio_ancestral"] > 0]
                cells.append(f"{math.exp(np.mean(np.log(rs))):.3f}" if rs else "—")
            if any(c != "—" for c in cells):
                lines.append(f"| {rule} | {eta:g} | " + " | ".join(cells) + " |")
    lines += ["", "## Against fixed-count random (every eta)", "",
              "Count of (law, schedule) settings where some ReMDM run beats fixed-count random at the same N, and "
              "the best ratio (fixed-count random is exact, KL = 0, where its schedule commits one token per step, "
              "as linear does at N >= n).", "",
              "| N / n | settings | ReMDM beats fixed random | best ReMDM / fixed random |", "|---|---|---|---|"]
    for f in factors:
        sub = [row for row in rows if row["factor"] == f]
        beats = sum(1 for row in sub if min(e["kl"] for e in row["remdm"]) < row["baselines"]["fixed/random"]["kl"] - ZERO_KL)
        best = min(min(e["ratio_fixed_random"] for e in row["remdm"]) for row in sub)
        lines.append(f"| {f} | {len(sub)} | {beats} | {fmt_ratio(best)} |")
    lines += ["", "![KL against N](remdm_exact.png)", "",
              "The plot shows each ReMDM rule at its best eta of the grid (per N; eta = 0 is in the grid, so cap and "
              "rescale are never above ancestral there); zero KLs (exact samplers) sit on the dotted floor."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """KL against N per law (rows: schedules); ReMDM at the best eta of the grid per rule and N. Exact (zero) KLs
    sit on the floor, a third of the smallest non-zero KL in the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dists = list(dict.fromkeys(row["dist"] for row in rows))
    fig, axes = plt.subplots(len(SCHEDULES), len(dists), figsize=(3.3 * len(dists), 3.0 * len(SCHEDULES)), squeeze=False)
    for r, sched in enumerate(SCHEDULES):
        for c, dist in enumerate(dists):
            ax = axes[r][c]
            sub = sorted((row for row in rows if row["dist"] == dist and row["schedule"] == sched), key=lambda row: row["N"])
            Ns = [row["N"] for row in sub]
            lines = {label: [row["baselines"][label]["kl"] for row in sub] for label, _, _ in BASELINES}
            for rule in RULES:
                lines[f"remdm {rule} (best eta)"] = [best_per_rule(row)[rule]["kl"] for row in sub]
            positive = [v for ys in lines.values() for v in ys if v > ZERO_KL]
            floor = min(positive) / 3 if positive else 1e-6
            styles = ["o-", "o-", "o-", "s--", "^--", "d--"]
            for (label, ys), style in zip(lines.items(), styles):
                ax.plot(Ns, [max(v, floor) for v in ys], style, label=label, lw=1.3, ms=4)
            ax.axhline(floor, color="0.7", lw=0.6, ls=":")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{dist}, {sched}", fontsize=9)
            ax.set_xlabel("steps N", fontsize=8)
            if c == 0:
                ax.set_ylabel("KL (nats); dotted: exact (0)", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tuned_pairs(n: int, d: int, etas: list[float], budget: int) -> list[dict]:
    """At N = 2n on each law: the tuner's best Beta schedule for ReMDM at every (rule, eta), and for ancestral
    and fixed-count random (the same TPE budget and seed)."""
    from mdm_energy.tuning import ExactKLObjective, tune

    out = []
    for law in tqdm(laws(n, d), desc="tuned pairs"):
        den = ExactDenoiser(law)
        N = 2 * den.n
        row: dict = {"law": law, "N": N, "remdm": []}
        for name, sampler, rule in (("ancestral", "ancestral", None), ("fixed/random", "fixed", "random")):
            r = tune(ExactKLObjective(den, sampler, N, rule), strategy="tpe", budget=budget, storage=None, seed=0)
            row[name] = {"schedule": r.best.spec, "kl": r.best.value}
        for sigma in RULES:
            for eta in etas:
                if eta == 0 or (sigma == "loop" and eta > (1 - LOOP_ALPHA) / LOOP_ALPHA):
                    continue
                opts = remdm_options(sigma, eta, N)
                r = tune(ExactKLObjective(den, "remdm", N, None, opts), strategy="tpe", budget=budget, storage=None,
                         seed=0)
                row["remdm"].append({"sigma": sigma, "eta": eta, "schedule": r.best.spec, "kl": r.best.value,
                                     "calls": exact_sampler(den, "remdm", r.best.spec, N, options=opts).expected_calls})
        row["best"] = min(row["remdm"], key=lambda x: x["kl"])
        out.append(row)
    return out


def short(spec: str) -> str:
    """A Beta spec with its numbers to 3 significant digits (the JSON keeps them whole)."""
    family, _, nums = spec.partition(":")
    return family + ":" + ",".join(f"{float(x):.3g}" for x in nums.split(",")) if nums else spec


def tuned_markdown(pairs: list[dict], budget: int) -> str:
    lines = ["", "## The best (schedule, sigma) pair found by the tuner (N = 2n)", "",
             f"TPE over Beta (a, b), {budget} evaluations per configuration, seed 0; ReMDM at every (rule, eta) of the "
             "grid. Ratios: the best ReMDM pair's KL over the tuned baseline's (< 1: tuned revision wins).", "",
             "| law | N | tuned ancestral | tuned fixed/random | best ReMDM pair (E[calls]) | / ancestral | / fixed random |",
             "|---|---|---|---|---|---|---|"]
    for p in pairs:
        b, a, f = p["best"], p["ancestral"], p["fixed/random"]
        lines.append(f"| {p['law']} | {p['N']} | {fmt(a['kl'])} (`{short(a['schedule'])}`) | {fmt(f['kl'])} "
                     f"(`{short(f['schedule'])}`) | {fmt(b['kl'])}: {b['sigma']} eta {b['eta']:g}, "
                     f"`{short(b['schedule'])}` ({b['calls']:.1f}) | "
                     f"{fmt_ratio(ratio(b['kl'], a['kl']))} | {fmt_ratio(ratio(b['kl'], f['kl']))} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="exact KL of ReMDM against fixed-count and ancestral sampling")
    ap.add_argument("--n", type=int, default=6, help="positions of the structured laws (default 6)")
    ap.add_argument("--d", type=int, default=3, help="values per position of the structured laws (default 3)")
    ap.add_argument("--etas", default="0,0.01,0.04,0.1,0.3",
                    help="comma-separated eta grid (default 0,0.01,0.04,0.1,0.3; loop takes those <= 1/9)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    ap.add_argument("--tune-budget", type=int, default=20, help="TPE evaluations per tuned configuration (default 20)")
    args = ap.parse_args()
    etas = [float(x) for x in args.etas.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = run(args.n, args.d, etas)
    pairs = tuned_pairs(args.n, args.d, etas, args.tune_budget)
    wall = time.perf_counter() - t0
    md = markdown(rows, etas, args, wall) + tuned_markdown(pairs, args.tune_budget)
    (args.out / "remdm_exact.md").write_text(md)
    payload = {"n": args.n, "d": args.d, "etas": etas, "loop_alpha": LOOP_ALPHA, "wall_seconds": wall, "rows": rows,
               "tuned": pairs}
    (args.out / "remdm_exact.json").write_text(json.dumps(finite(payload), indent=1) + "\n")
    plot(rows, args.out / "remdm_exact.png")
    print(md)
    print(f"wrote {args.out / 'remdm_exact.md'}, .json and .png ({wall:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
