"""The worker's :class:`~streams.core.outputs.Sink`: the core's outputs as records to
publish, with schema headers, and the metrics that count them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from agents.kafka.metrics import Metrics, observe_many
from agents.kafka.records import FEEDBACK, Record, Send, encode_feedback
from agents.kafka.topics import KIND_HEADER, SCHEMA_HEADER, Topics
from streams.core.churn.model import ChurnModel
from streams.core.contracts import DEAD_LETTER
from streams.core.deadletter import dead_letter
from streams.core.event import ALIAS, IDENTIFY, Event
from streams.core.outputs import Rejected
from streams.core.partitioning import partition_for

DEAD_LETTER_HEADER = (SCHEMA_HEADER, DEAD_LETTER.id.encode())
IDENTITY_CALLS = frozenset({IDENTIFY, ALIAS})


class RecordSink:
    """Collects one batch's records to publish. ``record`` is the consumed record whose
    outputs are being drained: dead letters name it as their origin, and alerts carry
    its time for the latency metric."""

    def __init__(self, topics: Topics, metrics: Metrics, partitions: int,
                 wall_clock: Callable[[], float]) -> None:
        self.topics = topics
        self.metrics = metrics
        self.partitions = partitions
        self.wall_clock = wall_clock
        self.sends: list[Send] = []
        self.record: Record | None = None
        self.applied: dict[str, int] = {}  # events applied, by type: counted per batch
        self.ages: list[float] = []  # their ages when applied: observed per batch

    def take(self) -> list[Send]:
        """The batch's records to publish; the next batch starts empty."""
        sends, self.sends = self.sends, []
        return sends

    def count_applied(self) -> None:
        """Add the batch's applied events to their counter (``labels()`` is not free)."""
        for kind, count in self.applied.items():
            self.metrics.events_applied.labels(kind).inc(count)
        self.applied.clear()
        observe_many(self.metrics.event_age, self.ages)
        self.ages.clear()

    def dead(self, reason: str, message: str, rec: Record, event_id: str | None = None,
             user_id: str | None = None) -> None:
        """A dead letter for ``rec``."""
        self.metrics.dead_letters.labels(reason).inc()
        origin = {"kind": "kafka", "topic": rec.topic, "partition": rec.partition,
                  "offset": rec.offset,
                  "key": None if rec.key is None else rec.key.decode("utf-8", "replace")}
        record = dead_letter(reason, message, rec.value or b"", origin, self.wall_clock(),
                             event_id, user_id)
        self.sends.append(Send(self.topics.dead_letter, rec.key, orjson.dumps(record),
                               [DEAD_LETTER_HEADER]))

    # --- the Sink ------------------------------------------------------------------------

    def on_applied(self, events: list[Event]) -> None:
        now = self.wall_clock()
        applied, ages = self.applied, self.ages
        for e in events:
            applied[e.type] = applied.get(e.type, 0) + 1
            ages.append(max(0.0, now - e.occurred_at))
            if e.type in IDENTITY_CALLS:
                self.metrics.segment_calls.labels(e.type, "applied").inc()

    def on_duplicates(self, count: int) -> None:
        self.metrics.events_duplicate.inc(count)

    def on_rejected(self, rejected: Rejected) -> None:
        assert self.record is not None
        e = rejected.event
        self.dead(rejected.reason, rejected.message, self.record, e.event_id, e.user_id)

    def on_alert(self, alert: dict[str, Any]) -> None:
        assert self.record is not None
        self.metrics.alerts.labels(alert["type"], alert["priority"],
                                   "true" if alert["control"] else "false").inc()
        self.sends.append(Send(self.topics.alert_topic(alert["type"]),
                               alert["user_id"].encode(), orjson.dumps(alert),
                               [(SCHEMA_HEADER, alert["schema"].encode())],
                               source_time=self.record.timestamp))

    def on_historical(self, alert: dict[str, Any]) -> None:
        pass  # never published: counted by on_suppressed (reason historical)

    def on_transition(self, transition: dict[str, Any]) -> None:
        self.metrics.transitions.labels(transition["from_stage"] or "none",
                                        transition["to_stage"]).inc()
        self.sends.append(Send(self.topics.transitions, transition["user_id"].encode(),
                               orjson.dumps(transition),
                               [(SCHEMA_HEADER, transition["schema"].encode())]))

    def on_feedback(self, event: Event) -> None:
        self.sends.append(Send(self.topics.repartition, event.user_id.encode(),
                               encode_feedback(event), [(KIND_HEADER, FEEDBACK)],
                               partition_for(event.user_id, self.partitions)))

    def on_suppressed(self, kind: str, reason: str) -> None:
        self.metrics.alerts_suppressed.labels(kind, reason).inc()

    def on_deferred(self, kind: str) -> None:
        self.metrics.alerts_deferred.labels(kind).inc()

    def on_reactivation(self, label: str) -> None:
        self.metrics.reactivations.labels(label).inc()

    def on_refits(self, count: int) -> None:
        self.metrics.model_refits.inc(count)

    def on_churn_model(self, partition: int, model: ChurnModel) -> None:
        pass  # its quality is logged by the re-fit and shown per partition by the gauges

    def on_ignored(self, call: str) -> None:
        self.metrics.segment_calls.labels(call, "ignored").inc()

    def on_stitch(self, outcome: str) -> None:
        self.metrics.identity.labels(outcome).inc()
