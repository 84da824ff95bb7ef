r"""Training a small MDM: LLaDA's loss, AdamW with warm-up and cosine decay, exactly resumable checkpoints.

Loss (LLaDA): for each sequence draw :math:`t \sim U(\epsilon, 1]`, mask every answer token
independently with probability :math:`t` (prompt tokens never), and average
:math:`\frac{1}{t}\,\mathrm{CE}(x_i \mid z)` over the masked tokens, normalised by the number of answer
tokens — an unbiased estimate of the negative ELBO, which does not depend on the mask schedule (so the
schedule can be chosen after training).

A checkpoint folder holds ``model.safetensors`` + ``config.json`` (the model), and
``trainer.safetensors`` + ``trainer.json`` (AdamW moments, the data/mask generator state, step, elapsed
time, loss log). Training resumes from it bit for bit: the same run, interrupted and resumed, ends with
the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .._io import atomic_write
from ..models import MDMConfig, MDMTransformer, load_model, save_model
from ..tasks.base import MASK, Task

__all__ = ["TrainConfig", "mdm_loss", "lr_at", "fit", "train", "save_trainer", "load_trainer"]


@dataclass
class TrainConfig:
    task: str
    minutes: float = 10.0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20_000  # horizon of the cosine decay (training also stops when the minutes run out)
    train_examples: int = 20_000
    seed: int = 0
    checkpoint_seconds: float = 180.0
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    eps: float = 1e-3
    log: list = field(default_factory=list)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to 10% at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def mdm_loss(model: MDMTransformer, ids: torch.Tensor, prompt_mask: torch.Tensor, generator: torch.Generator,
             eps: float = 1e-3) -> torch.Tensor:
    """LLaDA's masked-diffusion loss on a batch (prompt tokens are never masked)."""
    B, T = ids.shape
    t = eps + (1 - eps) * torch.rand(B, 1, generator=generator)
    masked = (torch.rand(B, T, generator=generator) < t) & ~prompt_mask
    z = torch.where(masked, torch.full_like(ids, MASK), ids)
    logits = model(z)
    ce = F.cross_entropy(logits[masked], ids[masked], reduction="none")
    weights = (1.0 / t.expand(B, T))[masked]
    answer_tokens = (~prompt_mask).sum()
    return (ce * weights).sum() / answer_tokens


def save_trainer(folder: Path, model: MDMTransformer, opt: torch.optim.Optimizer, generator: torch.Generator,
                 cfg: TrainConfig, step: int, elapsed: float) -> None:
    """Write a complete checkpoint (model + trainer state) atomically, file by file."""
    from safetensors.torch import save_file

    save_model(model, folder)
    state = opt.state_dict()
    tensors = {"generator": generator.get_state()}
    for idx, st in state["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    atomic_write(folder / "trainer.safetensors", lambda tmp: save_file(tensors, tmp), suffix=".safetensors")
    meta = {"step": step, "elapsed": elapsed, "config": asdict(cfg), "param_groups": state["param_groups"]}

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1)

    atomic_write(folder / "trainer.json", write)


def load_trainer(folder: Path, model: MDMTransformer, opt: torch.optim.Optimizer, generator: torch.Generator) -> tuple[int, float, list]:
    from safetensors.torch import load_file

    tensors = load_file(folder / "trainer.safetensors")
    meta = json.loads((folder / "trainer.json").read_text())
    generator.set_state(tensors.pop("generator"))
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for name, val in tensors.items():
        _, idx, key = name.split(".", 2)
        state["state"].setdefault(int(idx), {})[key] = val
    opt.load_state_dict(state)
    return int(meta["step"]), float(meta["elapsed"]), meta["config"].get("log", [])


def fit(model: MDMTransformer, opt: torch.optim.Optimizer, gen: torch.Generator, cfg: TrainConfig, out: Path, step: int,
        elapsed: float, loss_fn, desc: str, max_steps_this_run: "int | None" = None, progress: bool = True) -> tuple[int, float, float]:
    """The shared optimisation loop: learning-rate schedule, clipped AdamW steps, loss log and bar, a checkpoint
    every ``cfg.checkpoint_seconds`` and at the end. Stops at ``cfg.max_steps``, after ``cfg.minutes`` of wall
    time (counting earlier runs), or after ``max_steps_this_run`` steps. Returns (step, running loss, minutes)."""
    from tqdm.auto import tqdm

    start, last_ckpt = time.time() - elapsed, time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, desc=desc, file=sys.stderr, disable=not progress or None)
    done, running = 0, None
    while step < cfg.max_steps and time.time() - start < cfg.minutes * 60.0 and (max_steps_this_run is None or done < max_steps_this_run):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step, done = step + 1, done + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            cfg.log.append([step, round(time.time() - start, 1), running])
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        if time.time() - last_ckpt > cfg.checkpoint_seconds:
            save_trainer(out, model, opt, gen, cfg, step, time.time() - start)
            last_ckpt = time.time()
    bar.close()
    save_trainer(out, model, opt, gen, cfg, step, time.time() - start)
    return step, running, (time.time() - start) / 60


def _model_config(task: Task, cfg: TrainConfig) -> MDMConfig:
    from ..tasks.base import EOS, PAD

    return MDMConfig(vocab_size=task.vocab.size, mask_id=MASK, eos_id=EOS, pad_id=PAD,
                     max_len=task.prompt_len + task.gen_len, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads, d_ff=cfg.d_ff)


def train(task: Task, out: "str | Path", cfg: TrainConfig, max_steps_this_run: "int | None" = None,
          progress: bool = True) -> dict:
    """Train (or resume) for ``cfg.minutes`` of wall time (or ``max_steps_this_run`` steps); returns a summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    resuming = (out / "trainer.json").is_file()
    model = load_model(out).train() if resuming else MDMTransformer(_model_config(task, cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed, log = (load_trainer(out, model, opt, gen) if resuming else (0, 0.0, []))
    cfg.log = log
    examples = task.examples("train", cfg.train_examples, seed=cfg.seed)
    ids_all, prompt_all = task.encode(examples)

    def loss_fn() -> torch.Tensor:
        idx = torch.randint(len(examples), (cfg.batch_size,), generator=gen)
        return mdm_loss(model, ids_all[idx], prompt_all[idx], gen, cfg.eps)

    step, running, minutes = fit(model, opt, gen, cfg, out, step, elapsed, loss_fn, f"train {task.name}",
                                 max_steps_this_run, progress)
    return {"task": task.name, "steps": step, "minutes": minutes, "loss": running,
            "parameters": model.num_parameters(), "resumed": resuming}
