"""The population model of a partition: when it is re-fitted, on which users, and what a
re-fit moves (the lifecycle it drives: test_lifecycle.py)."""

from __future__ import annotations

import random

from streams.core.population import Model, Sample, refit, user_hash
from streams.core.state import UserState
from streams.core.timefmt import rfc3339
from streams.settings import Settings
from streams.testing import DAY, HarnessFactory, at, make_event


def test_refit_happens_at_epoch_boundaries_of_stream_time(harness: HarnessFactory) -> None:
    h = harness(refit_interval_days=7.0)
    h.send(make_event("u", "page_view", 1))
    assert h.processor.model.fitted_at is None
    h.send(make_event("u", "page_view", 6.99))
    assert h.processor.model.fitted_at is None
    h.send(make_event("u", "page_view", 7.0))
    assert h.processor.model.fitted_at == at(7)
    h.advance_days(20.5)  # no events: the clock alone passes the day-14 boundary
    assert h.processor.model.fitted_at == at(14)
    assert at(14) % (7 * DAY) == 0.0


def test_refit_never_sees_events_after_its_instant(harness: HarnessFactory) -> None:
    h = harness(refit_min_buyers=5, refit_interval_days=7.0, top_tier_share=0.1)
    for i, spend in enumerate((10.0, 20.0, 30.0, 40.0, 50.0)):
        h.send(make_event(f"b{i}", "purchase", 1 + i, amount=spend))
    h.send(make_event("b4", "purchase", 8, amount=1000.0),  # after the refit at day 7
           *(make_event(f"late{i}", "purchase", 8 + i * 0.1, amount=5.0) for i in range(5)))
    model = h.processor.model
    assert model.fitted_at == at(7)
    assert model.buyers == 5
    assert model.top_min == 50.0  # b4's day-8 order is not in it
    h.advance_days(14)
    assert h.processor.model.buyers == 10
    assert h.processor.model.top_min == 1050.0


def test_refit_sample_is_bottom_k_by_hash_whatever_the_arrival_order() -> None:
    users = [f"user-{i}" for i in range(300)]
    expected = sorted(sorted(users, key=user_hash)[:40])
    for seed in range(5):
        shuffled = users[:]
        random.Random(seed).shuffle(shuffled)
        sample = Sample(40)
        for u in shuffled + shuffled[:50]:  # offered again: no effect
            sample.offer(u)
        assert sorted(sample._members) == expected  # the members, whatever the heap order
        assert len(sample) == 40


def test_the_sample_by_hash_follows_every_change_between_refits() -> None:
    """``hashed()`` is kept between re-fits; each offer or load that changes the members
    must show in the next one."""
    users = [f"user-{i}" for i in range(200)]
    rng = random.Random(3)
    rng.shuffle(users)
    sample = Sample(25)
    seen: list[str] = []
    for step, u in enumerate(users):
        sample.offer(u)
        seen.append(u)
        if step % 7 == 0:
            want = sorted((user_hash(v), v) for v in seen)[:25]
            assert list(sample.hashed()) == want
    bulk = Sample(25)
    bulk.offer(users[0])
    assert bulk.hashed() == ((user_hash(users[0]), users[0]),)
    bulk.load(users[1:])
    assert list(bulk.hashed()) == sorted((user_hash(v), v) for v in users)[:25]


def test_refit_is_the_same_whatever_the_arrival_order(harness: HarnessFactory) -> None:
    events = []
    for i in range(60):
        events.append(make_event(f"u{i}", "purchase", 1.0, amount=float(10 + i % 13)))
        if i % 3 == 0:
            events.append(make_event(f"u{i}", "purchase", 2.0 + (i % 4), amount=5.0))
    events.sort(key=lambda e: e.occurred_at)
    models = []
    for seed in range(3):
        # shuffle only among events of the same time: the same stream, another interleaving
        rng = random.Random(seed)
        tiebreak = {e.event_id: rng.random() for e in events}
        order = sorted(events, key=lambda e: (e.occurred_at, tiebreak[e.event_id]))
        assert seed == 0 or order != events
        h = harness(refit_min_buyers=10, population_sample_size=40).send(*order)
        h.advance_days(8)
        models.append(h.processor.model.to_list())
    assert models[0] == models[1] == models[2]
    assert models[0][1] is not None  # tiers exist: the fit really ran


def test_refit_function_uses_states_as_given() -> None:
    settings = Settings().with_overrides(refit_min_buyers=3)
    states = []
    for i, spend in enumerate((5.0, 15.0, 25.0, 35.0)):
        s = UserState(user_id=f"u{i}", first_seen_at=at(0), last_event_at=at(i),
                      last_active_at=at(i), orders=2, first_purchase_at=at(0),
                      last_purchase_at=at(1 + i), gross_spend=spend)
        states.append(s)
    model = refit(Model.prior(settings), states, at(10), settings)
    assert model.fitted_at == at(10) and model.buyers == 4
    assert (model.top_min, model.middle_min) == (35.0, 25.0)
    too_few = refit(Model.prior(settings), states[:2], at(10), settings)
    assert too_few.top_min is None and too_few.params == Model.prior(settings).params


def test_refit_moves_population_rhythm_deadlines(harness: HarnessFactory) -> None:
    """After a re-fit shortens the population gap (30 -> 2 days), a one-time buyer who is
    on the population rhythm must decline and churn on the new thresholds, warning first,
    not sit on the deadline computed from the old model and then skip the warning."""
    h = harness(refit_min_buyers=5)
    events = [make_event(f"b{i}", "purchase", d + i * 0.01, amount=10.0 + i)
              for i in range(12) for d in (0.0, 2.0, 4.0, 6.0)]
    events.append(make_event("x", "purchase", 6.5, amount=20.0))
    h.send(*sorted(events, key=lambda e: e.occurred_at)).advance_days(8)
    assert h.processor.model.gap_days == 2.0
    # new thresholds: decline max(3, 1.5*2) days after day 6.5 but not before the activity
    # grace ends (day 13.5); churn max(14, 3*2) days after day 6.5 -> day 20.5
    h.advance_days(21)
    assert h.alert_types("x") == ["churn_warning", "recall_trigger"]
    assert h.alerts[-1]["detected_at"] == rfc3339(at(20.5))
