"""benchmarks/train_task_models.py --continue-minutes end to end on a tiny run: a committed (first-stage)
checkpoint is warm-started, exported with both stages, re-exported identically, continued again (three stages
chained in its records), and bad flag combinations are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mdm_energy.models import MDMConfig, MDMTransformer, load_model, save_model
from mdm_energy.tasks import CountdownTask

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_task_models.py"


def _first_stage(dest: Path) -> None:
    """A checkpoint folder as the sweep exports it: the chosen recipe's size (d128, 4 layers), its logs."""
    task = CountdownTask()
    torch.manual_seed(0)
    save_model(MDMTransformer(MDMConfig(vocab_size=task.vocab.size, mask_id=2, eos_id=1, pad_id=0,
                                        max_len=task.prompt_len + task.gen_len, d_model=128, n_layers=4, n_heads=4,
                                        d_ff=512)), dest, dtype=torch.float16)
    (dest / "trainer.json").write_text(json.dumps({"step": 10, "elapsed": 60.0, "config": {"task": "countdown"},
                                                   "log": [[5, 30.0, 2.5], [10, 60.0, 2.4]],
                                                   "valid_log": [[10, 60.0, 2.45]], "best_valid": 2.45,
                                                   "best_step": 10}))
    (dest / "train_summary.json").write_text(json.dumps({
        "task": "countdown", "date": "2026-11-29", "chosen": "d128-lr1e-3-b128", "commands": ["mdm-energy train ..."],
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
    r = _run(*base, "--device", "cuda")
    assert r.returncode == 2 and "--device apply to --continue-minutes only" in r.stderr
    r = _run(*base, "--continue-minutes", "1", "--device", "tpu")
    assert r.returncode == 2 and "unknown device 'tpu'" in r.stderr and not (tmp_path / "w").exists()
    r = _run(*base, "--tasks", "countdown,sokoban")
    assert r.returncode == 2 and "unknown task 'sokoban'" in r.stderr and not (tmp_path / "w").exists()
    r = _run(*base, "--prepare-only", "--tasks", "countdown", "--pool-scale", "0.001")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["train"]["examples"] == 400 and out["valid"]["examples"] == 16
    assert sorted(f.name.split("-")[2] for f in (tmp_path / "c").iterdir()) == ["train", "valid"]
    assert not (tmp_path / "w").exists()


def test_device_train_script_dry_run_on_the_cpu(tmp_path):
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
           "WORK": str(tmp_path / "work"), "POOLS": str(tmp_path / "pools.tgz")}
    r = subprocess.run(["bash", str(SCRIPT.parent / "device_train.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert {f.name for f in out.iterdir()} == {"checkpoints.tar", "device.txt", "device_train.log",
                                                "countdown-train.log"}
    with tarfile.open(out / "checkpoints.tar") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    dest = tmp_path / "unpacked" / "countdown"
    assert {"model.safetensors", "config.json", "TRAINING.md", "training.png", "trainer.json"} <= {f.name for f in dest.iterdir()}
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
