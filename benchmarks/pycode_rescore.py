"""Rescore the cached pycode outputs of benchmarks/real_tasks.py under the current metric (score version 2:
an answer without code scores 0), beside the version-1 scores they were cached with — no model call.

The cells were computed on version 1's 300 test items; version 2 drops the comment-only references among them
(they could not score 1 under it), so both columns below are over the items the two versions share, paired.
Only the fixed-schedule cells keep their outputs (the adaptive decoders' cells keep scores only), so those are
what this table covers. Writes ``benchmarks/results/pycode_rescore.{json,md}``.

    python benchmarks/pycode_rescore.py
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_tasks import CONFIG, RESULTS, ROOT, _cache  # noqa: E402


def compiles_v1(prompt_line: str, generated: str) -> bool:
    """Version 1's whole metric (the compile test alone, a ``pass`` after any last line ending in ``:``):
    needed only to rebuild the item list the cached cells were scored on."""
    from mdm_energy.tasks.pycode import compiles_framed

    text = textwrap.dedent(prompt_line + "\n" + generated).rstrip("\n")
    return compiles_framed(text, text.split("\n")[-1].rstrip().endswith(":"))


def version1_items(n: int) -> list:
    """The test items as version 1 chose them (its scored-window rule)."""
    import mdm_energy.tasks.pycode as pycode

    current = pycode.scores_one
    pycode.scores_one = compiles_v1  # the window filter calls it by this name
    try:
        return pycode.PyCodeTask().examples("test", n, seed=0)
    finally:
        pycode.scores_one = current


def main() -> None:
    from mdm_energy.tasks.pycode import PyCodeTask, scores_one
    from mdm_energy.tasks.tuned import weights_digest

    n = CONFIG["pycode"]["n"]
    tag = f"pycode|{n}|{weights_digest(ROOT / 'checkpoints' / 'pycode')}|fixed|"
    cache = _cache()
    cells = sorted(k[len(tag):-2] for k in cache if k.startswith(tag) and k.endswith("|o"))
    if not cells:
        raise SystemExit(f"no cached pycode outputs under {tag!r}: run benchmarks/real_tasks.py --tasks pycode first")
    items = version1_items(n)
    kept = np.array([scores_one(e.prompt, e.answer) for e in items])  # the items version 2 scores too
    task = PyCodeTask()
    rows = []
    for cell in cells:
        spec, steps = cell.rsplit("|", 1)
        outputs = cache[f"{tag}{cell}|o"]
        v1 = cache[f"{tag}{cell}|s"].astype(float)
        assert len(outputs) == len(items) == len(v1)
        v2 = np.array([task.score(e, str(o)) for e, o in zip(items, outputs)])
        assert np.array_equal(v1, [float(compiles_v1(e.prompt, str(o))) for e, o in zip(items, outputs)])
        a, b = v1[kept], v2[kept]
        d = b - a
        empty = np.array([not str(o).strip() for o in outputs])[kept]
        rows.append({"schedule": spec, "steps": int(steps), "v1": a.mean(), "v2": b.mean(), "diff": d.mean(),
                     "diff_se": d.std(ddof=1) / math.sqrt(len(d)), "whitespace_only": empty.mean()})
    rows.sort(key=lambda r: (r["schedule"], r["steps"]))
    out = {"items": int(kept.sum()), "dropped_comment_only": int((~kept).sum()), "rows": rows,
           "command": "python benchmarks/pycode_rescore.py"}
    (RESULTS / "pycode_rescore.json").write_text(json.dumps(out, indent=1) + "\n")
    lines = ["# pycode: the cached outputs rescored under score version 2", "",
             f"Regenerate: `{out['command']}` (no model call). {out['items']} test items both versions score "
             f"({out['dropped_comment_only']} comment-only references of version 1's 300 dropped), paired; the "
             "fixed-count sampler with low_confidence remasking, as in real_tasks.md.", "",
             "| schedule | N | v1 (compiles) | v2 (compiles, holds code) | v2 − v1 | whitespace-only answers |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{r['schedule']}` | {r['steps']} | {r['v1']:.3f} | {r['v2']:.3f} | {r['diff']:+.3f} ± "
              f"{r['diff_se']:.3f} | {r['whitespace_only']:.0%} |" for r in rows]
    (RESULTS / "pycode_rescore.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
