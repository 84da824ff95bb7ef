"""The one decoding loop: the generation canvas, blocks, the guarded model call, commits, revisions, early stop.

Every sampler fills a *canvas* ``[left padding | prompt | L masked positions]``: prompts of different
lengths are left-padded so that all generation windows line up, and an attention mask marks the
padding. The window may be split into semi-autoregressive blocks (LLaDA's ``block_length``), filled
strictly in order. Only masked positions of the current block are ever written, so prompt tokens and
already-unmasked tokens never change.

A model call serves only the rows that are still *active*: with ``stop_at_eos`` a row leaves the batch
once it has committed an end token with nothing masked before it (its remaining positions become EOS),
and the batch that reaches the model shrinks. Random draws come from one stream per row
(:class:`~mdm_energy.sampling.rng.RowRNG`), so this never changes another row's output.

**The loop and its hooks.** :meth:`Sampler.__call__` runs the blocks in order; in each block, step after step,
it asks the sampler which rows need a model call (:meth:`Sampler.need`; ``None`` ends the block), makes
that one guarded call (guidance, key/value caches, NFE counting), asks the sampler what to do with it
(:meth:`Sampler.decide` returns a :class:`Decision`: positions to commit with their tokens and, for
revising decoders, committed positions to mask again), and applies it (trajectory, early stop, callback).
A sampler is a declaration in :mod:`mdm_energy.registry` plus a class that fills in :meth:`~Sampler.decide`
and, where it needs them, :meth:`~Sampler.plan`, :meth:`~Sampler.need` and :meth:`~Sampler.block_steps`;
it never writes its own loop. :meth:`~Sampler.candidates` draws candidates and scores them.

**Block-causal models** (LLaDA 2.x, SDAR; :mod:`mdm_energy.integrations.block_diffusion`) run in the same loop:
their denoiser lays the canvas out on the model's blocks (the window starts on the block boundary before the
prompt's end, so its first positions hold the prompt's tail, never written), fixes ``block_length`` to the model's
block size, and each call computes the current block alone on top of its own cache of finished blocks.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, Callable, ClassVar, Protocol, Sequence

import torch
from torch import Tensor

from ..registry import SAMPLERS, SamplerSpec, sampler_options, sampler_spec
from ..schedules import Schedule
from .denoiser import Denoiser, check_denoiser, stop_ids_of
from .ops import confidence_scores, draw_candidates
from .rng import RowRNG

__all__ = ["SampleOutput", "Canvas", "Step", "View", "Decision", "Block", "Plan", "RunState", "make_canvas", "Sampler",
           "ScheduledSampler", "LAST_RESORT", "steps_per_block", "spread"]

#: The score of a candidate that may be committed only when nothing else is left (``confidence_eos_eot_inf``):
#: finite, so it can still be chosen, and below every real score (probabilities, margins, minus entropies).
LAST_RESORT = -1e300

#: ``callback(step, tokens, committed)``: after every model call's commits, the call number (1-based), the
#: whole canvas ``(B, T)`` and a boolean ``(B, T)`` of the positions committed by that call.
StepCallback = Callable[[int, Tensor, Tensor], None]


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
    stopped: "Tensor | None" = None  # (B,) rows that stopped early at an end token (stop_at_eos)
    cache_nfe: "Tensor | None" = None  # (B,) block-causal models: the calls that only encoded finished blocks

    @property
    def generated(self) -> Tensor:
        return self.tokens[:, self.gen_start:]


@dataclass
class Step:
    """One model call: the batch rows it served and their logits ``(R, S, V)`` for the positions
    ``offset .. offset + S`` (all of them, ``offset`` 0, unless a key/value cache limited the call to a span)."""

    rows: Tensor
    logits: Tensor
    offset: int = 0

    def at(self, where: Tensor) -> Tensor:
        """The logits rows ``(M, V)`` of the positions ``where`` ``(R, T)`` (all inside the computed span)."""
        S = self.logits.shape[1]
        return self.logits[where[:, self.offset:self.offset + S]]


class View(Protocol):
    """Another layout of a model call's rows (:meth:`Sampler.call_model`): ``view(denoiser, tokens,
    attention_mask)`` runs the denoiser on the rows' canvas ``tokens`` ``(R, T)`` (padding mask ``(R, T)`` or
    ``None``) followed by ``extra`` slots of its own, and returns the logits ``(R, T + extra, V)``."""

    extra: int

    def __call__(self, denoiser: Denoiser, tokens: Tensor, attention_mask: "Tensor | None") -> Tensor: ...


@dataclass
class Canvas:
    x: Tensor
    attention_mask: "Tensor | None"
    prompt_mask: Tensor  # real prompt tokens (not padding)
    start: int
    length: int


def _seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"a row seed must be an integer in [0, 2**63), got {value!r}")
    return int(value)


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


@dataclass
class Decision:
    """What a sampler does with one model call, for the rows it served (all ``(R, T)``): write ``values`` at
    ``commit``; first, mask ``remask`` again (revising decoders; prompt tokens are never re-masked)."""

    commit: Tensor
    values: Tensor
    remask: "Tensor | None" = None


@dataclass(frozen=True)
class Plan:
    """What a run needs to know about one block's steps, from the schedule: the tokens each step commits
    (``counts``) or the probability that a masked position is revealed at each step (``reveal``)."""

    counts: tuple[int, ...] = ()
    reveal: tuple[float, ...] = ()

    @property
    def steps(self) -> int:
        return max(len(self.counts), len(self.reveal))

    @cached_property
    def cumulative(self) -> tuple[int, ...]:
        r""":math:`C_k = \sum_{m \le k} c_m`, the tokens committed by the end of step ``k``."""
        return tuple(itertools.accumulate(self.counts))


@dataclass
class Block:
    """The block being filled: its index, absolute positions ``[lo, hi)`` (and as a ``(T,)`` mask), the step
    of the block the loop is at (0-based), the model calls made in it, and scratch space the sampler owns
    (e.g. what ``need`` decided for ``decide``)."""

    index: int
    lo: int
    hi: int
    positions: Tensor
    step: int = 0
    calls: int = 0
    scratch: Any = None

    @property
    def length(self) -> int:
        return self.hi - self.lo


@dataclass
class RunState:
    """Everything one run of a sampler keeps between model calls."""

    denoiser: Denoiser
    canvas: Canvas
    nfe: Tensor
    trajectory: Tensor
    rng: RowRNG
    active: Tensor
    stopped: Tensor
    banned: Tensor
    stops: Tensor
    fill: int
    plan: Plan
    block: "Block | None" = None
    calls: int = 0
    callback: "StepCallback | None" = field(default=None)
    scratch: dict = field(default_factory=dict)  # the sampler's own state across blocks (this run only)
    kv: Any = None  # the key/value cache of the block's last full call (cache modes)
    kv_rows: "Tensor | None" = None  # the batch rows that cache holds, ascending
    prefix: Any = None  # a block-causal denoiser's own state: the keys and values of finished blocks


def spread(where: Tensor, cand: Tensor, scores: "Tensor | None" = None) -> tuple[Tensor, "Tensor | None"]:
    """Per-position ``(M,)`` candidates (and float64 scores) back onto the ``(R, T)`` grid of ``where``: 0 and -inf
    (never chosen) elsewhere."""
    cand_full = torch.zeros(where.shape, dtype=torch.long, device=where.device)
    cand_full[where] = cand
    if scores is None:
        return cand_full, None
    score_full = torch.full(where.shape, float("-inf"), dtype=torch.float64, device=where.device)
    score_full[where] = scores
    return cand_full, score_full


def steps_per_block(steps: int, num_blocks: int) -> int:
    """``steps`` split evenly over ``num_blocks`` (``ValueError`` when it does not divide)."""
    if steps % num_blocks:
        raise ValueError(f"steps {steps} is not divisible by the number of blocks {num_blocks}")
    return steps // num_blocks


class Sampler(ABC):
    """Common interface: ``sampler(denoiser, prompts, gen_length, ...) -> SampleOutput``.

    ``temperature`` (τ ≥ 0; 0 = argmax) sets how candidates are drawn, ``block_length`` splits the
    window into semi-autoregressive blocks, ``cfg_scale`` > 0 turns on classifier-free guidance
    (LLaDA's form: the unconditional pass masks the prompt; both passes go in one batched call, which
    counts as one model call). The end-of-sequence controls (``logits_eos_inf``, ``suppress_tokens``,
    ``confidence_eos_eot_inf``, ``stop_at_eos``) are described in :mod:`mdm_energy.registry`.

    A subclass's ``name`` is its declaration in :mod:`mdm_energy.registry` (:func:`~mdm_energy.registry.register_sampler`),
    which validates the options and holds their defaults: the constructor takes exactly those options (by
    keyword, or positionally in their declared order) and each becomes an attribute of the same name.
    """

    name: ClassVar[str] = ""
    temperature: float = 0.0
    block_length: "int | None" = None
    cfg_scale: float = 0.0
    logits_eos_inf = False
    suppress_tokens: tuple = ()
    stop_at_eos = False
    confidence_eos_eot_inf = False
    cache = "none"
    cache_refresh: "int | None" = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name and name in SAMPLERS:
            cls._bind_spec(SAMPLERS[name])

    @classmethod
    def _check_options(cls, spec: SamplerSpec) -> None:
        """Options become attributes: one may not hide a method (of the loop or of this class)."""
        taken = [k for k in spec.params if k in ("name", "options") or callable(getattr(cls, k, None))]
        if taken:
            raise ValueError(f"sampler {spec.name!r}: option name {taken[0]!r} is taken by the {cls.__name__} class")

    @classmethod
    def _bind_spec(cls, spec: SamplerSpec) -> None:
        """Called by the registry: take the declared name, and show the declared options as the signature."""
        cls._check_options(spec)
        cls.name = spec.name
        cls.__signature__ = inspect.Signature(
            [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=o.default) for k, o in spec.params.items()])

    @classmethod
    def declaration(cls) -> SamplerSpec:
        """This sampler's declaration in the registry."""
        return sampler_spec(cls.name)

    def __init__(self, *args: Any, **options: Any) -> None:
        names = self.declaration().options
        if len(args) > len(names):
            raise TypeError(f"the {self.name} sampler takes at most {len(names)} positional options, got {len(args)}")
        for key, value in zip(names, args):
            if key in options:
                raise TypeError(f"the {self.name} sampler got {key!r} twice (positionally and by name)")
            options[key] = value
        self._given_options = frozenset(options)  # which options the caller gave (the rest are defaults)
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
        callback: "StepCallback | None" = None,
        seeds: "Sequence[int] | None" = None,
    ) -> SampleOutput:
        """Fill the canvas of ``prompts`` (see :func:`make_canvas`); ``seeds`` (one integer per row) seed each
        row's random stream directly instead of from ``generator``, so a row's output does not depend on its
        batch."""
        check_denoiser(denoiser)
        if device is None and generator is not None:
            device = generator.device
        # a block-causal denoiser (block diffusion: integrations/block_diffusion.py) lays the canvas out on its
        # model's blocks, keeps its own run state (the keys and values of finished blocks; it also refuses what its
        # model cannot do) and computes only the current block at each call
        block_causal = bool(getattr(denoiser, "block_causal", False))
        canvas = (denoiser.make_canvas if block_causal else partial(make_canvas, denoiser))(
            prompts, gen_length, batch_size, device, pad_id, max_length)
        blocks = self._blocks(canvas.length, denoiser.block_size if block_causal else None)
        prefix = denoiser.begin(self, canvas) if block_causal else None
        B, T = canvas.x.shape
        dev = canvas.x.device
        run = RunState(
            denoiser=denoiser,
            canvas=canvas,
            nfe=torch.zeros(B, dtype=torch.long, device=dev),
            trajectory=torch.zeros((B, T), dtype=torch.long, device=dev),
            rng=RowRNG(generator, B, dev, None if seeds is None else [_seed(s) for s in seeds]),
            plan=self.plan(canvas.length, len(blocks)),
            active=torch.ones(B, dtype=torch.bool, device=dev),
            stopped=torch.zeros(B, dtype=torch.bool, device=dev),
            callback=callback,
            **self._token_controls(denoiser, dev),
        )
        if self.cache != "none" and not (hasattr(denoiser, "full") and hasattr(denoiser, "span")):
            raise ValueError(f"cache {self.cache!r} needs a denoiser with key/value caching (full and span calls); "
                             f"{type(getattr(denoiser, 'model', denoiser)).__name__} has none")
        run.prefix = prefix
        per_block = self._block_schedules(len(blocks), block_causal)
        with torch.no_grad():
            self.begin(run)
            for b, (lo, hi) in enumerate(blocks):
                if not run.active.any():
                    break
                positions = torch.zeros(T, dtype=torch.bool, device=dev)
                positions[canvas.start + lo: canvas.start + hi] = True
                run.block, run.kv = Block(b, canvas.start + lo, canvas.start + hi, positions), None
                whole = getattr(self, "schedule", None)
                try:
                    if per_block is not None:  # a blocks: schedule: this block's own, for its plan and steps
                        self.schedule = per_block[b]
                        run.plan = self.plan(canvas.length, len(blocks))
                    self._fill_block(run, run.block)
                    left = int(self._masked(run, positions).sum())
                    if left:  # a sampler whose steps ran out before its block was full: its bug, never silent
                        raise RuntimeError(f"the {self.name} sampler left {left} position(s) of block {b} masked "
                                           f"after its last step ({self.block_steps(run, run.block)} steps)")
                finally:
                    if per_block is not None:
                        self.schedule = whole
        out = SampleOutput(
            tokens=run.canvas.x,
            nfe=run.nfe,
            calls=run.calls,
            gen_start=canvas.start,
            attention_mask=canvas.attention_mask,
            trajectory=run.trajectory if return_trajectory else None,
            stopped=run.stopped,
        )
        return denoiser.finish(out, run.prefix) if block_causal else out

    def _fill_block(self, run: RunState, block: Block) -> None:
        """Unmask every position of one block: step after step, the rows that need a call, the call, the
        sampler's decision, applied — until ``need`` ends the block or its ``block_steps`` run out."""
        for k in range(self.block_steps(run, block)):
            block.step = k
            masked = self._masked(run, block.positions)
            need = self.need(run, block, masked)
            if need is None:
                return
            step = self.call_model(run, need)
            if step is None:
                continue  # nobody needed a call at this step
            masked = self._masked(run, block.positions)  # as the call saw it (``need`` may have re-masked)
            self._apply(run, step, self.decide(run, block, step, masked[step.rows]))

    # --- hooks ------------------------------------------------------------------------------------
    def begin(self, run: RunState) -> None:
        """Called once per run, before the first block: set up state that spans blocks in ``run.scratch``
        (never on ``self``, which is shared by runs)."""

    def plan(self, gen_length: int, num_blocks: int) -> Plan:
        """Per-run data that needs the generation length (e.g. counts per block step), checked here."""
        return Plan()

    def block_steps(self, run: RunState, block: Block) -> int:
        """The most steps (loop turns) a block may take: the plan's steps, or — for samplers that commit at
        least one token per row per call — the block's length."""
        return run.plan.steps or block.length

    def need(self, run: RunState, block: Block, masked: Tensor) -> "Tensor | None":
        """``(B,)``: the rows that need a model call at this step (given ``masked``, ``(B, T)``: the masked
        positions of the block in rows still active); ``None`` ends the block. By default, the rows with a
        masked position, and the block ends when there are none."""
        need = masked.any(-1)
        return need if bool(need.any()) else None

    @abstractmethod
    def decide(self, run: RunState, block: Block, step: Step, masked: Tensor) -> Decision:
        """What to commit (and re-mask) after the call ``step``; ``masked`` is ``(R, T)`` for the step's rows."""

    # --- helpers for subclasses ------------------------------------------------------------------
    def _masked(self, run: RunState, in_block: Tensor) -> Tensor:
        """``(B, T)``: the masked positions of the current block, in rows still active."""
        x = run.canvas.x
        window = torch.zeros_like(in_block)
        window[run.canvas.start:] = True
        return (x == run.denoiser.mask_id) & (in_block & window).unsqueeze(0) & run.active.unsqueeze(1)

    def _committed(self, run: RunState, rows: Tensor, block: Block) -> Tensor:
        """``(R, T)``: the committed (unmasked) positions of the current block in rows ``rows`` — what a revising
        sampler may mask again."""
        return block.positions & (run.canvas.x[rows] != run.denoiser.mask_id)

    def call_model(self, run: RunState, need: Tensor, view: "View | None" = None) -> "Step | None":
        """One guarded model call for the active rows among ``need`` (a ``(B,)`` mask); ``None`` if there are
        none. Counts the call in ``calls`` and in the NFE of those rows. The loop makes one per step; a
        sampler's ``decide`` may make more (e.g. a verification pass), each counted the same way.

        With a key/value cache (block-wise decoding), the block's first call — and every
        ``cache_refresh``-th after it — runs on the whole sequence and keeps the cache; the others recompute
        only the current block and everything after it (``prefix``: the prompt and finished blocks come
        from the cache) or only the current block (``dual``: the masked suffix comes from the cache too).

        A ``view`` (:class:`View`) makes the call on another layout of the same rows — the canvas followed by
        ``view.extra`` slots of its own — and its logits cover all ``T + view.extra`` slots; guidance works as
        for a plain call (both halves go through the view), a key/value cache does not."""
        need = need & run.active
        if run.prefix is not None:  # a block-causal canvas: a row's blocks past its own window hold nothing to write
            need = need & ~run.canvas.prompt_mask[:, run.block.lo:run.block.hi].all(-1)
        rows = need.nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            return None
        if view is not None and self.cache != "none":
            raise ValueError(f"the {self.name} sampler's views cannot use a key/value cache (cache {self.cache!r})")
        den, canvas, block = run.denoiser, run.canvas, run.block
        if view is not None and run.prefix is not None:
            raise ValueError(f"the {self.name} sampler's views cannot run on a block-causal model "
                             f"({type(getattr(den, 'model', den)).__name__})")
        x = canvas.x[rows]
        am = None if canvas.attention_mask is None else canvas.attention_mask[rows]
        if self.cfg_scale > 0:
            uncond = x.clone()
            uncond[canvas.prompt_mask[rows]] = den.mask_id
            x, am = torch.cat([x, uncond]), None if am is None else torch.cat([am, am])
        refresh = self.cache_refresh
        reuse = (self.cache != "none" and run.kv is not None and bool(torch.isin(rows, run.kv_rows).all())
                 and not (refresh is not None and block.calls % refresh == 0))
        run.calls += 1
        block.calls += 1
        offset = 0
        if view is not None:
            logits = view(den, x, am)
        elif run.prefix is not None:  # block-causal: finished blocks from the model's own cache, the block alone
            offset = block.lo
            logits = den.block_logits(run.prefix, x, rows, block.lo, block.hi, am)
        elif reuse:
            idx = torch.searchsorted(run.kv_rows, rows)
            if self.cfg_scale > 0:
                idx = torch.cat([idx, idx + run.kv_rows.numel()])
            offset, end = block.lo, (block.hi if self.cache == "dual" else x.shape[1])
            logits = den.span(x, offset, end, run.kv.rows(idx), am)
        elif self.cache != "none":
            logits, run.kv = den.full(x, am)
            run.kv_rows = rows
        else:
            logits = den(x, am)
        if self.cfg_scale > 0:
            cond_logits, uncond_logits = logits.chunk(2)
            logits = uncond_logits + (self.cfg_scale + 1.0) * (cond_logits - uncond_logits)
        V = int(den.vocab_size)
        want = (rows.numel(), x.shape[1] + view.extra if view is not None
                else block.hi - offset if run.prefix is not None
                else x.shape[1] - offset if not reuse or self.cache == "prefix" else block.hi - offset)
        if logits.ndim != 3 or tuple(logits.shape[:2]) != want or logits.shape[2] < V:
            raise ValueError(f"denoiser returned logits of shape {tuple(logits.shape)}; expected {want + (V,)}")
        run.nfe[rows] += 1
        return Step(rows, logits[..., :V], offset)

    def logits_at(self, run: RunState, step: Step, where: Tensor) -> tuple[Tensor, Tensor]:
        """The logits of the positions ``where`` ``(R, T)`` as ``(M, V)`` rows — the mask token, suppressed ids
        and (with ``logits_eos_inf``) EOS set to -inf: never proposed — and their log-normalisers. Rows with
        NaN, +inf or only -inf logits raise ``ValueError`` naming the model call; -inf entries are allowed."""
        flat = step.at(where).clone()
        flat[:, run.banned] = float("-inf")
        if not flat.dtype.is_floating_point or flat.dtype in (torch.float16, torch.bfloat16):
            flat = flat.float()
        lse = torch.logsumexp(flat, dim=-1)  # NaN and +inf propagate here, so this is also the check
        if not torch.isfinite(lse).all():
            raise ValueError(f"denoiser returned non-finite logits (NaN, +inf or all -inf) at model call {run.calls}")
        return flat, lse

    def candidates(self, run: RunState, step: Step, where: Tensor, rule: "str | None") -> tuple[Tensor, "Tensor | None"]:
        """Candidates (and scores by the remasking ``rule``, if given) at the positions ``where`` ``(R, T)`` of
        the step's rows, as ``(R, T)`` tensors; scores are -inf elsewhere. Random draws come from each row's
        own stream."""
        flat, lse = self.logits_at(run, step, where)  # (M, V): only the positions this step may commit
        counts = where.sum(1)

        def uniform(width: int) -> Tensor:
            return run.rng.segments(step.rows, counts, width)

        cand = draw_candidates(flat, self.temperature, uniform)
        scores = None if rule is None else self._last_resort(run, cand, confidence_scores(flat, cand, rule, uniform, lse))
        return spread(where, cand, scores)

    def _last_resort(self, run: RunState, candidates: Tensor, scores: Tensor) -> Tensor:
        """With ``confidence_eos_eot_inf``: end-token candidates drop below every other candidate."""
        if not self.confidence_eos_eot_inf:
            return scores
        return torch.where(torch.isin(candidates, run.stops), torch.full_like(scores, LAST_RESORT), scores)

    def _apply(self, run: RunState, step: Step, decision: Decision) -> None:
        """Apply a :class:`Decision`: re-mask (never a prompt token, never outside the window), then commit."""
        if decision.remask is not None:
            self.remask(run, step.rows, decision.remask)
        self._commit(run, step, decision.commit, decision.values)

    def remask(self, run: RunState, rows: Tensor, where: Tensor) -> None:
        """Mask again the committed positions ``where`` (``(R, T)``, rows as in ``rows``) of the current block —
        never a prompt token, never outside the window — and clear their trajectory. The loop calls it for a
        :class:`Decision`'s ``remask``; a revising sampler may call it before a model call (so that the call
        sees the positions masked) or at a step that needs no call."""
        if not bool(where.any()):
            return
        x = run.canvas.x
        # this block only (inside the window), never a prompt token (a block-causal canvas starts its window on
        # the block boundary before the prompt's end)
        where = where & run.block.positions & ~run.canvas.prompt_mask[rows]
        x[rows] = torch.where(where, torch.full_like(x[rows], run.denoiser.mask_id), x[rows])
        run.trajectory[rows] = torch.where(where, torch.zeros_like(run.trajectory[rows]), run.trajectory[rows])

    def _commit(self, run: RunState, step: Step, chosen: Tensor, values: Tensor) -> None:
        """Write ``values`` where ``chosen`` (both ``(R, T)``, rows as in ``step``), record the call in the
        trajectory, stop rows that have finished (``stop_at_eos``) and report to the callback."""
        x, rows = run.canvas.x, step.rows
        x[rows] = torch.where(chosen, values, x[rows])
        run.trajectory[rows] = torch.where(chosen, torch.full_like(values, run.calls), run.trajectory[rows])
        committed = torch.zeros_like(x, dtype=torch.bool)
        committed[rows] = chosen
        if self.stop_at_eos:
            committed |= self._stop_finished(run, rows)
        if run.callback is not None:
            run.callback(run.calls, x, committed)

    def _token_controls(self, denoiser: Denoiser, device: torch.device) -> dict[str, Any]:
        """The ids never proposed, the end tokens, and the id that fills a row after it stops."""
        V, eos = int(denoiser.vocab_size), getattr(denoiser, "eos_id", None)
        bad = [t for t in self.suppress_tokens if t >= V]
        if bad:
            raise ValueError(f"suppress_tokens {bad[0]} is outside the vocabulary [0, {V})")
        stops = stop_ids_of(denoiser)
        needs_eos = [k for k in ("logits_eos_inf", "stop_at_eos", "confidence_eos_eot_inf") if getattr(self, k)]
        if needs_eos and not stops:
            raise ValueError(f"{needs_eos[0]} needs a denoiser with an end token (eos_id), and this one has none")
        banned = [int(denoiser.mask_id), *self.suppress_tokens] + ([int(eos)] if self.logits_eos_inf and eos is not None else [])
        return {"banned": torch.tensor(sorted(set(banned)), dtype=torch.long, device=device),
                "stops": torch.tensor(sorted(stops), dtype=torch.long, device=device),
                "fill": int(eos) if eos is not None else (min(stops) if stops else int(denoiser.mask_id))}

    def _block_schedules(self, num_blocks: int, block_causal: bool = False) -> "tuple | None":
        """The per-block schedules of a ``blocks:`` schedule (:class:`~mdm_energy.schedules.PerBlock`), one per
        block (``ValueError`` when their number is not the number of blocks); ``None`` for any other.

        On a block-causal canvas (block diffusion) block ``k`` is the ``k``-th from the one holding the prompt's
        end, whatever the prompt, and how many blocks a run decodes depends on its prompts — by at most one for
        one answer length (the prompt's tail in the first block is shorter than a block): a schedule for one
        block more gives its first ``num_blocks`` (a block-causal profile's schedule covers its longest layout);
        any other difference is refused."""
        from ..schedules import PerBlock

        sched = getattr(self, "schedule", None)
        if not isinstance(sched, PerBlock):
            return None
        if block_causal and len(sched.schedules) == num_blocks + 1:
            return sched.schedules[:num_blocks]
        if len(sched.schedules) != num_blocks:
            if block_causal:
                raise ValueError(f"the schedule {sched.spec[:60]}{'…' if len(sched.spec) > 60 else ''} has "
                                 f"{len(sched.schedules)} block schedules and these prompts' layout decodes "
                                 f"{num_blocks} blocks of the model: give one for each, or one more (a profile "
                                 "for the same answer length covers them)")
            raise ValueError(f"the schedule {sched.spec[:60]}{'…' if len(sched.spec) > 60 else ''} has "
                             f"{len(sched.schedules)} block schedules for {num_blocks} block(s): give block_length "
                             f"so that the window has {len(sched.schedules)} blocks")
        return sched.schedules

    def _blocks(self, gen_length: int, model_block: "int | None" = None) -> list[tuple[int, int]]:
        """The window's blocks ``[lo, hi)``: ``block_length`` each (the whole window without one); a block-causal
        model's own block size (``model_block``) fixes them, and a different ``block_length`` is refused."""
        if model_block is not None:
            if self.block_length not in (None, model_block):
                raise ValueError(f"block_length {self.block_length} differs from the model's block size {model_block} "
                                 "(a block-causal model decodes its own blocks; leave block_length unset)")
            B = model_block
        else:
            B = self.block_length or gen_length
        if gen_length % B:
            raise ValueError(f"block_length {B} does not divide gen_length {gen_length}")
        return [(k * B, (k + 1) * B) for k in range(gen_length // B)]

    def _stop_finished(self, run: RunState, rows: Tensor) -> Tensor:
        """Rows (among ``rows``) whose window holds an end token with nothing masked before it stop: their
        masked positions after it become EOS and they leave the batch. Returns the positions so filled."""
        x, start, mask = run.canvas.x, run.canvas.start, run.denoiser.mask_id
        w = x[rows, start:]
        L = w.shape[1]
        is_stop = torch.isin(w, run.stops) & ~run.canvas.prompt_mask[rows, start:]  # a prompt token never ends a row
        idx = torch.arange(L, device=w.device)
        first = torch.where(is_stop.any(1), is_stop.long().argmax(1), torch.full_like(rows, L))
        masked = w == mask
        open_before = (masked & (idx < first.unsqueeze(1))).any(1)
        done = (first < L) & ~open_before
        fill = done.unsqueeze(1) & masked & (idx > first.unsqueeze(1))
        filled = torch.zeros_like(x, dtype=torch.bool)
        if done.any():
            w[fill] = run.fill
            x[rows, start:] = w
            traj = run.trajectory[rows, start:]
            traj[fill] = run.calls
            run.trajectory[rows, start:] = traj
            run.active[rows[done]] = False
            run.stopped[rows[done]] = True
            filled[rows, start:] = fill
        return filled


class ScheduledSampler(Sampler):
    """A sampler driven by a mask schedule and a number of steps (per run, split evenly over blocks)."""

    schedule: Schedule
    steps: int

    def _steps_per_block(self, num_blocks: int) -> int:
        if self.steps % num_blocks and "steps" not in getattr(self, "_given_options", ("steps",)):
            # the caller never chose the steps: say so, and what to give (the window length always splits)
            raise ValueError(f"{self.name}: steps {self.steps} (the default) is not divisible by the {num_blocks} "
                             f"blocks: give steps as a multiple of {num_blocks} (e.g. the window length)")
        return steps_per_block(self.steps, num_blocks)

    def block_counts(self, gen_length: int, num_blocks: int, cap: bool = False) -> tuple[int, ...]:
        """The schedule's counts for one block's steps (every block uses the same).

        The rule for more steps than positions (``cap``, the samplers whose every step commits exactly its
        count — ``fixed``): steps up to :data:`~mdm_energy.limits.MAX_STEPS` are accepted (the only refusal,
        in the steps validator), but when a block has more steps than positions, its zero-count steps are
        dropped from the plan, with one warning: such a step is a model call that commits nothing and draws
        nothing, so the block makes at most one call per position, and ``-N 100000`` on a window of 24 ends
        in 24 calls instead of running for hours. The tokens are those of the run with every step (a
        zero-count step changes neither the canvas nor a random stream; with a key/value cache the refresh
        points follow the calls made); only the NFE shrinks, to the steps that commit something. Samplers
        for which steps beyond the window mean something keep them (``cap`` false): a random-reveal step that
        reveals nothing already costs no call (and more steps are a finer discretisation), Dream calls and
        draws at every step as Dream does, and the threshold hybrids commit at least one token per call.
        """
        per_block = self._steps_per_block(num_blocks)
        block_len = gen_length // num_blocks
        counts = tuple(self.schedule.counts(block_len, per_block).tolist())
        if cap and per_block > block_len:
            kept = tuple(c for c in counts if c)
            warnings.warn(f"{per_block:,} steps per block for {block_len} positions: the {per_block - len(kept):,} "
                          f"steps that would unmask nothing make no model call ({len(kept)} steps run)", stacklevel=5)
            return kept
        return counts
