"""Training: the loss decreases, checkpoints round-trip bit-exactly, and resuming equals not stopping."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mdm_energy.cli import main
from mdm_energy.models import MDMConfig, MDMTransformer, load_model, save_model
from mdm_energy.tasks import CountdownTask
from mdm_energy.training import TrainConfig, lr_at, train

TINY = dict(batch_size=16, lr=3e-3, warmup_steps=10, max_steps=200, train_examples=300, d_model=32, n_layers=1,
            n_heads=4, d_ff=64, checkpoint_seconds=1e9, valid_examples=16, valid_every=50)


def test_loss_decreases_on_a_tiny_run(tmp_path):
    cfg = TrainConfig(task="countdown", minutes=5, **TINY)
    summary = train(CountdownTask(), tmp_path / "a", cfg, max_steps_this_run=150, progress=False)
    log = json.loads((tmp_path / "a" / "trainer.json").read_text())["log"]
    assert summary.steps == 150 and len(log) == 3
    assert log[-1][2] < 0.7 * log[0][2], log  # running loss at step 150 well below step 50


def test_checkpoint_round_trips_bit_exactly(tmp_path):
    torch.manual_seed(0)
    model = MDMTransformer(MDMConfig(vocab_size=20, mask_id=2, eos_id=1, pad_id=0, max_len=16, d_model=32, n_layers=2,
                                     n_heads=4, d_ff=64))
    save_model(model, tmp_path)
    again = load_model(tmp_path)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randint(0, 20, (3, 16))
    assert torch.equal(model.eval()(x), again(x))
    assert json.loads((tmp_path / "config.json").read_text())["d_model"] == 32


def test_resume_continues_exactly(tmp_path):
    task = CountdownTask()
    straight = TrainConfig(task="countdown", minutes=5, **TINY)
    train(task, tmp_path / "straight", straight, max_steps_this_run=40, progress=False)
    first = TrainConfig(task="countdown", minutes=5, **TINY)
    train(task, tmp_path / "resumed", first, max_steps_this_run=20, progress=False)  # "interrupted" here
    second = TrainConfig(task="countdown", minutes=5, **TINY)
    summary = train(task, tmp_path / "resumed", second, max_steps_this_run=20, progress=False)
    assert summary.resumed and summary.steps == 40
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_learning_rate_schedule():
    cfg = TrainConfig(task="x", lr=1.0, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == 0.1 and lr_at(9, cfg) == 1.0
    assert abs(lr_at(60, cfg) - 0.55) < 1e-12 and abs(lr_at(110, cfg) - 0.1) < 1e-12


def test_train_cli_bad_input(capsys, tmp_path):
    assert main(["train", "--task", "sokoban", "--minutes", "1", "--out", str(tmp_path / "x")]) == 2
    assert "'sokoban'" in capsys.readouterr()[1]
    assert main(["train", "--task", "countdown", "--minutes", "1", "--out", "/no/such/dir/x"]) == 2
    assert "does not exist" in capsys.readouterr()[1]
    assert not (tmp_path / "x").exists()


def test_eval_and_task_tuning_commands(capsys, tmp_path):
    cfg = TrainConfig(task="countdown", minutes=5, **TINY)
    train(CountdownTask(), tmp_path / "ck", cfg, max_steps_this_run=5, progress=False)
    assert main(["eval", "--task", "countdown", "--checkpoint", str(tmp_path / "ck"), "--schedule", "beta:0.9,0.3",
                 "-N", "4", "--limit", "12", "--json"]) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert set(obj) == {"metric", "value", "stderr", "n", "nfe", "sampler"} and obj["n"] == 12 and obj["nfe"] == 4
    from mdm_energy.sampling import FixedCountSampler
    from mdm_energy.tasks.evaluate import evaluate

    direct = evaluate(CountdownTask(), load_model(tmp_path / "ck"), CountdownTask().examples("test", 12),
                      FixedCountSampler("beta:0.9,0.3", 4))
    assert obj["value"] == direct.value and obj["stderr"] == pytest.approx(direct.stderr, nan_ok=True)
    assert main(["tune", "--objective", "task", "--task", "countdown", "--checkpoint", str(tmp_path / "ck"), "-N", "4",
                 "--strategy", "grid", "--a-values", "0.5,1", "--b-values", "0.5", "--limit", "8",
                 "--storage", f"sqlite:///{tmp_path}/s.db", "--json"]) == 0
    res = json.loads(capsys.readouterr()[0])
    assert res["evaluations"] == 2 and res["best"]["n"] == 8
    assert main(["eval", "--task", "sudoku", "--checkpoint", str(tmp_path / "ck"), "-N", "4"]) == 2
    assert "not trained for the sudoku task" in capsys.readouterr()[1]


def test_evaluate_scores_references_and_returns_the_answers(tmp_path):
    """The metric is real: the dataset's own answers score 1 and a constant answer 0; evaluate() keeps its outputs."""
    from mdm_energy.models import load_model
    from mdm_energy.sampling import FixedCountSampler
    from mdm_energy.tasks.evaluate import evaluate

    task = CountdownTask()
    ex = task.examples("test", 20)
    assert all(task.score(e, e.answer) == 1.0 for e in ex)
    assert sum(task.score(e, "1+1") for e in ex) == 0.0
    train(task, tmp_path / "ck", TrainConfig(task="countdown", minutes=5, **TINY), max_steps_this_run=2, progress=False)
    r = evaluate(task, load_model(tmp_path / "ck"), ex[:5], FixedCountSampler("linear", 4))
    assert len(r.outputs) == r.n == 5 and r.scores == tuple(task.score(e, o) for e, o in zip(ex[:5], r.outputs))


def test_reference_lm_trains_resumes_and_scores(tmp_path):
    from mdm_energy.models import load_model
    from mdm_energy.tasks import PyCodeTask
    from mdm_energy.training import perplexity, train_reference_lm

    small = dict(task="ref", minutes=5, batch_size=8, d_model=32, n_layers=1, n_heads=4, d_ff=64, warmup_steps=5,
                 max_steps=100, checkpoint_seconds=1e9)
    s1 = train_reference_lm(tmp_path / "ref", TrainConfig(**small), max_steps_this_run=10)
    s2 = train_reference_lm(tmp_path / "ref", TrainConfig(**small), max_steps_this_run=10)
    assert not s1.resumed and s2.resumed and s2.steps == 20
    model, task = load_model(tmp_path / "ref"), PyCodeTask()
    assert model.config.causal
    ex = task.examples("test", 4)
    ppl = perplexity(model, task, [e.prompt for e in ex], [e.answer for e in ex])
    assert 1.0 < ppl < task.vocab.size * 3  # near-uniform after 20 steps, finite
    # causal: the logits at a position do not depend on later characters
    x = torch.randint(3, task.vocab.size, (1, 12))
    y = x.clone()
    y[0, 8:] = 5
    assert torch.allclose(model(x)[0, :8], model(y)[0, :8], atol=1e-5)


def test_demo_compares_schedules_on_a_trained_checkpoint(capsys, tmp_path):
    cfg = TrainConfig(task="countdown", minutes=5, **TINY)
    train(CountdownTask(), tmp_path / "cks" / "countdown", cfg, max_steps_this_run=5, progress=False)
    from mdm_energy.tasks.tuned import weights_digest

    ck = tmp_path / "cks" / "countdown"
    argv = ["demo", "--out", str(tmp_path / "demo"), "--checkpoints", str(tmp_path / "cks"), "--limit", "6", "--json"]
    (ck / "tuned_schedule.json").write_text('{"schedule": "beta:0.4,1.2", "checkpoint": "0123456789ab"}')
    assert main(argv) == 0  # tuned on other weights: not shown as the tuned schedule
    out, err = capsys.readouterr()
    real = json.loads(out)["real_tasks"]
    assert real["countdown"]["tuned"] is None and "tuned on other weights ('0123456789ab'" in err
    assert len(real["countdown"]["cells"]) == 3 * 2
    (ck / "tuned_schedule.json").write_text(json.dumps({"schedule": "beta:0.4,1.2", "checkpoint": weights_digest(ck)}))
    assert main(argv) == 0
    real = json.loads(capsys.readouterr()[0])["real_tasks"]
    assert set(real) == {"countdown"} and real["countdown"]["tuned"] == "beta:0.4,1.2"
    assert real["countdown"]["steps"] == [2, 3] and len(real["countdown"]["cells"]) == 4 * 2
    assert all(c["n"] == 6 for c in real["countdown"]["cells"].values())


# --- the loss against closed forms -------------------------------------------------------------------------


class _Fixed(torch.nn.Module):
    """A stand-in model: ``fn(tokens)`` gives the logits; it records every input it sees."""

    def __init__(self, vocab: int, fn):
        super().__init__()
        self.config = MDMConfig(vocab_size=vocab, mask_id=2, eos_id=1, pad_id=0, max_len=64, d_model=8, n_layers=1,
                                n_heads=2, d_ff=8)
        self.fn, self.seen = fn, []

    def forward(self, tokens, attention_mask=None):
        self.seen.append(tokens.clone())
        return self.fn(tokens)


def _batch(B=64, T=24, P=4, V=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, T), generator=g)
    prompt = torch.zeros(B, T, dtype=torch.bool)
    prompt[:, :P] = True
    return ids, prompt


def test_uniform_logits_give_log_v_in_expectation():
    """CE = log V at every masked token, and E[sum_masked 1/t] = the answer tokens, so E[loss] = log V."""
    from mdm_energy.training import mdm_loss

    V, B, T, P = 20, 64, 24, 4
    model = _Fixed(V, lambda tokens: torch.zeros(tokens.shape + (V,)))
    ids, prompt = _batch(B, T, P, V)
    g = torch.Generator().manual_seed(1)
    losses = torch.tensor([float(mdm_loss(model, ids, prompt, g)) for _ in range(300)])
    # per batch: Var(loss / log V) = E[(1 - t)/t] / (B (T - P)) ~ 5.9 / (B (T - P)) for eps = 1e-3
    se = math.log(V) * math.sqrt(5.9 / (B * (T - P)) / len(losses))
    assert abs(losses.mean().item() - math.log(V)) < 5 * se


def test_a_model_that_knows_the_data_has_zero_loss():
    from mdm_energy.training import mdm_loss

    ids, prompt = _batch()
    model = _Fixed(20, lambda tokens: 1e4 * torch.nn.functional.one_hot(ids, 20).float())
    assert float(mdm_loss(model, ids, prompt, torch.Generator().manual_seed(0))) < 1e-6


def test_masks_follow_t_prompts_stay_and_the_loss_is_the_stated_formula():
    """Replay the generator: the loss equals sum over masked answer tokens of CE / t, divided by the number of
    answer tokens; masked positions get the model's own mask id, prompts never, and the mask rate is t."""
    from mdm_energy.training import mdm_loss

    V, B, T, P, eps = 20, 256, 40, 8, 1e-3
    table = torch.randn(V, V, generator=torch.Generator().manual_seed(5))
    model = _Fixed(V, lambda tokens: table[tokens])
    ids, prompt = _batch(B, T, P, V, seed=2)
    g = torch.Generator().manual_seed(3)
    replay = torch.Generator()
    replay.set_state(g.get_state())
    loss = float(mdm_loss(model, ids, prompt, g, eps))
    t = eps + (1 - eps) * torch.rand(B, 1, generator=replay)
    z = model.seen[-1]
    masked = z == model.config.mask_id
    assert not masked[:, :P].any() and torch.equal(z[~masked], ids[~masked])
    ce = torch.nn.functional.cross_entropy(table[z][masked], ids[masked], reduction="none")
    expected = float((ce / t.expand(B, T)[masked]).sum() / (B * (T - P)))
    assert loss == pytest.approx(expected, rel=1e-5)
    rate = masked[:, P:].float().mean(1)
    slope = float(((rate - rate.mean()) * (t[:, 0] - t.mean())).sum() / ((t[:, 0] - t.mean()) ** 2).sum())
    assert abs(slope - 1.0) < 0.1 and abs(float((rate - t[:, 0]).mean())) < 0.02  # mask rate = t


def test_train_command_completes_and_resumes(capsys, tmp_path):
    ck = tmp_path / "ck"
    argv = ["train", "--task", "countdown", "--minutes", "10", "--out", str(ck), "--d-model", "16", "--layers", "1",
            "--train-examples", "64", "--batch-size", "8", "--valid-examples", "8", "--max-steps", "6", "--json"]
    assert main(argv[:-2] + ["3", "--json"]) == 0  # a horizon of 3 steps: stops there
    first = json.loads(capsys.readouterr()[0])
    assert first["steps"] == 3 and not first["resumed"]
    assert main(argv) == 0  # the same command with a longer horizon continues from step 3
    second = json.loads(capsys.readouterr()[0])
    assert second["steps"] == 6 and second["resumed"]
    meta = json.loads((ck / "trainer.json").read_text())
    assert meta["step"] == 6 and load_model(ck).config.d_model == 16


# --- data pools, validation, precision ---------------------------------------------------------------------


def test_the_pool_is_cached_and_reused(tmp_path, monkeypatch):
    from mdm_energy.training.data import training_pool

    task = CountdownTask()
    first = training_pool(task, 40, 3, cache=tmp_path, progress=False)
    assert len(first) == 40 and first.ids.dtype == torch.uint8
    ids, pm = task.encode(task.examples("train", 40, seed=3))
    assert torch.equal(first.ids.long(), ids) and torch.equal(first.prompt_mask, pm)

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached pool should have been read")

    monkeypatch.setattr(CountdownTask, "train_stream", no_generation)
    again = training_pool(task, 40, 3, cache=tmp_path, progress=False)
    assert torch.equal(again.ids, first.ids)


def test_a_held_out_pool_is_rebuilt_when_the_score_version_changes(tmp_path, monkeypatch):
    """The valid/test splits hold the windows a task scores: a pool of them cached under an older score rule is
    not reused (pycode v2 scores fewer windows); the training pool does not depend on it and stays cached."""
    from mdm_energy.training.data import training_pool

    task = CountdownTask()
    training_pool(task, 8, 0, cache=tmp_path, progress=False, split="valid")
    training_pool(task, 8, 0, cache=tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.setattr(CountdownTask, "score_version", 2)
    calls = []
    stream = CountdownTask.stream
    monkeypatch.setattr(CountdownTask, "stream", lambda self, *a, **k: calls.append(a) or stream(self, *a, **k))
    training_pool(task, 8, 0, cache=tmp_path, progress=False, split="valid")
    assert calls and calls[0][0] == "valid"  # rebuilt
    after = sorted(p.name for p in tmp_path.iterdir())
    assert len(after) == 3 and set(before) < set(after) and any(n.endswith("-sv2.safetensors") for n in after)
    calls.clear()
    monkeypatch.setattr(CountdownTask, "train_stream", lambda *a, **k: (_ for _ in ()).throw(AssertionError("rebuilt")))
    training_pool(task, 8, 0, cache=tmp_path, progress=False)  # the training pool is read from the cache


def test_validation_loss_is_logged_the_best_weights_kept_and_patience_stops(tmp_path):
    import safetensors.torch

    from mdm_energy.training import validation_loss

    cfg = TrainConfig(task="countdown", minutes=5, **{**TINY, "valid_every": 5, "patience": 2, "lr": 0.3, "warmup_steps": 1})
    summary = train(CountdownTask(), tmp_path / "ck", cfg, max_steps_this_run=200, progress=False)
    meta = json.loads((tmp_path / "ck" / "trainer.json").read_text())
    valid = meta["valid_log"]
    assert [v[0] for v in valid] == list(range(5, summary.steps + 1, 5))
    best = min(valid, key=lambda v: v[2])
    assert (meta["best_step"], meta["best_valid"]) == (best[0], best[2]) == (summary.best_step, summary.best_valid)
    # a learning rate of 0.3 diverges: patience stops the run two validations after the best one
    assert summary.steps == best[0] + 2 * 5 < 200
    model = load_model(tmp_path / "ck")
    model.load_state_dict(safetensors.torch.load_file(tmp_path / "ck" / "best.safetensors"))
    task = CountdownTask()
    ids, pm = task.encode(task.examples("valid", 16, seed=0))
    assert validation_loss(model, ids, pm) == pytest.approx(best[2], rel=1e-5)  # fixed masks: reproducible


def test_half_precision_weights_load_back_as_float32(tmp_path):
    torch.manual_seed(0)
    model = MDMTransformer(MDMConfig(vocab_size=20, mask_id=2, eos_id=1, pad_id=0, max_len=16, d_model=32, n_layers=1,
                                     n_heads=4, d_ff=64)).eval()
    save_model(model, tmp_path / "half", dtype=torch.float16)
    save_model(model, tmp_path / "full")
    half = load_model(tmp_path / "half")
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "full" / "model.safetensors").stat().st_size
    assert all(p.dtype == torch.float32 for p in half.parameters())
    x = torch.randint(0, 20, (2, 16))
    assert torch.allclose(half(x), model(x), atol=2e-2)


# --- warm start (--init) -----------------------------------------------------------------------------------


def test_a_warm_start_begins_at_the_init_weights_and_resumes_exactly(tmp_path):
    task = CountdownTask()
    train(task, tmp_path / "base", TrainConfig(task="countdown", minutes=5, **TINY), max_steps_this_run=60,
          progress=False)
    base = load_model(tmp_path / "base")
    warm = TrainConfig(task="countdown", minutes=5, init=str(tmp_path / "base"), **TINY)
    summary = train(task, tmp_path / "zero", warm, max_steps_this_run=0, progress=False)
    assert summary.steps == 0 and not summary.resumed  # a new run: step 0, its own optimiser and schedule
    for (k, v), (_, w) in zip(base.state_dict().items(), load_model(tmp_path / "zero").state_dict().items()):
        assert torch.equal(v, w), k  # it starts exactly at the init weights
    # a warm-started run interrupted and resumed ends where the uninterrupted one does
    train(task, tmp_path / "straight", warm, max_steps_this_run=30, progress=False)
    train(task, tmp_path / "resumed", warm, max_steps_this_run=10, progress=False)
    again = train(task, tmp_path / "resumed", warm, max_steps_this_run=20, progress=False)
    assert again.resumed and again.steps == 30
    a, b = load_model(tmp_path / "straight"), load_model(tmp_path / "resumed")
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k
    # the learned weights carry over: 50 steps from the base weights end below the base run's own loss at
    # its step 50 and below a fresh run's
    fresh = TrainConfig(task="countdown", minutes=5, **TINY)
    train(task, tmp_path / "fresh", fresh, max_steps_this_run=50, progress=False)
    first = {name: json.loads((tmp_path / name / "trainer.json").read_text())["valid_log"][0][2]
             for name in ("fresh", "base")}
    warm50 = train(task, tmp_path / "warm50", warm, max_steps_this_run=50, progress=False)
    assert warm50.valid_loss < first["fresh"] and warm50.valid_loss < first["base"]


def test_a_warm_started_run_resumes_only_from_the_same_init(tmp_path, monkeypatch):
    task = CountdownTask()
    for name in ("base", "other"):
        train(task, tmp_path / name, TrainConfig(task="countdown", minutes=5, **TINY), max_steps_this_run=2,
              progress=False)
    monkeypatch.chdir(tmp_path)
    train(task, tmp_path / "run", TrainConfig(task="countdown", minutes=5, init=str(tmp_path / "base"), **TINY),
          max_steps_this_run=2, progress=False)
    again = train(task, tmp_path / "run", TrainConfig(task="countdown", minutes=5, init="base", **TINY),
                  max_steps_this_run=2, progress=False)  # the same folder, spelled relative
    assert again.resumed and again.steps == 4
    base = str((tmp_path / "base").resolve())
    with pytest.raises(ValueError, match=f"init='{base}'; resuming it with init=None is not possible \\(pass --init"):
        train(task, tmp_path / "run", TrainConfig(task="countdown", minutes=5, **TINY), max_steps_this_run=1,
              progress=False)
    with pytest.raises(ValueError, match="resuming it with init='.*other' is not possible"):
        train(task, tmp_path / "run", TrainConfig(task="countdown", minutes=5, init="other", **TINY),
              max_steps_this_run=1, progress=False)


def test_train_cli_refuses_a_bad_init_and_takes_the_init_size(capsys, tmp_path):
    base = tmp_path / "base"
    small = dict(TINY, d_ff=4 * TINY["d_model"])  # the command line's d_ff is 4 x d_model
    train(CountdownTask(), base, TrainConfig(task="countdown", minutes=5, **small), max_steps_this_run=2, progress=False)
    argv = ["train", "--task", "countdown", "--minutes", "1", "--out", str(tmp_path / "x")]
    assert main(argv + ["--d-model", "48", "--init", str(base)]) == 2  # another width
    err = capsys.readouterr()[1]
    assert "d_model=32" in err and "d_model=48" in err and len(err.strip().splitlines()) == 1
    assert main(argv + ["--init", str(tmp_path / "nothing")]) == 2
    assert "--init: no checkpoint" in capsys.readouterr()[1]
    causal = tmp_path / "causal"  # a causal LM of the same shape is not a masked model to warm-start
    cfg = load_model(base).config
    save_model(MDMTransformer(MDMConfig(**{**cfg.__dict__, "causal": True})), causal)
    assert main(argv + ["--init", str(causal)]) == 2
    assert "causal=True" in capsys.readouterr()[1]
    assert main(["train", "--task", "pycode-reference", "--minutes", "1", "--out", str(tmp_path / "x"),
                 "--init", str(base)]) == 2
    assert "--init" in capsys.readouterr()[1]
    assert not (tmp_path / "x").exists()
    # without --d-model/--layers the run takes the init model's size (32 wide, 1 layer; the defaults are 192, 4)
    assert main(argv + ["--init", str(base), "--train-examples", "64", "--batch-size", "8", "--valid-examples", "8",
                        "--max-steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr()[0])["steps"] == 2
    config = load_model(tmp_path / "x").config
    assert (config.d_model, config.n_layers) == (32, 1)


@pytest.mark.parametrize("device, says", [("tpu", "unknown device 'tpu'"), ("cuda:x", "unknown device 'cuda:x'")]
                         + ([("cuda", "CUDA is not available")] if not torch.cuda.is_available() else []))
def test_train_refuses_a_device_this_machine_lacks(capsys, tmp_path, device, says):
    assert main(["train", "--task", "countdown", "--minutes", "1", "--out", str(tmp_path / "x"), "--device", device]) == 2
    err = capsys.readouterr()[1]
    assert says in err and err.strip().count("\n") == 0 and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="device"):  # the library refuses it too, before any folder is made
        train(CountdownTask(), tmp_path / "y", TrainConfig(task="countdown", device=device, **TINY), progress=False)
    assert not (tmp_path / "y").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_run_draws_the_cpu_runs_batches_and_resumes_on_the_cpu(tmp_path):
    """Every draw stays on the CPU generators, so a run on the GPU sees the CPU run's batches and masks: its
    loss log and weights match the CPU run's to float32 rounding (matrix products at full precision), and a
    run started on the GPU and resumed on the CPU ends where the CPU run does, to the same tolerance."""
    torch.backends.cuda.matmul.allow_tf32 = False
    task = CountdownTask()
    cpu = TrainConfig(task="countdown", minutes=5, **TINY)
    train(task, tmp_path / "cpu", cpu, max_steps_this_run=40, progress=False)
    gpu = TrainConfig(task="countdown", minutes=5, device="cuda", **TINY)
    train(task, tmp_path / "gpu", gpu, max_steps_this_run=40, progress=False)
    train(task, tmp_path / "moved", gpu, max_steps_this_run=20, progress=False)
    train(task, tmp_path / "moved", cpu, max_steps_this_run=20, progress=False)
    logs = {k: json.loads((tmp_path / k / "trainer.json").read_text()) for k in ("cpu", "gpu", "moved")}
    ref = load_model(tmp_path / "cpu").state_dict()
    for k in ("gpu", "moved"):
        assert logs[k]["step"] == 40
        assert [r[2] for r in logs[k]["log"]] == pytest.approx([r[2] for r in logs["cpu"]["log"]], rel=1e-3)
        other = load_model(tmp_path / k).state_dict()
        assert all(torch.allclose(ref[n], other[n], atol=1e-3) for n in ref), k
