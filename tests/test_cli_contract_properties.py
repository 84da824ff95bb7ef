"""Property-based tests of the command-line contract, for every subcommand (Hypothesis).

Whatever the spec strings, numbers and input files: exit 0 with one JSON object under ``--json``, or
exit 2 with one line that starts ``mdm-energy: error:`` and nothing written — never a traceback, never
exit status 1, never a new file after a failure. Each example is a valid command with, half of the time,
one of its values replaced by a bad one (so both outcomes are exercised); a valid command must succeed.
A bounded number of examples per command keeps this to seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mdm_energy.cli import main

CHECKPOINT = str(Path(__file__).resolve().parents[1] / "checkpoints" / "countdown")


def bounded(n: int):
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


# --- values ----------------------------------------------------------------------------------------------

HUGE = st.sampled_from(["1000000000", "10000000000000000000000", "9" * 40])
BAD_INT = st.one_of(st.integers(-3, 0).map(str), HUGE, st.sampled_from(["", " ", "abc", "1_0", "0x10", "2.5", "nan", "inf", "1e3"]))
BAD_FLOAT = st.sampled_from(["-1", "", "1e400", "1_0", "x", "nan", "inf", "-inf", "0x1", "--1"])
NUMBER = st.floats(min_value=0.05, max_value=2.5, allow_nan=False).map(lambda v: f"{v:.3g}")
BAD_NUMBER = st.sampled_from(["0", "-1", "nan", "inf", "1e308", "1_0", "x", ""])
SPEC = st.one_of(st.sampled_from(["linear", "sin2", "sine", "maskgit", "beta:0.9,0.3", "poly:2", "table:0.2,0.5,0.9"]),
                 st.builds(lambda a, b: f"beta:{a},{b}", NUMBER, NUMBER),
                 st.builds(lambda k: f"poly:{k}", NUMBER))
BAD_SPEC = st.one_of(st.sampled_from(["cosine", "", "beta", "linear:1", "table:0.5,0.2", "beta:1e308,1e308", "table:2"]),
                     st.builds(lambda a, b: f"beta:{a},{b}", BAD_NUMBER, NUMBER),
                     st.text(alphabet="betaplinoy:,.0123456789-_ e", max_size=12).filter(lambda t: t.strip() not in (
                         "linear", "sin2", "sine", "maskgit") and not t.startswith("-")))
DIST = st.sampled_from(["toy1", "toy2", "markov:4,2,0", "potts:3,3,1", "templates:4,2,5"])
BAD_DIST = st.sampled_from(["markov:4,2", "toy3", "markov:0,2,0", "potts:3,1,0", "markov:30,9,0", "templates:3,2,-1",
                            "markov:1_0,2,0", "", "x.npy"])
BAD_SAMPLER = st.sampled_from(["confidence", "gibbs", "entropy", ""])
BAD_RULE = st.sampled_from(["top", "", "confidence"])


def argv_of(draw, fields: "list[tuple[list[str], st.SearchStrategy, st.SearchStrategy | None]]") -> "tuple[list[str], bool]":
    """``fields`` as (flag words, valid values, bad values); at most one field (half of the time) gets a bad
    value. A value ``None`` leaves the field out, ``True`` gives the flag words alone. Returns the argument
    list and whether every value is valid."""
    breakable = [i for i, f in enumerate(fields) if f[2] is not None]
    bad = draw(st.one_of(st.none(), st.sampled_from(breakable))) if breakable else None
    out: list[str] = []
    for i, (words, good, wrong) in enumerate(fields):
        value = draw(wrong if i == bad else good)
        if value is not None:
            out += words + ([] if value is True else [value])
    return out, bad is None


# --- the contract ------------------------------------------------------------------------------------------


def check_contract(capsys, folder: Path, argv: list[str], valid: bool) -> int:
    before = sorted(p.name for p in folder.iterdir())
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    assert code in (0, 2), f"exit {code}: {err}"
    if valid:
        assert code == 0, f"a valid command was refused: {argv}\n{err}"
    if code == 2:
        assert out == "", out
        assert err.count("\n") == 1 and err.startswith("mdm-energy: error: "), err
        assert sorted(p.name for p in folder.iterdir()) == before, "a refused command left files behind"
    elif "--json" in argv:
        assert out.count("\n") == 1, out[:300]
        assert isinstance(json.loads(out), dict)
    return code


@pytest.fixture
def workdir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("contract")
    monkeypatch.chdir(folder)
    return folder


def fresh(folder: Path) -> Path:
    """An empty sub-folder per example, made the working folder (Hypothesis reuses the fixture)."""
    sub = folder / f"case{len(list(folder.iterdir()))}"
    sub.mkdir()
    os.chdir(sub)
    return sub


STEPS = st.integers(1, 6).map(str)


@bounded(30)
@given(data=st.data())
def test_schedule(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [
        (["schedule"], SPEC, BAD_SPEC), (["-N"], STEPS, BAD_INT), (["-L"], st.integers(1, 300).map(str), BAD_INT),
        (["--plot"], st.sampled_from([None, "s.png", "s.svg"]), st.sampled_from(["s.jpg", "missing/s.png", "."])),
    ])
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(25)
@given(data=st.data())
def test_energy(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [
        (["energy"], SPEC, BAD_SPEC), (["--gamma"], SPEC, BAD_SPEC), (["--path"], st.sampled_from(["mdm", "uniform"]), st.just("heat")),
        (["--brute-force", "-n"], st.sampled_from(["1", "2", "3"]), st.sampled_from(["0", "40", "x"])),
        (["-d"], st.sampled_from(["2", "3"]), st.sampled_from(["1", "50", "-2"])),
    ])
    # alpha and gamma may be mismatched without being invalid: J is then larger, or inf (JSON null)
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


EXACT_SAMPLER = st.sampled_from(["fixed", "ancestral", "euler"])


@bounded(30)
@given(data=st.data())
def test_exact(capsys, workdir, data):
    sampler = data.draw(EXACT_SAMPLER)
    fields = [(["exact", "--dist"], DIST, BAD_DIST), (["--sampler"], st.just(sampler), st.one_of(BAD_SAMPLER, st.just("threshold"))),
              (["--schedule"], SPEC, BAD_SPEC), (["-N"], STEPS, BAD_INT), (["--law"], st.sampled_from([None, True]), None)]
    if sampler == "fixed":
        fields.append((["--remasking"], st.sampled_from(["random", "low_confidence", "margin", "entropy"]), BAD_RULE))
    argv, valid = argv_of(data.draw, fields)
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(25)
@given(weights=hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128, np.uint8]),
                          st.sampled_from([(2, 2), (3, 3, 3), (2, 3), (1, 1), (), (2,), (2, 2, 2, 2)])),
       sampler=EXACT_SAMPLER)
def test_exact_on_generated_npy_files(capsys, workdir, weights, sampler):
    sub = fresh(workdir)
    np.save(sub / "w.npy", weights)
    argv = ["exact", "--dist", "w.npy", "--sampler", sampler, "--schedule", "linear", "-N", "2", "--json"]
    w = weights.astype(np.complex128)
    valid = (weights.ndim >= 1 and len(set(weights.shape)) == 1 and weights.shape[0] >= 2 and not np.iscomplexobj(weights)
             and np.all(np.isfinite(w)) and np.all(w.real >= 0) and w.real.sum() > 0)
    check_contract(capsys, sub, argv, bool(valid))


@bounded(20)
@given(data=st.data())
def test_exact_grid(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [
        (["exact-grid", "--dist"], DIST, BAD_DIST), (["--sampler"], st.sampled_from(["ancestral", "euler"]), BAD_SAMPLER),
        (["-N"], st.integers(1, 3).map(str), BAD_INT), (["--a-values"], st.lists(NUMBER, min_size=1, max_size=3).map(",".join),
                                                       st.lists(BAD_NUMBER, min_size=1, max_size=2).map(",".join)),
        (["--b-values"], NUMBER, BAD_NUMBER), (["--workers"], st.just("1"), st.sampled_from(["0", "100000", "x"])),
    ])
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(12)
@given(data=st.data())
def test_toy(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [(["toy", "-N"], st.sampled_from(["1", "2", "3"]), st.sampled_from(["0", "1000000000", "x"])),
                                      (["--sampler"], st.just("fixed"), st.sampled_from(["threshold", "gibbs"]))])
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(30)
@given(data=st.data())
def test_sample_exact(capsys, workdir, data):
    sampler = data.draw(st.sampled_from(["fixed", "ancestral", "euler", "threshold", "entropy-bounded"]))
    fields = [(["sample-exact", "--dist"], DIST, BAD_DIST), (["--sampler"], st.just(sampler), BAD_SAMPLER),
              (["--samples"], st.integers(1, 50).map(str), BAD_INT), (["--seed"], st.integers(0, 99).map(str), BAD_INT),
              (["--temperature"], st.sampled_from(["0", "0.5", "1"]), BAD_FLOAT)]
    if sampler in ("fixed", "ancestral", "euler"):
        fields += [(["-N"], STEPS, BAD_INT), (["--schedule"], SPEC, BAD_SPEC)]
    elif sampler == "threshold":
        fields.append((["--threshold"], st.sampled_from(["0", "0.5", "1"]), st.sampled_from(["1.5", "-0.1", "nan"])))
    else:
        fields.append((["--epsilon"], st.sampled_from(["0", "0.5", "3"]), st.sampled_from(["-1", "inf"])))
    argv, valid = argv_of(data.draw, fields)
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(20)
@given(data=st.data())
def test_tune(capsys, workdir, data):
    strategy = data.draw(st.sampled_from(["grid", "tpe", "random", "halving"]))
    fields = [(["tune", "--dist"], DIST, BAD_DIST), (["-N"], st.just("2"), BAD_INT),
              (["--sampler"], st.sampled_from(["fixed", "ancestral"]), st.sampled_from(["threshold", "gibbs"])),
              (["--strategy"], st.just(strategy), st.just("anneal")),
              (["--storage"], st.sampled_from(["sqlite:///s.db", "journal:j.log"]),
               st.sampled_from(["sqlite://", "sqlite:///:memory:", "nosql://x", "sqlite:///missing/s.db", "sqlite:///."])),
              (["--a-values"], st.lists(NUMBER, min_size=1, max_size=2).map(",".join), BAD_NUMBER), (["--b-values"], NUMBER, None),
              (["--a-bounds"], st.just("0.1,1"), st.sampled_from(["1,0.1", "0,1", "0.2,nan"])),
              (["--report"], st.sampled_from(["rep"]), st.sampled_from(["missing/rep"]))]
    if strategy in ("tpe", "random"):
        fields.append((["--budget"], st.integers(1, 3).map(str), BAD_INT))
    argv, valid = argv_of(data.draw, fields)
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(20)
@given(data=st.data())
def test_eval(capsys, workdir, data):
    sampler = data.draw(st.sampled_from(["fixed", "ancestral", "threshold", "entropy-bounded"]))
    fields = [(["eval", "--task"], st.just("countdown"), st.sampled_from(["sudoku", "chess"])),
              (["--checkpoint"], st.just(CHECKPOINT), st.sampled_from(["missing", "."])),
              (["--sampler"], st.just(sampler), BAD_SAMPLER), (["--limit"], st.sampled_from(["1", "2", "3"]), BAD_INT)]
    if sampler in ("fixed", "ancestral"):
        fields += [(["--schedule"], SPEC, BAD_SPEC), (["-N"], st.sampled_from(["2", "3", "4"]), BAD_INT),
                   (["--block-length"], st.sampled_from(["24"]), st.sampled_from(["5", "0"]))]
    argv, valid = argv_of(data.draw, fields)
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(12)
@given(data=st.data())
def test_train(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [
        (["train", "--task"], st.just("countdown"), st.just("chess")),
        (["--minutes"], st.just("0.0005"), st.sampled_from(["0", "-1", "nan", "x", "1e400"])), (["--out"], st.just("ck"), None),
        (["--batch-size"], st.just("4"), st.one_of(BAD_INT, st.just("100000000000"))),
        (["--d-model"], st.just("16"), st.sampled_from(["6", "1000000", "0"])),
        (["--layers"], st.just("1"), st.sampled_from(["0", "10000000"])), (["--train-examples"], st.just("8"), BAD_INT),
    ])
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)


@bounded(10)
@given(data=st.data())
def test_bench_sampler(capsys, workdir, data):
    argv, valid = argv_of(data.draw, [
        (["bench-sampler", "-B"], st.sampled_from(["1", "2"]), st.sampled_from(["0", "1000000"])),
        (["-L"], st.just("4"), st.sampled_from(["0", "1000000"])), (["-V"], st.just("5"), st.sampled_from(["1", "1000000"])),
        (["-N"], st.just("2"), BAD_INT),
    ])
    check_contract(capsys, fresh(workdir), argv + ["--json"], valid)
