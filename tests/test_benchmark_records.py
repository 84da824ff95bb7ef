"""The benchmarks' records tied to the weights they were measured on: a tuned schedule or a profile from other
weights (after retraining) is refused or retuned, never silently reused (benchmarks/real_tasks.py's loader,
shared by pareto.py and schedule_baselines.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
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


def test_rerunning_one_task_keeps_the_other_tasks_tables(tmp_path):
    real_tasks = _module("real_tasks")
    path = tmp_path / "real_tasks.json"
    path.write_text(json.dumps({"meta": {}, "tasks": {"sudoku": {"n": 500}, "countdown": {"n": 1000, "old": True}}}))
    meta: dict = {}
    merged = real_tasks.merged_tables({"countdown": {"n": 1000, "steps": (2, 3)}}, path, meta, quick=False)
    assert merged == {"countdown": {"n": 1000, "steps": [2, 3]}, "sudoku": {"n": 500}}  # JSON form, CONFIG order
    assert list(merged) == ["countdown", "sudoku"] and meta["kept_from_earlier_runs"] == ["sudoku"]
    quick_meta: dict = {}
    assert real_tasks.merged_tables({"countdown": {}}, path, quick_meta, quick=True) == {"countdown": {}}
    assert "kept_from_earlier_runs" not in quick_meta  # a smoke run keeps nothing
