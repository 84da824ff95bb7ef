"""Tuning reports: the score over the family's parameters, the best schedules, a markdown table, all trials.

``write_report(result, objective, steps, length, folder)`` writes

* ``heatmap.png`` — for a two-parameter family (Beta's (a, b)), the score over its two parameters (a grid
  as cells, sampled points as a scatter), baselines marked; for a one-parameter family, ``scores.png``
  instead: the score against that parameter, baselines as lines (no plot for more parameters);
* ``schedules.png`` — α(t), γ(t) and per-step counts of the best three schedules and linear;
* ``report.md`` — the best schedules against the baselines, with standard errors;
* ``trials.csv`` and ``trials.json`` — every trial.

The report appears all at once: nothing is left behind by an interrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from .._io import json_safe, naming_full_disk, write_text_atomic
from .._signals import held
from .study import TuneResult

__all__ = ["write_report", "write_pareto_report"]


def _fmt(x, se=None) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    out = f"{x:.5g}"
    if se is not None and isinstance(se, float) and math.isfinite(se) and se > 0:
        out += f" ± {se:.2g}"
    return out


def _all_at_once(folder: "str | Path", write) -> dict[str, str]:
    """Run ``write(tmp_folder) -> files`` in a temporary folder beside ``folder`` and move the files into place
    only when all of them exist (SIGINT/SIGTERM held back over the moves), so an interrupted or failed report
    leaves no partial folder behind; a full disk is reported naming ``folder``."""
    final = Path(folder)
    parent = final.parent if str(final.parent) else Path(".")
    with naming_full_disk(final):
        with held():  # created and remembered together, so it is always removed
            tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=parent))
        try:
            files = write(tmp)
            with held():
                final.mkdir(exist_ok=True)
                for name in files.values():
                    os.replace(name, final / Path(name).name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {kind: str(final / Path(name).name) for kind, name in files.items()}


def write_report(result: TuneResult, objective_name: str, steps: int, length: int, folder: "str | Path") -> dict[str, str]:
    """Write the report files for a finished study into ``folder``; returns their paths by kind."""
    return _all_at_once(folder, lambda tmp: _write_report(result, objective_name, steps, length, tmp))


def write_pareto_report(result, objective_name: str, folder: "str | Path") -> dict[str, str]:
    """The report of a Pareto study (:class:`~mdm_energy.tuning.pareto.ParetoResult`) in ``folder``:
    ``front.png`` (every trial, the front and the baselines on the axes mean model calls / quality),
    ``report.md`` (the front as command-line arguments to paste, beside the baselines) and ``trials.csv`` /
    ``trials.json``."""
    return _all_at_once(folder, lambda tmp: _write_pareto(result, objective_name, tmp))


def _write_pareto(result, objective_name: str, out: Path) -> dict[str, str]:
    from ..plots import plot_pareto

    files = {"front": str(plot_pareto({result.sampler: result.trials}, result.baselines, out / "front.png",
                                      title=f"{objective_name}: {result.sampler} ({result.strategy})"))}
    lines = [f"# Pareto report: {objective_name}, {result.sampler}", "",
             f"Strategy `{result.strategy}`, {result.evaluations} evaluations ({result.new_evaluations} new in the last "
             "run). Quality up, mean model calls per answer down; the front is every trial no other beats on both.", "",
             "| quality ± s.e. | mean calls | configuration |", "|---|---|---|"]
    for p in result.front:
        lines.append(f"| {_fmt(p.quality, p.stderr)} | {p.nfe:.2f} | `{p.command()}` |")
    lines += ["", "Baselines (scored once per study):", "", "| quality ± s.e. | mean calls | baseline |", "|---|---|---|"]
    for p in sorted(result.baselines, key=lambda p: p.nfe):
        lines.append(f"| {_fmt(p.quality, p.stderr)} | {p.nfe:.2f} | {p.label} (`{p.command()}`) |")
    lines += ["", "![front](front.png)", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    files["report"] = str(out / "report.md")
    rows = [{**p.as_json(), "options": json.dumps(p.options, sort_keys=True), "on_front": p in result.front}
            for p in result.trials]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["number", "quality", "stderr", "nfe", "n", "on_front", "options", "command"],
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "trials.csv", buf.getvalue())
    write_text_atomic(out / "trials.json", json.dumps(json_safe({**result.as_json(), "trials": rows}), indent=2,
                                                      allow_nan=False) + "\n")
    files["trials_csv"], files["trials_json"] = str(out / "trials.csv"), str(out / "trials.json")
    return files


def _param_names(result: TuneResult) -> list[str]:
    """The parameter names of the result's family, in its declared order (the best trial's, for a family this
    process does not know)."""
    from ..schedules import schedule_family

    try:
        return [p.name for p in schedule_family(result.family).params or ()]
    except ValueError:
        return list(result.best.params)


def _write_report(result: TuneResult, objective_name: str, steps: int, length: int, out: Path) -> dict[str, str]:
    from ..plots import plot_kl_heatmap, plot_schedules, plot_score_line, plot_score_scatter

    done = [t for t in result.trials if t.state == "COMPLETE" and t.strategy == result.strategy]
    top_rung = max(t.rung for t in done)
    finalists = sorted((t for t in done if t.rung == top_rung), key=lambda t: t.value,
                       reverse=result.direction == "maximize")
    files = {}
    label = "KL(q || sampler) [nats]" if objective_name.startswith("exact-kl") else "score"
    baselines = {k: v.value for k, v in result.baselines.items()}
    grid_like = result.strategy in ("grid", "halving")
    shown = [t for t in done if t.rung == 0] if grid_like else done
    names = _param_names(result)
    title = f"{objective_name} ({result.strategy})"
    minimize = result.direction == "minimize"
    values = [t.value for t in shown]
    picture = ""
    if len(names) == 2:
        plot = plot_kl_heatmap if grid_like else plot_score_scatter
        points = [t.point(names) for t in shown]
        files["heatmap"] = str(plot([p[0] for p in points], [p[1] for p in points], values, baselines,
                                    out / "heatmap.png", title=title, minimize=minimize, label=label,
                                    family=result.family, names=tuple(names)))
        picture = f"![score over ({', '.join(names)})](heatmap.png)"
    elif len(names) == 1:
        files["scores"] = str(plot_score_line([t.params[names[0]] for t in shown], values, baselines,
                                              out / "scores.png", title=title, minimize=minimize, label=label,
                                              family=result.family, name=names[0]))
        picture = f"![score over {names[0]}](scores.png)"
    best_specs = [t.spec for t in finalists[:3]]
    files["schedules"] = str(plot_schedules(best_specs + ["linear"], steps, length, out / "schedules.png",
                                            title=f"best schedules of {result.strategy} on {objective_name}"))
    lines = [
        f"# Tuning report: {objective_name}",
        "",
        f"Strategy `{result.strategy}`, {result.evaluations} evaluations in the study ({result.new_evaluations} new in the last run); "
        f"{'lower' if result.direction == 'minimize' else 'higher'} is better.",
        "",
        "| schedule | score | n | per-step counts (L=%d, N=%d) |" % (length, steps),
        "|---|---|---|---|",
    ]
    from ..schedules import parse_schedule

    rows = [(f"`{t.spec}`", t.value, t.stderr, t.n, t.spec) for t in finalists[:5]]
    rows += [(f"`{name}` (baseline)", v.value, v.stderr, v.n, name) for name, v in result.baselines.items()]
    for label, value, se, n, spec in rows:
        lines.append(f"| {label} | {_fmt(value, se)} | {n if n is not None else 'exact'} | "
                     f"{' '.join(map(str, parse_schedule(spec).counts(length, steps)))} |")
    failed = [t for t in result.trials if t.state == "FAIL" and not t.stale]
    if failed:
        lines += ["", f"{len(failed)} trial(s) failed; first error: `{failed[0].error}`"]
    lines += ["", picture, "", "![best schedules](schedules.png)", ""] if picture else \
        ["", "![best schedules](schedules.png)", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    files["report"] = str(out / "report.md")
    buf = io.StringIO()
    fields = ["number", "state", "strategy", "rung", "size", "family", "a", "b", "params", "spec", "value", "n", "stderr",
              "error", "duplicate", "stale"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({**t.as_json(), "params": json.dumps(t.params, sort_keys=True)} for t in result.trials)
    write_text_atomic(out / "trials.csv", buf.getvalue())
    write_text_atomic(out / "trials.json", json.dumps(json_safe({**result.as_json(), "trials": [t.as_json() for t in result.trials]}), indent=2, allow_nan=False) + "\n")
    files["trials_csv"], files["trials_json"] = str(out / "trials.csv"), str(out / "trials.json")
    return files
