"""Schedule-aware adaptive samplers (threshold-floor, threshold-cap) and the Pareto tuner.

References: the fixed-count sampler they reduce to at the ends of the threshold (token for token), the
exact engine's law of that sampler (chi-square), a brute-force non-dominated set of the trials, and
synthetic objectives with known optima.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _stats import chi_square_pvalue

from mdm_energy.cli import main
from mdm_energy.exact import ExactDenoiser, exact_sampler, load_distribution
from mdm_energy.models import MDMConfig, MDMTransformer, as_denoiser
from mdm_energy.sampling import ExactTorchDenoiser, make_sampler
from mdm_energy.tuning.objectives import Score
from mdm_energy.tuning.pareto import ParetoSpace, SamplerObjective, pareto_tune

ROOT = Path(__file__).resolve().parents[1]
CKPT = str(ROOT / "checkpoints" / "countdown")


def _model(seed: int = 0) -> MDMTransformer:
    torch.manual_seed(seed)
    model = MDMTransformer(MDMConfig(vocab_size=12, mask_id=11, eos_id=10, pad_id=0, max_len=40, d_model=32, n_layers=2,
                                     n_heads=2, d_ff=64)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0) if p.ndim > 1 else None
    return model


def _run(name, den, **options):
    s = make_sampler(name, **options)
    return s(den, [[1, 2, 3], [4, 5, 6, 7]], 24, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("schedule,steps,block", [("linear", 8, None), ("beta:0.9,0.3", 6, 12), ("sine", 12, 8)])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_the_ends_of_the_threshold_are_the_fixed_count_sampler(schedule, steps, block, temperature):
    from mdm_energy.schedules import parse_schedule

    per_block = steps // (24 // (block or 24))
    assert parse_schedule(schedule).counts(block or 24, per_block).min() >= 1  # no empty step (they commit >= 1)
    den = as_denoiser(_model())
    fixed = _run("fixed", den, schedule=schedule, steps=steps, block_length=block, temperature=temperature)
    floor = _run("threshold-floor", den, schedule=schedule, steps=steps, block_length=block, temperature=temperature,
                 threshold=1.0)
    cap = _run("threshold-cap", den, schedule=schedule, steps=steps, block_length=block, temperature=temperature,
               threshold=0.0)
    for out in (floor, cap):
        assert torch.equal(out.tokens, fixed.tokens)
        assert torch.equal(out.nfe, fixed.nfe)


def test_the_floor_never_exceeds_the_steps_and_stops_early_when_confident():
    den = as_denoiser(_model(1))
    for threshold in (0.0, 0.2, 0.5, 0.9):
        out = _run("threshold-floor", den, schedule="linear", steps=12, threshold=threshold)
        assert (out.nfe <= 12).all() and (out.generated != 11).all()
    assert (_run("threshold-floor", den, schedule="linear", steps=12, threshold=0.0).nfe == 1).all()
    blocks = _run("threshold-floor", den, schedule="linear", steps=12, block_length=8, threshold=0.0, stop_at_eos=True)
    assert (blocks.nfe <= 3).all()  # one call per block at most


def test_the_cap_never_commits_more_than_the_schedule_allows():
    den = as_denoiser(_model(2))
    committed = []

    def watch(step, tokens, new):
        committed.append(int(new[0].sum()))

    for threshold in (0.0, 0.3):
        committed.clear()
        s = make_sampler("threshold-cap", schedule="beta:0.9,0.3", steps=6, threshold=threshold)
        s(den, [[1, 2, 3]], 24, callback=watch)
        C = np.cumsum(s.schedule.counts(24, 6))
        done = 0
        for k, n in enumerate(committed):  # call k commits at most max(1, C_k - revealed) within the schedule
            if k < len(C):
                assert 1 <= n <= max(1, C[k] - done), (k, n, C, committed)
            done += n
        assert done == 24


@pytest.mark.parametrize("sampler,threshold", [("threshold-floor", 1.0), ("threshold-cap", 0.0)])
def test_their_law_at_the_ends_is_the_exact_fixed_count_law(sampler, threshold):
    exact = ExactDenoiser(load_distribution("markov:4,3,1"))
    den = ExactTorchDenoiser(exact)
    s = make_sampler(sampler, schedule="sin2", steps=3, threshold=threshold, temperature=1.0)
    out = s(den, None, exact.n, batch_size=20_000, generator=torch.Generator().manual_seed(7))
    law = exact_sampler(exact, "fixed", "sin2", 3, "low_confidence").law
    assert chi_square_pvalue(out.generated.numpy(), law) > 1e-3


def test_hybrid_samplers_on_the_command_line(capsys):
    base = ["eval", "--task", "countdown", "--checkpoint", CKPT, "--limit", "8", "--json", "-N", "8"]
    assert main([*base, "--sampler", "threshold-floor", "--threshold", "0.7"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] <= 8
    assert main([*base, "--sampler", "threshold-cap", "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


# --- the Pareto tuner -------------------------------------------------------------------------------------


def synthetic(calls: list | None = None) -> SamplerObjective:
    """Quality rises with the threshold and with (a, b) near (0.4, 0.8); calls fall as the threshold drops."""

    def fn(sampler: str, options: dict) -> tuple[Score, float]:
        if calls is not None:
            calls.append((sampler, options))
        t = options.get("threshold", options.get("epsilon", 0.5))
        a, b = (float(x) for x in options.get("schedule", "beta:0.4,0.8").split(":")[1].split(",")) \
            if str(options.get("schedule", "")).startswith("beta:") else (0.4, 0.8)
        q = 0.5 * t - (a - 0.4) ** 2 - (b - 0.8) ** 2 + 0.01 * options.get("steps", 8)
        return Score(q, 100, 0.01), 2.0 + 10.0 * t + 0.1 * options.get("steps", 8)

    return SamplerObjective(fn, "synthetic")


def test_pareto_front_is_the_non_dominated_set_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path}/p.db"
    space = ParetoSpace(steps=(4, 8))
    r = pareto_tune(synthetic(), sampler="threshold-floor", strategy="random", budget=15, storage=storage,
                    study_name="p", space=space)
    assert r.evaluations == 15 and r.new_evaluations == 15
    pts = r.trials
    brute = [p for p in pts if not any(q.quality >= p.quality and q.nfe <= p.nfe and (q.quality > p.quality or q.nfe < p.nfe)
                                       for q in pts)]
    assert sorted(p.number for p in r.front) == sorted(p.number for p in brute)
    assert {p.label for p in r.baselines} >= {"linear N=4", "sin2 N=8", "threshold threshold=0.9"}
    assert all(p.options["steps"] in (4, 8) and 0.3 <= p.options["threshold"] <= 0.99 for p in pts)
    calls: list = []
    again = pareto_tune(synthetic(calls), sampler="threshold-floor", strategy="random", budget=15, storage=storage,
                        study_name="p", space=space)
    assert again.new_evaluations == 0 and calls == []  # finished trials and baselines are kept
    assert [p.number for p in again.front] == [p.number for p in r.front]


def test_pareto_with_two_workers_spends_its_budget_once(tmp_path):
    r = pareto_tune(synthetic(), sampler="threshold", strategy="tpe", budget=12, storage=f"sqlite:///{tmp_path}/w.db",
                    study_name="w", workers=2)
    assert r.evaluations == 12


@pytest.mark.parametrize("kw,needle", [
    ({"strategy": "grid"}, "cannot search two objectives"),
    ({"space": "bad-threshold"}, "threshold bounds must satisfy"),
    ({"sampler": "nosuch"}, "unknown sampler 'nosuch'"),
])
def test_pareto_bad_input(tmp_path, kw, needle):
    args = {"sampler": "threshold-floor", "strategy": "random", "budget": 3, "storage": f"sqlite:///{tmp_path}/b.db"}
    args.update(kw)
    with pytest.raises(ValueError, match=needle):
        if args.get("space") == "bad-threshold":
            args["space"] = ParetoSpace(threshold_bounds=(0.5, 1.5))
        pareto_tune(synthetic(), **args)
    assert not (tmp_path / "b.db").exists()


def test_tune_pareto_on_a_checkpoint_resumes_and_reports(tmp_path, capsys):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CKPT, "--sampler",
            "threshold-floor", "--steps-values", "4,8", "--strategy", "random", "--budget", "4", "--limit", "24",
            "--storage", f"sqlite:///{tmp_path}/t.db", "--study", "t", "--report", str(tmp_path / "rep"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 4 and out["front"] and all("--sampler threshold-floor" in p["command"] for p in out["front"])
    assert (tmp_path / "rep" / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert "| quality ± s.e. | mean calls | configuration |" in (tmp_path / "rep" / "report.md").read_text()
    assert main(argv[:-3] + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["new_evaluations"] == 0


@pytest.mark.parametrize("extra,needle", [
    (["--strategy", "grid"], "--pareto needs a strategy that searches two objectives"),
    (["--strategy", "random", "--threshold-bounds", "0.5,1.5"], "threshold bounds must satisfy"),
    (["--strategy", "random", "--sampler", "threshold", "--remasking", "random"], "--remasking does not apply"),
    (["--strategy", "random", "--objective", "exact", "--dist", "toy2"], "--pareto tunes a task checkpoint"),
])
def test_tune_pareto_bad_input(tmp_path, capsys, extra, needle):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CKPT, "--sampler",
            "threshold-floor", "-N", "8", "--storage", f"sqlite:///{tmp_path}/b.db"]
    for k, v in zip(extra[::2], extra[1::2]):
        if k in argv:
            argv[argv.index(k) + 1] = v
        else:
            argv += [k, v]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "b.db").exists()
