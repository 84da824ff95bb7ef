"""Tuning on lm-eval benchmarks with a real dLLM interface, shared studies on PostgreSQL, sharded evaluation.

Everything runs offline on a tiny LLaDA-style model and local task folders built here. References: our own
``generate()`` for each document (the objective's per-document scores), counts of generated requests
against the item scores stored in the study (nothing generated twice), a one-process run (two worker
commands on PostgreSQL, and two data-parallel processes under torchrun).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
transformers = pytest.importorskip("transformers")

import optuna  # noqa: E402
from _tiny_mdm import save_tiny  # noqa: E402

from mdm_energy.cli import main  # noqa: E402
from mdm_energy.integrations.huggingface import generate  # noqa: E402
from mdm_energy.integrations.lm_eval import MDMEnergyLM  # noqa: E402
from mdm_energy.integrations.lm_eval_objective import LMEvalObjective  # noqa: E402
from mdm_energy.schedules import Beta  # noqa: E402
from mdm_energy.tuning import SearchSpace, tune  # noqa: E402

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
GEN = "gen_length=8,block_length=8,chat=false,batch_size=8,trust_remote_code=true"  # tiny models ship their code
STEPS = 4


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)


def _yaml(name: str) -> str:
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {name}.jsonl\ntest_split: test\n"
            "output_type: generate_until\ndoc_to_text: \"{{question}}\"\ndoc_to_target: \"{{answer}}\"\n"
            "generation_kwargs:\n  until:\n    - \"\\n\"\nmetric_list:\n  - metric: exact_match\n    aggregation: mean\n"
            "    higher_is_better: true\n")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A tiny model and a local generation task of 24 documents whose even documents are answered right
    (the answers are this model's own greedy outputs under the linear schedule)."""
    root = tmp_path_factory.mktemp("lm-eval-tune")
    save_tiny(root / "model", seed=5)
    model = transformers.AutoModel.from_pretrained(root / "model", trust_remote_code=True).eval()
    tok = transformers.AutoTokenizer.from_pretrained(root / "model", trust_remote_code=True)
    questions = [f"{a}+{b}=" for a in range(1, 7) for b in range(3, 7)]
    outs = [t.split("\n")[0] for t in generate(model, tok, questions, steps=STEPS, gen_length=8, block_length=8,
                                               schedule="linear", chat=False)]
    tasks = root / "tasks"
    tasks.mkdir()
    rows = [{"question": q, "answer": o if i % 2 == 0 else o + "x"} for i, (q, o) in enumerate(zip(questions, outs))]
    (tasks / "mdm_tune_gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / "mdm_tune_gen.yaml").write_text(_yaml("mdm_tune_gen"))
    return {"model": root / "model", "tasks": tasks, "n": len(rows), "root": root}


def _objective(bench, **kw) -> LMEvalObjective:
    return LMEvalObjective(f"pretrained={bench['model']},{GEN}", "mdm_tune_gen", steps=STEPS,
                           include_path=str(bench["tasks"]), **kw)


@pytest.fixture(scope="module")
def objective(bench):
    return _objective(bench)


def test_objective_scores_each_document_as_a_direct_computation(objective, bench):
    score = objective.evaluate("linear")
    assert objective.direction == "maximize" and objective.item_count == bench["n"]
    assert score.value == pytest.approx(0.5) and score.n == bench["n"]
    assert objective.store.get("linear") == {i: float(i % 2 == 0) for i in range(bench["n"])}


def test_stored_items_are_never_generated_again(objective):
    lm = objective.lm()
    spec = Beta(0.5, 0.5)
    before = len(lm.nfe)
    small = objective.evaluate(spec, size=5, seed=3)
    assert len(lm.nfe) - before == 5
    larger = objective.evaluate(spec, size=10, seed=3)  # nested subsets: only the 5 new items are generated
    assert len(lm.nfe) - before == 10
    again = objective.evaluate(spec, size=10, seed=3)
    assert len(lm.nfe) - before == 10 and again == larger
    assert small.n == 5 and larger.n == 10
    assert all(n == STEPS for n in lm.nfe[before:])  # the fixed-count sampler makes exactly `steps` calls


def test_successive_halving_generates_each_item_once(bench, tmp_path):
    obj = _objective(bench)
    storage = f"sqlite:///{tmp_path}/h.db"
    r = tune(obj, strategy="halving", storage=storage, study_name="h", halving_min_size=3, halving_eta=2,
             space=SearchSpace(values={"a": (0.5, 1.0), "b": (0.5, 1.0)}))
    sizes = sorted({(t.rung, t.size) for t in r.trials if t.state == "COMPLETE"})
    assert sizes == [(0, 3), (1, 6), (2, 12), (3, 24)]
    stored = {k: v for k, v in optuna.load_study(study_name="h", storage=storage).user_attrs.items()
              if k.startswith("items:")}
    assert len(obj.lm().nfe) == sum(len(v) for v in stored.values())  # every generated item is stored once
    assert len(stored["items:linear"]) == bench["n"]


def test_tune_command_with_the_lm_eval_objective_resumes(bench, tmp_path, capsys):
    argv = ["tune", "--objective", "lm-eval", "--model-args", f"pretrained={bench['model']},{GEN}", "--tasks",
            "mdm_tune_gen", "--include-path", str(bench["tasks"]), "--steps", str(STEPS), "--strategy", "grid",
            "--a-values", "0.5,1", "--b-values", "0.5", "--storage", f"sqlite:///{tmp_path}/t.db", "--study", "t",
            "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["new_evaluations"] == 2 and first["baselines"]["linear"] == pytest.approx(0.5)
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["new_evaluations"] == 0 and again["best"] == first["best"]


def test_tune_runs_a_folder_s_code_only_with_consent(bench, tmp_path, capsys):
    """The tiny model ships its own Python: without --trust-remote-code (or trust_remote_code=true in the
    model_args) the command stops with one line and no study; with the flag it runs."""
    plain = GEN.replace(",trust_remote_code=true", "")
    argv = ["tune", "--objective", "lm-eval", "--model-args", f"pretrained={bench['model']},{plain}", "--tasks",
            "mdm_tune_gen", "--include-path", str(bench["tasks"]), "--steps", str(STEPS), "--strategy", "grid",
            "--a-values", "0.5", "--b-values", "0.5", "--storage", f"sqlite:///{tmp_path}/c.db", "--json"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-remote-code" in err, err
    assert not (tmp_path / "c.db").exists()
    assert main([*argv, "--trust-remote-code"]) == 0
    assert json.loads(capsys.readouterr().out)["baselines"]["linear"] == pytest.approx(0.5)
    assert main(["tune", "--dist", "toy2", "-N", "3", "--strategy", "grid", "--trust-remote-code",
                 "--storage", f"sqlite:///{tmp_path}/d.db"]) == 2
    assert "--trust-remote-code applies to --objective lm-eval only" in capsys.readouterr().err


@pytest.mark.parametrize("extra,needle", [
    (["--tasks", "no_such_task"], "does not know the task 'no_such_task'"),
    (["--tasks", "a,b"], "one lm-eval task"),
    (["--model-args", "0.3,pretrained=x"], "'0.3' has no '='"),
    (["--model-args", "pretrained=x,schedule=linear"], "must not set schedule"),
    (["--workers", "2", "--device", "cuda:0"], "one command per GPU"),
    (["--include-path", "/no/such/folder"], "--include-path is not a folder"),
])
def test_lm_eval_objective_bad_input(bench, tmp_path, capsys, extra, needle):
    base = {"--model-args": f"pretrained={bench['model']},{GEN}", "--tasks": "mdm_tune_gen",
            "--include-path": str(bench["tasks"])}
    for k, v in zip(extra[::2], extra[1::2]):
        base[k] = v
    argv = ["tune", "--objective", "lm-eval", "--steps", "4", "--strategy", "grid", "--storage",
            f"sqlite:///{tmp_path}/b.db"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "b.db").exists()


def test_a_study_keeps_its_objective(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/s.db"
    exact = ["tune", "--dist", "toy2", "-N", "3", "--strategy", "grid", "--a-values", "0.5", "--b-values", "0.5",
             "--storage", storage, "--study", "shared"]
    assert main(exact) == 0
    capsys.readouterr()
    assert main([*exact[:2], "markov:4,3,0", *exact[3:]]) == 2
    err = capsys.readouterr().err
    assert "already holds the objective 'exact-kl:toy2" in err


def test_unreachable_database_server_is_named(tmp_path, capsys, monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.chdir(tmp_path)
    argv = ["tune", "--dist", "toy2", "-N", "3", "--strategy", "grid", "--storage",
            "postgresql://mdm@127.0.0.1:1/nowhere"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach the database server 127.0.0.1:1" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# --- PostgreSQL: several workers, a killed worker, workers on other machines --------------------------------

def _trials(storage, study: str) -> list:
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def test_two_workers_on_postgresql_a_killed_one_is_redone(bench, objective, postgres_url):
    study = f"pg-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "mdm_energy", "tune", "--objective", "lm-eval", "--model-args",
           f"pretrained={bench['model']},{GEN}", "--tasks", "mdm_tune_gen", "--include-path", str(bench["tasks"]),
           "--steps", str(STEPS), "--strategy", "grid", "--a-values", "0.3,0.6,1", "--b-values", "0.4,0.8",
           "--storage", postgres_url, "--study", study, "--device", "cpu", "--json"]  # README: one command per device
    env = {**os.environ, **OFFLINE}
    # the study and its baselines first, so the two workers race on grid points only
    subprocess.run([*cmd[:cmd.index("--a-values")], "--a-values", "0.3", "--b-values", "0.4", *cmd[cmd.index("--storage"):]],
                   check=True, capture_output=True, env=env, timeout=300)
    storage = optuna.storages.RDBStorage(postgres_url)
    a = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    deadline, killed_trial = time.time() + 300, None
    while time.time() < deadline and killed_trial is None:  # kill worker a while it evaluates a point
        running = [t for t in _trials(storage, study) if t.state.name == "RUNNING" and t.user_attrs.get("pid") == a.pid]
        if running:
            os.kill(a.pid, signal.SIGKILL)
            killed_trial = running[0].number
        time.sleep(0.02)
    a.wait()
    assert killed_trial is not None, "worker a never started a trial"
    b_out = json.loads(b.communicate(timeout=300)[0])
    resumed = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=True).stdout)
    trials = _trials(storage, study)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    keys = Counter((t.params["a"], t.params["b"]) for t in done)
    assert len(keys) == 6 and max(keys.values()) == 1  # no point evaluated twice
    killed = next(t for t in trials if t.number == killed_trial)
    if killed.state.name == "FAIL":  # it was still running when killed: marked stale, its point redone (by worker
        assert killed.user_attrs.get("stale")  # b, which sees the dead pid on this host, or by the rerun)
        assert (killed.params["a"], killed.params["b"]) in keys
    assert resumed["evaluations"] == 6 and b_out["new_evaluations"] >= 1
    for t in done:  # equal to a one-process run of the same objective
        assert t.value == pytest.approx(objective.evaluate(Beta(t.params["a"], t.params["b"])).value)


def test_a_silent_worker_on_another_machine_is_redone(postgres_url, monkeypatch):
    """Heartbeats: a running trial of another host whose beat stopped is failed-stale and redone; one whose
    worker still beats is left alone."""
    from mdm_energy.tuning import TaskObjective
    from mdm_energy.tuning._optuna import create_running_trial, heartbeat
    from mdm_energy.tuning.claims import STORED_RANGE as _STORED
    from mdm_energy.tuning.claims import point_key
    from mdm_energy.tuning.storage import optuna_storage as _storage

    monkeypatch.setenv("MDM_ENERGY_HEARTBEAT", "1")
    obj = TaskObjective(lambda s, items: [getattr(s, "a", 0.5) + 0.01 * i for i in items], list(range(4)), name="hb")
    name = f"hb-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=_storage(postgres_url), direction="maximize")
    dist = optuna.distributions.FloatDistribution(*_STORED, log=True)
    ids = {}
    for a in (0.5, 1.0):
        ids[a] = create_running_trial(study, {"a": a, "b": 0.5}, {"a": dist, "b": dist},
                                      {"key": point_key((a, 0.5)), "strategy": "grid", "host": "elsewhere", "pid": 1})
    study._storage.record_heartbeat(ids[0.5][0])  # beats once, then its machine goes silent
    with heartbeat(study, ids[1.0][0]):  # this one's worker is alive
        time.sleep(5)  # longer than the grace period (4 beats)
        r = tune(obj, strategy="grid", storage=postgres_url, study_name=name,
                 space=SearchSpace(values={"a": (0.5, 1.0), "b": (0.5,)}))
    by_number = {t.number: t for t in r.trials}
    assert by_number[ids[0.5][1]].state == "FAIL" and by_number[ids[0.5][1]].stale
    assert by_number[ids[1.0][1]].state == "RUNNING"
    assert r.new_evaluations == 1 and (r.best.a, r.best.b) == (0.5, 0.5)


# --- the model under lm-eval: data parallel, batching, NFE, chat templates, the greedy check ------------------

def _lm_eval_run(bench, out_dir: Path, prefix: list[str], extra: str = "") -> dict:
    args = [*prefix, "run", "--model", "mdm_energy", "--model_args",
            f"pretrained={bench['model']},{GEN},steps={STEPS},schedule=linear{extra}", "--tasks", "mdm_tune_gen",
            "--include_path", str(bench["tasks"]), "--output_path", str(out_dir), "--log_samples"]
    proc = subprocess.run(args, cwd=bench["tasks"], capture_output=True, text=True, env={**os.environ, **OFFLINE},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out_dir.rglob("results*.json")).read_text())
    samples = [json.loads(line) for f in out_dir.rglob("samples_*.jsonl") for line in f.read_text().splitlines()]
    return {"results": results, "samples": sorted(samples, key=lambda s: s["doc_id"])}


def _find(obj, key: str):
    """The value of ``key`` anywhere in nested lists and dicts (lm-eval's layout of logged arguments)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def test_data_parallel_launch_equals_one_process_and_logs_nfe(bench, tmp_path):
    one = _lm_eval_run(bench, tmp_path / "one", [sys.executable, "-m", "mdm_energy", "lm-eval"])
    two = _lm_eval_run(bench, tmp_path / "two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                                 "--master_port", "29533", "-m", "mdm_energy", "lm-eval"])
    key = "exact_match,none"
    assert one["results"]["results"]["mdm_tune_gen"][key] == pytest.approx(0.5)
    assert two["results"]["results"]["mdm_tune_gen"][key] == one["results"]["results"]["mdm_tune_gen"][key]
    assert [s["filtered_resps"] for s in two["samples"]] == [s["filtered_resps"] for s in one["samples"]]
    assert len(two["samples"]) == bench["n"]
    for run in (one, two):  # NFE per request in the logged samples, the mean in the results
        assert all(_find(s["arguments"], "mdm_energy_nfe") == [STEPS] for s in run["samples"])
        assert run["results"]["config"]["mdm_energy_nfe_mean"] == STEPS


def test_batches_give_the_answers_of_batch_one_in_fewer_runs(tmp_path):
    """Dream's pairwise attention and position ids make left padding invisible, so a batch of prompts of
    different lengths answers each as alone."""
    from lm_eval.api.instance import Instance

    save_tiny(tmp_path / "dream", dream=True, seed=2)
    reqs = [Instance("generate_until", {}, (q, {"until": ["\n"]}), i)
            for i, q in enumerate(["1+2=", "30+4=", "7=", "123+456=", "9+9=", "a", "55+5=", "1"])]
    outs = {}
    for bs in (1, 4):
        lm = MDMEnergyLM(pretrained=str(tmp_path / "dream"), trust_remote_code=True, steps=4, gen_length=8, batch_size=bs, temperature=1.0,
                         seed=7)
        outs[bs] = (lm.generate_until(reqs), lm.batched_calls)
    assert outs[4][0] == outs[1][0]
    assert (outs[1][1], outs[4][1]) == (8, 2)


def test_lm_eval_chat_template_is_applied_once(tmp_path):
    save_tiny(tmp_path / "m")
    lm = MDMEnergyLM(pretrained=str(tmp_path / "m"), trust_remote_code=True, steps=4, gen_length=8)
    lm.tokenizer.chat_template = "{% for m in messages %}<{{ m['content'] }}>{% endfor %}{% if add_generation_prompt %}={% endif %}"
    text = lm.apply_chat_template([{"role": "user", "content": "1+2"}])
    assert text == "<1+2>="
    assert lm._encode(text) == lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert lm.chat_template(True) == lm.tokenizer.chat_template and lm.chat_template(False) is None


def test_the_greedy_check_is_off_unless_asked(tmp_path):
    from lm_eval.api.instance import Instance

    from _tiny_mdm import CHARS

    save_tiny(tmp_path / "m", seed=1)
    off = MDMEnergyLM(pretrained=str(tmp_path / "m"), trust_remote_code=True, mc_num=1)
    on = MDMEnergyLM(pretrained=str(tmp_path / "m"), trust_remote_code=True, mc_num=1, is_check_greedy=True)
    prefix = on._ids("1+2=")
    greedy = [c for c in CHARS if c.strip() and on._greedy(prefix, on._ids(c))]
    assert greedy, "no one-character continuation is greedy for this model"
    for cont, want in ((greedy[0], True), ("?" if greedy[0] != "?" else ":", False)):
        req = [Instance("loglikelihood", {}, ("1+2=", cont), 0)]
        assert on.loglikelihood(req)[0][1] is want
        assert off.loglikelihood(req)[0][1] is False


@pytest.mark.parametrize("sampler", ["dus", "wino", "threshold"])
def test_a_sampler_without_a_schedule_is_refused_by_name(sampler):
    """The objective tunes the schedule: a sampler that takes none is named, before anything is loaded."""
    with pytest.raises(ValueError) as info:
        LMEvalObjective(f"pretrained=/nonexistent,sampler={sampler}", "t", steps=4)
    msg = str(info.value)
    assert f"the {sampler} sampler takes none" in msg and "dus-schedule" in msg and "\n" not in msg
