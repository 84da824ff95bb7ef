"""A tiny LLaDA-like masked diffusion model and a character tokenizer, built offline for tests.

The model is bidirectional (no causal mask), returns ``.logits`` and round-trips through
``save_pretrained``/``from_pretrained``; saved with ``register_for_auto_class`` it loads back through
``AutoModel.from_pretrained(path, trust_remote_code=True)`` exactly as LLaDA's remote code does.
"""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789 +=?:.\n")
SPECIALS = ["<pad>", "<unk>", "<eos>", "<mask>"]


class PositionFromMask(torch.nn.Module):
    """A tiny bidirectional transformer (a plain ``forward(tokens, attention_mask)``, vocabulary ``vocab``) whose
    positions count from the first real token, so that a left-padded row (with its attention mask) gives the
    same logits as the same row unpadded. ``end_bias`` is added to the head's bias at ``end_ids``, so that the
    model often proposes those tokens (for the end-of-sequence controls)."""

    def __init__(self, seed: int = 0, d: int = 32, vocab: int = 30, end_bias: float = 0.0, end_ids: tuple = ()) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(64, d)
        layer = torch.nn.TransformerEncoderLayer(d, 2, 2 * d, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)
        with torch.no_grad():  # large weights: sharp, context-dependent predictions, so the order of commits matters
            self.tok.weight.normal_(0, 2.0)
            self.pos.weight.normal_(0, 2.0)
            self.head.weight.mul_(6.0)
            if end_ids:
                self.head.bias[list(end_ids)] += end_bias
        self.double().eval()

    def forward(self, tokens: torch.Tensor, attention_mask: "torch.Tensor | None" = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(tokens, dtype=torch.bool)
        pos = (attention_mask.long().cumsum(1) - 1).clamp_min(0)
        h = self.tok(tokens) + self.pos(pos)
        return self.head(self.enc(h, src_key_padding_mask=~attention_mask.bool()))


class TinyMDMConfig(PretrainedConfig):
    model_type = "tiny-llada"

    def __init__(self, vocab_size=48, hidden_size=32, num_layers=2, num_heads=2, max_position_embeddings=96,
                 mask_token_id=3, eos_token_id=2, pad_token_id=0, **kwargs):
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)
        self.vocab_size, self.hidden_size, self.num_layers, self.num_heads = vocab_size, hidden_size, num_layers, num_heads
        self.max_position_embeddings, self.mask_token_id = max_position_embeddings, mask_token_id


class TinyDreamConfig(TinyMDMConfig):
    model_type = "tiny-dream"

    def __init__(self, **kwargs):  # explicit: transformers 5 does not inherit a config's __init__ implicitly
        super().__init__(**kwargs)


class TinyMDM(PreTrainedModel):
    config_class = TinyMDMConfig

    def __init__(self, config):
        super().__init__(config)
        self.emb = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos = torch.nn.Embedding(config.max_position_embeddings, config.hidden_size)
        layer = torch.nn.TransformerEncoderLayer(config.hidden_size, config.num_heads, 2 * config.hidden_size,
                                                 dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.emb(input_ids) + self.pos(pos)
        pad = None if attention_mask is None else ~attention_mask.bool()
        return MaskedLMOutput(logits=self.head(self.encoder(h, src_key_padding_mask=pad)))


class TinyDream(TinyMDM):
    """Dream's interface: ``attention_mask`` may be Dream's pairwise boolean ``(B, 1, T, T)`` mask (True = may
    attend) and ``position_ids`` its positions counted from each row's first real token."""

    config_class = TinyDreamConfig

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kwargs):
        B, T = input_ids.shape
        pos = position_ids if position_ids is not None else torch.arange(T, device=input_ids.device).expand(B, T)
        h = self.emb(input_ids) + self.pos(pos)
        mask = None
        if attention_mask is not None:
            allowed = attention_mask[:, 0] if attention_mask.dim() == 4 else attention_mask.bool()[:, None, :].expand(B, T, T)
            eye = torch.eye(T, dtype=torch.bool, device=input_ids.device)
            mask = (~allowed.bool() & ~eye).repeat_interleave(self.config.num_heads, dim=0)  # True = blocked
        return MaskedLMOutput(logits=self.head(self.encoder(h, mask=mask)))


class TinyCachedConfig(TinyMDMConfig):
    model_type = "tiny-cached"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class TinyCachedMDM(PreTrainedModel):
    """A tiny bidirectional model with Fast-dLLM's cache interface, written from its description:
    ``use_cache=True`` returns every layer's keys and values ``(B, H, T, d)``; ``past_key_values`` alone (keys
    of the first ``P`` positions) makes the input positions ``P, P+1, …``; with ``replace_position`` (a
    boolean ``(B, T)`` mask) the input is the marked span of a sequence whose every other position is read
    from ``past_key_values``."""

    config_class = TinyCachedConfig

    def __init__(self, config):
        super().__init__(config)
        d, n = config.hidden_size, config.num_layers
        self.emb = torch.nn.Embedding(config.vocab_size, d)
        self.pos = torch.nn.Embedding(config.max_position_embeddings, d)
        self.norm = torch.nn.ModuleList(torch.nn.LayerNorm(d) for _ in range(n))
        self.qkv = torch.nn.ModuleList(torch.nn.Linear(d, 3 * d) for _ in range(n))
        self.out = torch.nn.ModuleList(torch.nn.Linear(d, d) for _ in range(n))
        self.ff = torch.nn.ModuleList(torch.nn.Sequential(torch.nn.LayerNorm(d), torch.nn.Linear(d, 2 * d), torch.nn.GELU(),
                                                          torch.nn.Linear(2 * d, d)) for _ in range(n))
        self.head = torch.nn.Linear(d, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=None, replace_position=None,
                **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        B, S = input_ids.shape
        if replace_position is not None:
            where = replace_position[0].nonzero().flatten()
            start = int(where[0])
        else:
            start = 0 if past_key_values is None else past_key_values[0][0].shape[2]
        h = self.emb(input_ids) + self.pos(torch.arange(start, start + S, device=input_ids.device))
        H = self.config.num_heads
        presents = []
        for i in range(self.config.num_layers):
            q, k, v = self.qkv[i](self.norm[i](h)).view(B, S, 3, H, -1).permute(2, 0, 3, 1, 4)
            if past_key_values is not None:
                pk, pv = past_key_values[i]
                if replace_position is None:
                    k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
                else:
                    pk, pv = pk.clone(), pv.clone()
                    pk[:, :, where], pv[:, :, where] = k, v
                    k, v = pk, pv
            presents.append((k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            h = h + self.out[i](a.transpose(1, 2).reshape(B, S, -1))
            h = h + self.ff[i](h)
        return CausalLMOutputWithPast(logits=self.head(h), past_key_values=tuple(presents) if use_cache else None)


class TinyCachedDreamLayout(TinyCachedMDM):
    """The same model with the cache layout of Fast-dLLM's Dream: keys and values ``(B, T, D)`` (heads not yet
    split), and a span call on a full cache needs ``dual_cache=True`` beside ``replace_position``."""

    def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=None, replace_position=None,
                dual_cache=False, **kwargs):
        if replace_position is not None and not dual_cache:
            raise ValueError("replace_position needs dual_cache=True")
        H = self.config.num_heads

        def split(t):  # (B, T, D) -> (B, H, T, d)
            return t.view(t.shape[0], t.shape[1], H, -1).transpose(1, 2)

        def merge(t):  # (B, H, T, d) -> (B, T, D)
            return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)

        past = None if past_key_values is None else [(split(k), split(v)) for k, v in past_key_values]
        out = super().forward(input_ids, past_key_values=past, use_cache=use_cache, replace_position=replace_position)
        if use_cache:
            out.past_key_values = tuple((merge(k), merge(v)) for k, v in out.past_key_values)
        return out


def tiny_cached_model(seed: int = 0, dream_layout: bool = False) -> TinyCachedMDM:
    torch.manual_seed(seed)
    cls = TinyCachedDreamLayout if dream_layout else TinyCachedMDM
    return cls(TinyCachedConfig(vocab_size=len(SPECIALS) + len(CHARS))).eval()


def tiny_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>",
                                   mask_token="<mask>")


def save_tiny(path, dream: bool = False, seed: int = 0):
    """Save a randomly initialised tiny model (with its code) and the tokenizer to ``path``."""
    torch.manual_seed(seed)
    cls, cfg = (TinyDream, TinyDreamConfig) if dream else (TinyMDM, TinyMDMConfig)
    cfg.register_for_auto_class()
    cls.register_for_auto_class("AutoModel")
    model = cls(cfg(vocab_size=len(SPECIALS) + len(CHARS)))
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return model


def scale_weights(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Multiply every parameter of ``model`` but the norms' by ``scale``, in place (larger weights: sharper,
    context-dependent predictions, so that the samplers' thresholds are crossed). Returns ``model``."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(scale)
    return model


def tiny_transformer(seed: int, *, vocab: int, mask_id: int, eos_id: int, pad_id: int, scale: float = 8.0,
                     layers: int = 2, max_len: int = 64):
    """Our ``MDMTransformer``, tiny (d_model 32, 2 heads, d_ff 64, ``layers`` layers) and random (seeded), in
    float64 and in eval mode, its weights scaled by ``scale`` (:func:`scale_weights`)."""
    from mdm_energy.models import MDMConfig, MDMTransformer

    torch.manual_seed(seed)
    model = MDMTransformer(MDMConfig(vocab_size=vocab, mask_id=mask_id, eos_id=eos_id, pad_id=pad_id, max_len=max_len,
                                     d_model=32, n_layers=layers, n_heads=2, d_ff=64)).double().eval()
    return scale_weights(model, scale)
