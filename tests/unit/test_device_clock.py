"""A Segment call from a device whose clock runs fast is placed as Segment's API places
it, not dead-lettered as from the future; no event accepted as stamped is moved."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli.main import main
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import Record
from agents.kafka.topics import Topics
from streams.core.decode import decode
from streams.core.event import Event
from streams.core.outputs import Outputs
from streams.core.partitioning import partition_for
from streams.core.segment_batch import batch_calls
from streams.core.timefmt import rfc3339
from streams.replay import parallel
from streams.settings import Settings
from streams.testing import Harness, HarnessFactory, at
from tests.support.segment_calls import delivered_call, python_call

RECEIVED = at(40)  # when the record reached Kafka
MINUTE = 60.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def _track(stamped: float, sent: float | None, user: str = "u") -> dict[str, Any]:
    call = python_call("track", stamped, user_id=user, event="Product Viewed",
                       properties={"product_id": "p1"})
    if sent is not None:
        call["sentAt"] = _iso(sent)
    return call


def _event(call: dict[str, Any]) -> Event:
    got = decode(orjson.dumps(call))
    assert isinstance(got, Event), got
    return got


def _send(h: Harness, call: dict[str, Any]) -> Harness:
    return h.send(_event(call), received_at=RECEIVED)


def test_a_call_from_a_fast_clock_is_moved_back_by_how_far_its_send_time_is_ahead(
        harness: HarnessFactory) -> None:
    # the device's clock runs 10 minutes fast: it stamped the call 2 s before sending it,
    # and the record reached Kafka 0.5 s after the true send time
    fast = 10 * MINUTE
    h = _send(harness(max_future_skew_seconds=300.0),
              _track(RECEIVED - 0.5 - 2.0 + fast, sent=RECEIVED - 0.5 + fast))
    assert h.rejected == []
    assert h.state("u").last_active_at == RECEIVED - 2.0
    first, = h.transitions
    assert first["at"] == rfc3339(RECEIVED - 2.0)


def test_the_same_call_without_a_send_time_is_still_from_the_future(
        harness: HarnessFactory) -> None:
    h = _send(harness(max_future_skew_seconds=300.0), _track(RECEIVED + 10 * MINUTE, None))
    assert [reason for reason, _ in h.rejected] == ["future_timestamp"]
    assert "u" not in h.store


def test_a_clock_within_the_skew_moves_nothing(harness: HarnessFactory) -> None:
    # two minutes fast is within the 5 minutes allowed: network and clock noise
    h = _send(harness(max_future_skew_seconds=300.0),
              _track(RECEIVED + 2 * MINUTE, sent=RECEIVED + 2 * MINUTE + 1.0))
    assert h.rejected == [] and h.state("u").last_active_at == RECEIVED + 2 * MINUTE


@pytest.mark.parametrize("sent", [RECEIVED - 1.0, RECEIVED + 2 * MINUTE])
def test_a_future_time_from_a_clock_within_the_skew_is_refused(
        harness: HarnessFactory, sent: float) -> None:
    # sentAt within the skew of the receipt: the clock is right, the stamp itself wrong
    h = _send(harness(max_future_skew_seconds=300.0), _track(RECEIVED + 10 * MINUTE, sent))
    assert [reason for reason, _ in h.rejected] == ["future_timestamp"]


def test_a_call_a_fast_device_had_queued_moves_with_the_others(
        harness: HarnessFactory) -> None:
    # two hours fast, and this call waited two hours on the device: its own stamp is not
    # ahead of the receipt, but it is two hours after the moment it happened
    fast = 2 * 3600.0
    h = _send(harness(max_future_skew_seconds=300.0),
              _track(RECEIVED - fast + fast, sent=RECEIVED + fast))
    assert h.rejected == [] and h.state("u").last_active_at == RECEIVED - fast


@pytest.mark.parametrize("sent", ["9999-12-31T00:00:00Z", "1970-01-02T00:00:00Z"])
def test_a_send_time_out_of_range_says_nothing(harness: HarnessFactory, sent: str) -> None:
    call = _track(RECEIVED + 10 * MINUTE, None)
    call["sentAt"] = sent
    got = _event(call)
    assert got.sent_at is None
    h = harness(max_future_skew_seconds=300.0).send(got, received_at=RECEIVED)
    assert [reason for reason, _ in h.rejected] == ["future_timestamp"]


def test_no_move_without_a_record_time_or_before_the_earliest_event(
        harness: HarnessFactory) -> None:
    h = harness(max_future_skew_seconds=300.0)
    h.send(_event(_track(RECEIVED + 10 * MINUTE, sent=RECEIVED + 10 * MINUTE)),
           received_at=0.0)  # a record without a time of its own
    assert [reason for reason, _ in h.rejected] == ["future_timestamp"]
    # a clock "ahead" by more than the time since 1990: the move would leave the range
    early = _event(_track(at(-9000), sent=at(-9000) + 10 * MINUTE, user="v"))
    h.send(early, received_at=at(-9000) - 40 * 365 * 86400.0)
    assert h.rejected[-1][0] == "future_timestamp"


def test_a_call_stamped_long_after_its_own_send_is_refused_after_the_move(
        harness: HarnessFactory) -> None:
    # 10 minutes fast, and stamped 20 minutes after it was sent: 20 minutes ahead still
    call = _track(RECEIVED + 30 * MINUTE, sent=RECEIVED + 10 * MINUTE)
    h = harness(max_future_skew_seconds=300.0)
    out = Outputs()
    h.processor.process(_event(call), out, received_at=RECEIVED)
    (refused,) = out.rejected
    assert refused.reason == "future_timestamp"
    assert refused.message == ("occurred_at is 1200s after it was received (allowed skew "
                               "300s), after moving it back 600s for the sending device's "
                               "clock (its sentAt was that far ahead)")


def test_an_identify_from_a_fast_clock_is_taken(harness: HarnessFactory) -> None:
    call = python_call("identify", RECEIVED + 3600.0, user_id="u",
                       traits={"email": "u@example.com"})
    call["sentAt"] = _iso(RECEIVED + 3600.0 + 1.0)
    h = _send(harness(max_future_skew_seconds=300.0), call)
    assert h.rejected == []
    assert h.state("u").last_event_at == RECEIVED - 1.0


def test_a_call_segment_delivered_is_not_moved_twice(harness: HarnessFactory) -> None:
    # Segment corrected timestamp already; the device's sentAt is still ahead
    call = delivered_call("track", RECEIVED, user_id="u", event="Product Viewed",
                          properties={"product_id": "p1"})
    call["sentAt"] = _iso(RECEIVED + 3600.0)
    event = _event(call)
    assert event.sent_at is None
    h = harness(max_future_skew_seconds=300.0).send(event, received_at=RECEIVED)
    assert h.rejected == [] and h.state("u").last_active_at == RECEIVED


def test_a_batch_envelopes_send_time_moves_each_of_its_calls(
        harness: HarnessFactory) -> None:
    fast = 2 * 3600.0  # two hours fast
    calls = [{k: v for k, v in _track(RECEIVED - 60.0 + i + fast, None).items()}
             for i in range(3)]
    body = orjson.dumps({"batch": calls, "sentAt": _iso(RECEIVED + fast)})
    got = decode(body)
    assert not isinstance(got, Event)
    split = batch_calls(body, got)
    assert split is not None and len(split) == 3
    h = harness(max_future_skew_seconds=300.0)
    for raw in split:
        h.send(_event(orjson.loads(raw)), received_at=RECEIVED)
    assert h.rejected == [] and h.state("u").last_active_at == RECEIVED - 58.0


def test_the_worker_moves_it_by_the_records_kafka_time() -> None:
    settings = Settings().with_overrides(partitions=1, max_future_skew_seconds=300.0)
    topics = Topics.from_settings(settings)
    pipeline = Pipeline(settings, topics, Metrics(), {}, wall_clock=lambda: RECEIVED)
    fast = 3 * 3600.0
    value = orjson.dumps(_track(RECEIVED - 5.0 + fast, sent=RECEIVED - 1.0 + fast))
    sends = pipeline.handle([Record(topics.events, 0, 0, b"u", value, RECEIVED)])
    pipeline.commit_state()
    assert not [s for s in sends if s.topic == topics.dead_letter]
    snap = pipeline.snapshot("u")
    assert snap is not None and snap["last_event_at"] == rfc3339(RECEIVED - 4.0)


@pytest.mark.parametrize("misrouted", [False, True])
def test_a_call_that_hops_through_the_repartition_topic_keeps_its_receipt(
        misrouted: bool) -> None:
    # a batch envelope's calls, or a record keyed by someone else, reach their user's
    # partition as journey's own records, produced later: the first receipt still counts
    settings = Settings().with_overrides(partitions=4, max_future_skew_seconds=300.0)
    topics = Topics.from_settings(settings)
    pipeline = Pipeline(settings, topics, Metrics(), {}, wall_clock=lambda: RECEIVED)
    fast = 3 * 3600.0
    call = _track(RECEIVED - 5.0 + fast, sent=RECEIVED - 1.0 + fast, user="hopper")
    home = partition_for("hopper", 4)
    if misrouted:
        value = orjson.dumps(call)
    else:
        del call["sentAt"]
        value = orjson.dumps({"batch": [call], "sentAt": _iso(RECEIVED - 1.0 + fast)})
    first = (home + 1) % 4 if misrouted else home
    sends = pipeline.handle([Record(topics.events, first, 0, b"x", value, RECEIVED)])
    (hop,) = [s for s in sends if s.topic == topics.repartition]
    assert hop.partition == home
    later = RECEIVED + 1800.0  # the hop's own record time, half an hour behind
    sends = pipeline.handle([Record(topics.repartition, home, 0, hop.key, hop.value, later,
                                    dict(hop.headers))])
    pipeline.commit_state()
    assert not [s for s in sends if s.topic == topics.dead_letter]
    snap = pipeline.snapshot("hopper")
    assert snap is not None and snap["last_event_at"] == rfc3339(RECEIVED - 4.0)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_replay_takes_a_call_as_stamped_for_a_file_has_no_receipt_times(
        tmp_path: Path, jobs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # partitions in parallel whatever the size, so that jobs=2 forks its workers
    monkeypatch.setattr(parallel, "feed", functools.partial(parallel.feed, min_events=0))
    past = _track(at(0), sent=at(0) + 5.0, user="past")
    ahead = _track(at(20000), sent=at(20000) + 5.0, user="fast")  # decades after the run
    path = tmp_path / "h.jsonl"
    path.write_bytes(orjson.dumps(past) + b"\n" + orjson.dumps(ahead) + b"\n")
    states, summary = tmp_path / "states.jsonl", tmp_path / "summary.json"
    assert main(["replay", str(path), "--state-out", str(states), "--no-progress",
                 "--jobs", jobs, "--summary-json", str(summary)]) == 0
    # measured against the run's start the call would move to now, and with it the
    # replay's clock: every user would lapse
    assert orjson.loads(summary.read_bytes())["dead_letters"] == {"future_timestamp": 1}
    (state,) = [orjson.loads(line) for line in states.read_bytes().splitlines()]
    assert state["user_id"] == "past" and state["last_event_at"] == rfc3339(at(0))
