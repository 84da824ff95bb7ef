"""CLI contract of `exact`, `exact-grid` and `toy`, including the bad-input paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdm_energy.cli import main
from mdm_energy.exact import ExactDenoiser, exact_sampler


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert out.count("\n") == 1
    return json.loads(out)


def test_exact_json_contract_fixed(capsys):
    obj = run_json(capsys, "exact", "--dist", "toy1", "--sampler", "fixed", "--remasking", "random", "--schedule", "linear",
                   "--steps", "3")
    assert set(obj) == {"kl", "tv", "nfe", "counts"}
    assert obj["counts"] == [2, 1, 2] and obj["nfe"] == 3
    assert obj["kl"] == pytest.approx(math.log(2))  # success probability 2^(1-2)


def test_exact_json_contract_ancestral_with_law(capsys):
    obj = run_json(capsys, "exact", "--dist", "markov:4,3,1", "--sampler", "ancestral", "--schedule", "beta:0.9,0.3", "-N", "3", "--law")
    assert set(obj) == {"kl", "tv", "nfe", "law"}
    ref = exact_sampler("markov:4,3,1", "ancestral", "beta:0.9,0.3", 3)
    np.testing.assert_allclose(obj["law"], ref.law.reshape(-1), atol=1e-15)
    assert len(obj["law"]) == 81 and obj["kl"] == pytest.approx(ref.kl)


def test_exact_reads_npy(capsys, tmp_path):
    w = np.random.default_rng(0).random((3, 3, 3))
    np.save(tmp_path / "w.npy", w)
    obj = run_json(capsys, "exact", "--dist", str(tmp_path / "w.npy"), "--sampler", "fixed", "--schedule", "sin2", "-N", "2")
    assert obj["kl"] == pytest.approx(exact_sampler(ExactDenoiser(w), "fixed", "sin2", 2, remasking="low_confidence").kl)


def test_exact_dus_schedule_takes_dilation(capsys):
    # on markov:6,2,0 (n = 6) dilation 3 makes other groups than the default 2 (on toy1, n = 5, their laws agree)
    argv = ("exact", "--dist", "markov:6,2,0", "--sampler", "dus-schedule", "--schedule", "linear", "-N", "2")
    three = run_json(capsys, *argv, "--dilation", "3")
    two = run_json(capsys, *argv, "--dilation", "2")
    ref = exact_sampler("markov:6,2,0", "dus-schedule", "linear", 2, options={"dilation": 3})
    assert three["kl"] == pytest.approx(ref.kl, rel=1e-12) and three["counts"] == ref.counts
    assert abs(three["kl"] - two["kl"]) > 1e-3
    skip = run_json(capsys, *argv, "--dilation", "2", "--dilation-skip", "2")
    assert skip["kl"] == pytest.approx(exact_sampler("markov:6,2,0", "dus-schedule", "linear", 2,
                                                     options={"dilation": 2, "dilation_skip": 2}).kl, rel=1e-12)


def test_exact_has_a_flag_for_every_option_an_exact_law_takes():
    # read from the registry, so a new option of an exact sampler cannot be left without its flag again
    from mdm_energy.cli.exact_cmd import EXACT_OPTIONS
    from mdm_energy.registry import exact_law_options
    from mdm_energy.registry import EXACT_PINNED_OPTIONS, sampler_names, sampler_spec

    flags = set(EXACT_OPTIONS + exact_law_options())
    for name in sampler_names(exact=True):
        assert set(sampler_spec(name).options) - set(EXACT_PINNED_OPTIONS) <= flags, name


def test_exact_human_output(capsys):
    code, out, _ = run(capsys, "exact", "--dist", "toy2", "--sampler", "euler", "--schedule", "sin2", "-N", "3", "--law")
    assert code == 0 and "KL(q || sampler)" in out and "sequence" in out


def test_exact_grid_json_contract_and_plot(capsys, tmp_path):
    plot = tmp_path / "heat.png"
    obj = run_json(capsys, "exact-grid", "--dist", "toy2", "--sampler", "fixed", "-N", "3",
                   "--a-values", "0.2,0.5,1", "--b-values", "0.3,0.9", "--plot", str(plot))
    assert set(obj) == {"grid", "best", "baselines", "optimum", "infocurve"}
    assert [(g["a"], g["b"]) for g in obj["grid"]] == [(a, b) for a in (0.2, 0.5, 1.0) for b in (0.3, 0.9)]
    assert obj["best"] == min(obj["grid"], key=lambda g: g["kl"])
    assert set(obj["baselines"]) == {"linear", "sin2", "sine", "maskgit"}
    assert set(obj["optimum"]) >= {"kl", "counts"} and set(obj["infocurve"]) >= {"kl", "counts"}
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_exact_grid_default_grid_is_the_papers(capsys):
    obj = run_json(capsys, "exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "3")
    assert len(obj["grid"]) == 100
    assert {g["a"] for g in obj["grid"]} == {round(0.1 * k, 1) for k in range(1, 11)}
    assert obj["optimum"]["kl"] == pytest.approx(0.0, abs=1e-12)


def test_exact_grid_ancestral_reports_alpha(capsys):
    obj = run_json(capsys, "exact-grid", "--dist", "toy2", "--sampler", "ancestral", "-N", "2", "--a-values", "0.5", "--b-values", "0.5")
    alpha = obj["optimum"]["alpha"]
    assert len(alpha) == 2 and alpha[-1] == 1.0 and obj["optimum"]["kl"] <= obj["baselines"]["linear"] + 1e-12


def test_toy_contract(capsys, tmp_path):
    plot = tmp_path / "toy.png"
    obj = run_json(capsys, "toy", "--plot", str(plot))
    assert obj["steps"] == 3 and len(obj["sequences"]) == 32 and set(obj["targets"]) == {"toy1", "toy2"}
    t1, t2 = obj["targets"]["toy1"], obj["targets"]["toy2"]
    assert t1["schedules"]["beta:0.9,0.3"]["kl"] == pytest.approx(0.0, abs=1e-12)
    assert t2["schedules"]["beta:0.3,0.9"]["kl"] < t2["schedules"]["beta:0.9,0.3"]["kl"]
    assert (t1["best"]["a"], t1["best"]["b"]) != (t2["best"]["a"], t2["best"]["b"])  # the best schedule depends on the task
    assert plot.stat().st_size > 10_000


def bad_npy(tmp_path, arr):
    path = tmp_path / "bad.npy"
    np.save(path, arr)
    return str(path)


BAD = [
    (lambda p: ["exact", "--dist", bad_npy(p, -np.ones((2, 2))), "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "non-negative"),
    (lambda p: ["exact", "--dist", bad_npy(p, np.zeros((2, 2, 2))), "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "all zero"),
    (lambda p: ["exact", "--dist", bad_npy(p, np.ones((2, 3))), "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "equal sides"),
    (lambda p: ["exact", "--dist", bad_npy(p, np.ones((2,) * 16)), "--sampler", "ancestral", "--schedule", "linear", "-N", "2"], "too large"),
    (lambda p: ["exact", "--dist", "markov:8,4", "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "'markov:8,4'"),
    (lambda p: ["exact", "--dist", "bogus:1,2,3", "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "'bogus:1,2,3'"),
    (lambda p: ["exact", "--dist", "markov:12,4,0", "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "too large"),
    (lambda p: ["exact", "--dist", "markov:9,4,0", "--sampler", "fixed", "--schedule", "linear", "-N", "2"], "Monte Carlo"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "confidence", "--schedule", "linear", "-N", "2"], "--remasking low_confidence"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "threshold", "--schedule", "linear", "-N", "2"], "no law for the threshold"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "ancestral", "--remasking", "margin", "--schedule", "linear", "-N", "2"],
     "--remasking does not apply to the ancestral sampler"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "greedy", "--schedule", "linear", "-N", "2"], "'greedy'"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "beta:0,1", "-N", "2"], "got 0"),
    (lambda p: ["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear", "-N", "0"], "got '0'"),
    (lambda p: ["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--a-values", "0.1,x"], "'0.1,x'"),
    (lambda p: ["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--b-values", "0.5,-1"], "'0.5,-1'"),
    (lambda p: ["exact-grid", "--dist", bad_npy(p, -np.ones((2, 2))), "--sampler", "fixed", "-N", "2", "--plot", str(p / "h.png")], "non-negative"),
    (lambda p: ["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--plot", str(p / "missing" / "h.png")], "does not exist"),
    (lambda p: ["toy", "--steps", "0"], "got '0'"),
    (lambda p: ["toy", "--plot", str(p / "toy.jpg")], "'"),
]


@pytest.mark.parametrize("make,needle", BAD)
def test_bad_input_exits_2_and_writes_nothing(capsys, tmp_path, make, needle):
    argv = make(tmp_path)
    before = sorted(tmp_path.iterdir())
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("mdm-energy: error: ") and needle in err
    assert sorted(tmp_path.iterdir()) == before


def test_a_blocks_schedule_is_refused_where_there_is_one_block(capsys):
    """The exact engine runs one block: a blocks: schedule (one schedule per block) is refused in one line instead of
    being replaced by its mean curve; the uniform-noise rule and its exact law refuse it too."""
    from mdm_energy.exact import ExactDenoiser, exact_sampler
    from mdm_energy.exact.uniform import law_uniform_fixed_count
    from mdm_energy.registry import sampler_options
    from mdm_energy.sampling.uniform import uniform_rule

    assert main(["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "blocks:linear;sin2", "--steps", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "a blocks: schedule (2 block schedules) does not apply" in err and err.count("\n") == 1
    den = ExactDenoiser("toy1")
    with pytest.raises(ValueError, match="an exact law has one block"):
        exact_sampler(den, "fixed", "blocks:linear;sin2", 2)
    with pytest.raises(ValueError, match="the uniform-noise exact law has one block"):
        law_uniform_fixed_count(den.dist, "blocks:linear;sin2", 2)
    with pytest.raises(ValueError, match="a uniform-noise canvas has one block"):
        uniform_rule("fixed", sampler_options("fixed", schedule="blocks:linear;sin2", steps=4), 8, "DiffusionGemma")
