r"""The reference character-level language model of ``pycode``: left-to-right, trained on held-out files.

Generated code is scored by its perplexity under this model, :math:`\exp(-\frac1m\sum_i \log p(c_i \mid
c_{<i}))` over the generated characters given the prompt line, as generative perplexity is measured for
diffusion LMs. The model is the same transformer with a causal mask, trained on the stdlib files of the
``valid`` split (never on the pycode train or test files), with the resumable checkpoints of
:mod:`mdm_energy.training.trainer`.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models import MDMConfig, MDMTransformer
from ..tasks.base import EOS, MASK, PAD, split_of
from ..tasks.pycode import PyCodeTask, stdlib_files
from .trainer import (TrainConfig, TrainSummary, check_device, check_fits, check_resume, exclusive, fit, model_device,
                      open_state)

__all__ = ["REF_LEN", "train_reference_lm", "perplexity"]

REF_LEN = 192


def _corpus(task: PyCodeTask) -> torch.Tensor:
    ids: list[int] = []
    for path in stdlib_files():
        if split_of(str(path.relative_to(task.root))) != "valid":
            continue
        try:
            text = path.read_text(encoding="utf-8").expandtabs(4)
        except (UnicodeDecodeError, OSError):
            continue
        ids += [task.vocab.index[c] for c in text if c in task.vocab.index] + [EOS]
    return torch.tensor(ids, dtype=torch.long)


def train_reference_lm(out: "str | Path", cfg: TrainConfig, max_steps_this_run: "int | None" = None) -> TrainSummary:
    """Train (or resume) the reference LM for ``cfg.minutes``; windows of :data:`REF_LEN` characters."""
    task = PyCodeTask()
    out = Path(out)
    if cfg.init is not None:
        raise ValueError("--init warm-starts a task model; the pycode reference LM always starts afresh")
    check_device(cfg.device)
    check_fits(cfg, REF_LEN, task.vocab.size)
    config = MDMConfig(vocab_size=task.vocab.size, mask_id=MASK, eos_id=EOS, pad_id=PAD, max_len=REF_LEN,
                       d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads, d_ff=cfg.d_ff, causal=True)
    check_resume(out, cfg)
    with exclusive(out):  # one run per folder
        state = open_state(out, cfg, lambda: MDMTransformer(config))
        corpus = _corpus(task)

        def loss_fn() -> torch.Tensor:
            starts = torch.randint(len(corpus) - REF_LEN - 1, (cfg.batch_size,), generator=state.generator)
            windows = torch.stack([corpus[s:s + REF_LEN + 1] for s in starts.tolist()]).to(model_device(state.model))
            logits = state.model(windows[:, :-1])
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))

        running = fit(state, cfg, loss_fn, out=out, desc="train pycode reference LM",
                      max_steps_this_run=max_steps_this_run)
    return TrainSummary("pycode-reference", state.step, state.elapsed / 60, running, state.model.num_parameters(),
                        state.resumed, None if running is None else running / math.log(2))


@torch.no_grad()
def perplexity(model: MDMTransformer, task: PyCodeTask, prompts: list[str], outputs: list[str]) -> float:
    """Generative perplexity of ``outputs`` (given their prompt lines) under the reference model."""
    nll, count = 0.0, 0
    for prompt, text in zip(prompts, outputs):
        p = [task.vocab.index[c] for c in prompt + "\n" if c in task.vocab.index]
        g = [task.vocab.index[c] for c in text if c in task.vocab.index]
        if not g:
            continue
        ids = torch.tensor([([EOS] + p + g)[-REF_LEN:]])
        logp = torch.log_softmax(model(ids[:, :-1]), -1)
        target = ids[:, 1:]
        tok = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)[0, -len(g):]
        nll -= float(tok.sum())
        count += len(g)
    return math.exp(nll / count) if count else math.nan
