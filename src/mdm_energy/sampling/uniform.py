r"""Decoding under *uniform* noise (DiffusionGemma): a canvas of random tokens, re-decided at every step.

A masked diffusion model commits positions: once written, a token stays, and the rest are ``[MASK]``. A
uniform-noise model has no mask. Its canvas of :math:`L` positions starts as i.i.d. uniform tokens
:math:`x_i \sim U(\{0..V-1\})`, and each of the :math:`N` steps of a canvas

1. runs the denoiser on the whole canvas (with *self-conditioning*: the previous step's tempered logits
   are fed back as soft embeddings), giving per-position laws :math:`p_i = \mathrm{softmax}(z_i / T_k)`,
   with the temperature falling linearly, :math:`T_k = t_{\min} + (t_{\max} - t_{\min})\,r/N` at the step
   with :math:`r = N, N-1, \dots, 1` steps remaining;
2. draws a candidate :math:`y_i \sim p_i` at every position and ranks positions by entropy
   :math:`H_i = H(p_i)`;
3. **accepts** a set :math:`A_k` of positions (the :class:`AcceptanceRule`): they take :math:`y_i`;
4. **renoises** every other position with a fresh uniform token.

Nothing is kept across steps: every step re-decides every position, so :math:`|A_k|` is how much of the
canvas is the model's own sample at step :math:`k`, not a count of new commits. A canvas ends after
:math:`N` steps or when the adaptive stop fires (the argmax canvas has not changed for
``stability_threshold`` steps *and* the mean entropy is below ``confidence_threshold``; such a row is then
frozen while the others go on), and what it emits is the **argmax** of its last logits, not the sampled
canvas. Longer outputs are canvases in sequence, each finished one encoded into the model's context.

The acceptance rules (:data:`UNIFORM_RULES`, by the name of the registry sampler they stand for):

* ``entropy-bounded`` — :class:`EntropyBound`, DiffusionGemma's own (EB-Sampler's bound): with the
  entropies sorted, :math:`H_{(1)} \le H_{(2)} \le \dots`, accept the largest prefix with
  :math:`\sum_{j \le n} H_{(j)} - H_{(n)} \le \varepsilon` (an upper bound on the mutual information among
  the accepted positions, so they may be drawn independently); the first always passes.
* ``fixed`` — :class:`FixedCount`: at step :math:`k` accept exactly the schedule's cumulative count
  :math:`C_k = \sum_{m \le k} c_m` of the best-ranked positions (lowest entropy with ``remasking=entropy``),
  renoise the other :math:`L - C_k`; :math:`C_N = L`.
* ``entropy-floor`` — :class:`EntropyFloor`: the schedule as a floor under the entropy bound,
  :math:`|A_k| = \max(n_\varepsilon, C_k)` of the lowest-entropy positions.

**Why the energy theory's proportionality does not carry over.** For a masked model the revealed set only
grows and a revealed token is never resampled, so a schedule's counts fix how the joint law is factorised
and the divergence of the output law is a sum over steps weighted by the counts (docs/paper.md). Here the
accepted set is redrawn from the model at every step and its complement is replaced by noise, so the
step-:math:`k` canvas is not a partially revealed sample of the target and no term of such a sum belongs to
a step: the count :math:`C_k` sets how much noise the *next* call sees, not which factor of the joint is
drawn. The output is moreover the argmax of the last call, a deterministic function of a random canvas.

**Random draws** happen in this order, per canvas: the initial canvas ``(B, L)``; per step the candidates
(one categorical draw per position, ``(B·L, V)``) and then the renoising tokens ``(B, L)`` (drawn for every
position, used where not accepted). With one ``generator`` (or torch's global one) the batch shares that
stream, as DiffusionGemma's own ``generate`` does (the same draws, token for token); with ``seeds`` each row
has its own stream and draws only while it is active, so a row's output does not depend on its batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch
from torch import Tensor

from ..schedules import Schedule, single_schedule
from .base import SampleOutput

__all__ = ["UniformDenoiser", "UniformContext", "StepScores", "AcceptanceRule", "EntropyBound", "FixedCount",
           "EntropyFloor", "UNIFORM_RULES", "UNIFORM_REMASKING", "UniformSettings", "UniformOutput", "uniform_rule",
           "decode_uniform"]


class UniformContext(Protocol):
    """The model's context of one batch: the prompts, then every finished canvas (:meth:`extend`)."""

    def logits(self, canvas: Tensor, previous: "Tensor | None") -> Tensor:
        """Logits ``(B, L, V)`` of the canvas ``(B, L)``, self-conditioned on the previous step's tempered
        logits (``None`` at a canvas's first step)."""

    def extend(self, tokens: Tensor) -> None:
        """Append a finished canvas ``(B, L)`` to the context (encoded once)."""


class UniformDenoiser(Protocol):
    """A uniform-noise denoiser: its vocabulary, its canvas length and its context of a batch of prompts."""

    vocab_size: int
    canvas_length: int

    def open(self, tokens: Tensor, attention_mask: Tensor) -> UniformContext:
        """The context of left-padded prompts ``(B, P)`` (``attention_mask`` True on real tokens)."""


@dataclass
class StepScores:
    """What one step knows about each position ``(B, L)``: the entropy of its tempered law, the law itself
    ``probs`` ``(B, L, V)`` and the drawn candidate ``draw``."""

    entropy: Tensor
    probs: Tensor
    draw: Tensor

    def key(self, remasking: str) -> Tensor:
        """A ranking key, lower = accepted first: the entropy, minus the drawn candidate's probability
        (``low_confidence``) or minus the top-1 − top-2 probability margin (``margin``)."""
        if remasking == "entropy":
            return self.entropy
        if remasking == "low_confidence":
            return -self.probs.gather(-1, self.draw.unsqueeze(-1)).squeeze(-1)
        top = self.probs.topk(2, dim=-1).values
        return -(top[..., 0] - top[..., 1])


def _first(key: Tensor, n: Tensor) -> Tensor:
    """Boolean ``(B, L)``: the ``n[b]`` positions of row ``b`` with the lowest ``key`` (torch's ascending sort)."""
    order = torch.sort(key, dim=-1).indices
    ranks = torch.arange(key.shape[-1], device=key.device).expand_as(key)
    return torch.zeros_like(key, dtype=torch.bool).scatter(-1, order, ranks < n.unsqueeze(-1))


def _bounded_count(entropy: Tensor, bound: float) -> Tensor:
    r""":math:`n_\varepsilon` per row: how many of the sorted entropies satisfy :math:`\sum_{j<n} H_{(j)} \le \varepsilon`."""
    ranked = torch.sort(entropy, dim=-1).values
    before = torch.cumsum(ranked, dim=-1) - ranked
    return (before <= bound).sum(-1)


class AcceptanceRule(ABC):
    """Which positions of the canvas keep the model's draw at step ``step`` (1-based) of ``steps``."""

    #: How the rule ranks positions (``entropy``, ``low_confidence`` or ``margin``).
    remasking: str = "entropy"

    @abstractmethod
    def accept(self, scores: StepScores, step: int, steps: int) -> Tensor:
        """Boolean ``(B, L)``: the accepted positions."""

    def cumulative(self, length: int, steps: int) -> "tuple[int, ...] | None":
        """The schedule's cumulative counts :math:`C_1..C_N` for a canvas, or ``None`` (no schedule)."""
        return None


@dataclass(frozen=True)
class EntropyBound(AcceptanceRule):
    r"""Accept the largest lowest-entropy prefix with :math:`\sum_{j \le n} H_{(j)} - H_{(n)} \le` ``bound``
    (DiffusionGemma's ``EntropyBoundSampler``; ties in the order of torch's ascending sort)."""

    bound: float

    def accept(self, scores: StepScores, step: int, steps: int) -> Tensor:
        ranked, order = torch.sort(scores.entropy, dim=-1)
        passing = torch.cumsum(ranked, dim=-1) - ranked <= self.bound
        return torch.zeros_like(passing).scatter(-1, order, passing)


@dataclass(frozen=True)
class FixedCount(AcceptanceRule):
    r"""Accept exactly :math:`C_k` positions at step :math:`k`, the best by ``remasking`` (lowest entropy by
    default); :math:`C_k` is the schedule's cumulative count for the canvas (``schedule.counts(L, N)``)."""

    schedule: Schedule
    remasking: str = "entropy"

    def cumulative(self, length: int, steps: int) -> tuple[int, ...]:
        return tuple(int(c) for c in torch.tensor(self.schedule.counts(length, steps)).cumsum(0).tolist())

    def accept(self, scores: StepScores, step: int, steps: int) -> Tensor:
        count = self.cumulative(scores.entropy.shape[-1], steps)[step - 1]
        n = torch.full(scores.entropy.shape[:1], count, dtype=torch.long, device=scores.entropy.device)
        return _first(scores.key(self.remasking), n)


@dataclass(frozen=True)
class EntropyFloor(AcceptanceRule):
    r"""The schedule as a floor under the entropy bound: the :math:`\max(n_\varepsilon, C_k)` lowest-entropy
    positions, :math:`n_\varepsilon` as in :class:`EntropyBound` (both sets are prefixes of one order)."""

    bound: float
    schedule: Schedule

    def cumulative(self, length: int, steps: int) -> tuple[int, ...]:
        return FixedCount(self.schedule).cumulative(length, steps)

    def accept(self, scores: StepScores, step: int, steps: int) -> Tensor:
        floor = self.cumulative(scores.entropy.shape[-1], steps)[step - 1]
        n = _bounded_count(scores.entropy, self.bound).clamp(min=floor)
        return _first(scores.entropy, n)


#: The acceptance rule standing in, under uniform noise, for each registry sampler that has one.
UNIFORM_RULES = {"entropy-bounded": EntropyBound, "fixed": FixedCount, "entropy-floor": EntropyFloor}
#: The rankings ``fixed`` may use under uniform noise (``random`` has no uniform-noise meaning here).
UNIFORM_REMASKING = ("entropy", "low_confidence", "margin")

#: The value each registry option must keep under uniform noise, and why (one line each).
_PINNED = {
    "temperature": (0.0, "the temperature falls linearly from t_max to t_min (the model's generation config)"),
    "cfg_scale": (0.0, "there is no unconditional pass"),
    "cache": ("none", "the model encodes the prompt and each finished canvas once into its own cache"),
    "cache_refresh": (None, "the model encodes the prompt and each finished canvas once into its own cache"),
    "logits_eos_inf": (False, "every position is redrawn at every step"),
    "suppress_tokens": ((), "every position is redrawn at every step"),
    "confidence_eos_eot_inf": (False, "every position is redrawn at every step"),
    "skip_empty_steps": (False, "every step redraws the whole canvas (no step is empty)"),
}


def uniform_rule(name: str, options: dict, canvas_length: int, family: str = "uniform noise"
                 ) -> "tuple[AcceptanceRule, int | None]":
    """The acceptance rule of registry sampler ``name`` with its validated ``options`` (from
    :func:`mdm_energy.registry.sampler_options`), and its total ``steps`` (``None`` for ``entropy-bounded``,
    whose steps are the model's). One-line ``ValueError`` for a sampler that cannot run on uniform noise or
    an option that does not apply."""
    if name not in UNIFORM_RULES:
        raise ValueError(f"the {name} sampler cannot run on uniform noise ({family} has no mask: it renoises every "
                         f"position it does not accept); use {', '.join(UNIFORM_RULES)}")
    for key, (want, why) in _PINNED.items():
        if key in options and options[key] != want:
            raise ValueError(f"{family} cannot take {key}={options[key]!r}: {why}")
    block = options.get("block_length")
    if block is not None and block != canvas_length:
        raise ValueError(f"{family} decodes canvases of {canvas_length} tokens: block_length {block} does not match")
    if name == "entropy-bounded":
        return EntropyBound(float(options["epsilon"])), None
    schedule = single_schedule(options["schedule"], "a uniform-noise canvas")  # its canvases share one schedule
    if name == "entropy-floor":
        return EntropyFloor(float(options["epsilon"]), schedule), int(options["steps"])
    remasking = options.get("remasking", "entropy")
    if remasking not in UNIFORM_REMASKING:
        raise ValueError(f"{family} cannot take remasking={remasking!r} (under uniform noise: "
                         f"{', '.join(UNIFORM_REMASKING)})")
    return FixedCount(schedule, remasking), int(options["steps"])


@dataclass(frozen=True)
class UniformSettings:
    """The decoding loop's settings: ``steps`` per canvas (:math:`N`), the temperature schedule (``t_min``,
    ``t_max``; both ``None``: temperature 1), the adaptive stop (off when either threshold is ``None``), the
    end tokens, the padding id and ``stop_at_eos`` (a row ends after the canvas holding its first end token:
    the rest becomes ``pad_id``, and later canvases are ``pad_id``)."""

    steps: int
    t_min: "float | None" = 0.4
    t_max: "float | None" = 0.8
    stability_threshold: "int | None" = 1
    confidence_threshold: "float | None" = 0.005
    eos_ids: tuple[int, ...] = ()
    pad_id: "int | None" = None
    stop_at_eos: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps per canvas must be a positive integer, got {self.steps!r}")
        if (self.t_min is None) != (self.t_max is None):
            raise ValueError("give both t_min and t_max (or neither: temperature 1)")
        if self.t_min is not None and not 0 <= self.t_min < self.t_max:
            raise ValueError(f"the temperatures need 0 <= t_min < t_max, got t_min={self.t_min!r}, t_max={self.t_max!r}")
        if self.stability_threshold is not None and (isinstance(self.stability_threshold, bool) or
                                                     not isinstance(self.stability_threshold, int) or
                                                     self.stability_threshold < 0):
            raise ValueError(f"stability_threshold must be an integer >= 0, got {self.stability_threshold!r}")
        if self.confidence_threshold is not None and not self.confidence_threshold > 0:
            raise ValueError(f"confidence_threshold must be > 0, got {self.confidence_threshold!r}")

    @property
    def adaptive_stop(self) -> bool:
        return self.stability_threshold is not None and self.confidence_threshold is not None

    def temperature(self, remaining: int) -> "Tensor | None":
        r""":math:`T = t_{\min} + (t_{\max} - t_{\min})\,r/N` with ``remaining`` = :math:`r` (float32, the model's
        logits' precision)."""
        if self.t_min is None:
            return None
        return self.t_min + (self.t_max - self.t_min) * (torch.tensor(remaining, dtype=torch.int32) / self.steps)


@dataclass
class UniformOutput(SampleOutput):
    """A :class:`~mdm_energy.sampling.SampleOutput` of uniform-noise decoding. ``nfe[b]`` counts the denoiser
    calls row ``b`` used (not after its canvas stopped or the row ended; the encoder pass per canvas is not
    counted, as DiffusionGemma's ``tokens_per_forward`` does not count it); ``accepted[b]`` lists, per call it
    used, how many positions were accepted. ``trajectory`` is ``None`` (nothing is committed for good)."""

    accepted: list = field(default_factory=list)
    canvases: int = 0


class _Streams:
    """The random draws: one stream for the batch (``generator``, or torch's global one), or one per row."""

    def __init__(self, generator, seeds, rows: int, device: torch.device) -> None:
        self.device = device
        self.generator = generator
        self.rows = None
        if seeds is not None:
            if len(seeds) != rows:
                raise ValueError(f"seeds must give one seed per batch row ({rows}), got {len(seeds)}")
            self.rows = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def tokens(self, vocab: int, shape: tuple[int, int], active: Tensor) -> Tensor:
        """Uniform tokens ``shape`` = ``(B, L)``; per-row streams draw only for ``active`` rows (0 elsewhere)."""
        if self.rows is None:
            return torch.randint(0, vocab, shape, generator=self.generator, device=self.device)
        out = torch.zeros(shape, dtype=torch.long, device=self.device)
        for b in active.nonzero().flatten().tolist():
            out[b] = torch.randint(0, vocab, shape[1:], generator=self.rows[b], device=self.device)
        return out

    def categorical(self, probs: Tensor, active: Tensor) -> Tensor:
        """One draw per position from ``probs`` ``(B, L, V)``."""
        B, L, V = probs.shape
        if self.rows is None:
            return torch.multinomial(probs.reshape(-1, V), 1, generator=self.generator).view(B, L)
        out = probs.argmax(-1)
        for b in active.nonzero().flatten().tolist():
            out[b] = torch.multinomial(probs[b], 1, generator=self.rows[b]).view(L)
        return out


def _pad_left(prompts: Sequence[Sequence[int]], pad: int, vocab: int, device) -> tuple[Tensor, Tensor]:
    rows = [[int(t) for t in p] for p in prompts]
    if not rows or not all(rows):
        raise ValueError("every prompt needs at least one token (the model encodes the prompt before the first canvas)")
    for r in rows:
        for t in r:
            if not 0 <= t < vocab:
                raise ValueError(f"prompt token {t} is outside the vocabulary [0, {vocab})")
    P = max(len(r) for r in rows)
    x = torch.full((len(rows), P), int(pad), dtype=torch.long)
    real = torch.zeros((len(rows), P), dtype=torch.bool)
    for b, r in enumerate(rows):
        x[b, P - len(r):] = torch.tensor(r)
        real[b, P - len(r):] = True
    return x.to(device), real.to(device)


def _stable(history: list, argmax: Tensor, need: int) -> Tensor:
    """Whether each row's argmax canvas equals each of its last ``need`` ones (always, for ``need`` 0)."""
    if need == 0:
        return torch.ones(argmax.shape[0], dtype=torch.bool, device=argmax.device)
    if len(history) < need:
        return torch.zeros(argmax.shape[0], dtype=torch.bool, device=argmax.device)
    return torch.stack([(h == argmax).all(-1) for h in history[-need:]]).all(0)


@torch.no_grad()
def decode_uniform(
    denoiser: UniformDenoiser,
    prompts: Sequence[Sequence[int]],
    gen_length: int,
    rule: AcceptanceRule,
    settings: UniformSettings,
    *,
    generator: "torch.Generator | None" = None,
    seeds: "Sequence[int] | None" = None,
    device: "torch.device | str | None" = None,
    callback: "Callable[[int, Tensor, Tensor], None] | None" = None,
) -> UniformOutput:
    """Decode ``gen_length`` tokens (rounded up to whole canvases, as DiffusionGemma's ``generate`` does) after
    each prompt under uniform noise (see the module docstring). ``callback(call, tokens, accepted)`` gets,
    after every denoiser call, the context so far with the current canvas ``(B, T)`` and the accepted
    positions ``(B, T)``."""
    if isinstance(gen_length, bool) or not isinstance(gen_length, int) or gen_length < 1:
        raise ValueError(f"gen_length must be a positive integer, got {gen_length!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    V, L, N = int(denoiser.vocab_size), int(denoiser.canvas_length), settings.steps
    pad = settings.pad_id if settings.pad_id is not None else 0
    x, real = _pad_left(prompts, pad, V, dev)
    B, P = x.shape
    n_canvases = math.ceil(gen_length / L)
    streams = _Streams(generator, seeds, B, dev)
    eos = torch.tensor(settings.eos_ids, dtype=torch.long, device=dev)
    context = denoiser.open(x, real)
    tokens = x
    ended = torch.zeros(B, dtype=torch.bool, device=dev)  # rows whose generation has ended (an end token)
    nfe = torch.zeros(B, dtype=torch.long, device=dev)
    accepted_counts: list[list[int]] = [[] for _ in range(B)]
    calls, made = 0, 0
    for c in range(n_canvases):
        if c:
            context.extend(tokens[:, -L:])
        canvas = streams.tokens(V, (B, L), ~ended)
        argmax, previous = canvas, None
        done = torch.zeros(B, dtype=torch.bool, device=dev)  # rows whose canvas has stopped (adaptive stop)
        history: list[Tensor] = []
        for step in range(1, N + 1):
            active = ~(done | ended)
            nfe += active.long()
            logits = context.logits(canvas, previous)
            calls += 1
            temperature = settings.temperature(N - step + 1)
            tempered = logits if temperature is None else logits / temperature
            probs = torch.softmax(tempered, dim=-1, dtype=torch.float32)
            draw = streams.categorical(probs, active)
            new_argmax = tempered.argmax(-1)
            entropy = torch.distributions.Categorical(logits=tempered).entropy()
            keep = rule.accept(StepScores(entropy, probs, draw), step, N)
            noise = streams.tokens(V, (B, L), active)
            new_canvas = torch.where(keep, draw, noise)
            for b in active.nonzero().flatten().tolist():
                accepted_counts[b].append(int(keep[b].sum()))
            if settings.adaptive_stop:
                if done.any():  # rows already stopped keep their canvas, argmax and logits
                    new_argmax = torch.where(done[:, None], argmax, new_argmax)
                    new_canvas = torch.where(done[:, None], canvas, new_canvas)
                    tempered = torch.where(done[:, None, None], previous, tempered)
                stable = _stable(history, new_argmax, settings.stability_threshold)
                history.append(new_argmax)
                mean_h = torch.distributions.Categorical(logits=tempered).entropy().mean(-1)
                done |= stable & (mean_h < settings.confidence_threshold)
            canvas, argmax, previous = new_canvas, new_argmax, tempered
            if callback is not None:
                window = torch.cat([tokens, canvas], dim=1)
                shown = torch.cat([torch.zeros_like(tokens, dtype=torch.bool), keep], dim=1)
                callback(calls, window, shown)
            if bool(done.all()):
                break
        made += 1
        tokens = torch.cat([tokens, argmax], dim=1)
        last = c == n_canvases - 1
        was_ended = ended.clone()
        now = torch.zeros(B, dtype=torch.bool, device=dev)
        if settings.stop_at_eos and eos.numel():
            now = torch.isin(argmax, eos).any(-1)
        if last:
            now |= True
        ended = was_ended | now
        if settings.pad_id is not None and bool(ended.any()):
            tokens[was_ended, -L:] = settings.pad_id
            if settings.stop_at_eos and eos.numel():
                new = tokens[:, -L:]
                hit = torch.isin(new, eos)
                seen = hit.long().cumsum(-1)
                after = (seen > 0) & ~((seen == 1) & hit)  # everything after the first end token
                new[after & now[:, None] & ~was_ended[:, None]] = settings.pad_id
        if bool(ended.all()):
            break
    stopped = torch.isin(tokens[:, P:], eos).any(-1) if eos.numel() and settings.stop_at_eos else torch.zeros(
        B, dtype=torch.bool, device=dev)
    return UniformOutput(tokens=tokens, nfe=nfe, calls=calls, gen_start=P, attention_mask=torch.cat(
        [real, torch.ones((B, tokens.shape[1] - P), dtype=torch.bool, device=dev)], dim=1),
        trajectory=None, stopped=stopped, accepted=accepted_counts, canvases=made)
