"""The exact law of the uniform-noise fixed-count rule: against a brute-force enumeration of every canvas path
(written here with plain loops), and against Monte Carlo of the torch loop (:func:`decode_uniform`) driven by the
same exact denoiser."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mdm_energy.exact import kl_divergence, load_distribution, tv_distance
from mdm_energy.exact.distributions import ExplicitDistribution, check_law
from mdm_energy.exact.uniform import law_uniform_fixed_count, uniform_marginals
from mdm_energy.sampling.uniform import FixedCount, UniformSettings, decode_uniform
from mdm_energy.schedules import parse_schedule


def random_law(n: int, d: int, seed: int) -> ExplicitDistribution:
    w = np.random.default_rng(seed).random((d,) * n) ** 3  # uneven: no two positions share an entropy
    return ExplicitDistribution(f"random:{n},{d},{seed}", check_law(w))


def brute_force(p: np.ndarray, spec: str, steps: int, output: str) -> dict:
    """Every path of canvases, one position at a time, with the posterior summed by hand."""
    n, d = p.ndim, p.shape[0]
    seqs = list(itertools.product(range(d), repeat=n))
    C = list(itertools.accumulate(parse_schedule(spec).counts(n, steps).tolist()))

    def marginals(y, alpha):
        out = [[0.0] * d for _ in range(n)]
        for x in seqs:
            w = p[x]
            for i in range(n):
                w *= alpha * (y[i] == x[i]) + (1 - alpha) / d
            for i in range(n):
                out[i][x[i]] += w
        return [[v / sum(row) for v in row] for row in out]

    law = {y: 1.0 / len(seqs) for y in seqs}
    result = {x: 0.0 for x in seqs}
    for k in range(1, steps + 1):
        alpha = (C[k - 2] if k > 1 else 0) / n
        nxt = {y: 0.0 for y in seqs}
        for y, mass in law.items():
            if mass == 0:
                continue
            m = marginals(y, alpha)
            if k == steps and output == "argmax":
                result[tuple(max(range(d), key=lambda v: (m[i][v], -v)) for i in range(n))] += mass
                continue
            H = [round(-sum(v * math.log(v) for v in m[i] if v > 0), 12) for i in range(n)]
            keep = set(sorted(range(n), key=lambda i: (H[i], i))[:C[k - 1]])
            for z in seqs:
                w = mass
                for i in range(n):
                    w *= m[i][z[i]] if i in keep else 1 / d
                nxt[z] += w
        law = nxt
    if output == "sample":
        result = law
    return result


@pytest.mark.parametrize("spec, steps, output", [("linear", 3, "sample"), ("beta:0.9,0.3", 4, "sample"),
                                                 ("linear", 2, "argmax"), ("sin2", 5, "argmax")])
def test_exact_law_equals_brute_force(spec, steps, output):
    dist = random_law(3, 2, 1)
    law = law_uniform_fixed_count(dist, spec, steps, output)
    want = brute_force(dist.probs, spec, steps, output)
    np.testing.assert_allclose([law[x] for x in want], list(want.values()), atol=1e-12)
    assert law.sum() == pytest.approx(1.0)


class ExactUniformDenoiser:
    """The exact posterior under the uniform forward process, as a :class:`UniformDenoiser`: at the ``k``-th call
    of a canvas it is told ``alpha = C_{k-1} / n`` (what the exact law assumes); the prompt is ignored."""

    def __init__(self, dist: ExplicitDistribution, spec: str, steps: int) -> None:
        self.vocab_size, self.canvas_length = dist.d, dist.n
        C = [0] + np.cumsum(parse_schedule(spec).counts(dist.n, steps)).tolist()
        self.tables = [torch.tensor(np.log(np.clip(uniform_marginals(dist, C[k] / dist.n), 1e-300, None)))
                       for k in range(steps)]
        self.place = torch.tensor([dist.d ** (dist.n - 1 - i) for i in range(dist.n)])

    def open(self, tokens, attention_mask):
        outer = self

        class Context:
            calls = 0

            def logits(self, canvas, previous):
                table = outer.tables[self.calls]
                self.calls += 1
                return table[(canvas * outer.place).sum(-1)].float()

            def extend(self, tokens):
                raise AssertionError("one canvas only")

        return Context()


@pytest.mark.parametrize("spec, steps", [("linear", 3), ("beta:0.9,0.3", 5)])
def test_torch_loop_follows_the_exact_law(spec, steps):
    dist = random_law(3, 3, 2)
    den = ExactUniformDenoiser(dist, spec, steps)
    settings = UniformSettings(steps=steps, t_min=None, t_max=None, stability_threshold=None,
                               confidence_threshold=None)
    rows = 20000
    out = decode_uniform(den, [[0]] * rows, dist.n, FixedCount(parse_schedule(spec), "entropy"), settings,
                         generator=torch.Generator().manual_seed(0))
    idx = (out.generated * den.place).sum(-1).numpy()
    empirical = np.bincount(idx, minlength=dist.d ** dist.n) / rows
    exact = law_uniform_fixed_count(dist, spec, steps, "argmax").reshape(-1)
    assert tv_distance(empirical, exact) < 0.02
    other = law_uniform_fixed_count(dist, "linear" if spec != "linear" else "beta:0.9,0.3", steps, "argmax")
    assert tv_distance(exact, other) > 0.05  # the check tells schedules apart


def test_more_steps_do_not_make_the_kl_vanish():
    """Under uniform noise the output is a mixture of product laws: its KL stays away from 0 at any N."""
    dist = load_distribution("markov:4,3,0")
    kls = [kl_divergence(dist.probs, law_uniform_fixed_count(dist, "linear", N)) for N in (1, 2, 4, 8, 16, 32)]
    assert min(kls) > 0.05 and kls[-1] > kls[2]  # not monotone: past N = n more steps hurt here
