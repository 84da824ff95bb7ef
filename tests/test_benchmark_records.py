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
    real_tasks = _module("real_tasks")
    ck = tmp_path / "countdown"
    ck.mkdir()
    (ck / "model.safetensors").write_bytes(b"weights of the new model")
    digest = real_tasks.fingerprint(ck)
    assert digest == hashlib.sha256(b"weights of the new model").hexdigest()[:12]  # the definition, written out
    return real_tasks.TestItems("countdown", ck, digest, None, None, [], [])


def test_a_tuned_schedule_is_read_only_when_tuned_on_these_weights(items):
    path = items.checkpoint / "tuned_schedule.json"
    with pytest.raises(SystemExit, match="does not exist.*real_tasks.py --tasks countdown"):
        items.tuned_schedule()
    assert items.tuned_schedule(required=False) is None
    path.write_text(json.dumps({"schedule": "beta:0.3,0.9", "checkpoint": "0123456789ab"}))  # the old weights
    with pytest.raises(SystemExit, match=f"tuned on other weights \\('0123456789ab'; these are '{items.digest}'\\)"):
        items.tuned_schedule()
    assert items.tuned_schedule(required=False) is None  # real_tasks.py tunes again
    path.write_text(json.dumps({"schedule": "beta:0.3,0.9", "checkpoint": items.digest}))
    assert items.tuned_schedule()["schedule"] == "beta:0.3,0.9"
    # the pareto front reads it through the same loader
    assert "items.tuned_schedule()" in (BENCH / "pareto.py").read_text()
    assert "items.tuned_schedule()" in (BENCH / "schedule_baselines.py").read_text()


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
