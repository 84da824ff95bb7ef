"""The benchmarks' records tied to the weights they were measured on: a tuned schedule or a profile from other
weights (after retraining) is refused or retuned, never silently reused (benchmarks/real_tasks.py's loader,
shared by pareto.py and schedule_baselines.py)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    """A benchmark script as a module (registered under its name, as the scripts import each other)."""
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture()
def items(tmp_path):
    from mdm_energy.tasks import CountdownTask
    from mdm_energy.tasks.tuned import weights_digest

    real_tasks = _module("real_tasks")
    ck = tmp_path / "countdown"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"weights of the new model")
    digest = weights_digest(ck)
    assert digest == hashlib.sha256(b"weights of the new model").hexdigest()[:12]  # the definition, written out
    return real_tasks.TestItems("countdown", ck, digest, CountdownTask(), None, [], [])


def test_a_tuned_schedule_is_read_only_when_tuned_on_these_weights_and_metric(items, monkeypatch):
    from mdm_energy.tasks import CountdownTask

    path = items.checkpoint / "tuned_schedule.json"
    with pytest.raises(SystemExit, match="does not exist.*real_tasks.py --tasks countdown"):
        items.tuned_schedule()
    assert items.tuned_schedule(required=False) is None
    path.write_text(json.dumps({"schedule": "beta:0.3,0.9", "checkpoint": "0123456789ab"}))  # the old weights
    with pytest.raises(SystemExit, match=f"tuned on other weights \\('0123456789ab'; these are '{items.digest}'\\)"):
        items.tuned_schedule()
    assert items.tuned_schedule(required=False) is None  # real_tasks.py tunes again
    path.write_text(json.dumps({"schedule": "beta:0.3,0.9", "checkpoint": items.digest}))  # no version: 1
    assert items.tuned_schedule()["schedule"] == "beta:0.3,0.9"
    monkeypatch.setattr(CountdownTask, "score_version", 2)  # the metric changed since it was tuned
    with pytest.raises(SystemExit, match="tuned under countdown's score version 1 \\(now 2\\)"):
        items.tuned_schedule()
    path.write_text(json.dumps({"schedule": "beta:0.3,0.9", "checkpoint": items.digest, "score_version": 2}))
    assert items.tuned_schedule()["schedule"] == "beta:0.3,0.9"
    path.write_text("{}")
    with pytest.raises(SystemExit, match="is not a tuned-schedule record"):
        items.tuned_schedule()


def test_the_tuned_schedule_file_is_opened_in_one_place():
    """Every reader goes through mdm_energy.tasks.tuned (which checks weights and metric): no other module spells
    the file's name as a literal — a new unchecked reader like the demo's old one fails here."""
    root = BENCH.parent
    files = [*(root / "src").rglob("*.py"), *BENCH.glob("*.py"), *(root / "scripts").glob("*.py")]
    joins = [str(f.relative_to(root)) for f in files if '"tuned_schedule.json"' in f.read_text()]
    assert joins == ["src/mdm_energy/tasks/tuned.py"]


def test_pareto_refuses_a_profile_measured_on_other_weights(items, tmp_path, monkeypatch):
    pareto = _module("pareto")
    monkeypatch.setattr(pareto, "RESULTS", tmp_path)
    assert pareto._profile_specs(items, [2, 3]) == {}  # real_tasks.py has not run
    table = {"profile": {"confidence": {"specs": {"2": "table:0.5", "3": "table:0.3,0.6"}}}}
    (tmp_path / "real_tasks.json").write_text(json.dumps({"tasks": {"countdown": {**table, "checkpoint": "old"}}}))
    with pytest.raises(SystemExit, match="measured on other weights \\('old'"):
        pareto._profile_specs(items, [2, 3])
    # a record from before the checkpoint key: the tuned schedule's digest stands for the table's
    (tmp_path / "real_tasks.json").write_text(json.dumps({"tasks": {"countdown": {
        **table, "tuned": {"checkpoint": items.digest}}}}))
    assert pareto._profile_specs(items, [2, 3, 4]) == {2: "table:0.5", 3: "table:0.3,0.6"}


def test_rerunning_one_task_keeps_the_other_tasks_tables(tmp_path, capsys):
    from mdm_energy.tasks.tuned import weights_digest

    real_tasks = _module("real_tasks")
    sudoku = {"n": 500, "checkpoint": weights_digest(BENCH.parent / "checkpoints" / "sudoku")}
    path = tmp_path / "real_tasks.json"
    path.write_text(json.dumps({"meta": {}, "tasks": {"sudoku": sudoku, "countdown": {"n": 1000, "old": True}}}))
    meta: dict = {}
    merged = real_tasks.merged_tables({"countdown": {"n": 1000, "steps": (2, 3)}}, path, meta, quick=False)
    assert merged == {"countdown": {"n": 1000, "steps": [2, 3]}, "sudoku": sudoku}  # JSON form, CONFIG order
    assert list(merged) == ["countdown", "sudoku"] and meta["kept_from_earlier_runs"] == ["sudoku"]
    quick_meta: dict = {}
    assert real_tasks.merged_tables({"countdown": {}}, path, quick_meta, quick=True) == {"countdown": {}}
    assert "kept_from_earlier_runs" not in quick_meta  # a smoke run keeps nothing
    # a table of weights since retrained away, or naming none, is dropped and said; task_targets names them "weights"
    for stale in ({"n": 500, "checkpoint": "0123456789ab"}, {"n": 500}, {"n": 500, "weights": sudoku["checkpoint"]}):
        path.write_text(json.dumps({"meta": {}, "tasks": {"sudoku": stale}}))
        meta = {}
        assert real_tasks.merged_tables({"countdown": {}}, path, meta, quick=False) == {"countdown": {}} and not meta
        assert "sudoku: the last run's table is dropped" in capsys.readouterr().err
    meta = {}
    merged = real_tasks.merged_tables({"countdown": {}}, path, meta, quick=False, digest_key="weights")
    assert list(merged) == ["countdown", "sudoku"] and meta["kept_from_earlier_runs"] == ["sudoku"]
    # a table from before the key: its tuned schedule's digest stands for it
    path.write_text(json.dumps({"meta": {}, "tasks": {"sudoku": {"n": 500, "tuned": {"checkpoint": sudoku["checkpoint"]}}}}))
    assert list(real_tasks.merged_tables({"countdown": {}}, path, {}, quick=False)) == ["countdown", "sudoku"]


def test_schedule_baselines_reads_real_tasks_cells_without_writing_them(tmp_path):
    import numpy as np

    sb = _module("schedule_baselines")
    shared = {"t|fixed|linear|2|s": np.array([1.0, 0.0, 1.0], dtype=np.float32)}
    cells = sb.Cells(tmp_path / "own.npz", shared=shared)

    def never():
        raise AssertionError("a cell real_tasks.py has already computed was computed again")

    assert cells.get("t|linear|2", never, "t|fixed|linear|2").tolist() == [1.0, 0.0, 1.0]
    assert not (tmp_path / "own.npz").exists()  # read, not copied
    computed = cells.get("t|linear|3", lambda: ([0.0, 1.0], [3, 3], None), "t|fixed|linear|3")  # not in real_tasks'
    assert computed.tolist() == [0.0, 1.0]
    with np.load(tmp_path / "own.npz") as z:
        assert sorted(z.files) == ["t|linear|3"]
    assert list(shared) == ["t|fixed|linear|2|s"]  # real_tasks' cells are never written
    # this script's own cell wins over real_tasks' (it is what its earlier runs reported)
    cells.data["t|linear|2"] = np.array([0.0, 0.0, 0.0], dtype=np.float32)
    assert cells.get("t|linear|2", never, "t|fixed|linear|2").tolist() == [0.0, 0.0, 0.0]


def test_schedule_baselines_keeps_other_tasks_tables_only_between_full_runs(tmp_path, monkeypatch):
    from types import SimpleNamespace

    sb = _module("schedule_baselines")
    monkeypatch.setattr(sb, "RESULTS", tmp_path)
    full, quick = SimpleNamespace(quick=False), SimpleNamespace(quick=True)
    new = {"pycode": {"steps": [8], "cost": {"JYS": {"per_N": {8: {"row_calls": 5}}}}}}
    assert sb._kept_tables(new, full, {}) == {"pycode": {"steps": [8], "cost": {"JYS": {"per_N": {"8": {"row_calls": 5}}}}}}
    path = tmp_path / "schedule_baselines.json"
    path.write_text(json.dumps({"meta": {"quick": True}, "tasks": {"countdown": {"n": 40}}}))
    meta: dict = {}
    assert list(sb._kept_tables(new, full, meta)) == ["pycode"] and not meta  # the last run was a quick one
    from mdm_energy.tasks.tuned import weights_digest

    today = weights_digest(BENCH.parent / "checkpoints" / "countdown")
    kept = {"n": 1000, "checkpoint": today}
    path.write_text(json.dumps({"meta": {"quick": False}, "tasks": {"countdown": kept, "pycode": {"old": 1}}}))
    merged = sb._kept_tables(new, full, meta)
    assert list(merged) == ["countdown", "pycode"] and merged["countdown"] == kept and "old" not in merged["pycode"]
    assert meta["kept_from_earlier_runs"] == ["countdown"]
    assert list(sb._kept_tables(new, quick, {})) == ["pycode"]  # a quick run keeps nothing
    for stale in ({"n": 1000, "checkpoint": "0123456789ab"}, {"n": 1000}):  # retrained away; no digest recorded
        path.write_text(json.dumps({"meta": {"quick": False}, "tasks": {"countdown": stale}}))
        meta = {}
        assert list(sb._kept_tables(new, full, meta)) == ["pycode"] and not meta


def _targets_cache(items, L):
    import numpy as np

    tt = _module("task_targets")
    cache = {f"{tt._key(items.tag, L, 0.0)}|s": np.array([1, 0, 1, 1], dtype=np.float32),
             f"{tt._key(items.tag, L, 1.0)}|s": np.array([0, 0, 1, 0], dtype=np.float32),
             f"{tt._key(items.tag, L, 1.0, 'random')}|s": np.array([0, 1, 1, 1], dtype=np.float32)}
    cache.update({k[:-2] + "|n": np.full(4, L, dtype=np.float32) for k in list(cache)})  # the calls, as _cell stores
    return tt, cache


def test_task_targets_reads_the_cells_real_tasks_and_pareto_store(monkeypatch):
    """N = L at temperature 0 is real_tasks.py's fixed cell, at temperature 1 pareto.py's label: read from the
    shared cache, not recomputed; the target is met at >= 0.50 valid."""
    real_tasks = _module("real_tasks")
    items = real_tasks.TestItems.load("countdown", quick=True)
    L = items.task.gen_len
    tt, cache = _targets_cache(items, L)
    assert tt._key(items.tag, L, 0.0) == f"{items.tag}|fixed|linear|{L}"  # real_tasks.py's key of fixed linear
    assert tt._key(items.tag, L, 1.0) == f"{items.tag}|fixed linear N={L} T=1"  # pareto.py's label
    assert tt._key(items.tag, L, 1.0, "random") == f"{items.tag}|fixed linear N={L} T=1 random"
    monkeypatch.setattr(real_tasks.TestItems, "load", classmethod(lambda cls, name, quick=False: items))
    def never():
        raise AssertionError("recomputed a cached cell")

    monkeypatch.setattr(tt, "_runner", lambda *a: never)
    monkeypatch.setattr(real_tasks, "_save", lambda cache: None)  # never the repository's cache, whatever happens
    res = tt.measure("countdown", cache)
    assert [(r["decoder"], r["value"], r["met"]) for r in res["rows"]] == [
        ("greedy", 0.75, True), ("low_confidence T=1", 0.25, False), ("random T=1", 0.75, True)]
    assert res["rows"][0]["stderr"] == pytest.approx(0.5 / 2)  # sd of (1, 0, 1, 1) = 0.5, over sqrt(4)
    assert res["weights"] == items.digest


def test_task_targets_measures_pycode_text_against_the_data(monkeypatch):
    """A pycode cell stored without its snippets is run again; its unigram entropy is the entropy of the pooled
    characters, written out here, and the target needs both the entropy gap and the perplexity ratio."""
    import math
    from collections import Counter

    real_tasks = _module("real_tasks")
    items = real_tasks.TestItems.load("pycode", quick=True)
    items.test = items.test[:4]
    L = items.task.gen_len
    tt, cache = _targets_cache(items, L)
    texts = {"low_confidence": ["x = 1\n", "x = 1\n", "x = 1\n", "x = 1\n"],
             "random": ["for i in y:\n", "a = b", "print(c)", "z"]}
    ran = []

    def runner(_items, _L, temperature, remasking):
        ran.append((temperature, remasking))
        return lambda: ([0, 0, 1, 0], [L] * 4, texts[remasking])

    monkeypatch.setattr(real_tasks.TestItems, "load", classmethod(lambda cls, name, quick=False: items))
    monkeypatch.setattr(tt, "_runner", runner)
    monkeypatch.setattr(real_tasks, "_save", lambda cache: None)
    res = tt.measure("pycode", cache)
    assert ran == [(0.0, "low_confidence"), (1.0, "low_confidence"), (1.0, "random")]  # scores but no snippets
    for row in res["rows"]:
        chars = Counter("".join(texts[row["remasking"]]))
        n = sum(chars.values())
        assert row["unigram_entropy"] == pytest.approx(-sum(c / n * math.log2(c / n) for c in chars.values()))
        assert row["entropy_gap"] == pytest.approx(res["data"]["unigram_entropy"] - row["unigram_entropy"])
        assert row["ppl_ratio"] == pytest.approx(row["gen_ppl"] / res["data"]["gen_ppl"])
        assert row["met"] == (abs(row["entropy_gap"]) <= 0.5 and 0.5 <= row["ppl_ratio"] <= 2)
    assert not res["rows"][0]["met"]  # "x = 1" four times: far less varied than code


def test_task_targets_refuses_a_task_without_a_target(tmp_path):
    import subprocess

    outputs = [BENCH / "results" / f"task_targets.{ext}" for ext in ("md", "json")]
    before = [f.stat().st_mtime_ns if f.exists() else None for f in outputs]
    r = subprocess.run([sys.executable, str(BENCH / "task_targets.py"), "--tasks", "countdown,sudoku"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "no target is set for 'sudoku'" in r.stderr and "Traceback" not in r.stderr
    assert [f.stat().st_mtime_ns if f.exists() else None for f in outputs] == before  # nothing written


def test_pareto_runs_remdm_loop_only_where_it_has_a_loop_phase():
    """The loop rule's three phases at the authors' 0.45 / 0.95, counted by hand: ceil(0.45 n) steps before, at
    least one after, and the loop needs one in between — none in 2 or 3 steps (remdm refuses those)."""
    import math

    pareto = _module("pareto")
    for n in range(2, 50):
        before, after = max(1, math.ceil(0.45 * n)), max(1, n - math.ceil(0.95 * n))
        assert pareto._plannable("loop", n) == (n - before - after >= 1), n
        assert all(pareto._plannable(rule, n) for rule in ("cap", "rescale", "conf"))
    assert not pareto._plannable("loop", 3) and pareto._plannable("loop", 4)


def test_profile_spread_refuses_real_tasks_records_of_other_weights(items, tmp_path, monkeypatch):
    spread = _module("profile_spread")
    (tmp_path / "real_tasks.json").write_text(json.dumps({"tasks": {"countdown": {"checkpoint": "0123456789ab"}}}))
    monkeypatch.setattr(spread, "RESULTS", tmp_path)
    monkeypatch.setattr(spread.real_tasks.TestItems, "load", classmethod(lambda cls, name, quick=False: items))
    with pytest.raises(SystemExit, match="countdown: real_tasks.json was measured on other weights"):
        spread.run_task("countdown", argparse.Namespace(draws=2), spread.Cells(tmp_path / "own.npz"))
    assert not (tmp_path / "own.npz").exists()


def test_profile_spread_draw_zero_is_real_tasks_profile_and_counts_add_up():
    spread, real_tasks = _module("profile_spread"), _module("real_tasks")
    assert spread.draw_seed(0) == real_tasks.PROFILE_SEED and len({spread.draw_seed(k) for k in range(5)}) == 5
    # tokens per step of a table: the window's positions reached by each cumulative fraction, step by step
    assert spread._counts("table:0.25,0.5,0.875", 8, 4) == [2, 2, 3, 1]
    assert spread._counts("table:0.20987654320987653,0.30864197530864196", 81, 3) == [17, 8, 56]
    assert spread._counts("table:0.5", 81, 2) == [41, 40]  # half-way rounds up, as the samplers round (not to even)


def test_training_fit_recovers_a_power_law_through_the_stage_ends():
    """Stage ends read where the next stage scored them, then the law a + b*s^-c through them, against the
    closed form: three ends on a known law give it back, and its inverse gives the steps to a target loss."""
    tf = _module("training_fit")
    a, b, c = 0.2, 40.0, 0.6

    def law(s):
        return a + b * s ** -c

    def stage(steps, minutes, best, compared=None, earlier=None):
        out = {"final": {"steps": steps, "minutes": minutes, "best_valid": best}}
        if compared:
            out["compared"] = {"first stage": compared[0], "second stage": compared[1]}
        if earlier:
            out["earlier"] = earlier
        return out

    # each stage's own best_valid is on another set (off the law); the next stage's comparison is on the law
    first = stage(1000, 10.0, 9.0)
    second = stage(3000, 30.0, 9.0, compared=(law(1000), 8.0), earlier=first)
    third = stage(6000, 60.0, 9.0, compared=(law(4000), law(10_000)), earlier=second)
    ends = tf.stage_ends(third)
    assert [(e.steps, e.minutes) for e in ends] == [(1000, 10.0), (4000, 40.0), (10_000, 100.0)]
    assert [e.loss for e in ends] == pytest.approx([law(1000), law(4000), law(10_000)])
    fitted = tf.fit([e.steps for e in ends], [e.loss for e in ends])
    assert (fitted.a, fitted.b, fitted.c) == pytest.approx((a, b, c), rel=1e-4)
    assert fitted.reaches(0.25) == pytest.approx((b / 0.05) ** (1 / c), rel=1e-3)
    assert fitted.reaches(fitted.a) == float("inf") and fitted.reaches(0.1) == float("inf")  # at or below the floor
    with pytest.raises(ValueError, match="at least three stage ends; this checkpoint has 2"):
        tf.fit([1000, 4000], [1.0, 0.9])


def test_model_sizes_reads_a_sweep_at_equal_steps_and_minutes(tmp_path):
    """benchmarks/model_sizes.py on a hand-made sweep folder: the best loss up to the last step count every run
    validated at (not a final step off the other's grid) and up to the shortest run, as ratios to the first configuration, are the minima a direct scan of the logs gives; a folder
    without a record or with one configuration is refused in one line."""
    ms = _module("model_sizes")
    work = tmp_path / "work"
    logs = {"small": {"step": 400, "elapsed": 120.0, "best_valid": 0.50,
                      "valid_log": [[100, 30.0, 0.90], [200, 60.0, 0.70], [300, 90.0, 0.55], [400, 120.0, 0.50]]},
            "large": {"step": 230, "elapsed": 172.5, "best_valid": 0.44,
                      "valid_log": [[50, 37.5, 0.80], [100, 75.0, 0.60], [150, 112.5, 0.52], [200, 150.0, 0.45],
                                    [230, 172.5, 0.44]]}}
    for name, meta in logs.items():
        (work / "countdown" / name).mkdir(parents=True)
        (work / "countdown" / name / "trainer.json").write_text(json.dumps(meta))
    record = {"date": "2026-12-04", "commands": ["mdm-energy train a", "mdm-energy train b"],
              "load": {"mean": 2.0, "max": 2.1}, "runs": {"small": {"parameters": 1000}, "large": {"parameters": 3000}}}
    (work / "countdown" / "record.json").write_text(json.dumps(record))
    runs, steps, minutes = ms.compare(work, "countdown", ms.read_record(work, "countdown"))
    assert steps == 200 and minutes == 2.0
    small, large = runs
    assert (small.at_steps, large.at_steps) == (0.70, 0.45)  # up to step 200
    assert (small.at_minutes, large.at_minutes) == (0.50, 0.52)  # up to 120 s
    assert small.steps_per_second == pytest.approx(400 / 120) and large.parameters == 3000 and large.steps == 230
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(BENCH / "model_sizes.py"), "--work", str(work), "--task", "countdown",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (out / "model_sizes_countdown.md").read_text()
    assert "| large | 3,000 | 1.33 | 0.4500 (0.643) | 0.5200 (1.040) | 230 | 0.4400 |" in text
    assert "    mdm-energy train b" in text and (out / "model_sizes_countdown.png").stat().st_size > 0
    assert json.loads((out / "model_sizes_countdown.json").read_text())["matched_steps"] == 200
    del record["runs"]["large"]
    (work / "countdown" / "record.json").write_text(json.dumps(record))
    for folder in (work, tmp_path / "empty"):
        r = subprocess.run([sys.executable, str(BENCH / "model_sizes.py"), "--work", str(folder), "--task", "countdown",
                            "--out", str(tmp_path / "out2")], capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and not (tmp_path / "out2").exists()
        assert ("one configuration" if folder == work else "not found") in r.stderr
