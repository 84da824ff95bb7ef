"""Tiny block-diffusion models of our own in the published layer layouts of LLaDA 2.x and SDAR (for tests).

Written here, not copied: the module and config field names follow the released checkpoints
(``LLaDA2MoeModelLM``: ``model.word_embeddings``, ``layers[i].attention.query_key_value`` / ``dense`` /
``query_layernorm`` / ``key_layernorm``, a dense MLP for the first ``first_k_dense_replace`` layers and a
sigmoid-routed MoE with ``gate.expert_bias``, ``experts`` and ``shared_experts`` after; ``SDARForCausalLM``:
Qwen3's ``model.embed_tokens``, ``self_attn.{q,k,v,o}_proj`` with ``q_norm`` / ``k_norm``), and each forward
takes what its family's takes: a 4-D attention mask (LLaDA 2.x: additive float; SDAR: boolean), ``position_ids``
and a ``DynamicCache`` as ``past_key_values`` — appended to on every call (LLaDA 2.x), or only with
``store_kv=True`` (SDAR). Logits sit at each token's own position. A trained model never proposes its mask
token; these push its logit far down (``-1e4``) so that the authors' loops, which do not ban it, agree with
ours, which do. ``tiny_eos_bias`` raises the end token's logit so that answers end early.

This file is copied into each test model folder (``auto_map``) and loaded with ``trust_remote_code``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast


class _Norm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class _MLP(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


def _rope(x, positions, dims: int, theta: float):
    """Rotate-half RoPE on the first ``dims`` features of each head (``x``: ``(B, H, S, d)``)."""
    inv = 1.0 / theta ** (torch.arange(0, dims, 2, dtype=torch.float64, device=x.device) / dims)
    ang = positions.to(torch.float64).unsqueeze(-1) * inv  # (B, S, dims / 2)
    cos, sin = torch.cat([ang, ang], -1).cos().to(x.dtype)[:, None], torch.cat([ang, ang], -1).sin().to(x.dtype)[:, None]
    rot, rest = x[..., :dims], x[..., dims:]
    half = dims // 2
    turned = torch.cat([-rot[..., half:], rot[..., :half]], -1)
    return torch.cat([rot * cos + turned * sin, rest], -1)


def _attend(q, k, v, mask, additive: bool):
    """Scaled dot-product attention with grouped key/value heads; ``mask`` ``(B, 1, S, K)``."""
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores + mask if additive else scores.masked_fill(~mask.bool(), float("-inf"))
    return torch.softmax(scores, -1) @ v


def _head(logits, config):
    logits = logits.clone()
    if getattr(config, "mask_token_id", None) is not None:
        logits[..., config.mask_token_id] -= 1e4
    if getattr(config, "tiny_eos_bias", 0.0) and getattr(config, "eos_token_id", None) is not None:
        logits[..., config.eos_token_id] += config.tiny_eos_bias
    return logits


# --- LLaDA 2.x -----------------------------------------------------------------------------------


class LLaDA2MoeConfig(PretrainedConfig):
    model_type = "llada2_moe"

    def __init__(self, vocab_size=47, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, intermediate_size=48, moe_intermediate_size=16, num_experts=4,
                 num_experts_per_tok=2, num_shared_experts=1, first_k_dense_replace=1, routed_scaling_factor=2.5,
                 partial_rotary_factor=0.5, rope_theta=600000.0, rms_norm_eps=1e-6, max_position_embeddings=256,
                 tiny_eos_bias=0.0, **kwargs):
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.num_key_value_heads = num_attention_heads, num_key_value_heads
        self.intermediate_size, self.moe_intermediate_size = intermediate_size, moe_intermediate_size
        self.num_experts, self.num_experts_per_tok, self.num_shared_experts = num_experts, num_experts_per_tok, num_shared_experts
        self.first_k_dense_replace, self.routed_scaling_factor = first_k_dense_replace, routed_scaling_factor
        self.partial_rotary_factor, self.rope_theta, self.rms_norm_eps = partial_rotary_factor, rope_theta, rms_norm_eps
        self.max_position_embeddings, self.tiny_eos_bias = max_position_embeddings, tiny_eos_bias
        super().__init__(**kwargs)


class LLaDA2MoeAttention(nn.Module):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx, self.heads, self.kv = layer_idx, config.num_attention_heads, config.num_key_value_heads
        self.d = config.hidden_size // config.num_attention_heads
        self.rope_dims = int(self.d * config.partial_rotary_factor)
        self.theta = config.rope_theta
        self.query_key_value = nn.Linear(config.hidden_size, (self.heads + 2 * self.kv) * self.d, bias=False)
        self.dense = nn.Linear(self.heads * self.d, config.hidden_size, bias=False)
        self.query_layernorm = _Norm(self.d, config.rms_norm_eps)
        self.key_layernorm = _Norm(self.d, config.rms_norm_eps)

    def forward(self, h, mask, positions, cache):
        B, S, _ = h.shape
        qkv = self.query_key_value(h).view(B, S, self.heads + 2 * self.kv, self.d)
        q, k, v = qkv.split([self.heads, self.kv, self.kv], dim=2)
        q, k, v = self.query_layernorm(q).transpose(1, 2), self.key_layernorm(k).transpose(1, 2), v.transpose(1, 2)
        q, k = _rope(q, positions, self.rope_dims, self.theta), _rope(k, positions, self.rope_dims, self.theta)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        out = _attend(q, k, v, mask, additive=True)
        return self.dense(out.transpose(1, 2).reshape(B, S, -1))


class LLaDA2MoeGate(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(config.num_experts, config.hidden_size) * 0.1)
        self.register_buffer("expert_bias", torch.zeros(config.num_experts))
        self.top_k, self.scale = config.num_experts_per_tok, config.routed_scaling_factor

    def forward(self, x):
        scores = torch.sigmoid(x @ self.weight.t())
        idx = torch.topk(scores + self.expert_bias, self.top_k, dim=-1).indices
        w = scores.gather(-1, idx)
        return idx, w / (w.sum(-1, keepdim=True) + 1e-20) * self.scale


class LLaDA2MoeSparseMoeBlock(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.gate = LLaDA2MoeGate(config)
        self.experts = nn.ModuleList(_MLP(config.hidden_size, config.moe_intermediate_size)
                                     for _ in range(config.num_experts))
        self.shared_experts = _MLP(config.hidden_size, config.moe_intermediate_size * config.num_shared_experts)

    def forward(self, x):
        idx, w = self.gate(x)
        out = self.shared_experts(x)
        for e, expert in enumerate(self.experts):
            weight = (w * (idx == e)).sum(-1, keepdim=True)
            out = out + weight * expert(x)
        return out


class LLaDA2MoeDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = _Norm(config.hidden_size, config.rms_norm_eps)
        self.attention = LLaDA2MoeAttention(config, layer_idx)
        self.post_attention_layernorm = _Norm(config.hidden_size, config.rms_norm_eps)
        self.mlp = (_MLP(config.hidden_size, config.intermediate_size) if layer_idx < config.first_k_dense_replace
                    else LLaDA2MoeSparseMoeBlock(config))

    def forward(self, h, mask, positions, cache):
        h = h + self.attention(self.input_layernorm(h), mask, positions, cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class LLaDA2MoeModel(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = _Norm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids, mask, positions, cache):
        h = self.word_embeddings(input_ids)
        for layer in self.layers:
            h = layer(h, mask, positions, cache)
        return self.norm(h)


class LLaDA2MoeModelLM(PreTrainedModel):
    config_class = LLaDA2MoeConfig
    base_model_prefix = "model"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.model = LLaDA2MoeModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None,
                **kwargs):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
        h = self.model(input_ids, attention_mask, position_ids, past_key_values)
        return CausalLMOutputWithPast(logits=_head(self.lm_head(h), self.config), past_key_values=past_key_values)


# --- SDAR ----------------------------------------------------------------------------------------


class SDARConfig(PretrainedConfig):
    model_type = "sdar"

    def __init__(self, vocab_size=47, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=8, intermediate_size=48, rope_theta=10000.0, rms_norm_eps=1e-6,
                 max_position_embeddings=256, tiny_eos_bias=0.0, **kwargs):
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.num_key_value_heads, self.head_dim = num_attention_heads, num_key_value_heads, head_dim
        self.intermediate_size, self.rope_theta, self.rms_norm_eps = intermediate_size, rope_theta, rms_norm_eps
        self.max_position_embeddings, self.tiny_eos_bias = max_position_embeddings, tiny_eos_bias
        super().__init__(**kwargs)


class SDARAttention(nn.Module):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx, self.heads, self.kv, self.d = (layer_idx, config.num_attention_heads,
                                                       config.num_key_value_heads, config.head_dim)
        self.theta = config.rope_theta
        self.q_proj = nn.Linear(config.hidden_size, self.heads * self.d, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.heads * self.d, config.hidden_size, bias=False)
        self.q_norm = _Norm(self.d, config.rms_norm_eps)
        self.k_norm = _Norm(self.d, config.rms_norm_eps)

    def forward(self, h, mask, positions, cache, store_kv):
        B, S, _ = h.shape
        q = self.q_norm(self.q_proj(h).view(B, S, self.heads, self.d)).transpose(1, 2)
        k = self.k_norm(self.k_proj(h).view(B, S, self.kv, self.d)).transpose(1, 2)
        v = self.v_proj(h).view(B, S, self.kv, self.d).transpose(1, 2)
        q, k = _rope(q, positions, self.d, self.theta), _rope(k, positions, self.d, self.theta)
        if cache is not None and store_kv:
            k, v = cache.update(k, v, self.layer_idx)
        elif cache is not None and len(cache.layers) > self.layer_idx:
            k = torch.cat([cache.layers[self.layer_idx].keys, k], dim=-2)
            v = torch.cat([cache.layers[self.layer_idx].values, v], dim=-2)
        out = _attend(q, k, v, mask, additive=False)
        return self.o_proj(out.transpose(1, 2).reshape(B, S, -1))


class SDARDecoderLayer(nn.Module):
    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = _Norm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = SDARAttention(config, layer_idx)
        self.post_attention_layernorm = _Norm(config.hidden_size, config.rms_norm_eps)
        self.mlp = _MLP(config.hidden_size, config.intermediate_size)

    def forward(self, h, mask, positions, cache, store_kv):
        h = h + self.self_attn(self.input_layernorm(h), mask, positions, cache, store_kv)
        return h + self.mlp(self.post_attention_layernorm(h))


class SDARModel(nn.Module):
    def __init__(self, config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(SDARDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = _Norm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids, mask, positions, cache, store_kv):
        h = self.embed_tokens(input_ids)
        for layer in self.layers:
            h = layer(h, mask, positions, cache, store_kv)
        return self.norm(h)


class SDARForCausalLM(PreTrainedModel):
    config_class = SDARConfig
    base_model_prefix = "model"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.model = SDARModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None,
                store_kv=False, **kwargs):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
        h = self.model(input_ids, attention_mask, position_ids, past_key_values, store_kv)
        return CausalLMOutputWithPast(logits=_head(self.lm_head(h), self.config), past_key_values=past_key_values)


class TinyNoCacheLM(LLaDA2MoeModelLM):
    """A LLaDA 2.x layout whose forward takes no ``past_key_values`` (for the refusal of the block cache)."""

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return super().forward(input_ids, attention_mask, position_ids)
