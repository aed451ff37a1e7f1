"""The storefront producer (``JourneyProducer``) and ``journey produce``.

Checks that the producer keys each user onto the partition kafka-python's default
partitioner picks, keeping a user's events in order; that invalid events raise with their
reason and are never sent; and that ``journey produce`` sends good JSON lines byte for byte,
reports bad lines by number, refuses history (pointing to ``journey bootstrap``) and files
that are not JSON lines, and exits 2 on unusable input and 1 when the broker is unreachable.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from agents.broker import free_port
from agents.client.producer import InvalidEvent, JourneyProducer, Rejected
from streams.settings import Settings
from tests.support.cli_runs import cli


def canonical(user: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{user}-e{n}", "user_id": user, "type": "page_view",
            "occurred_at": f"2024-05-03T16:{n % 60:02d}:11Z", "properties": {"path": "/"},
            **extra}


def segment(user: str, n: int) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "messageId": f"seg-{user}-{n}",
            "userId": user, "timestamp": "2024-05-03T18:21:07+02:00",
            "properties": {"order_id": f"o-{n}", "revenue": 59.9, "currency": "EUR"}}


def expected_partition(key: bytes, partitions: int) -> int:
    """kafka-python's default partitioner: positive murmur2 of the key, modulo partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    """Every record of ``topic`` from the start: waits for ``count``, then checks for more."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=500).values():  # nothing beyond what we expect
            records.extend(batch)
        return records
    finally:
        consumer.close()


# --- JourneyProducer -------------------------------------------------------------------------

def test_producer_keys_each_user_onto_the_default_partitioners_partition(
        kafka_settings: Settings, make_topics: Any) -> None:
    (topic,) = make_topics("events", partitions=4)
    events = [canonical(f"user-{u}", n) for u in range(12) for n in range(3)]
    events += [segment("user-3", 9), segment("sëgment-üser", 1)]
    with JourneyProducer(kafka_settings) as producer:
        assert producer.topic == topic  # the settings' events topic by default
        futures = [producer.send(e) for e in events]
        producer.flush(30)
    sent_to = [f.get(timeout=1).partition for f in futures]
    records = read_topic(kafka_settings.broker, topic, len(events))
    assert len(records) == len(events)
    by_value = {r.value: r for r in records}
    for event, partition in zip(events, sent_to, strict=True):
        record = by_value[orjson.dumps(event)]
        user = event.get("user_id") or event["userId"]
        assert record.key == user.encode("utf-8")
        assert record.partition == partition == expected_partition(record.key, 4)
    # A user's events sit on one partition, in the order they were sent.
    user3 = [r for r in sorted(records, key=lambda r: r.offset) if r.key == b"user-3"]
    assert len({r.partition for r in user3}) == 1
    assert [orjson.loads(r.value).get("event_id") for r in user3][:3] == [
        "user-3-e0", "user-3-e1", "user-3-e2"]


def test_invalid_events_raise_and_are_never_sent(kafka_settings: Settings,
                                                 make_topics: Any) -> None:
    (topic,) = make_topics("events", partitions=2)
    oversize = canonical("u-big", 1, properties={"blob": "x" * 70_000})
    with JourneyProducer(kafka_settings) as producer:
        with pytest.raises(InvalidEvent) as unknown:
            producer.send(canonical("u-1", 1, type="teleport"))
        assert unknown.value.reason == "unknown_type" and "teleport" in unknown.value.message
        missing = canonical("u-1", 2)
        del missing["occurred_at"]
        with pytest.raises(InvalidEvent, match="occurred_at") as no_time:
            producer.send(missing)
        assert no_time.value.reason == "missing_field"
        with pytest.raises(InvalidEvent) as no_tz:
            producer.send(canonical("u-1", 3, occurred_at="2024-05-03T16:02:11"))
        assert no_tz.value.reason == "invalid_timestamp"
        with pytest.raises(InvalidEvent) as big:
            producer.send(oversize)
        assert big.value.reason == "oversize"
        with pytest.raises(InvalidEvent) as not_json:
            producer.send({"event_id": "e", "user_id": "u", "tags": {1, 2}})
        assert not_json.value.reason == "not_json"
        bad_segment = segment("u-2", 1)
        bad_segment["properties"] = {"revenue": -5}
        report = producer.send_many([canonical("u-1", 4), bad_segment, canonical("u-2", 5)])
    assert report.sent == 2 and not report.failed and not report.ok
    assert report.rejected == [Rejected(1, "invalid_amount", report.rejected[0].message)]
    records = read_topic(kafka_settings.broker, topic, 2)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == ["u-1-e4", "u-2-e5"]

    # validate=False leaves checking to the worker, but still needs a key.
    with JourneyProducer(kafka_settings, validate=False) as unchecked:
        unchecked.send(canonical("u-3", 1, type="teleport")).get(timeout=30)
        with pytest.raises(InvalidEvent) as keyless:
            unchecked.send_raw(b"[1, 2]")
        assert keyless.value.reason == "missing_field"
    records = read_topic(kafka_settings.broker, topic, 3)
    assert sorted(r.key for r in records) == [b"u-1", b"u-2", b"u-3"]


# --- journey produce -------------------------------------------------------------------------

def test_produce_cli_sends_good_lines_verbatim_and_reports_bad_ones(
        kafka_settings: Settings, make_topics: Any, tmp_path: Path) -> None:
    (topic,) = make_topics("events", partitions=3)
    good = [orjson.dumps(canonical("u-1", 1)),
            # Not compact, keys reordered: must arrive byte for byte, not re-encoded.
            (b'{ "user_id": "u-2", "type": "page_view", "event_id": "u-2-e1",'
             b' "occurred_at": "2024-05-03T16:02:11.250Z" }'),
            orjson.dumps(segment("u-3", 1))]
    lines = [good[0],
             b'{"event_id": "x", "user_id": "u-9"',                         # 2: not JSON
             good[1],
             b"",                                                            # 4: blank
             orjson.dumps(canonical("u-4", 1, type="teleport")),           # 5: unknown type
             good[2],
             orjson.dumps(canonical("u-5", 1, occurred_at="yesterday"))]   # 7: bad timestamp
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    done = cli(["produce", str(path), "--allow-old"], kafka_settings)  # 2024: history
    assert done.returncode == 0, done.stderr
    assert f"{path}:2: not_json" in done.stderr
    assert f"{path}:5: unknown_type" in done.stderr
    assert f"{path}:7: invalid_timestamp" in done.stderr
    assert ":1:" not in done.stderr and ":4:" not in done.stderr
    assert "warning: 3 invalid lines" in done.stderr
    records = read_topic(kafka_settings.broker, topic, len(good))
    assert sorted(r.value for r in records) == sorted(good)
    for r in records:
        assert r.key in (b"u-1", b"u-2", b"u-3")
        assert r.partition == expected_partition(r.key, 3)

    # The same good lines, gzipped, to a topic named on the command line.
    (other,) = make_topics("other", partitions=1)
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\n".join(good) + b"\n"))
    done = cli(["produce", str(gz), "--topic", other, "--allow-old"], kafka_settings)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    assert sorted(r.value for r in read_topic(kafka_settings.broker, other, 3)) == sorted(good)


def test_produce_cli_sends_history_to_bootstrap_instead(kafka_settings: Settings,
                                                        make_topics: Any,
                                                        tmp_path: Path) -> None:
    """Events older than allowed_lateness behind now would all be dead-lettered as
    too_late by a running worker: not sent, and the way to load history is named."""
    (topic,) = make_topics("events", partitions=3)
    old = [orjson.dumps(canonical(f"u-{i}", i)) for i in range(1200)]  # 2024
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(old) + b"\n")
    history = cli(["produce", str(path)], kafka_settings)
    assert history.returncode == 2
    assert "are history; nothing was sent" in history.stderr
    assert "journey bootstrap" in history.stderr and "--allow-old" in history.stderr

    now = datetime.now(UTC).isoformat()
    fresh = [orjson.dumps(canonical("u-1", n, occurred_at=now)) for n in (1, 2)]
    path.write_bytes(b"\n".join([old[0], *fresh]) + b"\n")
    mixed = cli(["produce", str(path)], kafka_settings)
    assert mixed.returncode == 0, mixed.stderr
    assert "warning: 1 events" in mixed.stderr and "journey bootstrap" in mixed.stderr
    assert sorted(r.value for r in read_topic(kafka_settings.broker, topic, 2)) == sorted(fresh)


def test_produce_cli_refuses_a_file_that_is_not_json_lines(kafka_settings: Settings,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("".join(f"{i},u-{i},page_view\n" for i in range(1200)))
    done = cli(["produce", str(path)], kafka_settings)
    assert done.returncode == 2
    assert "not JSON lines" in done.stderr and "nothing was sent" in done.stderr


def test_produce_cli_unusable_input_exits_2(tmp_path: Path) -> None:
    settings = Settings().with_overrides(broker=f"127.0.0.1:{free_port()}")
    missing = cli(["produce", str(tmp_path / "nope.jsonl")], settings)
    assert missing.returncode == 2
    assert "nope.jsonl: no such file" in missing.stderr
    no_broker = cli(["produce", str(tmp_path / "nope.jsonl")], settings.with_overrides(broker=""))
    assert no_broker.returncode == 2
    assert "JOURNEY_BROKER" in no_broker.stderr


def test_produce_cli_exits_1_when_the_broker_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(canonical("u-1", 1)) + b"\n")
    done = cli(["produce", str(path)], Settings().with_overrides(
        broker=f"127.0.0.1:{free_port()}"))
    assert done.returncode == 1
    assert "cannot connect" in done.stderr
