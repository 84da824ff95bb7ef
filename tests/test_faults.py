"""Faults that are not bad input (issue #28): SIGINT/SIGTERM during a run, a full disk, a damaged study file, two
training runs on one folder. Each ends in one line with a documented exit status, leaves no half-written or
temporary file, and a rerun resumes.

Everything here is real: commands run as subprocesses and get real signals, once a marker shows their work is under
way (a first checkpoint, a trial running in the study, the evaluation starting); the full disk is a real tmpfs.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mdm_energy.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "countdown"
CLI = [sys.executable, "-m", "mdm_energy"]
#: A training run that takes a fraction of a second per step and checkpoints after about every step.
TINY_TRAIN = ["--task", "countdown", "--d-model", "16", "--layers", "1", "--train-examples", "16", "--batch-size", "4",
              "--valid-examples", "8"]
#: What a clean run leaves nowhere: temporary files and folders of atomic writes, reports and the training lock.
TEMPORARY = (".tmp-", ".report-", ".train.lock")


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(TEMPORARY)]


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def start(argv: list[str], cwd: Path, marked: "str | None" = None, linger: float = 0.0) -> subprocess.Popen:
    """Start ``mdm-energy ARGV``; with ``marked="module:function"`` (or ``module:Class.method``) that function
    first prints ``MARK`` on stderr each time it is called, so the test knows its work began, then runs as usual
    and, with ``linger``, waits that many seconds before returning: its work then lasts long enough for a
    signal sent once it is seen under way to land inside it on a loaded machine."""
    cmd = CLI
    if marked:
        module, name = marked.split(":")
        owner, _, attr = name.rpartition(".")
        where = f"m.{owner}" if owner else "m"
        cmd = [sys.executable, "-c", (
            f"import importlib, sys, time\nm = importlib.import_module({module!r})\nreal = {where}.{attr}\n"
            "def marked(*a, **k):\n    print('MARK', file=sys.stderr, flush=True)\n    out = real(*a, **k)\n"
            f"    time.sleep({float(linger)!r})\n    return out\n"
            f"{where}.{attr} = marked\nfrom mdm_energy.cli import main\nsys.exit(main(sys.argv[1:]))\n")]
    return subprocess.Popen([*cmd, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    """Poll ``ready()`` until it holds; fails (with the command's stderr) if the command ends first."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (status {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {timeout} s")
        time.sleep(0.02)


def wait_for_mark(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait for the ``MARK`` line of a command started with ``marked=``."""
    deadline, seen = time.time() + timeout, []
    while time.time() < deadline:
        if select.select([proc.stderr], [], [], 0.5)[0]:
            line = proc.stderr.readline()
            if line.strip() == "MARK":
                return
            if not line:
                break
            seen.append(line)
    proc.kill()
    pytest.fail(f"the command never started its work: {''.join(seen)}{proc.communicate()[1]}")


def stop(proc: subprocess.Popen, sig: signal.Signals, logs: bool = False) -> tuple[str, str]:
    """Send ``sig``; the command must stop within a minute with 128 + the signal's number and one line (the
    last one, after lm-eval's own logs, with ``logs``)."""
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    err = "".join(ln for ln in err.splitlines(keepends=True) if ln.strip() != "MARK")  # start()'s markers
    line = err.strip().splitlines()[-1] if logs and "Traceback" not in err else one_line(err)
    assert line == f"mdm-energy: interrupted ({sig.name})", err
    return out, err


# --- SIGINT / SIGTERM -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_train_leaves_a_whole_checkpoint_and_resumes(capsys, tmp_path, sig):
    from mdm_energy.models import load_model

    ck = tmp_path / "ck"
    argv = ["train", *TINY_TRAIN, "--minutes", "5", "--out", str(ck), "--json"]
    proc = start([*argv, "--max-steps", "100000", "--checkpoint-minutes", "0.0001"], tmp_path)
    wait_until(proc, lambda: (ck / "trainer.json").is_file(), "a first checkpoint")
    time.sleep(0.3)  # a few checkpoints more: the signal most likely lands while one is being written
    out, _ = stop(proc, sig)
    assert out == "" and leftovers(tmp_path) == []
    step = json.loads((ck / "trainer.json").read_text())["step"]
    load_model(ck)  # the weights beside it are whole
    assert main(["train", *argv[1:], "--max-steps", str(step + 2)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed"] and summary["steps"] == step + 2


def test_an_interrupted_eval_stops_cleanly(tmp_path):
    proc = start(["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "-N", "8", "--limit", "200"],
                 tmp_path, marked="mdm_energy.tasks.evaluate:evaluate")
    wait_for_mark(proc)
    out, _ = stop(proc, signal.SIGTERM)
    assert out == "" and list(tmp_path.iterdir()) == []


def test_an_interrupted_profile_writes_no_file(tmp_path):
    saved = tmp_path / "profile.json"
    proc = start(["profile", "--checkpoint", str(CHECKPOINT), "--task", "countdown", "--samples", "256", "--save",
                  str(saved), "--plot", str(tmp_path / "profile.png")], tmp_path,
                 marked="mdm_energy.profile:estimate_profile")
    wait_for_mark(proc)
    stop(proc, signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []


def _interrupt_a_running_trial(cmd: list[str], storage: str, study: str, cwd: Path, logs: bool = False,
                               after_one: bool = True, slowed: "str | None" = None, linger: float = 3.0) -> int:
    """Start ``cmd``, SIGTERM it while it evaluates a trial (after one finished, with ``after_one``), check the
    study then holds no running trial and the interrupted one is marked for redoing; returns how many trials
    had completed. ``slowed`` names the scoring function (as ``start``'s ``marked``) to hold for ``linger`` seconds
    after each call, so a trial seen running cannot end (and the command with it) before the signal lands."""
    import optuna

    proc = start(cmd, cwd, marked=slowed, linger=linger if slowed else 0.0)
    opened: list = []

    def evaluating() -> bool:
        time.sleep(0.1)  # light polling: the command shares the SQLite file
        if not opened:
            try:
                opened.append(optuna.load_study(study_name=study, storage=storage))
            except Exception:  # noqa: BLE001 - not created yet
                return False
        trials = opened[0].get_trials(deepcopy=False)
        return ((not after_one or any(t.state.name == "COMPLETE" for t in trials))
                and any(t.state.name == "RUNNING" and t.user_attrs.get("pid") == proc.pid for t in trials))

    wait_until(proc, evaluating, "a trial under way")
    stop(proc, signal.SIGTERM, logs)
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    interrupted = [t for t in trials if t.user_attrs.get("error") == "interrupted (SIGTERM)"]
    assert len(interrupted) == 1 if slowed else len(interrupted) <= 1  # unslowed, the trial seen may have ended
    assert all(t.state.name == "FAIL" and t.user_attrs["stale"] for t in interrupted)
    assert leftovers(cwd) == []
    return sum(t.state.name == "COMPLETE" for t in trials)


def test_a_trial_stopped_by_a_signal_is_released_and_redone(tmp_path):
    """Deterministic: the objective's second point raises SIGTERM in this process, mid-evaluation."""
    from mdm_energy import _signals
    from mdm_energy.tuning import SearchSpace, TaskObjective, tune

    calls = []

    def score(schedule, items):
        calls.append(getattr(schedule, "spec", schedule))
        if len(calls) == 6:  # four baselines, one point, then this one
            signal.raise_signal(signal.SIGTERM)
        return [1.0 for _ in items]

    storage, space = f"sqlite:///{tmp_path}/s.db", SearchSpace(values={"a": (0.5, 1.0), "b": (0.5,)})
    previous = _signals.install()
    try:
        with pytest.raises(_signals.Interrupted):
            tune(TaskObjective(score, [1, 2, 3]), strategy="grid", storage=storage, study_name="s", space=space)
    finally:
        _signals.restore(previous)
    import optuna

    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [(t.state.name, t.user_attrs.get("error"), bool(t.user_attrs.get("stale"))) for t in trials] == [
        ("COMPLETE", None, False), ("FAIL", "interrupted (SIGTERM)", True)]
    r = tune(TaskObjective(score, [1, 2, 3]), strategy="grid", storage=storage, study_name="s", space=space)
    assert r.evaluations == 2 and r.new_evaluations == 1 and calls[-1] == calls[5]  # only the stopped point redone


@pytest.mark.parametrize("strategy, budget, evaluations", [("grid", None, 2), ("random", 3, 3), ("tpe", 3, 3)])
def test_a_signal_landing_as_a_trial_is_created_releases_it(tmp_path, monkeypatch, strategy, budget, evaluations):
    """Deterministic: SIGTERM lands after the storage committed the second trial but before create_running_trial
    returned (the window a signal sent as soon as the trial shows up in the study can hit); it is still released.
    The ask-and-tell strategies (random, tpe) create their trials the same way, already named: Optuna's ``ask``,
    which would create one unnamed, is never called."""
    import optuna

    from mdm_energy import _signals
    from mdm_energy.tuning import SearchSpace, TaskObjective, claims, tune

    real, created = claims.create_running_trial, []

    def create_then_signal(*args, **kwargs):
        out = real(*args, **kwargs)
        created.append(out)
        if len(created) == 2:
            signal.raise_signal(signal.SIGTERM)
        return out

    def no_ask(*args, **kwargs):
        raise AssertionError("a worker asked Optuna for an unnamed trial")

    monkeypatch.setattr(claims, "create_running_trial", create_then_signal)
    monkeypatch.setattr(optuna.study.Study, "ask", no_ask)  # the window itself: a trial Optuna creates unnamed
    storage = f"sqlite:///{tmp_path}/s.db"
    space = (SearchSpace(values={"a": (0.5, 1.0), "b": (0.5,)}) if strategy == "grid"
             else SearchSpace(bounds={"a": (0.1, 1.5), "b": (0.1, 1.5)}))
    objective = TaskObjective(lambda schedule, items: [1.0 for _ in items], [1, 2, 3])
    previous = _signals.install()
    try:
        with pytest.raises(_signals.Interrupted):
            tune(objective, strategy=strategy, budget=budget, storage=storage, study_name="s", space=space, seed=0)
    finally:
        _signals.restore(previous)
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [(t.state.name, t.user_attrs.get("error"), bool(t.user_attrs.get("stale"))) for t in trials] == [
        ("COMPLETE", None, False), ("FAIL", "interrupted (SIGTERM)", True)]
    monkeypatch.setattr(claims, "create_running_trial", real)
    r = tune(objective, strategy=strategy, budget=budget, storage=storage, study_name="s", space=space, seed=0)
    assert r.evaluations == evaluations and r.new_evaluations == evaluations - 1


def test_an_interrupted_task_tune_resumes_without_redoing_finished_trials(capsys, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    argv = ["tune", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "-N", "4",
            "--limit", "8", "--strategy", "grid", "--a-values", "0.3,1", "--b-values", "0.4,0.8",
            "--storage", storage, "--study", "t", "--json"]
    # each scoring call held 1.5 s: the tuner's own bookkeeping is fast enough that a 4-point grid on 8 items can end
    # between two polls of the study
    done = _interrupt_a_running_trial(argv, storage, "t", tmp_path, slowed="mdm_energy.tasks.evaluate:evaluate",
                                      linger=1.5)
    assert 1 <= done < 4, "the run should have been stopped mid-way"
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluations"] == 4 and result["new_evaluations"] == 4 - done


def test_an_interrupted_lm_eval_tune_resumes(capsys, tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny_mdm import save_tiny
    from test_lm_eval_tuning import GEN, OFFLINE, STEPS, _yaml  # its tiny model's settings and task file

    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    save_tiny(tmp_path / "model", seed=5)
    (tmp_path / "tasks").mkdir()
    rows = [{"question": f"{a}+{b}=", "answer": str(a + b)} for a in range(1, 5) for b in range(3, 7)]
    (tmp_path / "tasks" / "gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "tasks" / "gen.yaml").write_text(_yaml("gen"))
    storage = f"sqlite:///{tmp_path}/s.db"
    argv = ["tune", "--objective", "lm-eval", "--model-args", f"pretrained={tmp_path / 'model'},{GEN}",
            "--tasks", "gen", "--include-path", str(tmp_path / "tasks"), "--steps", str(STEPS), "--strategy", "grid",
            "--a-values", "0.3,0.6,1", "--b-values", "0.4", "--storage", storage, "--study", "lm", "--json"]
    done = _interrupt_a_running_trial(argv, storage, "lm", tmp_path, logs=True, after_one=False,
                                      slowed="mdm_energy.integrations.lm_eval_objective:LMEvalObjective.score_items")
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluations"] == 3 and result["new_evaluations"] == 3 - done


# --- two runs on one folder ------------------------------------------------------------------------------------


def test_a_second_train_on_the_same_folder_is_refused(capsys, tmp_path):
    ck = tmp_path / "ck"
    argv = ["train", *TINY_TRAIN, "--minutes", "0.05", "--max-steps", "100000", "--out", str(ck), "--json"]
    first = start(argv, tmp_path)
    wait_until(first, lambda: (ck / ".train.lock").exists(), "the first run holding its folder")
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and one_line(err) == (f"mdm-energy: error: another train run is writing to {str(ck)!r}; "
                                           "wait for it to end or train into another folder")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["steps"] > 0 and not json.loads(out)["resumed"]  # the first run went on unaffected
    assert leftovers(tmp_path) == []  # nor does a finished run leave its lock behind


# --- a full disk -----------------------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A real 64 KiB tmpfs, filled up: every write that needs room fails with ENOSPC. Unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        with pytest.raises(OSError), open(disk / "filler", "wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _disk_full(capsys, argv: list[str], named: Path, disk: Path) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and one_line(err) == f"mdm-energy: error: No space left on device: {str(named)!r}"
    assert [p.name for p in disk.iterdir()] == ["filler"]  # no partial file, no temporary one


def test_a_full_disk_while_writing_a_checkpoint(capsys, full_disk):
    ck = full_disk / "ck"
    _disk_full(capsys, ["train", *TINY_TRAIN, "--minutes", "1", "--max-steps", "2", "--out", str(ck)],
               ck / "best.safetensors", full_disk)  # the run ends with a validation, whose best weights come first


def test_a_full_disk_while_writing_a_report(capsys, tmp_path, full_disk):
    _disk_full(capsys, ["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--a-values", "0.5,1", "--b-values",
                        "0.5", "--storage", f"sqlite:///{tmp_path}/s.db", "--report", str(full_disk / "rep")],
               full_disk / "rep", full_disk)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A countdown model of a few thousand weights, trained two steps: fast to profile."""
    from mdm_energy.tasks import get_task
    from mdm_energy.training import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny") / "ck"
    train(get_task("countdown"), out, TrainConfig(task="countdown", d_model=16, n_layers=1, d_ff=64, train_examples=16,
                                                  batch_size=4, valid_every=0, max_steps=2), progress=False)
    return out


def test_a_full_disk_while_writing_a_profile(capsys, tiny_checkpoint, full_disk):
    saved = full_disk / "p.json"
    _disk_full(capsys, ["profile", "--checkpoint", str(tiny_checkpoint), "--task", "countdown", "--samples", "4",
                        "--save", str(saved)], saved, full_disk)


def test_a_full_disk_while_plotting_a_profile(capsys, tmp_path, full_disk):
    from mdm_energy.profile import InformationProfile

    profile, plot = tmp_path / "p.json", full_disk / "p.png"
    InformationProfile(4, (2.0, 1.5, 1.0, 0.5), (0.1,) * 4, samples=8, order="random", calls=4).save(profile)
    _disk_full(capsys, ["profile", "--load", str(profile), "--steps", "2", "--plot", str(plot)], plot, full_disk)


# --- a damaged study file --------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage,reason", [
    (lambda data: data[:100] + b"\x13" * (len(data) - 100), "database disk image is malformed"),
    (lambda data: data[: len(data) // 3], "database disk image is malformed"),
    (lambda data: data[:16] + b"junk" * 100, "file is not a database"),
], ids=["overwritten", "cut-short", "header-only"])
def test_a_damaged_sqlite_study_is_named_and_left_as_it_is(capsys, tmp_path, damage, reason):
    db = tmp_path / "s.db"
    argv = ["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--a-values", "0.5,1", "--b-values", "0.5",
            "--storage", f"sqlite:///{db}"]
    assert main(argv) == 0
    capsys.readouterr()
    db.write_bytes(damage(db.read_bytes()))
    before = db.read_bytes()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and one_line(err) == (f"mdm-energy: error: storage file {str(db)!r} is damaged ({reason}); it was "
                                           "left as it is: restore it from a copy or give another file")
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
