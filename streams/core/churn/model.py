"""The learned churn score: p(no purchase within the horizon), and when it crosses a
threshold if the user does nothing more.

A model is a logistic regression on 13 features of a buyer (see ``FEATURE_NAMES``), with
weights on the raw features. Only four kinds of term move with time: recency, tenure,
recency over the mean gap and the decayed purchase-day counts. :class:`Curve` holds the
rest once, so a crossing costs a few dozen cheap evaluations. The score and the crossing
solver read the same :meth:`Curve.crossed`, so a deadline the solver returns is an
instant at which the stage rules see the threshold crossed.

Pure ``math``: this runs per event and per deadline. Time is in epoch seconds, ages in
days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.core.state import DAY, HALF_LIVES, UserState

LOGIT = "logit"  # churn_risk comes from the learned model
BTYD = "btyd"  # not enough matured labels yet: the MBG/NBD churn_risk stays in force

FEATURE_NAMES: tuple[str, ...] = (
    "log1p_recency", "log1p_tenure", "log_purchase_days", "log1p_spend",
    "log1p_mean_spend", "log1p_last_day_spend", "log1p_last_gap", "log1p_mean_gap",
    "one_purchase_day", "log1p_recency_over_mean_gap",
    "log1p_decayed_30", "log1p_decayed_90", "log1p_decayed_180")
N_FEATURES = len(FEATURE_NAMES)
_K = tuple(-math.log(2.0) / h for h in HALF_LIVES)

CROSSING_CAP_DAYS = 3 * 365.0  # the solver looks this far ahead, then gives up
_FIRST_STEP = DAY
_MAX_STEP = 16 * DAY  # search steps double up to this, then the answer is bisected
_TOLERANCE = 600.0  # seconds


@dataclass(frozen=True, slots=True)
class Quality:
    """How the scores a partition made one horizon earlier fared against what then
    happened: users scored, AUC, Brier score, share that made no purchase, and which
    scorer made them (the Brier score of ``btyd`` scores compares a different horizon)."""

    n: int
    auc: float | None
    brier: float
    base_rate: float
    scorer: str

    def to_list(self) -> list[Any]:
        return [self.n, self.auc, self.brier, self.base_rate, self.scorer]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> Quality:
        return cls(int(v[0]), None if v[1] is None else float(v[1]), float(v[2]),
                   float(v[3]), str(v[4]))


@dataclass(frozen=True, slots=True)
class ChurnModel:
    """One snapshot refit's churn scorer, logged with the refit so that live, replay and
    a restarted worker score alike."""

    kind: str  # LOGIT or BTYD
    fitted_at: float
    horizon_days: float
    weights: tuple[float, ...] = ()  # on FEATURE_NAMES, raw (standardisation folded in)
    bias: float = 0.0
    declining_threshold: float = 1.0  # scores at or above: declining (LOGIT only)
    churned_threshold: float = 1.0
    rows: int = 0  # labelled rows of the fit (or available, for BTYD)
    positives: int = 0  # of which made no purchase within the horizon
    quality: Quality | None = None

    @property
    def learned(self) -> bool:
        return self.kind == LOGIT

    def to_list(self) -> list[Any]:
        return [self.kind, self.fitted_at, self.horizon_days, list(self.weights), self.bias,
                self.declining_threshold, self.churned_threshold, self.rows, self.positives,
                None if self.quality is None else self.quality.to_list()]

    @classmethod
    def from_list(cls, v: Sequence[Any]) -> ChurnModel:
        return cls(str(v[0]), float(v[1]), float(v[2]), tuple(float(w) for w in v[3]),
                   float(v[4]), float(v[5]), float(v[6]), int(v[7]), int(v[8]),
                   None if v[9] is None else Quality.from_list(v[9]))


def _sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _log1p0(v: float) -> float:
    return math.log1p(v) if v > 0.0 else 0.0


# A logit this far from a threshold's is on the same side of it after the sigmoid, by
# many orders of magnitude more than its rounding: only closer ones need the sigmoid.
_MARGIN = 1e-6


def _logit_bounds(threshold: float) -> tuple[float, float]:
    """Logits below the first are under ``threshold``, above the second at or over it
    (after :func:`_sigmoid`); between them only the sigmoid itself can tell."""
    if not 1e-6 < threshold < 1.0 - 1e-6:
        return -math.inf, math.inf  # (no shortcut near 0 and 1)
    zt = math.log(threshold) - math.log1p(-threshold)
    return zt - _MARGIN, zt + _MARGIN


class Curve:
    """A buyer's logit as a function of the days ``r`` since their last purchase, for
    one model, with the terms that do not move with time summed once."""

    __slots__ = ("base", "d30", "d90", "d180", "inv_gap", "last", "tenure0", "w30", "w90",
                 "w180", "w_gap", "w_rec", "w_ten")

    def __init__(self, model: ChurnModel, s: UserState) -> None:
        w = model.weights
        last = s.last_purchase_at or 0.0
        first = s.first_purchase_at if s.first_purchase_at is not None else last
        n = s.purchase_days if s.purchase_days > 0 else 1
        spend = s.gross_spend if s.gross_spend > 0.0 else 0.0
        z = model.bias + w[2] * math.log(n) + w[3] * math.log1p(spend) \
            + w[4] * math.log1p(spend / n) + w[5] * _log1p0(s.last_day_spend)
        self.inv_gap = 0.0
        if n < 2:
            z += w[8]
        else:
            gap = (int(last // DAY) - int(first // DAY)) / (n - 1)
            z += w[6] * math.log1p(s.last_gap_days) + w[7] * _log1p0(gap)
            if gap > 0.0:
                self.inv_gap = 1.0 / gap
        self.base = z
        self.last = last
        self.tenure0 = (last - first) / DAY
        self.w_rec, self.w_ten, self.w_gap = w[0], w[1], w[9]
        self.w30, self.w90, self.w180 = w[10], w[11], w[12]
        self.d30, self.d90, self.d180 = s.decays()

    def z(self, r: float) -> float:
        log1p, exp = math.log1p, math.exp
        z = self.base + self.w_rec * log1p(r) + self.w_ten * log1p(self.tenure0 + r)
        if self.inv_gap:
            z += self.w_gap * log1p(r * self.inv_gap)
        z += self.w30 * log1p(self.d30 * exp(_K[0] * r))
        z += self.w90 * log1p(self.d90 * exp(_K[1] * r))
        return z + self.w180 * log1p(self.d180 * exp(_K[2] * r))

    def score_at(self, t: float) -> float:
        r = (t - self.last) / DAY
        return _sigmoid(self.z(r if r > 0.0 else 0.0))

    def crossed(self, t: float, threshold: float) -> bool:
        return self.score_at(t) >= threshold

    def crossing(self, threshold: float, start: float) -> float | None:
        """See :func:`crossing`."""
        below, above = _logit_bounds(threshold)
        # Curve.z spelled out over locals: this loop is the hottest code of a replay
        log1p, exp = math.log1p, math.exp
        base, last, tenure0, inv_gap = self.base, self.last, self.tenure0, self.inv_gap
        w_rec, w_ten, w_gap = self.w_rec, self.w_ten, self.w_gap
        w30, w90, w180, d30, d90, d180 = \
            self.w30, self.w90, self.w180, self.d30, self.d90, self.d180
        k30, k90, k180 = _K

        def crossed(t: float) -> bool:
            r = (t - last) / DAY
            if not r > 0.0:
                r = 0.0
            v = base + w_rec * log1p(r) + w_ten * log1p(tenure0 + r)
            if inv_gap:
                v += w_gap * log1p(r * inv_gap)
            v += w30 * log1p(d30 * exp(k30 * r))
            v += w90 * log1p(d90 * exp(k90 * r))
            v += w180 * log1p(d180 * exp(k180 * r))
            if v < below:
                return False
            if v > above:
                return True
            return _sigmoid(v) >= threshold

        if crossed(start):
            return start
        end = start + CROSSING_CAP_DAYS * DAY
        lo, step = start, _FIRST_STEP
        while True:
            hi = lo + step
            if hi > end:
                return None
            if crossed(hi):
                break
            lo = hi
            if step < _MAX_STEP:
                step += step
        while hi - lo > _TOLERANCE:
            mid = lo + (hi - lo) / 2.0
            if crossed(mid):
                hi = mid
            else:
                lo = mid
        return hi


_cached: tuple[ChurnModel, tuple[object, ...], Curve] | None = None


def curve(model: ChurnModel, s: UserState) -> Curve:
    """``Curve(model, s)``, built once for a run of calls about the same buyer (a wake's
    crossing, its stage and its alert's score read the same one)."""
    global _cached
    key = (s.last_purchase_at, s.first_purchase_at, s.purchase_days, s.gross_spend,
           s.last_day_spend, s.last_gap_days, s.decays())
    hit = _cached
    if hit is not None and hit[0] is model and hit[1] == key:
        return hit[2]
    made = Curve(model, s)
    _cached = (model, key, made)
    return made


def score(model: ChurnModel, s: UserState, now: float) -> float:
    """p(no purchase within the model's horizon from ``now``) for buyer ``s``."""
    return curve(model, s).score_at(now)


def crossing(model: ChurnModel, s: UserState, threshold: float, start: float) -> float | None:
    """The first instant ``t >= start`` at which buyer ``s``'s score reaches ``threshold``
    if they do nothing more, to ``_TOLERANCE``; None if not within ``CROSSING_CAP_DAYS``.

    The score is not monotone (it dips for a while after a purchase), so the search
    walks forward in steps that double from a day up to ``_MAX_STEP`` rather than trust
    a bracket, then bisects the first step that crosses. An excursion above the
    threshold shorter than a step can be missed: the answer is then a later crossing.
    """
    return curve(model, s).crossing(threshold, start)


def score_each(model: ChurnModel, buyers: Sequence[UserState], now: float) -> list[float]:
    """``score(model, s, now)`` for each of ``buyers``, bit for bit (a test holds it to
    that), without a :class:`Curve` per buyer: a re-fit scores its whole sample at once.
    The arithmetic is :class:`Curve`'s, in the same order."""
    log, log1p, exp = math.log, math.log1p, math.exp
    w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12 = model.weights
    bias = model.bias
    k30, k90, k180 = _K
    out: list[float] = []
    for s in buyers:
        last = s.last_purchase_at or 0.0
        first = s.first_purchase_at if s.first_purchase_at is not None else last
        n = s.purchase_days if s.purchase_days > 0 else 1
        spend = s.gross_spend if s.gross_spend > 0.0 else 0.0
        z = bias + w2 * log(n) + w3 * log1p(spend) + w4 * log1p(spend / n) \
            + w5 * _log1p0(s.last_day_spend)
        inv_gap = 0.0
        if n < 2:
            z += w8
        else:
            gap = (int(last // DAY) - int(first // DAY)) / (n - 1)
            z += w6 * log1p(s.last_gap_days) + w7 * _log1p0(gap)
            if gap > 0.0:
                inv_gap = 1.0 / gap
        r = (now - last) / DAY
        r = r if r > 0.0 else 0.0
        z = z + w0 * log1p(r) + w1 * log1p((last - first) / DAY + r)
        if inv_gap:
            z += w9 * log1p(r * inv_gap)
        d30, d90, d180 = s.decays()
        z += w10 * log1p(d30 * exp(k30 * r))
        z += w11 * log1p(d90 * exp(k90 * r))
        out.append(_sigmoid(z + w12 * log1p(d180 * exp(k180 * r))))
    return out
