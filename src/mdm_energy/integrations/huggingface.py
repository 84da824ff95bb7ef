"""Hugging Face models as denoisers (needs the ``[hf]`` extra: ``transformers``).

:class:`HFDenoiser` wraps anything called as ``model(input_ids=..., attention_mask=...)`` whose output
has ``.logits`` (or is a tuple whose first item is the logits): ``AutoModelForMaskedLM``, LLaDA-style
remote-code models, Dream. Dream-style models predict token ``j`` at position ``j - 1``; with
``shift_logits=True`` the logits are shifted one place right so that position ``j`` holds its own
prediction, as every sampler here expects. Dream also wants, for a batch with left padding, what its
own ``diffusion_generate`` builds (``pairwise_attention=True``): a boolean ``(B, 1, T, T)`` mask that lets
real tokens see only real tokens, and position ids that count from each row's first real token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling.denoiser import check_denoiser

__all__ = ["load_pretrained", "LLADA_MASK_ID", "LLADA_EOS_ID", "LLADA_EOT_ID", "HFDenoiser", "CachingHFDenoiser", "caching_support",
           "model_family", "denoiser_for", "encode_prompts", "generate"]

#: LLaDA's ``[MASK]`` token id.
LLADA_MASK_ID = 126336


class HFDenoiser:
    """A Hugging Face model as a denoiser.

    ``mask_id`` defaults to the model config's ``mask_token_id``, else the tokenizer's, else LLaDA's
    126336; ``vocab_size`` to ``config.vocab_size``; ``max_length`` (the context window, checked by the
    samplers) to ``config.max_position_embeddings`` when present. With ``pairwise_attention`` (a model whose
    forward takes a boolean ``(B, 1, T, T)`` attention mask and ``position_ids``) it also runs pairwise calls
    (:meth:`pairwise`, :mod:`mdm_energy.sampling.denoiser`), which the ``wino`` sampler needs.
    """

    def __init__(
        self,
        model,
        mask_id: "int | None" = None,
        vocab_size: "int | None" = None,
        eos_id: "int | None" = None,
        tokenizer=None,
        shift_logits: bool = False,
        max_length: "int | None" = None,
        pairwise_attention: bool = False,
        stop_ids: "tuple[int, ...] | None" = None,
    ) -> None:
        config = getattr(model, "config", None)
        if mask_id is None:
            mask_id = getattr(config, "mask_token_id", None)
        if mask_id is None and tokenizer is not None:
            mask_id = getattr(tokenizer, "mask_token_id", None)
        self.model = model
        self.mask_id = int(LLADA_MASK_ID if mask_id is None else mask_id)
        self.vocab_size = int(vocab_size if vocab_size is not None else getattr(config, "vocab_size"))
        if eos_id is None:
            eos_id = getattr(config, "eos_token_id", None)
            if eos_id is None and tokenizer is not None:
                eos_id = getattr(tokenizer, "eos_token_id", None)
        self.eos_id = None if eos_id is None else int(eos_id if not isinstance(eos_id, (list, tuple)) else eos_id[0])
        self.shift_logits, self.pairwise_attention = bool(shift_logits), bool(pairwise_attention)
        self.stop_ids = tuple(sorted({int(i) for i in stop_ids})) if stop_ids else None
        self.max_length = max_length if max_length is not None else getattr(config, "max_position_embeddings", None)
        check_denoiser(self)

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        kwargs = {"input_ids": tokens}
        if attention_mask is not None and self.pairwise_attention:
            real = attention_mask.bool()
            kwargs["attention_mask"] = real[:, None, None, :] & real[:, None, :, None]
            kwargs["position_ids"] = self.position_ids(attention_mask, tokens.shape[1])
        elif attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(torch.long)
        out = self.model(**kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        if self.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    def position_ids(self, attention_mask: "Tensor | None", length: int) -> Tensor:
        """The position ids of the plain call on a canvas ``(B, T)``: with ``pairwise_attention``, counted from each
        row's first real token (padding at 1, as Dream does); otherwise ``0 .. T - 1`` (the model's own)."""
        if attention_mask is None or not self.pairwise_attention:
            B = 1 if attention_mask is None else attention_mask.shape[0]
            device = None if attention_mask is None else attention_mask.device
            return torch.arange(length, device=device).expand(B, length)
        real = attention_mask.bool()
        positions = real.long().cumsum(-1) - 1
        positions.masked_fill_(~real, 1)
        return positions

    @property
    def supports_pairwise(self) -> bool:
        """Pairwise calls (:meth:`pairwise`) need a model that takes a boolean ``(B, 1, S, S)`` attention mask
        and ``position_ids``, which is what ``pairwise_attention`` declares."""
        return self.pairwise_attention

    def pairwise(self, tokens: Tensor, allowed: Tensor, position_ids: Tensor) -> Tensor:
        """Logits of ``tokens`` ``(B, S)`` where query ``q`` attends key ``k`` only if ``allowed[b, q, k]``, with
        the given position ids (a ``pairwise_attention`` model: its boolean 4-D mask, True = may attend)."""
        if not self.pairwise_attention:
            raise ValueError(f"{type(self.model).__name__} takes no 4-D attention mask (pairwise_attention is off)")
        out = self.model(input_ids=tokens, attention_mask=allowed.bool()[:, None], position_ids=position_ids)
        logits = out.logits if hasattr(out, "logits") else out[0]
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1) if self.shift_logits else logits


class CachingHFDenoiser(HFDenoiser):
    """An :class:`HFDenoiser` for models whose forward takes cached keys and values in the layout of
    Fast-dLLM's LLaDA and Dream code: ``model(input_ids, use_cache=True)`` returns ``past_key_values`` (per
    layer ``(key, value)`` of shape ``(B, H, T, d)``); given ``past_key_values`` for the first ``P`` positions,
    a call on the next tokens treats them as positions ``P, P+1, …`` (prefix cache); and with
    ``replace_position`` (a boolean ``(B, T)`` mask of the span; and ``dual_cache=True`` where the forward
    takes it, as Fast-dLLM's Dream does) a call on a span reads every other position from a full cache (dual
    cache). Cached keys are ``(B, H, T, d)`` (LLaDA) or ``(B, T, D)`` (Dream). :func:`caching_support`
    recognises such a model by its forward's ``replace_position`` argument. Batches must not be padded (one
    prompt length)."""

    def full(self, tokens: Tensor, attention_mask: "Tensor | None" = None):
        from ..models.transformer import KVCache

        self._no_padding(attention_mask)
        out = self.model(input_ids=tokens, use_cache=True)
        past = out.past_key_values
        return self._shift(out.logits), KVCache([k for k, _ in past], [v for _, v in past])

    def span(self, tokens: Tensor, start: int, end: int, cache, attention_mask: "Tensor | None" = None) -> Tensor:
        """Logits of positions ``start .. end`` of ``tokens`` ``(B, T)``, every other position from ``cache``.

        A shifted (Dream-style) model predicts position ``j`` at ``j - 1``, so the span it runs on starts
        one position earlier."""
        self._no_padding(attention_mask)
        T = tokens.shape[1]
        lead = 1 if self.shift_logits and start > 0 else 0
        s0 = start - lead
        part = tokens[:, s0:end]
        if s0 == 0 and end == T:  # the whole sequence: nothing to take from the cache
            out = self.model(input_ids=part, use_cache=False)
        elif end == T:  # prefix: the positions before the span come from the cache
            past = [(_head(k, s0), _head(v, s0)) for k, v in zip(cache.keys, cache.values)]
            out = self.model(input_ids=part, past_key_values=past, use_cache=False)
        else:  # dual: every position outside the span comes from the cache (the model may write the span into it)
            where = torch.zeros((part.shape[0], T), dtype=torch.bool, device=part.device)
            where[:, s0:end] = True
            past = [(k.clone(), v.clone()) for k, v in zip(cache.keys, cache.values)]
            flag = {"dual_cache": True} if _takes(self.model, "dual_cache") else {}  # Fast-dLLM's Dream asks for it
            out = self.model(input_ids=part, past_key_values=past, use_cache=False, replace_position=where, **flag)
        logits = out.logits
        if lead:
            return logits[:, :-1]
        return self._shift(logits)

    def _shift(self, logits: Tensor) -> Tensor:
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1) if self.shift_logits else logits

    @staticmethod
    def _no_padding(attention_mask: "Tensor | None") -> None:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("key/value caching of a Hugging Face model needs prompts of one length (no padding)")


def load_pretrained(source: str, *, trust_remote_code: bool = False, tokenizer=None, **model_kwargs):
    """``AutoModel`` and ``AutoTokenizer`` of a folder or hub id; ``ValueError`` naming ``source`` when it cannot be
    loaded.

    ``trust_remote_code`` is off unless the user turns it on (transformers' and lm-eval's convention): a folder
    that ships its own Python (``auto_map`` in its config, as LLaDA's and Dream's do) would run that code on
    loading, so without consent it is refused with one line saying how to give it.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        cls = AutoModel
        if getattr(config, "model_type", None) == "diffusion_gemma":  # AutoModel would drop its language-model head
            from transformers import DiffusionGemmaForBlockDiffusion as cls
        model = cls.from_pretrained(source, trust_remote_code=trust_remote_code, **model_kwargs)
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise ValueError(f"the model in {source!r} ships its own Python code, which loading it runs: pass "
                             "--trust-remote-code (model_args: trust_remote_code=True) if you trust that folder") from None
        raise ValueError(f"cannot load a model from {source!r}: {' '.join(str(exc).split())[:300]}") from None
    return model, tokenizer


def _head(t: Tensor, n: int) -> Tensor:
    """The first ``n`` positions of a cached key or value: ``(B, H, T, d)`` (LLaDA's layout) or ``(B, T, D)``
    (Fast-dLLM's Dream, before its heads are split)."""
    return t[:, :n] if t.ndim == 3 else t[:, :, :n]


def _takes(model, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def caching_support(model) -> bool:
    """Whether a model's forward takes Fast-dLLM's cache arguments (``past_key_values``, ``use_cache`` and
    ``replace_position``). The original LLaDA code also names ``past_key_values`` but refuses a cache, so the
    signature alone without ``replace_position`` is not enough."""
    return all(_takes(model, p) for p in ("past_key_values", "use_cache", "replace_position"))


# --- generation --------------------------------------------------------------------------------------

#: LLaDA's end-of-sequence and end-of-turn token ids (generation is cut at the first of either).
LLADA_EOS_ID, LLADA_EOT_ID = 126081, 126348
FAMILIES = ("llada", "dream", "masked", "diffusion_gemma", "llada2", "sdar")
#: The families whose models attend block-causally (:mod:`~mdm_energy.integrations.block_diffusion`).
BLOCK_CAUSAL = ("llada2", "sdar")


def model_family(model, family: "str | None" = None) -> str:
    """``llada``, ``dream``, ``diffusion_gemma`` (uniform noise: :mod:`.diffusion_gemma`), ``llada2`` or ``sdar``
    (block diffusion: :mod:`.block_diffusion`) or ``masked`` (any other masked LM), from ``family`` or the model
    config."""
    if family is not None:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
        return family
    from .block_diffusion import block_family

    block = block_family(model)
    if block is not None:
        return block
    kind = str(getattr(getattr(model, "config", None), "model_type", "")).lower()
    if kind == "diffusion_gemma":
        return "diffusion_gemma"
    if "llada" in kind:
        return "llada"
    if "dream" in kind:
        return "dream"
    return "masked"


def denoiser_for(model, tokenizer=None, family: "str | None" = None, mask_id: "int | None" = None, **block_options):
    """The :class:`HFDenoiser` of a LLaDA-, Dream- or plain masked-LM-style model, with its stop tokens — a
    :class:`CachingHFDenoiser` when the model's forward takes cached keys and values; for a block-diffusion family
    (LLaDA 2.x, SDAR) a :class:`~mdm_energy.integrations.block_diffusion.BlockDiffusionDenoiser`, which takes
    ``block_options`` (``block_size``, ``block_cache``, ``eos_id``, ``stop_ids``)."""
    fam = model_family(model, family)
    if fam == "diffusion_gemma" and not block_options:
        from .diffusion_gemma import DiffusionGemmaDenoiser

        return DiffusionGemmaDenoiser(model, tokenizer)
    if fam in BLOCK_CAUSAL:
        from .block_diffusion import BlockDiffusionDenoiser

        return BlockDiffusionDenoiser(model, fam, mask_id=mask_id, tokenizer=tokenizer, **block_options)
    if block_options:
        raise ValueError(f"{', '.join(sorted(block_options))}: options of block-diffusion models only, and this is "
                         f"a {fam} model")
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    kwargs = {"tokenizer": tokenizer, "stop_ids": tuple(i for i in stop_ids(model, tokenizer, fam) if vocab is None or i < vocab)}
    if fam == "dream":
        mid = mask_id if mask_id is not None else getattr(tokenizer, "mask_token_id", None)
        if mid is None:
            mid = getattr(config, "mask_token_id", None)
        kwargs.update(mask_id=mid, shift_logits=True, pairwise_attention=True)
    elif fam == "llada":
        mid = mask_id if mask_id is not None else getattr(config, "mask_token_id", None)
        kwargs.update(mask_id=mid if mid is not None else LLADA_MASK_ID)
    else:
        kwargs.update(mask_id=mask_id)
    return (CachingHFDenoiser if caching_support(model) else HFDenoiser)(model, **kwargs)


def encode_prompts(tokenizer, prompts, chat: "bool | None" = None) -> list[list[int]]:
    """Token ids of each prompt; with ``chat`` (default: when the tokenizer has a chat template) each prompt
    becomes one user turn followed by the assistant's generation prompt. A prompt given as token ids is
    kept as it is."""
    if isinstance(prompts, str):
        prompts = [prompts]
    use_chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
    out = []
    for p in prompts:
        if not isinstance(p, str):
            out.append([int(t) for t in p])
        elif use_chat:
            text = tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            out.append(tokenizer(p)["input_ids"])
    return out


def stop_ids(model, tokenizer, family: str) -> set[int]:
    """Token ids that end a generation: LLaDA's EOS and EoT, else the tokenizer's/config's EOS."""
    ids: set[int] = set()
    if family == "llada":
        ids |= {LLADA_EOS_ID, LLADA_EOT_ID}
    if family in BLOCK_CAUSAL:
        from .block_diffusion import BLOCK_FAMILIES

        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        ids |= {i for i in BLOCK_FAMILIES[family].eos_ids if vocab is None or i < vocab}
    for src in (tokenizer, getattr(model, "config", None)):
        eos = getattr(src, "eos_token_id", None) if src is not None else None
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids |= {int(e) for e in eos}
    return ids


def trim_at_stop(ids: list[int], stops: set[int]) -> list[int]:
    """The ids before the first stop token (LLaDA pads the window with EOS after the answer)."""
    for k, t in enumerate(ids):
        if t in stops:
            return ids[:k]
    return ids


def generate(
    model,
    tokenizer,
    prompts,
    *,
    sampler: str = "fixed",
    gen_length: int = 256,
    family: "str | None" = None,
    chat: "bool | None" = None,
    generator=None,
    return_output: bool = False,
    callback=None,
    seeds=None,
    steps_per_block: "int | None" = None,
    block_options: "dict | None" = None,
    **sampler_options,
):
    """Generate text for a batch of prompts (of any lengths) with a LLaDA-, Dream- or masked-LM model.

    ``sampler`` names a sampler of :mod:`mdm_energy.registry` (default ``fixed``, LLaDA's sampler, where
    the ``schedule`` decides how many tokens each of the ``steps`` model calls unmasks) and
    ``sampler_options`` are its options (``steps``, ``schedule``, ``remasking``, ``temperature``,
    ``block_length``, ``cfg_scale``, ...); an option the sampler does not take raises ``ValueError``.
    Outputs are cut at the first end-of-sequence/end-of-turn token. ``callback(step, tokens, committed)``
    is called after every model call (see :class:`~mdm_energy.sampling.Sampler`); ``seeds`` (one integer per
    prompt) make each prompt's random draws independent of its batch. Returns the decoded
    strings, or ``(strings, SampleOutput)`` with ``return_output=True`` (the output's trajectory shows
    which call unmasked each position).

    A block-diffusion model (LLaDA 2.x, SDAR) decodes its own blocks, the prompt and finished blocks from its
    key/value cache (:mod:`~mdm_energy.integrations.block_diffusion`); ``steps_per_block`` then gives the
    sampler's steps per block (the authors' ``steps`` / ``denoising_steps``) instead of ``steps`` for the
    whole run, and ``block_options`` go to its denoiser (``block_size``, ``block_cache``, ``mask_id``).
    """
    from ..sampling import make_sampler

    fam = model_family(model, family)
    if fam == "diffusion_gemma" and steps_per_block is None and not block_options:  # uniform noise: its own loop
        from . import diffusion_gemma

        return diffusion_gemma.generate(model, tokenizer, prompts, sampler=sampler, gen_length=gen_length, chat=chat,
                                        generator=generator, return_output=return_output, callback=callback,
                                        seeds=seeds, **sampler_options)
    opts = dict(block_options or {})
    den = denoiser_for(model, tokenizer, fam, opts.pop("mask_id", None), **opts)
    ids = encode_prompts(tokenizer, prompts, chat)
    if steps_per_block is not None:
        if fam not in BLOCK_CAUSAL:
            raise ValueError(f"steps_per_block is for block-diffusion models; this is a {fam} model (give steps)")
        from .block_diffusion import check_steps_per_block

        check_steps_per_block(sampler, sampler_options.get("steps"), steps_per_block)
        sampler_options["steps"] = den.total_steps(ids, gen_length, steps_per_block)
    s = make_sampler(sampler, **sampler_options)
    device = next(model.parameters()).device if hasattr(model, "parameters") else None
    pad = getattr(tokenizer, "pad_token_id", None)
    out = s(den, ids, gen_length, generator=generator, return_trajectory=True, device=device,
            pad_id=pad if pad is not None else den.eos_id, callback=callback, seeds=seeds)
    stops = stop_ids(model, tokenizer, fam)
    texts = [tokenizer.decode(trim_at_stop(row.tolist(), stops), skip_special_tokens=True) for row in out.generated]
    return (texts, out) if return_output else texts
