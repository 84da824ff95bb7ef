"""Hugging Face generation and the lm-evaluation-harness model, offline, on tiny models built here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from _tiny_mdm import save_tiny, tiny_tokenizer  # noqa: E402

from mdm_energy.integrations.huggingface import (  # noqa: E402
    HFDenoiser,
    encode_prompts,
    generate,
    model_family,
    trim_at_stop,
)
from mdm_energy.schedules import parse_schedule  # noqa: E402

DATA = Path(__file__).parent / "data" / "lm_eval"
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny(root / "llada")
    save_tiny(root / "dream", dream=True)
    return root


def load(path):
    model = transformers.AutoModel.from_pretrained(path, trust_remote_code=True)
    tok = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    return model.eval(), tok


def test_round_trip_and_family(tiny_dirs):
    model, tok = load(tiny_dirs / "llada")
    again, _ = load(tiny_dirs / "llada")
    x = torch.tensor([tok("1+2=")["input_ids"]])
    assert torch.equal(model(x).logits, again(x).logits)  # weights round-trip exactly
    assert model_family(model) == "llada" and model_family(load(tiny_dirs / "dream")[0]) == "dream"
    assert model_family(model, "masked") == "masked"
    with pytest.raises(ValueError, match="'gpt'"):
        model_family(model, "gpt")


@pytest.mark.parametrize("which", ["llada", "dream"])
def test_generate_uses_the_schedule_counts(tiny_dirs, which):
    model, tok = load(tiny_dirs / which)
    prompts = ["1+2=", "33+4=", "7="]
    texts, out = generate(model, tok, prompts, steps=4, gen_length=16, block_length=8, schedule="beta:0.9,0.3",
                          generator=torch.Generator().manual_seed(0), return_output=True)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    per_block = parse_schedule("beta:0.9,0.3").counts(8, 2).tolist()
    for row in out.trajectory:
        assert [int((row == k).sum()) for k in range(1, 5)] == per_block * 2
    ids = [tok(p)["input_ids"] for p in prompts]
    P = out.gen_start
    for b, p in enumerate(ids):  # prompts left-padded and intact, padding masked out for the model
        assert out.tokens[b, P - len(p):P].tolist() == p
        assert out.attention_mask[b, : P - len(p)].sum() == 0
    assert (out.generated != tok.mask_token_id).all()


def test_dream_logits_are_shifted(tiny_dirs):
    model, tok = load(tiny_dirs / "dream")
    from mdm_energy.integrations.huggingface import denoiser_for

    den = denoiser_for(model, tok)
    assert den.shift_logits and den.mask_id == tok.mask_token_id
    x = torch.tensor([tok("12+3=")["input_ids"]])
    raw = model(x).logits
    assert torch.equal(den(x)[:, 1:], raw[:, :-1]) and torch.equal(den(x)[:, 0], raw[:, 0])


def test_chat_template_and_stop_tokens():
    tok = tiny_tokenizer()
    assert encode_prompts(tok, ["ab"]) == [tok("ab")["input_ids"]]  # no template: plain
    tok.chat_template = "{% for m in messages %}q:{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}={% endif %}"
    assert tok.decode(encode_prompts(tok, ["ab"])[0]) == "q:ab="
    assert tok.decode(encode_prompts(tok, ["ab"], chat=False)[0]) == "ab"
    assert trim_at_stop([5, 6, 2, 7], {2}) == [5, 6]


def test_hf_denoiser_reads_ids_from_config_and_tokenizer(tiny_dirs):
    model, tok = load(tiny_dirs / "llada")
    den = HFDenoiser(model, tokenizer=tok)
    assert den.mask_id == 3 and den.eos_id == 2 and den.max_length == 96 and den.vocab_size == len(tok)


# --- lm-evaluation-harness ------------------------------------------------------------------------


def test_model_args_keep_commas_in_the_schedule():
    pytest.importorskip("lm_eval")
    from mdm_energy.integrations.lm_eval import parse_model_args

    args = parse_model_args("pretrained=/m,schedule=beta:0.9,0.3,steps=64,gen_length=256,temperature=0.5,chat=false")
    assert args == {"pretrained": "/m", "schedule": "beta:0.9,0.3", "steps": 64, "gen_length": 256,
                    "temperature": 0.5, "chat": False}
    assert parse_model_args("schedule=table:0.1,0.5,0.9")["schedule"] == "table:0.1,0.5,0.9"
    assert parse_model_args("schedule='beta:0.9,0.3',steps=8")["schedule"] == "beta:0.9,0.3"
    with pytest.raises(ValueError, match="'0.3'"):
        parse_model_args("0.3,schedule=linear")


@pytest.mark.parametrize("args, want", [
    ("sampler=klass,threshold=0.7,kl_threshold=0.02,kl_history=3", {"threshold": 0.7, "kl_threshold": 0.02, "kl_history": 3}),
    ("sampler=prophet,steps=8,gap_early=6,gap_mid=4.5,gap_late=2,answer_start=4,answer_length=5,skip_empty_steps=true",
     {"gap_early": 6.0, "gap_mid": 4.5, "gap_late": 2.0, "answer_start": 4, "answer_length": 5, "skip_empty_steps": True}),
    ("sampler=pc-sampler,steps=8,position_decay=0.5,calibration_clip=5,token_prior=off",
     {"position_decay": 0.5, "calibration_clip": 5.0, "token_prior": "off"}),
    ("sampler=pc-sampler,steps=8,token_prior=PRIOR", {"token_prior": "PRIOR"}),
    ("sampler=dus,dilation=3,dilation_skip=1", {"dilation": 3, "dilation_skip": 1}),
    ("sampler=dus-schedule,schedule=beta:0.9,0.3,steps=4,dilation=2,dilation_skip=2",
     {"dilation": 2, "dilation_skip": 2, "steps": 4}),
])
def test_model_args_take_the_new_rules_options(tiny_dirs, tmp_path, args, want):
    """model_args of klass, prophet, pc-sampler and the DUS samplers reach the sampler as their typed values."""
    pytest.importorskip("lm_eval")
    from mdm_energy.integrations.lm_eval import MDMEnergyLM

    prior = tmp_path / "counts.txt"
    prior.write_text("3 10\n4 2\n")
    args, want = args.replace("PRIOR", str(prior)), {k: str(prior) if v == "PRIOR" else v for k, v in want.items()}
    lm = MDMEnergyLM.create_from_arg_string(f"pretrained={tiny_dirs / 'llada'},trust_remote_code=true,gen_length=16,{args}")
    assert {k: lm.sampler_options[k] for k in want} == want
    assert all(type(lm.sampler_options[k]) is type(v) for k, v in want.items())


@pytest.mark.parametrize("args, needle", [
    ("sampler=klass,kl_threshold=0", "kl_threshold must be a number > 0"),
    ("sampler=klass,kl_history=0", "kl_history must be a positive integer"),
    ("sampler=prophet,gap_late=-1", "gap_late must be a finite number >= 0"),
    ("sampler=prophet,kl_history=2", "unknown model_args for the prophet sampler: kl_history"),
    ("sampler=prophet,cache=prefix", "unknown model_args for the prophet sampler: cache"),
    ("sampler=dus,steps=8", "unknown model_args for the dus sampler: steps"),
    ("sampler=dus,dilation=0", "dilation must be a positive integer"),
    ("sampler=pc-sampler,token_prior=nowhere.json", "token_prior 'nowhere.json' does not exist"),
    ("sampler=pc-sampler,calibration_clip=0", "calibration_clip must be a number > 0"),
    ("sampler=fixed,token_prior=off", "unknown model_args for the fixed sampler: token_prior"),
])
def test_model_args_refuse_a_bad_new_option_by_name(args, needle):
    """Refused before any model is loaded (pretrained names no folder at all)."""
    pytest.importorskip("lm_eval")
    from mdm_energy.integrations.lm_eval import MDMEnergyLM

    with pytest.raises(ValueError, match=__import__("re").escape(needle)):
        MDMEnergyLM.create_from_arg_string(f"pretrained=/nonexistent/model,{args}")


def run_lm_eval(cmd_prefix, tiny_dirs, tmp_path, task, which="llada", schedule="'beta:0.9,0.3'"):
    out_dir = tmp_path / f"out-{task}-{which}"
    args = ["run", "--model", "mdm_energy",
            "--model_args", f"pretrained={tiny_dirs / which},trust_remote_code=true,schedule={schedule},steps=4,gen_length=8,block_length=8,mc_num=4",
            "--tasks", task, "--include_path", str(DATA), "--output_path", str(out_dir), "--limit", "4"]
    env = {**os.environ, **OFFLINE}
    proc = subprocess.run(cmd_prefix + args, cwd=DATA, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list(out_dir.rglob("results*.json"))
    assert results, f"no results file under {out_dir}"
    return json.loads(results[0].read_text())["results"][task]


def test_lm_eval_generate_until_through_our_command(tiny_dirs, tmp_path):
    pytest.importorskip("lm_eval")
    res = run_lm_eval([sys.executable, "-m", "mdm_energy", "lm-eval"], tiny_dirs, tmp_path, "mdm_tiny_gen")
    assert 0.0 <= res["exact_match,none"] <= 1.0


def test_lm_eval_loglikelihood_dream(tiny_dirs, tmp_path):
    pytest.importorskip("lm_eval")
    res = run_lm_eval([sys.executable, "-m", "mdm_energy", "lm-eval"], tiny_dirs, tmp_path, "mdm_tiny_mc", which="dream",
                      schedule="beta:1;0.2")
    assert 0.0 <= res["acc,none"] <= 1.0


def test_plain_lm_eval_command_finds_the_model(tiny_dirs, tmp_path):
    """`lm_eval --model mdm_energy` works when the package's .pth hook is installed (a regular install)."""
    pytest.importorskip("lm_eval")
    import site

    exe = shutil.which("lm_eval")
    hooked = any((Path(d) / "mdm_energy_lm_eval.pth").exists() for d in site.getsitepackages())
    if exe is None or not hooked:
        pytest.skip("the lm_eval command or the .pth hook of a regular install is not present (editable install)")
    res = run_lm_eval([exe], tiny_dirs, tmp_path, "mdm_tiny_gen")
    assert "exact_match,none" in res


def test_in_process_api_uses_the_schedule(tiny_dirs, monkeypatch):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from mdm_energy.integrations.lm_eval import MDMEnergyLM

    lm = MDMEnergyLM.create_from_arg_string(f"pretrained={tiny_dirs / 'llada'},trust_remote_code=true,schedule=beta:1,0.2,steps=4,gen_length=16,mc_num=8")
    reqs = [Instance("generate_until", {}, ("1+2=", {"until": ["\n"]}), 0), Instance("generate_until", {}, ("30+4=", {"until": ["\n"]}), 1)]
    texts = lm.generate_until(reqs)
    assert len(texts) == 2 and all("\n" not in t for t in texts)
    counts = parse_schedule("beta:1,0.2").counts(16, 4).tolist()
    traj = lm.last_output.trajectory[0]
    assert [int((traj == k).sum()) for k in range(1, 5)] == counts
    ll = lm.loglikelihood([Instance("loglikelihood", {}, ("1+2=", "3"), 0), Instance("loglikelihood", {}, ("1+2=", "33"), 1)])
    assert all(v < 0 and isinstance(g, bool) for v, g in ll)
    with pytest.raises(NotImplementedError):
        lm.loglikelihood_rolling([])
    with pytest.raises(ValueError, match="unknown model_args for the fixed sampler: colour"):
        MDMEnergyLM.create_from_arg_string(f"pretrained={tiny_dirs / 'llada'},trust_remote_code=true,colour=red")


def test_paper_tables_collector(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("paper_tables", Path(__file__).parents[1] / "benchmarks" / "paper_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "gsm8k__beta_0.9_0.3__N8"
    (run / "sub").mkdir(parents=True)
    (run / "done").touch()
    (run / "sub" / "results_1.json").write_text(json.dumps({"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict": 0.0712,
                                                                                   "exact_match_stderr,strict": 0.01}}}))
    tuned = tmp_path / "gsm8k__tuned__N8"
    tuned.mkdir()
    (tuned / "done").touch()
    (tuned / "results_2.json").write_text(json.dumps({"results": {"gsm8k": {"exact_match,strict": 0.09}}}))
    (tmp_path / "tuned-gsm8k.txt").write_text("gsm8k: tuned schedule beta:0.7,0.4\n")
    mod.main(str(tmp_path))
    out = capsys.readouterr().out
    assert "| beta:0.9,0.3 | 7.12 / 6.14 |" in out and "## mbpp" in out
    assert "| tuned beta:0.7,0.4 | 9.00 / — |" in out  # a schedule the paper did not run: ours only


def test_simple_evaluate_python_api_with_a_comma_schedule(tiny_dirs, monkeypatch):
    pytest.importorskip("lm_eval")
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(DATA)
    import lm_eval
    from lm_eval.tasks import TaskManager

    import mdm_energy.integrations.lm_eval  # noqa: F401  (registers the model in this process)

    out = lm_eval.simple_evaluate(
        model="mdm_energy",
        model_args=f"pretrained={tiny_dirs / 'llada'},trust_remote_code=true,schedule=table:0.1,0.5,0.9,steps=4,gen_length=8,mc_num=4",
        tasks=["mdm_tiny_gen", "mdm_tiny_mc"],
        task_manager=TaskManager(include_path=str(DATA)),
        limit=3,
    )
    assert 0 <= out["results"]["mdm_tiny_gen"]["exact_match,none"] <= 1
    assert 0 <= out["results"]["mdm_tiny_mc"]["acc,none"] <= 1


# --- stop tokens: where generation is cut ------------------------------------------------------------------


class Scripted(torch.nn.Module):
    """A model that writes ``script`` into the generation window, one sure token per position."""

    def __init__(self, script: list[int], vocab: int, model_type: str, eos=None, mask: int = 3) -> None:
        super().__init__()
        from types import SimpleNamespace

        self.script = script
        self.config = SimpleNamespace(model_type=model_type, vocab_size=vocab, eos_token_id=eos, mask_token_id=mask)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives generate() a device

    def forward(self, input_ids, attention_mask=None):
        from transformers.modeling_outputs import MaskedLMOutput

        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.config.vocab_size)
        start = T - len(self.script)
        for j, tok in enumerate(self.script):
            logits[:, start + j, tok] = 20.0
        return MaskedLMOutput(logits=logits)


def chars(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("eos_where", ["config-int", "config-list", "tokenizer"])
def test_generation_is_cut_at_the_first_stop_token(eos_where):
    tok = tiny_tokenizer()
    a, b, c = chars(tok, "abc")
    stop = 2 if eos_where != "config-list" else 40  # 2 is the tokenizer's <eos>; 40 only a config stop id
    eos = {"config-int": 2, "config-list": [46, 40], "tokenizer": None}[eos_where]
    if eos_where == "tokenizer":
        assert tok.eos_token_id == 2
    model = Scripted([a, b, stop, c, stop, a], vocab=len(tok), model_type="tiny-masked", eos=eos)
    texts = generate(model, tok, ["1+2="], steps=6, gen_length=6, chat=False)
    assert texts == ["ab"]


def test_llada_end_of_turn_ids_stop_generation_too():
    from mdm_energy.integrations.huggingface import LLADA_EOS_ID, LLADA_EOT_ID, stop_ids

    tok = tiny_tokenizer()
    a, b = chars(tok, "ab")
    V = LLADA_EOT_ID + 2
    for stop in (LLADA_EOS_ID, LLADA_EOT_ID):
        model = Scripted([a, stop, b, b], vocab=V, model_type="llada", eos=None, mask=V - 1)
        assert stop_ids(model, tok, "llada") == {LLADA_EOS_ID, LLADA_EOT_ID, tok.eos_token_id}
        texts, out = generate(model, tok, ["1"], steps=4, gen_length=4, chat=False, return_output=True)
        assert texts == ["a"] and out.generated[0].tolist() == [a, stop, b, b]  # the window itself is kept whole


def test_lm_eval_scores_equal_a_direct_computation(tiny_dirs, tmp_path):
    """lm-eval's exact_match and acc through our model equal what our own generate() and the exact one-token
    log-likelihood give: tasks are built so that half the answers are right."""
    pytest.importorskip("lm_eval")
    model, tok = load(tiny_dirs / "llada")
    questions = ["1+2=", "3+4=", "2+2=", "9+1="]
    outs = [t.split("\n")[0] for t in generate(model, tok, questions, steps=4, gen_length=8, block_length=8,
                                               schedule="beta:0.9,0.3", chat=False)]
    gen = [{"question": q, "answer": o if i % 2 == 0 else o + "x"} for i, (q, o) in enumerate(zip(questions, outs))]

    def logp(question: str, choice: str) -> float:  # a one-token continuation: the ELBO is log p exactly
        ids = tok(question, add_special_tokens=False)["input_ids"] + [3]
        with torch.no_grad():
            return float(torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), -1)[chars(tok, choice)[0]])

    mc, expected_acc = [], []
    for i, q in enumerate(questions):
        pair = ["5", "8"]
        best = int(logp(q, pair[1]) > logp(q, pair[0]))
        label = best if i % 2 == 0 else 1 - best
        mc.append({"question": q, "choices": pair, "label": label})
        expected_acc.append(float(label == best))
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, rows in (("tiny_gen", gen), ("tiny_mc", mc)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        yaml = (DATA / f"{name}.yaml").read_text().replace("mdm_tiny", "mdm_check")
        if name == "tiny_mc":
            yaml += 'target_delimiter: ""\n'  # the choice is the next token itself, not " 5"
        (folder / f"{name}.yaml").write_text(yaml)
    env = {**os.environ, **OFFLINE}
    out_dir = tmp_path / "out"  # both tasks in one lm-eval run (one start-up)
    proc = subprocess.run([sys.executable, "-m", "mdm_energy", "lm-eval", "run", "--model", "mdm_energy", "--model_args",
                           f"pretrained={tiny_dirs / 'llada'},trust_remote_code=true,schedule='beta:0.9,0.3',steps=4,gen_length=8,block_length=8,"
                           "mc_num=2,chat=false", "--tasks", "mdm_check_gen,mdm_check_mc", "--include_path", str(folder),
                           "--output_path", str(out_dir)],
                          cwd=folder, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out_dir.rglob("results*.json")).read_text())["results"]
    for task, key, want in (("mdm_check_gen", "exact_match,none", 0.5), ("mdm_check_mc", "acc,none", float(np.mean(expected_acc)))):
        assert results[task][key] == pytest.approx(want), (task, results[task])
