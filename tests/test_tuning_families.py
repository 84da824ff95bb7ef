"""The tuner over any registered parametric schedule family: grids and TPE over non-Beta families, the refusals,
Beta studies stored and suggested exactly as before, and Pareto options from the sampler registry."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

pytest.importorskip("optuna")

import optuna  # noqa: E402

from mdm_energy import schedules  # noqa: E402
from mdm_energy._parse import positive_int  # noqa: E402
from mdm_energy.cli import main  # noqa: E402
from mdm_energy.exact import exact_sampler  # noqa: E402
from mdm_energy.schedules import Schedule, ScheduleParam, parse_schedule, register_schedule  # noqa: E402
from mdm_energy.tuning import ExactKLObjective, ParetoSpace, SearchSpace, tune, write_report  # noqa: E402
from mdm_energy.tuning.claims import point_key  # noqa: E402
from mdm_energy.tuning.pareto import SamplerObjective, pareto_tune  # noqa: E402
from mdm_energy.tuning.objectives import Score  # noqa: E402

DIST, STEPS = "markov:5,3,0", 3


def stored(storage: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


# --- a one-parameter built-in family ----------------------------------------------------------------------


def test_a_poly_grid_finds_the_brute_force_grid_optimum(tmp_path):
    ks = (0.5, 1.0, 1.5, 2.0, 3.0)
    storage = f"sqlite:///{tmp_path}/s.db"
    r = tune(ExactKLObjective(DIST, "fixed", STEPS), strategy="grid", storage=storage,
             space=SearchSpace("poly", values={"k": ks}))
    loop = {k: exact_sampler(DIST, "fixed", f"poly:{k}", STEPS).kl for k in ks}  # an independent loop
    best = min(loop, key=lambda k: (loop[k], k))
    assert r.best.params == {"k": best} and r.best.spec == parse_schedule(f"poly:{best}").spec
    assert r.best.value == pytest.approx(loop[best], abs=1e-12)
    assert r.best.a is None and r.best.b is None and r.family == "poly"
    assert {t.params["k"]: t.value for t in r.trials if t.state == "COMPLETE"} == pytest.approx(loop, abs=1e-12)
    trials = stored(storage, f"{ExactKLObjective(DIST, 'fixed', STEPS).name}:poly:grid")  # the family in the default name
    assert {t.user_attrs["family"] for t in trials} == {"poly"}
    assert {t.user_attrs["key"] for t in trials} == {point_key((k,)) for k in ks} == {f"{k:.12g},0" for k in ks}
    out = r.as_json()["best"]
    assert out["params"] == {"k": best} and out["spec"] == r.best.spec and out["a"] is None
    again = tune(ExactKLObjective(DIST, "fixed", STEPS), strategy="grid", storage=storage,
                 space=SearchSpace("poly", values={"k": ks}))
    assert again.new_evaluations == 0 and again.best == r.best


def test_a_one_parameter_report_plots_the_score_against_it(tmp_path):
    r = tune(ExactKLObjective(DIST, "fixed", STEPS), strategy="grid", storage=None,
             space=SearchSpace("poly", values={"k": (0.5, 1.0, 2.0)}))
    files = write_report(r, "exact-kl", STEPS, 5, tmp_path / "rep")
    assert "heatmap" not in files and open(files["scores"], "rb").read(4) == b"\x89PNG"
    report = open(files["report"]).read()
    assert f"`{r.best.spec}`" in report and "![score over k](scores.png)" in report
    header, *rows = open(files["trials_csv"]).read().splitlines()
    assert "family" in header.split(",") and "params" in header.split(",") and len(rows) == len(r.trials)


# --- a family registered here ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Power(Schedule):
    """alpha(t) = t**k, written here (not poly) to show a family only the test knows can be tuned."""

    k: float
    family: ClassVar[str] = "testpower"

    @property
    def spec(self) -> str:
        return f"testpower:{self.k!r}"

    def _alpha(self, t):
        return t ** self.k

    def _alpha_dot(self, t):
        with np.errstate(divide="ignore"):
            return self.k * t ** (self.k - 1.0)

    def _t_of_alpha(self, a):
        return a ** (1.0 / self.k)


def _power(k: float) -> _Power:
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"testpower k must be positive, got {k!r}")
    return _Power(float(k))


@pytest.fixture
def power_family():
    family = register_schedule("testpower", _power, params=(ScheduleParam("k", 0.3, 3.0, log=True),))
    try:
        yield family
    finally:
        getattr(schedules, "_unregister_schedule", lambda name: None)("testpower")


def test_tpe_over_a_family_registered_by_the_test(tmp_path, power_family):
    objective = ExactKLObjective(DIST, "fixed", STEPS)
    r = tune(objective, strategy="tpe", budget=10, storage=f"sqlite:///{tmp_path}/s.db", seed=0,
             space=SearchSpace("testpower"))
    done = [t for t in r.trials if t.state == "COMPLETE"]
    assert r.evaluations == len(done) == 10 and all(t.family == "testpower" for t in done)
    assert all(0.3 <= t.params["k"] <= 3.0 for t in done)
    assert r.best.spec.startswith("testpower:") and parse_schedule(r.best.spec) == _Power(r.best.params["k"])
    assert r.best.value == min(t.value for t in done)
    assert r.best.value == pytest.approx(objective.evaluate(_Power(r.best.params["k"])).value, abs=1e-12)


# --- refusals ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,needle", [
    ({"family": "nosuch"}, "'nosuch'"),  # the registry's message names it
    ({"family": "linear"}, "'linear' has no parameters to tune"),
    ({"family": "table"}, "'table' takes any count of numbers"),
    ({"family": "dream"}, "'dream' is not tunable: its parameter 'eps'"),
    ({"family": "beta", "bounds": {"c": (0.1, 1.0)}}, "unknown parameter 'c' of schedule family 'beta' (its parameters: a, b)"),
    ({"family": "poly", "values": {"a": (1.0,)}}, "unknown parameter 'a' of schedule family 'poly'"),
    ({"family": "beta", "bounds": {"a": (0.9, 0.2)}}, "a bounds must satisfy low < high, got (0.9, 0.2)"),
    ({"family": "beta", "bounds": {"b": (0.1, math.inf)}}, "b bounds must be finite numbers"),
    ({"family": "beta", "bounds": {"a": (0.0, 1.0)}, "log": True}, "a bounds must satisfy 0 < low < high (a log scale)"),
    ({"family": "poly", "bounds": {"k": (-1.0, 2.0)}}, "k bounds must satisfy 0 < low < high (a log scale), got (-1.0, 2.0)"),
    ({"family": "beta", "bounds": {"a": (0.0, 1.0)}}, "a bounds include 0.0, which the beta family refuses"),
    ({"family": "beta", "values": {"a": (0.5, -1.0)}}, "a grid values include -1.0, which the beta family refuses"),
    ({"family": "beta", "values": {"b": ()}}, "b grid values must be a non-empty list of numbers, got []"),
    ({"family": ("beta",)}, "family must be the name of a schedule family"),
])
def test_bad_search_spaces_are_refused_by_name(kwargs, needle):
    with pytest.raises(ValueError) as info:
        SearchSpace(**kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_family_without_a_grid_is_refused_for_grid_and_halving_before_anything_is_created(tmp_path):
    objective = ExactKLObjective(DIST, "fixed", STEPS)
    for strategy in ("grid", "halving"):
        with pytest.raises(ValueError, match="'poly' has no default grid for 'k'"):
            tune(objective, strategy=strategy, storage=f"sqlite:///{tmp_path}/s.db", space=SearchSpace("poly"))
    with pytest.raises(ValueError, match="'dream' has no default search range for 'eps'"):
        tune(objective, strategy="tpe", storage=f"sqlite:///{tmp_path}/s.db",
             space=SearchSpace("dream", values={"eps": (0.001, 0.01)}))
    assert list(tmp_path.iterdir()) == []


def test_a_study_searches_one_family(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    objective = ExactKLObjective(DIST, "fixed", STEPS)
    tune(objective, strategy="grid", storage=storage, study_name="one", space=SearchSpace(values={"a": (0.5,), "b": (0.5,)}))
    with pytest.raises(ValueError, match="study 'one' searches the schedule family 'beta', not 'poly'"):
        tune(objective, strategy="grid", storage=storage, study_name="one", space=SearchSpace("poly", values={"k": (1.0,)}))


def test_a_study_from_before_families_is_read_as_beta(tmp_path):
    """A study whose trials and study carry no family attribute (every study before families) resumes as Beta."""
    storage = f"sqlite:///{tmp_path}/s.db"
    objective = ExactKLObjective(DIST, "fixed", STEPS)
    space = SearchSpace(values={"a": (0.3, 0.7), "b": (0.5,)})
    first = tune(objective, strategy="grid", storage=storage, study_name="old", space=space)
    study = optuna.load_study(study_name="old", storage=storage)
    study._storage.set_study_user_attr(study._study_id, "family", None)  # as if written before families
    trials = study.get_trials()
    assert all("family" not in t.user_attrs for t in trials)  # Beta trials are stored exactly as they always were
    assert {t.user_attrs["key"] for t in trials} == {f"{a:.12g},{0.5:.12g},0" for a in (0.3, 0.7)}
    assert {tuple(sorted(t.params)) for t in trials} == {("a", "b")}
    again = tune(objective, strategy="grid", storage=storage, study_name="old", space=space)
    assert again.new_evaluations == 0 and again.best == first.best and again.family == "beta"
    with pytest.raises(ValueError, match="searches the schedule family 'beta'"):
        tune(objective, strategy="grid", storage=storage, study_name="old", space=SearchSpace("poly", values={"k": (1.0,)}))


def test_positive_int():
    assert positive_int(3, "steps") == 3 and positive_int(np.int64(2), "steps") == 2
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match=f"steps must be a positive integer, got {bad!r}"):
            positive_int(bad, "steps")


# --- the command line -------------------------------------------------------------------------------------


def test_tune_command_with_another_family(capsys, tmp_path):
    base = ["tune", "--dist", DIST, "--sampler", "fixed", "-N", str(STEPS), "--storage", f"sqlite:///{tmp_path}/s.db",
            "--family", "poly", "--json"]
    assert main([*base, "--strategy", "grid", "--values", "k=0.5,1,2"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert set(best["params"]) == {"k"} and best["spec"].startswith("poly:") and best["a"] is None
    assert main([*base, "--strategy", "random", "--budget", "3", "--bounds", "k=0.5,2"]) == 0
    assert 0.5 <= json.loads(capsys.readouterr().out)["best"]["params"]["k"] <= 2


@pytest.mark.parametrize("extra,needle", [
    (["--family", "poly", "--strategy", "grid", "--a-values", "0.5"], "--a-values applies to --family beta only"),
    (["--family", "poly", "--strategy", "tpe", "--b-bounds", "0.1,1"], "--b-bounds applies to --family beta only"),
    (["--family", "nosuch", "--strategy", "grid"], "'nosuch'"),
    (["--family", "poly", "--strategy", "grid"], "has no default grid for 'k'"),
    (["--strategy", "grid", "--values", "c=1,2"], "unknown parameter 'c' of schedule family 'beta'"),
    (["--strategy", "tpe", "--bounds", "a=2,1"], "bounds must be NAME=LOW,HIGH[;NAME=LOW,HIGH...] with LOW < HIGH"),
    (["--strategy", "tpe", "--bounds", "a=0.1,1", "--a-bounds", "0.2,0.9"], "--a-bounds and --bounds a=... both give a"),
])
def test_tune_command_refuses_bad_family_arguments(capsys, tmp_path, monkeypatch, extra, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["tune", "--dist", "toy2", "--sampler", "fixed", "-N", "3", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


# --- Pareto -----------------------------------------------------------------------------------------------


def _old_suggest(trial, sampler: str) -> dict:
    """The Pareto suggestion of ParetoSpace() before families and registry ranges, written out, to compare."""
    from mdm_energy.registry import sampler_spec

    takes = sampler_spec(sampler).defaults
    out: dict = {}
    if "schedule" in takes:
        a = trial.suggest_float("a", 0.1, 1.0, log=True)
        b = trial.suggest_float("b", 0.1, 1.0, log=True)
        out["schedule"] = schedules.Beta(round(a, 4), round(b, 4)).spec
        out["steps"] = trial.suggest_categorical("steps", [4, 8])
    for key, bounds, log in (("threshold", (0.3, 0.99), False), ("epsilon", (0.01, 4.0), True),
                             ("factor", (0.25, 4.0), True)):
        if key in takes:
            out[key] = round(trial.suggest_float(key, *bounds, log=log), 4)
    return out


@pytest.mark.parametrize("sampler", ["threshold-floor", "threshold", "entropy-bounded", "factor", "fixed"])
def test_a_seeded_beta_pareto_search_suggests_what_it_always_did(sampler):
    space = ParetoSpace(steps=(4, 8))
    new = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    old = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        t_new, t_old = new.ask(), old.ask()
        assert space.suggest(t_new, sampler) == _old_suggest(t_old, sampler)
        assert t_new.params == t_old.params and list(t_new.params) == list(t_old.params)  # same names, same order
        new.tell(t_new, [0.0, 0.0])
        old.tell(t_old, [0.0, 0.0])


def test_pareto_over_another_family(tmp_path):
    seen = []

    def fn(sampler, options):
        seen.append(options)
        return Score(1.0 - abs(parse_schedule(options.get("schedule", "poly:1")).alpha(0.5) - 0.3), 10, 0.01), 8.0

    r = pareto_tune(SamplerObjective(fn, "syn"), sampler="fixed", strategy="random", budget=4,
                    storage=f"sqlite:///{tmp_path}/p.db", space=ParetoSpace(family="poly", bounds={"k": (0.5, 2.0)}))
    trial_options = [p.options for p in r.trials]
    assert len(trial_options) == 4 and all(o["schedule"].startswith("poly:") for o in trial_options)
    assert all(0.5 <= float(o["schedule"].split(":")[1]) <= 2.0 for o in trial_options)
    names = {n for t in stored(f"sqlite:///{tmp_path}/p.db", "pareto:syn:fixed:poly:random") for n in t.params}
    assert names == {"k"}
    with pytest.raises(ValueError, match="a_bounds and b_bounds apply to the beta family only"):
        ParetoSpace(family="poly", a_bounds=(0.2, 0.9))


def test_pareto_tunes_every_option_the_registry_gives_a_range():
    """An option with a declared search range is tuned; the threshold keeps this space's bounds, whatever the
    registry says; an option without a range is left alone."""
    from mdm_energy import registry
    from mdm_energy.registry import Option, SearchRange, register_sampler

    saved = (dict(registry._SAMPLERS), dict(registry._OPTIONS))
    try:
        register_sampler("x", summary="a sampler with ranged options", target="mdm_energy.sampling.adaptive:ThresholdSampler",
                         options={"threshold": 0.9,
                                  "knob": Option("knob", 0.5, float, "a float knob", search=SearchRange(0.1, 2.0, log=True)),
                                  "count": Option("count", 5, int, "an integer knob", search=SearchRange(1, 9)),
                                  "alg": "origin"})
        _check_ranged_search()
    finally:
        for table, before in zip((registry._SAMPLERS, registry._OPTIONS), saved):
            table.clear()
            table.update(before)


def _check_ranged_search():
    space = ParetoSpace(threshold_bounds=(0.5, 0.6))
    assert space.searched("x") == ["threshold", "knob", "count"]
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        out = space.suggest(trial, "x")
        assert list(out) == ["threshold", "knob", "count"] and 0.5 <= out["threshold"] <= 0.6
        assert 0.1 <= out["knob"] <= 2.0 and out["knob"] == round(out["knob"], 4)
        assert isinstance(out["count"], int) and 1 <= out["count"] <= 9
        study.tell(trial, [0.0, 0.0])


def test_every_built_in_option_is_searched_held_fixed_or_left_at_its_default():
    """tune --pareto: an option of a built-in sampler is searched (a declared range, or the schedule and steps),
    held fixed when given (``FIXED_OPTIONS``), or one of the run-wide controls left at the sampler's default —
    never two of these; a new sampler's option must be placed in one (here, on purpose)."""
    from mdm_energy.cli._pareto import FIXED_OPTIONS
    from mdm_energy.registry import BUILTIN_SAMPLERS, sampler_spec

    at_default = {"alg", "alg_temp", "top_p", "top_k", "block_length", "cfg_scale", "cache", "cache_refresh",
                  "logits_eos_inf", "confidence_eos_eot_inf", "suppress_tokens", "stop_at_eos"}
    space = ParetoSpace()
    for name in BUILTIN_SAMPLERS:
        searched = {o for o, *_ in space._options(name)} | ({"schedule", "steps"} & set(sampler_spec(name).params))
        for option in sampler_spec(name).params:
            homes = [option in searched, option in FIXED_OPTIONS, option in at_default]
            assert sum(homes) == 1, (name, option, homes)


@pytest.mark.parametrize("extra, needle", [
    (["--sampler", "dus", "--dilation-skip", "5"], "dilation 2 with dilation_skip 5 does not fit a block of 24"),
    (["--sampler", "prophet", "-N", "4", "--answer-start", "30"], "answer_start 30 lies outside the generation window"),
    (["--sampler", "pc-sampler", "-N", "4", "--token-prior", "prior.txt"], "token id 50 is outside the vocabulary"),
    (["--sampler", "pc-sampler", "-N", "4", "--token-prior", "nowhere.json"], "token_prior 'nowhere.json' does not exist"),
    (["--sampler", "klass", "--kl-threshold", "0.02"], "unrecognized arguments: --kl-threshold 0.02"),  # searched
    (["--sampler", "fixed", "-N", "4", "--token-prior", "off"], "--token-prior does not apply to the fixed sampler"),
])
def test_tune_pareto_refuses_a_fixed_option_no_trial_can_run_with(tmp_path, capsys, monkeypatch, extra, needle):
    """A held-fixed option that fails every trial (the sampler is run once on one item first) is refused in one
    line, before the study is written; so are a searched option and one the sampler does not take."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    Path("prior.txt").write_text("3 10\n50 2\n")
    ck = str(Path(__file__).resolve().parents[1] / "checkpoints" / "countdown")
    argv = ["tune", "--pareto", "--objective", "task", "--task", "countdown", "--checkpoint", ck, "--limit", "8",
            "--strategy", "random", "--budget", "2", "--storage", f"sqlite:///{tmp_path}/t.db", "--json", *extra]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and needle in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior.txt"]  # no study written
