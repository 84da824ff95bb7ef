"""The pc-sampler (PC-Sampler: position-aware, calibrated confidence) against a reference written here from the
authors' generate function, token for token and call for call, on tiny seeded models; its reduction to the
fixed sampler; its schedule-driven counts; its token priors; and what it refuses."""

from __future__ import annotations

import json
import re
import math
from pathlib import Path

from functools import partial

import pytest
import torch
from _references import llada_candidates, llada_counts
from _tiny_mdm import tiny_transformer as _tiny_transformer

from mdm_energy.cli import main
from mdm_energy.models import as_denoiser
from mdm_energy.sampling import CallableDenoiser, make_sampler
from mdm_energy.sampling.rng import RowRNG
from mdm_energy.schedules import Table, parse_schedule
from mdm_energy.token_prior import count_tokens, read_token_counts

V, MASK, EOS, PAD = 24, 23, 22, 0
CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "countdown"
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8], [9]]  # different lengths: the batch is left-padded


#: Our transformer, tiny and random, in float64, with enlarged weights (scale 8: sharp, context-dependent predictions).
tiny_transformer = partial(_tiny_transformer, vocab=V, mask_id=MASK, eos_id=EOS, pad_id=PAD)


def write_prior(path: Path, seed: int, vocab: int = V, eos: int = EOS) -> Path:
    """A count table in the authors' format: random counts, one token with count 0, some tokens left out (they get
    one count of ``num_token``)."""
    g = torch.Generator().manual_seed(seed)
    counts = {str(t): int(c) for t, c in enumerate(torch.randint(1, 400, (vocab,), generator=g).tolist()) if t % 5 != 3}
    counts["4"] = 0
    counts[str(eos)] = 5000  # a very frequent end token: little information
    path.write_text(json.dumps({"num_token": sum(counts.values()) + 37, "p_baseline_dict": counts}))
    return path


# --- the reference -------------------------------------------------------------------------------------------


def background(prior, vocab: int = V):
    """The authors' background frequencies from a count table (absent ids: 1 / num_token); None for 'off'."""
    if prior == "off":
        return None
    if prior == "uniform":
        return [1.0 / vocab] * vocab
    data = json.loads(Path(prior).read_text())
    n = data["num_token"]
    table = {int(k): v for k, v in data["p_baseline_dict"].items()}
    return [table.get(v, 1) / n for v in range(vocab)]


@torch.no_grad()
def pc_reference(model, prompt, G, steps, B, lam, alpha, prior, *, pad=0, temperature=0.0, seed=0, cfg_scale=0.0,
                 counts=None, stop_at_eos=False):
    """PC-Sampler for one (left-padded) row, from the authors' generate function as a plain loop: per block, per
    step, one model call; candidates x0 (argmax, or Gumbel-max from the row's stream), p = the untempered softmax
    probability of x0; at each masked position t of the block [s, s+B):
        score = exp(-lam * (t - s)) * min(-p * log(f[x0] + 1e-9), alpha)      (f = None: score = exp(...) * p)
    and the n_i highest are committed (ties: the lower position). n_i: LLaDA's counts of the block's masked count
    over steps // blocks (or ``counts``). As the package does: the mask token is never proposed and left out of the
    softmax, p is rounded to 12 decimals. With ``stop_at_eos`` a row whose window holds an end token with nothing
    masked before it stops (what is masked after it becomes EOS). ``model(tokens, attention) -> (S, V)``.
    Returns the window, the model calls and how often a clip / a zero score / a position weight acted."""
    P = pad + len(prompt)
    x = [PAD] * pad + list(prompt) + [MASK] * G
    am = [False] * pad + [True] * (P - pad + G)
    f = background(prior)
    rng = RowRNG(None, 1, torch.device("cpu"), seeds=[seed])
    stats = {"calls": 0, "clipped": 0}
    per_block = steps // (G // B)
    for b in range(G // B):
        s = P + b * B
        n = counts if counts is not None else llada_counts(sum(x[t] == MASK for t in range(s, s + B)), per_block)
        for i in range(len(n)):
            logits = model(x, am).clone()
            if cfg_scale > 0:
                uncond = [MASK if pad <= t < P else tok for t, tok in enumerate(x)]
                u = model(uncond, am)
                logits = u + (cfg_scale + 1.0) * (logits - u)
            stats["calls"] += 1
            masked = [t for t in range(s, s + B) if x[t] == MASK]
            if n[i] == 0 or not masked:
                continue
            logits[:, MASK] = -math.inf
            prob = torch.softmax(logits.double(), -1)
            cand, conf = llada_candidates(logits, masked, temperature, rng, prob)
            score = {}
            for t in masked:
                p = conf[t]
                if f is None:
                    c = p
                else:
                    c = p * -math.log(f[cand[t]] + 1e-9)
                    if c > alpha:
                        c, stats["clipped"] = alpha, stats["clipped"] + 1
                score[t] = math.exp(-lam * (t - s)) * c
            for t in sorted(masked, key=lambda t: (-score[t], t))[:n[i]]:
                x[t] = cand[t]
            if stop_at_eos:
                w = x[P:]
                if EOS in w and MASK not in w[:w.index(EOS)]:
                    return [EOS if tok == MASK else tok for tok in w], stats
    return x[P:], stats


def our_forward(model):
    return lambda tokens, am: model(torch.tensor([tokens]), torch.tensor([am]))[0]


# --- parity ----------------------------------------------------------------------------------------------------

CASES = [  # (seed, G, steps, block, lambda, alpha, prior, temperature, cfg)
    (0, 16, 16, 16, 0.25, 10.0, "file", 0.0, 0.0),  # the authors' defaults, one block, one token per step
    (1, 16, 16, 8, 0.25, 10.0, "file", 0.0, 0.0),  # two blocks
    (2, 24, 12, 8, 1.0, 1.0, "file", 0.0, 0.0),  # their countdown lambda, a low clip, 4 per step
    (3, 16, 8, 16, 0.05, 1.0, "file", 0.0, 0.0),
    (4, 16, 16, 8, 0.25, 10.0, "uniform", 0.0, 0.0),  # no table: f = 1/V
    (5, 16, 8, 8, 0.5, 1.0, "uniform", 0.0, 0.0),
    (6, 16, 16, 8, 0.25, 10.0, "off", 0.0, 0.0),  # no calibration, position weight only
    (7, 16, 16, 8, 0.0, 3.0, "file", 0.0, 0.0),  # calibration only
    (8, 16, 8, 8, 0.25, 2.0, "file", 0.8, 0.0),  # temperature: Gumbel draws from each row's stream
    (9, 16, 8, 8, 0.25, 2.0, "file", 0.0, 0.5),  # guidance
]


def _prior(kind, tmp_path, seed):
    return str(write_prior(tmp_path / f"prior{seed}.json", seed)) if kind == "file" else kind


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_our_transformer_matches_the_reference(case, tmp_path):
    seed, G, steps, B, lam, alpha, kind, temp, cfg = case
    prior = _prior(kind, tmp_path, seed)
    model = tiny_transformer(seed)
    seeds = [11, 12, 13]
    sampler = make_sampler("pc-sampler", steps=steps, block_length=B, position_decay=lam, calibration_clip=alpha,
                           token_prior=prior, temperature=temp, cfg_scale=cfg)
    out = sampler(as_denoiser(model), PROMPTS, G, pad_id=PAD, seeds=seeds)
    P = max(map(len, PROMPTS))
    for row, prompt in enumerate(PROMPTS):
        want, stats = pc_reference(our_forward(model), prompt, G, steps, B, lam, alpha, prior, pad=P - len(prompt),
                                   temperature=temp, seed=seeds[row], cfg_scale=cfg)
        assert out.generated[row].tolist() == want
        assert int(out.nfe[row]) == stats["calls"] == steps
    assert out.calls == steps  # one batched call per step


@pytest.mark.parametrize("seed,block,lam", [(0, 16, 0.25), (1, 8, 1.0)])
def test_a_hugging_face_model_matches_the_reference(seed, block, lam, tmp_path):
    """A tiny Hugging Face masked LM behind HFDenoiser, left-padded batch, the authors' format of prior."""
    pytest.importorskip("transformers")
    from _tiny_mdm import TinyMDM, TinyMDMConfig, scale_weights

    from mdm_energy.integrations.huggingface import HFDenoiser

    torch.manual_seed(seed)
    model = scale_weights(TinyMDM(TinyMDMConfig(vocab_size=V, mask_token_id=MASK, eos_token_id=EOS)).double().eval(), 3.0)
    prior = _prior("file", tmp_path, seed)

    def forward(tokens, am):
        return model(input_ids=torch.tensor([tokens]), attention_mask=torch.tensor([am])).logits[0]

    out = make_sampler("pc-sampler", steps=16, block_length=block, position_decay=lam, token_prior=prior)(
        HFDenoiser(model, mask_id=MASK), PROMPTS, 16, pad_id=PAD)
    P = max(map(len, PROMPTS))
    for row, prompt in enumerate(PROMPTS):
        want, stats = pc_reference(forward, prompt, 16, 16, block, lam, 10.0, prior, pad=P - len(prompt))
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == stats["calls"]


def test_the_cases_are_not_vacuous(tmp_path):
    """The clip acts, and position weight and calibration each change what is decoded: the default output is
    neither the fixed sampler's nor that of the rule without either part."""
    P = max(map(len, PROMPTS))
    for seed, G, steps, B, lam, alpha, kind, temp, cfg in CASES:
        model, prior = tiny_transformer(seed), _prior(kind, tmp_path, seed)
        clipped = sum(pc_reference(our_forward(model), p, G, steps, B, lam, alpha, prior, pad=P - len(p),
                                   temperature=temp, seed=11 + row, cfg_scale=cfg)[1]["clipped"]
                      for row, p in enumerate(PROMPTS))
        assert (clipped > 0) == (kind != "off" and alpha < 10), (seed, clipped)  # alpha 10 never acts here
    den = as_denoiser(tiny_transformer(2))
    prior = _prior("file", tmp_path, 2)
    run = dict(steps=16, block_length=16)
    outs = {}
    for name, opts in {"fixed": None, "pc": {}, "no-position": {"position_decay": 0.0},
                       "no-calibration": {"token_prior": "off"}}.items():
        s = make_sampler("fixed", **run) if opts is None else make_sampler("pc-sampler", **{"token_prior": prior, **run, **opts})
        outs[name] = s(den, PROMPTS, 16, pad_id=PAD).generated.tolist()
    assert len({json.dumps(v) for v in outs.values()}) == 4, outs


@pytest.mark.parametrize("seed,lam", [(3, 0.0), (9, 0.25)])
def test_a_row_that_finishes_early_stops_as_in_the_reference(seed, lam):
    """stop_at_eos: rows that commit an end token with nothing masked before it stop (fewer calls, EOS after it),
    exactly where the reference with the same early stop stops; the others are the plain run's."""
    model = tiny_transformer(seed)
    den = as_denoiser(model)
    prior = "uniform"
    run = dict(steps=16, block_length=4, position_decay=lam, token_prior=prior)
    plain = make_sampler("pc-sampler", **run)(den, PROMPTS, 16, pad_id=PAD)
    out = make_sampler("pc-sampler", **run, stop_at_eos=True)(den, PROMPTS, 16, pad_id=PAD)
    P = max(map(len, PROMPTS))
    for row, prompt in enumerate(PROMPTS):
        want, stats = pc_reference(our_forward(model), prompt, 16, 16, 4, lam, 10.0, prior, pad=P - len(prompt),
                                   stop_at_eos=True)
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == stats["calls"]
    assert not bool(out.stopped.all()) and bool((out.nfe < plain.nfe).any())  # some row stopped before the end
    for row in range(len(PROMPTS)):
        if not out.stopped[row]:
            assert out.generated[row].tolist() == plain.generated[row].tolist() and out.nfe[row] == plain.nfe[row]


def test_ties_go_to_the_lower_position():
    """A model that predicts every position alike: with no position weight all scores tie and the row is filled left
    to right, as with any weight > 0; a clip below every score ties them too."""
    logits = torch.zeros(V)
    logits[5], logits[6] = 3.0, 1.0

    def fn(tokens):
        return logits.expand(*tokens.shape, V).clone()

    den = CallableDenoiser(fn, mask_id=MASK, vocab_size=V, eos_id=EOS)
    for opts in ({"position_decay": 0.0}, {"position_decay": 0.0, "calibration_clip": 0.01}, {"position_decay": 2.0}):
        seen = []
        make_sampler("pc-sampler", steps=8, **opts)(den, [[1, 2]], 8, callback=lambda c, x, com: seen.append(
            com[0].nonzero().flatten().tolist()))
        assert seen == [[2 + k] for k in range(8)]


@pytest.mark.parametrize("prior", ["off", "uniform"])
def test_end_token_candidates_stay_last_tied_whatever_their_weight(prior):
    """confidence_eos_eot_inf: when only end tokens are proposed they tie at the last resort and the row is filled
    left to right, even with a strong position weight (the weight and calibration of a last-resort score would
    otherwise order them, right to left here)."""
    logits = torch.zeros(V)
    logits[EOS], logits[6] = 3.0, 1.0

    def fn(tokens):
        return logits.expand(*tokens.shape, V).clone()

    den = CallableDenoiser(fn, mask_id=MASK, vocab_size=V, eos_id=EOS)
    seen = []
    make_sampler("pc-sampler", steps=8, position_decay=2.0, token_prior=prior, confidence_eos_eot_inf=True)(
        den, [[1, 2]], 8, callback=lambda c, x, com: seen.append(com[0].nonzero().flatten().tolist()))
    assert seen == [[2 + k] for k in range(8)]


@pytest.mark.parametrize("seed,block,steps,temp,cfg,eot", [
    (0, None, 16, 0.0, 0.0, False), (1, 8, 16, 0.0, 0.0, False), (2, 4, 8, 0.9, 0.0, False),
    (3, 8, 8, 0.0, 0.7, False), (4, 8, 16, 0.0, 0.0, True), (5, 16, 5, 0.5, 0.0, True),
])
def test_no_position_weight_and_no_calibration_is_the_fixed_sampler(seed, block, steps, temp, cfg, eot):
    """position_decay 0 and token_prior off: fixed (low_confidence) token for token, call for call."""
    den = as_denoiser(tiny_transformer(seed))
    run = dict(steps=steps, block_length=block, temperature=temp, cfg_scale=cfg, confidence_eos_eot_inf=eot)
    want = make_sampler("fixed", remasking="low_confidence", **run)(den, PROMPTS, 16, pad_id=PAD, seeds=[3, 4, 5])
    got = make_sampler("pc-sampler", position_decay=0.0, token_prior="off", **run)(den, PROMPTS, 16, pad_id=PAD,
                                                                                   seeds=[3, 4, 5])
    assert torch.equal(got.tokens, want.tokens) and torch.equal(got.nfe, want.nfe) and got.calls == want.calls


def test_the_schedule_drives_the_counts(tmp_path):
    """Each call commits the schedule's count of one block's steps (docs/design.md §2) in every block; with steps
    not dividing the block, a table schedule of LLaDA's front-loaded counts reproduces the reference exactly."""
    model = tiny_transformer(6)
    den = as_denoiser(model)
    prior = _prior("file", tmp_path, 6)
    for spec, steps, block in [("beta:0.9,0.3", 12, 8), ("sin2", 6, 12), ("linear", 8, 12)]:
        seen = []
        make_sampler("pc-sampler", schedule=spec, steps=steps, block_length=block, token_prior=prior)(
            den, PROMPTS, 24, pad_id=PAD, callback=lambda c, x, com: seen.append(int(com[0].sum())))
        per_block = parse_schedule(spec).counts(block, steps // (24 // block)).tolist()
        assert seen == per_block * (24 // block)
    counts = llada_counts(10, 4)  # [3, 3, 2, 2]; our linear gives [3, 2, 3, 2] here
    assert parse_schedule("linear").counts(10, 4).tolist() != counts
    table = Table.from_counts(counts)
    out = make_sampler("pc-sampler", schedule=table.spec, steps=8, block_length=10, token_prior=prior)(
        den, PROMPTS, 20, pad_id=PAD)
    P = max(map(len, PROMPTS))
    for row, prompt in enumerate(PROMPTS):
        want, stats = pc_reference(our_forward(model), prompt, 20, 8, 10, 0.25, 10.0, prior, pad=P - len(prompt))
        assert out.generated[row].tolist() == want and int(out.nfe[row]) == stats["calls"] == 8


def test_an_exact_cache_is_token_identical(tmp_path):
    """A prefix or dual cache refreshed at every call is exact: the tokens and calls of the run without one."""
    den = as_denoiser(tiny_transformer(7))
    run = dict(steps=8, block_length=4, token_prior=_prior("file", tmp_path, 7))
    base = make_sampler("pc-sampler", **run)(den, PROMPTS, 16, pad_id=PAD)
    for cache in ("prefix", "dual"):
        out = make_sampler("pc-sampler", cache=cache, cache_refresh=1, **run)(den, PROMPTS, 16, pad_id=PAD)
        assert torch.equal(out.tokens, base.tokens) and torch.equal(out.nfe, base.nfe)
    out = make_sampler("pc-sampler", cache="dual", **run)(den, PROMPTS, 16, pad_id=PAD)  # approximate, but complete
    assert not bool((out.generated == MASK).any())


# --- token priors --------------------------------------------------------------------------------------------------


def test_every_prior_format_gives_the_same_frequencies(tmp_path):
    counts = {0: 3.0, 5: 10.0, 7: 0.0, 9: 2.0}
    files = {
        "authors.json": json.dumps({"num_token": 15, "p_baseline_dict": {str(k): v for k, v in counts.items()}}),
        "script.json": json.dumps({"num_token": 15, "token_frequency_dict": {str(k): v for k, v in counts.items()}}),
        "plain.json": json.dumps({str(k): v for k, v in counts.items()}),
        "list.json": json.dumps([3, 0, 0, 0, 0, 10, 0, 0, 0, 2]),
        "lines.txt": "# id count\n0 3\n5 10\n\n7 0\n9 2\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        table = read_token_counts(str(tmp_path / name))
        assert table.total == 15
        assert [table.frequency(t) for t in (0, 5, 9)] == [3 / 15, 10 / 15, 2 / 15]
        missing = 0.0 if name == "list.json" else 1 / 15  # the list names every id up to 9, with its count
        assert table.frequency(1) == pytest.approx(missing) and table.frequency(7) == 0.0
        assert table.frequency(20) == 1 / 15  # an id the table lacks: one count


def test_counts_of_a_corpus_round_trip_through_a_file(tmp_path):
    table = count_tokens([[3, 5, 5], [5, 9], []])
    assert (table.ids, table.counts, table.total) == ((3, 5, 9), (1.0, 3.0, 1.0), 5.0)
    table.write(tmp_path / "counts.json")
    assert json.loads((tmp_path / "counts.json").read_text()) == {"num_token": 5,
                                                                   "p_baseline_dict": {"3": 1, "5": 3, "9": 1}}
    assert read_token_counts(str(tmp_path / "counts.json")) == table
    assert make_sampler("pc-sampler", token_prior=str(tmp_path / "counts.json")).token_prior.endswith("counts.json")


@pytest.mark.parametrize("text,needle", [
    ("{}", "the table is empty"),
    ('{"a": 3}', "token ids must be integers >= 0, got 'a'"),
    ('{"3": -1}', "token 3 has count -1"),
    ('{"num_token": 0, "p_baseline_dict": {"1": 2}}', "num_token must be a number > 0, got 0"),
    ('{"1": 0}', "the counts sum to 0"),
    ("1 2\n3\n", "line 2 is not 'id count'"),
    ("1 x\n", "line 1: the count 'x' is not a number"),
    ('"text"', "a JSON prior must be an object"),
    ("{not json", "is not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ('[1, 2,\n', "is not valid JSON (Expecting value at line 2, column 1)"),
])
def test_bad_prior_files_are_refused_in_one_line(tmp_path, text, needle):
    path = tmp_path / "prior.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"^the token_prior file '{re.escape(str(path))}': .*{re.escape(needle[:20])}") as info:
        make_sampler("pc-sampler", token_prior=str(path))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_an_id_outside_the_vocabulary_is_refused_when_the_run_starts(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(json.dumps({"3": 4, str(V + 5): 1}))
    sampler = make_sampler("pc-sampler", steps=8, token_prior=str(path))
    with pytest.raises(ValueError, match=rf"token id {V + 5} is outside the vocabulary \[0, {V}\)"):
        sampler(as_denoiser(tiny_transformer(0)), [[1]], 8)


# --- options and what the sampler refuses ------------------------------------------------------------------------


def test_the_defaults_are_the_authors():
    s = make_sampler("pc-sampler")
    assert (s.position_decay, s.calibration_clip, s.token_prior, s.temperature) == (0.25, 10.0, "uniform", 0.0)
    assert str(s.schedule.spec) == "linear"
    from mdm_energy.registry import sampler_spec

    assert sampler_spec("pc-sampler").params["position_decay"].search is not None


@pytest.mark.parametrize("options,needle", [
    ({"position_decay": -0.5}, r"position_decay must be a finite number >= 0, got -0.5"),
    ({"position_decay": float("inf")}, r"position_decay must be a finite number"),
    ({"calibration_clip": 0}, r"calibration_clip must be a number > 0, got 0"),
    ({"token_prior": 3}, r"token_prior must be 'uniform', 'off' or the path of a file of token counts, got 3"),
    ({"token_prior": "no-such-prior.json"}, r"token_prior 'no-such-prior.json' does not exist"),
    ({"remasking": "margin"}, "the pc-sampler sampler does not take 'remasking'"),
    ({"threshold": 0.9}, "the pc-sampler sampler does not take 'threshold'"),
    ({"cache": "prefix"}, "cache 'prefix' caches block by block: it needs a block_length"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler("pc-sampler", **options)


def test_the_commands(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prior = write_prior(tmp_path / "prior.json", 0, vocab=21, eos=1)
    argv = ["generate", "--model", str(CHECKPOINT), "--prompt", "3 7 12 25:37", "--sampler", "pc-sampler", "-N", "24",
            "--position-decay", "1", "--token-prior", str(prior), "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert obj["nfe"] == 24 and obj["sampler"].startswith("PCSampler(schedule='linear', steps=24, position_decay=1.0")
    base = ["eval", "--task", "countdown", "--checkpoint", str(CHECKPOINT), "--limit", "2", "--sampler", "pc-sampler"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    for extra, needle in [
        (["--position-decay", "-1"], "position-decay must be a finite number >= 0, got '-1'"),
        (["--calibration-clip", "0"], "calibration-clip must be a number > 0, got '0'"),
        (["--token-prior", "nowhere.json"], "token_prior 'nowhere.json' does not exist"),
        (["--token-prior", str(bad)], "token ids must be integers >= 0, got 'x'"),
        (["--remasking", "margin"], "--remasking does not apply to the pc-sampler sampler"),
        (["--bad-option", "1"], "unrecognized arguments: --bad-option 1"),
    ]:
        assert main(base + extra + ["--json"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and needle in err and err.strip().count("\n") == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "prior.json"]  # nothing written


def test_tune_pareto_searches_the_position_decay(tmp_path, capsys):
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "pc-sampler", "--steps-values", "8,24", "--strategy", "tpe", "--budget", "2",
            "--storage", f"sqlite:///{tmp_path}/t.db", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 2 and out["front"]
    assert all(0.0 <= t["options"]["position_decay"] <= 1.0 and "--position-decay" in t["command"]
               for t in out["front"])


def test_tune_pareto_holds_the_token_prior_and_clip_fixed(tmp_path, capsys, monkeypatch):
    """--token-prior and --calibration-clip are not searched: every pc-sampler trial runs with them, every front
    point's command carries them, and the baselines (samplers that do not take them) are run without them."""
    import mdm_energy.sampling as sampling

    built, make = [], sampling.make_sampler
    monkeypatch.setattr(sampling, "make_sampler", lambda name, **kw: built.append((name, kw)) or make(name, **kw))
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", str(CHECKPOINT),
            "--limit", "8", "--sampler", "pc-sampler", "--steps-values", "8", "--token-prior", "off",
            "--calibration-clip", "3", "--strategy", "tpe", "--budget", "2", "--storage", f"sqlite:///{tmp_path}/t.db",
            "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    runs = [kw for name, kw in built if name == "pc-sampler"]  # the one-item check first, then the trials
    assert len([kw for kw in runs if "position_decay" in kw]) == 2 and len(runs) == 3
    assert all(kw["token_prior"] == "off" and kw["calibration_clip"] == 3.0 for kw in runs)
    assert all("token_prior" not in kw for name, kw in built if name != "pc-sampler")
    assert out["front"] and all(t["options"]["token_prior"] == "off" and "--calibration-clip 3 --token-prior off"
                                in t["command"] for t in out["front"])
    assert all("--token-prior" not in b["command"] for b in out["baselines"])
