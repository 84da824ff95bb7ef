"""The one sampler vocabulary: the registry, the torch classes, the exact engine and the CLI agree."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from mdm_energy.cli import main
from mdm_energy.exact import exact_sampler
from mdm_energy.registry import (
    EXACT_TEMPERATURE,
    OPTION_HELP,
    SAMPLERS,
    exact_check_options,
    sampler_names,
    sampler_options,
    sampler_spec,
)
from mdm_energy.sampling import SAMPLER_CLASSES, make_sampler
from mdm_energy.schedules import parse_schedule


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_torch_class_signatures_carry_the_registry_defaults(name):
    params = inspect.signature(SAMPLER_CLASSES[name]).parameters  # the constructor takes the declared options
    declared = {k: p.default for k, p in params.items()}
    assert declared == dict(SAMPLERS[name].defaults)
    made = make_sampler(name)
    for key, value in SAMPLERS[name].defaults.items():  # the built sampler holds them, normalised
        got = getattr(made, key)
        assert (got.spec == parse_schedule(value).spec) if key == "schedule" else got == value


def test_every_option_has_help_and_a_check():
    options = {o for spec in SAMPLERS.values() for o in spec.options}
    assert options == set(OPTION_HELP)
    for name, spec in SAMPLERS.items():
        assert sampler_options(name).keys() == set(spec.options)


@pytest.mark.parametrize(
    "name,options,needle",
    [
        ("threshold", {"schedule": "linear"}, "the threshold sampler does not take 'schedule'"),
        ("ancestral", {"remasking": "margin"}, "the ancestral sampler does not take 'remasking'"),
        ("entropy-bounded", {"threshold": 0.5}, "does not take 'threshold'"),
        ("fixed", {"epsilon": 0.1}, "does not take 'epsilon'"),
        ("fixed", {"remasking": "top"}, "unknown remasking rule 'top'"),
        ("fixed", {"skip_empty_steps": "yes"}, "skip_empty_steps must be true or false"),
        ("fixed", {"steps": True}, "steps must be a positive integer, got True"),
        ("threshold", {"threshold": 1.5}, r"threshold must lie in \[0, 1\], got 1.5"),
        ("confidence", {}, "--remasking low_confidence"),
        ("entropy", {}, "'entropy-bounded'"),
        ("gibbs", {}, "unknown sampler 'gibbs'"),
    ],
)
def test_make_sampler_refuses_what_a_sampler_does_not_take(name, options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler(name, **options)


def test_exact_engine_uses_the_same_default_remasking_as_the_torch_sampler():
    assert make_sampler("fixed").remasking == SAMPLERS["fixed"].defaults["remasking"] == "low_confidence"
    default = exact_sampler("toy2", "fixed", "sin2", 3)
    assert default.remasking == "low_confidence"
    np.testing.assert_array_equal(default.law, exact_sampler("toy2", "fixed", "sin2", 3, "low_confidence").law)
    assert not np.allclose(default.law, exact_sampler("toy2", "fixed", "sin2", 3, "random").law)


def test_exact_check_options():
    opts = exact_check_options("fixed", schedule="sin2", steps=3, remasking="margin")
    assert opts["temperature"] == EXACT_TEMPERATURE == 1.0 and opts["remasking"] == "margin"
    assert exact_check_options("ancestral", steps=2)["temperature"] == 1.0
    assert sampler_names(exact=True) == ("fixed", "ancestral", "euler", "remdm", "dus-schedule", "prophet")
    with pytest.raises(ValueError, match="temperature=1.0 only, got temperature=0.0"):
        exact_check_options("fixed", temperature=0.0)
    with pytest.raises(ValueError, match="block_length=None only"):
        exact_check_options("euler", block_length=4)
    with pytest.raises(ValueError, match="no law for the entropy-bounded sampler"):
        exact_check_options("entropy-bounded")


def test_scheduled_flag():
    assert [n for n in SAMPLERS if sampler_spec(n).scheduled] == ["fixed", "ancestral", "euler", "dream", "threshold-floor", "entropy-floor",
                                                                    "threshold-cap", "remdm", "remdm-llada", "dus-schedule",
                                                                    "klass", "prophet", "pc-sampler", "threshold-count"]
    # the command lines ask every scheduled sampler for --steps but klass, whose schedule only paces a fallback
    assert [n for n in SAMPLERS if sampler_spec(n).scheduled and not sampler_spec(n).needs_steps] == ["klass"]


def test_registry_exact_engine_and_reveal_are_torch_free():
    code = ("import sys, mdm_energy.registry, mdm_energy.reveal, mdm_energy.exact; "
            "mdm_energy.exact.exact_sampler('toy2', 'fixed', 'linear', 3); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "--task", "countdown", "--checkpoint", "x", "--sampler", "threshold", "--steps", "4"],
         "--steps does not apply to the threshold sampler (it takes --threshold, --temperature, --block-length, --cfg-scale"),
        (["eval", "--task", "countdown", "--checkpoint", "x", "--sampler", "fixed"], "--steps is required for the fixed sampler"),
        (["eval", "--task", "countdown", "--checkpoint", "x", "--sampler", "confidence", "-N", "2"], "--remasking low_confidence"),
        (["tune", "--dist", "toy2", "-N", "3", "--strategy", "grid", "--temperature", "0"], "exact laws are at temperature 1"),
        (["toy", "--sampler", "euler", "--remasking", "random"], "--remasking does not apply to the euler sampler"),
    ],
)
def test_cli_refuses_flags_the_sampler_does_not_take(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
