"""The storefront producer, `journey produce`, `journey tail` and the example CRM subscriber."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

import schemas
from agents.broker import free_port
from agents.cli.tail import format_record, parse_filters
from agents.client.producer import InvalidEvent, JourneyProducer, Rejected
from agents.kafka.topics import SCHEMA_HEADER
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = Path(sys.executable).parent / "journey"


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


def cli(args: list[str], settings: Settings, timeout: float = 90.0,
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env.update(JOURNEY_BROKER=settings.broker, JOURNEY_TOPIC_PREFIX=settings.topic_prefix,
               JOURNEY_APP_ID=settings.app_id)
    return subprocess.run([str(JOURNEY), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


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


# --- journey tail ------------------------------------------------------------------------------

def churn_alert(i: int, priority: str, *, control: bool = False,
                gap_source: str = "own") -> dict[str, Any]:
    alert = copy.deepcopy(schemas.load("churn-warning")["examples"][0])
    alert.update(alert_id=f"cw-{i:032x}", user_id=f"buyer-{i}", priority=priority,
                 control=control)
    alert["evidence"]["gap_source"] = gap_source
    alert["evidence"]["summary"] = f"summary of buyer-{i}"
    schemas.validator("churn-warning")(alert)  # fake, but within the contract
    return alert


def recall_alert(i: int) -> dict[str, Any]:
    alert = copy.deepcopy(schemas.load("recall-trigger")["examples"][0])
    alert.update(alert_id=f"rt-{i:032x}", user_id=f"buyer-{i}", priority="high")
    schemas.validator("recall-trigger")(alert)
    return alert


def publish(bootstrap: str, topic: str, records: list[dict[str, Any]],
            schema: str | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for r in records:
            name = schema or f"journey.{r['type'].replace('_', '-')}/1"
            producer.send(topic, orjson.dumps(r), key=r["user_id"].encode(),
                          headers=[(SCHEMA_HEADER, name.encode())])
        producer.flush(30)
    finally:
        producer.close()


def test_tail_prints_alerts_from_the_beginning_and_filters(kafka_settings: Settings,
                                                           make_topics: Any) -> None:
    warnings, recalls = make_topics("churn-warnings", "recall-triggers", partitions=1)
    publish(kafka_settings.broker, warnings, [
        churn_alert(1, "high"), churn_alert(2, "low", control=True),
        churn_alert(3, "high", gap_source="population"), churn_alert(4, "medium")])
    publish(kafka_settings.broker, recalls, [recall_alert(5)])

    everything = cli(["tail", "--from-beginning", "--max", "5"], kafka_settings)
    assert everything.returncode == 0, everything.stderr
    out = everything.stdout
    heads = [line for line in out.splitlines() if not line.startswith("    ")]
    assert len(heads) == 5
    for i in range(1, 6):
        assert f"user=buyer-{i} " in out
    assert out.count("journey.churn-warning/1  churn_warning") == 4
    assert "journey.recall-trigger/1  recall_trigger #1" in out
    line2 = next(h for h in heads if "buyer-2 " in h)
    assert "LOW" in line2 and "CONTROL" in line2
    assert "channels=phone,app_push,email" in line2
    assert "send 2024-06-20 11:00-13:00 +02:00" in line2
    assert "    summary of buyer-2" in out.splitlines()

    picked = cli(["tail", warnings, "--from-beginning", "--max", "1",
                  "--filter", "priority=high", "--filter", "evidence.gap_source=population"],
                 kafka_settings)
    assert picked.returncode == 0, picked.stderr
    heads = [line for line in picked.stdout.splitlines() if not line.startswith("    ")]
    assert len(heads) == 1 and "user=buyer-3 " in heads[0] and "HIGH" in heads[0]


def test_tail_exits_0_on_ctrl_c(kafka_settings: Settings, make_topics: Any) -> None:
    (warnings,) = make_topics("churn-warnings", partitions=1)
    publish(kafka_settings.broker, warnings, [churn_alert(1, "high")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEY_")}
    env.update(JOURNEY_BROKER=kafka_settings.broker, JOURNEY_APP_ID=kafka_settings.app_id)
    tail = subprocess.Popen([str(JOURNEY), "tail", warnings, "--from-beginning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()  # it is following the topic now
        assert "user=buyer-1 " in first
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == 0
        assert "Traceback" not in tail.stderr.read()  # type: ignore[union-attr]
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()


def test_tail_formats_and_filters_records() -> None:
    alert = churn_alert(7, "medium", control=False)
    header = [(SCHEMA_HEADER, b"journey.churn-warning/1")]
    text = format_record(orjson.dumps(alert), header, [])
    assert text is not None and text.startswith("journey.churn-warning/1  churn_warning  MEDIUM")
    assert "CONTROL" not in text and text.endswith("\n    summary of buyer-7")
    for spec, hit in [("priority=medium", True), ("priority=high", False),
                      ("evidence.gap_source=own", True), ("channels=email", True),
                      ("channels=sms", False), ("control=false", True),
                      ("evidence.orders=9", True), ("evidence.nope=1", False),
                      ("send_window.deferred_for_quiet_hours=true", False)]:
        assert (format_record(orjson.dumps(alert), header, parse_filters([spec])) is not None) \
            is hit, spec
    either = parse_filters(["priority=high", "priority=medium"])
    assert format_record(orjson.dumps(alert), header, either) is not None
    assert format_record(b'{"stage": "churned"}', None, []) == '-  {"stage": "churned"}'
    assert format_record(b"not json", None, parse_filters(["a=b"])) is None
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_filters(["priority"])


# --- the example CRM subscriber ----------------------------------------------------------------

def load_subscriber() -> ModuleType:
    spec = importlib.util.spec_from_file_location("journey_example_subscriber",
                                                  ROOT / "examples" / "subscriber.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class RecordingCrm:
    def __init__(self) -> None:
        self.scheduled: list[tuple[str, datetime]] = []
        self.cancelled: list[str] = []

    def schedule(self, alert: dict[str, Any], when: datetime) -> None:
        self.scheduled.append((alert["alert_id"], when))

    def cancel(self, alert_id: str) -> None:
        self.cancelled.append(alert_id)


def comeback(alert: dict[str, Any], at: str, reason: str = "recovered") -> dict[str, Any]:
    tr = copy.deepcopy(schemas.load("lifecycle-transition")["examples"][0])
    tr.update(user_id=alert["user_id"], at=at, reason=reason, from_stage="declining",
              to_stage="mature", type="lifecycle_transition")
    schemas.validator("lifecycle-transition")(tr)
    return tr


def test_subscriber_drops_repeats_skips_control_and_respects_the_window(tmp_path: Path) -> None:
    sub = load_subscriber()
    crm = RecordingCrm()
    ledger = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    start = datetime.fromisoformat("2024-06-20T11:00:00+02:00")
    before = start - timedelta(hours=3)
    alert, control = churn_alert(1, "high"), churn_alert(2, "low", control=True)
    assert sub.handle(alert, ledger, crm, before) == "scheduled"
    assert sub.handle(copy.deepcopy(alert), ledger, crm, before) == "duplicate"
    assert sub.handle(control, ledger, crm, before) == "control"
    assert crm.scheduled == [(alert["alert_id"], start)]  # once, at the start of the window
    # The ledger survives a restart: a re-delivered alert is still a repeat.
    again = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    assert sub.handle(alert, again, crm, before) == "duplicate"
    assert sub.handle(control, again, crm, before) == "duplicate"
    assert len(crm.scheduled) == 1
    rows = again.db.execute("SELECT alert_id, control, send_at FROM alerts ORDER BY alert_id")
    assert [(a, c, s is not None) for a, c, s in rows] == [
        (alert["alert_id"], 0, True), (control["alert_id"], 1, False)]

    window = alert["send_window"]
    inside = start + timedelta(minutes=30)
    assert sub.contact_time(window, inside) == inside
    late = start + timedelta(hours=5)  # past today's window: same local time tomorrow
    assert sub.contact_time(window, late) == start + timedelta(days=1)
    in_a_later_window = start + timedelta(days=2, minutes=10)
    assert sub.contact_time(window, in_a_later_window) == in_a_later_window
    assert sub.contact_time(window, late).utcoffset() == timedelta(hours=2)


def test_subscriber_cancels_a_contact_when_the_user_comes_back_first(tmp_path: Path) -> None:
    sub = load_subscriber()
    crm = RecordingCrm()
    ledger = sub.AlertLedger(str(tmp_path / "ledger.sqlite"))
    now = datetime.fromisoformat("2024-06-20T08:00:00+02:00")
    alert = churn_alert(1, "high")
    assert sub.handle(alert, ledger, crm, now) == "scheduled"
    # the user buys again before the window opens: the waiting contact is cancelled
    assert sub.handle_transition(comeback(alert, "2024-06-20T09:30:00Z"), ledger, crm) == 1
    assert crm.cancelled == [alert["alert_id"]]
    # a repeat of the transition cancels nothing more; other reasons cancel nothing
    assert sub.handle_transition(comeback(alert, "2024-06-20T09:30:00Z"), ledger, crm) == 0
    other = churn_alert(3, "low")
    assert sub.handle(other, ledger, crm, now) == "scheduled"
    assert sub.handle_transition(comeback(other, "2024-06-21T09:00:00Z", "inactivity"),
                                 ledger, crm) == 0
    # topics are not ordered with each other: the comeback can arrive before the alert
    late = churn_alert(4, "high")
    sub.handle_transition(comeback(late, "2024-06-20T10:00:00Z", "reactivation"), ledger, crm)
    assert sub.handle(late, ledger, crm, now) == "came_back"
    assert late["alert_id"] not in [a for a, _ in crm.scheduled]


def test_subscriber_loop_dedupes_a_redelivered_alert_and_commits(
        kafka_settings: Settings, make_topics: Any, tmp_path: Path) -> None:
    sub = load_subscriber()
    warnings, recalls, transitions = make_topics(
        "churn-warnings", "recall-triggers", "lifecycle-transitions", partitions=1)
    alert = churn_alert(1, "high")
    publish(kafka_settings.broker, warnings, [alert, churn_alert(2, "low", control=True), alert])
    publish(kafka_settings.broker, recalls, [recall_alert(3)])
    unknown = dict(recall_alert(5), schema="journey.recall-trigger/9")
    publish(kafka_settings.broker, recalls, [unknown], schema=unknown["schema"])
    publish(kafka_settings.broker, transitions, [comeback(recall_alert(3),
                                                          "2030-01-01T00:00:00Z")])
    crm = RecordingCrm()
    group = kafka_settings.app_id + "-crm"
    counts = sub.consume(kafka_settings.broker, [warnings, recalls, transitions], group,
                         sub.AlertLedger(str(tmp_path / "ledger.sqlite")), crm=crm,
                         stop_after=6)
    assert counts["scheduled"] + counts["came_back"] == 2, counts
    assert (counts["control"], counts["duplicate"], counts["unknown_schema"],
            counts["transitions"]) == (1, 1, 1, 1)
    # the recall was either cancelled after scheduling or never scheduled
    assert counts["cancelled"] + counts["came_back"] == 1, counts
    check = KafkaConsumer(bootstrap_servers=kafka_settings.broker, group_id=group,
                          enable_auto_commit=False)
    try:
        assert check.committed(TopicPartition(warnings, 0)) == 3
        assert check.committed(TopicPartition(recalls, 0)) == 2
        assert check.committed(TopicPartition(transitions, 0)) == 1
    finally:
        check.close()


def test_subscriber_datetimes_are_aware() -> None:
    # The loop passes datetime.now(UTC); comparing it with the window's offsets must work.
    sub = load_subscriber()
    window = churn_alert(1, "high")["send_window"]
    assert sub.contact_time(window, datetime(2030, 1, 1, tzinfo=UTC)).tzinfo is not None
