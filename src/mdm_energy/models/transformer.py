"""A small bidirectional transformer denoiser (LLaDA-style: no time input, no causal mask).

``MDMTransformer(config)(tokens, attention_mask) -> logits (B, T, V)`` fits the denoiser protocol
through :func:`as_denoiser`. Checkpoints are a ``model.safetensors`` file plus ``config.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

from .._io import atomic_write
from ..limits import check_memory

__all__ = ["MDMConfig", "MDMTransformer", "save_model", "load_config", "load_model", "as_denoiser"]


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
        for name in ("vocab_size", "max_len", "d_model", "n_layers", "n_heads", "d_ff"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("mask_id", "eos_id", "pad_id"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} {v!r} is outside the vocabulary [0, {self.vocab_size})")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be true or false, got {self.causal!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        check_memory(4 * self.num_parameters(), f"a model with d_model={self.d_model}, n_layers={self.n_layers}, "
                     f"vocab_size={self.vocab_size}, max_len={self.max_len}")

    def num_parameters(self) -> int:
        """Parameters of the model this config describes (embeddings, layers, final norm; the head is tied)."""
        d, f, L = self.d_model, self.d_ff, self.n_layers
        per_layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d  # attention, feed-forward, two layer norms
        return (self.vocab_size + self.max_len) * d + L * per_layer + 2 * d

    @classmethod
    def from_json(cls, data: object, source: str = "config.json") -> "MDMConfig":
        """A config from parsed JSON, every field checked; errors name ``source`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of model settings, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
        missing = sorted(f.name for f in fields(cls) if f.default is MISSING and f.name not in data)
        if missing:
            raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
        try:
            return cls(**data)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


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


def save_model(model: MDMTransformer, folder: "str | os.PathLike[str]", dtype: "torch.dtype | None" = None) -> None:
    """Write ``model.safetensors`` and ``config.json`` (atomically) to ``folder``; ``dtype`` (e.g.
    ``torch.float16``, half the size) stores the weights in that precision — :func:`load_model` reads them
    back as float32."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(state, tmp), suffix=".safetensors")

    def write_config(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(asdict(model.config), fh, indent=2)

    atomic_write(out / "config.json", write_config)


def load_config(folder: "str | os.PathLike[str]") -> MDMConfig:
    """The validated ``config.json`` of a checkpoint folder (``ValueError`` naming the file and field)."""
    path = Path(folder)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise ValueError(f"no checkpoint (config.json + model.safetensors) in {str(path)!r}")
    source = str(path / "config.json")
    try:
        data = json.loads((path / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source} is not valid JSON ({exc})") from None
    return MDMConfig.from_json(data, source)


def load_model(folder: "str | os.PathLike[str]", device: "str | torch.device" = "cpu") -> MDMTransformer:
    """Load a model saved by :func:`save_model`; a corrupt, cut-short or mismatched file is a ``ValueError``
    naming it."""
    from safetensors.torch import load_file

    path = Path(folder)
    config = load_config(path)
    weights = path / "model.safetensors"
    try:
        state = load_file(weights)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        raise ValueError(f"{str(weights)!r} is corrupt or cut short ({_first_line(exc)})") from None
    model = MDMTransformer(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{str(weights)!r} does not match {str(path / 'config.json')!r} ({_first_line(exc)})") from None
    return model.to(device).eval()


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


def as_denoiser(model: MDMTransformer):
    """The model as a sampler denoiser (``mask_id``, ``vocab_size``, ``eos_id``, ``max_length`` from its config)."""
    from ..sampling import CallableDenoiser

    den = CallableDenoiser(lambda tokens, attention_mask=None: model(tokens, attention_mask), model.config.mask_id,
                           model.config.vocab_size, model.config.eos_id)
    den.max_length = model.config.max_len
    return den
