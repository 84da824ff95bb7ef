"""Schedules against closed forms, finite differences, inverses and docs/design.md §2's counts table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from mdm_energy.schedules import (
    Beta,
    Linear,
    MaskGIT,
    Poly,
    Schedule,
    ScheduleSpecError,
    Sin2,
    Sine,
    Table,
    parse_schedule,
    schedule_families,
)

ALL_SPECS = [
    "linear",
    "sin2",
    "sine",
    "maskgit",
    "poly:2",
    "poly:0.5",
    "poly:3.5",
    "beta:0.9,0.3",
    "beta:1,0.2",
    "beta:0.3,0.9",
    "beta:2.5,4",
    "table:0.1,0.1,0.5,0.95",
]
T_DENSE = np.linspace(0.0, 1.0, 10_001)
T_INTERIOR = np.linspace(0.02, 0.98, 97)

# Independent closed forms of alpha(t) written out here, not taken from the module.
CLOSED_FORMS = {
    "linear": lambda t: t,
    "sin2": lambda t: np.sin(np.pi * t / 2) ** 2,
    "sine": lambda t: np.sin(np.pi * t / 2),
    "maskgit": lambda t: 1 - np.cos(np.pi * t / 2),
    "poly:2": lambda t: t**2,
    "poly:0.5": lambda t: np.sqrt(t),
    "beta:0.9,0.3": lambda t: np.sin(np.pi / 2 * special.betainc(0.9, 0.3, t)) ** 2,
}


@pytest.mark.parametrize("spec", sorted(CLOSED_FORMS))
def test_alpha_matches_closed_form(spec):
    s = parse_schedule(spec)
    np.testing.assert_allclose(s.alpha(T_DENSE), CLOSED_FORMS[spec](T_DENSE), rtol=0, atol=1e-14)


def test_table_is_piecewise_linear_through_its_knots():
    s = parse_schedule("table:0.1,0.1,0.5,0.95")
    knots = np.linspace(0, 1, 6)  # four interior fractions: a 5-step grid
    np.testing.assert_allclose(s.alpha(knots), [0, 0.1, 0.1, 0.5, 0.95, 1], atol=1e-15)
    assert s.alpha(0.3) == pytest.approx(0.1)  # flat segment [0.2, 0.4]
    assert s.alpha(0.7) == pytest.approx((0.5 + 0.95) / 2)
    assert s.alpha_dot(0.7) == pytest.approx((0.95 - 0.5) * 5)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_boundaries_monotone_and_gamma_identity(spec):
    s = parse_schedule(spec)
    a = s.alpha(T_DENSE)
    assert s.alpha(0.0) == 0.0 and s.alpha(1.0) == pytest.approx(1.0, abs=1e-15)
    assert np.all(np.diff(a) >= -1e-15)
    g = s.gamma(T_DENSE)
    np.testing.assert_allclose(g, 2 / np.pi * np.arcsin(np.sqrt(np.clip(a, 0, 1))), atol=1e-7)
    np.testing.assert_allclose(np.sin(np.pi / 2 * g) ** 2, a, atol=1e-12)
    assert s.gamma(0.0) == 0.0 and s.gamma(1.0) == pytest.approx(1.0, abs=1e-12)


def test_beta_endpoints_equal_linear_and_sin2():
    np.testing.assert_allclose(parse_schedule("beta:0.5,0.5").alpha(T_DENSE), T_DENSE, rtol=0, atol=1e-12)
    np.testing.assert_allclose(parse_schedule("beta:1,1").alpha(T_DENSE), Sin2().alpha(T_DENSE), rtol=0, atol=1e-12)
    np.testing.assert_allclose(parse_schedule("beta:1,1").gamma(T_DENSE), T_DENSE, atol=1e-12)
    np.testing.assert_allclose(parse_schedule("beta:0.5,0.5").gamma(T_DENSE), Linear().gamma(T_DENSE), atol=1e-12)
    # derivatives agree too (interior: linear's gamma_dot is infinite at the ends)
    np.testing.assert_allclose(parse_schedule("beta:0.5,0.5").alpha_dot(T_DENSE), 1.0, atol=1e-9)
    np.testing.assert_allclose(Beta(0.5, 0.5).gamma_dot(T_INTERIOR), Linear().gamma_dot(T_INTERIOR), rtol=1e-10)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_derivatives_match_finite_differences(spec):
    s = parse_schedule(spec)
    h = 1e-6
    t = T_INTERIOR
    if spec.startswith("table"):  # piecewise linear: stay away from the knots
        t = t[np.abs((t * 5) - np.round(t * 5)) > 0.05]
    fd_alpha = (s.alpha(t + h) - s.alpha(t - h)) / (2 * h)
    fd_gamma = (s.gamma(t + h) - s.gamma(t - h)) / (2 * h)
    np.testing.assert_allclose(s.alpha_dot(t), fd_alpha, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.gamma_dot(t), fd_gamma, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "spec,t0,limit",
    [
        ("beta:0.5,0.5", 0.0, 1.0),  # pi^2/(2 a B^2) with B(1/2,1/2) = pi
        ("beta:0.5,0.5", 1.0, 1.0),
        ("beta:0.5,2", 0.0, math.pi**2 / special.beta(0.5, 2) ** 2),
        ("beta:0.3,2", 0.0, math.inf),
        ("beta:0.8,2", 0.0, 0.0),
        ("sine", 1.0, 0.0),
    ],
)
def test_alpha_dot_endpoint_limits(spec, t0, limit):
    s = parse_schedule(spec)
    assert s.alpha_dot(t0) == pytest.approx(limit, rel=1e-9)
    if math.isfinite(limit) and limit > 0:  # and the one-sided difference quotient tends to it
        h = 1e-10
        fd = (s.alpha(t0 + h) - s.alpha(t0)) / h if t0 == 0 else (s.alpha(t0) - s.alpha(t0 - h)) / h
        assert fd == pytest.approx(limit, rel=1e-4)


@pytest.mark.parametrize(
    "spec,t0,limit",
    [("sine", 1.0, 1 / math.sqrt(2)), ("maskgit", 0.0, 1 / math.sqrt(2)), ("poly:2", 0.0, 2 / math.pi), ("sin2", 0.0, 1.0)],
)
def test_gamma_dot_finite_endpoint_limits(spec, t0, limit):
    s = parse_schedule(spec)
    assert s.gamma_dot(t0) == pytest.approx(limit, rel=1e-12)
    tt = 1e-7 if t0 == 0 else 1 - 1e-7
    assert s.gamma_dot(tt) == pytest.approx(limit, rel=1e-5)


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_inverse_round_trips(spec):
    s = parse_schedule(spec)
    t = T_INTERIOR
    if spec.startswith("table"):  # not invertible on its flat segment [0.2, 0.4]
        t = t[(t < 0.2) | (t > 0.4)]
    np.testing.assert_allclose(s.t_of_alpha(s.alpha(t)), t, atol=1e-9)
    np.testing.assert_allclose(s.t_of_gamma(s.gamma(t)), t, atol=1e-9)
    a = np.linspace(0, 1, 101)
    np.testing.assert_allclose(s.alpha(s.t_of_alpha(a)), a, atol=1e-12)
    assert s.t_of_alpha(0.0) == pytest.approx(0.0, abs=1e-12)
    assert s.t_of_alpha(1.0) == pytest.approx(1.0, abs=1e-12)


def test_table_inverse_takes_the_smallest_time_on_a_flat_segment():
    s = parse_schedule("table:0.1,0.1,0.5,0.95")
    assert s.t_of_alpha(0.1) == pytest.approx(0.2)


# --- counts (docs/design.md §2) -----------------------------------------------------------------------

DESIGN_COUNTS = {
    "beta:0.5,0.5": [32] * 8,
    "linear": [32] * 8,
    "beta:1,1": [10, 27, 42, 49, 49, 42, 27, 10],
    "sin2": [10, 27, 42, 49, 49, 42, 27, 10],
    "beta:0.9,0.3": [2, 4, 9, 12, 19, 29, 47, 134],
    "beta:1,0.2": [0, 2, 3, 5, 10, 15, 31, 190],
    "beta:0.3,0.9": [134, 47, 29, 19, 12, 9, 4, 2],
}


@pytest.mark.parametrize("spec", sorted(DESIGN_COUNTS))
def test_counts_table_of_design(spec):
    assert parse_schedule(spec).counts(256, 8).tolist() == DESIGN_COUNTS[spec]


@pytest.mark.parametrize("L,N", [(256, 8), (128, 64), (96, 32), (7, 7), (1024, 256)])
def test_linear_counts_are_llada_equal_blocks(L, N):
    assert parse_schedule("linear").counts(L, N).tolist() == [L // N] * N


@pytest.mark.parametrize("spec", ALL_SPECS)
@pytest.mark.parametrize("L,N", [(256, 8), (10, 64), (4096, 256), (1, 1), (33, 5)])
def test_counts_follow_the_rounding_rule(spec, L, N):
    s = parse_schedule(spec)
    c = s.counts(L, N)
    # independent re-derivation of DESIGN's rule with a Python loop
    cum = [0]
    for k in range(1, N):
        cum.append(min(L, max(0, math.floor(L * float(s.alpha(k / N)) + 0.5 + 1e-9))))
    cum.append(L)
    assert c.tolist() == [b - a for a, b in zip(cum, cum[1:])]
    assert c.sum() == L and np.all(c >= 0) and len(c) == N


@pytest.mark.parametrize("a", [0.05, 0.1, 0.5, 1.0, 5.0, 20.0])
@pytest.mark.parametrize("b", [0.05, 0.3, 1.0, 20.0])
def test_beta_is_stable_over_its_range(a, b):
    s = Beta(a, b)
    t = np.concatenate([[0.0, 1e-300, 1e-12], T_DENSE, [1 - 1e-12, 1.0]])
    for f in (s.alpha, s.alpha_dot, s.gamma, s.gamma_dot, s.theta):
        assert not np.any(np.isnan(f(t))), f.__name__
    assert not np.any(np.isnan(s.t_of_alpha(np.linspace(0, 1, 101))))
    for L, N in [(256, 8), (4096, 256), (3, 64)]:
        c = s.counts(L, N)
        assert np.all(c >= 0) and c.sum() == L


# --- argument kinds and checks -------------------------------------------------------------------


def test_float_numpy_and_torch_arguments_keep_their_kind():
    s = parse_schedule("beta:0.9,0.3")
    x = s.alpha(0.5)
    assert isinstance(x, float)
    arr = s.alpha(np.array([[0.1, 0.5], [0.7, 1.0]]))
    assert isinstance(arr, np.ndarray) and arr.shape == (2, 2)
    for dtype in (torch.float32, torch.float64):
        ten = torch.tensor([0.1, 0.5, 0.7, 1.0], dtype=dtype)
        out = s.alpha(ten)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.device == ten.device
        np.testing.assert_allclose(out.double().numpy(), s.alpha(ten.double().numpy()), rtol=1e-6)
    assert isinstance(s.t_of_alpha(torch.tensor(0.3)), torch.Tensor)
    assert isinstance(s.counts(10, 3), np.ndarray)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), np.array([0.2, 1.01]), torch.tensor([-1e-3])])
def test_out_of_range_time_is_rejected_naming_the_value(bad):
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        Linear().alpha(bad)


def test_bad_argument_types_and_sizes():
    with pytest.raises(TypeError):
        Linear().alpha("0.5")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        Linear().counts(10, 0)
    with pytest.raises(ValueError, match="length must be a positive integer, got -3"):
        Linear().counts(-3, 2)
    with pytest.raises(ValueError, match="alpha must lie"):
        Linear().t_of_alpha(2.0)


# --- spec strings --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS + ["beta:0.05,20", "poly:1e-3", "table:0.3333333333333333,0.9"])
def test_spec_round_trip(spec):
    s = parse_schedule(spec)
    assert isinstance(s, Schedule)
    assert parse_schedule(s.spec) == s
    assert parse_schedule(str(s)).spec == s.spec


def test_spec_canonical_forms_and_objects():
    assert parse_schedule(" Beta:1.0, 0.20 ").spec == "beta:1,0.2"
    assert parse_schedule("poly:2.0") == Poly(2)
    assert Beta(0.9, 0.3).spec == "beta:0.9,0.3"
    assert parse_schedule(Sine()) == Sine()
    assert MaskGIT().spec == "maskgit"
    assert schedule_families() == ["beta", "blocks", "dream", "linear", "maskgit", "poly", "sin2", "sine", "table"]


def test_table_from_counts_replays_the_counts():
    counts = [0, 3, 3, 10, 0, 40]
    t = Table.from_counts(counts)
    assert t.counts(sum(counts), len(counts)).tolist() == counts
    assert parse_schedule(t.spec).counts(56, 6).tolist() == counts


@pytest.mark.parametrize(
    "spec,match",
    [
        ("beta:0,1", r"parameter a must be a number in \[0.001, 1000\], got 0.0"),
        ("beta:1,-2", "parameter b must be a number in"),
        ("beta:1e308,1e308", r"parameter a must be a number in \[0.001, 1000\], got 1e\+308"),
        ("beta:1e-300,1", "parameter a must be a number in"),
        ("beta:1,1000.0001", "parameter b must be a number in"),
        ("beta:0.5", "beta takes 2"),
        ("beta:1,2,3", "beta takes 2"),
        ("beta:x,1", "'x' is not a finite decimal number"),
        ("beta:inf,1", "'inf' is not a finite decimal number"),
        ("beta:1_0,1", "'1_0' is not a finite decimal number"),
        ("beta:1e400,1", "'1e400' is not a finite decimal number"),
        ("beta:0x1,1", "'0x1' is not a finite decimal number"),
        ("beta", "needs parameters"),
        ("linear:2", "takes no parameters"),
        ("poly:0", "exponent k must be a number in"),
        ("poly:1e300", "exponent k must be a number in"),
        ("poly:5e-324", "exponent k must be a number in"),
        ("cosine", "unknown schedule family 'cosine'"),
        ("", "unknown schedule family"),
        ("table:0.5,0.2", "non-decreasing, got 0.5 then 0.2"),
        ("table:1.5", r"in \[0, 1\], got 1.5"),
    ],
)
def test_bad_specs_raise_naming_the_problem(spec, match):
    with pytest.raises(ScheduleSpecError, match=match):
        parse_schedule(spec)


def test_parameters_beyond_double_precision_are_refused_not_turned_into_garbage():
    """Shapes outside SHAPE_RANGE are refused when the schedule is made (the ends are in); a schedule that still
    evaluates to NaN (a plug-in family, say) is refused where it is evaluated, naming the point."""
    from mdm_energy.schedules import SHAPE_RANGE

    assert SHAPE_RANGE == (1e-3, 1e3)
    for low_or_high in SHAPE_RANGE:
        assert Beta(low_or_high, low_or_high).counts(64, 8).sum() == 64
        assert Poly(low_or_high).counts(64, 8).sum() == 64
    for bad in (1e308, 1e-300, 5e-324, -0.0, float("nan"), float("inf"), 1e3 * (1 + 1e-15)):
        with pytest.raises(ScheduleSpecError, match="must be a number in"):
            Beta(bad, 1.0)
        with pytest.raises(ScheduleSpecError, match="must be a number in"):
            Poly(bad)

    class Broken(Linear):
        def _alpha(self, t):
            return np.full_like(t, np.nan)

    with pytest.raises(ValueError, match=r"linear cannot be evaluated at t=0.0: the result is not a number"):
        Broken().counts(64, 8)
    with pytest.raises(ValueError, match="not a number"):
        Broken().alpha(0.5)
    with pytest.raises(ValueError, match="steps must be at most 1,000,000"):
        parse_schedule("linear").counts(16, 10**9)


def test_dream_mask_levels_are_torchs_float32_linspace_bit_for_bit():
    """Dream's grid is built without torch; Dream's own code uses a float32 ``torch.linspace`` — the same bits."""
    import torch

    from mdm_energy.schedules import Dream

    for eps in (1e-3, 0.0, 0.05, 0.37):
        for n in range(1, 2001):
            want = torch.linspace(1.0, eps, n + 1).numpy()
            np.testing.assert_array_equal(Dream(eps).mask_levels(n), want, err_msg=f"eps={eps}, N={n}")
