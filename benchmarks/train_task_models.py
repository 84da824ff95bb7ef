"""Train the task checkpoints committed under ``checkpoints/<task>/``: a short sweep, then the best run continued.

For each task:

1. build the training pool and the validation set once (cached; the time it takes is reported apart);
2. a sweep of short runs (``--sweep-minutes`` each) over model size, learning rate and batch size, each
   with its cosine horizon set for the full budget, compared by validation loss (fixed masks);
3. the best run is resumed for ``--final-minutes`` in all (the same command with more minutes), stopping
   early when the validation loss has not improved for ``--patience`` validations;
4. its best weights are exported in half precision to ``checkpoints/<task>/`` with ``config.json``, the
   trainer log, ``TRAINING.md`` (every command, wall time, steps, the sweep table, the machine's load
   average while training) and ``training.png`` (training and validation loss against minutes).

Every run is a plain ``mdm-energy train`` command (printed and recorded), so any of them can be rerun.

    python benchmarks/train_task_models.py --work /tmp/train-runs --cache /tmp/mdm-cache [--tasks countdown]

``--continue-minutes M`` trains the committed checkpoints longer instead: each task's committed weights are
copied into the work folder and warm-started (``mdm-energy train --init``: a new optimiser and cosine
schedule, the chosen recipe of the first stage) for ``M`` more minutes of training, stopping early after
``--patience`` validations without a new best; the export then records every stage. Interrupted, the same
command resumes the run where its last checkpoint left it (every 5 minutes). ``--export-only`` rewrites
the checkpoint folders from the work folder's records (nothing is trained). A continued checkpoint is
continued again the same way with a new ``--work`` folder (one work folder holds one continuation): its
record then holds a chain of stages, the sweep's first.

``--configs D:LAYERS:LR:BATCH[,...]`` replaces each task's sweep by these configurations (width, depth, peak
learning rate, batch size; 4 heads and a feed-forward width of 4·D as always), e.g. a larger model trained
from scratch on a GPU (``--device cuda``; benchmarks/device_train.sh). Where ``checkpoints/<task>/`` already
holds weights, a sweep replaces them only if its best weights, rounded to half precision as committed, have
the lower loss on the run's held-out set; otherwise the folder is left as it is and the comparison is kept in
the work folder's ``record.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# per task: pool sizes, validation cadence, and the sweep (name, d_model, layers, lr, batch)
PLAN = {
    "countdown": {"pool": 400_000, "valid": 1024, "valid_every": 500,
                  "sweep": [("d128-lr2e-3", 128, 4, 2e-3, 64), ("d192-lr1e-3", 192, 4, 1e-3, 64),
                            ("d128-lr1e-3-b128", 128, 4, 1e-3, 128)]},
    # the long-window variant: the countdown problems in a window three times longer; one configuration,
    # the countdown sweep's winner (it is the same problem)
    "countdown-long": {"pool": 400_000, "valid": 1024, "valid_every": 500,
                       "sweep": [("d128-lr1e-3-b128", 128, 4, 1e-3, 128)]},
    "sudoku": {"pool": 300_000, "valid": 512, "valid_every": 250,
               "sweep": [("d128-lr2e-3", 128, 4, 2e-3, 64), ("d192-lr1e-3", 192, 4, 1e-3, 64),
                         ("d128-lr1e-3-b128", 128, 4, 1e-3, 128)]},
    "pycode": {"pool": 100_000, "valid": 512, "valid_every": 250,
               "sweep": [("d128-lr2e-3", 128, 4, 2e-3, 64), ("d192-lr1e-3", 192, 4, 1e-3, 64),
                         ("d128-lr1e-3-b128", 128, 4, 1e-3, 128)]},
}


class LoadMonitor:
    """Samples the 1-minute load average every 30 s while training runs (evidence that nothing else ran)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(30):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def steps_per_second(task_name: str, d: int, layers: int, batch: int, device: str = "cpu") -> float:
    """A 12-step probe of this model size on this task's shapes, on ``device`` (the last 8 steps timed)."""
    import torch

    from mdm_energy.models import MDMConfig, MDMTransformer
    from mdm_energy.tasks import get_task
    from mdm_energy.training import TrainConfig, make_optimizer, mdm_loss

    task = get_task(task_name)
    T = task.prompt_len + task.gen_len
    model = MDMTransformer(MDMConfig(vocab_size=task.vocab.size, mask_id=2, eos_id=1, pad_id=0, max_len=T, d_model=d,
                                     n_layers=layers, n_heads=4, d_ff=4 * d)).to(device)
    opt = make_optimizer(model, TrainConfig(task=task_name))
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)
    ids = torch.randint(3, task.vocab.size, (batch, T))
    pm = torch.zeros(batch, T, dtype=torch.bool)
    pm[:, :task.prompt_len] = True
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(12):
        t0 = time.perf_counter()
        loss = mdm_loss(model, ids, pm, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()  # a GPU step is timed to its end, not to its launch
        times.append(time.perf_counter() - t0)
    return 1.0 / (sum(times[4:]) / len(times[4:]))


def parse_configs(text: str) -> list[tuple[str, int, int, float, int]]:
    """``D:LAYERS:LR:BATCH[,...]`` as sweep entries ``(name, d_model, layers, lr, batch)``, named
    ``d{D}-L{LAYERS}-lr{LR}-b{BATCH}``; a ValueError names the first bad entry."""
    configs = []
    for entry in text.split(","):
        parts = entry.strip().split(":")
        problem = None
        if len(parts) != 4:
            problem = "expected D:LAYERS:LR:BATCH"
        else:
            try:
                d, layers, lr, batch = int(parts[0]), int(parts[1]), float(parts[2]), int(parts[3])
            except ValueError:
                problem = "expected D:LAYERS:LR:BATCH with numbers"
            else:
                if min(d, layers, batch) < 1 or not lr > 0:
                    problem = "width, layers and batch must be positive integers and the learning rate positive"
                elif d % 4:
                    problem = f"the width must be divisible by the 4 heads, got {d}"
        if problem:
            raise ValueError(f"--configs: bad entry {entry.strip()!r} ({problem})")
        configs.append((f"d{d}-L{layers}-lr{parts[2]}-b{batch}", d, layers, lr, batch))
    return configs


def chosen_recipe(first: dict, plan: dict) -> tuple[str, int, int, float, int]:
    """The sweep entry a checkpoint's first stage chose: by name from the task's plan, else (a ``--configs``
    sweep) read back from the chosen run's recorded command."""
    name = first["chosen"]
    for entry in plan["sweep"]:
        if entry[0] == name:
            return entry
    cmd = first["runs"][name]["command"]
    flag = lambda f: cmd[cmd.index(f) + 1]  # noqa: E731
    return name, int(flag("--d-model")), int(flag("--layers")), float(flag("--lr")), int(flag("--batch-size"))


def command(task: str, out: Path, cache: Path, d: int, layers: int, lr: float, batch: int, minutes: float, horizon: int,
            plan: dict, patience: "int | None", init: "Path | None" = None, device: str = "cpu") -> list[str]:
    cmd = ["mdm-energy", "train", "--task", task, "--out", str(out), "--minutes", f"{minutes:g}", "--d-model", str(d),
           "--layers", str(layers), "--lr", f"{lr:g}", "--batch-size", str(batch), "--max-steps", str(horizon),
           "--warmup-steps", "300", "--train-examples", str(plan["pool"]), "--valid-examples", str(plan["valid"]),
           "--valid-every", str(plan["valid_every"]), "--cache", str(cache), "--checkpoint-minutes", "5", "--json"]
    return (cmd + (["--patience", str(patience)] if patience else []) + (["--init", str(init)] if init else [])
            + (["--device", device] if device != "cpu" else []))


def accelerator_name(device: str) -> str:
    """What trains on ``device``, for the notes: e.g. ``one NVIDIA H200 (--device cuda)``."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else device
    return f"one {name} (`--device {device}`)"


def run(cmd: list[str], log: Path) -> dict:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.time()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        # the recorded command says `mdm-energy`; it runs as this interpreter's module (whatever is on PATH)
        argv = [sys.executable, "-m", "mdm_energy", *cmd[1:]] if cmd[0] == "mdm-energy" else cmd
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=fh, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"training failed ({proc.returncode}); see {log}")
    out = json.loads(proc.stdout)
    out["wall_seconds"] = time.time() - t0
    return out


def prepare(task: str, plan: dict, cache: Path, seed: int = 0) -> dict:
    """Build (or read) the cached pools; returns the seconds each took."""
    from mdm_energy.tasks import get_task
    from mdm_energy.training.data import training_pool

    t = get_task(task)
    times = {}
    for split, n in (("train", plan["pool"]), ("valid", plan["valid"])):
        t0 = time.time()
        pool = training_pool(t, n, seed, cache=cache, split=split)
        times[split] = {"seconds": round(time.time() - t0, 1), "examples": len(pool)}
    return times


def export(task: str, run_dir: Path, dest: Path, record: dict) -> bool:
    """Half-precision best weights, config, trainer log, TRAINING.md and training.png into ``dest``.

    Where ``dest`` already holds weights, both are scored on the run's held-out set first (each as committed: half
    precision; recorded as ``record["compared"]``) and ``dest`` is replaced only if the new weights score lower.
    Returns whether ``dest`` was written."""
    import torch
    from safetensors.torch import load_file

    from mdm_energy.models import load_model, save_model

    model = load_model(run_dir)  # rounded to half precision as committed (saving it in half again changes nothing)
    model.load_state_dict({k: v.half().float() for k, v in load_file(run_dir / "best.safetensors").items()})
    if (dest / "model.safetensors").is_file():
        committed = load_model(dest)
        stage = {"command": record["runs"][record["chosen"]]["command"]}
        c = committed.config
        record["compared"] = {"committed": held_out_loss(task, committed, stage), "new": held_out_loss(task, model, stage),
                              "committed_model": f"d_model {c.d_model}, {c.n_layers} layers, "
                                                 f"{sum(p.numel() for p in committed.parameters()):,} parameters"}
        if not record["compared"]["new"] < record["compared"]["committed"]:
            print(f"{task}: the sweep's best ({record['compared']['new']:.4f}) did not beat the committed weights "
                  f"({record['compared']['committed']:.4f}) on its held-out set; {dest} is unchanged",
                  file=sys.stderr, flush=True)
            return False
    from mdm_energy.tasks.tuned import TUNED_FILE

    keep = [p for p in (TUNED_FILE,) if (dest / p).exists()]  # kept as a record; its reader refuses it if stale
    saved = {p: (dest / p).read_text() for p in keep}
    if dest.exists():
        shutil.rmtree(dest)
    save_model(model, dest, dtype=torch.float16)
    for p, text in saved.items():
        (dest / p).write_text(text)
    meta = json.loads((run_dir / "trainer.json").read_text())
    (dest / "trainer.json").write_text(json.dumps({k: meta[k] for k in ("step", "elapsed", "config", "log", "valid_log",
                                                                         "best_valid", "best_step")}, indent=1))
    (dest / "train_summary.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_curves(record, dest / "training.png")
    (dest / "TRAINING.md").write_text(training_md(task, record))
    return True


def plot_curves(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in record["runs"].items():
        meta = json.loads(Path(r["out"], "trainer.json").read_text())
        (line,) = ax.plot([x[1] / 60 for x in meta["log"]], [x[2] for x in meta["log"]], lw=0.8, alpha=0.6,
                          label=f"{name} train")
        ax.plot([x[1] / 60 for x in meta["valid_log"]], [x[2] for x in meta["valid_log"]], "o-", ms=3,
                color=line.get_color(), label=f"{name} validation")
    _save_loss_plot(fig, ax, "minutes", f"{record['task']}: sweep and continued run", path)


def _save_loss_plot(fig, ax, xlabel: str, title: str, path: Path) -> None:
    """The loss axes of every training plot (log loss against minutes, a grid, a legend), saved and closed."""
    import matplotlib.pyplot as plt

    ax.set(xlabel=xlabel, ylabel="loss (negative ELBO per answer token)", yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def training_md(task: str, record: dict) -> str:
    where = (f"on {record['machine']}" if record.get("machine") else "on this machine (2 CPU cores; training uses both)")
    lines = [f"# {task} checkpoint", "", f"Trained {where} by "
             f"`python benchmarks/train_task_models.py` on {record['date']}. The 1-minute load average, sampled every "
             f"30 s while training: mean {record['load']['mean']:.2f}, max {record['load']['max']:.2f} (about 2 means "
             "the training alone" + (" on this machine's 2 cores" if record.get("machine") else "") + ").", "",
             f"Data: a pool of {record['pool']['train']['examples']:,} training examples (built in "
             f"{record['pool']['train']['seconds']:.0f} s, cached) and {record['pool']['valid']['examples']:,} validation "
             "examples; the validation loss uses fixed masks.", "",
             "Sweep (each run's cosine horizon is set for the full budget, so these compare early training):", "",
             "| run | parameters | steps | minutes | best validation loss (step) |", "|---|---|---|---|---|"]
    for name, r in record["runs"].items():
        lines.append(f"| {name} | {r['parameters']:,} | {r['steps']:,} | {r['minutes']:.1f} | "
                     f"{r['best_valid']:.4f} ({r['best_step']:,}) |")
    lines += ["", f"Chosen: **{record['chosen']}**, continued to {record['final']['minutes']:.1f} minutes "
              f"({record['final']['steps']:,} steps); its best validation loss {record['final']['best_valid']:.4f} at "
              f"step {record['final']['best_step']:,}. The committed weights are those best weights, in half precision."
              + (f" They replaced the weights committed before ({record['compared']['committed_model']}): "
                 f"{record['compared']['committed']:.4f} against {record['compared']['new']:.4f} on this run's "
                 "validation set, both in half precision." if "compared" in record else ""),
              "", "Commands (in order):", ""]
    lines += [f"    {c}" for c in record["commands"]]
    lines += ["", "![training and validation loss](training.png)", "",
              "`trainer.json` holds the hyper-parameters and both loss logs; the optimiser state is not committed "
              "(size), so this folder evaluates but does not resume.", ""]
    return "\n".join(lines)


def continue_training(task: str, args: argparse.Namespace, plan: dict) -> None:
    """Warm-start the committed checkpoint of ``task`` for ``args.continue_minutes`` more minutes (resumable)."""
    work = args.work / task
    work.mkdir(parents=True, exist_ok=True)
    stage_file, init = work / "continue.json", work / "init"
    if stage_file.is_file():  # a resumed continuation: the same start, horizon and command
        stage = json.loads(stage_file.read_text())
        exported = json.loads((args.export / task / "train_summary.json").read_text())
        if "final" in stage and exported.get("command") == stage["command"]:
            raise SystemExit(f"{task}: {work} holds a finished continuation, already exported to {args.export / task}; "
                             "to continue it again give a new --work (one work folder holds one continuation), or "
                             "--export-only to rewrite the export")
        if args.horizon and args.horizon != stage["horizon"]:
            print(f"{task}: resuming with the recorded horizon {stage['horizon']:,} (--horizon {args.horizon:,} "
                  "applies to a new continuation only)", file=sys.stderr, flush=True)
    else:
        dest = args.export / task
        earlier = json.loads((dest / "train_summary.json").read_text())
        if init.exists():
            shutil.rmtree(init)
        init.mkdir()
        for name in ("model.safetensors", "config.json", "trainer.json", "train_summary.json"):
            shutil.copy2(dest / name, init / name)  # the start, kept apart from the folder the export rewrites
        name, d, layers, lr, batch = chosen_recipe(stage_chain(earlier)[0], plan)
        probe = steps_per_second(task, d, layers, batch, args.device)
        horizon = args.horizon or int(probe * args.continue_minutes * 60)
        cmd = command(task, work / "continued", args.cache, d, layers, lr, batch, args.continue_minutes, horizon, plan,
                      args.patience, init=init, device=args.device)
        stage = {"task": task, "date": time.strftime("%Y-%m-%d"), "earlier": earlier, "horizon": horizon,
                 "command": cmd, "pool": prepare(task, plan, args.cache), "loads": [],
                 **({"machine": accelerator_name(args.device)} if args.device != "cpu" else {})}
        if args.horizon:
            stage["horizon_note"] = (f"The cosine horizon was given (--horizon {args.horizon:,}); the 12-step probe "
                                     f"measured {probe:.2f} steps/s ({int(probe * args.continue_minutes * 60):,} steps)")
        stage_file.write_text(json.dumps(stage, indent=1))
    with LoadMonitor() as load:
        final = run(stage["command"], work / "train.log")
    stage["loads"].append(load.samples)
    stage["final"] = final
    stage_file.write_text(json.dumps(stage, indent=1))
    export_continued(task, work, args.export / task)
    print(f"{task}: continued {final['steps']:,} steps, best validation loss {final['best_valid']:.4f} (earlier "
          f"{stage['earlier']['final']['best_valid']:.4f})", file=sys.stderr, flush=True)


def stage_chain(record: dict) -> list[dict]:
    """The stages behind a checkpoint's ``train_summary.json``, oldest first: the sweep's record (``chosen``,
    ``commands``), then each continuation's (``command``, ``earlier``: the record of the weights it started from)."""
    chain = [record]
    while "earlier" in chain[-1]:
        chain.append(chain[-1]["earlier"])
    return chain[::-1]


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def ordinal(k: int) -> str:
    """``k``-th (0-based) in words, as TRAINING.md names the stages."""
    return ORDINALS[k] if k < len(ORDINALS) else f"{k + 1}th"


def export_continued(task: str, work: Path, dest: Path) -> None:
    """The better of the start's weights and the continuation's best — compared on the same held-out set, each
    as it would be committed (half precision; recorded as ``compared["first stage"]`` and ``["second stage"]``,
    the start and the continuation) — with every stage's logs, ``TRAINING.md`` and ``training.png``, into
    ``dest``. Everything is checked and computed before the first file is written."""
    import torch
    from safetensors.torch import load_file

    from mdm_energy.models import load_model, save_model

    stage_file, run_dir, init = work / "continue.json", work / "continued", work / "init"
    needed = [stage_file, run_dir / "best.safetensors", run_dir / "trainer.json", init / "model.safetensors",
              init / "trainer.json"]
    missing = [str(f) for f in needed if not f.is_file()]
    if missing:
        raise SystemExit(f"cannot export {task}: missing {', '.join(missing)} (has the continuation run?)")
    stage = json.loads(stage_file.read_text())
    if "final" not in stage:
        raise SystemExit(f"cannot export {task}: {stage_file} records no finished run (rerun the same command)")
    model = load_model(run_dir)
    model.load_state_dict({k: v.half().float() for k, v in load_file(run_dir / "best.safetensors").items()})
    stage["compared"] = {"first stage": held_out_loss(task, load_model(init), stage),
                         "second stage": held_out_loss(task, model, stage)}
    improved = stage["compared"]["second stage"] < stage["compared"]["first stage"]
    stage["improved"] = improved
    stage_meta = json.loads((run_dir / "trainer.json").read_text())
    earlier_meta = json.loads((init / "trainer.json").read_text())
    keys = ("step", "elapsed", "config", "log", "valid_log", "best_valid", "best_step")
    # the continued stage at the top level (its config names the task, as every trainer.json's does)
    trainer = {**{k: stage_meta[k] for k in keys}, "earlier": earlier_meta}
    text = continued_md(task, stage, stage_meta, improved)
    if improved:
        save_model(model, dest, dtype=torch.float16)
    else:  # the continuation never beat the committed weights: they stay
        for name in ("model.safetensors", "config.json"):
            shutil.copy2(init / name, dest / name)
    (dest / "trainer.json").write_text(json.dumps(trainer, indent=1))
    (dest / "train_summary.json").write_text(json.dumps(stage, indent=2) + "\n")
    plot_stages(task, earlier_meta, stage_meta, dest / "training.png")
    (dest / "TRAINING.md").write_text(text)


def held_out_loss(task: str, model, stage: dict) -> float:
    """The validation loss (fixed masks) of ``model`` on the held-out set the stage's run validated on."""
    import torch

    from mdm_energy.tasks import get_task
    from mdm_energy.training import validation_loss
    from mdm_energy.training.data import training_pool

    cmd = stage["command"]
    n, cache = int(cmd[cmd.index("--valid-examples") + 1]), cmd[cmd.index("--cache") + 1]
    pool = training_pool(get_task(task), n, 0, cache=cache, split="valid", progress=False)
    ids, prompt_mask = pool.batch(torch.arange(len(pool)))
    return validation_loss(model.eval(), ids, prompt_mask)


def plot_stages(task: str, earlier: dict, continued: dict, path: Path) -> None:
    """Training and validation loss of every stage against minutes of training, each after the one before
    (``earlier``: the start's trainer log, which holds the stages before it under ``"earlier"``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metas = [*stage_chain(earlier), continued]
    labels = (["first stage", "warm-started stage"] if len(metas) == 2
              else [f"{ordinal(k)} stage" + (" (warm-started)" if k else "") for k in range(len(metas))])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shift = 0.0
    for k, (label, meta) in enumerate(zip(labels, metas)):
        if k:
            ax.axvline(shift, color="grey", lw=0.8, ls="--")
        (line,) = ax.plot([shift + x[1] / 60 for x in meta["log"]], [x[2] for x in meta["log"]], lw=0.8, alpha=0.6,
                          label=f"{label}: train")
        ax.plot([shift + x[1] / 60 for x in meta["valid_log"]], [x[2] for x in meta["valid_log"]], "o-", ms=3,
                color=line.get_color(), label=f"{label}: validation")
        shift += meta["elapsed"] / 60
    title = (f"{task}: first stage and warm-started continuation" if len(metas) == 2
             else f"{task}: {len(metas)} stages, each warm-started from the one before")
    _save_loss_plot(fig, ax, "minutes of training", title, path)


def _stage_sentence(k: int, record: dict) -> str:
    """The sentences on an earlier continued stage (the ``k``-th, 0-based) of a chain: what ran, its horizon's
    history and the load average while it trained (its own TRAINING.md said the same)."""
    final = record["final"]
    samples = [x for run in record.get("loads", ()) for x in run]
    load = (f"mean {sum(samples) / len(samples):.2f}, max {max(samples):.2f}" if samples else "not sampled")
    return (f"The {ordinal(k)} ({record['date']}{_on(record)}): warm-started from the {ordinal(k - 1)} stage's committed weights for "
            f"{final['minutes']:.1f} minutes, {final['steps']:,} steps over {len(record.get('loads', ()))} run(s) "
            f"(cosine horizon {record['horizon']:,}), best validation loss {final['best_valid']:.4f}"
            + ("" if record.get("improved", True) else " (it did not beat its start, which stayed committed)") + ". "
            + (record["horizon_note"] + ". " if record.get("horizon_note") else "")
            + f"Its load average: {load}. ")


def _on(record: dict) -> str:
    """Where a stage trained, when not on this machine's CPU cores (a stage record names its accelerator)."""
    return f", on {record['machine']}" if record.get("machine") else ""


def continued_md(task: str, stage: dict, meta: dict, improved: bool) -> str:
    chain = stage_chain(stage)
    earlier, final, k = chain[0], stage["final"], len(chain) - 1
    samples = [x for run in stage["loads"] for x in run]
    load = (f"mean {sum(samples) / len(samples):.2f}, max {max(samples):.2f}" if samples else "not sampled")
    count = {2: "Two stages, both", 3: "Three stages, all", 4: "Four stages, all"}.get(
        len(chain), f"{len(chain)} stages, all")
    start = "those weights" if k == 1 else f"the {ordinal(k - 1)} stage's committed weights"
    opening = (f"{count} on this machine (2 CPU cores; training uses both)"
               if not any(r.get("machine") for r in chain[1:]) else
               f"{count.split(',')[0]}, on this machine's 2 CPU cores (training uses both) except where a stage names "
               "another machine")
    lines = [f"# {task} checkpoint", "",
             f"{opening}. The first ({earlier['date']}): a "
             f"sweep, then **{earlier['chosen']}** trained for {earlier['final']['minutes']:.1f} minutes "
             f"({earlier['final']['steps']:,} steps), best validation loss {earlier['final']['best_valid']:.4f}. "
             + "".join(_stage_sentence(j, chain[j]) for j in range(1, k))
             + f"The {ordinal(k)} ({stage['date']}{_on(stage)}, `python benchmarks/train_task_models.py --continue-minutes`): "
             f"{start} warm-started with the same recipe (a new AdamW and warm-up + cosine schedule over "
             f"{stage['horizon']:,} steps) for {final['minutes']:.1f} minutes, {final['steps']:,} steps, over "
             f"{len(stage['loads'])} run(s); best validation loss **{final['best_valid']:.4f}** at step "
             f"{final['best_step']:,}. " + (stage["horizon_note"] + ". " if stage.get("horizon_note") else "")
             + f"The 1-minute load average, sampled every 30 s while it trained: {load} "
             "(about 2 means the training alone).", "",
             (f"Both stages' best weights in half precision, as committed, on this run's validation set: first "
              f"{stage['compared']['first stage']:.4f}, second {stage['compared']['second stage']:.4f}. " if k == 1 else
              f"The {ordinal(k - 1)} stage's committed weights and the {ordinal(k)} stage's best, in half precision, on "
              f"this run's validation set: {stage['compared']['first stage']:.4f} and "
              f"{stage['compared']['second stage']:.4f}. ")
             + (f"The committed weights are the {ordinal(k)} stage's best, in half precision." if improved else
                f"The {ordinal(k)} stage did not beat the {ordinal(k - 1)}, so the committed weights are still the "
                f"{ordinal(k - 1)} stage's."),
             "",
             f"Data: a pool of {stage['pool']['train']['examples']:,} training examples and "
             f"{stage['pool']['valid']['examples']:,} validation examples (fixed masks), built as the first "
             "stage's (if the task's score version changed in between, which held-out windows it scores differs: "
             "hence the comparison of both stages above on this run's set).", "",
             f"Validation loss of the {ordinal(k)} stage:",
             "", "| step | minutes | validation loss |",
             "|---|---|---|"]
    lines += [f"| {s:,} | {sec / 60:.1f} | {v:.4f} |" for s, sec, v in meta["valid_log"]]
    lines += ["", "Commands (in order): the first stage's", ""]
    lines += [f"    {c}" for c in earlier["commands"]]
    for j in range(1, k + 1):
        lines += ["", f"then the {ordinal(j)} stage's (the `--init` folder holds a copy of the {ordinal(j - 1)} stage's "
                  "committed weights):", "", "    " + " ".join(chain[j]["command"])]
    lines += ["", "![training and validation loss](training.png)", "",
              f"`trainer.json` holds {'both' if k == 1 else 'every'} stages' hyper-parameters and loss logs; the "
              "optimiser state is not committed (size), so this folder evaluates but does not resume (`--init` "
              "warm-starts it).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the runs")
    ap.add_argument("--cache", type=Path, required=True, help="folder for the cached pools")
    ap.add_argument("--tasks", default="countdown,sudoku,pycode")
    ap.add_argument("--sweep-minutes", type=float, default=8.0)
    ap.add_argument("--final-minutes", type=float, default=45.0)
    ap.add_argument("--patience", type=int,
                    help="validations without a new best before a run stops (default 4; 12 for --continue-minutes, "
                    "whose warm restart first raises the loss)")
    ap.add_argument("--pool-scale", type=float, default=1.0, help="scale the pool sizes (for a quick trial)")
    ap.add_argument("--valid-every", type=int, help="override the validation cadence (for a quick trial)")
    ap.add_argument("--export", type=Path, default=ROOT / "checkpoints")
    ap.add_argument("--continue-minutes", type=float,
                    help="warm-start the committed checkpoints for this many more minutes instead of a sweep")
    ap.add_argument("--horizon", type=int,
                    help="with --continue-minutes: the cosine horizon in steps (default: a 12-step speed probe times "
                    "the minutes; the probe can read low, and then the horizon, not the minutes, ends the run)")
    ap.add_argument("--device", default="cpu",
                    help="where the runs train (mdm-energy train --device: cpu, cuda, ...)")
    ap.add_argument("--configs", metavar="D:LAYERS:LR:BATCH[,...]",
                    help="replace each task's sweep by these configurations (width, layers, peak learning rate, batch "
                    "size), e.g. a larger model on a GPU; not with --continue-minutes, which keeps the model's size")
    ap.add_argument("--prepare-only", action="store_true",
                    help="build (or read) each task's cached training and validation pools, print their sizes and "
                    "times, and train nothing (e.g. to carry the pools to a GPU machine: benchmarks/device_train.sh)")
    ap.add_argument("--export-only", action="store_true",
                    help="with --continue-minutes: rewrite the checkpoint folders from the work folder's records")
    args = ap.parse_args()
    if (args.export_only or args.horizon) and not args.continue_minutes:
        ap.error("--export-only and --horizon apply to --continue-minutes only")
    if args.configs and args.continue_minutes:
        ap.error("--configs applies to a new sweep, not to --continue-minutes (which keeps the committed model's size)")
    try:
        configs = parse_configs(args.configs) if args.configs else None
    except ValueError as exc:
        ap.error(str(exc))
    if args.device != "cpu":
        from mdm_energy.training import check_device

        try:
            check_device(args.device)
        except ValueError as exc:
            ap.error(str(exc))
    unknown = [t for t in args.tasks.split(",") if t not in PLAN]
    if unknown:
        ap.error(f"--tasks: unknown task {unknown[0]!r} (known: {', '.join(PLAN)})")
    args.patience = args.patience or (12 if args.continue_minutes else 4)
    args.work, args.cache, args.export = args.work.resolve(), args.cache.resolve(), args.export.resolve()
    for task in args.tasks.split(","):
        plan = dict(PLAN[task])
        plan["pool"] = max(64, int(plan["pool"] * args.pool_scale))
        plan["valid"] = max(16, int(plan["valid"] * min(1.0, args.pool_scale * 10)))
        plan["valid_every"] = args.valid_every or plan["valid_every"]
        plan["sweep"] = configs or plan["sweep"]
        if args.prepare_only:
            print(json.dumps({"task": task, "cache": str(args.cache), **prepare(task, plan, args.cache)}), flush=True)
            continue
        if args.continue_minutes:
            if args.export_only:
                export_continued(task, args.work / task, args.export / task)
            else:
                continue_training(task, args, plan)
            continue
        work = args.work / task
        work.mkdir(parents=True, exist_ok=True)
        log = work / "train.log"
        record = {"task": task, "date": time.strftime("%Y-%m-%d"), "runs": {}, "commands": [],
                  **({"machine": accelerator_name(args.device)} if args.device != "cpu" else {})}
        record["pool"] = prepare(task, plan, args.cache)
        with LoadMonitor() as load:
            for name, d, layers, lr, batch in plan["sweep"]:
                horizon = int(steps_per_second(task, d, layers, batch, args.device) * args.final_minutes * 60)
                cmd = command(task, work / name, args.cache, d, layers, lr, batch, args.sweep_minutes, horizon, plan, None,
                              device=args.device)
                r = run(cmd, log)
                record["runs"][name] = {**r, "out": str(work / name), "horizon": horizon, "command": cmd}
                record["commands"].append(" ".join(cmd))
            chosen = min(record["runs"], key=lambda k: record["runs"][k]["best_valid"])
            c = record["runs"][chosen]
            name, d, layers, lr, batch = next(s for s in plan["sweep"] if s[0] == chosen)
            cmd = command(task, work / chosen, args.cache, d, layers, lr, batch, args.final_minutes, c["horizon"], plan,
                          args.patience, device=args.device)
            final = run(cmd, log)
            record["commands"].append(" ".join(cmd))
        record.update(chosen=chosen, final=final,
                      load={"mean": sum(load.samples) / max(1, len(load.samples)), "max": max(load.samples or [0.0]),
                            "samples": load.samples})
        record["exported"] = export(task, work / chosen, args.export / task, record)
        (work / "record.json").write_text(json.dumps(record, indent=1))
        print(f"{task}: chose {chosen}, best validation loss {final['best_valid']:.4f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
