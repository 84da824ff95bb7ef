"""Hugging Face models as denoisers (needs the ``[hf]`` extra: ``transformers``).

:class:`HFDenoiser` wraps anything called as ``model(input_ids=..., attention_mask=...)`` whose output
has ``.logits`` (or is a tuple whose first item is the logits): ``AutoModelForMaskedLM``, LLaDA-style
remote-code models, Dream. Dream-style models predict token ``j`` at position ``j - 1``; with
``shift_logits=True`` the logits are shifted one place right so that position ``j`` holds its own
prediction, as every sampler here expects.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..sampling.denoiser import check_denoiser

__all__ = ["LLADA_MASK_ID", "LLADA_EOS_ID", "LLADA_EOT_ID", "HFDenoiser", "model_family", "denoiser_for", "encode_prompts", "generate"]

#: LLaDA's ``[MASK]`` token id.
LLADA_MASK_ID = 126336


class HFDenoiser:
    """A Hugging Face model as a denoiser.

    ``mask_id`` defaults to the model config's ``mask_token_id``, else the tokenizer's, else LLaDA's
    126336; ``vocab_size`` to ``config.vocab_size``; ``max_length`` (the context window, checked by the
    samplers) to ``config.max_position_embeddings`` when present.
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
        self.shift_logits = bool(shift_logits)
        self.max_length = max_length if max_length is not None else getattr(config, "max_position_embeddings", None)
        check_denoiser(self)

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        kwargs = {"input_ids": tokens}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(torch.long)
        out = self.model(**kwargs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        if self.shift_logits:
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits


# --- generation --------------------------------------------------------------------------------------

#: LLaDA's end-of-sequence and end-of-turn token ids (generation is cut at the first of either).
LLADA_EOS_ID, LLADA_EOT_ID = 126081, 126348
FAMILIES = ("llada", "dream", "masked")


def model_family(model, family: "str | None" = None) -> str:
    """``llada``, ``dream`` or ``masked`` (any other masked LM), from ``family`` or the model config."""
    if family is not None:
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r} (known: {', '.join(FAMILIES)})")
        return family
    kind = str(getattr(getattr(model, "config", None), "model_type", "")).lower()
    if "llada" in kind:
        return "llada"
    if "dream" in kind:
        return "dream"
    return "masked"


def denoiser_for(model, tokenizer=None, family: "str | None" = None, mask_id: "int | None" = None) -> HFDenoiser:
    """The :class:`HFDenoiser` of a LLaDA-, Dream- or plain masked-LM-style model."""
    fam = model_family(model, family)
    if fam == "dream":
        mid = mask_id if mask_id is not None else getattr(tokenizer, "mask_token_id", None)
        if mid is None:
            mid = getattr(getattr(model, "config", None), "mask_token_id", None)
        return HFDenoiser(model, mask_id=mid, tokenizer=tokenizer, shift_logits=True)
    if fam == "llada":
        mid = mask_id if mask_id is not None else getattr(getattr(model, "config", None), "mask_token_id", None)
        return HFDenoiser(model, mask_id=mid if mid is not None else LLADA_MASK_ID, tokenizer=tokenizer)
    return HFDenoiser(model, mask_id=mask_id, tokenizer=tokenizer)


def encode_prompts(tokenizer, prompts, chat: "bool | None" = None) -> list[list[int]]:
    """Token ids of each prompt; with ``chat`` (default: when the tokenizer has a chat template) each prompt
    becomes one user turn followed by the assistant's generation prompt."""
    if isinstance(prompts, str):
        prompts = [prompts]
    use_chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
    out = []
    for p in prompts:
        if use_chat:
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
    **sampler_options,
):
    """Generate text for a batch of prompts (of any lengths) with a LLaDA-, Dream- or masked-LM model.

    ``sampler`` names a sampler of :mod:`mdm_energy.registry` (default ``fixed``, LLaDA's sampler, where
    the ``schedule`` decides how many tokens each of the ``steps`` model calls unmasks) and
    ``sampler_options`` are its options (``steps``, ``schedule``, ``remasking``, ``temperature``,
    ``block_length``, ``cfg_scale``, ...); an option the sampler does not take raises ``ValueError``.
    Outputs are cut at the first end-of-sequence/end-of-turn token. Returns the decoded strings, or
    ``(strings, SampleOutput)`` with ``return_output=True`` (the output's trajectory shows which call
    unmasked each position).
    """
    from ..sampling import make_sampler

    fam = model_family(model, family)
    den = denoiser_for(model, tokenizer, fam)
    ids = encode_prompts(tokenizer, prompts, chat)
    s = make_sampler(sampler, **sampler_options)
    device = next(model.parameters()).device if hasattr(model, "parameters") else None
    pad = getattr(tokenizer, "pad_token_id", None)
    out = s(den, ids, gen_length, generator=generator, return_trajectory=True, device=device,
            pad_id=pad if pad is not None else den.eos_id)
    stops = stop_ids(model, tokenizer, fam)
    texts = [tokenizer.decode(trim_at_stop(row.tolist(), stops), skip_special_tokens=True) for row in out.generated]
    return (texts, out) if return_output else texts
