"""Collect the lm-eval runs of paper_tables.sh into one table shaped like the paper's (docs/paper.md) per task, beside the paper.

    python benchmarks/paper_tables.py OUT_DIR > tables.md
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

# The paper's accuracies (docs/paper.md), by task -> schedule -> steps.
PAPER = {
    "mbpp": {"linear": [0.2, 2.0, 6.4, 16.4, 28.0, 40.6], "sine": [0.2, 0.4, 3.8, 10.4, 19.8, 28.0],
             "sin2": [1.4, 4.8, 13.8, 20.6, 35.2, 40.2], "beta:0.3,0.9": [0.2, 0.2, 0.2, 0.2, 0.2, 1.6],
             "beta:0.9,0.3": [4.4, 14.4, 23.4, 34.8, 39.8, 40.0], "beta:1,0.2": [5.8, 15.4, 23.8, 32.0, 36.2, 38.8],
             "beta:0.9,0.9": [1.6, 5.0, 11.6, 20.6, 35.4, 39.8]},
    "humaneval": {"linear": [1.83, 1.83, 5.49, 11.59, 25.61, 32.32], "sine": [1.83, 1.83, 3.05, 7.32, 17.07, 25.61],
                  "sin2": [4.27, 11.59, 13.41, 22.56, 27.44, 31.30], "beta:0.9,0.3": [4.88, 12.80, 17.68, 24.39, 31.71, 31.10],
                  "beta:1,0.2": [10.37, 14.02, 20.73, 26.83, 28.66, 29.88], "beta:0.9,0.9": [3.05, 7.93, 10.37, 24.39, 28.66, 32.32]},
    "gsm8k": {"linear": [2.43, 18.20, 40.26, 48.37, 49.20], "sine": [0.53, 6.44, 27.37, 45.03, 47.08],
              "sin2": [4.32, 17.59, 36.47, 46.70, 47.76], "beta:0.9,0.3": [6.14, 15.39, 29.42, 39.20, 46.70],
              "beta:0.8,0.8": [4.62, 19.64, 40.26, 46.02, 48.52], "beta:0.9,0.9": [4.78, 19.94, 36.54, 45.49, 48.14]},
    "hendrycks_math": {"linear": [11.50, 11.58, 12.78, 16.30, 18.86, 20.24], "sin2": [12.02, 16.54, 18.80, 19.30, 20.18, 20.18],
                       "beta:0.9,0.3": [16.32, 18.76, 19.50, 19.90, 20.18, 20.08], "beta:1,0.2": [18.44, 18.88, 19.58, 19.98, 20.02, 19.98]},
    "minerva_math": {"linear": [0.12, 0.50, 4.70, 16.54, 26.68, 30.10], "sin2": [0.30, 1.84, 6.50, 15.94, 25.80, 29.20],
                     "beta:0.9,0.3": [1.40, 5.56, 13.16, 20.84, 26.84, 29.36], "beta:1,0.2": [1.28, 4.82, 10.64, 17.14, 23.68, 26.78]},
    "bbh": {"linear": [12.76, 15.83, 17.32, 17.91, 19.29]},
}
STEPS = {"gsm8k": [8, 16, 32, 64, 128], "bbh": [8, 16, 32, 64, 128]}


def main(out_dir: str) -> None:
    ours: dict = defaultdict(dict)
    for done in Path(out_dir).glob("*/done"):
        task, spec, n = done.parent.name.split("__")
        for res in done.parent.rglob("results*.json"):
            results = json.loads(res.read_text())["results"]
            metrics = next(iter(results.values()))
            score = next((v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k and k != "alias"), None)
            if score is not None:
                ours[task][(spec, int(n[1:]))] = 100 * score
    for task, table in PAPER.items():
        steps = STEPS.get(task, [8, 16, 32, 64, 128, 256])
        print(f"\n## {task} (ours / paper)\n")
        print("| schedule | " + " | ".join(map(str, steps)) + " |")
        print("|---|" + "---|" * len(steps))
        keys = {spec.replace(":", "_").replace(",", "_"): spec for spec in table}
        extra = sorted({spec for spec, _ in ours.get(task, {})} - set(keys))  # run here, not in the paper
        tuned = Path(out_dir) / f"tuned-{task}.txt"
        for key in list(keys) + extra:
            paper = table.get(keys.get(key, ""), [None] * len(steps))
            cells = []
            for n, p in zip(steps, paper):
                got = ours.get(task, {}).get((key, n))
                cells.append((f"{got:.2f}" if got is not None else "—") + " / " + (str(p) if p is not None else "—"))
            label = keys.get(key, key)
            if key == "tuned" and tuned.exists():
                label = "tuned " + tuned.read_text().split()[-1]
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "paper-tables")
