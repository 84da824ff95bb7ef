"""How ``mdm-energy demo`` presents its results: the text report, ``report.md``, figures and ``demo.json``."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import format_table, json_safe, write_text_atomic
from ..energy import OPTIMUM
from ..exact import ExactDenoiser
from .compute import EXACT_DIST, EXACT_STEPS, DemoResult

__all__ = ["DemoFiles", "demo_json", "demo_text", "write_demo"]

BRUTE_KEYS = ("kinetic", "conditional_kinetic", "geodesic", "ratio_kinetic_conditional", "ratio_conditional_geodesic")


@dataclass(frozen=True)
class DemoFiles:
    """The files :func:`write_demo` wrote."""

    figure: Path
    toy: Path
    exact_grid: Path
    json: Path
    report: Path

    def as_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4f}"


def demo_json(result: DemoResult, files: "DemoFiles | None" = None) -> dict[str, Any]:
    """The demo as one JSON object (the keys of ``demo.json`` and of ``mdm-energy demo --json``)."""
    return {
        "length": result.length,
        "steps": result.steps,
        "counts": result.counts,
        "optimum": OPTIMUM,
        "energies": result.energies,
        "brute_force": {k: {key: getattr(v, key) for key in BRUTE_KEYS} for k, v in result.brute_force.items()},
        "toy": {k: {"best": t.best.as_json(), "kl": {s: r.kl for s, r in t.laws.items()},
                    "counts": {s: r.counts for s, r in t.laws.items()}} for k, t in result.toy.items()},
        "exact": {"dist": EXACT_DIST, "steps": EXACT_STEPS, "sampler": "fixed", "remasking": "random",
                  **{k: v for k, v in result.exact.as_json().items() if k != "grid"}},
        "real_tasks": {name: {"metric": t.metric, "steps": t.steps, "schedules": t.schedules, "tuned": t.tuned,
                              "cells": {f"{s}|{n}": c.__dict__ for (s, n), c in t.cells.items()}}
                       for name, t in result.real_tasks.items()},
        **({"files": files.as_json()} if files else {}),
    }


def demo_text(result: DemoResult, files: "DemoFiles | None" = None) -> str:
    """The human-readable report."""
    L, N = result.length, result.steps
    parts = [f"mdm-energy demo — schedules for L={L} tokens in N={N} model calls\n"]
    parts.append(format_table(["schedule", "tokens unmasked per step"], [[k, " ".join(map(str, v))] for k, v in result.counts.items()]))
    parts.append(f"\nPer-token energy J[alpha; gamma] (optimum pi^2 = {OPTIMUM:.4f}; reached iff alpha = sin²(π/2·gamma)):")
    parts.append(format_table(
        ["alpha", "own gamma", "gamma = t", "gamma = linear's", f"D_{N} (gamma = t)"],
        [[k, _fmt(v["own_gamma"]), _fmt(v["gamma_t"]), _fmt(v["gamma_linear"]), _fmt(v[f"D_{N}_gamma_t"])]
         for k, v in result.energies.items()],
    ))
    parts.append("\nBrute force over all states (n=3, d=2): MDM theory says E_k/E_c = 2.25 and E_c/E_g = 4 for any data law")
    parts.append(format_table(
        ["path/data", "E_k", "E_c", "E_g", "E_k/E_c", "E_c/E_g"],
        [[k] + [_fmt(getattr(v, key)) for key in BRUTE_KEYS] for k, v in result.brute_force.items()],
    ))
    parts.append("  -> constant ratios for the masked path; data-dependent ones for uniform noise.")
    parts.append("\nThe paper's toy (n=5 binary tokens, N=3), exact KL(q || sampler) in nats:")
    parts.append(format_table(
        ["target", "beta:0.9,0.3", "beta:0.3,0.9", "best Beta on the 10x10 grid"],
        [[k, _fmt(t.laws["beta:0.9,0.3"].kl), _fmt(t.laws["beta:0.3,0.9"].kl),
          f"beta:{t.best.a:g},{t.best.b:g} ({_fmt(t.best.kl)})"] for k, t in result.toy.items()],
    ))
    parts.append("  -> toy1 (aaaaa|bbbbb) wants one token first; toy2 (2-3 a's) many at once: the best schedule is task-specific.")
    ex = result.exact
    parts.append(f"\nExact KL on {EXACT_DIST} (n=7, d=3), fixed-count random, N={EXACT_STEPS}:")
    rows = [[name, _fmt(kl)] for name, kl in ex.baselines.items()]
    rows += [[f"best grid beta:{ex.best.a:g},{ex.best.b:g}", _fmt(ex.best.kl)],
             [f"information-curve DP {ex.infocurve.counts}", _fmt(ex.infocurve.kl)],
             [f"optimum {ex.optimum.counts}", _fmt(ex.optimum.kl)]]
    parts.append(format_table(["schedule", "KL"], rows))
    parts.append(_real_text(result))
    if files:
        parts.append(f"\nwrote the report {files.report} (with {files.figure.name}, {files.toy.name}, {files.exact_grid.name}) "
                     f"and {files.json}")
    return "\n".join(parts)


def _real_text(result: DemoResult) -> str:
    if not result.real_tasks:
        return "\nReal tasks: no trained checkpoints found (train with mdm-energy train; see README)."
    parts = ["\nReal tasks (small MDMs trained here), low_confidence remasking, test split, mean ± s.e.:"]
    for name, t in result.real_tasks.items():
        rows = [[spec] + [f"{t.cells[(spec, n)].value:.3f} ± {t.cells[(spec, n)].stderr:.3f}" for n in t.steps]
                for spec in t.schedules]
        parts.append(f"{name} ({t.metric})" + (f", tuned on validation: {t.tuned}" if t.tuned else ""))
        parts.append(format_table(["schedule"] + [f"N={n}" for n in t.steps], rows))
    return "\n".join(parts)


def write_demo(result: DemoResult, out: "str | Path") -> DemoFiles:
    """Write ``schedules.png``, ``toy.png``, ``exact_grid.png``, ``demo.json`` and ``report.md`` to ``out``."""
    from ..plots import plot_kl_heatmap, plot_schedules, plot_toy

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = ["".join("ab"[v] for v in x) for x in itertools.product(range(2), repeat=5)]
    toy = plot_toy(
        [{"title": f"{name}: best beta:{t.best.a:g},{t.best.b:g}", "labels": labels,
          "target": ExactDenoiser(name).q.reshape(-1),
          "schedules": {s: {"law": r.law.reshape(-1), "kl": r.kl} for s, r in t.laws.items()}}
         for name, t in result.toy.items()],
        out / "toy.png", title="The paper's toy, exact (fixed-count random, N=3)",
    )
    ex = result.exact
    grid = plot_kl_heatmap(
        [g.a for g in ex.grid], [g.b for g in ex.grid], [g.kl for g in ex.grid], ex.baselines, out / "exact_grid.png",
        title=f"{EXACT_DIST}: fixed-count random, N={EXACT_STEPS}",
        extra={"optimum": ex.optimum.kl, "information-curve DP": ex.infocurve.kl},
    )
    figure = plot_schedules(
        ["linear", "sin2", "beta:0.9,0.3", "beta:1,0.2", "beta:0.3,0.9"], result.steps, result.length, out / "schedules.png",
        title="The Beta family of energy-optimal schedules: alpha = sin²(π/2 · I_t(a, b))",
    )
    files = DemoFiles(figure, toy, grid, out / "demo.json", out / "report.md")
    write_text_atomic(files.json, json.dumps(json_safe(demo_json(result, files)), indent=2, allow_nan=False) + "\n")
    report = ("# mdm-energy demo report\n\n```\n" + demo_text(result, files) + "\n```\n\n"
              "![schedules](schedules.png)\n\n![the paper's toy](toy.png)\n\n![exact KL over the Beta grid](exact_grid.png)\n")
    write_text_atomic(files.report, report)
    return files

