"""Offline buy-till-you-die baselines for ``churn_eval.py``, fitted on every customer.

- BG/NBD (Fader, Hardie & Lee 2005): drop-out only after repeat purchases, so it calls
  every one-time buyer alive;
- Pareto/NBD (Schmittlein, Morrison & Colombo 1987): while alive a customer buys as a
  Poisson process with rate ``lambda ~ Gamma(r, alpha)``, and lives an exponential time
  with rate ``mu ~ Gamma(s, beta)``.

A customer is ``(x, t_x, T)``: ``x`` repeat purchase days, the last ``t_x`` after the
first, observed for ``T`` since the first. The Pareto/NBD likelihood is the closed form
with the Gaussian hypergeometric function; here it is evaluated in logs, with the
hypergeometric argument always in [0, 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

# --- BG/NBD ---------------------------------------------------------------------------------

def bgnbd_log_likelihood(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                         T: np.ndarray) -> float:
    r, alpha, a, b = np.exp(theta)
    n = r + x
    base = (special.gammaln(n) - special.gammaln(r) + r * math.log(alpha)
            + special.betaln(a, b + x) - special.betaln(a, b) - n * np.log(alpha + T))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = math.log(a) - np.log(np.maximum(b + x - 1.0, 1e-300)) \
            + n * (np.log(alpha + T) - np.log(alpha + t_x))
    return float((base + np.where(x > 0, np.logaddexp(0.0, c), 0.0)).sum())


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    start = np.log([1.0, float(np.mean(T)) / 10.0, 1.0, 1.0])
    result = optimize.minimize(lambda th: -bgnbd_log_likelihood(th, x, t_x, T) / x.size,
                               start, method="L-BFGS-B", bounds=[(-9.0, 9.0)] * 4)
    return np.exp(result.x)


def bgnbd_p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                  T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(a / (b + x - 1.0)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, special.expit(-z), 1.0)


# --- Pareto/NBD -----------------------------------------------------------------------------

def _log_a0(r: float, alpha: float, s: float, beta: float, x: np.ndarray,
            t: np.ndarray) -> np.ndarray:
    """log of 2F1(...) / (max(alpha, beta) + t)^(r+s+x), the term of A0 at time ``t``."""
    n = r + s + x
    if alpha >= beta:
        z = (alpha - beta) / (alpha + t)
        hyp = special.hyp2f1(n, s + 1.0, n + 1.0, z)
        return np.log(hyp) - n * np.log(alpha + t)
    z = (beta - alpha) / (beta + t)
    hyp = special.hyp2f1(n, r + x, n + 1.0, z)
    return np.log(hyp) - n * np.log(beta + t)


def _log_alive_term(r: float, alpha: float, s: float, beta: float, x: np.ndarray,
                    T: np.ndarray) -> np.ndarray:
    """log of 1 / ((alpha+T)^(r+x) (beta+T)^s): alive until T."""
    return -(r + x) * np.log(alpha + T) - s * np.log(beta + T)


def pnbd_terms(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per customer: the log-likelihood, and the log of its alive-at-T part (so that
    P(alive) = exp(log_alive - log_likelihood))."""
    r, alpha, s, beta = (float(v) for v in params)
    head = special.gammaln(r + x) - special.gammaln(r) + r * math.log(alpha) + s * math.log(beta)
    alive = _log_alive_term(r, alpha, s, beta, x, T)
    a_tx = _log_a0(r, alpha, s, beta, x, t_x)
    a_T = _log_a0(r, alpha, s, beta, x, T)
    # A0 = e^a_tx - e^a_T (a_tx >= a_T); the likelihood adds s/(r+s+x) A0 to e^alive
    with np.errstate(divide="ignore", invalid="ignore"):
        log_a0 = a_tx + np.log1p(-np.exp(np.minimum(a_T - a_tx, 0.0)))
        log_dead = np.log(s / (r + s + x)) + log_a0
    log_dead = np.where(np.isfinite(log_dead), log_dead, -np.inf)
    return head + np.logaddexp(alive, log_dead), head + alive


def pnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                        T: np.ndarray) -> float:
    ll, _ = pnbd_terms(params, x, t_x, T)
    return float(ll.sum())


def fit_pnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Maximum-likelihood (r, alpha, s, beta), in the time unit of the data."""
    scale = float(np.mean(T))

    def objective(theta: np.ndarray) -> float:
        value = -pnbd_log_likelihood(np.exp(theta), x, t_x, T) / x.size
        return value if math.isfinite(value) else 1e300

    start = np.log([0.5, scale / 4.0, 0.5, scale])
    result = optimize.minimize(objective, start, method="Nelder-Mead",
                               options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 8000,
                                        "maxfev": 16000})
    return np.exp(result.x)


def pnbd_p_alive(params: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                 T: np.ndarray) -> np.ndarray:
    ll, alive = pnbd_terms(params, x, t_x, T)
    return np.exp(alive - ll)


def pnbd_expected(params: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray,
                  T: np.ndarray) -> np.ndarray:
    """Expected purchases in the next ``t`` given each customer's history."""
    r, alpha, s, beta = (float(v) for v in params)
    while_alive = (r + x) * (beta + T) / ((alpha + T) * (s - 1.0)) \
        * (1.0 - ((beta + T) / (beta + T + t)) ** (s - 1.0))
    return pnbd_p_alive(params, x, t_x, T) * while_alive
