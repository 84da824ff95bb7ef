"""``mdm-energy demo``: the project's main job on embedded defaults (no downloads).

It shows, in a few seconds, what the tool is for: the schedules of the Beta family and the tokens
they unmask per step, their energies (every geodesic pair costs exactly pi^2, mismatched pairs more),
the brute-force check that the three path energies of a masked diffusion model are proportional while
those of uniform-noise diffusion are not, the paper's toy made exact (the best schedule depends on the
task), and an exact-KL comparison of schedules on a structured law. It writes ``schedules.png``,
``toy.png``, ``exact_grid.png`` and ``demo.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

from ._common import CLIError, emit, format_table, json_safe, positive_int, write_text_atomic

EXACT_DIST, EXACT_STEPS = "templates:7,3,0", 4
DEMO_SCHEDULES = ["linear", "sin2", "sine", "maskgit", "beta:0.9,0.3", "beta:1,0.2", "beta:0.3,0.9", "beta:0.9,0.9"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a tour of schedules, counts and energies on built-in defaults")
    p.add_argument("--out", default="mdm-energy-demo", help="folder for the figure and JSON (default ./mdm-energy-demo)")
    p.add_argument("--length", "-L", type=positive_int("length"), default=256, help="generation length (default 256)")
    p.add_argument("--steps", "-N", type=positive_int("steps"), default=8, help="sampling steps (default 8)")
    p.add_argument("--checkpoints", default="checkpoints", help="folder of trained task models (default ./checkpoints)")
    p.add_argument("--limit", type=positive_int("limit"), default=100, help="test examples per real-task cell (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4f}"


def run(args: argparse.Namespace) -> None:
    from ..energy import OPTIMUM, brute_force_energies, discrete_energy, energy_J, random_distribution
    from ..exact import ExactDenoiser, KLObjective, beta_grid, exact_grid_study, exact_sampler
    from ..plots import plot_kl_heatmap, plot_schedules, plot_toy
    from ..schedules import parse_schedule

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out exists and is not a folder: {str(out)!r}")
    L, N = args.length, args.steps
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731

    log("[1/6] schedules and tokens per step")
    scheds = [parse_schedule(s) for s in DEMO_SCHEDULES]
    counts = {s.spec: s.counts(L, N).tolist() for s in scheds}

    log("[2/6] energies J[alpha; gamma] (quadrature in the geodesic variable)")
    energies = {}
    for s in scheds:
        energies[s.spec] = {
            "own_gamma": energy_J(s),
            "gamma_t": energy_J(s, "sin2"),
            "gamma_linear": energy_J(s, "linear"),
            f"D_{N}_gamma_t": discrete_energy(s, "sin2", N),
        }

    log("[3/6] brute-force path energies, n=3 tokens, d=2 symbols, alpha=sin2, gamma=t")
    brute = {}
    for path in ("mdm", "uniform"):
        for seed in (0, 1):
            r = brute_force_energies(random_distribution(3, 2, seed), "sin2", "sin2", path)
            brute[f"{path}/seed{seed}"] = {
                "kinetic": r.kinetic,
                "conditional_kinetic": r.conditional_kinetic,
                "geodesic": r.geodesic,
                "ratio_kinetic_conditional": r.ratio_kinetic_conditional,
                "ratio_conditional_geodesic": r.ratio_conditional_geodesic,
            }

    log("[4/6] the paper's toy, exact: best Beta schedule per target (fixed-count random, N=3)")
    toy = {}
    for name in ("toy1", "toy2"):
        den = ExactDenoiser(name)
        grid = beta_grid(KLObjective(den, "fixed", 3))
        best = min(grid, key=lambda g: (g.kl, g.a, g.b))
        toy[name] = {"best": {"a": best.a, "b": best.b, "kl": best.kl},
                     "laws": {s: exact_sampler(den, "fixed", s, 3) for s in ("beta:0.9,0.3", "beta:0.3,0.9")}}

    log(f"[5/6] exact KL of schedules on {EXACT_DIST}, fixed-count random, N={EXACT_STEPS}")
    study = exact_grid_study(ExactDenoiser(EXACT_DIST), "fixed", EXACT_STEPS)

    log(f"[6/6] real tasks at low step counts (checkpoints in {args.checkpoints!r})")
    real = _real_tasks(Path(args.checkpoints), args.limit, log)

    out.mkdir(parents=True, exist_ok=True)
    labels = ["".join("ab"[v] for v in x) for x in itertools.product(range(2), repeat=5)]
    toy_figure = plot_toy(
        [{"title": f"{name}: best beta:{t['best']['a']:g},{t['best']['b']:g}", "labels": labels,
          "target": ExactDenoiser(name).q.reshape(-1),
          "schedules": {s: {"law": r.law.reshape(-1), "kl": r.kl} for s, r in t["laws"].items()}}
         for name, t in toy.items()],
        out / "toy.png", title="The paper's toy, exact (fixed-count random, N=3)",
    )
    grid_figure = plot_kl_heatmap(
        study["grid"], study["baselines"], out / "exact_grid.png", title=f"{EXACT_DIST}: fixed-count random, N={EXACT_STEPS}",
        extra={"optimum": study["optimum"]["kl"], "information-curve DP": study["infocurve"]["kl"]},
    )
    figure = plot_schedules(
        ["linear", "sin2", "beta:0.9,0.3", "beta:1,0.2", "beta:0.3,0.9"], N, L, out / "schedules.png",
        title="The Beta family of energy-optimal schedules: alpha = sin²(π/2 · I_t(a, b))",
    )
    payload = {
        "length": L,
        "steps": N,
        "counts": counts,
        "optimum": OPTIMUM,
        "energies": energies,
        "brute_force": brute,
        "toy": {k: {"best": v["best"], "kl": {s: r.kl for s, r in v["laws"].items()},
                    "counts": {s: r.counts for s, r in v["laws"].items()}} for k, v in toy.items()},
        "exact": {"dist": EXACT_DIST, "steps": EXACT_STEPS, "sampler": "fixed",
                  **{k: study[k] for k in ("best", "baselines", "optimum", "infocurve")}},
        "real_tasks": real,
        "files": {"figure": str(figure), "toy": str(toy_figure), "exact_grid": str(grid_figure), "json": str(out / "demo.json"),
                  "report": str(out / "report.md")},
    }
    write_text_atomic(out / "demo.json", json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")

    def human() -> str:
        parts = [f"mdm-energy demo — schedules for L={L} tokens in N={N} model calls\n"]
        parts.append(format_table(["schedule", "tokens unmasked per step"], [[k, " ".join(map(str, v))] for k, v in counts.items()]))
        parts.append(
            f"\nPer-token energy J[alpha; gamma] (optimum pi^2 = {OPTIMUM:.4f}; reached iff alpha = sin²(π/2·gamma)):"
        )
        parts.append(
            format_table(
                ["alpha", "own gamma", "gamma = t", "gamma = linear's", f"D_{N} (gamma = t)"],
                [[k, _fmt(v["own_gamma"]), _fmt(v["gamma_t"]), _fmt(v["gamma_linear"]), _fmt(v[f"D_{N}_gamma_t"])] for k, v in energies.items()],
            )
        )
        parts.append("\nBrute force over all states (n=3, d=2): MDM theory says E_k/E_c = 2.25 and E_c/E_g = 4 for any data law")
        parts.append(
            format_table(
                ["path/data", "E_k", "E_c", "E_g", "E_k/E_c", "E_c/E_g"],
                [[k, _fmt(v["kinetic"]), _fmt(v["conditional_kinetic"]), _fmt(v["geodesic"]),
                  _fmt(v["ratio_kinetic_conditional"]), _fmt(v["ratio_conditional_geodesic"])] for k, v in brute.items()],
            )
        )
        parts.append("  -> constant ratios for the masked path; data-dependent ones for uniform noise.")
        parts.append("\nThe paper's toy (n=5 binary tokens, N=3), exact KL(q || sampler) in nats:")
        parts.append(
            format_table(
                ["target", "beta:0.9,0.3", "beta:0.3,0.9", "best Beta on the 10x10 grid"],
                [[k, _fmt(v["laws"]["beta:0.9,0.3"].kl), _fmt(v["laws"]["beta:0.3,0.9"].kl),
                  f"beta:{v['best']['a']:g},{v['best']['b']:g} ({_fmt(v['best']['kl'])})"] for k, v in toy.items()],
            )
        )
        parts.append("  -> toy1 (aaaaa|bbbbb) wants one token first; toy2 (2-3 a's) many at once: the best schedule is task-specific.")
        o, b, ic = study["optimum"], study["best"], study["infocurve"]
        parts.append(f"\nExact KL on {EXACT_DIST} (n=7, d=3), fixed-count random, N={EXACT_STEPS}:")
        rows = [[name, _fmt(kl)] for name, kl in study["baselines"].items()]
        rows += [[f"best grid beta:{b['a']:g},{b['b']:g}", _fmt(b["kl"])],
                 [f"information-curve DP {ic['counts']}", _fmt(ic["kl"])],
                 [f"optimum {o['counts']}", _fmt(o["kl"])]]
        parts.append(format_table(["schedule", "KL"], rows))
        parts.append(_real_text(real))
        parts.append(f"\nwrote the report {out / 'report.md'} (with {figure.name}, {toy_figure.name}, {grid_figure.name}) "
                     f"and {out / 'demo.json'}")
        return "\n".join(parts)

    write_text_atomic(out / "report.md", _report(payload, human()))
    emit(args.json, payload, human)


def _real_tasks(folder: Path, limit: int, log) -> dict:
    """Schedules compared on each committed task model at its lowest step counts (skipped if absent)."""
    import json as _json

    from ..models import load_model
    from ..sampling import FixedCountSampler
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import evaluate

    out: dict = {}
    for name in TASKS:
        ck = folder / name
        if not (ck / "model.safetensors").is_file():
            log(f"      {name}: no checkpoint in {str(ck)!r}, skipped")
            continue
        task, model = get_task(name), load_model(ck)
        tuned = None
        if (ck / "tuned_schedule.json").is_file():
            tuned = _json.loads((ck / "tuned_schedule.json").read_text())["schedule"]
        specs = ["linear", "sin2", "beta:0.9,0.3"] + ([tuned] if tuned and tuned not in ("linear", "sin2", "beta:0.9,0.3") else [])
        steps = sorted({max(2, task.gen_len // 16), max(2, task.gen_len // 8)})
        test = task.examples("test", limit, seed=0)
        cells = {}
        for spec in specs:
            for n in steps:
                r = evaluate(task, model, test, FixedCountSampler(spec, n, remasking="low_confidence"), seed=0)
                cells[f"{spec}|{n}"] = {"value": r.value, "stderr": r.stderr, "n": r.n}
        out[name] = {"metric": task.metric, "steps": steps, "schedules": specs, "tuned": tuned, "cells": cells}
        log(f"      {name}: done")
    return out


def _real_text(real: dict) -> str:
    if not real:
        return "\nReal tasks: no trained checkpoints found (train with mdm-energy train; see README)."
    parts = ["\nReal tasks (small MDMs trained here), low_confidence remasking, test split, mean ± s.e.:"]
    for name, res in real.items():
        rows = [[spec] + [f"{res['cells'][f'{spec}|{n}']['value']:.3f} ± {res['cells'][f'{spec}|{n}']['stderr']:.3f}"
                          for n in res["steps"]] for spec in res["schedules"]]
        parts.append(f"{name} ({res['metric']})" + (f", tuned on validation: {res['tuned']}" if res["tuned"] else ""))
        parts.append(format_table(["schedule"] + [f"N={n}" for n in res["steps"]], rows))
    return "\n".join(parts)


def _report(payload: dict, text: str) -> str:
    return ("# mdm-energy demo report\n\n```\n" + text + "\n```\n\n"
            "![schedules](schedules.png)\n\n![the paper's toy](toy.png)\n\n![exact KL over the Beta grid](exact_grid.png)\n")
