"""Quality against model calls: fixed schedules, adaptive decoding, and the schedule-aware adaptive samplers.

On each task checkpoint, on the test items of benchmarks/real_tasks.py (the same items and per-item seeds,
sharing its cache of per-item scores), these families of configurations:

  (a) fixed schedules — linear, sin2, beta:0.9,0.3, beta:1,0.2, the tuned Beta and the information profile's
      schedule (as real_tasks.py profiled it) at every step count;
  (b) adaptive decoding — Fast-dLLM's threshold and the EB-sampler's entropy bound, swept;
  (c) schedule-aware adaptive — threshold-floor and threshold-cap with linear and the tuned Beta, at
      several step counts and thresholds;
  (d) revising decoders — ReMDM with random positions (``remdm``: its cap, rescale, conf and loop rules,
      temperature 1 as the authors sample, beside ``ancestral``, the same positions without revision) and
      with low confidence (``remdm-llada``, beside ``fixed`` at the same temperature), and WINO (``wino``,
      draft/verify threshold pairs), at the fixed schedules' step counts and beyond N = L (ReMDM's
      inference-time scaling);
  (e) the rules that decide which tokens and when to stop — Prophet (early exit on the logit gap), KLASS
      (confident and stable), PC-Sampler (position-aware, calibrated; a training-frequency token prior beside
      the uniform one) and DUS (dilated groups) — at the authors' settings, and each with the tuned Beta or the
      information profile (benchmarks/real_tasks.py) behind its count.

Each family's Pareto front (quality up, mean model calls down), and for a ladder of budgets the best
quality each family reaches within that many mean calls, with its standard error; per budget, the best
schedule-driven configuration against the best peer rule, paired, with a plain verdict per task.

    python benchmarks/pareto.py [--tasks countdown,sudoku,pycode] [--families revising,peers] [--lean TASKS]
        [--no-revising TASKS] [--quick]

Run benchmarks/real_tasks.py first (it tunes the Beta schedules). Writes benchmarks/results/pareto.md,
pareto.json and pareto.png.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_tasks import CONFIG, PC_DECAY, RESULTS, ROOT, TestItems, _cache, has_checkpoint, table_digest  # noqa: E402
from real_tasks import _cell as _cached_cell  # noqa: E402

#: The cache keys of every cell this run read, for the compute time of what the tables show.
USED: list[str] = []


def _cell(cache, key, run):
    return _cached_cell(cache, key, run, USED)

FIXED = ["linear", "sin2", "beta:0.9,0.3", "beta:1,0.2"]
ADAPTIVE = [("threshold", {"threshold": t}) for t in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)] + \
           [("entropy-bounded", {"epsilon": e}) for e in (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)]
HYBRID_THRESHOLDS = (0.7, 0.9)
#: ReMDM's σ rules, each at the authors' η for the step count (revision.default_eta)
REMDM_RULES = ("cap", "rescale", "conf", "loop")
#: WINO's (draft, verify) thresholds: the authors' countdown, default, code and mbpp settings
WINO_THRESHOLDS = ((0.5, 0.9), (0.6, 0.9), (0.7, 0.9), (0.8, 0.9))


def _point(family: str, label: str, scores: np.ndarray, nfe: np.ndarray, base: "str | None" = None) -> dict:
    """One configuration; its per-item scores ride along under ``_scores`` (for paired differences; not saved).
    ``base`` labels, for a revising decoder, the configuration it revises on top of (the same without revision)."""
    return {"family": family, "label": label, "value": float(scores.mean()), "base": base,
            "stderr": float(scores.std(ddof=1) / math.sqrt(len(scores))), "nfe": float(nfe.mean()), "_scores": scores}


#: The families that never revise a committed token (what the revising decoders are measured against).
NON_REVISING = ("fixed schedules", "adaptive", "schedule-aware adaptive", "peer rules", "peer rules + schedule")


def _paired_diff(a: dict, b: dict) -> dict:
    """``a`` minus ``b`` over the same items: the mean difference and its paired standard error."""
    d = a["_scores"] - b["_scores"]
    return {"ref": b, "diff": float(d.mean()), "stderr": float(d.std(ddof=1) / math.sqrt(len(d)))}


def _revision_rows(ladder: list[dict], points: list[dict]) -> list[dict]:
    """Per budget: the best revising configuration against the best non-revising one within the budget and
    against its own base (the same configuration without revision, at its own calls), paired over the items."""
    by_label = {p["label"]: p for p in points}
    rows = []
    for row in ladder:
        rev = row.get("revising")
        if rev is None:
            continue
        others = [row[f] for f in NON_REVISING if row.get(f)]
        best = max(others, key=lambda p: p["value"]) if others else None
        out = {"budget": row["budget"], "revising": rev}
        for key, ref in (("vs_best", best), ("vs_base", by_label.get(rev.get("base")))):
            if ref is not None:
                out[key] = _paired_diff(rev, ref)
        rows.append(out)
    return rows


#: Families whose configurations a mask schedule drives (hand-crafted, tuned or the model's information profile;
#: the hybrids; the peer rules with a schedule behind their count) — and the peers' own rules at their settings.
SCHEDULED = ("fixed schedules", "schedule-aware adaptive", "peer rules + schedule")
PEERS = ("adaptive", "peer rules", "revising")


def _schedule_rows(ladder: list[dict]) -> list[dict]:
    """Per budget: the best schedule-driven configuration within the budget against the best peer rule within
    it (:data:`SCHEDULED` against :data:`PEERS`), paired over the same items."""
    rows = []
    for row in ladder:
        ours = [row[f] for f in SCHEDULED if row.get(f)]
        theirs = [row[f] for f in PEERS if row.get(f)]
        if ours and theirs:
            best = max(ours, key=lambda p: p["value"])
            rows.append({"budget": row["budget"], "schedule": best,
                         "vs_peer": _paired_diff(best, max(theirs, key=lambda p: p["value"]))})
    return rows


def _verdict(rows: list[dict], key: str) -> dict:
    """Budgets sorted into wins, ties and losses: a paired difference beyond 2 s.e. either way."""
    out: dict = {"wins": [], "ties": [], "loses": []}
    for r in rows:
        c = r.get(key)
        if c is not None:
            out["wins" if c["diff"] > 2 * c["stderr"] else "loses" if c["diff"] < -2 * c["stderr"] else "ties"].append(
                f"{r['budget']:g}")
    return out


def _front(points: list[dict]) -> list[dict]:
    def dom(p, q):
        return p["value"] >= q["value"] and p["nfe"] <= q["nfe"] and (p["value"] > q["value"] or p["nfe"] < q["nfe"])

    return sorted((p for p in points if not any(dom(q, p) for q in points)), key=lambda p: p["nfe"])


def _plannable(rule: str, n: int) -> bool:
    """Whether ReMDM's ``rule`` has a plan in ``n`` steps: ``loop`` needs a step between its phases (none in 2 or 3
    steps at the authors' loop_start 0.45 and loop_end 0.95, which remdm refuses), the other rules any ``n``."""
    from mdm_energy.revision import revision_plan

    try:
        revision_plan("linear", n, rule)
    except ValueError:
        return False
    return True


def revising_points(items, cfg: dict, tuned: str, L: int, cache: dict) -> list[dict]:
    """Family (d): the revising decoders and, as their own family, what each revises on top of — the same
    positions and temperature without revision — at the step counts of the fixed schedules plus N = 2L."""
    from mdm_energy.registry import SAMPLERS

    tag, points = items.tag, []
    steps = sorted(set(cfg["steps"]) | {L, 2 * L})
    for n in steps:
        for rule in (r for r in REMDM_RULES if _plannable(r, n)):
            for spec in (["linear", tuned] if rule == "cap" else ["linear"]):
                label = f"remdm {rule} {spec} N={n}"
                s, nfe = _cell(cache, f"{tag}|{label}", items.sampler("remdm", sigma=rule, schedule=spec, steps=n))
                points.append(_point("revising", label, s, nfe, base=f"ancestral {spec} N={n} T=1"))
        for spec in ("linear", tuned):
            label = f"ancestral {spec} N={n} T=1"
            s, nfe = _cell(cache, f"{tag}|{label}", items.sampler("ancestral", schedule=spec, steps=n))
            points.append(_point("without revision", label, s, nfe))
    for n in cfg["steps"]:  # remdm-llada makes 2N calls by default
        for temp in (0.0, 1.0):
            label = f"remdm-llada linear N={n} T={temp:g}"
            s, nfe = _cell(cache, f"{tag}|{label}", items.sampler("remdm-llada", steps=n, temperature=temp))
            points.append(_point("revising", label, s, nfe, base=f"fixed linear N={n}" + (" T=1" if temp else "")))
            if temp:
                label = f"fixed linear N={n} T=1"
                s, nfe = _cell(cache, f"{tag}|{label}", items.sampler("fixed", steps=n, temperature=1.0))
                points.append(_point("without revision", label, s, nfe))
    if "wino" in SAMPLERS:
        for draft, verify in WINO_THRESHOLDS:
            label = f"wino {draft}/{verify}"
            s, nfe = _cell(cache, f"{tag}|{label}", items.sampler("wino", threshold=draft, verify_threshold=verify))
            points.append(_point("revising", label, s, nfe, base=f"threshold {draft}"))
    return points


#: Prophet's exit gaps (early, mid, late): the authors' 7.5/5/2.5, set for LLaDA-8B's logits, and scaled up —
#: a small model's logits are smaller, so the authors' gaps end decoding at once on our checkpoints.
PROPHET_GAPS = tuple((7.5 * f, 5.0 * f, 2.5 * f) for f in (1, 2, 4))
#: KLASS's (confidence, KL) thresholds of the authors' LLaDA scripts: GSM8K, MATH, HumanEval, MBPP (history 2).
KLASS_SETTINGS = ((0.6, 0.015), (0.6, 0.01), (0.9, 0.01), (0.7, 0.01))
#: DUS's block lengths (its calls per block are about log2 B; the authors use 8 to 64), those that tile the
#: window, and the whole window.
DUS_BLOCKS = (3, 4, 8, 9, 16, 27, 32)


def token_prior_file(items) -> str:
    """PC-Sampler's background token frequencies for a task: the authors count a corpus; ours counts the task's
    training windows (prompt and answer with its EOS padding, 5,000 items), written once beside the results."""
    from mdm_energy.token_prior import count_tokens

    path = RESULTS / "token_priors" / f"{items.name}.json"
    if not path.exists():
        ids, _ = items.task.encode(items.task.examples("train", 5000, seed=11))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        count_tokens(ids.tolist()).write(tmp)
        tmp.replace(path)
    return str(path.relative_to(ROOT))


def peer_points(items, cfg: dict, schedules: dict, L: int, cache: dict, lean: bool = False) -> list[dict]:
    """Family (e): the rules that decide which tokens and when to stop — Prophet, KLASS, PC-Sampler, DUS — at the
    authors' settings ("peer rules"), and each with a schedule behind its count ("peer rules + schedule": the
    tuned Beta, and the information profile where its count is per step). ``schedules`` maps a label (``tuned``,
    ``profile``) to ``{steps: spec}``. ``lean``: KLASS at its default and GSM8K settings only, PC-Sampler without
    the training-frequency prior."""
    tag, points, steps = items.tag, [], cfg["steps"]

    def add(family: str, label: str, sampler: str, **opts) -> None:
        s, nfe = _cell(cache, f"{tag}|{label}", items.sampler(sampler, **opts))
        points.append(_point(family, label, s, nfe))

    for early, mid, late in PROPHET_GAPS:  # the authors' steps = gen_length; their count is LLaDA's (linear)
        gaps = {"gap_early": early, "gap_mid": mid, "gap_late": late}
        add("peer rules", f"prophet linear N={L} gaps={early:g}/{mid:g}/{late:g}", "prophet", steps=L, **gaps)
        for name, by_n in schedules.items():
            n = max(by_n)
            add("peer rules + schedule", f"prophet {name} N={n} gaps={early:g}/{mid:g}/{late:g}", "prophet",
                schedule=by_n[n], steps=n, **gaps)
    for conf, kl in KLASS_SETTINGS[::2] if lean else KLASS_SETTINGS:  # fallback one token per call (the authors' steps = gen_length)
        add("peer rules", f"klass {conf}/{kl}", "klass", threshold=conf, kl_threshold=kl, steps=L)
    for name, by_n in schedules.items():  # the schedule's count as the fallback: fewer calls when nothing is stable
        for n in steps:
            add("peer rules + schedule", f"klass {name} N={n} 0.9/0.01", "klass", schedule=by_n[n], steps=n)
    decay, prior = PC_DECAY.get(items.name, 0.25), token_prior_file(items)
    for n in steps:
        for label, opts in ((f"pc-sampler linear N={n} decay={decay:g}", {}),
                            (f"pc-sampler linear N={n} decay={decay:g} train-prior", {"token_prior": prior}))[:1 + (not lean)]:
            add("peer rules", label, "pc-sampler", steps=n, position_decay=decay, **opts)
        for name, by_n in schedules.items():
            add("peer rules + schedule", f"pc-sampler {name} N={n} decay={decay:g}", "pc-sampler", schedule=by_n[n],
                steps=n, position_decay=decay)
    for b in [b for b in DUS_BLOCKS if b < L and L % b == 0] + [L]:  # blocks must tile the window
        add("peer rules", f"dus B={b}", "dus", **({"block_length": b} if b < L else {}))
    for name, by_n in schedules.items():  # the dilated order of the whole window, cut by the schedule's counts
        for n in steps:
            add("peer rules + schedule", f"dus-schedule {name} N={n}", "dus-schedule", schedule=by_n[n], steps=n)
    return points


def _profile_specs(items, steps: list[int]) -> "dict[int, str]":
    """The information profile's schedule (confidence order) at each step count, as benchmarks/real_tasks.py
    profiled it on validation prompts (no answers) — empty if it has not run on this task; the script stops
    with one line if it ran on other weights (the profile is the model's, so it is stale after retraining)."""
    path = RESULTS / "real_tasks.json"
    if not path.exists():
        return {}
    table = json.loads(path.read_text()).get("tasks", {}).get(items.name, {})
    if not table:
        return {}
    digest = table_digest(table)
    if digest != items.digest:
        raise SystemExit(f"{path}'s {items.name} profile was measured on other weights ({digest!r}; these are "
                         f"{items.digest!r}): run `python benchmarks/real_tasks.py --tasks {items.name}` first")
    specs = table.get("profile", {}).get("confidence", {})
    return {n: specs["specs"][str(n)] for n in steps if str(n) in specs.get("specs", {})}


def run_task(name: str, args, cache: dict) -> dict:
    cfg = dict(CONFIG[name])
    items = TestItems.load(name, args.quick)
    task, tag = items.task, items.tag
    tuned = items.tuned_schedule()["schedule"]
    t0 = time.time()

    points = []
    for spec in dict.fromkeys(FIXED + [tuned]):
        for n in cfg["steps"]:
            s, nfe = _cell(cache, f"{tag}|fixed|{spec}|{n}", items.fixed(spec, n))
            points.append(_point("fixed schedules", f"fixed {spec} N={n}", s, nfe))
    profile = _profile_specs(items, cfg["steps"])
    for n, spec in profile.items():
        s, nfe = _cell(cache, f"{tag}|fixed|{spec}|{n}", items.fixed(spec, n))
        points.append(_point("fixed schedules", f"fixed profile N={n}", s, nfe))
    for sampler, opts in ADAPTIVE:
        key, value = next(iter(opts.items()))
        label = f"{sampler} {value}"
        s, nfe = _cell(cache, f"{tag}|{label}", items.sampler(sampler, **opts))
        points.append(_point("adaptive", label, s, nfe))
    lean = name in args.lean.split(",")
    for sampler in ("threshold-floor", "threshold-cap"):
        for spec in dict.fromkeys(["linear", tuned]):
            for n in cfg["steps"]:
                for th in HYBRID_THRESHOLDS:
                    label = f"{sampler} {spec} N={n} threshold={th}"
                    if lean and f"{tag}|{label}|s" not in cache and not (
                            sampler == "threshold-floor" and spec == tuned and n in cfg["steps"][::2]):
                        continue  # lean: threshold-floor with the tuned Beta at every other N, and what is cached
                    s, nfe = _cell(cache, f"{tag}|{label}",
                                   items.sampler(sampler, schedule=spec, steps=n, threshold=th))
                    points.append(_point("schedule-aware adaptive", label, s, nfe))
    if "revising" in args.families and name not in args.no_revising.split(","):
        points += revising_points(items, cfg, tuned, task.gen_len, cache)
    if "peers" in args.families:
        peer_steps = cfg["steps"][::2] if lean else cfg["steps"]
        schedules = {"tuned": {n: tuned for n in peer_steps}}
        if len(profile) == len(cfg["steps"]) and not lean:
            schedules["profile"] = profile
        points += peer_points(items, {**cfg, "steps": peer_steps}, schedules, task.gen_len, cache, lean)
    print(f"{name}: {len(points)} configurations in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    families = sorted({p["family"] for p in points})
    fronts = {f: _front([p for p in points if p["family"] == f]) for f in families}
    budgets = sorted({round(p["nfe"], 1) for p in fronts["fixed schedules"]} | {2.0 * task.gen_len})
    ladder = []
    for b in budgets:
        row = {"budget": b}
        for f in families:
            ok = [p for p in points if p["family"] == f and p["nfe"] <= b + 1e-9]
            best = max(ok, key=lambda p: p["value"]) if ok else None
            row[f] = best
        ladder.append(row)
    return {"metric": task.metric, "L": task.gen_len, "n": len(items.test), "tuned": tuned, "points": points,
            "fronts": fronts, "ladder": ladder, "revision": _revision_rows(ladder, points),
            "schedule_vs_peers": _schedule_rows(ladder), "lean": lean,
            "revising": any(p["family"] == "revising" for p in points), "seconds": time.time() - t0}


def _plot(all_res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_res), figsize=(5.3 * len(all_res), 4.3), squeeze=False)
    for ax, (name, res) in zip(axes[0], all_res.items()):
        for k, (fam, front) in enumerate(res["fronts"].items()):
            pts = [p for p in res["points"] if p["family"] == fam]
            ax.scatter([p["nfe"] for p in pts], [p["value"] for p in pts], s=8, alpha=0.3, color=f"C{k}")
            ax.step([p["nfe"] for p in front], [p["value"] for p in front], where="post", color=f"C{k}", label=fam)
            ax.errorbar([p["nfe"] for p in front], [p["value"] for p in front], yerr=[p["stderr"] for p in front],
                        fmt="o", ms=3, color=f"C{k}", capsize=2)
        ax.set(xscale="log", xlabel="mean model calls per answer", ylabel=res["metric"],
               title=f"{name} (L={res['L']}, n={res['n']})")
        from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

        ax.xaxis.set_major_locator(FixedLocator([r["budget"] for r in res["ladder"]]))  # the budgets, plainly
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "pareto.png", dpi=130)
    plt.close(fig)


def _markdown(all_res: dict, meta: dict) -> str:
    lines = ["# Quality against model calls: schedules, adaptive decoding, and both together", "",
             f"Regenerate: `{meta['command']}` ({meta['minutes']:.0f} min this run, reading cached cells; computing "
             f"every cell took {meta['compute_minutes']:.0f} min in all, summed per cell, on 2 cores shared with other "
             "work, so take the times as rough). Same test items and per-item seeds as "
             "real_tasks.md; low_confidence candidates at temperature 0 unless a label says otherwise (`remdm` and "
             "`ancestral` draw at temperature 1, as ReMDM's authors do; `T=1` marks the others). For each budget (a fixed schedule's step count), the best "
             "quality each family reaches within that many mean model calls per answer (± s.e.).", ""]
    for name, res in all_res.items():
        fams = list(res["fronts"])
        lines += [f"## {name} ({res['metric']}, L = {res['L']}, {res['n']} items; tuned `{res['tuned']}`)", "",
                  *(["Lean run (`--lean`): hybrids computed only as threshold-floor with the tuned Beta at every other "
                     "step count (others shown where an earlier run cached them); peer rules at every other step "
                     "count, their schedule variants with the tuned Beta only; KLASS at 0.6/0.015 and 0.9/0.01; "
                     "PC-Sampler with the uniform prior only.", ""]
                    if res.get("lean") else []),
                  *(["Run without the revising decoders (`--no-revising`).", ""] if not res.get("revising") else []),
                  "| budget (mean calls) | " + " | ".join(fams) + " |", "|---|" + "---|" * len(fams)]
        for row in res["ladder"]:
            cells = []
            best = max((row[f]["value"] for f in fams if row[f]), default=None)
            for f in fams:
                p = row[f]
                if p is None:
                    cells.append("—")
                    continue
                mark = "**" if best is not None and p["value"] == best else ""
                cells.append(f"{mark}{p['value']:.3f} ± {p['stderr']:.3f}{mark} ({p['nfe']:.1f}: {p['label']})")
            lines.append(f"| {row['budget']:g} | " + " | ".join(cells) + " |")
        if res.get("revision"):
            lines += ["", "Revision, paired over the same items (Δ ± paired s.e.; > 0: the revising decoder is better): "
                      "the best revising configuration within each budget against the best that never revises within "
                      "the budget, and against its own base — the same positions, counts or threshold and temperature "
                      "without revision, at the base's own mean calls (shown).", "",
                      "| budget | best revising | − best non-revising | − its base (calls) |", "|---|---|---|---|"]
            for r in res["revision"]:
                cells = []
                for key in ("vs_best", "vs_base"):
                    c = r.get(key)
                    cells.append("—" if c is None else
                                 f"{c['diff']:+.3f} ± {c['stderr']:.3f} ({c['ref']['label']}, {c['ref']['nfe']:.1f})")
                rev = r["revising"]
                lines.append(f"| {r['budget']:g} | {rev['value']:.3f} ({rev['nfe']:.1f}: {rev['label']}) | "
                             + " | ".join(cells) + " |")
            verdict = _verdict(res["revision"], "vs_best")
            lines += ["", "Against the best decoder that never revises, within 2 paired s.e.: revision wins at budgets "
                      + (", ".join(verdict["wins"]) or "none") + "; ties at " + (", ".join(verdict["ties"]) or "none")
                      + "; loses at " + (", ".join(verdict["loses"]) or "none") + "."]
        if res.get("schedule_vs_peers"):
            lines += ["", "Schedules against the peers' rules, paired over the same items (Δ ± paired s.e.; > 0: the "
                      "schedule is better): per budget, the best configuration a schedule drives (fixed — hand-crafted, "
                      "tuned or profile —, the hybrids, the peer rules with a schedule behind their count) against the "
                      "best peer rule at its own settings (threshold, EB, Prophet, KLASS, PC-Sampler, DUS, ReMDM, WINO).",
                      "", "| budget | best schedule-driven | − best peer rule (its calls) |", "|---|---|---|"]
            for r in res["schedule_vs_peers"]:
                c, best = r["vs_peer"], r["schedule"]
                lines.append(f"| {r['budget']:g} | {best['value']:.3f} ({best['nfe']:.1f}: {best['label']}) | "
                             f"{c['diff']:+.3f} ± {c['stderr']:.3f} ({c['ref']['label']}, {c['ref']['nfe']:.1f}) |")
            verdict = _verdict(res["schedule_vs_peers"], "vs_peer")
            lines += ["", "Does a schedule improve on the best peer rule at equal calls (2 paired s.e.)? Better at budgets "
                      + (", ".join(verdict["wins"]) or "none") + "; tied at " + (", ".join(verdict["ties"]) or "none")
                      + "; worse at " + (", ".join(verdict["loses"]) or "none") + "."]
        lines += [""]
    lines += ["![fronts](pareto.png)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--lean", default="", metavar="TASKS",
                    help="tasks (comma-separated) run with fewer new cells: the hybrids as threshold-floor with the "
                         "tuned Beta (and any other already cached), they and the peer rules at every other step count "
                         "(schedule variants with the tuned Beta only), KLASS at two settings, PC-Sampler with the "
                         "uniform prior only")
    ap.add_argument("--no-revising", default="", metavar="TASKS",
                    help="tasks (comma-separated) run without the revising decoders (their N goes up to 2L)")
    ap.add_argument("--families", default="revising,peers",
                    help="optional families beside the fixed, adaptive and hybrid ones: revising, peers (comma-separated)")
    args = ap.parse_args()
    args.families = {f for f in args.families.split(",") if f}
    if args.families - {"revising", "peers"}:
        ap.error(f"unknown --families {sorted(args.families - {'revising', 'peers'})}: choose from revising, peers")

    cache = _cache()
    t0 = time.time()
    all_res = {}
    for name in [t for t in args.tasks.split(",") if t]:
        if has_checkpoint(name):
            all_res[name] = run_task(name, args, cache)
    meta = {"command": " ".join(["python benchmarks/pareto.py", *sys.argv[1:]]), "minutes": (time.time() - t0) / 60,
            "compute_minutes": sum(float(cache[f"{k}|t"][0]) for k in dict.fromkeys(USED) if f"{k}|t" in cache) / 60}
    def saved(obj):  # the per-item scores stay in the cache, not in the JSON
        if isinstance(obj, dict):
            return {k: saved(v) for k, v in obj.items() if not k.startswith("_")}
        return [saved(v) for v in obj] if isinstance(obj, list) else obj

    (RESULTS / "pareto.json").write_text(json.dumps({"meta": meta, "tasks": saved(all_res)}, indent=1) + "\n")
    _plot(all_res)
    (RESULTS / "pareto.md").write_text(_markdown(all_res, meta))
    print((RESULTS / "pareto.md").read_text())


if __name__ == "__main__":
    main()
