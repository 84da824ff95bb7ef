"""The Markov-chain denoiser against the exact engine on the same law, written out over every sequence."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from _stats import chi_square_pvalue
from mdm_energy.exact import ExactDenoiser
from mdm_energy.sampling import ChainDenoiser, ExactTorchDenoiser, FixedCountSampler

D = 3  # emitted ids 0..2; the mask is id 3


def random_chain(order: int, seed: int, d: int = D) -> np.ndarray:
    """A random order-k table over d ids and the mask (rows of contexts holding the mask: uniform)."""
    rng = np.random.default_rng(seed)
    P = np.zeros((d + 1,) * (order + 1))
    P[..., :d] = rng.dirichlet(np.full(d, 0.7), size=(d + 1,) * order)
    return P


def explicit_law(P: np.ndarray, prompt: list[int], n: int) -> np.ndarray:
    """q(x_1..x_n | prompt) of the chain, one product per sequence (the chain's definition, written out)."""
    k, d = P.ndim - 1, P.shape[0] - 1
    q = np.zeros((d,) * n)
    for x in itertools.product(range(d), repeat=n):
        seq, p = list(prompt) + list(x), 1.0
        for t in range(len(prompt), len(seq)):
            p *= P[tuple(seq[t - k:t + 1])]
        q[x] = p
    return q


@pytest.mark.parametrize("order,prompt", [(1, [2]), (2, [0, 2]), (2, [1, 1, 0])])
def test_posteriors_equal_the_exact_engine_on_every_pattern(order, prompt):
    """Every masked/revealed pattern of 5 generated positions, with random revealed values: the chain's
    forward-backward posteriors equal the exact engine's sums over the written-out law."""
    n = 5
    P = random_chain(order, seed=order)
    q = explicit_law(P, prompt, n)
    exact = ExactTorchDenoiser(ExactDenoiser(q / q.sum()))
    chain = ChainDenoiser(P, mask_id=D)
    rng = np.random.default_rng(0)
    rows = []
    for pattern in range(1 << n):
        x = rng.integers(0, D, size=n)
        rows.append([D if pattern >> i & 1 else int(x[i]) for i in range(n)])
    gen = torch.tensor(rows)
    canvas = torch.cat([torch.tensor(prompt).expand(len(rows), -1), gen], 1)
    ours = chain.probabilities(canvas)
    ref = exact.probabilities(gen)
    assert torch.allclose(ours[:, len(prompt):, :D], ref[..., :D], atol=1e-12)
    assert (ours[:, :len(prompt)].argmax(-1) == torch.tensor(prompt)).all()  # the prompt copied through


def test_greedy_decoding_is_token_identical_to_the_exact_engines():
    """The library's greedy low_confidence sampler, one token per call, on both denoisers of one law."""
    P, prompt, n = random_chain(2, seed=5), [1, 0], 5
    q = explicit_law(P, prompt, n)
    s = FixedCountSampler("linear", n, remasking="low_confidence", temperature=0.0)
    ours = s(ChainDenoiser(P, mask_id=D), [prompt], n).generated
    ref = s(ExactTorchDenoiser(ExactDenoiser(q / q.sum())), None, n).generated
    assert torch.equal(ours, ref)


def test_random_order_sampling_follows_the_chain():
    """Random order at temperature 1 on exact posteriors draws the law itself: chi-square against the
    written-out q(x | prompt) (p > 1e-3)."""
    P, prompt, n = random_chain(1, seed=3), [2], 4
    q = explicit_law(P, prompt, n)
    s = FixedCountSampler("linear", n, remasking="random", temperature=1.0)
    out = s(ChainDenoiser(P, mask_id=D), [prompt], n, batch_size=20_000, generator=torch.Generator().manual_seed(7))
    assert chi_square_pvalue(out.generated.numpy(), q / q.sum()) > 1e-3


def test_fit_counts_transitions_with_additive_smoothing():
    """fit's table against counts made one transition at a time (positions from ``start`` on)."""
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, D, (40, 9), generator=g)
    delta, start = 0.5, 3
    chain = ChainDenoiser.fit(windows, order=2, mask_id=D, start=start, smoothing=delta)
    counts = Counter(tuple(int(v) for v in row[t - 2:t + 1]) for row in windows for t in range(start, 9))
    for ctx in itertools.product(range(D + 1), repeat=2):
        total = sum(counts[ctx + (c,)] for c in range(D))
        for c in range(D + 1):
            want = 0.0 if c == D else (counts[ctx + (c,)] + delta) / (total + delta * D)
            assert chain.table.reshape((D + 1,) * 3)[ctx + (c,)].item() == pytest.approx(want, abs=1e-12)


def test_a_context_of_probability_zero_gets_the_uniform_law():
    """0, masked, 2 where 0 is always followed by 1 and 1 never by 2: no completion has probability > 0."""
    P = random_chain(1, seed=1)
    P[0, :D] = [0.0, 1.0, 0.0]
    P[1, :D] = [0.5, 0.5, 0.0]
    p = ChainDenoiser(P, mask_id=D).probabilities(torch.tensor([[0, D, 2]]))
    assert torch.allclose(p[0, 1, :D], torch.full((D,), 1 / D, dtype=torch.float64))


@pytest.mark.parametrize("bad,match", [
    (lambda P: P[..., :1], r"shape \(V,\)\*\(k\+1\)"),
    (lambda P: P * 2, "sum to 1"),
    (lambda P: np.where(np.arange(D + 1) == D, 0.1, P), "mask id 3"),
    (lambda P: -P, "non-negative"),
])
def test_bad_tables_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        ChainDenoiser(bad(random_chain(1, seed=0)), mask_id=D)


def test_bad_fits_and_canvases_are_refused():
    w = torch.zeros((4, 6), dtype=torch.long)
    with pytest.raises(ValueError, match="order must be an integer >= 1, got 0"):
        ChainDenoiser.fit(w, order=0, mask_id=D)
    with pytest.raises(ValueError, match="smoothing must be a positive number, got 0"):
        ChainDenoiser.fit(w, order=1, mask_id=D, smoothing=0)
    with pytest.raises(ValueError, match="start must lie in"):
        ChainDenoiser.fit(w, order=2, mask_id=D, start=1)
    with pytest.raises(ValueError, match="transition entries"):
        ChainDenoiser.fit(w, order=3, mask_id=99)
    with pytest.raises(ValueError, match="position 0 is masked"):
        ChainDenoiser(random_chain(1, seed=0), mask_id=D).probabilities(torch.tensor([[D, 0, 1]]))
