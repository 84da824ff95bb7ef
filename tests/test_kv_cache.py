"""Key/value caching of block-wise decoding (Fast-dLLM's prefix and dual caches).

References: the model's own ``nn.TransformerEncoderLayer`` modules (their ``forward`` and their
``nn.MultiheadAttention``), run here position by position, and the uncached sampler. A span call must
equal a full call when nothing changed, and equal the stale-cache computation written out here when
something did; ``cache_refresh=1`` must give the uncached run token for token.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mdm_energy.integrations.huggingface import CachingHFDenoiser, HFDenoiser, caching_support, denoiser_for
from mdm_energy.models import MDMConfig, MDMTransformer, as_denoiser
from mdm_energy.sampling import make_sampler
from _tiny_mdm import SPECIALS, TinyMDM, TinyMDMConfig, tiny_cached_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
V, MASK, EOS = 20, 19, 18


def _model(seed: int = 0, causal: bool = False) -> MDMTransformer:
    torch.manual_seed(seed)
    model = MDMTransformer(MDMConfig(vocab_size=V, mask_id=MASK, eos_id=EOS, pad_id=0, max_len=48, d_model=32,
                                     n_layers=3, n_heads=4, d_ff=64, causal=causal)).eval()
    with torch.no_grad():  # larger weights than the initialisation's, so positions really interact
        for p in model.parameters():
            p.mul_(4.0) if p.ndim > 1 else None
    return model


def _reference_hidden(model: MDMTransformer, tokens: torch.Tensor, attention_mask=None) -> list[torch.Tensor]:
    """The input of every layer and the final hidden state, by the layers' own ``forward``."""
    T = tokens.shape[1]
    h = model.tok(tokens) + model.pos(torch.arange(T))
    pad = None if attention_mask is None else ~attention_mask.bool()
    out = [h]
    for layer in model.encoder.layers:
        h = layer(h, src_key_padding_mask=pad)
        out.append(h)
    return out


def _stale_span_reference(model, old, new, start, end):
    """Logits of positions ``start .. end`` of ``new`` when every other position's keys and values are those
    of a full pass over ``old``: each layer's attention reads the old layer inputs outside the span."""
    old_h = _reference_hidden(model, old)
    h = model.tok(new[:, start:end]) + model.pos(torch.arange(start, end))
    for i, layer in enumerate(model.encoder.layers):
        mix = old_h[i].clone()
        mix[:, start:end] = h
        q, kv = layer.norm1(h), layer.norm1(mix)
        h = h + layer.self_attn(q, kv, kv, need_weights=False)[0]
        h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
    return model.norm(h) @ model.tok.weight.T


def test_the_model_forward_matches_its_layers():
    model = _model()
    x = torch.randint(0, V, (3, 40))
    am = torch.ones_like(x, dtype=torch.bool)
    am[0, :5] = False
    for mask in (None, am):
        want = model.norm(_reference_hidden(model, x, mask)[-1]) @ model.tok.weight.T
        torch.testing.assert_close(model(x, mask), want, atol=2e-5, rtol=1e-4)


def test_span_call_equals_the_full_call_when_nothing_changed():
    model = _model()
    den = as_denoiser(model)
    x = torch.randint(0, V, (2, 40))
    full, cache = den.full(x)
    torch.testing.assert_close(full, model(x))
    for start, end in ((8, 16), (8, 40), (0, 40), (32, 40)):
        torch.testing.assert_close(den.span(x, start, end, cache), full[:, start:end], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("start,end", [(8, 16), (8, 40), (24, 32)])
def test_span_call_on_changed_tokens_reads_the_stale_cache(start, end):
    model = _model(1)
    den = as_denoiser(model)
    old = torch.randint(0, V, (2, 40))
    new = old.clone()
    new[:, start:end] = torch.randint(0, V, (2, end - start))
    _, cache = den.full(old)
    got = den.span(new, start, end, cache)
    torch.testing.assert_close(got, _stale_span_reference(model, old, new, start, end), atol=3e-5, rtol=1e-4)
    fresh = model(new)[:, start:end]
    assert (got - fresh).abs().max() > 1e-3  # stale keys really are used: the approximation is not exact


def test_cache_rows_select_the_batch_rows():
    model = _model()
    den = as_denoiser(model)
    x = torch.randint(0, V, (4, 24))
    _, cache = den.full(x)
    sub = cache.rows(torch.tensor([1, 3]))
    torch.testing.assert_close(den.span(x[[1, 3]], 8, 16, sub), model(x[[1, 3]])[:, 8:16], atol=2e-5, rtol=1e-4)


class _Counting:
    """Wraps a caching denoiser and counts its full and span calls."""

    def __init__(self, den):
        self.den, self.full_calls, self.span_calls = den, 0, 0
        self.mask_id, self.vocab_size, self.eos_id = den.mask_id, den.vocab_size, den.eos_id
        self.max_length, self.stop_ids = den.max_length, getattr(den, "stop_ids", None)

    def __call__(self, x, attention_mask=None):
        return self.den(x, attention_mask)

    def full(self, x, attention_mask=None):
        self.full_calls += 1
        return self.den.full(x, attention_mask)

    def span(self, x, start, end, cache, attention_mask=None):
        self.span_calls += 1
        return self.den.span(x, start, end, cache, attention_mask)


SAMPLERS = [
    ("fixed", {"steps": 12, "schedule": "sine"}),
    ("fixed", {"steps": 12, "remasking": "random", "temperature": 1.0}),
    ("threshold", {"threshold": 0.3}),
    ("factor", {"factor": 1.0}),
    ("dream", {"steps": 12, "alg": "entropy"}),
]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("name,options", SAMPLERS)
def test_refresh_every_call_gives_the_uncached_run_token_for_token(mode, name, options):
    model = _model(2)
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8]]
    runs = []
    for cache in ({}, {"cache": mode, "cache_refresh": 1}):
        s = make_sampler(name, block_length=6, **options, **cache)
        runs.append(s(as_denoiser(model), prompts, 24, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert torch.equal(runs[0].nfe, runs[1].nfe)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("refresh,per_block", [(None, 1), (1, 4), (2, 2), (3, 2)])
def test_full_calls_happen_at_block_starts_and_every_refresh(mode, refresh, per_block):
    den = _Counting(as_denoiser(_model()))
    s = make_sampler("fixed", steps=16, block_length=8, cache=mode, cache_refresh=refresh)
    out = s(den, [1, 2, 3], 32)
    assert out.calls == 16 and den.full_calls + den.span_calls == 16
    assert den.full_calls == 4 * per_block  # 4 calls per block: full at the block's calls 0, k, 2k, ... (refresh k)
    assert (out.generated != MASK).all()


def test_padded_batches_cfg_and_early_stop_work_with_the_cache():
    model = _model(3)
    prompts = [[1, 2], [3, 4, 5, 6, 7]]
    for extra in ({"cfg_scale": 1.0}, {"stop_at_eos": True}, {}):
        outs = [make_sampler("fixed", steps=12, block_length=4, **extra, **cache)(
            as_denoiser(model), prompts, 12) for cache in ({}, {"cache": "dual", "cache_refresh": 1})]
        assert torch.equal(outs[0].tokens, outs[1].tokens), extra
        cached = make_sampler("fixed", steps=12, block_length=4, cache="dual", **extra)(as_denoiser(model), prompts, 12)
        assert (cached.generated != MASK).all()


def test_the_cache_changes_little_on_a_trained_checkpoint():
    """The committed countdown model: the dual cache (refreshed at each block start) agrees with the uncached
    run on most generated positions."""
    from mdm_energy.models import load_model
    from mdm_energy.tasks import get_task

    task, model = get_task("countdown"), load_model(ROOT / "checkpoints" / "countdown")
    prompts = task.prompts(task.examples("valid", 64, seed=11))
    outs = {}
    for cache in ("none", "dual"):
        s = make_sampler("fixed", steps=task.gen_len, block_length=task.gen_len // 3, cache=cache)
        outs[cache] = s(as_denoiser(model), prompts, task.gen_len)
    same = (outs["none"].generated == outs["dual"].generated).float().mean().item()
    assert same > 0.8


# --- Hugging Face models in Fast-dLLM's cache layout ----------------------------------------------------------

def test_caching_support_needs_replace_position():
    assert caching_support(tiny_cached_model())
    assert not caching_support(TinyMDM(TinyMDMConfig(vocab_size=len(SPECIALS) + 44)))
    assert isinstance(denoiser_for(tiny_cached_model(), family="llada", mask_id=3), CachingHFDenoiser)


@pytest.mark.parametrize("shift,dream_layout", [(False, False), (True, False), (True, True)])
def test_hf_span_calls_equal_full_calls_when_nothing_changed(shift, dream_layout):
    den = CachingHFDenoiser(tiny_cached_model(dream_layout=dream_layout), mask_id=3, shift_logits=shift)
    x = torch.randint(4, 40, (2, 30))
    full, cache = den.full(x)
    torch.testing.assert_close(full, den(x))
    for start, end in ((10, 20), (10, 30), (0, 30), (0, 10)):
        torch.testing.assert_close(den.span(x, start, end, cache), full[:, start:end], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("shift,dream_layout", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_hf_cached_refresh_one_is_the_uncached_run(shift, dream_layout, mode):
    model = tiny_cached_model(1, dream_layout=dream_layout)
    prompts = [[10, 11, 12, 13, 14]] * 2
    outs = []
    for cache in ({}, {"cache": mode, "cache_refresh": 1}, {"cache": mode}):
        s = make_sampler("fixed", steps=8, block_length=4, temperature=1.0, **cache)
        outs.append(s(CachingHFDenoiser(model, mask_id=3, shift_logits=shift), prompts, 16,
                      generator=torch.Generator().manual_seed(0)))
    assert torch.equal(outs[0].tokens, outs[1].tokens)
    assert (outs[2].generated != 3).all()


def test_hf_cache_refuses_padding():
    den = CachingHFDenoiser(tiny_cached_model(), mask_id=3)
    with pytest.raises(ValueError, match="one length"):
        make_sampler("fixed", steps=4, block_length=4, cache="prefix")(den, [[10, 11], [12]], 8)


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options,needle", [
    ({"cache": "full", "block_length": 4}, "unknown cache mode 'full'"),
    ({"cache": "dual"}, "needs a block_length"),
    ({"cache": "dual", "block_length": 4, "cache_refresh": 0}, "cache_refresh must be a positive integer, got 0"),
    ({"cache_refresh": 2}, "give cache='prefix' or 'dual' too"),
])
def test_bad_cache_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        make_sampler("fixed", steps=8, **options)


def test_a_model_without_a_cache_is_named():
    den = HFDenoiser(TinyMDM(TinyMDMConfig(vocab_size=len(SPECIALS) + 44)), mask_id=3)
    with pytest.raises(ValueError, match="TinyMDM has none"):
        make_sampler("fixed", steps=4, block_length=4, cache="dual")(den, [10, 11], 8)


def test_the_causal_reference_model_has_no_cache():
    with pytest.raises(ValueError, match="bidirectional"):
        as_denoiser(_model(causal=True)).full(torch.zeros((1, 4), dtype=torch.long))


def test_cache_flags_on_the_command_line(capsys):
    from mdm_energy.cli import main

    ckpt = str(ROOT / "checkpoints" / "countdown")
    base = ["eval", "--task", "countdown", "--checkpoint", ckpt, "-N", "24", "--limit", "4"]
    assert main([*base, "--cache", "dual"]) == 2
    assert "needs a block_length" in capsys.readouterr().err
    assert main([*base, "--cache", "dual", "--block-length", "8", "--cache-refresh", "0"]) == 2
    assert "--cache-refresh" in capsys.readouterr().err
    assert main([*base, "--cache", "dual", "--block-length", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 24
