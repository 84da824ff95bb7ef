"""Training: the loss decreases, checkpoints round-trip bit-exactly, and resuming equals not stopping."""

from __future__ import annotations

import json

import torch

from mdm_energy.cli import main
from mdm_energy.models import MDMConfig, MDMTransformer, load_model, save_model
from mdm_energy.tasks import CountdownTask
from mdm_energy.training import TrainConfig, lr_at, train

TINY = dict(batch_size=16, lr=3e-3, warmup_steps=10, max_steps=200, train_examples=300, d_model=32, n_layers=1,
            n_heads=4, d_ff=64, checkpoint_seconds=1e9)


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
    assert 0.0 <= obj["value"] <= 1.0
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
    (tmp_path / "cks" / "countdown" / "tuned_schedule.json").write_text('{"schedule": "beta:0.4,1.2"}')
    assert main(["demo", "--out", str(tmp_path / "demo"), "--checkpoints", str(tmp_path / "cks"), "--limit", "6", "--json"]) == 0
    real = json.loads(capsys.readouterr()[0])["real_tasks"]
    assert set(real) == {"countdown"} and real["countdown"]["tuned"] == "beta:0.4,1.2"
    assert real["countdown"]["steps"] == [2, 3] and len(real["countdown"]["cells"]) == 4 * 2
    assert all(c["n"] == 6 for c in real["countdown"]["cells"].values())
