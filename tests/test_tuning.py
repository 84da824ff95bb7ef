"""The tuner: correctness on exact objectives, resume after SIGKILL, workers, failures, reports, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

pytest.importorskip("optuna")

import optuna  # noqa: E402

from mdm_energy.cli import main  # noqa: E402
from mdm_energy.exact import exact_sampler  # noqa: E402
from mdm_energy.tuning import ExactKLObjective, SearchSpace, TaskObjective, beta_grid, tune, write_report  # noqa: E402


def completed(storage: str, name: str) -> list:
    study = optuna.load_study(study_name=name, storage=storage)
    return [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("dist,sampler,steps", [("markov:5,3,0", "fixed", 3), ("templates:5,3,1", "ancestral", 3)])
def test_grid_finds_the_true_grid_minimum(tmp_path, dist, sampler, steps):
    storage = f"sqlite:///{tmp_path}/s.db"
    r = tune(ExactKLObjective(dist, sampler, steps), strategy="grid", storage=storage)
    grid = [(a, b, exact_sampler(dist, sampler, f"beta:{a},{b}", steps).kl) for a, b in SearchSpace().grid()]
    best = min(grid, key=lambda g: (g[2], g[0], g[1]))  # an independent loop over the grid
    assert (r.best.a, r.best.b) == best[:2]
    assert r.best.value == pytest.approx(best[2], abs=1e-12)
    assert r.evaluations == r.new_evaluations == 100
    assert set(r.baselines) == {"linear", "sin2", "sine", "maskgit"}


@pytest.mark.parametrize("dist,sampler,steps", [("markov:6,3,0", "ancestral", 3), ("potts:6,2,1", "ancestral", 4)])
def test_tpe_with_25_evaluations_comes_within_2_percent_of_the_grid_minimum(tmp_path, dist, sampler, steps):
    grid_min = min(g.kl for g in beta_grid(ExactKLObjective(dist, sampler, steps)))
    r = tune(ExactKLObjective(dist, sampler, steps), strategy="tpe", budget=25, storage=f"sqlite:///{tmp_path}/s.db", seed=0)
    assert r.evaluations == 25
    assert r.best.value <= 1.02 * grid_min


def test_rerunning_a_finished_grid_study_evaluates_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    obj = ExactKLObjective("toy2", "fixed", 3)
    first = tune(obj, strategy="grid", storage=storage)
    again = tune(obj, strategy="grid", storage=storage)
    assert first.new_evaluations == 100 and again.new_evaluations == 0 and again.evaluations == 100
    assert again.best == first.best


def test_two_workers_share_a_study_without_duplicates(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    r = tune(ExactKLObjective("markov:5,3,2", "ancestral", 3), strategy="grid", storage=storage, workers=2, study_name="w")
    done = completed(storage, "w")
    keys = Counter((t.params["a"], t.params["b"]) for t in done)
    assert len(keys) == 100 and max(keys.values()) == 1 and r.evaluations == 100


def test_concurrent_commands_on_one_study_never_evaluate_a_point_twice(tmp_path):
    # two independent processes, started together, both trying every grid point
    db = tmp_path / "s.db"
    cmd = [sys.executable, "-m", "mdm_energy", "tune", "--dist", "markov:6,3,1", "--sampler", "ancestral", "-N", "3",
           "--strategy", "grid", "--storage", f"sqlite:///{db}", "--study", "race", "--json"]
    tune(ExactKLObjective("markov:6,3,1", "ancestral", 3), strategy="grid", storage=f"sqlite:///{db}", study_name="race",
         space=SearchSpace(values={"a": (0.5,), "b": (0.5,)}))  # create the study (and its baselines) first
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    done = completed(f"sqlite:///{db}", "race")
    keys = Counter((t.params["a"], t.params["b"]) for t in done)
    assert len(keys) == 100 and max(keys.values()) == 1
    assert sum(o["new_evaluations"] for o in outs) == 99  # (0.5, 0.5) was done before


def test_sigkill_then_resume_loses_no_finished_trial(tmp_path):
    db = tmp_path / "s.db"
    storage = f"sqlite:///{db}"
    cmd = [sys.executable, "-m", "mdm_energy", "tune", "--dist", "markov:8,3,0", "--sampler", "ancestral", "-N", "3",
           "--strategy", "grid", "--storage", storage, "--study", "kill", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    before = []
    while time.time() < deadline:
        time.sleep(0.3)
        try:
            before = completed(storage, "kill")
        except Exception:  # the study may not exist yet
            continue
        if len(before) >= 5:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.params["a"], t.params["b"], t.value) for t in completed(storage, "kill")}
    assert 5 <= len(before) < 100, "the run should have been killed mid-way"
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    after = completed(storage, "kill")
    keys = Counter((t.params["a"], t.params["b"]) for t in after)
    assert len(keys) == 100 and max(keys.values()) == 1
    assert {t.number: (t.params["a"], t.params["b"], t.value) for t in after if t.number in before} == before
    assert result["new_evaluations"] == 100 - len(before) and result["evaluations"] == 100


def synthetic_task(fail_above: float | None = None) -> TaskObjective:
    """Per-item scores whose mean peaks at (a, b) = (0.3, 0.7); deterministic per item."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, size=400)

    def score_fn(schedule, items):
        if not hasattr(schedule, "a"):  # a hand-crafted baseline
            return [0.5 + noise[i] for i in items]
        a, b = schedule.a, schedule.b
        if fail_above is not None and a > fail_above:
            raise RuntimeError(f"model crashed at a={a}")
        return [1.0 - (a - 0.3) ** 2 - (b - 0.7) ** 2 + noise[i] for i in items]

    return TaskObjective(score_fn, list(range(400)), direction="maximize", name="synthetic")


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    r = tune(synthetic_task(fail_above=0.75), strategy="grid", storage=storage, study_name="f")
    failed = [t for t in r.trials if t.state == "FAIL"]
    assert len(failed) == 30 and all("model crashed" in t.error for t in failed)
    assert r.evaluations == 70 and r.best.a == pytest.approx(0.3) and r.best.b == pytest.approx(0.7)
    assert r.best.n == 400 and r.best.stderr > 0
    again = tune(synthetic_task(fail_above=0.75), strategy="grid", storage=storage, study_name="f")
    assert again.new_evaluations == 0  # failed points are not retried


def test_successive_halving_rescores_the_best_on_larger_subsets(tmp_path):
    r = tune(synthetic_task(), strategy="halving", storage=f"sqlite:///{tmp_path}/s.db", halving_min_size=25, halving_eta=3)
    by_rung = Counter(t.rung for t in r.trials if t.state == "COMPLETE")
    sizes = {t.rung: t.size for t in r.trials if t.state == "COMPLETE"}
    assert by_rung == {0: 100, 1: 34, 2: 12, 3: 4}  # keep ceil(1/3) of each rung
    assert [sizes[k] for k in range(4)] == [25, 75, 225, 400]  # subsets grow 3x up to all 400 items
    assert (r.best.a, r.best.b) == (pytest.approx(0.3), pytest.approx(0.7))
    assert r.evaluations == sum(by_rung.values()) < 2 * 100


def test_report_files(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    obj = ExactKLObjective("toy2", "fixed", 3)
    for strategy in ("grid", "tpe"):
        r = tune(obj, strategy=strategy, budget=10 if strategy == "tpe" else None, storage=storage)
        files = write_report(r, obj.name, 3, 5, tmp_path / strategy)
        for key in ("heatmap", "schedules"):
            assert open(files[key], "rb").read(4) == b"\x89PNG"
        report = open(files["report"]).read()
        assert "| `linear` (baseline) |" in report and "beta:" in report
        rows = open(files["trials_csv"]).read().splitlines()
        assert rows[0].startswith("number,state,strategy") and len(rows) == 1 + len(r.trials)
        assert json.load(open(files["trials_json"]))["strategy"] == strategy


def test_tune_cli_contract(capsys, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    argv = ["tune", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--strategy", "grid", "--storage", storage,
            "--a-values", "0.2,0.5", "--b-values", "0.3,0.9", "--report", str(tmp_path / "rep"), "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert set(obj) == {"best", "baselines", "evaluations", "new_evaluations", "strategy"}
    assert {"a", "b", "score"} <= set(obj["best"]) and obj["evaluations"] == obj["new_evaluations"] == 4
    assert set(obj["baselines"]) == {"linear", "sin2", "sine", "maskgit"} and obj["strategy"] == "grid"
    assert (tmp_path / "rep" / "report.md").exists()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr()[0])["new_evaluations"] == 0


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--strategy", "tpe", "--budget", "0"], "budget must be a positive integer, got '0'"),
        (["--strategy", "tpe", "--a-bounds", "0,1"], "a-bounds must be LOW,HIGH with 0 < LOW < HIGH, got '0,1'"),
        (["--strategy", "tpe", "--b-bounds=-1,2"], "got '-1,2'"),
        (["--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["--strategy", "grid", "--storage", "sqlite:////no/such/dir/s.db"], "'/no/such/dir'"),
        (["--strategy", "grid", "--a-values", "0.5,-1"], "got '0.5,-1'"),
        (["--strategy", "grid", "--workers", "0"], "workers must be a positive integer"),
        (["--strategy", "grid", "--report", "/no/such/dir/rep"], "does not exist"),
    ],
)
def test_tune_bad_input_exits_2(capsys, tmp_path, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    code = main(["tune", "--dist", "toy2", "--sampler", "fixed", "-N", "3", *extra])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and needle in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written, no database created


def test_unwritable_storage_folder(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
        code = main(["tune", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--strategy", "grid",
                     "--storage", f"sqlite:///{ro}/s.db"])
        assert code == 2 and "not writable" in capsys.readouterr()[1]
    finally:
        ro.chmod(0o700)


# --- the options every user can reach --------------------------------------------------------------------


def test_random_strategy_is_seeded_within_bounds_and_keeps_its_best(tmp_path):
    obj = ExactKLObjective("markov:5,3,0", "ancestral", 3)
    space = SearchSpace(bounds={"a": (0.2, 0.9), "b": (0.3, 1.2)})
    r = tune(obj, strategy="random", budget=15, storage=f"sqlite:///{tmp_path}/a.db", seed=4, space=space)
    again = tune(obj, strategy="random", budget=15, storage=f"sqlite:///{tmp_path}/b.db", seed=4, space=space)
    done = [t for t in r.trials if t.state == "COMPLETE"]
    assert r.evaluations == len(done) == 15
    assert all(0.2 <= t.a <= 0.9 and 0.3 <= t.b <= 1.2 for t in done)
    assert [(t.a, t.b) for t in done] == [(t.a, t.b) for t in again.trials if t.state == "COMPLETE"]  # seeded
    assert r.best.value == min(t.value for t in done)
    assert r.best.value == pytest.approx(exact_sampler("markov:5,3,0", "ancestral", f"beta:{r.best.a},{r.best.b}", 3).kl)


@pytest.mark.parametrize("strategy", ["tpe", "random"])
def test_the_workers_propose_what_optunas_own_ask_and_tell_loop_proposes(tmp_path, strategy):
    """The workers create each trial themselves (already naming their owner) and wrap it as ``study.ask`` does; the
    reference is Optuna's own loop — ``ask``, the search space's suggestion, ``tell`` — with the same seeded sampler
    and objective values. Twelve trials: past TPE's 8 start-up trials, so its model-based proposals are compared too."""
    from mdm_energy.tuning import CallableObjective
    from mdm_energy.tuning.claims import optuna_sampler

    def value(spec: str) -> float:  # the tuner also scores its baselines (linear, ...) once: 0 for them
        if not spec.startswith("beta:"):
            return 0.0
        a, b = (float(x) for x in spec.split(":")[1].split(","))
        return -((a - 0.6) ** 2) - 0.5 * (b - 1.1) ** 2

    space = SearchSpace(bounds={"a": (0.1, 1.5), "b": (0.1, 1.5)})
    r = tune(CallableObjective(lambda s: value(s.spec)), strategy=strategy, budget=12, seed=5, space=space,
             storage=f"sqlite:///{tmp_path}/s.db")
    ref = optuna.create_study(direction="maximize", sampler=optuna_sampler(strategy, 5, 0))
    for _ in range(12):
        trial = ref.ask()
        ref.tell(trial, value(space.build(space.suggest(trial)).spec))
    assert [(t.a, t.b, t.value) for t in r.trials] == [(t.params["a"], t.params["b"], t.value) for t in ref.trials]


def test_tpe_with_two_workers_spends_exactly_its_budget(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    r = tune(ExactKLObjective("potts:5,2,1", "ancestral", 3), strategy="tpe", budget=12, storage=storage, workers=2, seed=1)
    done = [t for t in r.trials if t.state == "COMPLETE"]
    assert len(done) == r.evaluations == r.new_evaluations == 12
    assert len({(t.a, t.b) for t in done}) == 12


def test_grid_budget_evaluates_a_seeded_subset_once(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    obj = ExactKLObjective("toy2", "fixed", 3, "random")
    r = tune(obj, strategy="grid", budget=7, storage=storage, seed=3)
    points = {(t.a, t.b) for t in r.trials if t.state == "COMPLETE"}
    assert len(points) == 7 and points <= set(SearchSpace().grid())
    keep = np.random.default_rng(3).permutation(100)[:7]  # the documented rule: a seeded subset of the grid
    assert points == {SearchSpace().grid()[i] for i in keep}
    assert tune(obj, strategy="grid", budget=7, storage=storage, seed=3).new_evaluations == 0


def test_journal_storage_resumes(tmp_path):
    storage = f"journal:{tmp_path}/study.log"
    obj = ExactKLObjective("toy2", "ancestral", 2)
    space = SearchSpace(values={"a": (0.3, 0.7), "b": (0.5, 1.0)})
    first = tune(obj, strategy="grid", storage=storage, space=space)
    again = tune(obj, strategy="grid", storage=storage, space=space)
    assert first.new_evaluations == 4 and again.new_evaluations == 0 and again.best == first.best
    assert (tmp_path / "study.log").stat().st_size > 0


def test_a_non_finite_score_is_recorded_as_a_failure(tmp_path):
    def score_fn(schedule, items):
        bad = hasattr(schedule, "a") and schedule.a > 0.5
        return [float("nan") if bad else 0.5 + 0.1 * i for i in items]

    r = tune(TaskObjective(score_fn, [0, 1, 2]), strategy="grid", storage=f"sqlite:///{tmp_path}/s.db",
             space=SearchSpace(values={"a": (0.3, 0.8), "b": (0.5,)}))
    failed = [t for t in r.trials if t.state == "FAIL"]
    assert len(failed) == 1 and failed[0].a == 0.8 and "non-finite score" in failed[0].error
    assert r.evaluations == 1 and r.best.a == 0.3


@pytest.mark.parametrize("rule", ["margin", "entropy"])
def test_margin_and_entropy_exact_objectives(tmp_path, rule):
    obj = ExactKLObjective("markov:4,3,2", "fixed", 2, rule)
    assert obj.name.endswith(f"fixed/{rule}:N2")
    space = SearchSpace(values={"a": (0.2, 0.6, 1.0), "b": (0.3, 0.9)})
    r = tune(obj, strategy="grid", storage=f"sqlite:///{tmp_path}/s.db", space=space)
    loop = {(a, b): exact_sampler("markov:4,3,2", "fixed", f"beta:{a},{b}", 2, rule).kl for a, b in space.grid()}
    assert {(t.a, t.b): t.value for t in r.trials if t.state == "COMPLETE"} == pytest.approx(loop, abs=1e-12)
    assert r.best.value == pytest.approx(min(loop.values()), abs=1e-12)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "journal", "postgresql"])
def test_one_study_attribute_reads_as_the_public_call_does(kind, tmp_path, request):
    """``study_user_attr`` (one row of an RDB storage, the public ``study.user_attrs`` elsewhere) gives what the
    public call gives, for present keys of every JSON type and for a missing key (the default)."""
    from mdm_energy.tuning._optuna import study_user_attr
    from mdm_energy.tuning.storage import optuna_storage

    url = {"memory": None, "sqlite": f"sqlite:///{tmp_path}/a.db", "journal": f"journal:{tmp_path}/a.log",
           "postgresql": request.getfixturevalue("postgres_url") if kind == "postgresql" else None}[kind]
    name = f"attrs-{kind}-{os.getpid()}-{time.time_ns()}"
    study = optuna.create_study(storage=optuna_storage(url), study_name=name)
    values = {"items:beta:0.3,0.7": {"0": 0.5, "17": 1.0}, "family": "beta", "n": 3, "x": [1.5, None], "flag": True}
    for k, v in values.items():
        study.set_user_attr(k, v)
    public = study.user_attrs
    for k in values:
        assert study_user_attr(study, k) == public[k] == values[k]
    assert study_user_attr(study, "items:linear", {}) == {} and study_user_attr(study, "nothing") is None
