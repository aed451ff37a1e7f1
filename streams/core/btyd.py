"""Buy-till-you-die: the MBG/NBD model of repeat buying and silent drop-out.

MBG/NBD (Batislam, Denizel & Filiztekin, 2007). While alive, a customer buys as a
Poisson process with rate ``lambda ~ Gamma(r, alpha)``; right after *every* purchase,
the first one included, they leave for good with probability ``p ~ Beta(a, b)``.
Letting the first purchase end a customer is what separates it from BG/NBD, where a
one-time buyer is certain to be alive and stays so however long they are quiet.

A customer is summarised as ``(x, t_x, T)`` in days: ``x`` repeat purchases, the last
at ``t_x`` days after the first purchase, observed for ``T`` days since the first.
For one customer with known ``(lambda, p)`` the data have probability
``lambda^x (1-p)^x [(1-p) e^(-lambda T) + p e^(-lambda t_x)]`` (alive throughout, or
gone right after purchase ``x``). Mixing over the Gamma and Beta gives the closed forms
below.

Pure: no I/O, no clock. ``p_alive`` is on the per-event hot path and so is plain
``math``; the fitting code uses numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, optimize, special


@dataclass(frozen=True, slots=True)
class MBGParams:
    """Population parameters, time in days: rate ~ Gamma(r, alpha), drop-out ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def as_log_array(self) -> np.ndarray:
        return np.log(np.array([self.r, self.alpha, self.a, self.b], dtype=float))

    @classmethod
    def from_log_array(cls, theta: np.ndarray) -> MBGParams:
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        return cls(r, alpha, a, b)

    @property
    def mean_rate_per_day(self) -> float:
        return self.r / self.alpha

    @property
    def mean_dropout(self) -> float:
        return self.a / (self.a + self.b)


# Retail prior, used until a partition has enough buyers to fit its own.  The shape
# r = 0.75 is a spread of buying rates like those fitted to CD, grocery and apparel logs
# (r between ~0.25 and ~1); alpha = r * cycle makes the mean rate one purchase per
# cycle; Beta(2, 6) puts the drop-out chance per purchase at 0.25 on average with a
# broad spread.  At the first purchase a customer is thus alive with chance 0.75.
_PRIOR_R = 0.75
_PRIOR_A = 2.0
_PRIOR_B = 6.0


def prior_for_cycle(purchase_cycle_days: float) -> MBGParams:
    """The retail prior scaled so the mean purchase rate is one per ``purchase_cycle_days``."""
    if not purchase_cycle_days > 0:
        raise ValueError("purchase_cycle_days must be positive")
    return MBGParams(_PRIOR_R, _PRIOR_R * purchase_cycle_days, _PRIOR_A, _PRIOR_B)


PRIOR: MBGParams = prior_for_cycle(30.0)


def p_alive(params: MBGParams, x: int, t_x: float, T: float) -> float:
    """Probability that a customer with history ``(x, t_x, T)`` has not dropped out.

    ``1 / (1 + a/(b+x) * ((alpha+T)/(alpha+t_x))^(r+x))``, evaluated as a logistic of
    its log so that long silences cannot overflow.
    """
    # Plain ifs, not max(): this runs per event and the builtin calls double its cost.
    if x < 0:
        x = 0
    if t_x < 0.0:
        t_x = 0.0
    if T < t_x:  # a skewed clock: observed no shorter than the history
        T = t_x
    alpha = params.alpha
    n = params.r + x
    z = math.log(params.a / (params.b + x)) + n * math.log1p((T - t_x) / (alpha + t_x))
    if z > 0.0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def p_no_purchase(params: MBGParams, t: float, x: int, t_x: float, T: float) -> float:
    """Probability of no purchase in the next ``t`` days: gone, or alive but not buying.

    A customer alive now cannot drop out before their next purchase, so while alive the
    wait for it is exponential with posterior rate Gamma(r+x, alpha+T). Unlike
    ``1 - p_alive``, this ranks a slow buyer's silence as the quiet it is; it is the
    quantity a label such as "bought nothing in the next t days" asks about.
    """
    if t <= 0.0:
        return 1.0
    alive = p_alive(params, x, t_x, T)
    n = params.r + max(x, 0)
    scale = params.alpha + max(T, t_x, 0.0)
    return (1.0 - alive) + alive * math.exp(-n * math.log1p(t / scale))


def expected_purchases(params: MBGParams, t: float, x: float, t_x: float, T: float) -> float:
    """Expected purchases in the next ``t`` days given history ``(x, t_x, T)``.

    Alive with chance ``p_alive``; then the customer's posterior is rate ~ Gamma(r+x,
    alpha+T) and drop-out ~ Beta(a, b+x+1), and from now on behaves like a fresh BG/NBD
    customer, whose expected count for known (lambda, p) is ``(1 - exp(-lambda p t))/p``.
    """
    if t <= 0.0:
        return 0.0
    x = max(float(x), 0.0)
    t_x = max(float(t_x), 0.0)
    T = max(float(T), t_x)
    alive = p_alive(params, int(x), t_x, T)
    shape, scale, b_post = params.r + x, params.alpha + T, params.b + x + 1.0
    value = _future_closed(shape, scale, params.a, b_post, t) if params.a > 1.0 else math.nan
    if not (math.isfinite(value) and value >= 0.0):
        value = _future_quad(shape, scale, params.a, b_post, t)
    return alive * value


def _future_closed(shape: float, scale: float, a: float, b: float, t: float) -> float:
    """E[(1 - exp(-lambda p t)) / p] for lambda ~ Gamma(shape, scale), p ~ Beta(a, b), a > 1."""
    z = t / (scale + t)
    hyp = float(special.hyp2f1(shape, b, a + b - 1.0, z))
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (scale / (scale + t)) ** shape * hyp)


def _future_quad(shape: float, scale: float, a: float, b: float, t: float) -> float:
    """The same expectation by quadrature over p; needed when a <= 1 (E[1/p] infinite,
    so the closed form's two pieces diverge though their difference does not)."""
    log_beta = float(special.betaln(a, b))

    def integrand(p: float) -> float:
        if p <= 0.0:
            return 0.0  # a point of measure zero; quad never needs its value
        gained = -math.expm1(-shape * math.log1p(p * t / scale))  # rate integrated out
        dens = math.exp((a - 1.0) * math.log(p) + (b - 1.0) * math.log1p(-p) - log_beta)
        return gained / p * dens

    value, _ = integrate.quad(integrand, 0.0, 1.0, limit=200)
    return float(value)


def _as_arrays(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> tuple[np.ndarray, ...]:
    xa = np.asarray(x, dtype=float)
    ta = np.asarray(t_x, dtype=float)
    Ta = np.maximum(np.asarray(T, dtype=float), ta)
    return xa, ta, Ta


def _terms(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient in log-parameters (n x 4)."""
    r, alpha, a, b = np.exp(theta)
    n = r + x
    log_aT = np.log(alpha + T)
    log_at = np.log(alpha + t_x)
    # c is the log odds of "gone after the last purchase" against "still alive".
    c = math.log(a) - np.log(b + x) + n * (log_aT - log_at)
    ll = (special.gammaln(n) - special.gammaln(r) + r * math.log(alpha)
          + special.betaln(a, b + x + 1.0) - special.betaln(a, b)
          - n * log_aT + np.logaddexp(0.0, c))
    gone = special.expit(c)
    psi_ab = special.digamma(a + b)
    psi_abx = special.digamma(a + b + x + 1.0)
    d_r = special.digamma(n) - special.digamma(r) + math.log(alpha) - log_aT \
        + gone * (log_aT - log_at)
    d_alpha = r / alpha - n / (alpha + T) + gone * n * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))
    d_a = psi_ab - psi_abx + gone / a
    d_b = special.digamma(b + x + 1.0) - psi_abx - special.digamma(b) + psi_ab - gone / (b + x)
    grad = np.stack([r * d_r, alpha * d_alpha, a * d_a, b * d_b], axis=1)
    return ll, grad


def log_likelihood(params: MBGParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> float:
    """Total log-likelihood of customers ``(x, t_x, T)`` under ``params``."""
    xa, ta, Ta = _as_arrays(x, t_x, T)
    ll, _ = _terms(params.as_log_array(), xa, ta, Ta)
    return float(ll.sum())


# Log-parameters are kept inside [-9, 9] (about 1e-4 .. 8e3): outside it the model
# is degenerate (no drop-out, or rates far beyond any shop) and the optimizer only
# wanders along flat ridges.
_LOG_BOUND = 9.0


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, start: MBGParams | None = None,
        max_iter: int = 200, penalty: float = 1e-4) -> MBGParams:
    """Maximum-likelihood MBG/NBD parameters for the customers ``(x, t_x, T)``.

    Optimises log-parameters with L-BFGS-B from ``start`` (or ``PRIOR``) and an exact
    gradient. A small ridge pulls the log-parameters toward ``start``: it decides the
    flat directions the data cannot (e.g. a and b together when nobody drops out) and
    is otherwise negligible. Returns ``start`` when the data cannot identify the model
    (fewer than two customers, nobody repeats, or nobody observed for any time) or the
    optimizer fails. Deterministic: the same input gives the same output.
    """
    base = PRIOR if start is None else start
    xa, ta, Ta = _as_arrays(x, t_x, T)
    if xa.ndim != 1 or not (xa.shape == ta.shape == Ta.shape):
        raise ValueError("x, t_x and T must be one-dimensional and of equal length")
    ok = np.isfinite(xa) & np.isfinite(ta) & np.isfinite(Ta) & (xa >= 0) & (ta >= 0)
    xa, ta, Ta = xa[ok], ta[ok], Ta[ok]
    count = xa.size
    if count < 2 or not np.any(xa > 0) or not np.any(Ta > 0):
        return base
    theta0 = np.clip(base.as_log_array(), -_LOG_BOUND, _LOG_BOUND)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = _terms(theta, xa, ta, Ta)
        diff = theta - theta0
        value = -ll.sum() / count + penalty * float(diff @ diff)
        gradient = -grad.sum(axis=0) / count + 2.0 * penalty * diff
        return float(value), gradient

    try:
        with np.errstate(all="ignore"):
            result = optimize.minimize(
                objective, theta0, jac=True, method="L-BFGS-B",
                bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
                options={"maxiter": max_iter, "ftol": 1e-10, "gtol": 1e-6})
    except (ValueError, FloatingPointError, ArithmeticError):
        return base
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        return base
    # Accept a run that stopped on its iteration cap if it still improved on the start.
    if not result.success and not result.fun < objective(theta0)[0]:
        return base
    return MBGParams.from_log_array(result.x)
