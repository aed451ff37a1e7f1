"""No payloads, e-mails or raw user ids in the logs, and user ids in logs can be hashed.

The pipeline (the worker's logic without Kafka) and `journey replay` run over events
whose user ids are e-mail addresses and whose properties carry names and phone numbers,
with bad input, alerts and a failing record mixed in; everything logged at INFO and above
(and what replay prints) is searched for any of it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.cli import main
from agents.kafka.logsafe import HASH_PREFIX, UserIds, exception_summary, log_user, printable
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import TICK, Record, Send, tick_value
from agents.kafka.topics import KIND_HEADER, Topics
from streams.core.partitioning import partition_for
from streams.settings import Settings

SETTINGS = Settings().with_overrides(partitions=2)
TOPICS = Topics.from_settings(SETTINGS)
START = 1_767_225_600.0  # 2026-01-01T00:00Z
DAY = 86400.0
PEOPLE = {"ann.lee@example.com": ("Ann Lee", "+44 7700 900123"),
          "bo-7731": ("Bo Chen", "+1 202 555 0143")}
# Every string that must not reach a log line.
PERSONAL = [*PEOPLE, *(name for name, _ in PEOPLE.values()),
            *(phone for _, phone in PEOPLE.values()), "ORD-PRIVATE", "eve@example.net",
            "Mallory Q", '"amount"', "EUR"]


def _event(n: int, user: str, day: float, kind: str = "purchase") -> dict[str, Any]:
    name, phone = PEOPLE[user]
    at = START + day * DAY
    stamp = f"2026-01-{1 + int(day):02d}T{int(day % 1 * 24):02d}:00:00Z"
    props: dict[str, Any] = {"email": user if "@" in user else "", "name": name,
                             "phone": phone}
    if kind == "purchase":
        props.update(amount=20.0 + n, currency="EUR", order_id=f"ORD-PRIVATE-{n}")
    return {"event_id": f"ev-{n}", "user_id": user, "type": kind, "occurred_at": stamp,
            "properties": props, "_received": at + 60.0}


def _records() -> list[Record]:
    """Valid events, a duplicate, malformed input quoting personal data, and ticks that
    make both users decline and then churn (alerts)."""
    events = [_event(0, "ann.lee@example.com", 0), _event(1, "bo-7731", 0.5),
              _event(2, "ann.lee@example.com", 2), _event(3, "bo-7731", 3, "page_view")]
    events.append(dict(events[0]))  # redelivered copy: a duplicate
    out: list[Record] = []
    offsets: dict[int, int] = {}

    def add(partition: int, key: bytes | None, value: bytes, at: float,
            headers: dict[str, bytes] | None = None) -> None:
        offsets[partition] = offsets.get(partition, -1) + 1
        out.append(Record(TOPICS.events, partition, offsets[partition], key, value, at,
                          headers or {}))

    for e in events:
        received = e.pop("_received")
        add(partition_for(e["user_id"], 2), e["user_id"].encode(), orjson.dumps(e), received)
    bad = [b'{"user_id": "eve@example.net", "name": "Mallory Q"',  # not JSON
           orjson.dumps({"user_id": "eve@example.net", "type": "purchase",
                         "properties": {"name": "Mallory Q"}})]  # missing fields
    for raw in bad:
        add(0, b"eve@example.net", raw, START + 4 * DAY)
    for day in (50, 130):
        now = START + day * DAY
        for partition in (0, 1):
            add(partition, None, tick_value(now), now, {KIND_HEADER: TICK})
    return out


def _run(pipeline: Pipeline) -> list[Send]:
    sends = pipeline.handle(_records())
    pipeline.commit_state()
    return sends


def _pipeline() -> Pipeline:
    return Pipeline(SETTINGS, TOPICS, Metrics(), {}, wall_clock=lambda: START + 130 * DAY)


def _assert_private(text: str) -> None:
    leaked = [p for p in PERSONAL if p in text]
    assert leaked == []


def test_the_pipeline_logs_nothing_personal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sends = _run(_pipeline())
    topics = {s.topic for s in sends}
    # the run did exercise what could leak: alerts, dead letters, state
    assert {TOPICS.churn_warnings, TOPICS.recall_triggers, TOPICS.dead_letter} <= topics
    dead = [orjson.loads(s.value) for s in sends if s.topic == TOPICS.dead_letter]
    assert len(dead) == 2
    _assert_private(caplog.text)


def test_a_failing_record_is_logged_without_its_data(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A core bug that raises KeyError(user_id), as a dict lookup does, must cost one
    record and log where it happened, not whose record it was."""
    pipeline = _pipeline()
    for partition in (0, 1):
        proc = pipeline.processor(partition)
        real = proc.process

        def failing(event: Any, *args: Any, _real: Any = real, **kwargs: Any) -> None:
            if event.event_id == "ev-2":
                raise KeyError(event.user_id)
            _real(event, *args, **kwargs)

        monkeypatch.setattr(proc, "process", failing)
    caplog.set_level(logging.INFO)
    sends = _run(pipeline)
    dead = [orjson.loads(s.value) for s in sends if s.topic == TOPICS.dead_letter]
    assert "processing_error" in [d["reason"] for d in dead]
    assert "KeyError" in caplog.text  # it is logged...
    _assert_private(caplog.text)  # ...without the user id in the message


def test_replay_logs_and_prints_nothing_personal(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    for n, rec in enumerate(_records()):
        if rec.headers:
            continue
        lines.append(rec.value or b"")
        if n == 1:
            lines.append(b"not json, from eve@example.net (Mallory Q)")
    history = tmp_path / "history.jsonl"
    history.write_bytes(b"\n".join(lines) + b"\n")
    caplog.set_level(logging.INFO)
    assert main(["replay", str(history), "--until", "2026-05-15T00:00:00Z",
                 "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "dead" in out.err.lower()  # the summary was printed
    _assert_private(caplog.text + out.out + out.err)


# --- the helper ---------------------------------------------------------------------------------

def test_hashed_ids_are_stable_keyed_and_reveal_nothing() -> None:
    ids = UserIds(Settings())  # hashing is the default
    shown = ids("ann.lee@example.com")
    assert shown.startswith(HASH_PREFIX) and len(shown) == len(HASH_PREFIX) + 12
    assert "ann" not in shown and "example" not in shown
    assert shown == ids("ann.lee@example.com") == \
        log_user("ann.lee@example.com", Settings())  # stable within a deployment
    assert ids("bo-7731") != shown
    other_app = UserIds(Settings().with_overrides(app_id="another-shop"))
    keyed = UserIds(Settings().with_overrides(log_hash_key="k" * 32))
    assert len({shown, other_app("ann.lee@example.com"), keyed("ann.lee@example.com")}) == 3
    assert ids(None) == "-"


def test_plain_ids_when_asked_cannot_forge_log_lines() -> None:
    plain = UserIds(Settings().with_overrides(hash_user_ids_in_logs=False))
    assert plain("bo-7731") == "bo-7731"
    forged = plain("bo\n2026-01-01 INFO journey: all good")
    assert "\n" not in forged and forged.startswith("bo\\n")
    assert printable("x" * 500).endswith("...") and len(printable("x" * 500)) == 131
    assert printable("Zoë") == "Zoë"  # only control characters are escaped


def test_exception_summary_names_the_place_not_the_message() -> None:
    def lookup(users: dict[str, int], user: str) -> int:
        return users[user]

    try:
        lookup({}, "ann.lee@example.com")
    except KeyError as exc:
        summary = exception_summary(exc)
    assert summary.startswith("KeyError at test_log_privacy.py:")
    assert "in lookup" in summary
    assert "ann.lee" not in summary


def test_the_worker_keeps_kafka_client_debug_logs_off(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG the Kafka clients log whole requests: record payloads, and with SASL PLAIN
    the password. ``journey worker`` at JOURNEY_LOG_LEVEL=DEBUG must not pass them on."""
    import argparse

    from agents.cli.worker import EXIT_BROKER_UNREACHABLE, run_worker

    names = ("aiokafka", "aiokafka.conn", "kafka", "kafka.protocol.parser")
    saved = {name: logging.getLogger(name).level for name in names}
    caplog.set_level(logging.DEBUG)  # the root at DEBUG, as JOURNEY_LOG_LEVEL=DEBUG sets it
    try:
        for name in names:  # as in a fresh process (other tests may have set levels)
            logging.getLogger(name).setLevel(logging.NOTSET)
        assert logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
        # no broker configured: it stops right after setting up logging
        settings = Settings().with_overrides(log_level="DEBUG")
        assert run_worker(argparse.Namespace(), settings) == EXIT_BROKER_UNREACHABLE
        assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("kafka.protocol.parser").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("kafka.net").isEnabledFor(logging.INFO)
        assert logging.getLogger("journey.worker").isEnabledFor(logging.DEBUG)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
