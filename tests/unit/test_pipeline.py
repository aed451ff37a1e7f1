"""The worker's record pipeline without Kafka: holes, redeliveries, a failing record.

A restarted worker whose table recovery came back short, or whose consumer resumed past
records it never applied, must find the hole, read it back, and end where an
uninterrupted run ends; records it already holds must be skipped, not applied twice.
A record the core fails on costs that record (dead-lettered), not the worker.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import Record, in_offset_order
from agents.kafka.topics import Topics
from streams.core.partitioning import partition_for
from streams.settings import Settings

SETTINGS = Settings().with_overrides(partitions=2)
TOPICS = Topics.from_settings(SETTINGS)
START = 1_767_225_600.0  # 2026-01-01T00:00Z


def _user_on(partition: int, n: int = 0) -> str:
    found = [u for u in (f"u{i}" for i in range(200))
             if partition_for(u, SETTINGS.partitions) == partition]
    return found[n]


ALICE, BOB = _user_on(0, 0), _user_on(0, 1)


def _purchase(offset: int, user: str) -> Record:
    at = START + offset * 3600.0
    body = {"event_id": f"e{offset}", "user_id": user, "type": "purchase",
            "occurred_at": f"2026-01-{1 + offset // 24:02d}T{offset % 24:02d}:00:00Z",
            "properties": {"amount": 10.0 + offset, "currency": "EUR",
                           "order_id": f"o{offset}"}}
    return Record(TOPICS.events, 0, offset, user.encode(), orjson.dumps(body), at)


def _history(n: int) -> list[Record]:
    return [_purchase(i, ALICE if i % 2 else BOB) for i in range(n)]


def _pipeline(table: dict[str, Any]) -> tuple[Pipeline, Metrics]:
    metrics = Metrics()
    wall = START + 90 * 86400.0
    return Pipeline(SETTINGS, TOPICS, metrics, table, wall_clock=lambda: wall), metrics


def _apply(pipeline: Pipeline, records: list[Record]) -> None:
    sends = pipeline.handle(records)
    assert not [s for s in sends if s.topic == TOPICS.dead_letter]
    pipeline.commit_state()


def _orders(pipeline: Pipeline, user: str) -> tuple[int, float]:
    snap = pipeline.snapshot(user)
    assert snap is not None
    return snap["orders"], snap["monetary"]


def test_contiguous_records_have_no_holes() -> None:
    pipeline, _ = _pipeline({})
    records = _history(6)
    assert pipeline.restore_for(records) == [0]
    assert pipeline.gaps(records) == []


def test_a_table_that_lost_its_newest_writes_is_healed_to_the_uninterrupted_result() -> None:
    history = _history(30)
    reference, _ = _pipeline({})
    for i in range(0, 30, 10):
        _apply(reference, history[i:i + 10])

    table: dict[str, Any] = {}
    first, _ = _pipeline(table)
    _apply(first, history[:10])
    recovered = copy.deepcopy(table)  # what a short recovery brings back
    _apply(first, history[10:20])  # applied and committed, but its state writes are lost

    second, metrics = _pipeline(recovered)
    batch = history[20:]
    second.restore_for(batch)
    gaps = second.gaps(batch)
    # a checkpoint claims what the table held before its batch: that batch is read again
    assert gaps == [(TOPICS.events, 0, 0, 20)]
    _apply(second, in_offset_order(history[:20] + batch))
    for user in (ALICE, BOB):
        assert _orders(second, user) == _orders(reference, user)
    assert metrics.records_redelivered._value.get() == 0


def test_records_the_table_already_holds_are_skipped_not_applied_again() -> None:
    history = _history(12)
    table: dict[str, Any] = {}
    first, _ = _pipeline(table)
    _apply(first, history[:6])
    _apply(first, history[6:])  # its checkpoint claims offsets up to 5
    before = {u: _orders(first, u) for u in (ALICE, BOB)}

    second, metrics = _pipeline(table)  # restarted with a complete table
    second.restore_for(history[2:])
    assert second.gaps(history[2:]) == []
    _apply(second, history[2:])  # the consumer resumed before the table's newest offset
    assert {u: _orders(second, u) for u in (ALICE, BOB)} == before
    assert metrics.records_redelivered._value.get() == 4  # offsets 2..5: skipped
    assert metrics.events_duplicate._value.get() == 6  # 6..11: the users hold them


def test_committed_offsets_reveal_a_hole_on_a_topic_with_nothing_new() -> None:
    pipeline, _ = _pipeline({})
    events = _history(3)
    pipeline.restore_for(events)
    committed = {(TOPICS.events, 0): 0, (TOPICS.repartition, 0): 5}
    assert pipeline.gaps(events, committed) == [(TOPICS.repartition, 0, 0, 5)]


def test_a_committed_offset_and_a_later_record_make_one_hole() -> None:
    pipeline, _ = _pipeline({})
    records = _history(10)[7:]
    pipeline.restore_for(records)
    assert pipeline.gaps(records, {(TOPICS.events, 0): 4}) == [(TOPICS.events, 0, 0, 7)]


def test_a_hole_inside_a_batch_is_found_too() -> None:
    pipeline, _ = _pipeline({})
    history = _history(10)
    batch = history[:3] + history[6:]
    pipeline.restore_for(batch)
    assert pipeline.gaps(batch) == [(TOPICS.events, 0, 3, 6)]


def test_in_offset_order_keeps_one_copy_per_offset_in_order() -> None:
    history = _history(6)
    merged = in_offset_order([history[4], history[5], *history[:5]])
    assert [r.offset for r in merged] == [0, 1, 2, 3, 4, 5]


def test_a_record_the_core_fails_on_is_dead_lettered_and_the_rest_applied(
        monkeypatch: Any) -> None:
    pipeline, _ = _pipeline({})
    history = _history(4)
    proc = pipeline.processor(0)
    real = proc.process

    def flaky(event: Any, *args: Any, **kwargs: Any) -> None:
        if event.event_id == "e2":
            raise ValueError("boom")
        real(event, *args, **kwargs)

    monkeypatch.setattr(proc, "process", flaky)
    sends = pipeline.handle(history)
    pipeline.commit_state()
    dead = [orjson.loads(s.value) for s in sends if s.topic == TOPICS.dead_letter]
    assert [(d["reason"], d["origin"]["offset"]) for d in dead] == [("processing_error", 2)]
    assert "ValueError: boom" in dead[0]["message"]
    assert _orders(pipeline, BOB)[0] == 1 and _orders(pipeline, ALICE)[0] == 2
    assert pipeline.held(TOPICS.events, 0) == 3


def _control(topic: str, kind: bytes, value: bytes, offset: int = 0) -> Record:
    from agents.kafka.topics import KIND_HEADER

    return Record(topic, 0, offset, None, value, START, {KIND_HEADER: kind})


def test_a_forged_tick_from_the_future_is_dead_lettered_when_the_worker_keeps_time() -> None:
    settings = SETTINGS.with_overrides(tick_interval_seconds=1.0)
    wall = START + 90 * 86400.0
    pipeline = Pipeline(settings, TOPICS, Metrics(), {}, wall_clock=lambda: wall)
    _apply_all = pipeline.handle([_purchase(0, ALICE)])
    assert not [s for s in _apply_all if s.topic == TOPICS.dead_letter]
    sends = pipeline.handle([_control(TOPICS.events, b"tick", b"4102444800.0", 1),  # 2100
                             _control(TOPICS.events, b"tick", b"soon", 2),
                             _control(TOPICS.events, b"tick", repr(wall).encode(), 3)])
    dead = [orjson.loads(s.value)["reason"] for s in sends if s.topic == TOPICS.dead_letter]
    assert dead == ["future_timestamp", "schema_violation"]
    assert pipeline.processor(0).clock == wall


def test_producer_supplied_ticks_are_trusted_when_the_worker_keeps_no_clock() -> None:
    settings = SETTINGS.with_overrides(tick_interval_seconds=0.0)
    pipeline = Pipeline(settings, TOPICS, Metrics(), {}, wall_clock=lambda: START)
    sends = pipeline.handle([_control(TOPICS.events, b"tick", b"4102444800.0")])
    assert not sends and pipeline.processor(0).clock == 4102444800.0


def test_a_feedback_header_on_the_input_topic_is_not_trusted() -> None:
    from agents.kafka.records import encode_feedback
    from streams.core.event import Event

    forged = encode_feedback(Event(event_id="x", user_id=ALICE, type="referral_converted",
                                   occurred_at=4102444800.0, source="journey"))
    pipeline, _ = _pipeline({})
    sends = pipeline.handle([_control(TOPICS.events, b"feedback", forged)])
    assert [orjson.loads(s.value)["reason"] for s in sends] != []
    assert pipeline.snapshot(ALICE) is None


def test_a_segment_batch_envelope_goes_on_as_its_calls_to_their_users_partitions() -> None:
    """The body a library posts to /v1/batch, written to Kafka as it is: each call goes
    through the repartition topic to its user's partition as a record of its own (a call
    without a user stays here, to be dead-lettered there), and is applied from there."""
    carol = _user_on(1, 0)

    def call(n: int, user: str | None) -> dict[str, Any]:
        made = {"type": "track", "event": "Order Completed", "messageId": f"m{n}",
                "timestamp": f"2026-01-01T0{n}:00:00Z",
                "properties": {"order_id": f"o{n}", "total": 10 + n, "currency": "EUR"}}
        return made if user is None else {**made, "userId": user}

    body = orjson.dumps({"batch": [call(1, ALICE), call(2, carol), call(3, None)],
                         "sentAt": "2026-01-01T09:00:00Z", "writeKey": "k"})
    pipeline, _ = _pipeline({})
    received = START + 86400.0
    sends = pipeline.handle([Record(TOPICS.events, 0, 0, b"k", body, received)])
    assert [(s.topic, s.key, s.partition) for s in sends] == [
        (TOPICS.repartition, ALICE.encode(), 0), (TOPICS.repartition, carol.encode(), 1),
        (TOPICS.repartition, None, 0)]
    assert pipeline.snapshot(ALICE) is None  # nothing applied from the envelope itself
    pipeline.commit_state()
    onward = [Record(TOPICS.repartition, s.partition or 0, i, s.key, s.value, received)
              for i, s in enumerate(sends)]
    after = pipeline.handle(onward)
    dead = [orjson.loads(s.value) for s in after if s.topic == TOPICS.dead_letter]
    assert [d["reason"] for d in dead] == ["missing_field"]
    assert _orders(pipeline, ALICE) == (1, 11.0) and _orders(pipeline, carol) == (1, 12.0)


def test_an_envelope_inside_an_envelope_is_refused_as_replay_refuses_it() -> None:
    """Calls are split out of an input record once; replay reads a line's calls once."""
    inner = {"batch": [{"type": "page", "messageId": "m1", "userId": ALICE,
                        "timestamp": "2026-01-01T01:00:00Z"}]}
    body = orjson.dumps({"batch": [inner], "sentAt": "2026-01-01T09:00:00Z"})
    pipeline, _ = _pipeline({})
    received = START + 86400.0
    sends = pipeline.handle([Record(TOPICS.events, 0, 0, b"k", body, received)])
    assert [s.topic for s in sends] == [TOPICS.repartition]
    pipeline.commit_state()
    after = pipeline.handle([Record(TOPICS.repartition, sends[0].partition or 0, 0,
                                    sends[0].key, sends[0].value, received)])
    assert [orjson.loads(s.value)["reason"] for s in after] == ["unsupported_segment_call"]
    assert pipeline.snapshot(ALICE) is None
