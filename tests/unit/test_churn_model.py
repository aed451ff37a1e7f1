"""The learned churn score's pure parts (streams.core.churn, streams.core.uplift): the
scorer agrees with the training features, the crossing solver with a brute-force scan,
the fit is deterministic and finds a planted signal, the label-free threshold keeps its
promised recall, and the records round-trip."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from streams.core.churn import features, fit
from streams.core.churn.memory import Snapshot
from streams.core.churn.model import (
    LOGIT,
    N_FEATURES,
    ChurnModel,
    Curve,
    Quality,
    crossing,
    score,
    score_each,
)
from streams.core.logs import pack_entry
from streams.core.state import DAY, RECORD_FIELDS, UserState
from streams.core.uplift import Outcomes, uplift

T0 = 1_700_000_000.0 - 1_700_000_000.0 % DAY  # a UTC midnight


def buyer(rng: random.Random, n_days: int) -> UserState:
    """A buyer with ``n_days`` purchase days (sometimes two orders on one day), folded
    in time order as the core does."""
    s = UserState(f"u{rng.random()}", T0, T0, T0)
    t = T0
    for _ in range(n_days):
        for _ in range(rng.choice((1, 1, 2))):
            at = t + rng.uniform(0, 20_000)
            amount = round(rng.uniform(5, 80), 2)
            s.fold_purchase_day(at, amount)
            s.first_purchase_at = s.first_purchase_at or at
            s.last_purchase_at = at
            s.purchase_log += pack_entry((at, amount))  # every purchase: no cap
            s.orders += 1
            s.gross_spend += amount
        t += rng.randint(1, 60) * DAY
    return s


def random_model(rng: random.Random, monotone: bool) -> ChurnModel:
    """A model; ``monotone``: every time-moving term raises the score as time passes."""
    w = [rng.uniform(-1, 1) for _ in range(N_FEATURES)]
    if monotone:
        w[0], w[1], w[9] = rng.uniform(0.2, 1.5), rng.uniform(0.0, 0.5), rng.uniform(0.0, 1.0)
        w[10], w[11], w[12] = (-rng.uniform(0.0, 1.0) for _ in range(3))
    return ChurnModel(LOGIT, T0, 84.0, tuple(w), rng.uniform(-3, 0), 0.6, 0.8)


def test_score_is_the_logistic_of_the_training_features() -> None:
    rng = random.Random(1)
    for _ in range(200):
        s = buyer(rng, rng.randint(1, 6))
        m = random_model(rng, monotone=False)
        now = (s.last_purchase_at or T0) + rng.uniform(0, 400) * DAY
        z = m.bias + sum(w * x for w, x in zip(m.weights, features.features(s, now),
                                                strict=True))
        assert score(m, s, now) == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-6)


def test_crossing_matches_a_brute_force_scan_on_monotone_scores() -> None:
    rng = random.Random(2)
    found = 0
    for _ in range(150):
        s = buyer(rng, rng.randint(1, 5))
        m = random_model(rng, monotone=True)
        start = (s.last_purchase_at or T0) + 14 * DAY
        threshold = rng.uniform(0.3, 0.95)
        got = crossing(m, s, threshold, start)
        # the first hour at which the score is at or above the threshold, by scanning
        scan = next((start + h * 3600.0 for h in range(24 * 400)
                     if score(m, s, start + h * 3600.0) >= threshold), None)
        if scan is None:
            assert got is None or got > start + 399 * DAY
            continue
        found += 1
        assert got is not None
        assert score(m, s, got) >= threshold  # the stage rules see it crossed
        # the true first crossing lies in (scan - 1 h, scan]; the solver returns a
        # crossed instant at most its 10-minute tolerance after it
        assert scan - 3600.0 < got <= scan + 600.0
    assert found > 50  # the scan is not vacuous


def _walk(m: ChurnModel, s: UserState, threshold: float, start: float) -> float | None:
    """The solver's documented walk, through the sigmoid at every step."""
    c = Curve(m, s)
    if c.crossed(start, threshold):
        return start
    lo, step, end = start, DAY, start + 3 * 365 * DAY
    while True:
        hi = lo + step
        if hi > end:
            return None
        if c.crossed(hi, threshold):
            break
        lo, step = hi, min(step + step, 16 * DAY)
    while hi - lo > 600.0:
        mid = lo + (hi - lo) / 2.0
        hi, lo = (mid, lo) if c.crossed(mid, threshold) else (hi, mid)
    return hi


def test_the_fast_crossing_is_the_walk_through_the_sigmoid_bit_for_bit() -> None:
    # the solver compares logits and takes the sigmoid only near the threshold; its
    # answers must be the plain walk's exactly (replays before and after agree)
    rng = random.Random(7)
    for i in range(300):
        s = buyer(rng, rng.randint(1, 6))
        m = random_model(rng, monotone=i % 2 == 0)
        start = (s.last_purchase_at or T0) + rng.uniform(0, 60) * DAY
        # thresholds at a score the walk meets exactly, and anywhere, and at the edges
        probe = start + rng.randint(1, 40) * DAY
        for threshold in (score(m, s, probe), rng.uniform(0.05, 0.99), 1e-7, 1.0):
            assert crossing(m, s, threshold, start) == _walk(m, s, threshold, start)


def test_a_whole_sample_is_scored_as_each_buyer_is_bit_for_bit() -> None:
    # a re-fit's thresholds come from these scores: replays before and after agree
    rng = random.Random(11)
    for _ in range(40):
        m = random_model(rng, monotone=rng.random() < 0.5)
        sample = [buyer(rng, rng.randint(1, 6)) for _ in range(30)]
        sample[0].gross_spend = -3.0  # refunds beyond the purchases
        sample[1].last_purchase_at = sample[1].first_purchase_at = None
        now = T0 + rng.uniform(-30, 500) * DAY  # before some buyers' last purchase too
        assert score_each(m, sample, now) == [score(m, s, now) for s in sample]


def test_fit_is_deterministic_and_finds_a_planted_signal() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 4))
    true = np.array([1.5, -1.0, 0.0, 0.0])
    y = (rng.random(3000) < 1 / (1 + np.exp(-(x @ true - 0.3)))).astype(float)
    a, b = fit.fit(x, y, l2=1.0), fit.fit(x.copy(), y.copy(), l2=1.0)
    assert np.array_equal(a.weights, b.weights) and a.bias == b.bias
    assert a.weights[0] == pytest.approx(1.5, abs=0.2)
    assert a.weights[1] == pytest.approx(-1.0, abs=0.2)
    assert abs(a.weights[2]) < 0.15 and abs(a.weights[3]) < 0.15
    # a heavy ridge pulls the weights toward zero
    assert np.all(np.abs(fit.fit(x, y, l2=1e6).weights) < np.abs(a.weights) + 1e-12)


def test_recall_threshold_keeps_its_promise_without_labels() -> None:
    rng = np.random.default_rng(4)
    p = rng.beta(2, 1.2, size=40_000)
    t = fit.recall_threshold(p, 0.8)
    assert p[p >= t].sum() >= 0.8 * p.sum()
    flagged = p[p >= t]
    assert flagged.sum() - flagged.min() < 0.8 * p.sum()  # the largest such threshold
    # when the probabilities are calibrated, the realised recall is the promised one
    lapsed = rng.random(p.size) < p
    assert (lapsed & (p >= t)).sum() / lapsed.sum() == pytest.approx(0.8, abs=0.01)
    assert fit.recall_threshold(np.array([]), 0.8) == 1.0


def test_recall_threshold_over_several_horizons() -> None:
    """Churned counts the buyers expected to stay quiet for two horizons running:
    p ** 2 each, when the horizons are independent trials."""
    rng = np.random.default_rng(6)
    p = rng.beta(2, 1.2, size=40_000)
    t = fit.recall_threshold(p, 0.8, horizons=2)
    assert (p[p >= t] ** 2).sum() >= 0.8 * (p ** 2).sum()
    assert t > fit.recall_threshold(p, 0.8)  # fewer, surer buyers than over one horizon
    gone = (rng.random(p.size) < p) & (rng.random(p.size) < p)
    assert (gone & (p >= t)).sum() / gone.sum() == pytest.approx(0.8, abs=0.01)


def test_auc_and_quality_against_brute_force() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(300), 1)  # ties on purpose
    labels = rng.random(300) < 0.4
    pairs = [(a, b) for a, b in itertools.product(scores[labels], scores[~labels])]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert fit.auc(scores, labels) == pytest.approx(brute, abs=1e-12)
    assert fit.auc(scores, np.zeros(300, dtype=bool)) is None
    q = fit.quality(scores, labels.astype(np.uint8), LOGIT)
    assert q is not None and q.n == 300
    assert q.base_rate == pytest.approx(labels.mean(), rel=1e-5)
    assert q.brier == pytest.approx(float(np.mean((scores - labels) ** 2)), rel=1e-5)


def test_model_and_snapshot_records_round_trip() -> None:
    m = ChurnModel(LOGIT, T0, 84.0, tuple(float(i) / 7 for i in range(N_FEATURES)), -1.25,
                   0.55, 0.8, 5000, 4000, Quality(1200, 0.74, 0.13, 0.8, "btyd"))
    assert ChurnModel.from_list(m.to_list()) == m
    rng = random.Random(6)
    buyers = [(h, buyer(rng, rng.randint(1, 4))) for h in range(1, 40)]
    snap = Snapshot.take(T0 + 400 * DAY, LOGIT, buyers, [0.5] * len(buyers))
    snap.label(lambda h: None if h % 5 == 0 else T0 + (500 if h % 2 else 1) * DAY)
    back = Snapshot.from_record(snap.record())
    back.apply_labels(snap.labels_record())
    for a, b in zip(snap.labelled(), back.labelled(), strict=True):
        assert np.array_equal(a, b)
    rows, labels, _ = back.labelled()
    assert rows.shape[0] == len(buyers) - len(buyers) // 5  # users gone are left out
    assert labels.sum() == sum(1 for h, _ in buyers if h % 5 and not h % 2)


def test_a_user_record_from_before_the_churn_fields_loads_with_them_refolded() -> None:
    s = buyer(random.Random(7), 5)
    values = s.to_list()
    assert UserState.from_list(values) == s
    old = UserState.from_list(values[: RECORD_FIELDS.index("spend_days") + 1])
    assert (old.purchase_days, old.last_gap_days) == (s.purchase_days, s.last_gap_days)
    assert old.last_day_spend == pytest.approx(s.last_day_spend)
    assert old.decay_90 == pytest.approx(s.decay_90)


def test_uplift_interval() -> None:
    u = uplift(Outcomes(1000, 300), Outcomes(1000, 200))
    assert u.estimate == pytest.approx(0.1)
    half = 1.959963984540054 * math.sqrt(0.3 * 0.7 / 1000 + 0.2 * 0.8 / 1000)
    assert (u.low, u.high) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert uplift(Outcomes(10, 3), Outcomes()).estimate is None
