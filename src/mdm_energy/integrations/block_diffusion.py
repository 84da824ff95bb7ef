"""Block-diffusion masked LLMs — LLaDA 2.x and SDAR — as denoisers of the one decoding loop.

These models attend **block-causally**: the sequence is cut into blocks of ``block_size`` positions (counted
from the first prompt token), a position sees every position of its own block and of the blocks before it,
and nothing after. A finished block therefore never changes again, and neither do its keys and values: the
prompt and the finished blocks go through the model once and are kept in a key/value cache, and each model
call of the sampler runs **the current block alone** on top of that cache. Future blocks are not in the input.

**The canvas** (:meth:`BlockDiffusionDenoiser.make_canvas`). Blocks are aligned on the model's positions, so
the prompt's last ``P mod B`` tokens share the first generated block with its first masks (the authors'
``prefill_blocks = P // B``; the prompt is not padded to a block boundary), and the last block runs to the
next boundary past ``P + L`` (the authors' ``total_length``); what lies past ``P + L`` is decoded and dropped.
The sampler's window is the block-aligned range from the first block that holds a mask, so every block has
the model's ``block_size`` positions and every registered sampler runs unchanged, with its ``steps`` split
evenly over these blocks and its schedule applied inside each one. Rows of a batch are left-padded by whole
blocks so that their blocks line up; a row that needs fewer blocks than another has its extra blocks filled
with padding (nothing masked there: no call). The prompt's tail in the first block is never written, masked
again, or taken for an end token.

**Calls.** A call for rows ``R`` and block ``[lo, hi)`` first extends each row's cache to ``lo`` (one forward of
the newly finished positions under the block-causal mask — the prefill of the prompt's whole blocks at the first
call, then one per finished block), then runs ``[lo, hi)`` against the cache. The extension forwards are
counted apart (:attr:`~mdm_energy.sampling.SampleOutput.cache_nfe`); the sampler's NFE counts the calls that
denoise. The authors' code makes one such forward after *every* block, the last included (SDAR's
``store_kv`` pass, SGLang's persisting forward); this one encodes a block only when a later block needs it.
With ``block_cache=False`` every call recomputes ``[0, hi)`` under the block-causal mask (LLaDA 2.x's own
``generate`` does that) — the same tokens, more arithmetic.

Family detection and defaults come from the config (:data:`BLOCK_FAMILIES`); the mask id, block size and end
tokens can each be given instead.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from ..sampling.base import Canvas, SampleOutput, _as_rows

__all__ = ["BlockFamily", "BLOCK_FAMILIES", "block_family", "check_steps_per_block", "BlockCanvas",
           "BlockDiffusionDenoiser"]


@dataclass(frozen=True)
class BlockFamily:
    """A block-diffusion model family: how to recognise its config and its published defaults.

    ``mask_format`` is how its forward takes the 4-D attention mask: ``additive`` (float, 0 where a query may
    attend and -inf elsewhere: LLaDA 2.x) or ``bool`` (True where it may: SDAR). ``store_kv``: its forward
    appends the call's keys and values to the cache only when asked (SDAR's ``store_kv`` argument)."""

    name: str
    model_types: tuple[str, ...]
    architectures: tuple[str, ...]
    block_size: int
    mask_id: int
    eos_ids: tuple[int, ...] = ()
    mask_format: str = "additive"
    store_kv: bool = False


#: The block-diffusion families, by name. LLaDA 2.x: ``LLaDA2MoeModelLM`` (blocks of 32, ``[MASK]`` 156895, EOS
#: 156892 — the defaults of its ``generate``); SDAR: ``SDARForCausalLM`` / ``SDARMoeForCausalLM`` (blocks of 4,
#: mask 151669, the end tokens from its config — its ``generate.py`` takes them from the generation config).
BLOCK_FAMILIES: dict[str, BlockFamily] = {
    "llada2": BlockFamily("llada2", ("llada2_moe", "llada2"), ("LLaDA2MoeModelLM",), 32, 156895, (156892,), "additive"),
    "sdar": BlockFamily("sdar", ("sdar", "sdar_moe"), ("SDARForCausalLM", "SDARMoeForCausalLM"), 4, 151669, (),
                        "bool", store_kv=True),
}


def block_family(model) -> "str | None":
    """The block-diffusion family of a model (or config) — by ``model_type``, else by ``architectures`` — or None."""
    config = getattr(model, "config", model)
    kind = str(getattr(config, "model_type", "") or "").lower()
    archs = set(getattr(config, "architectures", None) or ()) | {type(model).__name__}
    for fam in BLOCK_FAMILIES.values():
        if kind in fam.model_types or archs & set(fam.architectures):
            return fam.name
    return None


def check_steps_per_block(sampler: str, steps: "int | None", steps_per_block: "int | None",
                          names: tuple[str, str] = ("steps", "steps_per_block")) -> None:
    """Refuse ``steps`` and ``steps_per_block`` together (one decides the other: :meth:`BlockDiffusionDenoiser.
    total_steps`), and ``steps_per_block`` for a sampler that takes no steps — ``ValueError`` in the caller's
    spelling of the two options (``names``: the library's, ``--steps``/``--steps-per-block``, lm-eval's
    model_args). The one check behind ``generate()``, the ``generate`` command and the lm-eval model."""
    if steps_per_block is None:
        return
    if steps is not None:
        raise ValueError(f"give {names[0]} or {names[1]}, not both")
    from ..registry import sampler_spec

    if "steps" not in sampler_spec(sampler).params:
        raise ValueError(f"{names[1]}: the {sampler} sampler takes no steps")


@dataclass
class BlockCanvas(Canvas):
    """A canvas laid out on the model's blocks (module docstring): ``pads[b]`` padding positions (whole blocks),
    then row ``b``'s ``lengths[b]`` prompt tokens, its ``answer`` positions and the rest of its last block."""

    lengths: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    answer: int = 0
    pad_id: int = 0


@dataclass
class _Prefix:
    """One run's cache: per layer the keys and values of every canvas position ``< done[b]`` of row ``b``."""

    canvas: BlockCanvas
    positions: Tensor  # (B, T) position ids (from the first prompt token)
    done: Tensor  # (B,) canvas positions already encoded
    cache_nfe: Tensor  # (B,) forwards that only extended the cache
    keys: list = field(default_factory=list)
    values: list = field(default_factory=list)


def _takes(model, name: str) -> bool:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params


#: Samplers whose rule needs the whole window in every call, which a block-causal model never sees, and why.
_WHOLE_WINDOW = {
    "prophet": "its early exit commits every masked position of the window, and its gap is averaged over an answer "
               "region that later blocks hold",
    "wino": "its verification view appends a shadow copy of the block after the whole canvas",
}


class BlockDiffusionDenoiser:
    """A block-causal Hugging Face model (LLaDA 2.x, SDAR) as a denoiser of the decoding loop (module docstring).

    ``mask_id`` defaults to the config's ``mask_token_id``, else the family's; ``block_size`` to the config's
    ``block_size`` (or ``block_length``), else the family's; the end tokens to ``stop_ids``, else the config's and
    tokenizer's ``eos_token_id`` and the family's. ``block_cache`` keeps finished blocks in a key/value cache
    (the model's forward must take ``past_key_values``); without it every call recomputes the prefix."""

    block_causal = True

    def __init__(self, model, family: "str | None" = None, *, mask_id: "int | None" = None,
                 block_size: "int | None" = None, eos_id: "int | None" = None,
                 stop_ids: "tuple[int, ...] | None" = None, tokenizer=None, block_cache: bool = True) -> None:
        name = family or block_family(model)
        if name not in BLOCK_FAMILIES:
            raise ValueError(f"unknown block-diffusion family {name!r} (known: {', '.join(BLOCK_FAMILIES)})")
        fam = self.family = BLOCK_FAMILIES[name]
        config = getattr(model, "config", None)
        who = f"the {fam.name} model's config"
        vocab = getattr(config, "vocab_size", None)
        if vocab is None:
            raise ValueError(f"{who} has no vocab_size")
        self.model, self.vocab_size = model, int(vocab)
        if mask_id is None:
            mask_id = getattr(config, "mask_token_id", None)
        if mask_id is None:
            if fam.mask_id >= self.vocab_size:
                raise ValueError(f"{who} has no mask_token_id and the family's mask id {fam.mask_id} is outside its "
                                 f"vocabulary of {self.vocab_size}: give mask_id")
            mask_id = fam.mask_id
        self.mask_id = int(mask_id)
        if block_size is None:
            block_size = getattr(config, "block_size", None) or getattr(config, "block_length", None) or fam.block_size
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        self.block_size = block_size
        ids: set[int] = set(stop_ids or ())
        if not ids:
            for src in (config, tokenizer):
                eos = getattr(src, "eos_token_id", None) if src is not None else None
                ids |= {int(eos)} if isinstance(eos, int) else {int(e) for e in (eos or ())}
            ids |= set(fam.eos_ids)
        ids = {i for i in ids if 0 <= i < self.vocab_size and i != self.mask_id}
        if eos_id is None:
            eos = getattr(config, "eos_token_id", None)
            eos_id = eos if isinstance(eos, int) else (eos[0] if eos else (min(ids) if ids else None))
        self.eos_id = None if eos_id is None or not 0 <= int(eos_id) < self.vocab_size else int(eos_id)
        self.stop_ids = tuple(sorted(ids)) or None
        self.max_length = getattr(config, "max_position_embeddings", None)
        self.block_cache = bool(block_cache)  # checked against the forward in begin(): the CLI may turn it off after
        from ..sampling.denoiser import check_denoiser

        check_denoiser(self)

    # --- the canvas ------------------------------------------------------------------------------
    def total_steps(self, prompts, gen_length: int, steps_per_block: int) -> int:
        """The sampler's ``steps`` for the authors' steps per block: ``steps_per_block`` times the blocks the canvas
        of ``prompts`` decodes (the first may hold the prompt's tail; see :meth:`make_canvas`)."""
        return int(steps_per_block) * (self.window_length(prompts, gen_length) // self.block_size)

    def window_length(self, prompts, gen_length: int) -> int:
        """The window of the canvas of ``prompts`` (:meth:`make_canvas`'s ``length``), without building it: the
        longest row's blocks from the one holding its prompt's end to the one holding its answer's end."""
        rows = [[]] if prompts is None else _as_rows(prompts)
        return max(self._row_window(len(r), gen_length) for r in rows)

    def _row_window(self, prompt_length: int, gen_length: int) -> int:
        """Positions one row decodes: whole blocks from the one holding its prompt's end (which starts with the
        prompt's tail, ``prompt_length mod B`` positions) to the one holding its answer's end."""
        B = self.block_size
        return -(-(prompt_length % B + gen_length) // B) * B

    def make_canvas(self, prompts, gen_length: int, batch_size: int = 1, device=None, pad_id: "int | None" = None,
                    max_length: "int | None" = None) -> BlockCanvas:
        """The block-aligned canvas of ``prompts`` (module docstring); same arguments as
        :func:`~mdm_energy.sampling.make_canvas`."""
        if isinstance(gen_length, bool) or not isinstance(gen_length, int) or gen_length < 1:
            raise ValueError(f"gen_length must be a positive integer, got {gen_length!r}")
        rows = [[]] * batch_size if prompts is None else _as_rows(prompts)
        if prompts is not None and len(rows) == 1 and batch_size > 1:
            rows = rows * batch_size
        for r in rows:
            for t in r:
                if not 0 <= t < self.vocab_size:
                    raise ValueError(f"prompt token {t} is outside the vocabulary [0, {self.vocab_size})")
        B, L = self.block_size, gen_length
        full = [len(r) // B * B for r in rows]  # each row's prompt blocks (encoded once, cached)
        S = max(full)
        ends = [self._row_window(len(r), L) for r in rows]  # window each row needs
        W = max(ends)
        T = S + W
        limit = max_length if max_length is not None else self.max_length
        longest = max(len(r) for r in rows)
        if limit is not None and longest + L > limit:
            raise ValueError(f"prompt of {longest} tokens plus gen_length {L} exceeds the model window of {limit} tokens")
        pad = int(pad_id if pad_id is not None else (self.eos_id if self.eos_id is not None else 0))
        x = torch.full((len(rows), T), pad, dtype=torch.long)
        fixed = torch.zeros((len(rows), T), dtype=torch.bool)
        attention = torch.ones((len(rows), T), dtype=torch.bool)
        pads = []
        for b, (r, f, e) in enumerate(zip(rows, full, ends)):
            p0 = S - f
            pads.append(p0)
            attention[b, :p0] = False
            x[b, p0:p0 + len(r)] = torch.tensor(r, dtype=torch.long)
            x[b, p0 + len(r):S + e] = self.mask_id
            fixed[b, p0:p0 + len(r)] = True
            fixed[b, S + e:] = True  # past this row's last block: padding, never written
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return BlockCanvas(x=x.to(dev), attention_mask=None if all(p == 0 for p in pads) else attention.to(dev),
                           prompt_mask=fixed.to(dev), start=S, length=W, lengths=tuple(len(r) for r in rows),
                           pads=tuple(pads), answer=L, pad_id=pad)

    # --- the run -----------------------------------------------------------------------------------
    def begin(self, sampler, canvas: Canvas) -> _Prefix:
        """A run's cache state; refuses what a block-causal model cannot do."""
        cls = type(self.model).__name__
        if not isinstance(canvas, BlockCanvas):
            raise ValueError(f"a block-causal model ({cls}) needs its own canvas layout (make_canvas)")
        if sampler.cache != "none":
            raise ValueError(f"cache {sampler.cache!r} is the recompute cache of bidirectional models; {cls} keeps its "
                             "finished blocks in its own key/value cache: leave cache at none")
        if sampler.cfg_scale > 0:
            raise ValueError(f"cfg_scale {sampler.cfg_scale} (classifier-free guidance) is not supported on a "
                             f"block-causal model ({cls})")
        if sampler.name in _WHOLE_WINDOW:
            raise ValueError(f"the {sampler.name} sampler is not supported on a block-causal model ({cls}): "
                             f"{_WHOLE_WINDOW[sampler.name]}")
        if self.block_cache and not _takes(self.model, "past_key_values"):
            raise ValueError(f"{cls}'s forward takes no past_key_values, so finished blocks cannot be cached: use "
                             "block_cache=False (--no-block-cache) to recompute them at every call")
        B = canvas.x.shape[0]
        am = canvas.attention_mask
        if am is None:
            positions = torch.arange(canvas.x.shape[1], device=canvas.x.device).expand(B, -1)
        else:
            positions = (am.long().cumsum(-1) - 1).clamp(min=0)
        zeros = torch.zeros(B, dtype=torch.long, device=canvas.x.device)
        return _Prefix(canvas, positions, zeros.clone(), zeros.clone())

    def _allowed(self, real: Tensor, q0: int, q1: int, k1: int) -> Tensor:
        """``(R, 1, q1 - q0, k1)``: query ``q`` may attend key ``k`` when ``k``'s block is not after ``q``'s and ``k`` is
        a real token; a padding query attends itself only (so that it stays finite)."""
        q = torch.arange(q0, q1, device=real.device)
        k = torch.arange(k1, device=real.device)
        B = self.block_size
        causal = (k.unsqueeze(0) // B) <= (q.unsqueeze(1) // B)
        allowed = causal.unsqueeze(0) & real[:, None, :k1]
        allowed |= (k.unsqueeze(0) == q.unsqueeze(1)).unsqueeze(0)
        return allowed.unsqueeze(1)

    def _mask(self, allowed: Tensor) -> Tensor:
        if self.family.mask_format == "bool":
            return allowed
        dtype = next(self.model.parameters()).dtype if hasattr(self.model, "parameters") else torch.float32
        dtype = dtype if dtype.is_floating_point else torch.float32
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, float("-inf"))

    def _forward(self, tokens: Tensor, positions: Tensor, allowed: Tensor, past: "list | None", store: bool):
        """One forward of ``tokens`` (after the cached ``past`` per-layer ``(key, value)``); returns the logits and,
        with ``store``, the cache holding the past and these tokens."""
        kwargs: dict[str, Any] = {"input_ids": tokens, "position_ids": positions, "attention_mask": self._mask(allowed)}
        cache = None
        if past is not None or store:
            from transformers.cache_utils import DynamicCache

            cache = DynamicCache()
            for i, (k, v) in enumerate(past or ()):
                cache.update(k, v, i)  # a fresh cache per call: the model appends to it, never to ours
            kwargs.update(past_key_values=cache, use_cache=True)
            if self.family.store_kv:
                kwargs["store_kv"] = store
        out = self.model(**kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return logits, cache

    def _extend(self, state: _Prefix, x: Tensor, rows: Tensor, lo: int) -> None:
        """Encode positions ``[done, lo)`` of ``rows`` (``x`` their canvas rows) into the cache, one forward per group
        of rows that share ``done``."""
        real_all = state.canvas.attention_mask
        while True:
            done = state.done[rows]
            behind = done < lo
            if not bool(behind.any()):
                return
            c = int(done[behind].min())
            sel = behind & (done == c)
            g, xs = rows[sel], x[sel]
            real = (torch.ones_like(xs, dtype=torch.bool) if real_all is None else real_all[g])
            past = [(k[g, :, :c], v[g, :, :c]) for k, v in zip(state.keys, state.values)] if c > 0 else None
            _, cache = self._forward(xs[:, c:lo], state.positions[g, c:lo], self._allowed(real, c, lo, lo), past, True)
            if not state.keys:  # first extension: room for every position of the canvas
                B, T = state.canvas.x.shape
                for layer in cache.layers:
                    shape = (B, layer.keys.shape[1], T, layer.keys.shape[3])
                    state.keys.append(layer.keys.new_zeros(shape))
                    state.values.append(layer.values.new_zeros((B, layer.values.shape[1], T, layer.values.shape[3])))
            for i, layer in enumerate(cache.layers):
                state.keys[i][g, :, c:lo] = layer.keys[:, :, c:lo]
                state.values[i][g, :, c:lo] = layer.values[:, :, c:lo]
            state.done[g] = lo
            state.cache_nfe[g] += real[:, c:lo].any(-1).long()  # a row with only padding there makes no real call

    def block_logits(self, state: _Prefix, x: Tensor, rows: Tensor, lo: int, hi: int,
                     attention_mask: "Tensor | None" = None) -> Tensor:
        """Logits ``(R, hi - lo, V)`` of block ``[lo, hi)`` for the batch rows ``rows`` (``x`` their canvas rows)."""
        am = state.canvas.attention_mask
        real = torch.ones_like(x, dtype=torch.bool) if am is None else am[rows]
        if not self.block_cache:
            logits, _ = self._forward(x[:, :hi], state.positions[rows, :hi], self._allowed(real, 0, hi, hi), None, False)
            return logits[:, lo:hi]
        if lo > 0:
            self._extend(state, x, rows, lo)
        past = [(k[rows, :, :lo], v[rows, :, :lo]) for k, v in zip(state.keys, state.values)] if lo > 0 else None
        logits, _ = self._forward(x[:, lo:hi], state.positions[rows, lo:hi], self._allowed(real, lo, hi, hi), past, False)
        return logits

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        """Logits of every position of a block-aligned canvas under the block-causal mask, no cache (a plain
        denoiser call; the decoding loop uses :meth:`block_logits`)."""
        B, T = tokens.shape
        real = torch.ones_like(tokens, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        logits, _ = self._forward(tokens, positions, self._allowed(real, 0, T, T), None, False)
        return logits

    def finish(self, out: SampleOutput, state: _Prefix) -> SampleOutput:
        """The run's output laid out as every sampler's: ``[left padding | prompt | gen_length answer]``."""
        canvas = state.canvas
        P, L = max(canvas.lengths), canvas.answer
        B = len(canvas.lengths)
        tokens = out.tokens.new_full((B, P + L), canvas.pad_id)
        traj = None if out.trajectory is None else out.trajectory.new_zeros((B, P + L))
        attention = torch.ones((B, P + L), dtype=torch.bool, device=out.tokens.device)
        for b, (n, p0) in enumerate(zip(canvas.lengths, canvas.pads)):
            tokens[b, P - n:] = out.tokens[b, p0:p0 + n + L]
            attention[b, :P - n] = False
            if traj is not None:
                traj[b, P:] = out.trajectory[b, p0 + n:p0 + n + L]
        return replace(out, tokens=tokens, gen_start=P, trajectory=traj, cache_nfe=state.cache_nfe,
                       attention_mask=None if bool(attention.all()) else attention)
