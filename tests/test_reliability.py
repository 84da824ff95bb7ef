"""Bad input of every kind gets one clear line and exit 2: no traceback, hang, nonsense or leftover file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdm_energy.cli import main

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"


def refused(capsys, argv: list[str], needle: str, folder: "Path | None" = None) -> str:
    """Run ``argv``; it must exit 2 with one line containing ``needle`` and leave ``folder`` unchanged."""
    before = sorted(folder.rglob("*")) if folder is not None else None
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == "" and err.count("\n") == 1 and err.startswith("mdm-energy: error: "), err
    assert needle in err, err
    if folder is not None:
        assert sorted(folder.rglob("*")) == before, "files were left behind"
    return err


@pytest.fixture
def broken(tmp_path):
    """Copies of the countdown checkpoint, each damaged in one way."""

    def make(name, mutate):
        d = tmp_path / name
        shutil.copytree(CHECKPOINT, d)
        mutate(d)
        return d

    def config(d, **changes):
        cfg = json.loads((d / "config.json").read_text())
        for k, v in changes.items():
            if v is None:
                cfg.pop(k)
            else:
                cfg[k] = v
        (d / "config.json").write_text(json.dumps(cfg))

    return {
        "cut": make("cut", lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000])),
        "garbage": make("garbage", lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 100)),
        "list": make("list", lambda d: (d / "config.json").write_text("[1, 2]")),
        "string": make("string", lambda d: config(d, d_model="wide")),
        "extra": make("extra", lambda d: config(d, colour="red")),
        "missing": make("missing", lambda d: config(d, vocab_size=None)),
        "mismatch": make("mismatch", lambda d: config(d, n_layers=2)),
        "json": make("json", lambda d: (d / "config.json").write_text("{oops")),
        "huge": make("huge", lambda d: config(d, max_len=10**12)),
    }


@pytest.mark.parametrize("kind,needle", [
    ("cut", "is corrupt or cut short"), ("garbage", "is corrupt or cut short"),
    ("list", "expected a JSON object of model settings, got list"), ("string", "d_model must be a positive integer, got 'wide'"),
    ("extra", "unknown field(s) colour"), ("missing", "missing field(s) vocab_size"), ("mismatch", "does not match"),
    ("json", "is not valid JSON"), ("huge", "of memory"),
])
def test_damaged_checkpoints_are_named(capsys, broken, kind, needle):
    err = refused(capsys, ["eval", "--task", "countdown", "--checkpoint", str(broken[kind]), "-N", "2", "--limit", "2"], needle)
    assert str(broken[kind]) in err or kind == "huge"


def test_internal_errors_are_one_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    from mdm_energy.cli import schedule_cmd

    def boom(args):
        raise RuntimeError("something broke\nover two lines")

    monkeypatch.setattr(schedule_cmd, "run", boom)
    assert main(["schedule", "linear", "-N", "2", "-L", "4"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "internal error: RuntimeError: something broke over two lines" in err and "--debug" in err
    assert main(["--debug", "schedule", "linear", "-N", "2", "-L", "4"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr()[1]


@pytest.mark.parametrize("argv,needle", [
    (["schedule", "linear", "-N", "1000000000", "-L", "16"], "steps must be at most 1,000,000, got '1000000000'"),
    (["schedule", "beta:1e308,1e308", "-N", "8", "-L", "16"], "beta parameter a must be a number in [0.001, 1000], got 1e+308"),
    (["schedule", "beta:1_0,1", "-N", "8", "-L", "16"], "'1_0' is not a finite decimal number"),
    (["schedule", "linear", "-N", "1_0", "-L", "16"], "steps must be a positive integer, got '1_0'"),
    (["schedule", "linear", "-N", "8", "-L", "10000000000000000000000"], "at most 1,000,000,000,000,000"),
    (["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "-N", "2", "--limit", "1000000000"], "of memory"),
    (["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--workers", "100000"], "per CPU core"),
    (["tune", "--dist", "toy2", "-N", "2", "--strategy", "tpe", "--budget", "100000000"], "--budget must be at most 2,500"),
    (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", "1000000000"], "of memory"),
    (["bench-sampler", "-B", "100000", "-L", "100000", "-V", "100000"], "of memory"),
    (["train", "--task", "countdown", "--minutes", "0", "--out", "o"], "minutes must be a number > 0, got '0'"),
    (["train", "--task", "countdown", "--minutes", "1", "--out", "o", "--d-model", "100000"], "of memory"),
    (["train", "--task", "countdown", "--minutes", "1", "--out", "o", "--train-examples", "1000000000"], "of memory"),
    (["demo", "-N", "5000"], "at most 1,024 steps"),
    (["toy", "-N", "1000000"], "steps must be at most 1,000"),
    (["exact", "--dist", "toy2", "--sampler", "ancestral", "--schedule", "linear", "-N", "1000000"], "minutes (estimate)"),
    (["exact-grid", "--dist", "toy2", "--sampler", "ancestral", "-N", "2", "--a-values", ",".join(["0.5"] * 1001)], "at most 1000"),
    (["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--a-values", ",".join(["0.5"] * 600),
      "--b-values", ",".join(["0.5"] * 10)], "6,000 points"),
])
def test_sizes_that_cannot_fit_are_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    refused(capsys, argv, needle, tmp_path)
    assert time.time() - t0 < 10  # refused up front, not after a long computation


@pytest.mark.parametrize("make,needle", [
    (lambda p: np.ones((2, 2, 2), dtype=complex), "must be real numbers"),
    (lambda p: np.array(["a", "b"]), "must be numbers"),
])
def test_nonsense_weight_files(capsys, tmp_path, make, needle):
    np.save(tmp_path / "w.npy", make(tmp_path))
    refused(capsys, ["exact", "--dist", str(tmp_path / "w.npy"), "--sampler", "fixed", "--schedule", "linear", "-N", "2"],
            needle, tmp_path)


def test_plot_and_output_paths(capsys, tmp_path):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "afile").write_text("x")
    refused(capsys, ["schedule", "linear", "-N", "2", "-L", "4", "--plot", str(tmp_path / "dir.png")], "is a folder", tmp_path)
    refused(capsys, ["schedule", "linear", "-N", "2", "-L", "4", "--plot", str(tmp_path / "afile" / "x.png")],
            "is a file, not a folder", tmp_path)
    refused(capsys, ["demo", "--out", str(tmp_path / "missing" / "demo")], "does not exist", tmp_path)
    refused(capsys, ["train", "--task", "countdown", "--minutes", "1", "--out", str(tmp_path / "missing" / "o")],
            "does not exist", tmp_path)


@pytest.mark.parametrize("storage,needle", [
    ("sqlite://", "keeps the study in memory"), ("sqlite:///:memory:", "keeps the study in memory"),
    ("nosuch://x", "unknown storage 'nosuch://x'"), ("sqlite:///{tmp}", "names a folder"),
    ("sqlite:///{tmp}/afile", "is not a SQLite database"), ("journal:{tmp}/missing/j.log", "does not exist"),
])
def test_storages_that_cannot_hold_a_study(capsys, tmp_path, storage, needle):
    (tmp_path / "afile").write_text("not a database")
    refused(capsys, ["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--storage", storage.format(tmp=tmp_path)],
            needle, tmp_path)


def test_a_refused_task_tune_leaves_no_database(capsys, tmp_path, broken):
    db = tmp_path / "s.db"
    refused(capsys, ["tune", "--objective", "task", "--task", "sudoku", "--checkpoint", str(CHECKPOINT), "-N", "2",
                     "--strategy", "grid", "--storage", f"sqlite:///{db}"], "not trained for the sudoku task")
    assert not db.exists()


def test_a_failed_first_run_removes_its_empty_study_and_database(tmp_path):
    from mdm_energy.tuning import TaskObjective, tune

    def crash(schedule, items):
        raise KeyboardInterrupt  # e.g. Ctrl-C while the baselines are scored

    db = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        tune(TaskObjective(crash, [1, 2, 3]), strategy="grid", storage=f"sqlite:///{db}")
    assert not db.exists()


def test_an_interrupted_report_leaves_no_folder(tmp_path, monkeypatch):
    from mdm_energy import plots
    from mdm_energy.tuning import ExactKLObjective, tune, write_report

    r = tune(ExactKLObjective("toy2", "fixed", 2), strategy="grid", storage=None)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "plot_schedules", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(r, "x", 2, 5, tmp_path / "rep")
    assert list(tmp_path.iterdir()) == []  # neither rep/ nor its temporary folder


def test_two_tune_commands_started_together_on_a_new_sqlite_file(tmp_path):
    """The race that failed with raw SQL: both create the schema of one new file at once (three times)."""
    for k in range(3):
        db = tmp_path / f"race{k}.db"
        cmd = [sys.executable, "-m", "mdm_energy", "tune", "--dist", "toy2", "-N", "2", "--strategy", "grid",
               "--a-values", "0.5,1", "--b-values", "0.5", "--storage", f"sqlite:///{db}", "--json"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
        assert sum(json.loads(r[0])["new_evaluations"] for r in results) == 2  # each point evaluated once


def test_training_minutes_bound_the_data_preparation_too(capsys, tmp_path):
    t0 = time.time()
    assert main(["train", "--task", "sudoku", "--minutes", "0.02", "--out", str(tmp_path / "ck"), "--d-model", "16",
                 "--layers", "1", "--train-examples", "100000", "--json"]) == 0
    assert time.time() - t0 < 15  # 1.2 s of budget; 100,000 sudoku puzzles would take many minutes
    summary = json.loads(capsys.readouterr()[0])
    assert summary["minutes"] < 0.1


def test_resuming_with_another_model_size_or_task_is_refused(capsys, tmp_path):
    ck = tmp_path / "ck"
    base = ["--minutes", "5", "--out", str(ck), "--d-model", "16", "--layers", "1", "--train-examples", "16",
            "--max-steps", "2", "--json"]
    assert main(["train", "--task", "countdown", *base]) == 0
    capsys.readouterr()
    refused(capsys, ["train", "--task", "countdown", *base[:-1], "--d-model", "32"], "d_model=16; resuming it with d_model=32",
            tmp_path)
    refused(capsys, ["train", "--task", "sudoku", *base], "task='countdown'; resuming it with task='sudoku'", tmp_path)
    committed = tmp_path / "committed"
    shutil.copytree(CHECKPOINT, committed)  # weights without the trainer state: cannot resume, must not be overwritten
    refused(capsys, ["train", "--task", "countdown", "--minutes", "1", "--out", str(committed)], "cannot be resumed", tmp_path)


def test_lm_eval_with_a_missing_pretrained_folder(capsys, tmp_path):
    pytest.importorskip("lm_eval")
    code = main(["lm-eval", "run", "--model", "mdm_energy", "--model_args", f"pretrained={tmp_path}/missing", "--tasks", "gsm8k"])
    out, err = capsys.readouterr()
    last = err.strip().splitlines()[-1]  # lm-eval logs its progress to stderr before our line
    assert code == 2 and "Traceback" not in err
    assert last == f"mdm-energy: error: pretrained folder '{tmp_path}/missing' does not exist"


def test_a_model_folder_s_own_code_runs_only_with_consent(capsys, tmp_path, monkeypatch):
    """A folder that ships Python (auto_map, as LLaDA's and Dream's) is refused in one line unless the user passes
    --trust-remote-code (model_args trust_remote_code=True); with it, the same folder generates."""
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny_mdm import save_tiny

    from mdm_energy.integrations.lm_eval import MDMEnergyLM

    save_tiny(tmp_path / "m")
    (tmp_path / "prompts.txt").write_text("ab\n")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    argv = ["generate", "--model", "m", "--prompt", "ab", "--steps", "2", "--gen-length", "4"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "ships its own Python code" in err and "--trust-remote-code" in err
    assert main(["profile", "--model", "m", "--prompts", "prompts.txt", "--length", "4", "--samples", "2"]) == 2
    assert "ships its own Python code" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ships its own Python code"):
        MDMEnergyLM(pretrained=str(tmp_path / "m"))
    assert main([*argv, "--trust-remote-code", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 2
    assert MDMEnergyLM(pretrained=str(tmp_path / "m"), trust_remote_code=True).model is not None


def test_library_warnings_logs_and_bars_stay_off_stderr_so_an_error_is_one_line(capsys, monkeypatch):
    """What transformers, lm-eval and numpy print on the way to a refusal is dropped (kept with --debug). A
    warning of our own as one 'mdm-energy: warning:' line: test_steps_beyond_the_window_are_capped..."""
    import logging
    import warnings

    from mdm_energy.cli import schedule_cmd

    def noisy(args):
        warnings.warn("a library's deprecation notice", FutureWarning)
        np.log(np.zeros(1))  # numpy's RuntimeWarning
        logging.getLogger("lm-eval").warning("a log record")
        logging.getLogger("transformers").error("another")
        from tqdm.auto import tqdm

        for _ in tqdm(range(3)):  # a progress bar that passes no 'disable'
            pass
        raise ValueError("the bad value")

    monkeypatch.setattr(schedule_cmd, "run", noisy)
    assert main(["schedule", "linear", "-N", "2", "-L", "4"]) == 2
    assert capsys.readouterr().err == "mdm-energy: error: the bad value\n"
    with pytest.warns(FutureWarning):  # --debug leaves warnings to Python (here: to pytest's recorder)
        assert main(["--debug", "schedule", "linear", "-N", "2", "-L", "4"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert logging.root.manager.disable == logging.NOTSET  # restored for the rest of the process


def test_exact_integer_size_helpers_print_and_compare_any_size():
    from mdm_energy.limits import check_memory, format_bytes, format_count, format_power, power_exceeds

    assert power_exceeds(2, 24, 2**24) is False and power_exceeds(2, 25, 2**24) is True
    assert power_exceeds(1, 10**400, 1) is False and power_exceeds(10**400, 1, 10**399) is True
    assert power_exceeds(3, 10**400, 10**6)  # returns after ~13 multiplications, never computes 3^(10^400)
    assert format_count(1234567) == "1,234,567" and format_count(10**400) == "1.00e+400"
    assert format_power(3, 4) == "81" and format_power(2, 10**20) == "10^3.010e+19"
    assert format_bytes(10**400).endswith(" PB") and format_bytes(2048) == "2.0 KB"
    with pytest.raises(ValueError, match="of memory"):
        check_memory(10**400, "a huge thing")
    with pytest.raises(ValueError, match="more memory than can be counted"):
        check_memory(float("inf"), "an overflowed estimate")


@pytest.mark.parametrize("path,folder,needle", [
    ("", False, "must name a file, got ''"), (" ", False, "must name a file"), ("", True, "must name a folder"),
    ("d", False, "is a folder, not a file"), ("x.png/", False, "is a folder, not a file"),
    ("afile/x.png", False, "is a file, not a folder"), ("missing/x.png", False, "does not exist"),
    ("afile", True, "exists and is not a folder"), ("x\0y.png", False, "NUL byte"), ("x.jpg", False, "must end in"),
])
def test_one_output_path_check(tmp_path, monkeypatch, path, folder, needle):
    from mdm_energy._io import check_output_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        check_output_path(path, "--plot", folder=folder, suffixes=None if folder else (".png",))
    assert check_output_path("ok.png", "--plot", suffixes=(".png",)).name == "ok.png"


def test_energies_too_extreme_for_double_precision_are_refused_by_name():
    from mdm_energy.energy import brute_force_energies, energy_J, random_distribution

    assert energy_J("beta:1000,1000") == pytest.approx(np.pi**2, rel=1e-12)
    assert energy_J("sin2", "linear") == pytest.approx(12.176, abs=1e-3)  # an ordinary pair is unchanged
    assert energy_J("linear", "sin2") == np.inf  # a divergent pair is still inf
    for spec, gamma in (("beta:0.01,1", None), ("poly:0.001", None), ("sin2", "beta:0.001,0.001")):
        with pytest.raises(ValueError, match="cannot be computed in double precision"):
            energy_J(spec, gamma)
    with pytest.raises(ValueError, match="kinetic energy of alpha=beta:0.02,1"):
        brute_force_energies(random_distribution(2, 2, 0), "beta:0.02,1")


def test_an_output_name_longer_than_the_file_system_allows_is_refused(capsys, tmp_path):
    refused(capsys, ["schedule", "linear", "-N", "4", "-L", "8", "--plot", str(tmp_path / ("a" * 300 + ".png"))],
            "--plot cannot be used: File name too long", tmp_path)


def test_quiet_mode_restores_each_library_to_its_own_level():
    import optuna
    from transformers.utils import logging as tf_logging

    from mdm_energy.cli._quiet import quiet_libraries

    tf_before, op_before = tf_logging.get_verbosity(), optuna.logging.get_verbosity()
    tf_logging.set_verbosity(30)
    optuna.logging.set_verbosity(20)
    try:
        with quiet_libraries(debug=False):
            assert tf_logging.get_verbosity() == 40 and optuna.logging.get_verbosity() == 40
        assert (tf_logging.get_verbosity(), optuna.logging.get_verbosity()) == (30, 20)
    finally:
        tf_logging.set_verbosity(tf_before)
        optuna.logging.set_verbosity(op_before)
