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

__all__ = ["LLADA_MASK_ID", "HFDenoiser"]

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
