"""Try a few hundred bad or edge inputs on every subcommand, as a new user would, and report each misbehaviour.

For every case the command runs in a fresh empty folder, in its own process, under a time limit and an
address-space limit. A case passes when it exits 0 with one JSON object on stdout (``--json``), or exits
2 with exactly one line on stderr and creates no file. Everything else is reported by kind:

* ``traceback`` — Python printed a traceback;
* ``hang``      — the time limit (default 20 s) or the memory limit (default 6 GB) was hit;
* ``nonsense``  — exit 0 for an input that should have been refused, or output that is not one JSON object;
* ``leftover``  — files left behind by a refused command;
* ``message``   — a refusal that is not one line.

    python scripts/bad_input_sweep.py [--timeout 20] [--only schedule,tune] [--match 'klass|prophet'] [--json report.json]

The cases live in :func:`cases`; each is ``(argv, expect)`` with ``expect`` one of ``"refuse"`` (must exit
2), ``"ok"`` (must succeed) or ``"either"``. Besides the hand-written cases, :func:`generated_cases` draws
(from a fixed seed) cases of each class of bad input: huge sizes (up to 400 digits) in every size option,
step counts beyond the bound and beyond the window, extreme floats (1e308, -0.0, nan, inf, subnormals, the
ends of the shape range) in every number of a spec or option, and empty and odd paths ('', blanks, a
folder, a missing or non-folder parent, a trailing '/') in every output flag. Python warnings are left on
(as a user has them), and a line on stderr that is not ours (``mdm-energy: ...``) but a library's warning
counts as a ``message`` misbehaviour; an ``energy`` that exits 0 must print an energy theory allows.
Run it on a quiet machine: some cases are meant to be refused *before* they allocate or run for long, and
that is what the limits check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CK = str(ROOT / "checkpoints" / "countdown")


def _files(folder: Path) -> "tuple[Path, dict[str, callable]]":
    """Bad input files, written into ``folder`` (the fixtures every case may name)."""
    f = folder
    np.save(f / "complex.npy", np.ones((2, 2, 2), dtype=complex))
    np.save(f / "neg.npy", -np.ones((2, 2)))
    np.save(f / "nan.npy", np.full((2, 2), np.nan))
    np.save(f / "str.npy", np.array(["a", "b"]))
    np.save(f / "obj.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    np.save(f / "scalar.npy", np.float64(3.0))
    np.save(f / "int.npy", np.ones((2, 2, 2), dtype=np.int64))
    np.save(f / "huge.npy", np.ones((2,) * 17, dtype=np.float32))
    (f / "text.npy").write_text("not an array")
    (f / "empty.npy").write_bytes(b"")
    # checkpoints
    for name, mutate in {
        "ck_trunc": lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:1000]),
        "ck_garbage": lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64),
        "ck_cfg_list": lambda d: (d / "config.json").write_text("[1, 2, 3]"),
        "ck_cfg_str": lambda d: _edit_config(d, d_model="big"),
        "ck_cfg_neg": lambda d: _edit_config(d, n_layers=-1),
        "ck_cfg_extra": lambda d: _edit_config(d, colour="red"),
        "ck_cfg_missing": lambda d: _edit_config(d, drop="vocab_size"),
        "ck_cfg_badjson": lambda d: (d / "config.json").write_text("{not json"),
        "ck_cfg_vocab": lambda d: _edit_config(d, vocab_size=5),
        "ck_empty": lambda d: [p.unlink() for p in d.iterdir()],
        "ck_cfg_maxlen": lambda d: _edit_config(d, max_len=10 ** 12),
    }.items():
        d = f / name
        shutil.copytree(CK, d)
        mutate(d)
    (f / "afile").write_text("x")
    (f / "adir.png").mkdir()
    # token priors (pc-sampler): malformed, an id outside countdown's vocabulary of 21, a negative count, a good one
    (f / "prior_bad.json").write_text("{not json")
    (f / "prior_outside.txt").write_text("3 10\n50 2\n")
    (f / "prior_negative.json").write_text('{"3": -1}')
    (f / "prior_good.json").write_text('{"num_token": 100, "p_baseline_dict": {"3": 40, "4": 10}}')
    (f / "prompts_empty.txt").write_text("")
    (f / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    return f


def _edit_config(d: Path, drop: "str | None" = None, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    if drop:
        cfg.pop(drop)
    (d / "config.json").write_text(json.dumps(cfg))


def cases(f: Path) -> list[tuple[list[str], str]]:
    F = str(f)
    out: list[tuple[list[str], str]] = []
    bad_numbers = ["0", "-1", "1.5", "abc", "", "1e9999", "nan", "inf", "1_0", " ", "0x10", "10000000000000000000000"]
    bad_floats = ["0", "-1", "abc", "", "1e9999", "nan", "inf", "1_0", " ", "0x10", "-0.5"]
    bad_specs = ["beta:1e308,1e308", "beta:1_0,1", "beta:0,1", "beta:-1,1", "beta:nan,1", "beta:1,inf", "beta:1",
                 "beta:1,2,3", "beta:", "beta", "poly:0", "poly:-2", "poly:1e400", "table:0.5,0.2", "table:2", "table:",
                 "table:nan", "linear:1", "cosine", "", " ", "beta:1e-300,1e-300", "poly:1e300", "beta:1e6,1e-6",
                 "table:0.1,0.2,x", "BETA:1,1", "beta:0x1,1", "beta:1e5,1e5"]
    # schedule
    for s in bad_specs:
        out.append((["schedule", s, "-N", "8", "-L", "64", "--json"], "either"))
    for n in bad_numbers:
        out.append((["schedule", "linear", "-N", n, "-L", "16", "--json"], "refuse"))
        out.append((["schedule", "linear", "-N", "4", "-L", n, "--json"], "refuse"))
    out += [(["schedule", "linear", "-N", "1000000000", "-L", "16"], "refuse"),
            (["schedule", "linear", "-N", "1000000000", "-L", "16", "--json"], "refuse"),
            (["schedule", "linear", "-N", "8", "-L", "1000000000000000000", "--json"], "either"),
            (["schedule", "linear", "-N", "8", "-L", "16", "--plot", f"{F}/adir.png"], "refuse"),
            (["schedule", "linear", "-N", "8", "-L", "16", "--plot", F], "refuse"),
            (["schedule", "linear", "-N", "8", "-L", "16", "--plot", "out.jpg"], "refuse"),
            (["schedule", "linear", "-N", "8", "-L", "16", "--plot", f"{F}/missing/x.png"], "refuse"),
            (["schedule", "linear", "-N", "8", "-L", "16", "--plot", f"{F}/afile/x.png"], "refuse")]
    # energy
    for s in bad_specs[:12]:
        out.append((["energy", s, "--json"], "either"))
    out += [(["energy", "sin2", "--brute-force", "-n", "40", "-d", "40", "--json"], "refuse"),
            (["energy", "sin2", "--brute-force", "-n", "0", "--json"], "refuse"),
            (["energy", "sin2", "--brute-force", "-n", "3", "-d", "1", "--json"], "refuse"),
            (["energy", "sin2", "--gamma", "nope", "--json"], "refuse"),
            (["energy", "sin2", "--tokens", "3", "--json"], "either"),
            (["energy", "sin2", "--brute-force", "--seed", "-5", "-n", "2", "-d", "2", "--json"], "either"),
            (["energy", "sin2", "--brute-force", "--seed", "99999999999999999999", "-n", "2", "-d", "2", "--json"], "either")]
    # exact and exact-grid
    dists = ["complex.npy", "neg.npy", "nan.npy", "str.npy", "obj.npy", "scalar.npy", "huge.npy", "text.npy",
             "empty.npy", "missing.npy", "afile", "markov:0,2,0", "markov:3,1,0", "markov:2,2,-1", "potts:3,2",
             "templates:99,99,0", "toy1:1", "markov:5,3,99999999999999999999", "markov:1_0,2,0", ""]
    for d in dists:
        path = f"{F}/{d}" if d.endswith(".npy") or d == "afile" else d
        out.append((["exact", "--dist", path, "--sampler", "fixed", "--schedule", "linear", "-N", "2", "--json"], "refuse"))
    out.append((["exact", "--dist", f"{F}/int.npy", "--sampler", "ancestral", "--schedule", "linear", "-N", "2", "--json"], "ok"))
    for n in bad_numbers:
        out.append((["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear", "-N", n, "--json"], "refuse"))
        out.append((["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--a-values", n, "--json"],
                    "either" if n == "1.5" else "refuse"))
        out.append((["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--workers", n, "--json"], "refuse"))
    out += [(["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear", "-N", "100000000", "--json"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "ancestral", "--schedule", "linear", "-N", "10000000", "--json"], "refuse"),
            (["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "100000000", "--json"], "refuse"),
            (["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--a-values", ",".join(["0.5"] * 3000), "--json"], "refuse"),
            (["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--workers", "100000", "--json"], "refuse"),
            (["exact-grid", "--dist", "toy1", "--sampler", "fixed", "-N", "2", "--plot", f"{F}/adir.png", "--json"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "threshold", "--schedule", "linear", "-N", "2"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "beta:1e308,1e308", "-N", "2", "--json"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear", "-N", "2", "--temperature", "0"], "refuse"),
            (["toy", "-N", "1000000", "--json"], "refuse"),
            (["toy", "--plot", f"{F}/adir.png"], "refuse")]
    # sample-exact
    for n in bad_numbers:
        out.append((["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", n, "--json"], "refuse"))
    out += [(["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", "1000000000", "--json"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", "5", "--block-length", "2"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "4", "--samples", "5", "--block-length", "3"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "1000000000", "--samples", "5"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "threshold", "--samples", "5", "--threshold", "nan"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "entropy-bounded", "--samples", "5", "--epsilon", "inf"], "refuse"),
            (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", "5", "--seed", "-1", "--json"], "either"),
            (["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "3", "--samples", "5", "--seed", "1" + "0" * 30], "refuse")]
    # tune
    base = ["tune", "--dist", "toy2", "-N", "3"]
    out += [(base + ["--strategy", "grid", "--storage", "sqlite://"], "refuse"),
            (base + ["--strategy", "grid", "--storage", "sqlite:///:memory:"], "refuse"),
            (base + ["--strategy", "grid", "--storage", "nosuchdb://x"], "refuse"),
            (base + ["--strategy", "grid", "--storage", "postgresql://nobody@127.0.0.1:1/x"], "refuse"),
            (base + ["--strategy", "grid", "--storage", f"sqlite:///{F}/afile"], "refuse"),
            (base + ["--strategy", "grid", "--storage", f"sqlite:///{F}"], "refuse"),
            (base + ["--strategy", "grid", "--storage", f"journal:{F}/missing/j.log"], "refuse"),
            (base + ["--strategy", "grid", "--report", f"{F}/afile"], "refuse"),
            (base + ["--strategy", "tpe", "--budget", "100000000"], "refuse"),
            (base + ["--strategy", "grid", "--workers", "100000"], "refuse"),
            (base + ["--strategy", "grid", "--seed", "-1", "--a-values", "0.5", "--b-values", "0.5", "--json"], "either"),
            (base + ["--strategy", "tpe", "--a-bounds", "1,1"], "refuse"),
            (base + ["--strategy", "tpe", "--a-bounds", "0.1,1e400"], "refuse"),
            (base + ["--strategy", "tpe", "--scale", "cubic"], "refuse"),
            (["tune", "--objective", "task", "--task", "countdown", "--checkpoint", f"{F}/ck_trunc", "-N", "2", "--strategy", "grid"], "refuse"),
            (["tune", "--objective", "task", "--task", "sudoku", "--checkpoint", CK, "-N", "2", "--strategy", "grid"], "refuse"),
            (["tune", "--objective", "task", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--strategy", "grid",
              "--limit", "1000000000"], "refuse"),
            (["tune", "--objective", "task", "--task", "countdown", "--checkpoint", f"{F}/missing", "-N", "2", "--strategy", "grid"], "refuse"),
            (["tune", "--objective", "task", "--task", "countdown", "--checkpoint", CK, "--strategy", "grid"], "refuse"),
            (["tune", "--objective", "exact", "--strategy", "grid", "-N", "2"], "refuse")]
    # eval
    cks = ["ck_trunc", "ck_garbage", "ck_cfg_list", "ck_cfg_str", "ck_cfg_neg", "ck_cfg_extra", "ck_cfg_missing", "ck_cfg_badjson",
           "ck_cfg_vocab", "ck_empty", "ck_cfg_maxlen", "missing", "afile"]
    for ck in cks:
        out.append((["eval", "--task", "countdown", "--checkpoint", f"{F}/{ck}", "-N", "2", "--limit", "2", "--json"], "refuse"))
    for n in bad_numbers:
        out.append((["eval", "--task", "countdown", "--checkpoint", CK, "-N", n, "--limit", "2", "--json"], "refuse"))
        out.append((["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", n, "--json"], "refuse"))
    out += [(["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", "1000000000"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "-N", "1000000000", "--limit", "2"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", "2", "--block-length", "5"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "-N", "5", "--limit", "2", "--block-length", "8"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "--sampler", "threshold", "--threshold", "-0.1", "--limit", "2"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--schedule", "beta:1e308,1e308", "--limit", "2"], "refuse"),
            (["eval", "--task", "pycode", "--checkpoint", CK, "-N", "2", "--limit", "2"], "refuse"),
            (["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", "2", "--seed", "1" + "0" * 30], "refuse")]
    # train
    for x in bad_floats:
        out.append((["train", "--task", "countdown", "--minutes", x, "--out", "o", "--json"], "refuse"))
    for n in bad_numbers:
        out.append((["train", "--task", "countdown", "--minutes", "0.01", "--out", "o", "--batch-size", n], "refuse"))
    out += [(["train", "--task", "countdown", "--minutes", "0", "--out", "o", "--json"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--d-model", "6"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--batch-size", "100000000"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--train-examples", "1000000000"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--d-model", "100000"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--layers", "100000"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", f"{F}/afile"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", f"{F}/missing/o"], "refuse"),
            (["train", "--task", "countdown", "--minutes", "0.001", "--out", "o", "--json"], "ok"),
            (["train", "--task", "countdown", "--minutes", "0.05", "--out", "o", "--lr", "1e400"], "refuse"),
            (["train", "--task", "sudoku", "--minutes", "0.05", "--out", f"{F}/ck_trunc"], "refuse")]
    # bench-sampler
    out += [(["bench-sampler", "-B", "100000", "-L", "100000", "-V", "100000"], "refuse"),
            (["bench-sampler", "-V", "1"], "refuse"),
            (["bench-sampler", "-B", "0"], "refuse")]
    # demo
    out += [(["demo", "--out", f"{F}/afile"], "refuse"),
            (["demo", "--out", f"{F}/missing/x/y"], "refuse"),
            (["demo", "-L", "1000000000000", "--checkpoints", "none", "--json"], "either"),
            (["demo", "-N", "1000000000", "--json"], "refuse"),
            (["demo", "--limit", "1000000000", "--json"], "refuse"),
            (["demo", "--checkpoints", f"{F}/afile", "-L", "16", "--limit", "1"], "refuse")]
    # lm-eval
    out += [(["lm-eval", "run", "--model", "mdm_energy", "--model_args", f"pretrained={F}/missing", "--tasks", "x"], "refuse"),
            (["lm-eval", "--help"], "ok")]
    # generate, caches, the schedule-aware samplers
    ev = ["eval", "--task", "countdown", "--checkpoint", CK, "--limit", "2"]
    out += [(["generate", "--model", f"{F}/missing", "--prompt", "1 2:3"], "refuse"),
            (["generate", "--model", f"{F}/afile", "--prompt", "1 2:3"], "refuse"),
            (["generate", "--model", CK, "--prompt", "x" * 500], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "--sampler", "dream", "--alg", "nope"], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "--sampler", "dream", "--top-p", "0"], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "--sampler", "dream", "--top-k", "0"], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "--sampler", "dream", "--alg-temp", "-1"], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "--suppress-tokens", "99999"], "refuse"),
            (["generate", "--model", CK, "--prompt", "1 2:3", "-N", "4", "--json"], "ok"),
            (ev + ["-N", "8", "--cache", "dual"], "refuse"),
            (ev + ["-N", "8", "--cache", "full", "--block-length", "8"], "refuse"),
            (ev + ["-N", "8", "--cache", "dual", "--block-length", "8", "--cache-refresh", "0"], "refuse"),
            (ev + ["-N", "8", "--cache-refresh", "2"], "refuse"),
            (ev + ["-N", "12", "--cache", "prefix", "--block-length", "8", "--json"], "ok"),
            (ev + ["--sampler", "threshold-floor", "-N", "8", "--threshold", "2"], "refuse"),
            (ev + ["--sampler", "threshold-cap", "-N", "8", "--threshold", "nan"], "refuse"),
            (ev + ["--sampler", "threshold-floor", "-N", "8", "--json"], "ok"),
            # the revising decoders
            (ev + ["--sampler", "remdm", "-N", "8", "--eta", "2"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "8", "--sigma", "loop", "--eta", "0.5"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "8", "--sigma", "cap", "--loop-alpha", "0.5"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "2", "--sigma", "loop"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "8", "--revise-from", "1"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "8", "--remasking", "margin"], "refuse"),
            (ev + ["--sampler", "remdm", "-N", "48", "--sigma", "rescale", "--json"], "ok"),
            (ev + ["--sampler", "remdm-llada", "-N", "8", "--remask-count", "0"], "refuse"),
            (ev + ["--sampler", "remdm-llada", "-N", "8", "--remask-count", "24"], "refuse"),
            (ev + ["--sampler", "remdm-llada", "-N", "8", "--loop-steps", "-1"], "refuse"),
            (ev + ["--sampler", "remdm-llada", "-N", "8", "--json"], "ok"),
            (ev + ["--sampler", "wino", "--threshold", "0.9", "--verify-threshold", "0.5"], "refuse"),
            (ev + ["--sampler", "wino", "--verify-threshold", "1.5"], "refuse"),
            (ev + ["--sampler", "wino", "--cache", "prefix", "--block-length", "8"], "refuse"),
            (ev + ["--sampler", "wino", "--json"], "ok"),
            (["exact", "--dist", "toy1", "--sampler", "remdm", "--schedule", "linear", "-N", "4", "--sigma", "conf"],
             "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "remdm", "--schedule", "linear", "-N", "8", "--json"], "ok")]
    # the rules that choose which tokens and when to stop: DUS, KLASS, Prophet, PC-Sampler
    gen = ["generate", "--model", CK, "--prompt", "1 2:3"]
    out += [(ev + ["--sampler", "klass", "--threshold", "1.5"], "refuse"),
            (ev + ["--sampler", "klass", "--kl-threshold", "0"], "refuse"),
            (ev + ["--sampler", "klass", "--kl-threshold", "-0.01"], "refuse"),
            (ev + ["--sampler", "klass", "--kl-history", "0"], "refuse"),
            (ev + ["--sampler", "klass", "--kl-history", "1.5"], "refuse"),
            (ev + ["--sampler", "klass", "--cache", "dual"], "refuse"),
            (ev + ["--sampler", "klass", "--remasking", "margin"], "refuse"),
            (ev + ["--sampler", "klass", "--json"], "ok"),
            (ev + ["--sampler", "prophet", "-N", "8", "--gap-early", "-1"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--gap-mid", "-0.5"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--gap-late", "nan"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--answer-start", "24"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--answer-start", "-1"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--answer-length", "0"], "refuse"),
            (ev + ["--sampler", "prophet", "-N", "8", "--cache", "prefix", "--block-length", "8"], "refuse"),
            (ev + ["--sampler", "prophet", "--answer-start", "4"], "refuse"),  # no --steps
            (ev + ["--sampler", "prophet", "-N", "8", "--answer-start", "4", "--answer-length", "5", "--json"], "ok"),
            (ev + ["--sampler", "dus", "--dilation", "0"], "refuse"),
            (ev + ["--sampler", "dus", "--dilation-skip", "0"], "refuse"),
            (ev + ["--sampler", "dus", "--dilation-skip", "5"], "refuse"),
            (ev + ["--sampler", "dus", "--dilation", "5", "--dilation-skip", "2", "--block-length", "8"], "refuse"),
            (ev + ["--sampler", "dus", "-N", "8"], "refuse"),
            (ev + ["--sampler", "dus", "--threshold", "0.5"], "refuse"),
            (ev + ["--sampler", "dus", "--json"], "ok"),
            (ev + ["--sampler", "dus-schedule", "-N", "8", "--dilation", "0"], "refuse"),
            (ev + ["--sampler", "dus-schedule", "-N", "8", "--dilation", "3", "--dilation-skip", "3"], "refuse"),
            (ev + ["--sampler", "dus-schedule", "--dilation", "2"], "refuse"),  # no --steps
            (ev + ["--sampler", "dus-schedule", "-N", "8", "--json"], "ok"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--position-decay", "-1"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--calibration-clip", "0"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--calibration-clip", "inf"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", f"{F}/prior_missing.json"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", f"{F}/prior_bad.json"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", f"{F}/prior_outside.txt"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", f"{F}/prior_negative.json"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", F], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", ""], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--remasking", "margin"], "refuse"),
            (ev + ["--sampler", "pc-sampler", "-N", "8", "--token-prior", f"{F}/prior_good.json", "--json"], "ok"),
            (ev + ["--sampler", "fixed", "-N", "8", "--kl-history", "2"], "refuse"),
            (ev + ["--sampler", "fixed", "-N", "8", "--answer-start", "3"], "refuse"),
            (ev + ["--sampler", "fixed", "-N", "8", "--token-prior", "off"], "refuse"),
            (ev + ["--sampler", "threshold", "--dilation", "2"], "refuse"),
            (gen + ["--sampler", "prophet", "-N", "4", "--answer-start", "999"], "refuse"),
            (gen + ["--sampler", "dus", "--dilation-skip", "9"], "refuse"),
            (gen + ["--sampler", "dus", "-N", "4"], "refuse"),
            (gen + ["--sampler", "klass", "--kl-threshold", "0"], "refuse"),
            (gen + ["--sampler", "pc-sampler", "-N", "4", "--token-prior", f"{F}/prior_outside.txt"], "refuse"),
            (gen + ["--sampler", "pc-sampler", "-N", "4", "--token-prior", f"{F}/prior_good.json", "--json"], "ok"),
            (gen + ["--sampler", "dus", "--json"], "ok"),
            (["exact", "--dist", "toy1", "--sampler", "dus", "--schedule", "linear", "-N", "3"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "klass", "--schedule", "linear", "-N", "3"], "refuse"),
            (["exact", "--dist", "toy1", "--sampler", "dus-schedule", "--schedule", "linear", "-N", "3", "--dilation",
              "2"], "refuse"),  # the exact command takes no dilation (the defaults' law only)
            (["exact", "--dist", "toy1", "--sampler", "dus-schedule", "--schedule", "linear", "-N", "3", "--json"], "ok"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "dus-schedule", "-N", "3", "--strategy",
              "tpe", "--budget", "2", "--dilation-skip", "9"], "refuse"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "dus-schedule", "-N", "3", "--strategy",
              "tpe", "--budget", "2", "--dilation-skip", "0"], "refuse"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "dus-schedule", "-N", "3", "--strategy",
              "tpe", "--budget", "2", "--dilation", "0"], "refuse"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "dus-schedule", "-N", "3", "--strategy",
              "tpe", "--budget", "2", "--dilation", "9"], "refuse"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "prophet", "-N", "3", "--strategy", "tpe",
              "--budget", "2"], "refuse"),
            (["tune", "--objective", "exact", "--dist", "toy1", "--sampler", "fixed", "-N", "3", "--strategy", "tpe",
              "--budget", "2", "--token-prior", "off"], "refuse"),
            (["tune", "--objective", "task", "--task", "countdown", "--checkpoint", CK, "-N", "4", "--strategy", "grid",
              "--sampler", "fixed", "--answer-start", "2"], "refuse")]
    tk = ["tune", "--objective", "lm-eval", "-N", "4", "--strategy", "grid", "--tasks", "mdm_tiny_gen", "--include-path",
          str(ROOT / "tests" / "data" / "lm_eval")]  # a task lm-eval knows: the model_args are what is refused
    tq = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CK, "--limit", "8",
          "--strategy", "random", "--budget", "2"]
    out += [(tq + ["--sampler", "klass", "--kl-threshold", "0.02"], "refuse"),  # searched, not a flag
            (tq + ["--sampler", "prophet", "-N", "4", "--gap-early", "3"], "refuse"),  # searched
            (tq + ["--sampler", "dus", "--dilation", "3"], "refuse"),  # searched (not --dilation-skip abbreviated)
            (tq + ["--sampler", "dus", "--dilation-skip", "0"], "refuse"),
            (tq + ["--sampler", "dus", "--dilation-skip", "5"], "refuse"),  # fits no trial's window
            (tq + ["--sampler", "prophet", "-N", "4", "--answer-start", "30"], "refuse"),
            (tq + ["--sampler", "prophet", "-N", "4", "--answer-length", "0"], "refuse"),
            (tq + ["--sampler", "pc-sampler", "-N", "4", "--token-prior", f"{F}/prior_missing.json"], "refuse"),
            (tq + ["--sampler", "pc-sampler", "-N", "4", "--token-prior", f"{F}/prior_outside.txt"], "refuse"),
            (tq + ["--sampler", "pc-sampler", "-N", "4", "--calibration-clip", "-1"], "refuse"),
            (tq + ["--sampler", "fixed", "-N", "4", "--token-prior", "off"], "refuse"),
            (tq + ["--sampler", "prophet", "--answer-start", "2"], "refuse"),  # no --steps
            (tq + ["--sampler", "pc-sampler", "-N", "4", "--token-prior", "off", "--json"], "ok"),
            (tk + ["--model-args", "pretrained=x,sampler=klass,kl_threshold=0"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=klass,kl_history=1.5"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=prophet,kl_history=2"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=prophet,answer_start=-1"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=dus-schedule,dilation=0"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=dus"], "refuse"),  # takes no steps: nothing to tune
            (tk + ["--model-args", f"pretrained=x,sampler=pc-sampler,token_prior={F}/prior_bad.json"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=pc-sampler", "--token-prior", f"{F}/prior_bad.json"], "refuse"),
            (tk + ["--model-args", "pretrained=x,sampler=pc-sampler", "--answer-start", "2"], "refuse")]
    # profile
    (f / "empty.txt").write_text("")
    (f / "latin1.txt").write_bytes(b"caf\xe9\n")
    (f / "long.txt").write_text("1 " * 40 + ":5\n")
    (f / "bad.jsonl").write_text("{not json\n")
    pr = ["profile", "--checkpoint", CK]
    out += [(pr + ["--prompts", f"{F}/empty.txt"], "refuse"),
            (pr + ["--prompts", f"{F}/latin1.txt"], "refuse"),
            (pr + ["--prompts", f"{F}/long.txt"], "refuse"),
            (pr + ["--prompts", f"{F}/bad.jsonl"], "refuse"),
            (pr + ["--prompts", f"{F}/missing.txt"], "refuse"),
            (pr + ["--task", "countdown", "--length", "0"], "refuse"),
            (pr + ["--task", "countdown", "--samples", "0"], "refuse"),
            (pr + ["--task", "countdown", "--samples", "100000000"], "refuse"),
            (pr + ["--task", "countdown", "--steps", "0"], "refuse"),
            (pr + ["--task", "countdown", "--steps", "1000"], "refuse"),
            (pr + ["--task", "countdown", "--plot", f"{F}/adir.png"], "refuse"),
            (pr + ["--task", "countdown", "--save", f"{F}/missing/p.json"], "refuse"),
            (["profile", "--load", f"{F}/text.npy", "--steps", "4"], "refuse"),
            (["profile", "--load", f"{F}/missing.json"], "refuse"),
            (pr + ["--task", "countdown", "--samples", "8", "--steps", "4", "--json"], "ok")]
    # tune: lm-eval objective, PostgreSQL, --pareto
    tl = ["tune", "--objective", "lm-eval", "-N", "4", "--strategy", "grid"]
    tp = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", CK, "-N", "4", "--limit", "8"]
    out += [(tl + ["--tasks", "x"], "refuse"),
            (tl + ["--model-args", "0.3,pretrained=x", "--tasks", "x"], "refuse"),
            (tl + ["--model-args", f"pretrained={F}/missing", "--tasks", "x", "--include-path", f"{F}/missing"], "refuse"),
            (tl + ["--model-args", "pretrained=x,schedule=linear", "--tasks", "x"], "refuse"),
            (tl + ["--model-args", "pretrained=x", "--tasks", "a,b"], "refuse"),
            (tl + ["--model-args", "pretrained=x", "--tasks", "x", "--workers", "2", "--device", "cuda:0"], "refuse"),
            (base + ["--strategy", "grid", "--storage", "postgresql://nobody@127.0.0.1:1/x", "--json"], "refuse"),
            (base + ["--strategy", "grid", "--halving-eta", "1"], "refuse"),
            (tp + ["--strategy", "grid"], "refuse"),
            (tp + ["--strategy", "halving"], "refuse"),
            (tp + ["--strategy", "random", "--threshold-bounds", "0.5,2"], "refuse"),
            (tp + ["--strategy", "random", "--sampler", "threshold", "--remasking", "random"], "refuse"),
            (tp + ["--strategy", "random", "--steps-values", "2.5"], "refuse"),
            (tp + ["--strategy", "random", "--report", f"{F}/afile"], "refuse"),
            (["tune", "--pareto", "--dist", "toy2", "-N", "3", "--strategy", "random"], "refuse"),
            (tp + ["--strategy", "random", "--budget", "2", "--sampler", "threshold-floor", "--json"], "ok")]
    # misc
    out += [(["nosuch"], "refuse"), ([], "refuse"), (["schedule"], "refuse"), (["--version"], "ok")]
    return out


HUGE_SIZES = ["10000001", "99999999999999999999", "1" + "0" * 308, "9" * 400]
EXTREME_FLOATS = ["1e308", "-1e308", "1.7976931348623157e308", "-0.0", "nan", "inf", "-inf", "5e-324",
                  "2.2250738585072014e-308", "1e-320", "1e-300", "1e300", "1e-3", "1e3", "0.000999", "1000.001"]
ODD_FILES = ["", " ", "\t", ".", "./", "adir.png", "adir.png/", "x.png/", "missing/x.png", "afile/x.png"]
ODD_FOLDERS = ["", " ", "afile", "missing/x", "afile/x"]


def generated_cases(f: Path, seed: int = 0) -> list[tuple[list[str], str]]:
    """Cases of each class of bad input, drawn with a fixed seed (so a report names the same cases every run)."""
    F, rng = str(f), random.Random(seed)
    out: list[tuple[list[str], str]] = []
    # huge sizes: every option that sizes an allocation, and the sizes inside distribution specs
    sized = [lambda n: ["bench-sampler", "-B", n, "-L", "4", "-V", "5"],
             lambda n: ["bench-sampler", "-B", "1", "-L", n, "-V", "5"],
             lambda n: ["bench-sampler", "-B", "1", "-L", "4", "-V", n],
             lambda n: ["sample-exact", "--dist", "toy2", "--sampler", "fixed", "-N", "2", "--samples", n],
             lambda n: ["energy", "sin2", "--brute-force", "-n", n, "-d", "2"],
             lambda n: ["energy", "sin2", "--brute-force", "-n", "2", "-d", n],
             lambda n: ["exact", "--dist", f"markov:{n},2,0", "--sampler", "fixed", "--schedule", "linear", "-N", "2"],
             lambda n: ["exact", "--dist", f"templates:{n},2,0", "--sampler", "fixed", "--schedule", "linear", "-N", "2"],
             lambda n: ["exact", "--dist", f"potts:{n},3,1", "--sampler", "fixed", "--schedule", "linear", "-N", "2"],
             lambda n: ["train", "--task", "countdown", "--minutes", "0.01", "--out", "o", "--batch-size", n],
             lambda n: ["train", "--task", "countdown", "--minutes", "0.01", "--out", "o", "--layers", n],
             lambda n: ["train", "--task", "countdown", "--minutes", "0.01", "--out", "o", "--train-examples", n],
             lambda n: ["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", n],
             lambda n: ["demo", "--limit", n], lambda n: ["schedule", "linear", "-N", "2", "-L", n],
             lambda n: ["tune", "--dist", "toy2", "-N", "2", "--strategy", "random", "--budget", n],
             lambda n: ["profile", "--checkpoint", CK, "--task", "countdown", "--samples", n]]
    for make in sized:
        for n in rng.sample(HUGE_SIZES, 2):
            out.append((make(n) + ["--json"], "refuse"))
    # huge step counts: beyond the bound (refused everywhere), beyond the window (the fixed sampler caps)
    for n in ("1000001", "1" + "0" * 40):
        for cmd in (["schedule", "linear", "-L", "16"], ["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear"],
                    ["sample-exact", "--dist", "toy2", "--sampler", "ancestral", "--samples", "2"], ["bench-sampler"],
                    ["eval", "--task", "countdown", "--checkpoint", CK, "--limit", "1"], ["demo"],
                    ["generate", "--model", CK, "--prompt", "1 2:3"]):
            out.append((cmd + ["-N", n, "--json"], "refuse"))
    for n in ("25", "1000", "1000000"):
        out.append((["eval", "--task", "countdown", "--checkpoint", CK, "--limit", "2", "-N", n, "--json"], "ok"))
    out.append((["generate", "--model", CK, "--prompt", "1 2:3", "-N", "100000", "--json"], "ok"))
    # extreme floats: in spec numbers and in number options
    floats = [lambda x: ["schedule", f"beta:{x},1", "-N", "4", "-L", "16"], lambda x: ["schedule", f"poly:{x}", "-N", "4", "-L", "16"],
              lambda x: ["schedule", f"table:{x}", "-N", "2", "-L", "16"], lambda x: ["schedule", f"dream:{x}", "-N", "4", "-L", "16"],
              lambda x: ["energy", f"beta:{x},{x}"], lambda x: ["energy", "sin2", "--gamma", f"poly:{x}"],
              lambda x: ["energy", f"beta:1,{x}", "--brute-force", "-n", "2", "-d", "2"],
              lambda x: ["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", f"beta:1,{x}", "-N", "2"],
              lambda x: ["exact", "--dist", "toy1", "--sampler", "fixed", "--schedule", "linear", "-N", "2", "--temperature", x],
              lambda x: ["sample-exact", "--dist", "toy2", "--sampler", "threshold", "--samples", "2", "--threshold", x],
              lambda x: ["sample-exact", "--dist", "toy2", "--sampler", "entropy-bounded", "--samples", "2", "--epsilon", x],
              lambda x: ["exact-grid", "--dist", "toy1", "--sampler", "ancestral", "-N", "1", "--a-values", x, "--b-values", "0.5"],
              lambda x: ["tune", "--dist", "toy2", "-N", "2", "--strategy", "random", "--budget", "1", "--a-bounds", f"{x},1"],
              lambda x: ["tune", "--dist", "toy2", "-N", "2", "--strategy", "tpe", "--budget", "1", "--b-bounds", f"0.5,{x}"],
              lambda x: ["tune", "--dist", "toy2", "-N", "2", "--strategy", "random", "--budget", "1", "--family", "poly",
                         "--bounds", f"k={x},2"],
              lambda x: ["train", "--task", "countdown", "--minutes", x, "--out", "o"],
              lambda x: ["eval", "--task", "countdown", "--checkpoint", CK, "-N", "2", "--limit", "1", "--schedule", f"beta:{x},1"]]
    for make in floats:
        for x in rng.sample(EXTREME_FLOATS, 3):
            out.append((make(x) + ["--json"], "either"))
    # empty and odd paths: every output flag
    files = [lambda p: ["schedule", "linear", "-N", "2", "-L", "4", "--plot", p], lambda p: ["toy", "-N", "1", "--plot", p],
             lambda p: ["exact-grid", "--dist", "toy1", "--sampler", "ancestral", "-N", "1", "--a-values", "0.5",
                        "--b-values", "0.5", "--plot", p],
             lambda p: ["profile", "--checkpoint", CK, "--task", "countdown", "--samples", "2", "--plot", p],
             lambda p: ["profile", "--checkpoint", CK, "--task", "countdown", "--samples", "2", "--save", p]]
    folders = [lambda p: ["tune", "--dist", "toy2", "-N", "2", "--strategy", "grid", "--report", p],
               lambda p: ["train", "--task", "countdown", "--minutes", "0.001", "--out", p],
               lambda p: ["demo", "-L", "8", "--checkpoints", "none", "--out", p]]
    for makers, odd in ((files, ODD_FILES), (folders, ODD_FOLDERS)):
        for make in makers:
            for p in odd:
                p = p.replace("afile", f"{F}/afile").replace("adir.png", f"{F}/adir.png")
                out.append((make(p) + ["--json"], "refuse"))
    return out


def run_case(argv: list[str], cwd: Path, timeout: float, mem_gb: float) -> dict:
    def limits() -> None:
        cap = int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # warnings left on: a library's warning is a misbehaviour here
    p = subprocess.Popen([sys.executable, "-m", "mdm_energy", *argv], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=limits, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", ""
    finally:  # the whole process group: worker processes of a command must not outlive it
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    if out == "" and err == "" and p.returncode in (-9, None):
        return {"code": None, "out": "", "err": "", "timeout": True}
    return {"code": p.returncode, "out": out, "err": err, "timeout": False}


_LIBRARY_WARNING = re.compile(r"\b\w*(Warning|WARNING)\b|^\s*warnings\.warn|\d+%\|")


def _energy_is_possible(argv: list[str], out: str) -> bool:
    """``J`` of an ``energy --json`` result: pi^2 against the schedule's own geodesic time, else >= pi^2 or null."""
    J = json.loads(out).get("J")
    if "--gamma" not in argv:
        return J is not None and abs(J / math.pi**2 - 1) <= 1e-6
    return J is None or J >= math.pi**2 * (1 - 1e-6)


def judge(argv: list[str], expect: str, r: dict, created: list[str]) -> "str | None":
    if r["timeout"]:
        return "hang"
    err = r["err"]
    if "Traceback (most recent call last)" in err or "MemoryError" in err:
        return "hang" if "MemoryError" in err else "traceback"
    if any(_LIBRARY_WARNING.search(ln) and not ln.startswith("mdm-energy:") for ln in err.splitlines()):
        return "message"  # a library's warning, log record or progress bar on stderr
    if r["code"] == 0:
        if expect == "refuse":
            return "nonsense"
        if "--json" in argv:
            try:
                json.loads(r["out"])
            except ValueError:
                return "nonsense"
            if r["out"].count("\n") != 1:
                return "nonsense"
            if argv[0] == "energy" and not _energy_is_possible(argv, r["out"]):
                return "nonsense"
        return None
    if r["code"] == 2:
        if expect == "ok":
            return "nonsense"
        if created:
            return "leftover"
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("mdm-energy: warning: ")]
        if len(lines) != 1 or not lines[0].startswith("mdm-energy: error: "):
            return "message"
        return None
    return "traceback" if r["code"] == 1 else "nonsense"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--mem-gb", type=float, default=6.0)
    ap.add_argument("--only", help="comma-separated subcommands")
    ap.add_argument("--match", metavar="REGEX", help="only the cases whose command line matches, e.g. "
                    "'klass|prophet|dus|pc-sampler|kl-|gap-|answer-|dilation|token-prior|calibration'")
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep-fixtures-") as fx:
        fixtures = _files(Path(fx))
        all_cases = cases(fixtures) + generated_cases(fixtures)
        if args.only:
            keep = set(args.only.split(","))
            all_cases = [c for c in all_cases if c[0] and c[0][0] in keep]
        if args.match:
            all_cases = [c for c in all_cases if re.search(args.match, " ".join(c[0]))]
        bad = []
        for k, (argv, expect) in enumerate(all_cases, 1):
            with tempfile.TemporaryDirectory(prefix="sweep-") as cwd:
                before = set(os.listdir(fixtures))
                r = run_case(argv, Path(cwd), args.timeout, args.mem_gb)
                created = sorted(os.listdir(cwd)) + sorted(set(os.listdir(fixtures)) - before)
            kind = judge(argv, expect, r, created)
            tail = (r["err"].strip().splitlines() or [""])[-1][:160]
            print(f"[{k}/{len(all_cases)}] {'ok' if kind is None else kind.upper():9s} {' '.join(argv)[:110]}  | {tail}",
                  file=sys.stderr, flush=True)
            if kind:
                bad.append({"argv": argv, "kind": kind, "code": r["code"], "stderr": r["err"][-2000:], "created": created})
    kinds: dict[str, int] = {}
    for b in bad:
        kinds[b["kind"]] = kinds.get(b["kind"], 0) + 1
    print(json.dumps({"cases": len(all_cases), "bad": len(bad), "by_kind": kinds}))
    if args.json:
        Path(args.json).write_text(json.dumps(bad, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
