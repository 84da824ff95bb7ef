"""Wall time of ``mdm-energy schedule beta:0.9,0.3 --steps 256 --length 4096 --json``.

Interpreter start is included: each run is a fresh process, exactly as a user types the command.
The baseline, measured in the same run, is a bare interpreter start (``python -c pass``), so the
figures read as "the command costs X times an empty Python start". Target: under 1.5 s.

    python benchmarks/bench_schedule_cli.py [--repeats 15]

Writes ``benchmarks/results/schedule_cli.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def wall(cmd: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    exe = shutil.which("mdm-energy")
    cli = [exe] if exe else [sys.executable, "-m", "mdm_energy"]
    cases = {
        "baseline: python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import numpy, scipy.special'": [sys.executable, "-c", "import numpy, scipy.special"],
        "mdm-energy schedule beta:0.9,0.3 --steps 256 --length 4096 --json": cli
        + ["schedule", "beta:0.9,0.3", "--steps", "256", "--length", "4096", "--json"],
        "mdm-energy schedule linear --steps 8 --length 256": cli + ["schedule", "linear", "--steps", "8", "--length", "256"],
    }
    wall(cases["baseline: python -c pass"], 2)  # warm the file cache
    rows = []
    base = None
    for name, cmd in cases.items():
        ts = wall(cmd, args.repeats)
        med = statistics.median(ts)
        base = base or med
        rows.append({"command": name, "median_s": med, "min_s": min(ts), "max_s": max(ts), "ratio_to_baseline": med / base})
        print(f"{name:70s} median {med:6.3f} s  (x{med / base:5.2f} of a bare interpreter start)", flush=True)

    target = rows[2]["median_s"]
    verdict = "meets" if target < 1.5 else "misses"
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "repeats": args.repeats}
    (RESULTS / "schedule_cli.json").write_text(json.dumps({"meta": meta, "rows": rows, "target_s": 1.5}, indent=2) + "\n")
    lines = [
        "# `mdm-energy schedule` wall time (fresh process each run)",
        "",
        f"Python {meta['python']}, {meta['machine']}, {meta['cpus']} CPUs, median of {args.repeats} runs. "
        f"Target for the 256-step, 4096-token command: < 1.5 s — it **{verdict}** it ({target:.3f} s).",
        "",
        "| command | median (s) | min (s) | max (s) | × bare interpreter |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['ratio_to_baseline']:.2f} |" for r in rows]
    lines += ["", "Regenerate: `python benchmarks/bench_schedule_cli.py`"]
    (RESULTS / "schedule_cli.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'schedule_cli.md'}")


if __name__ == "__main__":
    main()
