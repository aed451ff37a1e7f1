"""The MBG/NBD model: shape of P(alive), likelihood against quadrature, recovery by fit."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, special

from streams.core import btyd
from streams.core.btyd import (
    MBGParams,
    expected_purchases,
    fit,
    log_likelihood,
    p_alive,
    p_no_purchase,
)

PARAMS = MBGParams(r=0.8, alpha=40.0, a=1.2, b=3.5)
LOW_A = MBGParams(r=0.5, alpha=30.0, a=0.8, b=2.0)  # a <= 1: the quadrature path


def simulate(params: MBGParams, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Customers drawn from the MBG/NBD story itself, observed 6 to 18 months."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(params.r, 1.0 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    T = rng.uniform(180.0, 540.0, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):
        t = 0.0
        # A drop-out coin after every purchase, the first (time 0) included.
        while rng.random() >= drop[i]:
            t += rng.exponential(1.0 / rate[i])
            if t > T[i]:
                break
            x[i] += 1
            t_x[i] = t
    return x, t_x, T


def joint_density(params: MBGParams, lam: float, p: float) -> float:
    log_g = (params.r * math.log(params.alpha) + (params.r - 1) * math.log(lam)
             - params.alpha * lam - math.lgamma(params.r))
    log_f = ((params.a - 1) * math.log(p) + (params.b - 1) * math.log1p(-p)
             - special.betaln(params.a, params.b))
    return math.exp(log_g + log_f)


def integrate_over_population(params: MBGParams, fn) -> float:  # type: ignore[no-untyped-def]
    """E[fn(lambda, p)] over the population, by plain 2-D quadrature.

    The rate is integrated as lambda = v^2, which turns the Gamma density's infinite
    peak at 0 (r < 1) into a bounded one for r >= 0.5, so quadpack converges quickly.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", integrate.IntegrationWarning)
        value, _ = integrate.dblquad(
            lambda v, p: fn(v * v, p) * joint_density(params, v * v, p) * 2.0 * v,
            0.0, 1.0, 0.0, math.sqrt(5.0), epsabs=1e-14, epsrel=1e-8)
    return float(value)


def alive_branch(x: int, T: float):  # type: ignore[no-untyped-def]
    return lambda lam, p: lam ** x * (1 - p) ** (x + 1) * math.exp(-lam * T)


def gone_branch(x: int, t_x: float):  # type: ignore[no-untyped-def]
    return lambda lam, p: lam ** x * (1 - p) ** x * p * math.exp(-lam * t_x)


# --- P(alive) --------------------------------------------------------------------------

@pytest.mark.parametrize("params", [PARAMS, LOW_A, btyd.PRIOR])
def test_p_alive_is_a_probability(params: MBGParams) -> None:
    for x in (0, 1, 3, 20, 500):
        for t_x in (0.0, 5.0, 100.0):
            for T in (t_x, t_x + 1.0, t_x + 400.0, 1e9):
                value = p_alive(params, x, t_x, T)
                assert 0.0 <= value <= 1.0


def test_p_alive_decreases_with_silence() -> None:
    for x, t_x in ((1, 10.0), (4, 60.0), (12, 200.0)):
        values = [p_alive(PARAMS, x, t_x, T) for T in np.linspace(t_x, t_x + 720.0, 40)]
        assert all(later < earlier for earlier, later in itertools.pairwise(values))


def test_one_time_buyer_is_not_surely_alive_and_fades() -> None:
    # What MBG adds to BG/NBD: the first purchase may already have been the last.
    at_first = p_alive(PARAMS, 0, 0.0, 0.0)
    assert at_first == pytest.approx(PARAMS.b / (PARAMS.a + PARAMS.b))
    values = [p_alive(PARAMS, 0, 0.0, T) for T in (0.0, 7.0, 30.0, 90.0, 365.0, 3650.0)]
    assert all(v < 1.0 for v in values)
    assert all(later < earlier for earlier, later in itertools.pairwise(values))
    assert values[-1] < 0.1


def test_recent_buyers_are_more_alive() -> None:
    values = [p_alive(PARAMS, 3, t_x, 300.0) for t_x in (20.0, 100.0, 200.0, 290.0, 300.0)]
    assert all(later > earlier for earlier, later in itertools.pairwise(values))


def test_more_purchases_make_the_same_silence_more_alarming() -> None:
    # A frequent buyer quiet for 100 days is more likely gone than an occasional one.
    assert p_alive(PARAMS, 10, 100.0, 200.0) < p_alive(PARAMS, 1, 100.0, 200.0)


def test_p_alive_survives_extreme_inputs() -> None:
    assert p_alive(PARAMS, 10_000, 0.0, 1e12) == pytest.approx(0.0, abs=1e-300)
    assert p_alive(PARAMS, 5, 50.0, 10.0) == p_alive(PARAMS, 5, 50.0, 50.0)  # T < t_x clamped
    assert p_alive(PARAMS, -1, -3.0, 0.0) == p_alive(PARAMS, 0, 0.0, 0.0)


@pytest.mark.parametrize("x,t_x,T", [(0, 0.0, 60.0), (2, 30.0, 90.0), (5, 100.0, 120.0)])
def test_p_alive_matches_posterior_by_quadrature(x: int, t_x: float, T: float) -> None:
    alive = integrate_over_population(PARAMS, alive_branch(x, T))
    gone = integrate_over_population(PARAMS, gone_branch(x, t_x))
    assert p_alive(PARAMS, x, t_x, T) == pytest.approx(alive / (alive + gone), rel=1e-6)


@pytest.mark.parametrize("x,t_x,T", [(0, 0.0, 60.0), (3, 30.0, 90.0)])
def test_p_no_purchase_matches_quadrature(x: int, t_x: float, T: float) -> None:
    horizon = 45.0
    alive = integrate_over_population(PARAMS, alive_branch(x, T))
    gone = integrate_over_population(PARAMS, gone_branch(x, t_x))
    quiet = integrate_over_population(
        PARAMS, lambda lam, p: alive_branch(x, T)(lam, p) * math.exp(-lam * horizon))
    expected = (gone + quiet) / (alive + gone)
    assert p_no_purchase(PARAMS, horizon, x, t_x, T) == pytest.approx(expected, rel=1e-6)


def test_p_no_purchase_runs_from_one_down_to_one_minus_p_alive() -> None:
    values = [p_no_purchase(PARAMS, t, 2, 40.0, 90.0) for t in (0.0, 7.0, 90.0, 1e4, 1e12)]
    assert values[0] == 1.0
    assert all(later < earlier for earlier, later in itertools.pairwise(values))
    assert values[-1] == pytest.approx(1.0 - p_alive(PARAMS, 2, 40.0, 90.0), abs=1e-6)


# --- log-likelihood ----------------------------------------------------------------------

def slow_log_likelihood(params: MBGParams, x: int, t_x: float, T: float) -> float:
    """The same closed form written out term by term with math.lgamma, one customer."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    def log_beta(p: float, q: float) -> float:
        return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)

    rate_part = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    stay = math.exp(log_beta(a, b + x + 1) - log_beta(a, b) - (r + x) * math.log(alpha + T))
    leave = math.exp(log_beta(a + 1, b + x) - log_beta(a, b) - (r + x) * math.log(alpha + t_x))
    return rate_part + math.log(stay + leave)


@pytest.mark.parametrize("params", [PARAMS, LOW_A])
def test_log_likelihood_matches_per_customer_sum(params: MBGParams) -> None:
    x, t_x, T = simulate(params, 300, seed=3)
    expected = sum(slow_log_likelihood(params, int(a), b, c)
                   for a, b, c in zip(x, t_x, T, strict=True))
    assert log_likelihood(params, x, t_x, T) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("x,t_x,T", [(0, 0.0, 40.0), (1, 12.0, 40.0), (4, 33.0, 90.0)])
def test_log_likelihood_matches_quadrature_for_one_customer(x: int, t_x: float, T: float
                                                            ) -> None:
    def individual(lam: float, p: float) -> float:
        return alive_branch(x, T)(lam, p) + gone_branch(x, t_x)(lam, p)

    numeric = math.log(integrate_over_population(PARAMS, individual))
    assert log_likelihood(PARAMS, [x], [t_x], [T]) == pytest.approx(numeric, rel=1e-6)


def test_gradient_matches_finite_differences() -> None:
    x, t_x, T = simulate(PARAMS, 200, seed=4)
    theta = PARAMS.as_log_array()
    _, grad = btyd._terms(theta, x, t_x, T)
    analytic = grad.sum(axis=0)
    step = 1e-6
    for k in range(4):
        up, down = theta.copy(), theta.copy()
        up[k] += step
        down[k] -= step
        numeric = (btyd._terms(up, x, t_x, T)[0].sum()
                   - btyd._terms(down, x, t_x, T)[0].sum()) / (2 * step)
        assert analytic[k] == pytest.approx(numeric, rel=1e-5, abs=1e-5)


# --- expected purchases ------------------------------------------------------------------

@pytest.mark.parametrize("params", [PARAMS, LOW_A])
@pytest.mark.parametrize("x,t_x,T", [(0, 0.0, 30.0), (3, 50.0, 80.0)])
def test_expected_purchases_matches_quadrature(params: MBGParams, x: int, t_x: float,
                                               T: float) -> None:
    horizon = 60.0

    def future(lam: float, p: float) -> float:
        return -math.expm1(-lam * p * horizon) / p

    alive = integrate_over_population(params, alive_branch(x, T))
    gone = integrate_over_population(params, gone_branch(x, t_x))
    weighted = integrate_over_population(
        params, lambda lam, p: alive_branch(x, T)(lam, p) * future(lam, p))
    expected = weighted / (alive + gone)
    assert expected_purchases(params, horizon, x, t_x, T) == pytest.approx(expected, rel=1e-5)


def test_closed_form_and_quadrature_agree_when_both_apply() -> None:
    closed = btyd._future_closed(2.5, 40.0, 1.7, 5.0, 30.0)
    assert closed == pytest.approx(btyd._future_quad(2.5, 40.0, 1.7, 5.0, 30.0), rel=1e-9)


def test_expected_purchases_grows_with_horizon() -> None:
    values = [expected_purchases(PARAMS, t, 2, 40.0, 90.0) for t in (0.0, 10.0, 100.0, 1000.0)]
    assert values[0] == 0.0
    assert all(later > earlier for earlier, later in itertools.pairwise(values))


# --- fit -------------------------------------------------------------------------------

def test_fit_recovers_simulated_parameters() -> None:
    x, t_x, T = simulate(PARAMS, 2000, seed=11)
    est = fit(x, t_x, T)
    assert est.r == pytest.approx(PARAMS.r, rel=0.3)
    assert est.alpha == pytest.approx(PARAMS.alpha, rel=0.3)
    assert est.b > est.a  # drop-out is the minority outcome of a purchase
    assert est.mean_dropout == pytest.approx(PARAMS.mean_dropout, abs=0.07)
    # The fit is a maximum: the truth and the prior both score lower.
    assert log_likelihood(est, x, t_x, T) >= log_likelihood(PARAMS, x, t_x, T)
    assert log_likelihood(est, x, t_x, T) > log_likelihood(btyd.PRIOR, x, t_x, T)


def test_fit_is_deterministic_and_warm_start_agrees() -> None:
    x, t_x, T = simulate(PARAMS, 800, seed=12)
    first = fit(x, t_x, T)
    assert fit(x, t_x, T) == first
    warm = fit(x, t_x, T, start=first)
    assert warm.r == pytest.approx(first.r, rel=0.05)
    assert warm.alpha == pytest.approx(first.alpha, rel=0.05)


def test_fit_falls_back_on_degenerate_data() -> None:
    start = btyd.prior_for_cycle(14.0)
    assert fit([3.0], [10.0], [20.0], start=start) == start
    assert fit([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [10.0, 20.0, 30.0], start=start) == start
    assert fit([], [], []) == btyd.PRIOR
    assert fit([np.nan, np.nan], [1.0, 2.0], [3.0, 4.0], start=start) == start


def test_fit_ignores_unusable_rows() -> None:
    x, t_x, T = simulate(PARAMS, 500, seed=13)
    clean = fit(x, t_x, T)
    dirty = fit(np.append(x, [np.nan, -1.0]), np.append(t_x, [1.0, 2.0]),
                np.append(T, [3.0, 4.0]))
    assert dirty == clean


def test_prior_scales_with_the_purchase_cycle() -> None:
    for cycle in (7.0, 30.0, 720.0):
        prior = btyd.prior_for_cycle(cycle)
        assert prior.mean_rate_per_day == pytest.approx(1.0 / cycle)
        assert 0.2 <= prior.mean_dropout <= 0.3
    assert btyd.PRIOR == btyd.prior_for_cycle(30.0)
    with pytest.raises(ValueError):
        btyd.prior_for_cycle(0.0)
