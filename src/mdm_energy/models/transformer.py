"""A small bidirectional transformer denoiser (LLaDA-style: no time input, no causal mask).

``MDMTransformer(config)(tokens, attention_mask) -> logits (B, T, V)`` fits the denoiser protocol
through :func:`as_denoiser`. Checkpoints are a ``model.safetensors`` file plus ``config.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .._io import atomic_write

__all__ = ["MDMConfig", "MDMTransformer", "save_model", "load_model", "as_denoiser"]


@dataclass
class MDMConfig:
    """Size and special ids of a :class:`MDMTransformer`."""

    vocab_size: int
    mask_id: int
    eos_id: int
    pad_id: int
    max_len: int = 256
    d_model: int = 192
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 768
    dropout: float = 0.0
    causal: bool = False  # True: a left-to-right character LM (the pycode reference model), not a denoiser

    def __post_init__(self) -> None:
        for name in ("mask_id", "eos_id", "pad_id"):
            v = getattr(self, name)
            if not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} {v} is outside the vocabulary [0, {self.vocab_size})")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class MDMTransformer(nn.Module):
    """Token + learned position embeddings, a pre-norm transformer encoder, a tied output head."""

    def __init__(self, config: MDMConfig) -> None:
        super().__init__()
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.d_model)
        self.pos = nn.Embedding(config.max_len, config.d_model)
        layer = nn.TransformerEncoderLayer(config.d_model, config.n_heads, config.d_ff, config.dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        T = tokens.shape[1]
        if T > self.config.max_len:
            raise ValueError(f"sequence of {T} tokens exceeds max_len {self.config.max_len}")
        h = self.tok(tokens) + self.pos(torch.arange(T, device=tokens.device))
        pad = None if attention_mask is None else ~attention_mask.bool()
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device) if self.config.causal else None
        h = self.norm(self.encoder(h, mask=causal, src_key_padding_mask=pad, is_causal=self.config.causal))
        return h @ self.tok.weight.T  # tied head

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_model(model: MDMTransformer, folder: "str | os.PathLike[str]") -> None:
    """Write ``model.safetensors`` and ``config.json`` (atomically) to ``folder``."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(state, tmp), suffix=".safetensors")

    def write_config(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(asdict(model.config), fh, indent=2)

    atomic_write(out / "config.json", write_config)


def load_model(folder: "str | os.PathLike[str]", device: "str | torch.device" = "cpu") -> MDMTransformer:
    """Load a model saved by :func:`save_model`."""
    from safetensors.torch import load_file

    path = Path(folder)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ValueError(f"no checkpoint (config.json + model.safetensors) in {str(path)!r}")
    config = MDMConfig(**json.loads((path / "config.json").read_text()))
    model = MDMTransformer(config)
    model.load_state_dict(load_file(path / "model.safetensors"))
    return model.to(device).eval()


def as_denoiser(model: MDMTransformer):
    """The model as a sampler denoiser (``mask_id``, ``vocab_size``, ``eos_id``, ``max_length`` from its config)."""
    from ..sampling import CallableDenoiser

    den = CallableDenoiser(lambda tokens, attention_mask=None: model(tokens, attention_mask), model.config.mask_id,
                           model.config.vocab_size, model.config.eos_id)
    den.max_length = model.config.max_len
    return den
