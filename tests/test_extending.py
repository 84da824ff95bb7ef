"""The open tables: samplers and schedule families added from outside the package.

References: docs/extending.md run as written (its Python and its commands); the built-in sampler a user
sampler reduces to (token for token, and the exact engine's law); a revising loop written out in the
test; the import graph of the package parsed from its source (no cycles); real entry points of a real
installed distribution (a ``.dist-info`` folder on the path), not mocks.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_mdm import PositionFromMask

from mdm_energy import registry, schedules
from mdm_energy.exact import exact_sampler
from mdm_energy.registry import Option, register_sampler, sampler_spec
from mdm_energy.sampling import TIE_DECIMALS, CallableDenoiser, Decision, FixedCountSampler, Sampler, make_sampler
from mdm_energy.schedules import ScheduleParam, parse_schedule, register_schedule

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"


@pytest.fixture
def tables():
    """Restore the sampler, option and schedule tables after a test that registers into them."""
    saved = (dict(registry._SAMPLERS), dict(registry._OPTIONS), dict(schedules._FAMILIES))
    yield
    for table, before in zip((registry._SAMPLERS, registry._OPTIONS, schedules._FAMILIES), saved):
        table.clear()
        table.update(before)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != registry.PLUGINS_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *[v for v in (extra.pop("PYTHONPATH", None),) if v]])
    return {**env, **extra}


# --- the documented example, as written ------------------------------------------------------------------


def _doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def example(tmp_path):
    (tmp_path / "my_decoders.py").write_text(_doc_blocks("python")[0])
    (tmp_path / "checkpoints").symlink_to(ROOT / "checkpoints")
    return tmp_path


def test_docs_python_example_runs_as_written(example):
    (example / "use.py").write_text(_doc_blocks("python")[1])
    r = subprocess.run([sys.executable, "use.py"], cwd=example, env=_env(PYTHONPATH=str(example)),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "[1 3 7 8 4 1]" and lines[-1] == "[6, 6, 6, 6]"
    answers, nfe = lines[1].rsplit("] [", 1)
    assert all(1 <= int(v) <= 24 for v in nfe.rstrip("]").split(","))
    assert r.stderr == ""  # no warning from the user's schedule either


def test_docs_commands_run_as_written(example):
    lines = [ln[2:] for block in _doc_blocks("console") for ln in block.splitlines() if ln.startswith("$ ")]
    assert len(lines) == 6 and lines[0].startswith("export MDM_ENERGY_PLUGINS=")
    script = "set -e\n" + "\n".join(f"{ln} > out{i}.txt" if i else ln for i, ln in enumerate(lines))
    r = subprocess.run(["bash", "-c", script], cwd=example, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    table = (example / "out1.txt").read_text()
    assert "kumaraswamy:1.5,1.5" in table
    margin = json.loads((example / "out2.txt").read_text())
    assert margin["sampler"].startswith("MarginThreshold(margin=0.6,") and margin["n"] == 40 and 1 <= margin["nfe"] <= 24
    fixed = json.loads((example / "out3.txt").read_text())
    assert fixed["nfe"] == 6.0
    front = json.loads((example / "out4.txt").read_text())
    assert front["evaluations"] == 4 and front["front"]
    assert all(0.05 <= p["options"]["margin"] <= 0.95 for p in front["front"])
    assert (example / "pareto-margin").is_dir()
    family = json.loads((example / "out5.txt").read_text())
    assert all(p["options"]["schedule"].startswith("kumaraswamy:") and p["options"]["steps"] in (4, 6)
               for p in family["front"])


# --- registration: what is refused -------------------------------------------------------------------------


@pytest.mark.parametrize("call,needle", [
    (lambda: register_sampler("fixed", summary="x", options={}, target=FixedCountSampler), "'fixed' is already registered"),
    (lambda: register_sampler("mine", summary="x", options={"knob": 1.0}, target=FixedCountSampler),
     "option 'knob' has no declaration (no validator)"),
    (lambda: register_sampler("mine", summary="x", options={"knob": Option("knob", 1.0, None, "h")}, target=Sampler),
     "option 'knob' needs a validator"),
    (lambda: register_sampler("mine", summary="x", options={}, target="no.such.module:Cls"), None),
    (lambda: register_sampler("mine", summary="x", options={}, target="not a target"), "target must be a class"),
    (lambda: register_sampler("mine", summary="x", options={}, target=Sampler, exact_law="gibbs"), "unknown exact law 'gibbs'"),
    (lambda: register_sampler("mine", summary="x", options={"threshold": 2.0}, target=Sampler),
     "the default of 'threshold' is refused by its check"),
    (lambda: register_sampler("a b", summary="x", options={}, target=Sampler), "a sampler name must be"),
    (lambda: registry.register_option(Option("threshold", 0.5, float, "another meaning")), "'threshold' is already declared"),
    (lambda: register_schedule("beta", schedules.Beta), "schedule family 'beta' is already registered"),
    (lambda: ScheduleParam("k", 2.0, 1.0), "bad range"),
])
def test_registration_refuses_with_one_line(tables, call, needle):
    if needle is None:  # a target is imported on first use: the error names it then, and the others keep working
        call()
        with pytest.raises(ValueError, match=r"the mine sampler's class 'no.such.module:Cls' cannot be imported"):
            make_sampler("mine")
        assert make_sampler("fixed", steps=2).steps == 2
        return
    with pytest.raises(ValueError, match=re.escape(needle)):
        call()


def test_an_option_may_not_hide_a_loop_method(tables):
    class Bad(Sampler):
        def decide(self, run, block, step, masked):
            raise AssertionError

    with pytest.raises(ValueError, match="option name 'plan' is taken by the Bad class"):
        register_sampler("bad", summary="x", options={"plan": Option("plan", 1, int, "h")}, target=Bad)
    assert "bad" not in registry.SAMPLERS and "plan" not in registry.OPTIONS  # a refusal registers nothing


def test_an_option_is_declared_once(tables):
    with pytest.raises(ValueError, match="option 'remasking' is already declared"):
        register_sampler("mine", summary="x", target=Sampler,
                         options={"remasking": Option("remasking", "foo", str, "another meaning", choices=("foo",))})
    knob = Option("knob", 1.0, float, "a knob")
    register_sampler("one", summary="x", options={"knob": knob}, target="mdm_energy.sampling.adaptive:ThresholdSampler")
    register_sampler("two", summary="x", options={"knob": Option("knob", 2.0, float, "a knob")},
                     target="mdm_energy.sampling.adaptive:ThresholdSampler")  # the same declaration, its own default
    assert sampler_spec("two").defaults["knob"] == 2.0 and registry.OPTIONS["knob"].default == 1.0


def test_an_exact_law_needs_a_schedule_steps_and_temperature(tables):
    with pytest.raises(ValueError, match="declares the exact law 'fixed-count' but takes no 'schedule' option"):
        register_sampler("mine", summary="x", options={"threshold": 0.5}, target=Sampler, exact_law="fixed-count")


class _Lazy(Sampler):
    """Commits one position per call but stops after two calls: a block of four is left half masked."""

    def block_steps(self, run, block):
        return 2

    def decide(self, run, block, step, masked):
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        best = torch.zeros_like(masked)
        best[torch.arange(len(masked)), conf.argmax(-1)] = True
        return Decision(best, cand)


def test_a_block_left_masked_is_an_error_not_silent(tables):
    register_sampler("lazy", summary="x", options={"temperature": 0.0, "block_length": None}, target=_Lazy)
    with pytest.raises(RuntimeError, match="the lazy sampler left 2 position\\(s\\) of block 0 masked after its last step"):
        make_sampler("lazy")(_tiny(), [[1]], 4)


# --- a user sampler: the built-in rule it reduces to, and the exact engine -------------------------------------


def _tiny():
    model = PositionFromMask(seed=3, vocab=12)
    return CallableDenoiser(lambda x, am=None: model(x, am), mask_id=11, vocab_size=12)


def test_user_sampler_with_a_declared_exact_law_matches_the_builtin(tables):
    @register_sampler("my-fixed", summary="the fixed-count rule under another name",
                      options=dict(sampler_spec("fixed").defaults), exact_law="fixed-count")
    class MyFixed(FixedCountSampler):
        pass

    den = _tiny()
    for opts in ({"steps": 4}, {"steps": 4, "temperature": 1.0, "schedule": "beta:0.9,0.3"}, {"steps": 4, "block_length": 4}):
        a = make_sampler("my-fixed", **opts)(den, [[1, 2]] * 3, 8, seeds=[5, 6, 7], return_trajectory=True)
        b = make_sampler("fixed", **opts)(den, [[1, 2]] * 3, 8, seeds=[5, 6, 7], return_trajectory=True)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.trajectory, b.trajectory) and torch.equal(a.nfe, b.nfe)
    np.testing.assert_array_equal(exact_sampler("toy2", "my-fixed", "sin2", 3).law, exact_sampler("toy2", "fixed", "sin2", 3).law)
    assert "my-fixed" in registry.sampler_names(exact=True)


def test_user_schedule_family_is_usable_by_name(tables):
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class Power(schedules.Schedule):  # alpha = t^k: the poly family again, under a new name
        k: float
        family: ClassVar[str] = "power"

        @property
        def spec(self):
            return f"power:{self.k!r}"

        def _alpha(self, t):
            return t ** self.k

        def _alpha_dot(self, t):
            return self.k * t ** (self.k - 1)

        def _t_of_alpha(self, a):
            return a ** (1 / self.k)

    register_schedule("power", Power, params=(ScheduleParam("k", 0.5, 3.0, log=True),))
    assert parse_schedule("power:2").counts(24, 4).tolist() == parse_schedule("poly:2").counts(24, 4).tolist()
    assert schedules.schedule_family("power").tunable and not schedules.schedule_family("dream").tunable
    with pytest.raises(ValueError, match="power takes 1 number"):
        parse_schedule("power:1,2")
    den = _tiny()
    a = make_sampler("fixed", schedule="power:2", steps=4)(den, [[1]], 8)
    b = make_sampler("fixed", schedule="poly:2", steps=4)(den, [[1]], 8)
    assert torch.equal(a.tokens, b.tokens)
    assert exact_sampler("toy2", "ancestral", "power:2", 3).kl == pytest.approx(exact_sampler("toy2", "ancestral", "poly:2", 3).kl)


# --- revision: a decoder that re-masks, against the loop written out here ---------------------------------------


class _CommitThenRevise(Sampler):
    """Commits the most confident masked position per call; at the second call of every block it also re-masks
    the position its first call committed, and asks to re-mask the whole prompt (which must be refused)."""

    name = "commit-then-revise"

    def block_steps(self, run, block):
        return block.length + 1  # one re-mask per block: one more call than positions

    def decide(self, run, block, step, masked):
        cand, conf = self.candidates(run, step, masked, "low_confidence")
        best = torch.zeros_like(masked)
        best[torch.arange(len(masked)), conf.argmax(-1)] = True
        remask = None
        if block.step == 1:
            remask = (run.trajectory[step.rows] == run.calls - 1) & block.positions  # the first call's commit
            remask |= run.canvas.prompt_mask[step.rows]
        return Decision(best, cand, remask)


def _reference_revise(model, prompt, L, block_length, mask=11):
    """The same rule as a plain loop: per block, call; commit the argmax of the most confident masked position
    (probability of the argmax, ties to the lowest position); at the block's second call re-mask the first commit."""
    x = torch.tensor([prompt + [mask] * L])
    traj = torch.zeros_like(x)
    P, calls = len(prompt), 0
    for lo in range(P, P + L, block_length):
        first, k = None, 0
        while bool((x[0, lo:lo + block_length] == mask).any()):
            with torch.no_grad():
                logits = model(x).double()
            logits[..., mask] = float("-inf")
            calls += 1
            probs = torch.softmax(logits[0], -1)
            conf, cand = probs.max(-1)
            conf = torch.round(conf, decimals=TIE_DECIMALS)  # ties, as the library rounds its scores
            where = [j for j in range(lo, lo + block_length) if x[0, j] == mask]
            j = max(where, key=lambda p: (float(conf[p]), -p))
            if k == 1:
                x[0, first], traj[0, first] = mask, 0
            x[0, j], traj[0, j] = cand[j], calls
            first = j if k == 0 else first
            k += 1
    return x, traj, calls


def test_revision_remasks_committed_tokens_and_never_the_prompt(tables):
    register_sampler("commit-then-revise", summary="test rule: commit one, re-mask the first commit once per block",
                     options={"temperature": 0.0, "block_length": None}, target=_CommitThenRevise)
    model = PositionFromMask(seed=1, vocab=12)
    den = CallableDenoiser(lambda x, am=None: model(x, am), mask_id=11, vocab_size=12)
    prompt = [1, 2, 3]
    out = make_sampler("commit-then-revise", block_length=4)(den, [prompt], 8, return_trajectory=True)
    want, traj, calls = _reference_revise(model, prompt, 8, 4)
    assert torch.equal(out.tokens, want) and torch.equal(out.trajectory, traj)
    assert out.calls == calls == 2 * (4 + 1) and out.nfe.tolist() == [calls]
    assert out.tokens[0, :3].tolist() == prompt and bool((out.generated != 11).all())


# --- the package: no import cycles -------------------------------------------------------------------------------


def test_no_module_imports_one_that_imports_it_back():
    root = ROOT / "src" / "mdm_energy"
    modules = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (f, package)
    graph = {}
    for name, (f, package) in modules.items():
        here = name if package else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(f.read_text()).body:  # module level: imports inside functions run later
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                deps |= ({f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names}
                         if node.module is None else {target})
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                deps |= {n for n in names if n.startswith("mdm_energy")}
        graph[name] = {d for d in deps if d in modules and d != name}
    state: dict[str, int] = {}
    cycles = []

    def visit(u, path):
        state[u] = 1
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(path[path.index(v):] + [v])
            elif v not in state:
                visit(v, path + [v])
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
    assert any("mdm_energy.registry" in deps for deps in graph.values())  # the parser sees imports at all


def test_sampling_modules_import_in_any_order():
    for first in ("hybrid", "dream", "fixed", "adaptive", "random_reveal", "factory"):
        code = f"import mdm_energy.sampling.{first}, mdm_energy.sampling; mdm_energy.sampling.make_sampler('dream')"
        subprocess.run([sys.executable, "-c", code], check=True, env=_env())


# --- plug-ins through real entry points ---------------------------------------------------------------------------


def _install(site: Path, dist: str, module: str, source: str, groups: dict[str, str]) -> None:
    """A real (minimal) installed distribution: its module and a .dist-info with METADATA and entry points."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(f"[{g}]\n{n} = {module}\n" for n, g in groups.items()))


GOOD = """
from mdm_energy.registry import RANKED_OPTIONS, register_sampler
register_sampler("plugged-fixed", summary="the fixed-count rule from a plug-in",
                 options={"schedule": "linear", "steps": 64, "remasking": "low_confidence", **RANKED_OPTIONS,
                          "skip_empty_steps": False}, target="mdm_energy.sampling.fixed:FixedCountSampler")
"""


def test_entry_point_plugins_are_found_and_broken_ones_contained(tmp_path):
    _install(tmp_path, "goodplug", "goodplug", GOOD, {"good": "mdm_energy.samplers"})
    _install(tmp_path, "badplug", "badplug", "raise RuntimeError('boom at import')\n", {"bad": "mdm_energy.schedules"})
    _install(tmp_path, "dupplug", "dupplug", GOOD.replace("plugged-fixed", "half-a") + GOOD.replace("plugged-fixed", "fixed"),
             {"dup": "mdm_energy.samplers"})
    env = _env(PYTHONPATH=str(tmp_path))
    ck = str(ROOT / "checkpoints" / "countdown")

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "mdm_energy", *argv], env=env, capture_output=True, text=True,
                              timeout=300)

    r = cli("eval", "--task", "countdown", "--checkpoint", ck, "--sampler", "plugged-fixed", "-N", "4", "--limit", "8",
            "--json")
    builtin = cli("eval", "--task", "countdown", "--checkpoint", ck, "--sampler", "fixed", "-N", "4", "--limit", "8", "--json")
    assert r.returncode == 0 and builtin.returncode == 0, r.stderr + builtin.stderr
    got, want = json.loads(r.stdout), json.loads(builtin.stdout)
    assert got["value"] == want["value"] and got["nfe"] == want["nfe"] == 4.0
    warnings = [ln for ln in r.stderr.splitlines() if "plug-in" in ln]
    assert len(warnings) == 2 and r.stderr.count("\n") == 2
    assert any("bad (mdm_energy.schedules: badplug)" in ln and "RuntimeError: boom at import" in ln for ln in warnings)
    assert any("dup (mdm_energy.samplers: dupplug)" in ln and "'fixed' is already registered" in ln for ln in warnings)
    half = cli("eval", "--task", "countdown", "--checkpoint", ck, "--sampler", "half-a", "-N", "4", "--limit", "2")
    assert half.returncode == 2 and "unknown sampler 'half-a'" in half.stderr  # a failed plug-in leaves nothing behind
    # naming a schedule family when a schedule plug-in failed: exit 2, one error line that says which plug-in
    r = cli("schedule", "nosuch:1", "--steps", "4", "--length", "8")
    assert r.returncode == 2 and r.stdout == ""
    error = [ln for ln in r.stderr.splitlines() if ln.startswith("mdm-energy: error:")]
    assert len(error) == 1 and "unknown schedule family 'nosuch'" in error[0]
    r = cli("eval", "--task", "countdown", "--checkpoint", ck, "--sampler", "nosuch", "-N", "4")
    error = [ln for ln in r.stderr.splitlines() if ln.startswith("mdm-energy: error:")]
    assert r.returncode == 2 and len(error) == 1 and "unknown sampler 'nosuch'" in error[0] and "badplug" in error[0]
    # from Python, without the command line: the plug-in's sampler by name, the broken one a warning
    code = ("import warnings; warnings.simplefilter('error', RuntimeWarning)\n"
            "from mdm_energy.sampling import make_sampler\n"
            "try:\n    make_sampler('plugged-fixed')\nexcept RuntimeWarning as w:\n    print('warned', w)\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "warned plug-in" in r.stdout


def test_plugins_env_loads_a_file_and_names_a_missing_one(tmp_path):
    (tmp_path / "mine.py").write_text(GOOD.replace("plugged-fixed", "from-file"))
    code = "from mdm_energy.registry import sampler_names; print('from-file' in sampler_names())"
    r = subprocess.run([sys.executable, "-c", code], env=_env(MDM_ENERGY_PLUGINS=f"{tmp_path / 'mine.py'},nope_mod"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "True"
    assert "nope_mod ($MDM_ENERGY_PLUGINS) was not loaded: ModuleNotFoundError" in r.stderr


# --- the docs table and the listing read the declarations --------------------------------------------------------


def test_design_docs_sampler_table_is_the_registrys():
    from mdm_energy.registry import BUILTIN_SAMPLERS, sampler_table

    text = (ROOT / "docs" / "design.md").read_text()
    start = text.index("| name | each model call | options (defaults) | exact law (§5) |")
    assert text[start:start + len(sampler_table(BUILTIN_SAMPLERS))] == sampler_table(BUILTIN_SAMPLERS)


def test_samplers_command_lists_plugins_from_their_declaration(tmp_path):
    (tmp_path / "mine.py").write_text(GOOD.replace("plugged-fixed", "listed-one"))
    r = subprocess.run([sys.executable, "-m", "mdm_energy", "samplers", "--json"], capture_output=True, text=True,
                       env=_env(MDM_ENERGY_PLUGINS=str(tmp_path / "mine.py")), timeout=120)
    assert r.returncode == 0, r.stderr
    listed = {s["name"]: s for s in json.loads(r.stdout)["samplers"]}
    assert set(registry.BUILTIN_SAMPLERS) | {"listed-one"} == set(listed)
    assert listed["listed-one"]["options"]["steps"]["default"] == 64
    assert listed["listed-one"]["target"] == "mdm_energy.sampling.fixed:FixedCountSampler"


def test_a_plugin_option_spelled_like_a_command_flag_leaves_the_command_intact(tmp_path):
    (tmp_path / "clash.py").write_text(
        "from mdm_energy.registry import Option, register_sampler\n"
        "register_sampler('clashy', summary='a threshold rule with an option named like eval\\'s --limit',\n"
        "                 options={'limit': Option('limit', 3, int, 'clashes with --limit'), 'threshold': 0.5},\n"
        "                 target='mdm_energy.sampling.adaptive:ThresholdSampler')\n")
    env = _env(MDM_ENERGY_PLUGINS=str(tmp_path / "clash.py"))
    r = subprocess.run([sys.executable, "-m", "mdm_energy", "eval", "--task", "countdown", "--checkpoint",
                        str(ROOT / "checkpoints" / "countdown"), "--sampler", "clashy", "--limit", "4", "--json"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n"] == 4 and "limit=3" in out["sampler"]  # --limit is eval's; the sampler keeps its default
    assert "option 'limit' of the clashy sampler has no flag in 'mdm-energy eval'" in r.stderr


# --- an early-commit rule fits the hooks as they are ---------------------------------------------------------------


class _CommitAllWhenSure(Sampler):
    """An early-commit rule of the kind the next decoders need: each call commits the most confident masked position;
    once every masked position's top-1 minus top-2 margin clears ``0.1``, it commits all of them at once. It keeps the
    margins of its previous call in ``block.scratch`` (the history a KLASS-like rule needs) and counts its early
    exits in ``run.scratch``."""

    name = "commit-all-when-sure"

    def begin(self, run):
        run.scratch["exits"] = 0

    def decide(self, run, block, step, masked):
        cand, margin = self.candidates(run, step, masked, "margin")
        best = torch.zeros_like(masked)
        best[torch.arange(len(masked)), margin.argmax(-1)] = True
        sure = (torch.where(masked, margin, torch.inf) >= 0.1).all(-1, keepdim=True)
        block.scratch = margin  # the previous call's margins, for a rule that compares calls
        run.scratch["exits"] += int(sure.sum())
        return Decision(torch.where(sure, masked, best), cand)


def _reference_commit_all(model, prompt, L, mask=11):
    x = torch.tensor([prompt + [mask] * L])
    calls = exits = 0
    while bool((x == mask).any()):
        with torch.no_grad():
            logits = model(x).double()
        logits[..., mask] = float("-inf")
        calls += 1
        probs = torch.softmax(logits[0], -1)
        top = probs.topk(2, -1).values
        margin = torch.round(top[:, 0] - top[:, 1], decimals=TIE_DECIMALS)
        where = [j for j in range(len(prompt), len(prompt) + L) if x[0, j] == mask]
        if all(float(margin[j]) >= 0.1 for j in where):
            exits += 1
            chosen = where
        else:
            chosen = [max(where, key=lambda p: (float(margin[p]), -p))]
        for j in chosen:
            x[0, j] = int(probs[j].argmax())
    return x, calls, exits


def test_an_early_commit_rule_needs_no_change_to_the_loop(tables):
    register_sampler("commit-all-when-sure", summary="test rule: commit everything once every margin is clear",
                     options={"temperature": 0.0, "block_length": None}, target=_CommitAllWhenSure)
    all_calls = []
    for seed in range(8):
        model = PositionFromMask(seed=seed, vocab=12)
        den = CallableDenoiser(lambda x, am=None: model(x, am), mask_id=11, vocab_size=12)
        out = make_sampler("commit-all-when-sure")(den, [[1, 2]], 10)
        want, calls, exits = _reference_commit_all(model, [1, 2], 10)
        assert torch.equal(out.tokens, want) and out.calls == calls and exits <= 1
        all_calls.append(calls)
    assert min(all_calls) < 5 and max(all_calls) == 10  # the rule exits early on some models, not on others
