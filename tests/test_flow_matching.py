"""The flow_matching ConvexScheduler adapter (optional extra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("flow_matching")

from flow_matching.path import MixtureDiscreteProbPath  # noqa: E402
from flow_matching.path.scheduler import ConvexScheduler  # noqa: E402

from mdm_energy import as_convex_scheduler, parse_schedule  # noqa: E402


@pytest.mark.parametrize("spec", ["linear", "sin2", "beta:0.9,0.3", "poly:2", "table:0.1,0.4,0.8"])
def test_scheduler_output_is_kappa_alpha(spec):
    sched = as_convex_scheduler(spec)
    assert isinstance(sched, ConvexScheduler)
    s = parse_schedule(spec)
    t = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    out = sched(t)
    np.testing.assert_allclose(out.alpha_t.numpy(), s.alpha(t.numpy()), atol=1e-14)
    np.testing.assert_allclose((out.alpha_t + out.sigma_t).numpy(), 1.0, atol=1e-14)
    np.testing.assert_allclose(out.d_alpha_t.numpy(), s.alpha_dot(t.numpy()), atol=1e-12)
    np.testing.assert_allclose((out.d_alpha_t + out.d_sigma_t).numpy(), 0.0, atol=1e-14)
    assert out.alpha_t.dtype == torch.float64


@pytest.mark.parametrize("spec", ["linear", "sin2", "beta:0.9,0.3", "maskgit"])
def test_kappa_inverse_and_snr_inverse_round_trip(spec):
    sched = as_convex_scheduler(spec)
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    kappa = sched(t).alpha_t
    torch.testing.assert_close(sched.kappa_inverse(kappa), t, atol=1e-9, rtol=0)
    torch.testing.assert_close(sched.snr_inverse(kappa / (1 - kappa)), t, atol=1e-8, rtol=0)


def test_mixture_path_masks_the_fraction_alpha():
    # Monte Carlo: with a masked source, the unmasked fraction of x_t is alpha(t) (binomial s.e.).
    torch.manual_seed(0)
    spec = "beta:0.9,0.3"
    path = MixtureDiscreteProbPath(scheduler=as_convex_scheduler(spec))
    B, L, mask = 4000, 32, 7
    for t_val in (0.3, 0.8, 0.95):
        x0 = torch.full((B, L), mask)
        x1 = torch.randint(0, mask, (B, L))
        sample = path.sample(x_0=x0, x_1=x1, t=torch.full((B,), t_val))
        frac = (sample.x_t != mask).double().mean().item()
        a = parse_schedule(spec).alpha(t_val)
        se = np.sqrt(a * (1 - a) / (B * L))
        assert abs(frac - a) < 5 * se + 1e-12
