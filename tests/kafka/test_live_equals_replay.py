"""The live worker and ``journey replay`` agree: the same history gives the same alerts,
the same transitions and the same per-user state.

The worker's wall-clock ticker is off; the test writes one tick per partition at a chosen
instant T after the history, so the worker's clock stands exactly where ``--until T`` puts
replay's, and even P(alive) and churn risk (which depend on the instant) must match.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agents.testing.kafka_io import (
    all_topics,
    consume,
    event_record,
    event_time,
    produce,
    sentinels,
    tick_record,
    topic_suffixes,
    values,
)
from agents.testing.replay_check import field_diffs, run_replay
from agents.testing.workers import PARTITIONS, Workers, replay_env
from streams.settings import Settings
from streams.synth import SynthConfig, generate, write_jsonl
from tests.support.live_replay import AT_SAME_INSTANT, MIX, OVERRIDES, STATE_FIELDS

pytestmark = pytest.mark.kafka

DAY = 86400.0


def test_live_worker_equals_replay(broker: Any, kafka_settings: Settings, make_topics: Any,
                                   workers: Workers, tmp_path: Path) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    start = time.time() - 330 * DAY  # spans several weekly model re-fits
    history, _ = generate(SynthConfig(users=300, days=60, start=start, seed=23, mix=MIX,
                                      segment_share=0.2, duplicate_share=0.01))
    events = [e for e in history if isinstance(e, dict)]
    last = max(event_time(e) for e in events)
    until = last + 20 * DAY  # some deadlines still pending at T, most long fired
    done = sentinels(until)
    path = tmp_path / "history.jsonl"
    write_jsonl([*events, *done], path)
    records = [event_record(e) for e in events]
    records += [tick_record(until, p) for p in range(PARTITIONS)]
    records += [event_record(e) for e in done]
    produce(s.broker, topics.events, records)

    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready(partitions=1)
    worker.wait_users(done, 180, "every partition's sentinel in /users")
    m = worker.metrics()
    # input events only: referral credits are applied too, but journey makes those itself
    applied = worker.metric("journey_events_applied_total", m) - worker.metric(
        "journey_events_applied_total", m, type="referral_converted")
    duplicates = worker.metric("journey_events_duplicate_total", m)
    dead = worker.metric("journey_dead_letters_total", m)
    assert applied + duplicates + dead == len(events) + len(done), (applied, duplicates, dead)
    assert duplicates > 0  # the producer re-sent some events; both sides must skip them

    replay = run_replay(path, until, replay_env(s, **OVERRIDES), tmp_path / "replay")

    # alerts: the same ids, and the same records
    n_alerts = worker.metric("journey_alerts_total", m)
    live_alerts: dict[str, dict[str, Any]] = {}
    for topic in (topics.churn_warnings, topics.recall_triggers):
        for a in values(consume(s.broker, topic, timeout=30, idle=2.0)):
            live_alerts[a["alert_id"]] = a
    assert len(live_alerts) == n_alerts, (len(live_alerts), n_alerts)
    replay_alerts = {a["alert_id"]: a for a in replay.alerts}
    assert replay_alerts, "replay raised no alert at all: the history is too tame to compare"
    only_live = sorted(set(live_alerts) - set(replay_alerts))
    only_replay = sorted(set(replay_alerts) - set(live_alerts))
    assert not only_live and not only_replay, (
        f"{len(only_live)} alerts only live, e.g. {[live_alerts[i] for i in only_live[:2]]}; "
        f"{len(only_replay)} only in replay, e.g. {[replay_alerts[i] for i in only_replay[:2]]}")
    differing = [i for i in replay_alerts if live_alerts[i] != replay_alerts[i]]
    assert not differing, f"{len(differing)} alerts differ (field: live, replay): " + "; ".join(
        f"{i} " + ", ".join(f"{k}: {live_alerts[i].get(k)!r}, {replay_alerts[i].get(k)!r}"
                            for k in replay_alerts[i]
                            if live_alerts[i].get(k) != replay_alerts[i].get(k))
        for i in differing[:3])

    # lifecycle transitions
    n_transitions = worker.metric("journey_lifecycle_transitions_total", m)
    live_tr = values(consume(s.broker, topics.transitions,
                             until=lambda rs: len(rs) >= n_transitions, timeout=60))
    assert len(live_tr) == n_transitions
    assert sorted(t["transition_id"] for t in live_tr) == \
        sorted(t["transition_id"] for t in replay.transitions)

    # every user's state, P(alive) and churn risk included (both taken at T)
    live_states = {uid: worker.user(uid) for uid in replay.states}
    diffs = field_diffs(live_states, replay.states, [*STATE_FIELDS, *AT_SAME_INSTANT],
                        tolerance=AT_SAME_INSTANT)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:10]}"
    scorers = [st.get("churn_scorer") for st in replay.states.values()]
    assert scorers.count("logit") > len(scorers) // 4, "the learned model never switched on"
    stages = {st["lifecycle_stage"] for st in replay.states.values()}
    assert {"declining", "churned"} <= stages and stages & {"new", "growing", "mature"}
    print(f"live == replay over {len(events)} events, {len(replay.states)} users, "
          f"{len(replay_alerts)} alerts, {len(replay.transitions)} transitions")
