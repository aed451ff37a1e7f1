"""The demo's storefront: synthetic traffic published on an accelerated, simulated clock.

The simulator owns time. An event is published once simulated time has reached its
``occurred_at``, with the simulated instant as its record timestamp (the worker reads that
as "received at"), keyed by user and on the partition Kafka's default partitioner gives
the user. Every step then appends a tick record to every partition, so the worker's
inactivity timers fire on simulated time, behind the events that came before them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from agents.kafka.records import TICK, tick_value
from agents.kafka.topics import KIND_HEADER
from streams.core.partitioning import partition_for

DAY = 86400.0
TICK_HEADERS = [(KIND_HEADER, TICK)]

Item = dict[str, Any] | str  # what streams.synth yields: an event, or a malformed line


@dataclass(frozen=True, slots=True)
class SimClock:
    """Simulated time runs ``days_per_second`` simulated days per wall second from
    ``sim_start``, counted from the wall instant ``wall_start``."""

    sim_start: float
    wall_start: float
    days_per_second: float

    def at(self, wall: float) -> float:
        return self.sim_start + max(0.0, wall - self.wall_start) * self.days_per_second * DAY


@dataclass(frozen=True, slots=True)
class OutRecord:
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def is_tick(self) -> bool:
        return self.headers == TICK_HEADERS


def event_time(item: dict[str, Any]) -> float:
    """Epoch seconds of a canonical event (``occurred_at``) or a Segment call (``timestamp``)."""
    text = item.get("occurred_at") or item.get("timestamp")
    return datetime.fromisoformat(str(text)).timestamp()  # 3.11 reads a trailing Z


def event_user(item: dict[str, Any]) -> str:
    return str(item.get("user_id") or item.get("userId") or item.get("anonymousId") or "")


class Storefront:
    """Turns a time-ordered stream of synthetic items into per-step records.

    Malformed lines have no reliable time or user, so each one goes out with the good
    event that follows it (same partition, same key): they reach the worker's decoder
    exactly as a broken storefront would send them.
    """

    def __init__(self, items: Iterator[Item], partitions: int) -> None:
        self._items = items
        self.partitions = partitions
        self._next: dict[str, Any] | None = None
        self._next_at = 0.0
        self._held: list[str] = []  # malformed lines waiting for the next good event
        self.events = 0  # good events published (duplicates included)
        self.malformed = 0
        self.exhausted = False
        self.last_user: str | None = None
        self._pull()

    def _pull(self) -> None:
        for item in self._items:
            if isinstance(item, str):
                self._held.append(item)
                continue
            self._next, self._next_at = item, event_time(item)
            return
        self._next, self.exhausted = None, True

    def due(self, sim_now: float) -> dict[int, list[OutRecord]]:
        """Everything to publish at ``sim_now``: the events whose time has come, then one
        tick per partition. Each record's timestamp is ``sim_now``."""
        ts = int(sim_now * 1000)
        out: dict[int, list[OutRecord]] = {p: [] for p in range(self.partitions)}
        while self._next is not None and self._next_at <= sim_now:
            user = event_user(self._next)
            key = user.encode()
            part = out[partition_for(user, self.partitions)]
            for line in self._held:
                part.append(OutRecord(key, line.encode(), ts))
            self.malformed += len(self._held)
            self._held.clear()
            part.append(OutRecord(key, orjson.dumps(self._next), ts))
            self.events += 1
            self.last_user = user
            self._pull()
        tick = tick_value(sim_now)
        for records in out.values():
            records.append(OutRecord(None, tick, ts, TICK_HEADERS))
        return out


async def publish(producer: Any, topic: str, records: dict[int, list[OutRecord]]) -> int:
    """Send each partition's records as aiokafka batches, in order, and wait until the
    broker has them all; returns how many records went out."""
    pending = []
    sent = 0
    for partition, recs in records.items():
        batch = producer.create_batch()
        for r in recs:
            if batch.append(timestamp=r.timestamp_ms, key=r.key, value=r.value,
                            headers=r.headers) is None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(timestamp=r.timestamp_ms, key=r.key, value=r.value,
                                headers=r.headers) is None:
                    raise ValueError(f"a record of {len(r.value)} bytes exceeds the batch size")
            sent += 1
        if batch.record_count():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)
    return sent
