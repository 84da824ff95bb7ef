"""Sampler overhead benchmark (``mdm-energy bench-sampler``).

Three numbers at one shape ``(B, L, V)``, all measured in the same process:

* ``ms_per_step`` — a :class:`FixedCountSampler` run against a denoiser that returns fixed random
  logits (so the model costs nothing), divided by the number of steps: the sampler's own overhead;
* ``model_ms_per_call`` — one forward pass of a 4-layer, d = 256 bidirectional transformer with
  vocabulary V at the same shape: what the overhead is compared with;
* ``naive_ms_per_step`` — a straightforward LLaDA-style step: a float64 softmax over every position,
  float64 Gumbel noise over the whole vocabulary, and a per-row top-k loop.
"""

from __future__ import annotations

import statistics
import time

import torch

from .denoiser import CallableDenoiser
from .fixed import FixedCountSampler

__all__ = ["naive_llada_step", "tiny_transformer", "check_bench_size", "bench_sampler"]


def naive_llada_step(x: torch.Tensor, logits: torch.Tensor, mask_id: int, count: int, temperature: float,
                     remasking: str, generator: torch.Generator) -> torch.Tensor:
    """One step the way LLaDA's reference ``generate`` does it (the baseline, not used for sampling)."""
    mask_index = x == mask_id
    if temperature > 0:
        logits64 = logits.to(torch.float64)
        noise = torch.rand(logits64.shape, dtype=torch.float64, generator=generator)
        noisy = logits64.exp() / (-torch.log(noise)) ** temperature
    else:
        noisy = logits
    x0 = noisy.argmax(dim=-1)
    if remasking == "low_confidence":
        p = torch.softmax(logits.to(torch.float64), dim=-1)
        x0_p = p.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    else:
        x0_p = torch.rand(x0.shape, dtype=torch.float64, generator=generator)
    x0 = torch.where(mask_index, x0, x)
    confidence = torch.where(mask_index, x0_p, torch.tensor(float("-inf"), dtype=torch.float64))
    transfer = torch.zeros_like(x0, dtype=torch.bool)
    for j in range(confidence.shape[0]):
        k = min(count, int(mask_index[j].sum()))
        if k:
            transfer[j, torch.topk(confidence[j], k=k).indices] = True
    return torch.where(transfer, x0, x)


def tiny_transformer(vocab: int, d: int = 256, layers: int = 4) -> torch.nn.Module:
    """A 4-layer, d = 256 bidirectional transformer with a vocabulary-sized output head."""

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab + 1, d)
            layer = torch.nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True)
            self.enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = torch.nn.Linear(d, vocab)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.enc(self.emb(tokens)))

    return Model().eval()


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def check_bench_size(batch: int, length: int, vocab: int) -> None:
    """Refuse a shape whose logits, float64 copies and model activations (attention included) cannot fit."""
    from ..limits import check_memory

    logits = 8 * batch * length * vocab * 4  # the fixed logits and the naive step's float64 copies
    model = 4 * batch * length * 256 * 40 + 4 * batch * 4 * length * length * 3  # activations, attention maps
    check_memory(logits + model, f"benchmarking B={batch}, L={length}, V={vocab}")


def bench_sampler(batch: int, length: int, vocab: int, steps: int, temperature: float, remasking: str = "low_confidence",
                  naive_steps: int = 2, seed: int = 0) -> dict:
    """Run the three measurements and return them with the ratios the targets are stated in."""
    check_bench_size(batch, length, vocab)
    g = torch.Generator().manual_seed(seed)
    mask_id = vocab - 1
    fixed = torch.randn(batch, length, vocab, generator=g)
    den = CallableDenoiser(lambda tokens: fixed, mask_id=mask_id, vocab_size=vocab)
    sampler = FixedCountSampler("linear", steps, remasking=remasking, temperature=temperature)
    sampler(den, None, length, batch_size=batch, generator=torch.Generator().manual_seed(seed))  # warm-up
    t0 = time.perf_counter()
    sampler(den, None, length, batch_size=batch, generator=torch.Generator().manual_seed(seed + 1))
    ms_per_step = 1000 * (time.perf_counter() - t0) / steps

    model = tiny_transformer(vocab)
    tokens = torch.randint(0, vocab, (batch, length), generator=g)
    with torch.no_grad():
        model(tokens)
        model_ms = _median_ms(lambda: model(tokens), 3)

    x = torch.full((batch, length), mask_id, dtype=torch.long)
    count = max(1, length // steps)
    naive_ms = _median_ms(lambda: naive_llada_step(x, fixed, mask_id, count, temperature, remasking, g), naive_steps)
    return {
        "batch": batch,
        "length": length,
        "vocab": vocab,
        "steps": steps,
        "temperature": temperature,
        "remasking": remasking,
        "threads": torch.get_num_threads(),
        "ms_per_step": ms_per_step,
        "model_ms_per_call": model_ms,
        "naive_ms_per_step": naive_ms,
        "overhead_vs_model": ms_per_step / model_ms,
        "naive_vs_model": naive_ms / model_ms,
        "speedup_vs_naive": naive_ms / ms_per_step,
    }
