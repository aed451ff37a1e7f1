"""Fitting the churn model, its label-free thresholds, and how good its scores were.

The fit is an L2-regularised logistic regression on standardised features, by Newton's
method with step halving. It must give the same model in the live worker, in a replay
and after a restart, so it avoids BLAS reductions (``einsum`` runs numpy's own loops)
and rounds what it returns to 12 significant digits: a model that differs by a few ulps
between two machines is then almost always the same model, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from streams.core.churn.model import LOGIT, ChurnModel, Quality

L2 = 300.0  # ridge on the standardised weights (intercept free); chosen on the dev cut
MAX_ITER = 50


def sig(value: float, digits: int = 12) -> float:
    """``value`` rounded to ``digits`` significant digits."""
    if value == 0.0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits - 1}e}")


@dataclass(frozen=True, slots=True)
class Fit:
    weights: np.ndarray  # on raw features
    bias: float
    iterations: int


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2) -> Fit:
    """Weights on the raw columns of ``x`` for labels ``y`` (1: no purchase)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = x.shape
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)  # a constant column gets weight 0
    xs = np.empty((n, k + 1))
    xs[:, 0] = 1.0
    xs[:, 1:] = (x - mean) / scale
    penalty = np.full(k + 1, float(l2))
    penalty[0] = 0.0
    base = min(max(float(y.mean()), 1e-6), 1.0 - 1e-6)
    w = np.zeros(k + 1)
    w[0] = math.log(base / (1.0 - base))

    def objective(w: np.ndarray) -> float:
        z = np.einsum("ij,j->i", xs, w)
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    current = objective(w)
    iterations = 0
    while iterations < MAX_ITER:
        iterations += 1
        p = 1.0 / (1.0 + np.exp(-np.einsum("ij,j->i", xs, w)))
        grad = np.einsum("ij,i->j", xs, p - y) + penalty * w
        # the weights folded into one operand first: the same products, summed in the
        # same order, bit for bit, in well under half the time of a three-operand einsum
        hess = np.einsum("ij,ik->jk", xs * (p * (1.0 - p))[:, None], xs) + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            candidate = w - t * step
            value = objective(candidate)
            if value <= current or t < 1e-6:
                break
            t *= 0.5
        w, gained, current = candidate, current - value, value
        if float(np.max(np.abs(t * step))) < 1e-9 or 0.0 <= gained < 1e-12 * max(1.0, value):
            break
    weights = w[1:] / scale
    return Fit(weights, float(w[0] - np.sum(weights * mean)), iterations)


def logit_model(f: Fit, fitted_at: float, horizon_days: float, rows: int,
                positives: int, quality: Quality | None) -> ChurnModel:
    """The model of a fit, rounded (thresholds are set once the model has scored)."""
    return ChurnModel(LOGIT, fitted_at, horizon_days, tuple(sig(float(w)) for w in f.weights),
                      sig(f.bias), rows=rows, positives=positives, quality=quality)


def recall_threshold(p: np.ndarray, recall: float, horizons: float = 1.0) -> float:
    """The largest ``t`` such that the buyers with ``p >= t`` carry at least ``recall``
    of the model's expected lapsers over ``horizons`` horizons in a row, each buyer's
    chance of that taken as ``p ** horizons``: the model's own estimate that "p >= t"
    finds that share of the users who will not buy for that long. Needs no label."""
    s = np.sort(np.asarray(p, dtype=np.float64))[::-1]
    if s.size == 0:
        return 1.0
    cum = np.cumsum(s ** horizons)
    i = int(np.searchsorted(cum, recall * cum[-1], side="left"))
    value = float(s[min(i, s.size - 1)])
    t = sig(value)
    # rounded up, the threshold would leave out the very user who reaches the share
    return t if t <= value else sig(value - abs(value) * 1e-11)


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(a random positive scores above a random negative), ties counting half; None
    with one class only."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    ranks = np.empty(scores.size)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def quality(scores: np.ndarray, labels: np.ndarray, scorer: str) -> Quality | None:
    """How scores fared against labels (1: no purchase); None without any."""
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.size == 0:
        return None
    area = auc(p, y > 0.5)
    return Quality(int(p.size), None if area is None else sig(area, 6),
                   sig(float(np.mean((p - y) ** 2)), 6), sig(float(y.mean()), 6), scorer)
