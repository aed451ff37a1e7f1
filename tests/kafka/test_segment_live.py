"""A Segment source through a live worker: identify, alias and group calls among page and
track calls, as analytics-python sends them. Anonymous profiles are stitched into their
users across partitions through the repartition topic, nothing is dead-lettered, group
calls are counted as ignored, and ``journey replay`` of the same stream gives the same
state.

As in test_live_equals_replay, the wall-clock ticker is off and one tick per partition at
T puts the worker's clock where ``--until T`` puts replay's.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.testing.kafka_io import (
    Out,
    all_topics,
    caught_up,
    consume,
    event_record,
    event_time,
    produce,
    rfc3339,
    sentinels,
    tick_record,
    topic_suffixes,
    values,
)
from agents.testing.replay_check import field_diffs, run_replay
from agents.testing.segment_stream import record_key, segment_stream
from agents.testing.workers import PARTITIONS, Workers, replay_env
from streams.core.partitioning import partition_for
from streams.settings import Settings
from streams.synth import SynthConfig, generate, write_jsonl
from tests.support.bootstrap import bootstrap_args, journey
from tests.support.live_replay import MIX

pytestmark = pytest.mark.kafka

DAY = 86400.0
OVERRIDES: dict[str, Any] = {"tick_interval_seconds": 0}
# what a user did: a merge must carry all of it over, whenever it lands
AGGREGATES = ("orders", "frequency", "monetary", "refunds", "funnel_stage", "first_seen_at",
              "last_event_at", "last_purchase_at")
STATE_FIELDS = (*AGGREGATES, "lifecycle_stage", "value_tier", "role", "alerts_sent",
                "last_alert_id", "avg_gap_days", "usual_active_hour", "consent",
                "recency_days", "monetary_90d")


def test_segment_identity_stitching_live_equals_replay(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    start = time.time() - 120 * DAY
    history, _ = generate(SynthConfig(users=60, days=40, start=start, seed=31, mix=MIX,
                                      duplicate_share=0.01))
    calls = [c for c in segment_stream(history, seed=31) if isinstance(c, dict)]
    kinds = Counter(c["type"] for c in calls)
    assert kinds["identify"] and kinds["alias"] and kinds["group"] and kinds["page"]
    assert any(c.get("anonymousId") is None and c.get("userId") for c in calls)
    # who was stitched into whom, and how many of them across partitions
    stitched = {c.get("previousId") or c["anonymousId"]: c["userId"] for c in calls
                if c["type"] in ("alias", "identify") and (c.get("previousId")
                                                            or c.get("anonymousId"))}
    across = [a for a, u in stitched.items()
              if partition_for(a, PARTITIONS) != partition_for(u, PARTITIONS)]
    assert len(across) >= 5, len(across)

    until = max(event_time(c) for c in calls) + 20 * DAY
    done = sentinels(until)
    path = tmp_path / "segment.jsonl"
    write_jsonl([*calls, *done], path)

    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready(partitions=1)
    # As a storefront sends it, in real time: a worker that keeps up has applied a stitch
    # (and an event forwarded from a merged id) before the next record comes. So the
    # stream goes in pieces, each ending with a record that makes news for another
    # partition, and the next waits until the worker has committed everything, news
    # included. (Under a backlog, news is judged when it lands: docs/producing.md.)
    piece: list[Out] = []
    pauses, news_from = 0, set()
    for c in calls:
        piece.append(event_record(c, key=record_key(c)))
        if c["type"] in ("identify", "alias") and (c.get("previousId") or c["anonymousId"]):
            news_from.add(c.get("previousId") or c["anonymousId"])
        elif record_key(c) not in news_from:
            continue
        produce(s.broker, topics.events, piece)
        piece, pauses = [], pauses + 1
        worker.wait_for(lambda: caught_up(s, [topics.events, topics.repartition]), 60,
                        "the worker caught up with the stream and its news")
    piece += [tick_record(until, p) for p in range(PARTITIONS)]
    produce(s.broker, topics.events, [*piece, *(event_record(e) for e in done)])
    worker.wait_users(done, 180, "every partition's sentinel in /users")
    worker.wait_for(lambda: caught_up(s, [topics.events, topics.repartition]), 60,
                    "the worker caught up with the stream and its news")
    replay = run_replay(path, until, replay_env(s, **OVERRIDES), tmp_path / "replay")
    assert set(replay.states).isdisjoint(stitched), "replay left a stitched id as a user"
    assert set(stitched.values()) <= set(replay.states)

    live_states = {uid: worker.user(uid) for uid in replay.states}
    diffs = field_diffs(live_states, replay.states, STATE_FIELDS)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:10]}"

    # a stitched id answers with its user (/users/{anon} redirects: 308, followed)
    for anon in across:
        status, body = worker.get(f"/users/{anon}")
        assert status == 200 and orjson.loads(body)["user_id"] == stitched[anon], anon

    m = worker.metrics()
    assert worker.metric("journey_dead_letters_total", m) == 0
    assert worker.metric("journey_segment_calls_total", m, call="group",
                         outcome="ignored") == kinds["group"]
    merged = worker.metric("journey_identity_total", m, outcome="merged")
    linked = worker.metric("journey_identity_total", m, outcome="linked")
    assert merged + linked == len(stitched) and merged > 0
    assert worker.metric("journey_identity_total", m, outcome="redirected") > 0

    # the same alerts
    live_alerts = {a["alert_id"] for topic in (topics.churn_warnings, topics.recall_triggers)
                   for a in values(consume(s.broker, topic, timeout=30, idle=2.0))}
    assert live_alerts == {a["alert_id"] for a in replay.alerts} and live_alerts
    print(f"segment live == replay: {len(calls)} calls {dict(kinds)}, {len(stitched)} ids "
          f"stitched ({len(across)} across partitions), {len(replay.states)} users, "
          f"{len(live_alerts)} alerts, 0 dead letters, {pauses} pauses")


def test_bootstrap_carries_the_merged_ids_over(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    """A history with logins, bootstrapped: a worker knows each merged id as its user, and
    a later event under an anonymous id goes to the user, not to a new profile."""
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    history, _ = generate(SynthConfig(users=60, days=40, start=time.time() - 120 * DAY,
                                      seed=37, mix=MIX))
    calls = [c for c in segment_stream(history, seed=37) if isinstance(c, dict)]
    cut = event_time(calls[0]) + 25 * DAY
    past = [c for c in calls if event_time(c) <= cut]
    after = [c for c in calls if event_time(c) > cut]
    stitched = {c.get("previousId") or c["anonymousId"]: c["userId"] for c in past
                if c["type"] in ("alias", "identify") and (c.get("previousId")
                                                            or c.get("anonymousId"))}
    later = [c for c in after if record_key(c) in stitched]  # sent under a merged id
    assert stitched and later
    until = event_time(calls[-1]) + 20 * DAY
    done = sentinels(until)
    write_jsonl(past, tmp_path / "history.jsonl")
    write_jsonl([*after, *done], tmp_path / "live.jsonl")
    boot = journey(bootstrap_args(tmp_path / "history.jsonl", cut), s)
    assert boot.returncode == 0, boot.stderr

    records = [event_record(c, key=record_key(c)) for c in after]
    records += [tick_record(until, p) for p in range(PARTITIONS)]
    produce(s.broker, topics.events, [*records, *(event_record(e) for e in done)])
    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready(partitions=1)
    worker.wait_users(done, 180, "every partition's sentinel in /users")
    worker.wait_for(lambda: caught_up(s, [topics.events, topics.repartition]), 60,
                    "the worker caught up with the stream and its news")

    for anon, user in stitched.items():  # the bootstrapped redirect answers
        status, body = worker.get(f"/users/{anon}")
        assert status == 200 and orjson.loads(body)["user_id"] == user, (anon, status)
    m = worker.metrics()
    assert worker.metric("journey_identity_total", m, outcome="redirected") >= len(later)
    assert worker.metric("journey_dead_letters_total", m) == 0
    # what every user did equals replay of history + live (the live part came as a
    # backlog, so stages and alerts may differ: see docs/producing.md)
    replay = run_replay(tmp_path / "history.jsonl", until, replay_env(s, **OVERRIDES),
                        tmp_path / "replay", extra=["--cut-over", rfc3339(cut), "--live",
                                                    str(tmp_path / "live.jsonl")])
    assert set(replay.states).isdisjoint(stitched)
    live_states = {uid: worker.user(uid) for uid in replay.states}
    diffs = field_diffs(live_states, replay.states, AGGREGATES)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:10]}"


def test_batch_envelopes_written_as_they_are_go_on_as_their_calls(
        broker: Any, kafka_settings: Settings, make_topics: Any, workers: Workers,
        tmp_path: Path) -> None:
    """The bodies a library posts to /v1/batch, each written to Kafka as one record: every
    call reaches its user's partition through the repartition topic and is applied there,
    nothing is dead-lettered, and replay of the same bodies gives the same users."""
    s = kafka_settings
    topics = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    start = time.time() - 60 * DAY
    history, _ = generate(SynthConfig(users=30, days=20, start=start, seed=37, mix=MIX))
    calls = [c for c in segment_stream(history, seed=37) if isinstance(c, dict)
             and c["type"] in ("track", "page")]
    bodies = [{"batch": calls[i:i + 10], "sentAt": calls[min(i + 9, len(calls) - 1)].get(
        "timestamp"), "writeKey": "k"} for i in range(0, len(calls), 10)]
    until = max(event_time(c) for c in calls) + 5 * DAY
    done = sentinels(until)
    path = tmp_path / "posted.jsonl"
    write_jsonl([*bodies, *done], path)

    worker = workers.start(s, **OVERRIDES)
    worker.wait_ready(partitions=1)
    # One key, so the bodies are taken in the order they were posted (as one forwarder
    # partition would keep them). The calls take a hop through the repartition topic, as
    # mis-keyed events do; the ticks wait for them, or they would come in behind the clock.
    produce(s.broker, topics.events, [Out(orjson.dumps(b), b"forwarder") for b in bodies])
    worker.wait_for(lambda: caught_up(s, [topics.events, topics.repartition]), 60,
                    "the worker caught up with the calls sent on")
    produce(s.broker, topics.events, [*(tick_record(until, p) for p in range(PARTITIONS)),
                                      *(event_record(e) for e in done)])
    worker.wait_users(done, 180, "every partition's sentinel in /users")
    replay = run_replay(path, until, replay_env(s, **OVERRIDES), tmp_path / "replay")
    users = {c.get("userId") or c["anonymousId"] for c in calls}
    assert users <= set(replay.states)
    live = {uid: worker.user(uid) for uid in users}
    diffs = field_diffs(live, {u: replay.states[u] for u in users}, AGGREGATES)
    assert not diffs, f"{len(diffs)} differences, first: {diffs[:10]}"
    m = worker.metrics()
    assert worker.metric("journey_dead_letters_total", m) == 0
    print(f"batch envelopes: {len(bodies)} records, {len(calls)} calls, {len(users)} users")
