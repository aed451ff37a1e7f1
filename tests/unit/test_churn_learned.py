"""The learned churn score inside one partition, on a purchase stream whose truth is known:
each customer buys at their own rate until an unseen moment when they leave for good.

The model must switch on by itself once enough snapshots have matured, rank the users
who have truly left above those still alive, report a live quality better than chance,
and keep the stages consistent with its thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from streams.core.churn import stages
from streams.core.churn.fit import auc
from streams.core.churn.model import LOGIT, score
from streams.core.state import CHURNED, DECLINING
from streams.testing import Harness, at
from tests.support.lapses import END_DAY, USERS, lapse_stream


@pytest.fixture(scope="module")
def run() -> tuple[Harness, dict[str, float]]:
    events, left = lapse_stream(11)
    h = Harness()
    h.send(*events)
    h.advance_to(at(END_DAY))
    return h, left


def test_the_learned_model_switches_on_and_scores_every_buyer(
        run: tuple[Harness, dict[str, float]]) -> None:
    h, _ = run
    model = h.processor.model.churn
    assert model is not None and model.kind == LOGIT
    assert model.rows >= h.settings.churn_min_rows
    assert 0.0 < model.declining_threshold <= model.churned_threshold < 1.0
    now = at(END_DAY)
    for user in ("c0", "c1", "c2"):
        snap = h.snapshot(user)
        assert snap["churn_scorer"] == LOGIT
        assert snap["churn_risk"] == pytest.approx(score(model, h.state(user), now), abs=1e-6)


def test_it_ranks_the_users_who_truly_left_above_those_alive(
        run: tuple[Harness, dict[str, float]]) -> None:
    h, left = run
    users = sorted(left)
    gone = np.array([left[u] < END_DAY for u in users])
    risk = np.array([h.snapshot(u)["churn_risk"] for u in users])
    recency = np.array([END_DAY - (h.state(u).last_purchase_at or 0.0) for u in users])
    area = auc(risk, gone)
    assert area is not None and area > 0.95
    assert area >= (auc(recency, gone) or 0.0) - 0.02  # at least as good as recency, near
    quality = h.processor.model.churn.quality  # type: ignore[union-attr]
    assert quality is not None and quality.scorer == LOGIT
    assert quality.auc is not None and quality.auc > 0.85  # its own live measure agrees


def test_stages_follow_the_thresholds(run: tuple[Harness, dict[str, float]]) -> None:
    h, left = run
    model = h.processor.model.churn
    assert model is not None
    now = at(END_DAY)
    counted = {CHURNED: 0, DECLINING: 0}
    for user in left:
        s = h.state(user)
        decline_floor, _ = stages.floors(s, h.settings)
        if s.stage in counted:
            counted[s.stage] += 1
        elif now >= decline_floor:  # active past the floor: below the declining threshold
            assert score(model, s, now) < model.declining_threshold, user
    assert counted[CHURNED] > USERS // 4 and counted[DECLINING] > 0


@pytest.mark.parametrize("reach_days", [3 * 365.0, 4.0])
def test_a_new_model_wakes_the_same_buyers_as_a_walk_over_every_user(
        monkeypatch: pytest.MonkeyPatch, reach_days: float) -> None:
    """A re-fit walks only the users with a wake and the dormant buyers (no crossing in
    reach), not every user: it must wake exactly whom a walk over every user wakes, and
    every buyer not churned must be in one of the two. A short reach of the crossing
    solver leaves many buyers dormant."""
    import streams.core.processor as processor_module
    monkeypatch.setattr("streams.core.churn.model.CROSSING_CAP_DAYS", reach_days)
    from streams.core.refits import model_wakeups

    compared: list[int] = []

    def both(store, old, new, at_, settings, owns=None, buyers=None):  # type: ignore[no-untyped-def]
        every = sorted(model_wakeups(store, old, new, at_, settings, owns),
                       key=lambda w: w[0])
        some = sorted(model_wakeups(store, old, new, at_, settings, owns, buyers),
                      key=lambda w: w[0])
        assert [(u, w) for u, _, w in some] == [(u, w) for u, _, w in every]
        active = {u for u, s in store.items() if s.orders and s.stage != CHURNED}
        assert active <= set(buyers()) if buyers is not None else True
        compared.append(len(every))
        return iter(some)

    monkeypatch.setattr(processor_module, "model_wakeups", both)
    events, _ = lapse_stream(5)
    h = Harness()
    dormant_seen = 0
    for i, event in enumerate(events):
        h.send(event)
        if i % 50 == 0:
            dormant_seen = max(dormant_seen, len(h.processor.dormant))
    h.advance_to(at(END_DAY))
    assert sum(1 for n in compared if n) >= 2, compared  # some re-fits woke buyers
    assert (dormant_seen > 0) == (reach_days < 30), dormant_seen


def test_alerts_under_the_learned_score_still_explain_the_users_rhythm(
        run: tuple[Harness, dict[str, float]]) -> None:
    """The stage comes from the score, but the evidence keeps the usual gap (the rhythm
    is built only when the stage changes: decisions._stage_now)."""
    h, _ = run
    checked = 0
    for alert in h.alerts:
        evidence = alert["evidence"]
        assert evidence["gap_source"] in ("own", "population")
        if evidence["churn_scorer"] != LOGIT or evidence["gap_source"] != "own":
            continue
        s = h.state(alert["user_id"])
        if evidence["orders"] != s.orders:
            continue  # bought since: the rhythm moved on
        gap = s.avg_gap_days()
        assert gap is not None
        assert evidence["usual_gap_days"] == round(gap, 3), alert["alert_id"]
        checked += 1
    assert checked > USERS // 10
