"""The sampler interface: the generation canvas, blocks, the guarded model call and the output type.

Every sampler fills a *canvas* ``[left padding | prompt | L masked positions]``: prompts of different
lengths are left-padded so that all generation windows line up, and an attention mask marks the
padding. The window may be split into semi-autoregressive blocks (LLaDA's ``block_length``), filled
strictly in order. Only masked positions of the current block are ever written, so prompt tokens and
already-unmasked tokens never change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..registry import sampler_options
from .denoiser import Denoiser, check_denoiser

__all__ = ["SampleOutput", "Canvas", "make_canvas", "Sampler"]


@dataclass
class SampleOutput:
    """What a sampler returns.

    ``tokens`` is the whole canvas ``(B, T)`` (padding, prompt, generation); ``generated`` the window.
    ``nfe[b]`` counts the denoiser calls row ``b`` needed (a batched call counts for every row that used
    its output); ``calls`` counts the batched calls actually made. ``trajectory[b, j]`` (on request) is
    the model call (1-based, counted over the whole run) at which position ``j`` was unmasked, 0 for
    positions that were never masked.
    """

    tokens: Tensor
    nfe: Tensor
    calls: int
    gen_start: int
    attention_mask: "Tensor | None" = None
    trajectory: "Tensor | None" = None

    @property
    def generated(self) -> Tensor:
        return self.tokens[:, self.gen_start:]


@dataclass
class Canvas:
    x: Tensor
    attention_mask: "Tensor | None"
    prompt_mask: Tensor  # real prompt tokens (not padding)
    start: int
    length: int


def _as_rows(prompts) -> list[list[int]]:
    if isinstance(prompts, Tensor):
        if prompts.ndim == 1:
            return [prompts.tolist()]
        if prompts.ndim == 2:
            return prompts.tolist()
        raise ValueError(f"prompts must be 1-D or 2-D token ids, got shape {tuple(prompts.shape)}")
    rows = list(prompts)
    if rows and all(isinstance(t, int) for t in rows):
        return [rows]
    return [r.tolist() if isinstance(r, Tensor) else [int(t) for t in r] for r in rows]


def make_canvas(
    denoiser: Denoiser,
    prompts,
    gen_length: int,
    batch_size: int = 1,
    device: "torch.device | str | None" = None,
    pad_id: "int | None" = None,
    max_length: "int | None" = None,
) -> Canvas:
    """Left-pad the prompts and append ``gen_length`` mask tokens.

    ``prompts`` is ``None`` (unconditional: ``batch_size`` rows), one sequence of ids (repeated
    ``batch_size`` times), a ``(B, P)`` tensor, or a list of sequences of any lengths.
    """
    if isinstance(gen_length, bool) or not isinstance(gen_length, int) or gen_length < 1:
        raise ValueError(f"gen_length must be a positive integer, got {gen_length!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    rows = [[]] * batch_size if prompts is None else _as_rows(prompts)
    if prompts is not None and len(rows) == 1 and batch_size > 1:
        rows = rows * batch_size
    V = int(denoiser.vocab_size)
    for r in rows:
        for t in r:
            if not 0 <= t < V:
                raise ValueError(f"prompt token {t} is outside the vocabulary [0, {V})")
    P = max((len(r) for r in rows), default=0)
    limit = max_length if max_length is not None else getattr(denoiser, "max_length", None)
    if limit is not None and P + gen_length > limit:
        raise ValueError(
            f"prompt of {P} tokens plus gen_length {gen_length} exceeds the model window of {limit} tokens"
        )
    pad = pad_id if pad_id is not None else (denoiser.eos_id if getattr(denoiser, "eos_id", None) is not None else 0)
    B, T = len(rows), P + gen_length
    x = torch.full((B, T), int(pad), dtype=torch.long)
    prompt_mask = torch.zeros((B, T), dtype=torch.bool)
    for b, r in enumerate(rows):
        if r:
            x[b, P - len(r):P] = torch.tensor(r, dtype=torch.long)
            prompt_mask[b, P - len(r):P] = True
    x[:, P:] = int(denoiser.mask_id)
    padded = any(len(r) < P for r in rows)
    attention = None
    if padded:
        attention = torch.ones((B, T), dtype=torch.bool)
        for b, r in enumerate(rows):
            attention[b, : P - len(r)] = False
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return Canvas(
        x=x.to(dev),
        attention_mask=None if attention is None else attention.to(dev),
        prompt_mask=prompt_mask.to(dev),
        start=P,
        length=gen_length,
    )


class Sampler(ABC):
    """Common interface: ``sampler(denoiser, prompts, gen_length, ...) -> SampleOutput``.

    ``temperature`` (τ ≥ 0; 0 = argmax) sets how candidates are drawn, ``block_length`` splits the
    window into semi-autoregressive blocks, ``cfg_scale`` > 0 turns on classifier-free guidance
    (LLaDA's form: the unconditional pass masks the prompt; both passes go in one batched call, which
    counts as one model call).

    A subclass's ``name`` is its entry in :mod:`mdm_energy.registry`, which validates the options and
    holds their defaults; each option becomes an attribute of the same name.
    """

    name = "sampler"

    def __init__(self, **options: Any) -> None:
        self.options = sampler_options(self.name, **options)
        for key, value in self.options.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={getattr(v, 'spec', v)!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # --- the run -------------------------------------------------------------------------------
    def __call__(
        self,
        denoiser: Denoiser,
        prompts=None,
        gen_length: int = 32,
        *,
        batch_size: int = 1,
        generator: "torch.Generator | None" = None,
        return_trajectory: bool = False,
        pad_id: "int | None" = None,
        max_length: "int | None" = None,
        device: "torch.device | str | None" = None,
    ) -> SampleOutput:
        check_denoiser(denoiser)
        if device is None and generator is not None:
            device = generator.device
        canvas = make_canvas(denoiser, prompts, gen_length, batch_size, device, pad_id, max_length)
        blocks = self._blocks(gen_length)
        B, T = canvas.x.shape
        run = _RunState(
            denoiser=denoiser,
            canvas=canvas,
            nfe=torch.zeros(B, dtype=torch.long, device=canvas.x.device),
            trajectory=torch.zeros((B, T), dtype=torch.long, device=canvas.x.device),
            generator=generator,
            plan=self._plan(gen_length, len(blocks)),
        )
        with torch.no_grad():
            for b, (lo, hi) in enumerate(blocks):
                in_block = torch.zeros(T, dtype=torch.bool, device=canvas.x.device)
                in_block[canvas.start + lo: canvas.start + hi] = True
                self._fill_block(run, in_block, hi - lo, b)
        return SampleOutput(
            tokens=run.canvas.x,
            nfe=run.nfe,
            calls=run.calls,
            gen_start=canvas.start,
            attention_mask=canvas.attention_mask,
            trajectory=run.trajectory if return_trajectory else None,
        )

    generate = __call__

    def _blocks(self, gen_length: int) -> list[tuple[int, int]]:
        B = self.block_length or gen_length
        if gen_length % B:
            raise ValueError(f"block_length {B} does not divide gen_length {gen_length}")
        return [(k * B, (k + 1) * B) for k in range(gen_length // B)]

    def _plan(self, gen_length: int, num_blocks: int) -> object:
        """Per-run data that needs the generation length (e.g. counts per block step), checked here."""
        return None

    @abstractmethod
    def _fill_block(self, run: "_RunState", in_block: Tensor, block_len: int, block_index: int) -> None:
        """Unmask every position of one block."""

    # --- helpers for subclasses ------------------------------------------------------------------
    def _masked(self, run: "_RunState", in_block: Tensor) -> Tensor:
        x = run.canvas.x
        window = torch.zeros_like(in_block)
        window[run.canvas.start:] = True
        return (x == run.denoiser.mask_id) & (in_block & window).unsqueeze(0)

    def _logits(self, run: "_RunState", rows_used: Tensor) -> Tensor:
        """One guarded model call: logits ``(B, T, V)``, mask token suppressed; counts the call."""
        den, x, am = run.denoiser, run.canvas.x, run.canvas.attention_mask
        run.calls += 1
        if self.cfg_scale > 0:
            uncond = x.clone()
            uncond[run.canvas.prompt_mask] = den.mask_id
            both = den(torch.cat([x, uncond]), None if am is None else torch.cat([am, am]))
            cond_logits, uncond_logits = both.chunk(2)
            logits = uncond_logits + (self.cfg_scale + 1.0) * (cond_logits - uncond_logits)
        else:
            logits = den(x, am)
        V = int(den.vocab_size)
        if logits.ndim != 3 or logits.shape[:2] != x.shape or logits.shape[2] < V:
            raise ValueError(f"denoiser returned logits of shape {tuple(logits.shape)}; expected {tuple(x.shape) + (V,)}")
        run.nfe += rows_used.long()
        return logits[..., :V]

    def _rows(self, run: "_RunState", logits: Tensor, where: Tensor) -> tuple[Tensor, Tensor]:
        """The logits of the positions ``where`` as ``(M, V)`` rows (the mask token suppressed: it is never
        committed) and their log-normalisers. Rows with NaN, +inf or only -inf logits raise
        ``ValueError`` naming the model call; -inf entries (impossible tokens) are allowed."""
        flat = logits[where]
        flat[:, run.denoiser.mask_id] = float("-inf")
        if not flat.dtype.is_floating_point or flat.dtype in (torch.float16, torch.bfloat16):
            flat = flat.float()
        lse = torch.logsumexp(flat, dim=-1)  # NaN and +inf propagate here, so this is also the check
        if not torch.isfinite(lse).all():
            raise ValueError(f"denoiser returned non-finite logits (NaN, +inf or all -inf) at model call {run.calls}")
        return flat, lse

    def _commit(self, run: "_RunState", where: Tensor, values: Tensor) -> None:
        run.canvas.x[where] = values
        run.trajectory[where] = run.calls


@dataclass
class _RunState:
    denoiser: Denoiser
    canvas: Canvas
    nfe: Tensor
    trajectory: Tensor
    generator: "torch.Generator | None"
    plan: object = None
    calls: int = 0


def steps_per_block(steps: int, num_blocks: int) -> int:
    if steps % num_blocks:
        raise ValueError(f"steps {steps} is not divisible by the number of blocks {num_blocks}")
    return steps // num_blocks

