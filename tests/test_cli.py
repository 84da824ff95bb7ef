"""The command-line contract of docs/design.md §8, including every error path."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mdm_energy.cli import main
from mdm_energy.schedules import parse_schedule


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    assert out.count("\n") == 1  # exactly one JSON object on stdout
    return json.loads(out)


# --- schedule ------------------------------------------------------------------------------------


def test_schedule_json_contract(capsys):
    obj = run_json(capsys, "schedule", "beta:0.9,0.3", "--steps", "8", "--length", "256")
    assert set(obj) == {"t", "alpha", "gamma", "counts", "nfe"}
    assert obj["counts"] == [2, 4, 9, 12, 19, 29, 47, 134]
    assert obj["nfe"] == 8
    assert obj["t"] == [k / 8 for k in range(9)]
    s = parse_schedule("beta:0.9,0.3")
    np.testing.assert_allclose(obj["alpha"], s.alpha(np.array(obj["t"])), atol=1e-15)
    np.testing.assert_allclose(obj["gamma"], [float(s.gamma(t)) for t in obj["t"]], atol=1e-15)


def test_schedule_human_table(capsys):
    code, out, _ = run_cli(capsys, "schedule", "linear", "-N", "4", "-L", "16")
    assert code == 0
    assert "schedule linear: L=16, N=4, NFE=4" in out
    lines = out.strip().splitlines()
    assert lines[1].split() == ["k", "t", "alpha", "gamma", "unmask", "cumulative"]
    assert lines[-1].split() == ["4", "1.0000", "1.000000", "1.000000", "4", "16"]


def test_schedule_plot_is_written(capsys, tmp_path):
    target = tmp_path / "sched.png"
    code, _, err = run_cli(capsys, "schedule", "sin2", "-N", "8", "-L", "64", "--plot", str(target), "--json")
    assert code == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["sched.png"]  # no temporary left behind


# --- energy --------------------------------------------------------------------------------------


def test_energy_json_contract(capsys):
    obj = run_json(capsys, "energy", "sin2", "--gamma", "beta:0.5,0.5")
    assert set(obj) == {"J", "optimum", "excess"}
    assert obj["J"] == pytest.approx(math.pi**4 / 8, rel=1e-9)
    assert obj["optimum"] == pytest.approx(math.pi**2)
    assert obj["excess"] == pytest.approx(math.pi**2 / 8 - 1, rel=1e-9)


def test_energy_default_gamma_is_own(capsys):
    obj = run_json(capsys, "energy", "beta:0.9,0.3")
    assert obj["J"] == pytest.approx(math.pi**2, rel=1e-10) and abs(obj["excess"]) < 1e-10


def test_energy_divergent_is_null(capsys):
    obj = run_json(capsys, "energy", "linear", "--gamma", "sin2")
    assert obj["J"] is None and obj["excess"] is None


@pytest.mark.parametrize("n,d", [(2, 2), (3, 2), (2, 3)])
def test_energy_brute_force_json(capsys, n, d):
    obj = run_json(capsys, "energy", "sin2", "--gamma", "linear", "--brute-force", "--tokens", str(n), "--vocab", str(d), "--seed", "3")
    assert set(obj) == {"J", "optimum", "excess", "kinetic", "conditional_kinetic", "geodesic",
                        "ratio_kinetic_conditional", "ratio_conditional_geodesic"}
    assert obj["kinetic"] == pytest.approx(n * (d + 1) ** (n - 1) * obj["J"], rel=1e-7)
    assert obj["conditional_kinetic"] == pytest.approx(n * 2 ** (n - 1) * obj["J"], rel=1e-7)
    assert obj["geodesic"] == pytest.approx(n * obj["J"], rel=1e-7)
    assert obj["ratio_kinetic_conditional"] == pytest.approx(((d + 1) / 2) ** (n - 1), rel=1e-7)
    assert obj["ratio_conditional_geodesic"] == pytest.approx(2 ** (n - 1), rel=1e-7)


def test_energy_brute_force_uniform_path_breaks_the_ratio(capsys):
    a = run_json(capsys, "energy", "sin2", "--brute-force", "-n", "3", "-d", "2", "--path", "uniform", "--seed", "0")
    b = run_json(capsys, "energy", "sin2", "--brute-force", "-n", "3", "-d", "2", "--path", "uniform", "--seed", "1")
    assert abs(a["ratio_kinetic_conditional"] - b["ratio_kinetic_conditional"]) > 1e-3
    assert abs(a["ratio_kinetic_conditional"] - 2.25) > 0.1


def test_energy_human_output(capsys):
    code, out, _ = run_cli(capsys, "energy", "sin2", "--brute-force", "-n", "2", "-d", "2")
    assert code == 0
    assert "J[alpha; gamma] = 9.8696044" in out and "n(d+1)^(n-1) = 6" in out


# --- errors --------------------------------------------------------------------------------------

ERROR_CASES = [
    (["schedule", "beta:0,1", "-N", "8", "-L", "16"], "got 0"),
    (["schedule", "beta:-1,1", "-N", "8", "-L", "16"], "got -1"),
    (["schedule", "cosine", "-N", "8", "-L", "16"], "'cosine'"),
    (["schedule", "beta:0.9", "-N", "8", "-L", "16"], "'beta:0.9'"),
    (["schedule", "beta:a,b", "-N", "8", "-L", "16"], "'a'"),
    (["schedule", "poly:", "-N", "8", "-L", "16"], "poly"),
    (["schedule", "table:0.6,0.2", "-N", "8", "-L", "16"], "0.6 then 0.2"),
    (["schedule", "linear", "-N", "0", "-L", "16"], "steps must be a positive integer, got '0'"),
    (["schedule", "linear", "-N", "-3", "-L", "16"], "got '-3'"),
    (["schedule", "linear", "-N", "2.5", "-L", "16"], "got '2.5'"),
    (["schedule", "linear", "-N", "8", "-L", "0"], "length must be a positive integer, got '0'"),
    (["schedule", "linear", "-N", "8"], "--length"),
    (["schedule", "linear", "-N", "8", "-L", "16", "--plot", "/no/such/dir/x.png"], "'/no/such/dir'"),
    (["schedule", "linear", "-N", "8", "-L", "16", "--plot", "x.gif"], "'x.gif'"),
    (["energy", "beta:0,0.5"], "got 0"),
    (["energy", "linear", "--gamma", "nope"], "'nope'"),
    (["energy", "linear", "--gamma", "beta:1,2,3"], "'beta:1,2,3'"),
    (["energy", "sin2", "--brute-force", "-n", "9", "-d", "4"], "n=9, d=4 is too large"),
    (["energy", "sin2", "--brute-force", "-n", "40", "-d", "2"], "n=40, d=2 is too large"),
    (["energy", "sin2", "--brute-force", "-n", "3"], "--vocab"),
    (["energy", "sin2", "--brute-force", "-n", "3", "-d", "1"], "vocab must be at least 2, got 1"),
    (["energy", "sin2", "--brute-force", "-n", "0", "-d", "2"], "tokens must be a positive integer, got '0'"),
    (["energy", "sin2", "-n", "3", "-d", "2"], "--brute-force"),
    (["energy", "sin2", "--brute-force", "-n", "2", "-d", "2", "--path", "gauss"], "'gauss'"),
    (["frobnicate"], "'frobnicate'"),
    ([], "required"),
]


@pytest.mark.parametrize("argv,needle", ERROR_CASES)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mdm-energy: error: ")
    assert needle in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_demo_rejects_a_file_as_output_folder(capsys, tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    code, _, err = run_cli(capsys, "demo", "--out", str(f))
    assert code == 2 and "not a folder" in err


# --- demo and the console script ------------------------------------------------------------------


def test_demo_writes_figure_and_json(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    obj = run_json(capsys, "demo", "--out", str(out_dir), "--checkpoints", str(tmp_path / "none"))
    assert obj["counts"]["beta:0.9,0.3"] == [2, 4, 9, 12, 19, 29, 47, 134]
    assert obj["energies"]["sin2"]["own_gamma"] == pytest.approx(math.pi**2)
    assert obj["energies"]["linear"]["gamma_t"] is None  # divergent
    assert obj["brute_force"]["mdm/seed0"]["ratio_kinetic_conditional"] == pytest.approx(2.25)
    assert json.loads((out_dir / "demo.json").read_text())["counts"] == obj["counts"]
    assert (out_dir / "schedules.png").stat().st_size > 10_000
    assert obj["toy"]["toy1"]["kl"]["beta:0.9,0.3"] == pytest.approx(0.0, abs=1e-12)
    assert obj["exact"]["optimum"]["kl"] <= obj["exact"]["best"]["kl"] + 1e-12
    for key in ("toy", "exact_grid"):
        assert os.path.getsize(obj["files"][key]) > 10_000
    assert obj["real_tasks"] == {} and "report.md" in obj["files"]["report"]
    assert "![the paper's toy](toy.png)" in (out_dir / "report.md").read_text()


def test_console_script_runs_without_importing_torch(tmp_path):
    code = (
        "import sys, json, io, contextlib\n"
        "from mdm_energy.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = main(['schedule', 'beta:0.9,0.3', '--steps', '256', '--length', '4096', '--json'])\n"
        "assert rc == 0 and sum(json.loads(buf.getvalue())['counts']) == 4096\n"
        "assert 'torch' not in sys.modules, 'schedule must not import torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_installed_entry_point(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "mdm-energy")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "mdm_energy"]
    ok = subprocess.run(cmd + ["schedule", "sin2", "-N", "8", "-L", "256", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and json.loads(ok.stdout)["counts"] == [10, 27, 42, 49, 49, 42, 27, 10]
    bad = subprocess.run(cmd + ["schedule", "beta:0,1", "-N", "8", "-L", "256"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1


def test_ci_runs_the_readme_test_command():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".ci", "run")) as fh:
        ci_cmd = [line for line in fh.read().splitlines() if line.startswith("python3 -m pip")][0]
    with open(os.path.join(root, "README.md")) as fh:
        readme = fh.read()
    assert ci_cmd in readme and "pytest" in ci_cmd
    assert "mdm-energy demo" in readme


def test_flags_are_taken_only_by_their_full_names(capsys):
    """A prefix of a flag is not that flag (argparse's abbreviations are off): `tune --dilation` was once read as
    `--dilation-skip`, so a prefix is refused by name instead of being guessed."""
    code, out, err = run_cli(capsys, "schedule", "linear", "-N", "4", "-L", "8", "--js")
    assert code == 2 and out == "" and "unrecognized arguments: --js" in err and err.count("\n") == 1
    code, out, err = run_cli(capsys, "schedule", "linear", "-N", "4", "-L", "8", "--json")
    assert code == 0 and out.startswith("{")
