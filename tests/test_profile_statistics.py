"""The profile's statistics, blocks and ``blocks:`` schedules, against references computed independently: the
exact engine's joint entropies (random order) and a loop-based greedy confidence path on an explicit law; the
command line's sampler-matched order and its bad input (issue #27)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mdm_energy.cli import main
from mdm_energy.exact import ExactDenoiser, infocurve_counts, load_distribution
from mdm_energy.profile import (STATISTICS, InformationProfile, estimate_profiles, load_profile, model_fingerprint,
                                profile_schedule)
from mdm_energy.sampling import ExactTorchDenoiser, FixedCountSampler
from mdm_energy.schedules import PerBlock, parse_schedule

ROOT = Path(__file__).resolve().parents[1]
CKPT = str(ROOT / "checkpoints" / "countdown")


def random_law(n: int, d: int, seed: int) -> ExactDenoiser:
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.full(d ** n, 0.3)).reshape((d,) * n)
    return ExactDenoiser(q)


def subsets(positions, k):
    return [sum(1 << i for i in c) for c in itertools.combinations(positions, k)]


# --- the random order: each statistic against joint entropies --------------------------------------------------


def test_random_order_statistics_match_the_exact_entropies():
    """With uniform reveals from the model's own law: mean(j) = E H(X_i | X_S), total(j) = (L-j)/L mean(j), and
    committed(j) = (H(X) - E H(X_S)) / L (the chain rule: what is still to commit is the joint entropy of the rest)."""
    ex = ExactDenoiser(load_distribution("markov:5,3,2"))
    n = ex.n
    H = {S: ex.entropy(S) for S in range(1 << n)}
    mean = [np.mean([H[S | 1 << i] - H[S] for S in subsets(range(n), j) for i in range(n) if not S >> i & 1])
            for j in range(n)]
    want = {"mean": mean, "total": [(n - j) / n * mean[j] for j in range(n)],
            "committed": [(H[ex.full] - np.mean([H[S] for S in subsets(range(n), j)])) / n for j in range(n)],
            "answer": mean}  # no end token: the answer span is the whole window
    profs = estimate_profiles(ExactTorchDenoiser(ex), None, n, samples=6000, batch_size=3000, order="random", seed=4)
    for st in STATISTICS:
        got, se = np.asarray(profs[st].entropy), np.asarray(profs[st].stderr)
        assert np.all(np.abs(got - want[st]) <= 4.5 * se + 1e-6), (st, got, want[st])
        assert profs[st].statistic == st and profs[st].order == "random"


def test_random_order_per_block_mean_matches_the_exact_entropies():
    """Blocks of 3 on a window of 6: block 0 sees uniform subsets of itself, block 1 all of block 0 besides."""
    ex = ExactDenoiser(load_distribution("markov:6,3,2"))
    H = {S: ex.entropy(S) for S in range(1 << 6)}
    want = []
    for base, block in ((0, range(3)), (0b111, range(3, 6))):
        for j in range(3):
            want.append(np.mean([H[base | S | 1 << i] - H[base | S] for S in subsets(block, j) for i in block
                                 if not S >> i & 1]))
    prof = estimate_profiles(ExactTorchDenoiser(ex), None, 6, samples=6000, batch_size=3000, order="random",
                             statistics=("mean",), block_length=3, seed=5)["mean"]
    got, se = np.asarray(prof.entropy), np.asarray(prof.stderr)
    assert prof.block_length == 3 and prof.blocks == 2 and prof.calls == 6 * 2
    assert np.all(np.abs(got - want) <= 4.5 * se + 1e-6), (got, want)


# --- the confidence order: a greedy path by hand ---------------------------------------------------------------


def greedy_path_statistics(ex: ExactDenoiser, block_length: int, end_id: "int | None"):
    """The low_confidence sampler at temperature 0, one token per call, by hand: each call commits the masked
    position (of the current block) whose most likely token is most likely; the statistics of every call."""
    n, d = ex.n, ex.d
    x = np.full(n, d)
    out = {s: [] for s in STATISTICS}
    committed = []
    for _ in range(n):
        post = ex.posterior(x, mask_id=d)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.nansum(np.where(post > 0, post * np.log(post), 0.0), axis=1)
        b = int(np.flatnonzero(x == d)[0]) // block_length
        masked = [i for i in range(b * block_length, (b + 1) * block_length) if x[i] == d]
        out["mean"].append(np.mean([ent[i] for i in masked]))
        out["total"].append(sum(ent[i] for i in masked) / block_length)
        ends = [i for i in range(n) if x[i] != d and x[i] == end_id]
        span = [i for i in masked if i < (ends[0] if ends else n)]
        out["answer"].append(np.mean([ent[i] for i in span]) if span else 0.0)
        best = max(masked, key=lambda i: post[i].max())
        committed.append((b, ent[best]))
        x[best] = int(post[best].argmax())
    for j, (b, _) in enumerate(committed):
        out["committed"].append(sum(e for bb, e in committed[j:] if bb == b) / block_length)
    return out


@pytest.mark.parametrize("block_length,end_id", [(5, None), (5, 0), (None, 1)])
def test_confidence_order_statistics_follow_the_greedy_path(block_length, end_id):
    ex = random_law(5, 3, seed=11) if block_length != 5 or end_id is None else random_law(5, 3, seed=12)
    den = ExactTorchDenoiser(ex)
    den.eos_id = end_id
    got = estimate_profiles(den, None, 5, samples=3, order="confidence", block_length=block_length, seed=0)
    want = greedy_path_statistics(ex, block_length or 5, end_id)
    for st in STATISTICS:
        assert np.allclose(got[st].entropy, want[st], atol=1e-9), (st, got[st].entropy, want[st])
        assert np.allclose(got[st].stderr, 0.0, atol=1e-6)  # a deterministic path: every row the same


def test_confidence_order_per_block_follows_the_greedy_path():
    ex = random_law(6, 2, seed=3)
    den = ExactTorchDenoiser(ex)
    got = estimate_profiles(den, None, 6, samples=2, order="confidence", block_length=3, seed=0)
    want = greedy_path_statistics(ex, 3, None)
    for st in STATISTICS:
        assert np.allclose(got[st].entropy, want[st], atol=1e-9), (st, got[st].entropy, want[st])


def test_total_falls_on_a_padded_window_where_the_mean_rises():
    """countdown: a short answer, then end-token padding; under the confidence order the padding goes first,
    so the mean over what is left rises while the total remaining entropy falls (issue #27)."""
    from mdm_energy.models import as_denoiser, load_model
    from mdm_energy.tasks import get_task

    task = get_task("countdown")
    den = as_denoiser(load_model(CKPT))
    profs = estimate_profiles(den, task.prompts(task.examples("valid", 8, seed=0)), task.gen_len, samples=8, seed=0,
                              statistics=("mean", "total"))
    mean, total = np.asarray(profs["mean"].entropy), np.asarray(profs["total"].entropy)
    assert mean[task.gen_len // 2] > mean[0]  # the flaw
    assert np.all(np.diff(total) <= 0.02 * total[0])  # (almost) never up
    assert total[-1] < 0.2 * total[0]
    for steps in (3, 6, 12):
        counts = profile_schedule(profs["total"], steps).counts
        assert min(counts) >= 1 and sum(counts) == task.gen_len


# --- schedules with blocks --------------------------------------------------------------------------------------


def block_profile() -> InformationProfile:
    h0 = [1.0, 0.9, 0.3, 0.2, 0.1, 0.05]  # falls early
    h1 = [1.0, 1.0, 1.0, 0.9, 0.3, 0.0]  # falls late
    return InformationProfile(length=12, entropy=tuple(h0 + h1), stderr=(0.01,) * 12, samples=10, order="confidence",
                              calls=12, statistic="total", block_length=6)


def test_each_block_gets_the_dp_of_its_own_curve_and_shared_the_mean_curve():
    prof = block_profile()
    h = np.asarray(prof.entropy).reshape(2, 6)
    Z = [np.maximum(h[b, 0] - h[b], 0) for b in range(2)]
    for steps in (2, 4, 6, 8, 12):
        each = profile_schedule(prof, steps, blocks="each")
        assert each.block_counts == [infocurve_counts(Z[b], steps // 2).counts for b in range(2)]
        shared = profile_schedule(prof, steps, blocks="shared")
        assert shared.block_counts == [infocurve_counts((Z[0] + Z[1]) / 2, steps // 2).counts] * 2
        for s in (each, shared):
            assert min(s.counts) >= 1 and sum(s.counts) == 12 and len(s.counts) == steps
            sched = parse_schedule(s.table)
            for b in range(2):
                block = sched.block(b) if isinstance(sched, PerBlock) else sched
                assert block.counts(6, steps // 2).tolist() == s.block_counts[b]
        assert each.bound <= shared.bound + 1e-12  # each block's own optimum
    assert profile_schedule(prof, 4).blocks == "each"  # the default for a block profile
    with pytest.raises(ValueError, match="not divisible by the profile's 2 blocks"):
        profile_schedule(prof, 3)


def test_a_blocks_schedule_gives_every_block_its_own_counts():
    ex = ExactDenoiser(load_distribution("markov:6,3,2"))
    seen = []

    class Counting:
        def __init__(self, den):
            self.den = den
            self.mask_id, self.vocab_size, self.eos_id = den.mask_id, den.vocab_size, den.eos_id

        def __call__(self, tokens, attention_mask=None):
            seen.append(int((tokens[0] == self.mask_id).sum()))
            return self.den(tokens, attention_mask)

    spec = "blocks:table:0.75;table:0.25"
    assert parse_schedule(spec).spec == spec and str(parse_schedule(spec)) == spec
    FixedCountSampler(spec, 4, block_length=3)(Counting(ExactTorchDenoiser(ex)), None, 6, batch_size=2,
                                               generator=torch.Generator().manual_seed(0))
    assert seen == [6, 4, 3, 2]  # block 0: 2 then 1; block 1: 1 then 2
    with pytest.raises(ValueError, match="2 block schedules for 3 block"):
        FixedCountSampler(spec, 6, block_length=2)(ExactTorchDenoiser(ex), None, 6)
    for bad in ("blocks:", "blocks:linear;blocks:linear", "blocks:linear;nope"):
        with pytest.raises(ValueError):
            parse_schedule(bad)


# --- files ----------------------------------------------------------------------------------------------------


def test_a_profile_file_keeps_its_statistic_blocks_and_model(tmp_path):
    prof = InformationProfile(length=4, entropy=(1.0, 0.5, 0.4, 0.1), stderr=(0.1,) * 4, samples=3, order="confidence",
                              calls=4, statistic="committed", block_length=2, model={"name": "m", "fingerprint": "ab"})
    prof.save(tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json") == prof
    old = json.loads((tmp_path / "p.json").read_text())
    for key in ("statistic", "block_length", "model"):
        del old[key]
    (tmp_path / "old.json").write_text(json.dumps(old))
    back = load_profile(tmp_path / "old.json")  # a file from before: the mean statistic, one window
    assert back.statistic == "mean" and back.block_length is None and back.model == {}


def test_the_fingerprint_tells_retrained_weights_apart(tmp_path):
    for name, payload in (("a", b"\x00" * 3000), ("b", b"\x00" * 2999 + b"\x01")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / name / "model.safetensors").write_bytes(payload)
    a, b = model_fingerprint(tmp_path / "a"), model_fingerprint(tmp_path / "b")
    assert a["fingerprint"] != b["fingerprint"] and a == model_fingerprint(tmp_path / "a")


# --- the command line -------------------------------------------------------------------------------------------


def test_profile_follows_the_default_sampler_and_prints_the_matched_path(tmp_path, capsys):
    save = tmp_path / "p.json"
    assert main(["profile", "--checkpoint", CKPT, "--task", "countdown", "--samples", "8", "--steps", "6", "--json",
                 "--save", str(save)]) == 0
    out = json.loads(capsys.readouterr().out)
    prof = out["profile"]
    assert prof["order"] == "confidence" and prof["statistic"] == "total" and prof["meta"]["remasking"] == "low_confidence"
    assert prof["meta"]["temperature"] == 0.0 and prof["model"]["fingerprint"] == model_fingerprint(CKPT)["fingerprint"]
    assert out["matched"] == "--sampler fixed --remasking low_confidence"
    spec = out["schedules"][0]["table"]
    assert main(["eval", "--task", "countdown", "--checkpoint", CKPT, "--schedule", spec, "-N", "6", "--limit", "4",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 6
    assert main(["profile", "--load", str(save), "--model", CKPT, "--steps", "4", "--json"]) == 0  # same model: fine
    capsys.readouterr()


def test_profile_with_blocks_gives_a_blocks_spec_that_eval_runs(capsys):
    assert main(["profile", "--checkpoint", CKPT, "--task", "countdown", "--samples", "4", "--steps", "6",
                 "--block-length", "12", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["block_length"] == 12 and out["matched"].endswith("--block-length 12")
    s = out["schedules"][0]
    assert s["blocks"] == "each" and len(s["block_counts"]) == 2 and min(s["counts"]) >= 1
    assert main(["eval", "--task", "countdown", "--checkpoint", CKPT, "--schedule", s["table"], "-N", "6",
                 "--block-length", "12", "--limit", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 6
    assert main(["eval", "--task", "countdown", "--checkpoint", CKPT, "--schedule", s["table"], "-N", "6", "--limit",
                 "4"]) == 2  # a schedule per block, and no blocks: one line
    assert "give block_length so that the window has 2 blocks" in capsys.readouterr().err


@pytest.mark.parametrize("flags,order,remasking", [
    (["--remasking", "random"], "random", "random"),
    (["--sampler", "ancestral"], "random", "random"),
    (["--order", "random"], "random", "random"),
    (["--remasking", "margin"], "confidence", "margin"),
])
def test_the_order_follows_the_sampler_options(capsys, flags, order, remasking):
    assert main(["profile", "--checkpoint", CKPT, "--task", "countdown", "--samples", "2", "--json", *flags]) == 0
    prof = json.loads(capsys.readouterr().out)["profile"]
    assert prof["order"] == order and prof["meta"]["remasking"] == remasking


def _other_model_profile(d: Path) -> str:
    path = d / "other.json"
    InformationProfile(length=24, entropy=tuple(np.linspace(1, 0, 24)), stderr=(0.1,) * 24, samples=2,
                       order="confidence", calls=24, model={"name": "sudoku", "fingerprint": "0123456789abcdef"}).save(path)
    return str(path)


@pytest.mark.parametrize("extra,needle", [
    (["--task", "countdown", "--length", "100000"], "--length"),
    (["--task", "countdown", "--samples", "2000000"], "--samples"),
    (["--task", "countdown", "--block-length", "5"], "--block-length 5 does not divide the window of 24"),
    (["--task", "countdown", "--block-length", "12", "--steps", "3"], "not divisible by the 2 blocks"),
    (["--task", "countdown", "--steps", "25"], "exceeds the window"),
    (["--task", "countdown", "--order", "random", "--remasking", "low_confidence"], "--order random contradicts"),
    (["--task", "countdown", "--sampler", "ancestral", "--order", "confidence"], "contradicts --sampler ancestral"),
    (["--task", "countdown", "--sampler", "threshold"], "takes no schedule"),
    (["--task", "countdown", "--sampler", "ancestral", "--remasking", "random"], "does not apply to the ancestral"),
    (["--task", "countdown", "--blocks", "each"], "--blocks applies to a profile with blocks"),
    (["--load", "{other}", "--steps", "4"], "was made on another model: sudoku"),
    (["--load", "{other}", "--remasking", "random"], "does not apply to a profile loaded"),
])
def test_profile_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, needle):
    other = _other_model_profile(tmp_path)
    out = tmp_path / "out.json"
    argv = ["profile", "--checkpoint", CKPT, "--save", str(out), *[e.format(other=other) for e in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert not out.exists()


def test_loading_without_a_model_or_either_is_refused(tmp_path, capsys):
    assert main(["profile", "--steps", "2"]) == 2
    assert "give a model" in capsys.readouterr().err
    assert main(["profile", "--load", _other_model_profile(tmp_path), "--steps", "4", "--json"]) == 0  # no model: no check
    assert math.isfinite(json.loads(capsys.readouterr().out)["schedules"][0]["bound"])


def test_given_completions_need_the_random_order(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "3 7 12 25:37", "completion": "25+12"}) + "\n")
    assert main(["profile", "--model", CKPT, "--prompts", str(prompts), "--samples", "2", "--save",
                 str(tmp_path / "o.json")]) == 2
    assert "give --order random" in capsys.readouterr().err and not (tmp_path / "o.json").exists()


def _scheduled_samplers() -> list[str]:
    from mdm_energy.registry import sampler_names, sampler_spec

    return [n for n in sampler_names() if "schedule" in sampler_spec(n).params]


@pytest.mark.parametrize("name", _scheduled_samplers())
def test_every_scheduled_sampler_takes_a_blocks_schedule(name):
    """A blocks: spec of one schedule repeated is that schedule (same tokens, same calls, per-row seeds); one of
    different schedules runs through every block."""
    from mdm_energy.sampling import make_sampler

    den = ExactTorchDenoiser(ExactDenoiser(load_distribution("markov:6,3,2")))

    def run(spec):
        return make_sampler(name, schedule=spec, steps=4, block_length=3)(den, None, 6, batch_size=3, seeds=[1, 2, 3])

    a, b = run("blocks:sin2;sin2"), run("sin2")
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.nfe, b.nfe)
    c = run("blocks:table:0.75;table:0.25")
    assert not (c.tokens[:, c.gen_start:] == den.mask_id).any()
