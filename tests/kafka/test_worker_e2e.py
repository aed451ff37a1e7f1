"""The live worker end to end on the embedded broker: a synthetic storefront's history in,
alerts, transitions, user state and metrics out, then an inactivity alert driven by the
worker's own wall-clock ticks alone."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest

import schemas
from agents.kafka.topics import SCHEMA_HEADER
from agents.testing.kafka_io import (
    all_topics,
    consume,
    event_time,
    header,
    produce_events,
    rfc3339,
    sentinels,
    topic_suffixes,
    values,
)
from agents.testing.workers import PARTITIONS, Workers
from schemas import parse_date_time
from streams.core.partitioning import partition_for
from streams.settings import Settings
from streams.synth import SynthConfig, generate

pytestmark = pytest.mark.kafka

DAY = 86400.0
# Tiny thresholds for users who never bought, so one fresh user goes quiet within seconds.
DECLINE_DAYS = 0.0002  # 17.28 s
CHURN_DAYS = 0.0004


def _when(text: str) -> float:
    parsed = parse_date_time(text)
    assert parsed is not None, text
    return parsed[0]


def _at_least(n: float) -> Any:
    return lambda records: len(records) >= n


def test_history_in_alerts_state_and_metrics_out_then_a_tick_driven_alert(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    now = time.time()
    history, _truth = generate(SynthConfig(users=300, days=60, start=now - 70 * DAY, seed=11))
    events = [e for e in history if isinstance(e, dict)]
    last = max(event_time(e) for e in events)
    done = sentinels(last + 1.0)
    produced = produce_events(s.broker, topics.events, [*events, *done])

    worker = workers.start(s, new_user_decline_days=DECLINE_DAYS,
                           new_user_churn_days=CHURN_DAYS)
    worker.wait_ready()
    worker.wait_users(done, 180, "the history to be applied (every partition's sentinel in /users)")

    # --- metrics: every input event applied, the rest of the series present ---
    m = worker.metrics()
    applied_inputs = sum(v for (name, labels), v in m.items()
                         if name == "journey_events_applied_total"
                         and dict(labels).get("type") != "referral_converted")
    assert applied_inputs == produced, (applied_inputs, produced)
    assert worker.metric("journey_events_consumed_total", m, topic=topics.events) >= produced
    users = {e["user_id"] for e in events} | {e["user_id"] for e in done}
    worker.wait_for(lambda: worker.metric("journey_assigned_partitions") == PARTITIONS, 30,
                    f"journey_assigned_partitions to read {PARTITIONS}")
    assert worker.metric("journey_healthy", m) == 1
    assert worker.metric("journey_lifecycle_transitions_total", m) >= len(users)
    warned = worker.metric("journey_alerts_total", m, type="churn_warning")
    recalled = worker.metric("journey_alerts_total", m, type="recall_trigger")
    assert warned > 0 and recalled > 0, (warned, recalled)
    assert worker.metric("journey_model_refits_total", m) > 0
    assert worker.metric("journey_processing_latency_seconds_count", m) > 0
    # the stage gauge is refreshed every 2 s
    worker.wait_for(lambda: worker.metric("journey_users") == len(users), 30,
                    f"journey_users to count {len(users)} users")

    # --- alerts on their topics, valid, with their schema header ---
    for topic, kind, want in ((topics.churn_warnings, "churn-warning", warned),
                              (topics.recall_triggers, "recall-trigger", recalled)):
        records = consume(s.broker, topic, until=_at_least(want), timeout=60)
        assert len(records) >= want, f"{topic}: {len(records)} records, metric says {want}"
        check = schemas.validator(kind)
        for rec, alert in zip(records, values(records), strict=True):
            check(alert)
            assert header(rec, SCHEMA_HEADER) == alert["schema"].encode()
            assert alert["user_id"] in users
            assert rec.key == alert["user_id"].encode()
        ids = [a["alert_id"] for a in values(records)]
        assert len(set(ids)) == len(ids), f"{topic} repeats alert ids"

    # --- lifecycle transitions: every user's first sighting, all valid ---
    total_tr = worker.metric("journey_lifecycle_transitions_total")
    records = consume(s.broker, topics.transitions, until=lambda rs: len(rs) >= total_tr,
                      timeout=60)
    check = schemas.validator("lifecycle-transition")
    first_seen = set()
    for rec, tr in zip(records, values(records), strict=True):
        check(tr)
        assert header(rec, SCHEMA_HEADER) == b"journey.lifecycle-transition/1"
        if tr["from_stage"] is None:
            first_seen.add(tr["user_id"])
    assert first_seen == users
    assert {tr["to_stage"] for tr in values(records)} >= {"declining", "churned"}

    # --- /users/{id}: each user's state, consistent with their events ---
    purchases: Counter[str] = Counter()
    last_seen: dict[str, float] = defaultdict(float)
    for e in events:
        last_seen[e["user_id"]] = max(last_seen[e["user_id"]], event_time(e))
        if e["type"] == "purchase":
            purchases[e["user_id"]] += 1
    check = schemas.validator("user-state")
    for uid in sorted(users - {e["user_id"] for e in done}):
        snap = worker.user(uid)
        assert snap is not None, f"/users/{uid} unknown"
        check(snap)
        assert snap["user_id"] == uid
        assert snap["orders"] == purchases[uid], (uid, snap["orders"], purchases[uid])
        assert snap["frequency"] == max(0, purchases[uid] - 1)
        assert abs(_when(snap["last_event_at"]) - last_seen[uid]) < 1e-3, uid
    assert worker.user(f"nobody-{uuid.uuid4().hex}") is None

    # --- an inactivity alert with no further input: only ticks move the clock ---
    decline_s = DECLINE_DAYS * DAY
    fresh = f"fresh-{uuid.uuid4().hex[:8]}"
    sent_at = time.time()
    occurred = sent_at - (decline_s - 8.0)  # goes quiet 8 s from now
    deadline = occurred + decline_s
    event = {"event_id": f"{fresh}-1", "user_id": fresh, "type": "page_view",
             "occurred_at": rfc3339(occurred), "source": "test", "properties": {}}
    produce_events(s.broker, topics.events, [event], stamp=sent_at)

    def fresh_warning(rs: list[Any]) -> bool:
        return any(a["user_id"] == fresh for a in values(rs))

    records = consume(s.broker, topics.churn_warnings, until=fresh_warning,
                      timeout=max(5.0, deadline + 30.0 - time.time()))
    arrived = time.time()
    mine = [a for a in values(records) if a["user_id"] == fresh]
    assert mine, (f"no churn warning for {fresh} within 30 s of its deadline "
                  f"{rfc3339(deadline)}; worker log:\n{worker.log_tail(30)}")
    alert = mine[0]
    assert alert["stage_from"] == "new"
    # fired at the deadline itself: the instant the user crossed the threshold
    assert abs(_when(alert["detected_at"]) - deadline) < 1e-3, (alert["detected_at"], deadline)
    print(f"tick-driven churn warning for {fresh}: deadline {rfc3339(deadline)}, "
          f"seen {arrived - deadline:+.1f}s after it")
    state = worker.user(fresh)
    assert state is not None and state["lifecycle_stage"] in ("declining", "churned")

    # --- last: a clean, time-ordered history must not produce a single dead letter ---
    dead = values(consume(s.broker, topics.dead_letter, timeout=10, idle=2.0))
    kinds = Counter(f"{d['reason']} from {d['origin'].get('topic')}" for d in dead)
    assert not dead, (
        f"{len(dead)} dead letters from a clean, time-ordered history: {dict(kinds)}; first: "
        f"{dead[0]['message']!r} (user {dead[0]['user_id']}). An in-order input event that is "
        "too_late means the partition clock ran ahead of the partition's own input.")


def test_worker_creates_the_topics_it_publishes_to(
        broker: Any, kafka_settings: Settings, workers: Workers) -> None:
    """Nothing created beforehand: the worker must declare its output topics itself, or
    its first publish waits for a topic that never comes (and nothing says so)."""
    s = kafka_settings
    topics = all_topics(s)
    worker = workers.start(s)
    worker.wait_ready()
    now = time.time()
    user = f"solo-{uuid.uuid4().hex[:6]}"
    event = {"event_id": f"{user}-1", "user_id": user, "type": "signup",
             "occurred_at": rfc3339(now), "source": "test", "properties": {}}
    produce_events(s.broker, topics.events, [event], stamp=now)
    records = consume(s.broker, topics.transitions,
                      until=lambda rs: any(r["user_id"] == user for r in values(rs)),
                      timeout=30)
    assert any(r["user_id"] == user for r in values(records)), (
        f"no lifecycle transition for {user} on {topics.transitions} within 30 s; "
        f"worker batches: {worker.health()[1].get('batches')}, log:\n{worker.log_tail(15)}")
    # the batch that published it completed, so the worker goes on
    worker.wait_for(lambda: worker.health()[1].get("batches", 0) > 0, 30, "a completed batch")


def _on_partition(partition: int, prefix: str) -> str:
    return next(u for i in range(10_000)
                if partition_for(u := f"{prefix}-{i}", PARTITIONS) == partition)


def test_a_referral_credit_from_a_partition_ahead_waits_for_the_partition_clock(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    """Partitions advance independently (catching up a backlog, after a restart). A
    referral credit carries the referee's time. It must not move the referrer's partition
    clock (the partition's own later, in-order events would be dropped as too_late), and
    it takes effect when that clock reaches the credit's time, as in a replay."""
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = workers.start(s, tick_interval_seconds=0)  # only events move the clocks
    worker.wait_ready(partitions=0)
    t0 = time.time() - 60 * DAY
    referrer, other = _on_partition(0, "referrer"), _on_partition(0, "neighbour")
    referee = _on_partition(1, "referee")

    def ev(user: str, kind: str, at: float, **props: Any) -> dict[str, Any]:
        return {"event_id": f"{user}-{kind}-{at:.0f}", "user_id": user, "type": kind,
                "occurred_at": rfc3339(at), "source": "test", "properties": props}

    produce_events(s.broker, topics.events, [
        ev(referrer, "referral", t0, referred_user_id=referee),
        # partition 1 runs ten days ahead of partition 0
        ev(referee, "signup", t0 + 10 * DAY, referred_by=referrer),
        ev(referee, "purchase", t0 + 10 * DAY + 60, amount=20.0, currency="EUR",
           order_id=f"{referee}-o1")])
    worker.wait_for(lambda: (worker.user(referee) or {}).get("orders") == 1, 60,
                    "the referee's purchase")
    # partition 0's own next event, a day after its last one: in order, so it must apply
    late_but_fine = ev(other, "page_view", t0 + DAY)
    produce_events(s.broker, topics.events, [late_but_fine])
    worker.wait_for(lambda: worker.user(other) or worker.metric("journey_dead_letters_total"),
                    60, f"{other}'s event applied or dead-lettered")
    dead = values(consume(s.broker, topics.dead_letter, timeout=5, idle=1.0))
    assert worker.user(other) is not None, (
        f"{other}'s in-order event was rejected: {[d['message'] for d in dead]}")
    assert worker.metric("journey_events_applied_total", type="referral_converted") == 0
    # partition 0 reaches the credit's time: now it counts
    produce_events(s.broker, topics.events, [ev(other, "page_view", t0 + 11 * DAY)])
    worker.wait_for(lambda: worker.metric("journey_events_applied_total",
                                          type="referral_converted") >= 1, 60,
                    "the held referral credit applied on the referrer's partition")
    assert worker.metric("journey_dead_letters_total") == 0


def test_users_endpoint_answers_for_every_user_on_either_of_two_workers(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers) -> None:
    """Two workers share the partitions; ``/users/{id}`` on either forwards to the owner of
    the user's partition (each worker advertises its own URL), so both give the same
    answer for every user."""
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    start = time.time() - 200 * DAY
    history, _ = generate(SynthConfig(users=60, days=20, start=start, seed=5))
    events = [e for e in history if isinstance(e, dict)]
    done = sentinels(max(event_time(e) for e in events) + 1.0)
    produce_events(s.broker, topics.events, [*events, *done])
    pair = [workers.start(s), workers.start(s)]
    for w in pair:
        w.wait_ready(partitions=0)
    # both own partitions (an even split of 4), and together they hold every sentinel
    pair[0].wait_for(lambda: all(w.metric("journey_assigned_partitions") == PARTITIONS / 2
                                 for w in pair), 90, "the partitions split between the two")
    users = sorted({e["user_id"] for e in events} | {e["user_id"] for e in done})
    pair[0].wait_users(done, 120, "every sentinel through the first worker")
    pair[0].wait_quiet()
    answers = [{u: w.user(u) for u in users} for w in pair]
    assert all(answers[0].values()), [u for u, a in answers[0].items() if a is None][:5]
    # A record is as of its partition's clock, which wall-clock ticks move every second
    # between the two reads: the scores of that instant may move in their last digits.
    as_of_now = ("churn_risk", "p_alive", "recency_days", "monetary_90d")

    def settled(a: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (a or {}).items() if k not in as_of_now}

    assert {u: settled(a) for u, a in answers[0].items()} == \
        {u: settled(a) for u, a in answers[1].items()}
    for u in users:
        a, b = answers[0][u] or {}, answers[1][u] or {}
        assert abs(a["churn_risk"] - b["churn_risk"]) < 0.01, (u, a, b)
        assert abs(a["p_alive"] - b["p_alive"]) < 0.01, (u, a, b)
    local = [set(w.health()[1]["partitions"]) for w in pair]
    assert local[0] and local[1] and not local[0] & local[1]
