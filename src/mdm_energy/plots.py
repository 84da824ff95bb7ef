"""Figures for schedules (matplotlib, Agg backend; imported only when a plot is asked for).

Every function writes its figure atomically (:func:`mdm_energy._io.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ._io import atomic_write
from .schedules import Schedule, parse_schedule

__all__ = ["SUPPORTED_FORMATS", "check_plot_path", "save_figure", "plot_schedule", "plot_schedules"]

SUPPORTED_FORMATS = (".png", ".pdf", ".svg")


def check_plot_path(path: "str | os.PathLike[str]") -> Path:
    """Validate an output path before any work: a supported suffix and an existing, writable folder."""
    p = Path(path)
    if p.suffix.lower() not in SUPPORTED_FORMATS:
        raise ValueError(f"plot file must end in {', '.join(SUPPORTED_FORMATS)}, got {str(path)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"folder for the plot does not exist: {str(parent)!r}")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"folder for the plot is not writable: {str(parent)!r}")
    return p


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
