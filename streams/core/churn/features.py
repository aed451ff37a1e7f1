"""What the churn model reads about a buyer: the feature vector at an instant, and the
rows a snapshot keeps to rebuild it for training.

Every value comes from ``UserState`` (``first_purchase_at``, ``last_purchase_at``,
``gross_spend`` and the purchase-day aggregates ``UserState.fold_purchase_day`` keeps).
The formulas are those of :class:`streams.core.churn.model.Curve`, which scores; here
they are spelled out once per feature, and vectorised for a fit.
"""

from __future__ import annotations

import math

import numpy as np

from streams.core.churn.model import N_FEATURES
from streams.core.state import DAY, HALF_LIVES, UserState

_K = tuple(-math.log(2.0) / h for h in HALF_LIVES)

# A snapshot row: the buyer as of the snapshot instant (float32 in storage).
ROW_COLUMNS: tuple[str, ...] = (
    "recency_days", "tenure_days", "purchase_days", "spend", "last_day_spend",
    "last_gap_days", "mean_gap_days", "decayed_30", "decayed_90", "decayed_180")


def mean_gap_days(s: UserState) -> float:
    """Days between the first and last purchase days over the gaps between them."""
    if s.purchase_days < 2 or s.first_purchase_at is None or s.last_purchase_at is None:
        return 0.0
    return (int(s.last_purchase_at // DAY) - int(s.first_purchase_at // DAY)) \
        / (s.purchase_days - 1)


def row(s: UserState, now: float) -> list[float]:
    """Buyer ``s`` at ``now`` as a snapshot row (see ``ROW_COLUMNS``)."""
    last = s.last_purchase_at or 0.0
    first = s.first_purchase_at if s.first_purchase_at is not None else last
    r = max(0.0, (now - last) / DAY)
    d30, d90, d180 = s.decays()
    return [r, (last - first) / DAY + r, float(max(s.purchase_days, 1)), s.gross_spend,
            s.last_day_spend, float(s.last_gap_days), mean_gap_days(s),
            d30 * math.exp(_K[0] * r), d90 * math.exp(_K[1] * r), d180 * math.exp(_K[2] * r)]


def features(s: UserState, now: float) -> list[float]:
    """The feature vector of buyer ``s`` at ``now``, in ``model.FEATURE_NAMES`` order."""
    return feature_matrix(np.array([row(s, now)]))[0].tolist()


def feature_matrix(rows: np.ndarray) -> np.ndarray:
    """Features of snapshot rows, one per row; amounts below zero count as zero."""
    r, tenure, n, spend, last_spend, last_gap, gap = (
        rows[:, i].astype(np.float64) for i in range(7))
    decayed = rows[:, 7:10].astype(np.float64)
    n = np.maximum(n, 1.0)
    one = n < 2
    spend = np.maximum(spend, 0.0)
    safe_gap = np.where(gap > 0.0, gap, 1.0)
    x = np.empty((rows.shape[0], N_FEATURES))
    x[:, 0] = np.log1p(r)
    x[:, 1] = np.log1p(tenure)
    x[:, 2] = np.log(n)
    x[:, 3] = np.log1p(spend)
    x[:, 4] = np.log1p(spend / n)
    x[:, 5] = np.log1p(np.maximum(last_spend, 0.0))
    x[:, 6] = np.where(one, 0.0, np.log1p(np.maximum(last_gap, 0.0)))
    x[:, 7] = np.where(one, 0.0, np.log1p(np.maximum(gap, 0.0)))
    x[:, 8] = one.astype(np.float64)
    x[:, 9] = np.where(~one & (gap > 0.0), np.log1p(r / safe_gap), 0.0)
    x[:, 10:13] = np.log1p(decayed)
    return x
