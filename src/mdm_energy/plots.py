"""Figures for schedules (matplotlib, Agg backend; imported only when a plot is asked for).

Every function writes its figure atomically (:func:`mdm_energy._io.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ._io import atomic_write, check_output_path
from .schedules import Schedule, parse_schedule

__all__ = ["SUPPORTED_FORMATS", "check_plot_path", "save_figure", "plot_schedule", "plot_schedules", "plot_kl_heatmap",
           "plot_score_scatter", "plot_toy", "plot_profile", "plot_pareto"]

SUPPORTED_FORMATS = (".png", ".pdf", ".svg")


def check_plot_path(path: "str | os.PathLike[str]", what: str = "plot file") -> Path:
    """Validate a plot destination before any work (:func:`~mdm_energy._io.check_output_path`): a file with a
    supported suffix in an existing, writable folder."""
    return check_output_path(path, what, suffixes=SUPPORTED_FORMATS)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: "str | os.PathLike[str]") -> Path:
    """Save ``fig`` to ``path`` atomically and close it."""
    p = check_plot_path(path)
    try:
        return atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=150, bbox_inches="tight"), suffix=p.suffix)
    finally:
        _pyplot().close(fig)


def plot_schedules(
    schedules: Sequence["Schedule | str"], steps: int, length: int, path: "str | os.PathLike[str]", title: str | None = None
) -> Path:
    """α(t), γ(t) and the per-step token counts of several schedules side by side."""
    plt = _pyplot()
    scheds = [parse_schedule(s) for s in schedules]
    t = np.linspace(0.0, 1.0, 401)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / len(scheds)
    for j, s in enumerate(scheds):
        (line,) = axes[0].plot(t, s.alpha(t), label=s.spec)
        grid = s.grid(steps)
        axes[0].plot(grid, s.alpha(grid), "o", ms=3, color=line.get_color())
        axes[1].plot(t, s.gamma(t), color=line.get_color())
        k = np.arange(1, steps + 1)
        axes[2].bar(k + (j - (len(scheds) - 1) / 2) * width, s.counts(length, steps), width, color=line.get_color())
    axes[0].set(xlabel="t (0 = all masked, 1 = clean)", ylabel="α(t): fraction unmasked", title="mask schedule α")
    axes[1].set(xlabel="t", ylabel="γ(t) = (2/π) arcsin √α", title="geodesic time γ")
    axes[2].set(xlabel="step k", ylabel="tokens unmasked", title=f"tokens per step (L={length}, N={steps})")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_schedule(schedule: "Schedule | str", steps: int, length: int, path: "str | os.PathLike[str]") -> Path:
    """α(t), γ(t) and per-step counts of one schedule."""
    return plot_schedules([schedule], steps, length, path, title=parse_schedule(schedule).spec)


def _best(a: Sequence[float], b: Sequence[float], values: Sequence[float], minimize: bool) -> tuple[float, float, float]:
    k = min(range(len(values)), key=lambda i: values[i] if minimize else -values[i])
    return a[k], b[k], values[k]


def plot_kl_heatmap(
    a: Sequence[float], b: Sequence[float], values: Sequence[float], baselines: "dict[str, float]",
    path: "str | os.PathLike[str]", title: str = "", extra: "dict[str, float] | None" = None,
    minimize: bool = True, label: str = "KL(q ‖ sampler) [nats]", family: str = "beta",
    names: tuple[str, str] = ("a", "b"),
) -> Path:
    """Heatmap of a score (KL by default) at grid points ``(a[i], b[i])`` of a two-parameter schedule family
    (Beta by default; the axes are labelled by ``names``); for Beta, ``linear`` (½, ½) and ``sin2`` (1, 1)
    are marked where they fall on the grid's range; the best cell is starred, and every baseline's score is
    listed beside it."""
    plt = _pyplot()
    a_vals, b_vals = sorted(set(a)), sorted(set(b))
    Z = np.full((len(b_vals), len(a_vals)), np.nan)
    for ai, bi, v in zip(a, b, values):
        Z[b_vals.index(bi), a_vals.index(ai)] = v if np.isfinite(v) else np.nan
    fig, ax = plt.subplots(figsize=(7.5, 6))
    im = ax.pcolormesh(_edges(a_vals), _edges(b_vals), Z, cmap="viridis_r" if minimize else "viridis", shading="flat")
    fig.colorbar(im, ax=ax, label=label)
    ba, bb, bv = _best(a, b, values, minimize)
    ax.plot(ba, bb, "*", ms=16, color="red", mec="white", label=f"best {family}:{ba:g},{bb:g} ({bv:.4f})")
    marked = _BETA_POINTS if family == "beta" else ()
    shown = "Beta" if family == "beta" else family
    for name, (pa, pb), marker in marked:
        if name in baselines and a_vals[0] <= pa <= a_vals[-1] and b_vals[0] <= pb <= b_vals[-1]:
            ax.plot(pa, pb, marker, ms=10, mfc="none", mec="white", mew=2, label=f"{name} = beta:{pa:g},{pb:g} ({baselines[name]:.4f})")
    for name, kl in baselines.items():
        if name not in [m[0] for m in marked]:
            ax.plot([], [], " ", label=f"{name} ({kl:.4f}; no {shown} counterpart)")
    for name, kl in (extra or {}).items():
        ax.plot([], [], " ", label=f"{name} ({kl:.4f})")
    ax.set(xlabel=names[0], ylabel=names[1], title=title or f"KL over the {shown} grid")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.25, 1.0))
    return save_figure(fig, path)


def plot_score_scatter(
    a: Sequence[float], b: Sequence[float], values: Sequence[float], baselines: "dict[str, float]",
    path: "str | os.PathLike[str]", title: str = "", minimize: bool = True, label: str = "score",
    family: str = "beta", names: tuple[str, str] = ("a", "b"),
) -> Path:
    """The evaluated points ``(a[i], b[i])`` of a sampled search over a two-parameter schedule family (Beta by
    default; axes labelled by ``names``), coloured by score, the best starred."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6))
    sc = ax.scatter(a, b, c=values, cmap="viridis_r" if minimize else "viridis", s=40, edgecolors="k", linewidths=0.3)
    fig.colorbar(sc, ax=ax, label=label)
    ba, bb, bv = _best(a, b, values, minimize)
    ax.plot(ba, bb, "*", ms=16, color="red", mec="white", label=f"best {family}:{ba:.3g},{bb:.3g} ({bv:.4g})")
    marked = _BETA_POINTS if family == "beta" else ()
    for name, (pa, pb), marker in marked:
        if name in baselines:
            ax.plot(pa, pb, marker, ms=10, mfc="none", mec="black", mew=2, label=f"{name} ({baselines[name]:.4g})")
    for name, val in baselines.items():
        if name not in [m[0] for m in marked]:
            ax.plot([], [], " ", label=f"{name} ({val:.4g})")
    ax.set(xlabel=names[0], ylabel=names[1], title=title or "evaluated points")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.25, 1.0))
    return save_figure(fig, path)


def plot_score_line(
    x: Sequence[float], values: Sequence[float], baselines: "dict[str, float]", path: "str | os.PathLike[str]",
    title: str = "", minimize: bool = True, label: str = "score", family: str = "poly", name: str = "k",
) -> Path:
    """The score against the one parameter ``name`` of a one-parameter schedule family (points sorted by it),
    the best starred and every baseline as a horizontal line."""
    plt = _pyplot()
    order = sorted(range(len(x)), key=lambda i: x[i])
    xs, ys = [x[i] for i in order], [values[i] for i in order]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.plot(xs, ys, "o-", ms=4, color="C0", label=f"{family}:{name}")
    k = min(range(len(ys)), key=lambda i: ys[i] if minimize else -ys[i])
    ax.plot(xs[k], ys[k], "*", ms=16, color="red", mec="white", label=f"best {family}:{xs[k]:.4g} ({ys[k]:.4g})")
    for i, (base, val) in enumerate(baselines.items()):
        ax.axhline(val, ls="--", lw=1, color=f"C{i + 1}", label=f"{base} ({val:.4g})")
    ax.set(xlabel=name, ylabel=label, title=title or f"score over {family}:{name}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save_figure(fig, path)


#: Where two hand-crafted schedules sit on the Beta plane: linear = beta:0.5,0.5, sin2 = beta:1,1.
_BETA_POINTS = (("linear", (0.5, 0.5), "o"), ("sin2", (1.0, 1.0), "s"))


def _edges(values: Sequence[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.05, v[0] + 0.05])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def plot_toy(panels: Sequence[dict], path: "str | os.PathLike[str]", title: str = "") -> Path:
    """One row per target: the target law beside the laws sampled under each schedule (bars over all
    sequences, labelled a/b), with each schedule's KL in the legend."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(14, 3.6 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        labels = panel["labels"]
        x = np.arange(len(labels))
        series = [("target", panel["target"], None)] + [(k, v["law"], v["kl"]) for k, v in panel["schedules"].items()]
        width = 0.85 / len(series)
        for j, (name, law, kl) in enumerate(series):
            lab = name if kl is None else f"{name} (KL {kl:.3f})"
            ax.bar(x + (j - (len(series) - 1) / 2) * width, law, width, label=lab, color="black" if kl is None else None)
        ax.set_xticks(x, labels, rotation=90, fontsize=7, family="monospace")
        ax.set(ylabel="probability", title=panel["title"])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_profile(profile, schedules: Sequence, path: "str | os.PathLike[str]") -> Path:
    """An information profile u(j) (bits, ± 2 s.e.) and its information curve, beside the counts per step of
    the schedules it implies (:class:`~mdm_energy.profile.ProfileSchedule`)."""
    plt = _pyplot()
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    j = np.arange(profile.length)
    h = np.asarray(profile.entropy) / np.log(2)
    se = np.nan_to_num(np.asarray(profile.stderr) / np.log(2))
    ax0.fill_between(j, h - 2 * se, h + 2 * se, alpha=0.25, label="± 2 s.e.")
    what = {"mean": "mean entropy at a masked position", "total": "total remaining entropy / L",
            "committed": "entropy still to commit / L", "answer": "mean entropy over the answer span"}
    stat = getattr(profile, "statistic", "mean")
    ax0.plot(j, h, label=f"u(j) ({stat}): {what.get(stat, stat)}")
    ax0.plot(j, profile.smoothed() / np.log(2), "--", label="non-increasing fit")
    blocks = getattr(profile, "block_length", None)
    ax0.set_xlabel("positions revealed j" + (f" (blocks of {blocks}, back to back)" if blocks else ""))
    ax0.set_ylabel("bits")
    ax0.set_title(f"information profile ({profile.order} order, {profile.samples} samples)")
    ax0.legend(fontsize=8)
    for sched in schedules:
        steps = np.arange(1, sched.steps + 1)
        ax1.step(steps, sched.counts, where="mid", label=f"N={sched.steps}: {sched.table[:40]}")
        ax1.plot(steps, sched.beta_counts, "o:", ms=3, label=f"nearest {sched.beta}")
    ax1.set_xlabel("step")
    ax1.set_ylabel("tokens unmasked")
    ax1.set_title("counts per step from the profile")
    if schedules:
        ax1.legend(fontsize=7)
    return save_figure(fig, path)


def plot_pareto(families: dict, baselines: Sequence = (), path: "str | os.PathLike[str]" = "front.png",
                title: str = "") -> Path:
    """Quality against mean model calls: each family's points (a :class:`~mdm_energy.tuning.pareto.ParetoPoint`
    list) with its front drawn as a staircase, and the baselines labelled."""
    from .tuning.pareto import front_of

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, (name, points) in enumerate(families.items()):
        color = f"C{k}"
        ax.scatter([p.nfe for p in points], [p.quality for p in points], s=10, alpha=0.35, color=color)
        front = front_of(points)
        ax.step([p.nfe for p in front], [p.quality for p in front], where="post", color=color, label=f"{name} front")
        ax.errorbar([p.nfe for p in front], [p.quality for p in front], yerr=[p.stderr for p in front], fmt="o",
                    ms=3, color=color, capsize=2)
    for p in baselines:
        ax.plot(p.nfe, p.quality, "kx", ms=5)
        ax.annotate(p.label, (p.nfe, p.quality), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("mean model calls per answer")
    ax.set_ylabel("quality")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
