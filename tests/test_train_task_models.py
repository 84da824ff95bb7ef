"""benchmarks/train_task_models.py end to end on tiny runs: a committed (first-stage) checkpoint is warm-started
(--continue-minutes), exported with both stages, re-exported identically, continued again (three stages chained in
its records); a sweep of another size (--configs) replaces committed weights only when it beats them; bad flag
combinations are refused; benchmarks/device_train.sh runs both ways on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdm_energy.models import MDMConfig, MDMTransformer, load_model, save_model
from mdm_energy.tasks import get_task

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_task_models.py"


def _first_stage(dest: Path, task_name: str = "countdown") -> None:
    """A checkpoint folder as the sweep exports it: the chosen recipe's size (d128, 4 layers), its logs; the
    weights are a random initialisation."""
    task = get_task(task_name)
    torch.manual_seed(0)
    save_model(MDMTransformer(MDMConfig(vocab_size=task.vocab.size, mask_id=2, eos_id=1, pad_id=0,
                                        max_len=task.prompt_len + task.gen_len, d_model=128, n_layers=4, n_heads=4,
                                        d_ff=512)), dest, dtype=torch.float16)
    (dest / "trainer.json").write_text(json.dumps({"step": 10, "elapsed": 60.0, "config": {"task": task_name},
                                                   "log": [[5, 30.0, 2.5], [10, 60.0, 2.4]],
                                                   "valid_log": [[10, 60.0, 2.45]], "best_valid": 2.45,
                                                   "best_step": 10}))
    (dest / "train_summary.json").write_text(json.dumps({
        "task": task_name, "date": "2026-11-29", "chosen": "d128-lr1e-3-b128", "commands": ["mdm-energy train ..."],
        "final": {"minutes": 1.0, "steps": 10, "best_valid": 2.45, "best_step": 10}}))
    (dest / "tuned_schedule.json").write_text('{"schedule": "beta:0.5,0.5", "checkpoint": "0123456789ab"}')


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=os.environ.copy(),
                          timeout=300)


def test_continue_exports_both_stages_and_keeps_the_better(tmp_path):
    export, work, cache = tmp_path / "checkpoints", tmp_path / "work", tmp_path / "cache"
    _first_stage(export / "countdown")
    first = load_model(export / "countdown").state_dict()
    common = ["--work", str(work), "--cache", str(cache), "--tasks", "countdown", "--export", str(export),
              "--continue-minutes", "1", "--pool-scale", "0.001", "--valid-every", "3", "--horizon", "6"]
    r = _run(*common)
    assert r.returncode == 0, r.stderr[-2000:]
    dest = export / "countdown"
    stage = json.loads((dest / "train_summary.json").read_text())
    assert stage["final"]["steps"] == 6 and stage["horizon"] == 6 and "--init" in stage["command"]
    assert stage["improved"] == (stage["compared"]["second stage"] < stage["compared"]["first stage"])
    trainer = json.loads((dest / "trainer.json").read_text())
    assert trainer["config"]["task"] == "countdown" and trainer["step"] == 6 and trainer["earlier"]["step"] == 10
    committed = load_model(dest).state_dict()
    if stage["improved"]:  # the second stage's best weights, rounded to half precision
        from safetensors.torch import load_file

        best = load_file(work / "countdown" / "continued" / "best.safetensors")
        assert all(torch.equal(committed[k], best[k].half().float()) for k in committed)
    else:
        assert all(torch.equal(committed[k], first[k]) for k in committed)
    text = (dest / "TRAINING.md").read_text()
    assert "--horizon 6" in text and "**d128-lr1e-3-b128**" in text and (dest / "training.png").stat().st_size > 0
    assert json.loads((dest / "tuned_schedule.json").read_text())["schedule"] == "beta:0.5,0.5"  # kept, as a record
    # --export-only rewrites the same files from the work folder's record
    before = {f.name: f.read_bytes() for f in dest.iterdir() if f.name != "training.png"}
    assert _run(*common, "--export-only").returncode == 0
    assert {f.name: f.read_bytes() for f in dest.iterdir() if f.name != "training.png"} == before
    # the same work folder holds one continuation: rerunning it once exported is refused (not a silent re-export)
    r = _run(*common)
    assert r.returncode == 1 and "holds a finished continuation" in r.stderr
    # a continued checkpoint is continued again with a new work folder: three stages, chained in every record
    r = _run(*[a if a != str(work) else str(tmp_path / "work2") for a in common])
    assert r.returncode == 0, r.stderr[-2000:]
    third = json.loads((dest / "train_summary.json").read_text())
    assert third["earlier"]["command"] == stage["command"] and third["earlier"]["earlier"]["chosen"] == "d128-lr1e-3-b128"
    assert str(tmp_path / "work2" / "countdown" / "init") in third["command"]
    trainer = json.loads((dest / "trainer.json").read_text())
    assert trainer["step"] == 6 and trainer["earlier"]["step"] == 6 and trainer["earlier"]["earlier"]["step"] == 10
    text = (dest / "TRAINING.md").read_text()
    assert "Three stages, all on this machine" in text and "The second (" in text and "The third (" in text
    assert text.count("    mdm-energy train --task countdown") == 2 and "then the third stage's" in text
    assert str(work / "countdown" / "init") in text and str(tmp_path / "work2" / "countdown" / "init") in text
    assert "Validation loss of the third stage:" in text and (dest / "training.png").stat().st_size > 0
    # a stage that trained on an accelerator says so where it is described, and the opening no longer claims
    # every stage for this machine's CPU cores (a record without "machine" keeps the text above, byte for byte)
    record = tmp_path / "work2" / "countdown" / "continue.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "machine": "one NVIDIA H200 (`--device cuda`)"}))
    assert _run(*[a if a != str(work) else str(tmp_path / "work2") for a in common], "--export-only").returncode == 0
    text = (dest / "TRAINING.md").read_text()
    assert text.count("on one NVIDIA H200 (`--device cuda`), `python benchmarks/train_task_models.py") == 1
    assert "Three stages, on this machine's 2 CPU cores (training uses both) except where a stage names" in text


def test_bad_flag_combinations_are_refused(tmp_path):
    r = _run("--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c"), "--export-only")
    assert r.returncode == 2 and "--continue-minutes only" in r.stderr and not (tmp_path / "w").exists()
    r = _run("--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c"), "--continue-minutes", "1", "--export-only",
             "--export", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "missing" in r.stderr and r.stderr.strip().count("\n") == 0


def test_device_task_and_prepare_flags(tmp_path):
    """--device is checked before anything is made, unknown tasks are named, and --prepare-only builds the cached
    pools the recipe trains on (the ones benchmarks/device_train.sh carries to a GPU) and trains nothing."""
    base = ["--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c")]
    r = _run(*base, "--horizon", "100")
    assert r.returncode == 2 and "--horizon apply to --continue-minutes only" in r.stderr
    for extra in ([], ["--continue-minutes", "1"]):
        r = _run(*base, *extra, "--device", "tpu")
        assert r.returncode == 2 and "unknown device 'tpu'" in r.stderr and not (tmp_path / "w").exists()
    r = _run(*base, "--tasks", "countdown,sokoban")
    assert r.returncode == 2 and "unknown task 'sokoban'" in r.stderr and not (tmp_path / "w").exists()
    r = _run(*base, "--prepare-only", "--tasks", "countdown", "--pool-scale", "0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["train"]["examples"] == 400 and out["valid"]["examples"] == 16
    assert sorted(f.name.split("-")[2] for f in (tmp_path / "c").iterdir()) == ["train", "valid"]
    assert not (tmp_path / "w").exists()


def test_bad_configs_are_refused(tmp_path):
    """--configs entries are parsed before anything is made: each bad one is named, with what was expected."""
    base = ["--work", str(tmp_path / "w"), "--cache", str(tmp_path / "c"), "--tasks", "countdown"]
    for bad, why in (("192:6:1e-3", "expected D:LAYERS:LR:BATCH"), ("190:6:1e-3:64", "divisible by the 4 heads"),
                     ("192:six:1e-3:64", "with numbers"), ("192:6:0:64", "learning rate positive"),
                     ("192:0:1e-3:64", "positive integers")):
        r = _run(*base, "--configs", f"128:4:1e-3:64,{bad}")
        assert r.returncode == 2 and f"--configs: bad entry {bad!r}" in r.stderr and why in r.stderr, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("train_task_models.py: error:")
    r = _run(*base, "--configs", "128:4:1e-3:64", "--continue-minutes", "1")
    assert r.returncode == 2 and "--configs applies to a new sweep" in r.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "c").exists()


def test_a_new_sweep_replaces_committed_weights_only_when_it_beats_them(tmp_path):
    """--configs trains a model of another size from scratch; the export scores it against the folder's committed
    weights on the run's held-out set (both in half precision, recomputed here): countdown's real checkpoint is
    kept byte for byte, a randomly initialised one is replaced (its notes say by what), and the replacement can be
    continued (its recipe is read back from its record, not from the task's plan)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from train_task_models import held_out_loss
    finally:
        sys.path.remove(str(SCRIPT.parent))
    export, work, cache = tmp_path / "checkpoints", tmp_path / "work", tmp_path / "cache"
    real = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
    shutil.copytree(real, export / "countdown")
    _first_stage(export / "countdown-long", "countdown-long")
    before = {f.name: f.read_bytes() for f in (export / "countdown").iterdir()}
    random_init = load_model(export / "countdown-long")
    common = ["--work", str(work), "--cache", str(cache), "--export", str(export), "--pool-scale", "0.001",
              "--valid-every", "5"]
    r = _run(*common, "--tasks", "countdown,countdown-long", "--configs", "32:2:3e-3:16", "--sweep-minutes", "0.05",
             "--final-minutes", "0.1")
    assert r.returncode == 0, r.stderr[-2000:]
    kept = json.loads((work / "countdown" / "record.json").read_text())
    assert kept["exported"] is False and kept["compared"]["new"] > kept["compared"]["committed"]
    assert "did not beat the committed weights" in r.stderr
    assert {f.name: f.read_bytes() for f in (export / "countdown").iterdir()} == before
    replaced = json.loads((work / "countdown-long" / "record.json").read_text())
    assert replaced["exported"] is True and replaced["chosen"] == "d32-L2-lr3e-3-b16"
    stage = {"command": replaced["runs"]["d32-L2-lr3e-3-b16"]["command"]}
    assert abs(held_out_loss("countdown-long", random_init, stage) - replaced["compared"]["committed"]) < 1e-6
    new = load_model(export / "countdown-long")
    assert new.config.d_model == 32 and new.config.n_layers == 2
    assert abs(held_out_loss("countdown-long", new, stage) - replaced["compared"]["new"]) < 1e-6
    assert replaced["compared"]["new"] < replaced["compared"]["committed"]
    text = (export / "countdown-long" / "TRAINING.md").read_text()
    assert "They replaced the weights committed before (d_model 128, 4 layers, 8" in text
    assert "**d32-L2-lr3e-3-b16**" in text and "Trained on this machine (2 CPU cores" in text
    r = _run(*[a if a != str(work) else str(tmp_path / "work2") for a in common], "--tasks", "countdown-long",
             "--continue-minutes", "0.05", "--horizon", "4")
    assert r.returncode == 0, r.stderr[-2000:]
    stage = json.loads((export / "countdown-long" / "train_summary.json").read_text())
    cmd = stage["command"]
    assert [cmd[cmd.index(f) + 1] for f in ("--d-model", "--layers", "--lr", "--batch-size")] == ["32", "2", "0.003", "16"]


@pytest.mark.parametrize("configs", ["", "32:2:1e-3:16"], ids=["longer", "larger"])
def test_device_train_script_dry_run_on_the_cpu(tmp_path, configs):
    """benchmarks/device_train.sh end to end with DEVICE=cpu and tiny pools packed as its header says: the run
    trains on the carried pools, the continued checkpoint comes back in $OUT/checkpoints.tar with its notes, curves
    and loadable weights, beside the logs, and the repository's own checkpoints are untouched (the export goes to
    a copy)."""
    import tarfile

    committed = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
    before = {f.name: f.read_bytes() for f in committed.iterdir()}
    built = tmp_path / "built"  # the pools, built here and packed as the script's header says
    r = _run("--work", str(tmp_path / "w"), "--cache", str(built), "--prepare-only", "--tasks", "countdown",
             "--pool-scale", "0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    with tarfile.open(tmp_path / "pools.tgz", "w:gz") as tar:
        for f in built.iterdir():
            tar.add(f, arcname=f.name)
    stamps = {f.name: int(f.stat().st_mtime) for f in built.iterdir()}
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "DEVICE": "cpu", "MINUTES": "0.05", "POOL_SCALE": "0.001",
           "VALID_EVERY": "5", "TASKS": "countdown", "EXPORT": str(tmp_path / "export"), "CACHE": str(tmp_path / "pools"),
           "WORK": str(tmp_path / "work"), "POOLS": str(tmp_path / "pools.tgz"), "CONFIGS": configs}
    r = subprocess.run(["bash", str(SCRIPT.parent / "device_train.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert {f.name for f in out.iterdir()} == {"checkpoints.tar", "device.txt", "device_train.log",
                                                "countdown-train.log"} | ({"countdown-record.json"} if configs else set())
    with tarfile.open(out / "checkpoints.tar") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    dest = tmp_path / "unpacked" / "countdown"
    assert {"model.safetensors", "config.json", "TRAINING.md", "training.png", "trainer.json"} <= {f.name for f in dest.iterdir()}
    if configs:  # a tiny model trained for seconds does not beat the committed one: the copy comes back unchanged
        record = json.loads((out / "countdown-record.json").read_text())
        assert record["final"]["steps"] > 0 and record["exported"] is False and "--device" not in record["commands"][0]
        assert record["compared"]["new"] > record["compared"]["committed"] and "--d-model 32" in record["commands"][0]
        assert {f.name: f.read_bytes() for f in dest.iterdir()} == before
    else:
        stage = json.loads((dest / "train_summary.json").read_text())
        assert stage["final"]["steps"] > 0 and "--init" in stage["command"] and "--device" not in stage["command"]
    assert load_model(dest).config.d_model == load_model(committed).config.d_model
    assert "mdm-energy train --task countdown" in (out / "countdown-train.log").read_text()
    assert {f.name: f.read_bytes() for f in committed.iterdir()} == before
    # the run trained on the carried pools (unpacked with their times), it did not build its own
    assert {f.name: int(f.stat().st_mtime) for f in (tmp_path / "pools").iterdir()} == stamps


def test_the_committed_training_notes_are_what_the_export_writes():
    """A re-export must not change a committed TRAINING.md: the notes of every committed continued checkpoint are
    exactly what ``continued_md`` writes from its records (the text of the code that exported them)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from train_task_models import continued_md
    finally:
        sys.path.remove(str(SCRIPT.parent))
    root = SCRIPT.parents[1] / "checkpoints"
    checked = 0
    for folder in sorted(root.iterdir()):
        summary = folder / "train_summary.json"
        stage = json.loads(summary.read_text()) if summary.is_file() else {}
        if "earlier" not in stage:
            continue  # a sweep's checkpoint (training_md writes it from another record)
        meta = json.loads((folder / "trainer.json").read_text())
        assert continued_md(folder.name, stage, meta, stage["improved"]) == (folder / "TRAINING.md").read_text()
        checked += 1
    assert checked >= 2  # countdown's and pycode's, at least
