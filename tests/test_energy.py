"""Energies against closed forms, direct quadrature in t, an optimiser, and the brute-force constants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special

from mdm_energy.energy import (
    brute_force_energies,
    check_brute_force_size,
    discrete_energy,
    discrete_energy_from_grid,
    energy_J,
    fisher_rao_distance,
    geodesic_alpha_grid,
    marginal_flux,
    random_distribution,
    state_sums,
    token_path,
)
from mdm_energy.schedules import parse_schedule

PI2 = math.pi**2


# --- J[alpha; gamma] -----------------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.1, 0.3, 0.5, 1.0, 1.7, 3.0])
@pytest.mark.parametrize("b", [0.1, 0.5, 1.0, 2.2, 3.0])
def test_geodesic_pairs_cost_exactly_pi_squared(a, b):
    assert energy_J(f"beta:{a},{b}") == pytest.approx(PI2, rel=1e-10)


@pytest.mark.parametrize("spec", ["linear", "sin2", "sine", "maskgit", "poly:0.3", "poly:4", "table:0.2,0.2,0.7"])
def test_every_schedule_with_its_own_gamma_is_optimal(spec):
    assert energy_J(spec) == pytest.approx(PI2, rel=1e-10)


def test_sin2_against_linear_gamma_is_pi4_over_8():
    # J = pi^2 ∫ 1/gamma_dot dt with gamma = (2/pi) arcsin sqrt t: pi^3 ∫ sqrt(t(1-t)) dt = pi^4/8
    assert energy_J("sin2", "beta:0.5,0.5") == pytest.approx(math.pi**4 / 8, rel=1e-10)
    assert energy_J("sin2", "linear") == pytest.approx(12.176, abs=1e-3)


@pytest.mark.parametrize("a,b", [(0.1, 0.1), (0.5, 1.5), (1.5, 0.3), (1.9, 1.0), (0.05, 0.05), (1.2, 1.8)])
def test_sin2_against_beta_gamma_closed_form(a, b):
    # alpha = sin2 has theta = pi t / 2, so J = pi^2 ∫ dt / pdf(t) = pi^2 B(a,b) B(2-a, 2-b)
    expected = PI2 * special.beta(a, b) * special.beta(2 - a, 2 - b)
    assert energy_J("sin2", f"beta:{a},{b}") == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize(
    "alpha,gamma",
    [("linear", "sin2"), ("linear", "beta:1,1"), ("sin2", "beta:2,1"), ("sin2", "beta:0.5,2.5"), ("beta:0.9,0.3", "sin2"),
     ("poly:2", "sin2"), ("linear", "table:0.2,0.2,0.7")],
)
def test_divergent_pairs_return_inf(alpha, gamma):
    assert energy_J(alpha, gamma) == math.inf


def test_J_agrees_with_direct_quadrature_in_t():
    # alpha = sine, gamma = linear's: integrand alpha'^2 pi sqrt(t(1-t)) / (alpha (1 - alpha)) is integrable in t.
    def f(t):
        al = math.sin(math.pi * t / 2)
        ad = math.pi / 2 * math.cos(math.pi * t / 2)
        one_minus = 2 * math.sin(math.pi / 4 - math.pi * t / 4) ** 2
        return ad**2 * math.pi * math.sqrt(t * (1 - t)) / (al * one_minus)

    ref, _ = integrate.quad(f, 0, 1, limit=500, epsrel=1e-12)
    assert energy_J("sine", "linear") == pytest.approx(ref, rel=1e-8)
    assert energy_J("maskgit", "linear") == pytest.approx(ref, rel=1e-8)  # the time-reversed twin


def test_J_is_at_least_pi_squared_on_random_pairs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a1, b1, a2, b2 = rng.uniform(0.2, 1.9, size=4)
        assert energy_J(f"beta:{a1},{b1}", f"beta:{a2},{b2}") >= PI2 * (1 - 1e-10)


# --- discretised energy --------------------------------------------------------------------------


def test_fisher_rao_distance_of_bernoullis_is_twice_the_angle_gap():
    a = np.array([0.0, 0.1, 0.37, 0.999999, 1.0])
    b = np.array([0.2, 0.1 + 1e-9, 0.8, 1.0, 0.0])
    th = lambda x: np.arcsin(np.sqrt(x))  # noqa: E731
    fr = fisher_rao_distance(np.stack([1 - a, a], -1), np.stack([1 - b, b], -1))
    np.testing.assert_allclose(fr, 2 * np.abs(th(a) - th(b)), rtol=1e-7, atol=1e-15)
    # against the textbook arccos form where that is accurate
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    assert fisher_rao_distance(p, q) == pytest.approx(2 * np.arccos(np.sum(np.sqrt(p * q))), rel=1e-12)


@pytest.mark.parametrize("spec", ["linear", "sin2", "beta:0.9,0.3", "beta:1,0.2", "sine"])
@pytest.mark.parametrize("N", [1, 2, 8, 64])
def test_discrete_energy_with_own_gamma_is_pi_squared(spec, N):
    assert discrete_energy(spec, None, N) == pytest.approx(PI2, rel=1e-10)


def test_discrete_energy_formula_and_lower_bound():
    rng = np.random.default_rng(1)
    for _ in range(50):
        N = int(rng.integers(1, 12))
        a = np.concatenate([[0.0], np.sort(rng.uniform(size=N - 1)), [1.0]])
        g = np.concatenate([[0.0], np.sort(rng.uniform(size=N - 1)), [1.0]])
        th = np.arcsin(np.sqrt(a))
        D = discrete_energy_from_grid(a, g)
        assert D == pytest.approx(np.sum(4 * np.diff(th) ** 2 / np.diff(g)), rel=1e-9)
        assert D >= PI2 * (1 - 1e-12)
        assert discrete_energy_from_grid(geodesic_alpha_grid(g), g) == pytest.approx(PI2, rel=1e-10)


def test_equidistant_geodesic_points_minimise_the_discrete_energy():
    # Minimise D_N over the interior alpha grid with a generic optimiser and compare with the geodesic grid.
    N = 6
    g = np.linspace(0, 1, N + 1)

    def D(x):
        a = np.concatenate([[0.0], np.clip(np.sort(x), 1e-12, 1 - 1e-12), [1.0]])
        return discrete_energy_from_grid(a, g)

    res = optimize.minimize(D, np.linspace(0.05, 0.95, N - 1), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000, "maxfev": 20000})
    assert res.fun == pytest.approx(PI2, rel=1e-6)
    np.testing.assert_allclose(np.sort(res.x), geodesic_alpha_grid(g)[1:-1], atol=1e-3)
    # the equidistant points: theta_k = k pi / (2N)
    np.testing.assert_allclose(np.arcsin(np.sqrt(geodesic_alpha_grid(g))), np.arange(N + 1) * np.pi / (2 * N), atol=1e-12)


def test_discrete_energy_converges_to_J():
    J = energy_J("sin2", "linear")
    errs = [abs(discrete_energy("sin2", "linear", N) - J) for N in (16, 256, 4096)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 2e-2


def test_discrete_energy_flat_gamma_step():
    assert discrete_energy_from_grid(np.array([0, 0.5, 1.0]), np.array([0, 0.0, 1.0])) == math.inf
    assert math.isfinite(discrete_energy_from_grid(np.array([0, 0.0, 1.0]), np.array([0, 0.0, 1.0])))


# --- brute force ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", [(2, 2), (3, 2), (2, 3)])
@pytest.mark.parametrize("alpha,gamma", [("sin2", "beta:0.5,0.5"), ("beta:0.9,0.3", None), ("sine", "linear")])
def test_brute_force_constants_of_the_masked_path(n, d, alpha, gamma):
    for seed in (0, 7):
        r = brute_force_energies(random_distribution(n, d, seed), alpha, gamma, "mdm")
        assert r.constant_kinetic == pytest.approx(n * (d + 1) ** (n - 1), rel=1e-7)
        assert r.constant_conditional_kinetic == pytest.approx(n * 2 ** (n - 1), rel=1e-7)
        assert r.constant_geodesic == pytest.approx(n, rel=1e-7)
        assert r.ratio_kinetic_conditional == pytest.approx(((d + 1) / 2) ** (n - 1), rel=1e-7)
        assert r.ratio_conditional_geodesic == pytest.approx(2 ** (n - 1), rel=1e-7)


def test_brute_force_infinite_pair_gives_infinite_energies_and_nan_ratios():
    r = brute_force_energies(random_distribution(2, 2, 0), "linear", "sin2")
    assert r.J == r.kinetic == r.conditional_kinetic == r.geodesic == math.inf
    assert math.isnan(r.ratio_kinetic_conditional)


@pytest.mark.parametrize("n,d", [(2, 2), (3, 2), (2, 3)])
def test_proportionality_fails_on_the_uniform_path(n, d):
    rs = [brute_force_energies(random_distribution(n, d, seed), "sin2", "sin2", "uniform") for seed in (0, 1, 2)]
    mdm_ratio = ((d + 1) / 2) ** (n - 1)
    ratios = [r.ratio_kinetic_conditional for r in rs]
    assert max(ratios) - min(ratios) > 1e-3 * max(ratios)  # depends on the data law
    assert all(abs(x - mdm_ratio) > 0.1 for x in ratios)
    # at a single time too, the kinetic/geodesic ratio moves with q and with t
    tp = token_path("uniform", d)
    q0, q1 = random_distribution(n, d, 0), random_distribution(n, d, 1)
    s00, s10 = state_sums(q0, tp, 0.3, 1.0), state_sums(q1, tp, 0.3, 1.0)
    s01 = state_sums(q0, tp, 0.8, 1.0)
    r = lambda s: s["kinetic"] / s["geodesic"]  # noqa: E731
    assert abs(r(s00) - r(s10)) > 1e-3 and abs(r(s00) - r(s01)) > 1e-3


@pytest.mark.parametrize("path", ["mdm", "uniform"])
def test_marginal_rates_solve_the_forward_equation(path):
    # d/dt p_t(z) = inflow - outflow, with fluxes built by enumeration; checked by finite differences.
    q = random_distribution(3, 2, 3)
    tp = token_path(path, 2)
    s = parse_schedule("beta:0.8,0.6")
    t, h = 0.37, 1e-6
    al, ad = float(s.alpha(t)), float(s.alpha_dot(t))
    p_z, fluxes = marginal_flux(q, tp, al, ad)
    p_plus, _ = marginal_flux(q, tp, float(s.alpha(t + h)), ad)
    p_minus, _ = marginal_flux(q, tp, float(s.alpha(t - h)), ad)
    dp = (p_plus - p_minus) / (2 * h)
    net = np.zeros_like(p_z)
    for i, F in enumerate(fluxes):
        net -= F.sum(axis=-1)  # outflow from z through position i
        net += np.swapaxes(F, i, -1).sum(axis=-1)  # inflow into z through position i
    np.testing.assert_allclose(net, dp, atol=1e-7)
    assert p_z.sum() == pytest.approx(1.0)


def test_brute_force_input_checks():
    with pytest.raises(ValueError, match="too large to brute-force"):
        check_brute_force_size(9, 4)
    with pytest.raises(ValueError, match="vocab d must be an integer >= 2"):
        check_brute_force_size(2, 1)
    with pytest.raises(ValueError, match="full-support"):
        brute_force_energies(np.array([[0.5, 0.5], [0.0, 0.0]]), "sin2")
    with pytest.raises(ValueError, match="shape"):
        brute_force_energies(np.ones((2, 3)), "sin2")
    with pytest.raises(ValueError, match="unknown path"):
        token_path("gaussian", 2)


def test_random_distribution_is_seeded_full_support_and_normalised():
    a, b, c = random_distribution(3, 2, 5), random_distribution(3, 2, 5), random_distribution(3, 2, 6)
    assert a.shape == (2, 2, 2) and np.all(a > 0) and a.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
