r"""Training a small MDM: LLaDA's loss, AdamW with warm-up and cosine decay, exactly resumable checkpoints.

Loss (LLaDA): for each sequence draw :math:`t \sim U(\epsilon, 1]`, mask every answer token
independently with probability :math:`t` (prompt tokens never), and average
:math:`\frac{1}{t}\,\mathrm{CE}(x_i \mid z)` over the masked tokens, normalised by the number of answer
tokens — an unbiased estimate of the negative ELBO, which does not depend on the mask schedule (so the
schedule can be chosen after training).

A checkpoint folder holds ``model.safetensors`` + ``config.json`` (the model), and
``trainer.safetensors`` + ``trainer.json`` (AdamW moments, the data/mask generator state, step, elapsed
time, hyper-parameters and the loss log). Training resumes from it bit for bit: the same run, interrupted and resumed, ends with
the same weights as an uninterrupted one.

The run's ``device`` (``cpu`` by default; ``cuda`` on a GPU) holds the model, the optimiser and each batch's
forward and backward pass. Every random draw — initial weights, batches, masking rates and masks — stays on
the CPU's generators and is moved to the device afterwards, so a run draws the same batches and masks on
every device (the weights then differ only by the device's arithmetic), and a run may resume on another
device than it started on. Checkpoints are always written from CPU copies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .._io import atomic_write, atomic_write_all, tensors_writer
from ..models import MDMConfig, MDMTransformer, load_model
from ..models.transformer import model_files
from ..tasks.base import Task

__all__ = ["TrainConfig", "TrainState", "TrainSummary", "mdm_loss", "lr_at", "make_optimizer", "fit", "train",
           "check_device", "model_device",
           "validation_loss", "save_trainer", "load_trainer", "open_state", "check_resume", "check_init", "check_fits", "LOCK_NAME",
           "exclusive"]


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in ``trainer.json``)."""

    task: str
    minutes: float = 10.0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 200
    max_steps: int = 20_000  # horizon of the cosine decay (training also stops when the minutes run out)
    train_examples: int = 20_000
    seed: int = 0
    checkpoint_seconds: float = 180.0
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    eps: float = 1e-3  # smallest masking rate t of the loss
    grad_clip: float = 1.0  # global gradient-norm clip of every step
    log_every: int = 50  # steps between two entries of the loss log
    valid_examples: int = 512  # held-out (valid split) examples of the validation loss
    valid_every: int = 500  # steps between two validation losses (0: never)
    patience: "int | None" = None  # stop after this many validation losses without a new best (None: never)
    cache: "str | None" = None  # folder of cached training pools (None: no cache)
    init: "str | None" = None  # model folder whose weights start a new run (a warm start; None: random weights)
    device: str = "cpu"  # where the model trains (module docstring); not a resume field: a run may move

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        """A config from ``trainer.json`` (unknown keys of older versions, e.g. ``log``, are dropped)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])
        return cls(**kwargs)


@dataclass
class TrainState:
    """Everything a run changes: the model, the optimiser, the data/mask generator, the step, the wall
    time spent so far (over all runs) and the loss log ``[step, seconds, running loss]``."""

    model: MDMTransformer
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    elapsed: float = 0.0
    log: list = field(default_factory=list)
    resumed: bool = False
    valid_log: list = field(default_factory=list)  # [step, seconds, validation loss]
    best_valid: "float | None" = None
    best_step: "int | None" = None


@dataclass(frozen=True)
class TrainSummary:
    """What a training run reports (``mdm-energy train --json``)."""

    task: str
    steps: int
    minutes: float
    loss: "float | None"
    parameters: int
    resumed: bool
    bits_per_char: "float | None" = None
    valid_loss: "float | None" = None
    best_valid: "float | None" = None
    best_step: "int | None" = None
    examples: "int | None" = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "loss"}


#: the device types a run may train on
DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: str) -> torch.device:
    """``name`` as a :class:`torch.device` this machine has (``cpu``, ``cuda``, ``cuda:N``, ``mps``), or
    ``ValueError`` naming it: an unknown name, or an accelerator this machine or this torch build lacks."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device: unknown device {name!r} (one of cpu, cuda, cuda:N, mps)") from None
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"--device: unknown device {name!r} (one of cpu, cuda, cuda:N, mps)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__})")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine")
    return dev


def model_device(model: torch.nn.Module) -> torch.device:
    """The device that holds ``model``'s parameters (where its inputs must go); the CPU for a module without
    any (e.g. a fixed rule standing in for a model)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to 10% at ``max_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with the run's learning rate, weight decay and betas (the one optimiser every model here uses)."""
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


def mdm_loss(model: MDMTransformer, ids: torch.Tensor, prompt_mask: torch.Tensor, generator: torch.Generator,
             eps: float = 1e-3) -> torch.Tensor:
    r"""LLaDA's masked-diffusion loss on a batch (prompt tokens are never masked; masked positions get the
    model's own ``mask_id``).

    .. math:: \mathcal L = \frac{1}{|\text{answer}|}\sum_{i\ \text{masked}} \frac{1}{t}\,
              \bigl(-\log p_\theta(x_i \mid z_t)\bigr), \qquad t \sim U(\epsilon, 1],

    normalised by the number of answer tokens of the batch (masked or not), so that its expectation is
    the per-token negative ELBO. ``t`` and the masks are drawn on the CPU (``generator``) whatever the
    model's device, and the batch then moves to it: the same draws on every device.
    """
    B, T = ids.shape
    t = eps + (1 - eps) * torch.rand(B, 1, generator=generator)
    masked = (torch.rand(B, T, generator=generator) < t) & ~prompt_mask.cpu()
    device = model_device(model)
    ids, prompt_mask, masked, t = ids.to(device), prompt_mask.to(device), masked.to(device), t.to(device)
    z = torch.where(masked, torch.full_like(ids, model.config.mask_id), ids)
    logits = model(z)
    ce = F.cross_entropy(logits[masked], ids[masked], reduction="none")
    weights = (1.0 / t.expand(B, T))[masked]
    answer_tokens = (~prompt_mask).sum()
    return (ce * weights).sum() / answer_tokens


def save_trainer(folder: Path, state: TrainState, cfg: TrainConfig) -> None:
    """Write a complete checkpoint (model + trainer state): all four files are written first and then
    renamed into place together (:func:`~mdm_energy._io.atomic_write_all`), so an interrupt or a full disk
    leaves the previous checkpoint whole — never new weights beside an old optimiser state."""
    opt_state = state.optimizer.state_dict()
    tensors = {"generator": state.generator.get_state()}
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = val.detach().cpu() if torch.is_tensor(val) else torch.tensor(val)
    meta = json.dumps({"step": state.step, "elapsed": state.elapsed, "config": asdict(cfg), "log": state.log,
                       "valid_log": state.valid_log, "best_valid": state.best_valid, "best_step": state.best_step,
                       "param_groups": opt_state["param_groups"]}, indent=1)
    atomic_write_all([*model_files(state.model, folder),
                      (folder / "trainer.safetensors", tensors_writer(tensors), ".safetensors"),
                      (folder / "trainer.json", lambda tmp: Path(tmp).write_text(meta), "")])


def load_trainer(folder: Path, state: TrainState) -> None:
    """Restore the optimiser moments, the generator, the step, the elapsed time and the log into ``state``
    (the moments move to the device of the parameters they belong to: ``load_state_dict`` casts them)."""
    from safetensors.torch import load_file

    tensors = load_file(folder / "trainer.safetensors")
    meta = json.loads((folder / "trainer.json").read_text())
    state.generator.set_state(tensors.pop("generator"))
    opt_state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for name, val in tensors.items():
        _, idx, key = name.split(".", 2)
        opt_state["state"].setdefault(int(idx), {})[key] = val
    state.optimizer.load_state_dict(opt_state)
    state.step, state.elapsed = int(meta["step"]), float(meta["elapsed"])
    state.log = meta.get("log", meta["config"].get("log", []))  # older checkpoints kept the log in the config
    state.valid_log = meta.get("valid_log", [])
    state.best_valid, state.best_step = meta.get("best_valid"), meta.get("best_step")
    state.resumed = True


#: The settings a resumed run must share with the run it continues (they fix the model, its task and the
#: weights it started from).
RESUME_FIELDS = ("task", "d_model", "n_layers", "n_heads", "d_ff", "init")


def check_resume(out: Path, cfg: TrainConfig) -> bool:
    """Whether ``out`` holds a run to resume; ``ValueError`` if it holds something that this run would
    overwrite or that cannot continue as ``cfg`` asks (another task, model size or ``--init``). Creates
    nothing."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out exists and is not a folder: {str(out)!r}")
    has_trainer = (out / "trainer.json").is_file() and (out / "trainer.safetensors").is_file()
    has_model = (out / "model.safetensors").is_file() or (out / "config.json").is_file()
    if not has_trainer:
        if has_model:
            raise ValueError(f"{str(out)!r} holds a model without its trainer state, so it cannot be resumed; "
                             "train into a new folder")
        return False
    try:
        saved = TrainConfig.from_json(json.loads((out / "trainer.json").read_text())["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{str(out / 'trainer.json')!r} is not a trainer state this version can read ({exc})") from None
    for name in RESUME_FIELDS:
        before, now = getattr(saved, name), getattr(cfg, name)
        if name == "init":  # one folder however it is spelled
            before, now = (None if v is None else str(Path(v).resolve()) for v in (before, now))
        if before != now:
            hint = f"pass --init {before}" if name == "init" and before else "use a new folder"
            raise ValueError(f"{str(out)!r} holds a run with {name}={before!r}; resuming it with "
                             f"{name}={now!r} is not possible ({hint})")
    return True


def check_init(cfg: TrainConfig, expected: MDMConfig) -> None:
    """Refuse a warm start (``cfg.init``) from a folder that is not a model of exactly this kind — every
    setting of its ``config.json`` but dropout must equal ``expected`` (sizes, special ids, a masked rather
    than a causal model): ``ValueError`` naming the folder and the first setting that differs."""
    if cfg.init is None:
        return
    from dataclasses import fields as config_fields

    from ..models import load_config

    try:
        found = load_config(cfg.init)
    except ValueError as exc:
        raise ValueError(f"--init: {exc}") from None
    for f in config_fields(MDMConfig):
        if f.name != "dropout" and getattr(found, f.name) != getattr(expected, f.name):
            raise ValueError(f"--init {cfg.init!r} holds a model with {f.name}={getattr(found, f.name)!r}; this run "
                             f"trains {f.name}={getattr(expected, f.name)!r}")


def check_fits(cfg: TrainConfig, seq_len: int, vocab_size: int) -> None:
    """Refuse a model and batch whose training step cannot fit in memory (weights, AdamW moments, activations)."""
    from ..limits import check_memory

    d, f, L, h, B, T = cfg.d_model, cfg.d_ff, cfg.n_layers, cfg.n_heads, cfg.batch_size, seq_len
    params = (vocab_size + T) * d + L * (4 * d * d + 2 * d * f + 10 * d + f)
    activations = B * T * L * (16 * d + 2 * f + 3 * h * T) + 3 * B * T * vocab_size
    check_memory(4 * (4 * params + activations), f"training a d_model={d}, n_layers={L} model on batches of {B}")


#: The lock file a training run holds in its folder (removed when the run ends).
LOCK_NAME = ".train.lock"


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """Hold ``out``'s training lock over the block, so that a second run on the same folder is refused
    (``ValueError`` naming it) rather than both overwriting each other's checkpoints.

    The lock is an OS lock (``flock``) on ``out/.train.lock``: the OS releases it when the process ends,
    however it ends, so a crashed or killed run never blocks the next one; the file is removed on the way
    out, so a finished folder holds only the checkpoint. ``out`` is created if missing, and removed again if
    the block leaves it empty (a run that failed before its first checkpoint leaves nothing behind)."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    try:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ValueError(f"another train run is writing to {str(out)!r}; wait for it to end or train into "
                                 "another folder") from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the run before this one removed the file as we opened it: lock the new one
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # the lock goes with the descriptor, whatever happens here
                os.unlink(path)
            os.close(fd)
    finally:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty


def open_state(out: Path, cfg: TrainConfig, new_model: Callable[[], MDMTransformer]) -> TrainState:
    """A fresh :class:`TrainState` (``new_model()``, or the weights of ``cfg.init`` with a new optimiser, step
    0 and a new learning-rate schedule: a warm start), or the one saved in ``out`` when it holds a checkpoint
    (a resumed run continues from its own weights; ``cfg.init`` only starts a run). The model is built on
    the CPU (the same initial weights everywhere) and then moved to ``cfg.device``."""
    device = check_device(cfg.device)
    torch.manual_seed(cfg.seed)
    resuming = check_resume(out, cfg)
    if resuming:
        model = load_model(out).train()
    elif cfg.init is not None:
        model = load_model(cfg.init).train()
    else:
        model = new_model()
    model = model.to(device)
    state = TrainState(model, make_optimizer(model, cfg), torch.Generator().manual_seed(cfg.seed))
    if resuming:
        load_trainer(out, state)
    return state


def fit(state: TrainState, cfg: TrainConfig, loss_fn: Callable[[], torch.Tensor], *, out: Path, desc: str,
        max_steps_this_run: "int | None" = None, progress: bool = True,
        valid_fn: "Callable[[], float] | None" = None) -> "float | None":
    """The shared optimisation loop: learning-rate schedule, clipped AdamW steps, loss log and bar, a checkpoint
    every ``cfg.checkpoint_seconds`` and at the end. Every ``cfg.valid_every`` steps ``valid_fn()`` (the
    validation loss) is logged, and the best weights so far are kept as ``best.safetensors``; after
    ``cfg.patience`` validation losses without a new best the run stops. Also stops at ``cfg.max_steps``,
    after ``cfg.minutes`` of wall time (counting earlier runs), or after ``max_steps_this_run`` steps.
    Returns the running training loss."""
    from tqdm.auto import tqdm

    start, last_ckpt = time.time() - state.elapsed, time.time()
    bar = tqdm(total=cfg.max_steps, initial=state.step, desc=desc, file=sys.stderr, disable=not progress or None)
    done, running = 0, None
    while (state.step < cfg.max_steps and time.time() - start < cfg.minutes * 60.0
           and (max_steps_this_run is None or done < max_steps_this_run) and not _out_of_patience(state, cfg)):
        for g in state.optimizer.param_groups:
            g["lr"] = lr_at(state.step, cfg)
        loss = loss_fn()
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
        state.optimizer.step()
        state.step, done = state.step + 1, done + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if state.step % cfg.log_every == 0:
            state.log.append([state.step, round(time.time() - start, 1), running])
        if valid_fn is not None and cfg.valid_every and state.step % cfg.valid_every == 0:
            _validate(state, valid_fn, out, round(time.time() - start, 1))
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}", **({"valid": f"{state.valid_log[-1][2]:.3f}"} if state.valid_log else {}))
        if time.time() - last_ckpt > cfg.checkpoint_seconds:
            state.elapsed = time.time() - start
            save_trainer(out, state, cfg)
            last_ckpt = time.time()
    bar.close()
    if valid_fn is not None and cfg.valid_every and state.step and (not state.valid_log or state.valid_log[-1][0] != state.step):
        _validate(state, valid_fn, out, round(time.time() - start, 1))  # the end of a run is always measured
    state.elapsed = time.time() - start
    save_trainer(out, state, cfg)
    return running


def _validate(state: TrainState, valid_fn: Callable[[], float], out: Path, seconds: float) -> None:
    was_training = state.model.training
    state.model.eval()
    with torch.no_grad():
        value = float(valid_fn())
    state.model.train(was_training)
    state.valid_log.append([state.step, seconds, value])
    if state.best_valid is None or value < state.best_valid:
        state.best_valid, state.best_step = value, state.step
        weights = {k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "best.safetensors", tensors_writer(weights), suffix=".safetensors")


def _out_of_patience(state: TrainState, cfg: TrainConfig) -> bool:
    if cfg.patience is None or state.best_step is None or not cfg.valid_every:
        return False
    return sum(1 for step, _, _ in state.valid_log if step > state.best_step) >= cfg.patience


@torch.no_grad()
def validation_loss(model: MDMTransformer, ids: torch.Tensor, prompt_mask: torch.Tensor, eps: float = 1e-3,
                    batch_size: int = 128, seed: int = 12345) -> float:
    """The loss on a fixed held-out set with fixed masking rates and masks (the same draws every time, so
    that two validation losses differ only because the model did)."""
    g = torch.Generator().manual_seed(seed)
    total, answer = 0.0, 0
    for lo in range(0, ids.shape[0], batch_size):
        x, pm = ids[lo:lo + batch_size], prompt_mask[lo:lo + batch_size]
        n = int((~pm).sum())
        total += float(mdm_loss(model, x, pm, g, eps)) * n
        answer += n
    return total / max(answer, 1)


def _model_config(task: Task, cfg: TrainConfig) -> MDMConfig:
    from ..tasks.base import EOS, MASK, PAD

    return MDMConfig(vocab_size=task.vocab.size, mask_id=MASK, eos_id=EOS, pad_id=PAD,
                     max_len=task.prompt_len + task.gen_len, d_model=cfg.d_model, n_layers=cfg.n_layers,
                     n_heads=cfg.n_heads, d_ff=cfg.d_ff)


def train(task: Task, out: "str | Path", cfg: TrainConfig, max_steps_this_run: "int | None" = None,
          progress: bool = True) -> TrainSummary:
    """Train (or resume) for ``cfg.minutes`` of wall time — building the data pool included, unless it is
    cached — or ``max_steps_this_run`` steps. Everything is checked before the folder is created, and the
    folder is held by this run alone (:func:`exclusive`)."""
    out = Path(out)
    t0 = time.time()
    check_device(cfg.device)
    check_fits(cfg, task.prompt_len + task.gen_len, task.vocab.size)
    if not check_resume(out, cfg):  # refuses a folder this run cannot continue before anything is created
        check_init(cfg, _model_config(task, cfg))  # a resumed run continues its own weights, reads no --init
    with exclusive(out):
        return _train(task, out, cfg, t0, max_steps_this_run, progress)


def _train(task: Task, out: Path, cfg: TrainConfig, t0: float, max_steps_this_run: "int | None",
           progress: bool) -> TrainSummary:
    from .data import training_pool

    state = open_state(out, cfg, lambda: MDMTransformer(_model_config(task, cfg)))
    deadline = t0 + cfg.minutes * 60.0 - state.elapsed
    pool = training_pool(task, cfg.train_examples, cfg.seed, cache=cfg.cache, deadline=deadline, progress=progress)
    valid = None
    if cfg.valid_every:
        held_out = training_pool(task, cfg.valid_examples, cfg.seed, cache=cfg.cache, deadline=deadline,
                                 progress=progress, split="valid")
        valid = held_out.batch(torch.arange(len(held_out))) if len(held_out) else None
    state.elapsed += time.time() - t0
    if not len(pool):  # the minutes ran out while preparing data: keep the (untrained) state, resumable
        save_trainer(out, state, cfg)
        return _summary(task.name, state, None, 0)

    def loss_fn() -> torch.Tensor:
        ids, prompt_mask = pool.batch(torch.randint(len(pool), (cfg.batch_size,), generator=state.generator))
        return mdm_loss(state.model, ids, prompt_mask, state.generator, cfg.eps)

    valid_fn = (lambda: validation_loss(state.model, valid[0], valid[1], cfg.eps)) if valid is not None else None
    running = fit(state, cfg, loss_fn, out=out, desc=f"train {task.name}", max_steps_this_run=max_steps_this_run,
                  progress=progress, valid_fn=valid_fn)
    return _summary(task.name, state, running, len(pool))


def _summary(name: str, state: TrainState, running: "float | None", examples: int) -> TrainSummary:
    return TrainSummary(name, state.step, state.elapsed / 60, running, state.model.num_parameters(), state.resumed,
                        valid_loss=state.valid_log[-1][2] if state.valid_log else None, best_valid=state.best_valid,
                        best_step=state.best_step, examples=examples)
