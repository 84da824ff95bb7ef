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
import torch.nn.functional as F
from torch import Tensor, nn

from .._io import atomic_write_all, tensors_writer
from ..limits import check_memory

__all__ = ["MDMConfig", "MDMTransformer", "KVCache", "ModelDenoiser", "save_model", "model_files", "load_config",
           "load_model", "as_denoiser"]


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


@dataclass
class KVCache:
    """The keys and values ``(B, H, T, d_head)`` of every position in every layer, from the last full call.

    A *span call* recomputes a contiguous span of positions and lets it attend to these cached keys and
    values for every other position — exact when nothing outside the span changed since the full call,
    an approximation (Fast-dLLM's) otherwise."""

    keys: list
    values: list

    def rows(self, index: Tensor) -> "KVCache":
        """The cache of the batch rows ``index``."""
        return KVCache([k[index] for k in self.keys], [v[index] for v in self.values])


class MDMTransformer(nn.Module):
    """Token + learned position embeddings, a pre-norm transformer encoder, a tied output head.

    The layers are ``nn.TransformerEncoderLayer`` modules (their parameters are the checkpoint's), run by
    :meth:`_encode` with ``scaled_dot_product_attention`` so that a call can also return its keys and values
    (:meth:`forward_full`) or recompute only a span of positions against them (:meth:`forward_span`).
    """

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

    def forward(self, tokens: Tensor, attention_mask: "Tensor | None" = None,
                position_ids: "Tensor | None" = None) -> Tensor:
        """Logits ``(B, T, V)`` of every position.

        ``attention_mask`` is ``(B, T)`` (False: a padding key, never attended) or a boolean ``(B, 1, T, T)``
        mask of which key each query may attend (True: may attend); ``position_ids`` ``(B, T)`` replaces the
        positions ``0 .. T - 1`` (several tokens may share one). Without them the call is the plain one."""
        return self._encode(tokens, 0, attention_mask, None, position_ids=position_ids)[0]

    def forward_full(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> tuple[Tensor, KVCache]:
        """Logits of every position and the keys and values of every layer (for later span calls)."""
        if self.config.causal:
            raise ValueError("key/value caching is for the bidirectional denoiser, not the causal reference model")
        logits, cache = self._encode(tokens, 0, attention_mask, None, keep=True)
        return logits, cache

    def forward_span(self, span: Tensor, start: int, cache: KVCache, attention_mask: "Tensor | None" = None) -> Tensor:
        """Logits ``(B, S, V)`` of the positions ``start .. start + S`` of a sequence whose other positions are
        represented by ``cache``; ``attention_mask`` covers the whole sequence ``(B, T)``."""
        return self._encode(span, start, attention_mask, cache)[0]

    def _encode(self, tokens: Tensor, start: int, attention_mask: "Tensor | None", cache: "KVCache | None",
                keep: bool = False, position_ids: "Tensor | None" = None) -> tuple[Tensor, "KVCache | None"]:
        B, S = tokens.shape
        T = S if cache is None else cache.keys[0].shape[2]
        pairwise = attention_mask is not None and attention_mask.ndim == 4
        if (pairwise or position_ids is not None) and (cache is not None or keep or self.config.causal):
            raise ValueError("a pairwise attention mask and position ids are for a plain call of the bidirectional "
                             "denoiser (no cache, not the causal reference model)")
        if position_ids is not None:
            if tuple(position_ids.shape) != (B, S):
                raise ValueError(f"position_ids of shape {tuple(position_ids.shape)}; expected {(B, S)}")
            top = int(position_ids.max()) if position_ids.numel() else 0
            if top >= self.config.max_len or (position_ids.numel() and int(position_ids.min()) < 0):
                raise ValueError(f"position ids must lie in [0, {self.config.max_len}), got up to {top}")
            positions = position_ids
        else:
            if start + S > self.config.max_len or T > self.config.max_len:
                raise ValueError(f"sequence of {max(T, start + S)} tokens exceeds max_len {self.config.max_len}")
            positions = torch.arange(start, start + S, device=tokens.device)
        if pairwise and tuple(attention_mask.shape) != (B, 1, S, S):
            raise ValueError(f"a pairwise attention mask of shape {tuple(attention_mask.shape)}; expected {(B, 1, S, S)}")
        if pairwise and attention_mask.dtype != torch.bool:  # an additive 0/-inf mask read as bool would be inverted
            raise ValueError(f"a pairwise attention mask must be boolean (True = may attend), got {attention_mask.dtype}")
        h = self.tok(tokens) + self.pos(positions)
        key_mask = None if attention_mask is None else (
            attention_mask.bool() if pairwise else attention_mask.bool()[:, None, None, :])
        heads = self.config.n_heads
        kept: "KVCache | None" = KVCache([], []) if keep else None
        for i, layer in enumerate(self.encoder.layers):
            x = layer.norm1(h)
            q, k, v = (t.view(B, S, heads, -1).transpose(1, 2)
                       for t in F.linear(x, layer.self_attn.in_proj_weight, layer.self_attn.in_proj_bias).chunk(3, -1))
            if cache is not None:
                k = torch.cat([cache.keys[i][:, :, :start], k, cache.keys[i][:, :, start + S:]], dim=2)
                v = torch.cat([cache.values[i][:, :, :start], v, cache.values[i][:, :, start + S:]], dim=2)
            if kept is not None:
                kept.keys.append(k)
                kept.values.append(v)
            causal = self.config.causal and key_mask is None
            mask = key_mask
            if self.config.causal and key_mask is not None:
                # each position also sees itself, so a left-padding query attends to something (no NaN)
                mask = (key_mask & torch.ones(S, T, dtype=torch.bool, device=h.device).tril()) | torch.eye(
                    S, T, dtype=torch.bool, device=h.device)
            drop = layer.self_attn.dropout if self.training else 0.0
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal)
            h = h + layer.dropout1(layer.self_attn.out_proj(attn.transpose(1, 2).reshape(B, S, -1)))
            h = h + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(h))))))
        return self.norm(h) @ self.tok.weight.T, kept  # tied head

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def model_files(model: MDMTransformer, folder: "str | os.PathLike[str]", dtype: "torch.dtype | None" = None) -> list:
    """The writes of ``model.safetensors`` and ``config.json`` in ``folder``, for
    :func:`~mdm_energy._io.atomic_write_all` (a training checkpoint adds its own files, so that all of them
    are replaced together)."""
    state = {k: v.detach().cpu().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    config = json.dumps(asdict(model.config), indent=2)
    out = Path(folder)
    return [(out / "model.safetensors", tensors_writer(state), ".safetensors"),
            (out / "config.json", lambda tmp: Path(tmp).write_text(config), "")]


def save_model(model: MDMTransformer, folder: "str | os.PathLike[str]", dtype: "torch.dtype | None" = None) -> None:
    """Write ``model.safetensors`` and ``config.json`` (atomically, together) to ``folder``; ``dtype`` (e.g.
    ``torch.float16``, half the size) stores the weights in that precision — :func:`load_model` reads them
    back as float32."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_all(model_files(model, folder, dtype))


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


class ModelDenoiser:
    """One of our models as a sampler denoiser (``mask_id``, ``vocab_size``, ``eos_id``, ``max_length`` from its
    config), with key/value caching: :meth:`full` returns the logits and the cache, :meth:`span` recomputes
    a span of positions against it (docs/design.md §4, caches); and pairwise calls (:meth:`pairwise`: any
    boolean query-by-key mask and position ids, e.g. the ``wino`` sampler's verification view)."""

    def __init__(self, model: MDMTransformer) -> None:
        self.model = model
        c = model.config
        self.mask_id, self.vocab_size, self.eos_id, self.max_length = c.mask_id, c.vocab_size, c.eos_id, c.max_len
        self.stop_ids = None

    def __call__(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> Tensor:
        return self.model(tokens, attention_mask)

    def full(self, tokens: Tensor, attention_mask: "Tensor | None" = None) -> tuple[Tensor, KVCache]:
        return self.model.forward_full(tokens, attention_mask)

    def span(self, tokens: Tensor, start: int, end: int, cache: KVCache, attention_mask: "Tensor | None" = None) -> Tensor:
        """Logits of positions ``start .. end`` of ``tokens`` ``(B, T)``, every other position from ``cache``."""
        return self.model.forward_span(tokens[:, start:end], start, cache, attention_mask)

    @property
    def supports_pairwise(self) -> bool:
        """Pairwise calls are for the bidirectional denoiser (not the causal reference model)."""
        return not self.model.config.causal

    def pairwise(self, tokens: Tensor, allowed: Tensor, position_ids: Tensor) -> Tensor:
        """Logits ``(B, S, V)`` of ``tokens`` ``(B, S)`` where query ``q`` attends key ``k`` only if
        ``allowed[b, q, k]`` (``(B, S, S)`` boolean) and token ``j`` has position ``position_ids[b, j]``. The
        plain call on a canvas is the pairwise call with its padding keys refused and positions ``0 .. T - 1``."""
        return self.model(tokens, allowed.bool()[:, None], position_ids=position_ids)


def as_denoiser(model: MDMTransformer) -> ModelDenoiser:
    """The model as a sampler denoiser, with key/value caching."""
    from ..sampling import check_denoiser

    den = ModelDenoiser(model)
    check_denoiser(den)
    return den
