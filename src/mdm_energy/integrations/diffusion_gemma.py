r"""DiffusionGemma (``DiffusionGemmaForBlockDiffusion``, transformers 5.x) as a uniform-noise denoiser.

The model is an encoder–decoder over canvases of ``config.canvas_length`` tokens: the encoder (causal) writes
the prompt and every finished canvas once into a key/value cache; the decoder (bidirectional over that cache
and the canvas, sharing the encoder's weights) maps a canvas and the previous step's logits
(self-conditioning) to new logits. :class:`DiffusionGemmaDenoiser` exposes exactly that to
:func:`mdm_energy.sampling.uniform.decode_uniform`, whose loop, acceptance rules and adaptive stop are ours;
:func:`generate` is the family's entry point from :func:`mdm_energy.integrations.huggingface.generate`.

The published generation settings (transformers' defaults for the family, overridden by the model's
``generation_config``) become our arguments: ``--sampler entropy-bounded --epsilon 0.1`` (the entropy bound),
``max_denoising_steps`` 48 steps per canvas, the temperature falling from ``t_max`` 0.8 to ``t_min`` 0.4, the
adaptive stop with ``stability_threshold`` 1 and ``confidence_threshold`` 0.005, and ``--stop-at-eos`` (a row
ends after the canvas holding its end token, as the family's ``generate`` ends it). The schedule-driven
variants are ``fixed`` (the schedule's cumulative count of lowest-entropy positions per step) and
``entropy-floor`` (that count as a floor under the bound); see :mod:`mdm_energy.sampling.uniform` for the
math, and why the energy theory's proportionality does not hold under uniform noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..sampling.uniform import UniformSettings, decode_uniform, uniform_rule

__all__ = ["FAMILY", "PUBLISHED", "SETTINGS", "is_diffusion_gemma", "check_config", "DiffusionGemmaDenoiser",
           "generation_settings", "uniform_options", "decode_with", "generate"]

#: The family's name in :data:`mdm_energy.integrations.huggingface.FAMILIES`.
FAMILY = "diffusion_gemma"
#: The family's published generation defaults (used where the model's ``generation_config`` sets none).
PUBLISHED = {"max_denoising_steps": 48, "entropy_bound": 0.1, "t_min": 0.4, "t_max": 0.8, "stability_threshold": 1,
             "confidence_threshold": 0.005}
#: The family's own settings a caller of :func:`generate` may override by name.
SETTINGS = ("max_denoising_steps", "t_min", "t_max", "stability_threshold", "confidence_threshold")


def is_diffusion_gemma(model) -> bool:
    """Whether ``model`` (or its config) is a DiffusionGemma (``config.model_type`` ``diffusion_gemma``)."""
    config = getattr(model, "config", model)
    return str(getattr(config, "model_type", "")).lower() == FAMILY


def check_config(config) -> None:
    """``ValueError`` naming every field a DiffusionGemma config (the object, or ``config.json`` as a dict) lacks
    (``canvas_length``, ``text_config.vocab_size``)."""
    def get(obj, name):
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    missing = []
    canvas = get(config, "canvas_length")
    if isinstance(canvas, bool) or not isinstance(canvas, int) or canvas < 1:
        missing.append("canvas_length")
    text = get(config, "text_config")
    vocab = get(text, "vocab_size") if text is not None else None
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1:
        missing.append("text_config.vocab_size")
    if missing:
        raise ValueError(f"the DiffusionGemma config lacks {', '.join(missing)} (a positive integer each)")


class _Context:
    """One batch's encoder cache: the prompts, then every finished canvas; the decoder reads it."""

    def __init__(self, model, tokens: Tensor, real: Tensor, canvas_length: int) -> None:
        from transformers import DynamicCache

        self.model, self.L = model, canvas_length
        self.cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        self.real = real
        self.length = 0
        self._encode(tokens)

    def _encode(self, tokens: Tensor) -> None:
        start, n = self.length, tokens.shape[1]
        if start:
            self.real = torch.cat([self.real, torch.ones_like(tokens, dtype=torch.bool)], dim=1)
        positions = torch.arange(start, start + n, device=tokens.device).unsqueeze(0)
        self.model.model.encoder(input_ids=tokens, attention_mask=self.real, cache=self.cache, position_ids=positions)
        self.length = start + n

    def logits(self, canvas: Tensor, previous: "Tensor | None") -> Tensor:
        mask = torch.cat([self.real, torch.ones_like(canvas, dtype=torch.bool)], dim=1)
        positions = torch.arange(self.length, self.length + canvas.shape[1], device=canvas.device).unsqueeze(0)
        if previous is not None:
            previous = previous.to(self.model.model.decoder.embed_tokens.weight.dtype)
        out = self.model(decoder_input_ids=canvas, self_conditioning_logits=previous, decoder_attention_mask=mask,
                         cache=self.cache, decoder_position_ids=positions)
        return out.logits

    def extend(self, tokens: Tensor) -> None:
        self._encode(tokens)


class DiffusionGemmaDenoiser:
    """A ``DiffusionGemmaForBlockDiffusion`` as a :class:`~mdm_energy.sampling.uniform.UniformDenoiser`.

    It has no mask token (``mask_id`` is -1: nothing on a canvas is ever masked). ``eos_id``/``stop_ids`` and
    ``pad_id`` come from the model's generation config, else the tokenizer, else the text config."""

    mask_id = -1

    def __init__(self, model, tokenizer=None) -> None:
        config = getattr(model, "config", None)
        if not is_diffusion_gemma(model):
            raise ValueError(f"{type(model).__name__} is not a DiffusionGemma model (config.model_type "
                             f"{getattr(config, 'model_type', None)!r})")
        check_config(config)
        if not hasattr(model, "lm_head"):
            raise ValueError(f"{type(model).__name__} has no language-model head: load DiffusionGemmaForBlockDiffusion")
        self.model = model
        self.canvas_length = int(config.canvas_length)
        self.vocab_size = int(config.text_config.vocab_size)
        self.max_length = getattr(config.text_config, "max_position_embeddings", None)
        gen, text = getattr(model, "generation_config", None), config.text_config
        self.stop_ids = _ids(_first_set("eos_token_id", gen, tokenizer, text))
        pad = _first_set("pad_token_id", gen, tokenizer, text)
        self.pad_id = None if pad is None else int(pad)
        self.eos_id = self.stop_ids[0] if self.stop_ids else None

    def open(self, tokens: Tensor, attention_mask: Tensor) -> _Context:
        return _Context(self.model, tokens, attention_mask.bool(), self.canvas_length)


def _first_set(name: str, *sources) -> Any:
    for src in sources:
        value = getattr(src, name, None) if src is not None else None
        if value is not None and value != []:
            return value
    return None


def _ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),)


def generation_settings(model, denoiser: DiffusionGemmaDenoiser, *, stop_at_eos: bool,
                        steps: "int | None" = None, **overrides: Any) -> UniformSettings:
    """The loop's settings: ``overrides`` (names of :data:`SETTINGS`), else the model's generation config, else
    :data:`PUBLISHED`; ``steps`` (per canvas) replaces ``max_denoising_steps``."""
    unknown = sorted(set(overrides) - set(SETTINGS))
    if unknown:
        raise ValueError(f"DiffusionGemma does not take {', '.join(map(repr, unknown))} (its settings: "
                         f"{', '.join(SETTINGS)})")
    gen = getattr(model, "generation_config", None)

    def pick(name: str):
        if name in overrides:
            return overrides[name]
        value = getattr(gen, name, None)
        return PUBLISHED[name] if value is None else value

    per_canvas = steps if steps is not None else pick("max_denoising_steps")
    return UniformSettings(steps=per_canvas, t_min=pick("t_min"), t_max=pick("t_max"),
                           stability_threshold=pick("stability_threshold"),
                           confidence_threshold=pick("confidence_threshold"),
                           eos_ids=denoiser.stop_ids, pad_id=denoiser.pad_id, stop_at_eos=stop_at_eos)


@dataclass(frozen=True)
class _Plan:
    rule: Any
    settings: UniformSettings
    canvases: int


def uniform_options(model, denoiser: DiffusionGemmaDenoiser, sampler: str, gen_length: int, **given: Any) -> _Plan:
    """Check ``sampler`` and its ``given`` options (registry names, plus :data:`SETTINGS`) for DiffusionGemma
    and build the rule and settings; every refusal is one ``ValueError`` line naming the value.

    The options mean what they mean in the registry: ``epsilon`` (default 0.1, the published bound) is the
    entropy bound; ``steps`` of ``fixed``/``entropy-floor`` are the run's model calls, split evenly over the
    canvases; ``entropy-bounded`` has no steps: each canvas takes the model's ``max_denoising_steps``
    (generation config, else 48). ``fixed`` ranks by ``remasking`` (``entropy``: lowest entropy first;
    ``low_confidence``, its default: the drawn token's probability; ``margin``)."""
    from ..registry import sampler_options

    family = {k: given.pop(k) for k in list(given) if k in SETTINGS}
    options = sampler_options(sampler, **given)
    L = denoiser.canvas_length
    rule, steps = uniform_rule(sampler, options, L, family="DiffusionGemma")
    canvases = -(-int(gen_length) // L)
    per_canvas = None
    if steps is not None:
        if "max_denoising_steps" in family:
            raise ValueError(f"the {sampler} sampler's steps set the steps per canvas: give steps, not "
                             "max_denoising_steps")
        if steps % canvases:
            raise ValueError(f"steps {steps} is not divisible by the {canvases} canvases of {L} tokens "
                             f"(gen_length {gen_length}): give steps as a multiple of {canvases}")
        per_canvas = steps // canvases
    settings = generation_settings(model, denoiser, stop_at_eos=bool(options.get("stop_at_eos", False)),
                                   steps=per_canvas, **family)
    return _Plan(rule, settings, canvases)


def decode_with(model, denoiser: DiffusionGemmaDenoiser):
    """``run(prompt_ids, gen_length, sampler, options, generator, callback) -> UniformOutput`` for one prompt
    (the command line's ``generate --model DIR``)."""

    def run(prompt: list[int], gen_length: int, sampler: str, options: dict, generator=None, callback=None):
        plan = uniform_options(model, denoiser, sampler, gen_length, **options)
        return decode_uniform(denoiser, [prompt], int(gen_length), plan.rule, plan.settings, generator=generator,
                              device=next(model.parameters()).device, callback=callback)

    return run


def generate(model, tokenizer, prompts, *, sampler: str = "entropy-bounded", gen_length: int = 256,
             chat: "bool | None" = None, generator=None, return_output: bool = False, callback=None, seeds=None,
             **options: Any):
    """Generate text with a DiffusionGemma model (see the module docstring); ``options`` are the sampler's
    (registry names) and the family's :data:`SETTINGS`. Returns the decoded strings (cut at the first end
    token), or ``(strings, UniformOutput)`` with ``return_output=True``."""
    from .huggingface import encode_prompts, trim_at_stop

    den = DiffusionGemmaDenoiser(model, tokenizer)
    plan = uniform_options(model, den, sampler, gen_length, **options)
    ids = encode_prompts(tokenizer, prompts, chat)
    device = next(model.parameters()).device
    out = decode_uniform(den, ids, int(gen_length), plan.rule, plan.settings, generator=generator, seeds=seeds,
                         device=device, callback=callback)
    stops = set(den.stop_ids)
    texts = [tokenizer.decode(trim_at_stop(row.tolist(), stops), skip_special_tokens=True) for row in out.generated]
    return (texts, out) if return_output else texts
