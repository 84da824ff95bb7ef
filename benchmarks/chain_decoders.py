"""pycode's decoders on models that know their law exactly: character chains fitted to pycode's own training text.

pycode's text target (task_targets.py: the unigram entropy of its snippets within 0.5 bits/char of the data's,
decoded greedily one token per call) asks a decoder and a model together. This separates them: an order-k
character chain (k = 1, 2) is fitted to the answers of pycode's training windows, and its *exact* posteriors
(:class:`mdm_energy.sampling.ChainDenoiser`, forward–backward over the whole window) stand in for the trained
model. On the same 300 test prompts, with the same per-item seeds and the same three decoders as
task_targets.py (greedy low_confidence, low_confidence at T = 1, random order at T = 1 — the last draws the
chain's own law exactly), each table row gives the unigram entropy of the answers, their generative
perplexity under checkpoints/pycode-reference, their pass rate and mean length, and the chain's next-character
cross-entropy on the true continuations (how good a left-to-right model of the data it is).

So "greedy − the law's own entropy" is what the decoder alone does to a model with no errors, and it can be
set beside the trained model's gap (task_targets.json, when it names today's weights).

    python benchmarks/chain_decoders.py [--orders 1,2] [--smoothing 0.01] [--quick]

Writes benchmarks/results/chain_decoders.md, .json and .png; finished cells are kept in the JSON, so an
interrupted run resumes (a different --smoothing or item count starts over).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _parse_orders(text: str) -> list[int]:
    try:
        orders = [int(v) for v in text.split(",") if v]
    except ValueError:
        orders = []
    if not orders or any(k not in (1, 2) for k in orders):
        raise SystemExit(f"--orders: give chain orders 1 and/or 2 separated by commas, got {text!r} "
                         "(an order-3 table over pycode's 99 ids would not fit the denoiser's bound)")
    return orders


def fit_chain(task, order: int, smoothing: float):
    """The order-k chain of pycode's training answers (every training window, the prompt's last k characters
    the first answer characters' context), emitting the task's characters and EOS."""
    import torch

    from mdm_energy.sampling import ChainDenoiser
    from mdm_energy.tasks.base import EOS, MASK, PAD

    windows, _ = task.encode(list(task.train_stream(seed=0)))
    emit = torch.ones(task.vocab.size, dtype=torch.bool)
    emit[[PAD, MASK]] = False
    return ChainDenoiser.fit(windows, order, mask_id=MASK, emit=emit, start=task.prompt_len, smoothing=smoothing,
                             eos_id=EOS), len(windows)


def cross_entropy_bits(chain, task, test) -> float:
    """The chain's next-character cross-entropy (bits/char) on the true answers of ``test`` (EOS included once)."""
    ids, _ = task.encode(test)
    P, k, L = chain.table.reshape((chain.V,) * (chain.order + 1)), chain.order, task.gen_len
    total, count = 0.0, 0
    for row, ex in zip(ids, test):
        end = task.prompt_len + min(L, len(ex.answer) + 1)  # the answer and its first EOS
        for t in range(task.prompt_len, end):
            total -= math.log2(float(P[tuple(int(v) for v in row[t - k:t + 1])]))
            count += 1
    return total / count if count else math.nan


def run_cell(chain, items, ref, decoder: tuple) -> dict:
    """One decoder on the chain over the test items: scores and text measures (task_targets.py's decoders)."""
    from mdm_energy.sampling import FixedCountSampler
    from mdm_energy.tasks.evaluate import evaluate
    from real_tasks import text_quality

    label, temperature, remasking = decoder
    L = items.task.gen_len
    t0 = time.time()
    r = evaluate(items.task, chain, items.test, FixedCountSampler("linear", L, remasking=remasking,
                                                                   temperature=temperature), item_seeds=items.seeds)
    prompts = [e.prompt for e in items.test]
    s = np.asarray(r.scores)
    return {"decoder": label, "pass": float(s.mean()), "stderr": float(s.std(ddof=1) / math.sqrt(len(s))),
            **text_quality(ref, items.task, prompts, list(r.outputs)),
            "mean_chars": float(np.mean([len(o) for o in r.outputs])), "seconds": time.time() - t0}


def trained_rows(digest: str) -> "dict | None":
    """task_targets.json's pycode table if it names today's weights (else None: rerun task_targets.py)."""
    path = RESULTS / "task_targets.json"
    if not path.is_file():
        return None
    table = json.loads(path.read_text()).get("tasks", {}).get("pycode")
    return table if table and table.get("weights") == digest else None


def _cell(value: "float | None", spec: str) -> str:
    """``value`` formatted by ``spec``, or a dash where the measure does not apply (missing or NaN)."""
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def decoding_minutes(res: dict) -> float:
    """The decoding time of every stored cell (minutes): a resumed run's total, not the last session's."""
    return sum(r.get("seconds", 0.0) for t in res["models"].values() for r in t["rows"]) / 60


def _markdown(res: dict) -> str:
    m, data = res["meta"], res["data"]
    lines = ["# pycode's decoders on exact character chains", "",
             f"Regenerate: `{m['command']}` ({decoding_minutes(res):.1f} min of decoding on 2 cores). Each chain is fitted to the answers of "
             f"{m['train_windows']:,} pycode training windows (additive smoothing {m['smoothing']:g}) and decoded "
             f"through its exact posteriors on {m['n']} test prompts, one token per call (N = L = {m['L']}), with "
             "task_targets.py's decoders and per-item seeds. `random T=1` draws the chain's own law, so greedy − "
             "random is what the greedy decoder alone does to a model without errors. Data (true continuations): "
             f"unigram entropy {data['unigram_entropy']:.2f} bits/char, generative perplexity {data['gen_ppl']:.2f}, "
             f"mean {data['mean_chars']:.1f} characters.", "",
             "| model | next-char cross-entropy on the data (bits/char) | decoder | pass (± s.e.) | unigram entropy "
             "(bits/char) | − data's | − the model's own law's | generative perplexity | ÷ data's | mean characters |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, table in res["models"].items():
        own = next((r["unigram_entropy"] for r in table["rows"] if r["decoder"] == "random T=1"), math.nan)
        for r in table["rows"]:
            lines.append(f"| {name} | {_cell(table.get('cross_entropy_bits'), '.2f')} | {r['decoder']} | "
                         f"{r['pass']:.3f} ± {r['stderr']:.3f} | {r['unigram_entropy']:.2f} | "
                         f"{r['unigram_entropy'] - data['unigram_entropy']:+.2f} | {r['unigram_entropy'] - own:+.2f} | "
                         f"{r['gen_ppl']:.2f} | {r['gen_ppl'] / data['gen_ppl']:.2f} | {_cell(r.get('mean_chars'), '.1f')} |")
    lines += ["", "The trained model's rows are task_targets.md's (same items, seeds and decoders; its weights "
              f"`{m.get('trained_weights') or 'not on today’s weights: rerun task_targets.py'}`); its cross-entropy "
              "is not a left-to-right one, and task_targets.py does not record answer lengths, so those cells are dashes.", ""]
    return "\n".join(lines)


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = res["data"]["unigram_entropy"]
    names = list(res["models"])
    decoders = [r["decoder"] for r in next(iter(res["models"].values()))["rows"]]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(decoders)
    for j, dec in enumerate(decoders):
        vals = [next((r["unigram_entropy"] for r in res["models"][n]["rows"] if r["decoder"] == dec), np.nan)
                for n in names]
        ax.bar(np.arange(len(names)) + (j - (len(decoders) - 1) / 2) * width, vals, width, label=dec)
    ax.axhline(data, color="k", lw=1, label="data")
    ax.axhspan(data - 0.5, data + 0.5, color="0.85", zorder=0, label="target: within 0.5 of the data")
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylabel("unigram entropy of answers (bits/char)")
    ax.set_title("pycode, N = L: exact chains and the trained model under the same decoders", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _write(res: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / "chain_decoders.json.tmp"
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    os.replace(tmp, RESULTS / "chain_decoders.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", default="1,2", help="chain orders, comma-separated (1 and/or 2)")
    ap.add_argument("--smoothing", type=float, default=0.01, help="additive smoothing of the transition counts")
    ap.add_argument("--quick", action="store_true", help="40 test items (a trial; writes nothing over a full run)")
    args = ap.parse_args()
    orders = _parse_orders(args.orders)
    if not args.smoothing > 0 or not math.isfinite(args.smoothing):
        ap.error(f"--smoothing: must be a positive number, got {args.smoothing!r}")

    from tqdm import tqdm

    from mdm_energy.models import load_model
    from real_tasks import TestItems, text_quality
    from task_targets import DECODERS

    items = TestItems.load("pycode", quick=args.quick)
    ref = load_model(ROOT / "checkpoints" / "pycode-reference")
    config = {"smoothing": args.smoothing, "n": len(items.test), "L": items.task.gen_len}
    path = RESULTS / "chain_decoders.json"
    old = json.loads(path.read_text()) if path.is_file() and not args.quick else {}
    res = old if old.get("config") == config else {"config": config, "models": {}}
    prompts = [e.prompt for e in items.test]
    res["data"] = {**text_quality(ref, items.task, prompts, [e.answer for e in items.test]),
                   "mean_chars": float(np.mean([len(e.answer) for e in items.test]))}
    for k in orders:
        name = f"exact order-{k} chain"
        chain, n_windows = fit_chain(items.task, k, args.smoothing)
        table = res["models"].setdefault(name, {"order": k, "rows": []})
        table["cross_entropy_bits"] = cross_entropy_bits(chain, items.task, items.test)
        done = {r["decoder"] for r in table["rows"]}
        for dec in tqdm([d for d in DECODERS if d[0] not in done], desc=name, file=sys.stderr):
            table["rows"].append(run_cell(chain, items, ref, dec))
            if not args.quick:
                _write(res | {"meta": {"train_windows": n_windows}})
        res.setdefault("meta", {})["train_windows"] = n_windows
    trained = None if args.quick else trained_rows(items.digest)  # its rows are on the full test set
    if trained is not None:
        res["models"]["trained model"] = {"rows": [{"decoder": r["decoder"], "pass": r["value"], "stderr": r["stderr"],
                                                    "unigram_entropy": r["unigram_entropy"], "gen_ppl": r["gen_ppl"]}
                                                   for r in trained["rows"]]}
    else:
        res["models"].pop("trained model", None)
    res["meta"] = {**res.get("meta", {}), "command": " ".join(["python benchmarks/chain_decoders.py", *sys.argv[1:]]),
                   "n": len(items.test), "L": items.task.gen_len,
                   "smoothing": args.smoothing, "trained_weights": items.digest if trained is not None else None}
    out = RESULTS / ("chain_decoders_quick" if args.quick else "chain_decoders")
    if not args.quick:
        _write(res)
    else:
        out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    out.with_suffix(".md").write_text(_markdown(res))
    _plot(res, out.with_suffix(".png"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
