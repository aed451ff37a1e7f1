"""What the demo observes: the worker's /metrics, and its alert and dead-letter topics."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES_PER_TYPE = 3
RECENT_KEPT = 64  # alerts arrive out of order across partitions; the newest come from these


@dataclass(slots=True)
class WorkerMetrics:
    """One scrape of the worker's /metrics, reduced to what the demo shows."""

    consumed: float = 0.0
    applied: float = 0.0
    duplicates: float = 0.0
    dead_letters: dict[str, float] = field(default_factory=dict)
    alerts: dict[str, float] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    assigned_partitions: int = 0
    timers_pending: int = 0
    healthy: bool = False

    @property
    def settled(self) -> float:
        """Input records the worker is done with: applied, skipped as repeats, or rejected."""
        return self.applied + self.duplicates + sum(self.dead_letters.values())


def parse_metrics(text: str) -> WorkerMetrics:
    m = WorkerMetrics()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == "journey_events_consumed_total":
                m.consumed += value
            elif name == "journey_events_applied_total":
                m.applied += value
            elif name == "journey_events_duplicate_total":
                m.duplicates += value
            elif name == "journey_dead_letters_total":
                m.dead_letters[labels["reason"]] = m.dead_letters.get(labels["reason"], 0) + value
            elif name == "journey_alerts_total":
                m.alerts[labels["type"]] = m.alerts.get(labels["type"], 0) + value
            elif name == "journey_users":
                m.users[labels["stage"]] = int(value)
            elif name == "journey_assigned_partitions":
                m.assigned_partitions = int(value)
            elif name == "journey_timers_pending":
                m.timers_pending = int(value)
            elif name == "journey_healthy":
                m.healthy = value >= 1
    return m


def scrape(url: str, timeout: float = 2.0) -> WorkerMetrics | None:
    """Blocking; None while the worker's web server is not up (or is busy)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return parse_metrics(resp.read().decode())
    except (OSError, ValueError):
        return None


class RateMeter:
    """Per-second rate of a growing count over the last ``window`` seconds."""

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._points: deque[tuple[float, float]] = deque()

    def add(self, at: float, count: float) -> None:
        self._points.append((at, count))
        while len(self._points) > 2 and at - self._points[1][0] >= self.window:
            self._points.popleft()

    @property
    def rate(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._points[0], self._points[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass(slots=True)
class Tally:
    """Alerts and dead letters read back from the worker's output topics."""

    started: float = field(default_factory=time.monotonic)
    alerts: Counter[str] = field(default_factory=Counter)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT_KEPT))
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    first_after: dict[str, float] = field(default_factory=dict)  # seconds since `started`
    dead: Counter[str] = field(default_factory=Counter)
    last_dead: dict[str, Any] | None = None

    def add_alert(self, alert: dict[str, Any], now: float | None = None) -> None:
        kind = str(alert.get("type", "?"))
        self.alerts[kind] += 1
        self.recent.append(alert)
        examples = self.examples.setdefault(kind, [])
        if len(examples) < EXAMPLES_PER_TYPE:
            examples.append(alert)
        if kind not in self.first_after:
            self.first_after[kind] = (time.monotonic() if now is None else now) - self.started

    def latest(self, n: int = 8) -> list[dict[str, Any]]:
        """The ``n`` most recently detected alerts, newest first."""
        return sorted(self.recent, key=lambda a: str(a.get("detected_at", "")), reverse=True)[:n]

    def add_dead_letter(self, record: dict[str, Any]) -> None:
        self.dead[str(record.get("reason", "?"))] += 1
        self.last_dead = record

    def add_raw(self, kind: str, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"null")
        except orjson.JSONDecodeError:
            return
        if not isinstance(record, dict):
            return
        if kind == "dead_letter":
            self.add_dead_letter(record)
        else:
            self.add_alert(record)


async def follow_outputs(consumer: Any, kinds: dict[str, str], tally: Tally,
                         stop: asyncio.Event, dead_letter_log: Path | None = None) -> None:
    """Read the output topics from the beginning into ``tally`` until ``stop`` is set,
    copying dead letters to ``dead_letter_log`` (JSON lines) for a closer look.

    ``consumer`` is a started aiokafka consumer subscribed to the topics in ``kinds``
    (topic name -> "alert" or "dead_letter").
    """
    log = open(dead_letter_log, "ab") if dead_letter_log else None  # noqa: SIM115, ASYNC230
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, records in batches.items():
                kind = kinds.get(tp.topic, "alert")
                for rec in records:
                    tally.add_raw(kind, rec.value)
                    if kind == "dead_letter" and log is not None and rec.value is not None:
                        log.write(rec.value + b"\n")
            if log is not None:
                log.flush()
    finally:
        if log is not None:
            log.close()
