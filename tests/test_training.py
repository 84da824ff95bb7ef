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
    log = cfg.log
    assert summary["steps"] == 150 and len(log) == 3
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
    assert summary["resumed"] and summary["steps"] == 40
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
