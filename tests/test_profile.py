"""The information profile: Monte Carlo against the exact information curve, the schedule against the exact
engine's, the nearest Beta by round trip, the command line and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mdm_energy.cli import main
from mdm_energy.exact import ExactDenoiser, infocurve_counts, load_distribution
from mdm_energy.exact.search import infocurve_bound
from mdm_energy.profile import InformationProfile, estimate_profile, load_profile, nearest_beta, profile_schedule
from mdm_energy.sampling import ExactTorchDenoiser
from mdm_energy.schedules import Beta, parse_schedule

ROOT = Path(__file__).resolve().parents[1]
CKPT = str(ROOT / "checkpoints" / "countdown")


def exact_profile(exact: ExactDenoiser) -> np.ndarray:
    """h(j) = E_{|S|=j} E_{i not in S} H(X_i | X_S) = mean_i H(X_i) - Z_{j+1}, by the exact engine."""
    h0 = np.mean([exact.entropy(1 << i) for i in range(exact.n)])
    return h0 - exact.information_curve()


@pytest.mark.parametrize("law", ["markov:6,3,2", "templates:5,3,1"])
def test_profile_converges_to_the_exact_information_curve(law):
    exact = ExactDenoiser(load_distribution(law))
    prof = estimate_profile(ExactTorchDenoiser(exact), None, exact.n, samples=12_000, batch_size=4000, seed=1,
                            order="random", statistic="mean")
    want = exact_profile(exact)
    se = np.asarray(prof.stderr)
    # a Monte Carlo mean of 12,000 independent completions per j: within 4.5 standard errors (+ float slack)
    assert np.all(np.abs(np.asarray(prof.entropy) - want) <= 4.5 * se + 1e-6), (prof.entropy, want)
    assert prof.calls == exact.n * 3  # one batched call per revealed count, three batches


def test_the_profile_schedule_is_the_exact_engines_information_curve_schedule():
    exact = ExactDenoiser(load_distribution("markov:6,3,2"))
    prof = estimate_profile(ExactTorchDenoiser(exact), None, exact.n, samples=12_000, batch_size=4000, seed=2,
                            order="random", statistic="mean")
    Z = exact.information_curve()
    for steps in (2, 3, 4):
        got = profile_schedule(prof, steps)
        want = infocurve_counts(Z, steps)
        # the same counts, or counts whose exact bound ties the exact DP's (Monte Carlo cannot split a tie)
        assert got.counts == want.counts or infocurve_bound(Z, got.counts) <= want.bound + 1e-9, (steps, got, want)
        assert parse_schedule(got.table).counts(exact.n, steps).tolist() == got.counts


def test_a_profile_flat_at_first_gives_no_empty_step():
    """A profile whose entropy does not fall for the first positions (easy padding committed first: the
    curve is flat there) still spends every model call on at least one token."""
    h = [2.0] * 8 + list(np.linspace(2.0, 0.5, 16))
    prof = InformationProfile(length=24, entropy=tuple(h), stderr=(0.01,) * 24, samples=100, order="confidence", calls=24)
    for steps in range(1, 25):
        got = profile_schedule(prof, steps)
        assert min(got.counts) >= 1 and sum(got.counts) == 24, (steps, got.counts)
        assert parse_schedule(got.table).counts(24, steps).tolist() == got.counts


def test_given_completions_revealed_in_random_order_give_the_same_profile():
    exact = ExactDenoiser(load_distribution("templates:5,3,1"))
    rng = np.random.default_rng(0)
    flat = rng.choice(exact.q.size, size=8000, p=exact.q.reshape(-1))
    completions = np.stack(np.unravel_index(flat, exact.q.shape), axis=1).tolist()
    prof = estimate_profile(ExactTorchDenoiser(exact), [[]] * len(completions), exact.n, samples=len(completions),
                            completions=completions, batch_size=4000, seed=3, order="random",
                            statistic="mean")
    want = exact_profile(exact)
    assert np.all(np.abs(np.asarray(prof.entropy) - want) <= 4.5 * np.asarray(prof.stderr) + 1e-6)


@pytest.mark.parametrize("a,b", [(0.9, 0.3), (0.5, 0.5), (1.0, 0.2), (0.4, 0.8)])
def test_nearest_beta_recovers_the_beta_that_made_the_counts(a, b):
    counts = Beta(a, b).counts(100_000, 16)
    got = nearest_beta(counts)
    assert got == pytest.approx((a, b), rel=0.03)


def test_confidence_order_follows_the_samplers_own_path():
    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.tasks import get_task

    task = get_task("countdown")
    den = as_denoiser(load_model(CKPT))
    prompts = task.prompts(task.examples("valid", 16, seed=0))
    prof = estimate_profile(den, prompts, task.gen_len, samples=16, order="confidence", seed=0)
    assert prof.length == task.gen_len and prof.calls == task.gen_len and prof.meta["temperature"] == 0.0
    assert prof.entropy[0] > prof.entropy[-1] >= 0  # entropy falls as the answer is revealed
    assert np.all(np.diff(prof.smoothed()) <= 1e-12)


def test_save_and_load_round_trip(tmp_path):
    prof = InformationProfile(length=3, entropy=(1.0, 0.5, 0.2), stderr=(0.1, 0.1, 0.1), samples=4, order="random",
                              calls=3, source="x")
    prof.save(tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json") == prof


@pytest.mark.parametrize("content,needle", [
    (b"not json", "is not a profile file"),
    (json.dumps({"length": 2}).encode(), "no 'mdm-energy information profile' format tag"),
    (json.dumps({"format": "mdm-energy information profile", "length": 3, "entropy": [1, 2], "stderr": [0, 0],
                 "samples": 1, "order": "random", "calls": 1}).encode(), "must have length 3"),
    (b"\xff\xfe", "is not a profile file"),
])
def test_damaged_profile_files(tmp_path, content, needle):
    (tmp_path / "bad.json").write_bytes(content)
    with pytest.raises(ValueError, match=needle):
        load_profile(tmp_path / "bad.json")


def test_profile_command_on_a_checkpoint(tmp_path, capsys):
    save, plot = tmp_path / "p.json", tmp_path / "p.png"
    argv = ["profile", "--checkpoint", CKPT, "--task", "countdown", "--samples", "24", "--steps", "4,8", "--json",
            "--save", str(save), "--plot", str(plot)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["length"] == 24 and len(out["schedules"]) == 2
    for s in out["schedules"]:
        assert sum(s["counts"]) == 24 and len(s["counts"]) == s["steps"]
        assert parse_schedule(s["table"]).counts(24, s["steps"]).tolist() == s["counts"]
        assert s["beta"].startswith("beta:")
    assert open(plot, "rb").read(4) == b"\x89PNG"
    assert main(["profile", "--load", str(save), "--steps", "6", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["profile"]["entropy"] == out["profile"]["entropy"] and again["schedules"][0]["steps"] == 6
    # the table spec is a schedule everywhere: eval takes it
    spec = out["schedules"][0]["table"]
    assert main(["eval", "--task", "countdown", "--checkpoint", CKPT, "--schedule", spec, "-N", "4", "--limit", "4",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 4


def test_profile_command_with_a_prompts_file_and_completions(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "completion": c}) + "\n"
                               for p, c in [("3 7 12 25:37", "25+12"), ("2 5 9 40:47", "40+9-2")]))
    assert main(["profile", "--model", CKPT, "--prompts", str(prompts), "--samples", "8", "--order", "random", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["meta"]["given_completions"] is True and out["profile"]["calls"] == 24


@pytest.mark.parametrize("make,extra,needle", [
    (lambda d: (d / "e.txt").write_text("\n\n"), ["--prompts", "{d}/e.txt"], "is empty"),
    (lambda d: (d / "b.txt").write_bytes(b"\xff\xfe\x00"), ["--prompts", "{d}/b.txt"], "is not UTF-8"),
    (lambda d: (d / "l.txt").write_text("1 2 3 4 5 6 7 8 9 10 11 12:99\n"), ["--prompts", "{d}/l.txt"], "longer than"),
    (lambda d: None, ["--task", "countdown", "--length", "0"], "--length"),
    (lambda d: None, ["--task", "countdown", "--samples", "0"], "--samples"),
    (lambda d: None, ["--task", "sudoku"], "was trained for countdown"),
    (lambda d: None, [], "give prompts"),
    (lambda d: None, ["--task", "countdown", "--steps", "30"], "exceeds the window"),
    (lambda d: (d / "x.jsonl").write_text('{"prompt": "1 2:3", "completion": "1+2"}\n{"prompt": "1 2:3"}\n'),
     ["--prompts", "{d}/x.jsonl"], "on every line or on none"),
])
def test_profile_bad_input(tmp_path, capsys, make, extra, needle):
    make(tmp_path)
    argv = ["profile", "--checkpoint", CKPT, "--save", str(tmp_path / "out.json"),
            *[e.format(d=tmp_path) for e in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "out.json").exists()


def test_loading_something_that_is_not_a_profile(tmp_path, capsys):
    (tmp_path / "x.json").write_text("[1, 2]")
    assert main(["profile", "--load", str(tmp_path / "x.json"), "--steps", "2"]) == 2
    assert "is not a profile file" in capsys.readouterr().err
