"""Records in and out of a test's topics, without faust: the topics a worker needs,
events and ticks produced as a storefront (or the worker's own ticker) would write them,
and everything published read back from the beginning."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

import schemas
from agents.kafka.heal import committed_offsets
from agents.kafka.records import TICK, tick_value
from agents.kafka.topics import KIND_HEADER, SCHEMA_HEADER, Topics
from agents.testing.workers import PARTITIONS
from schemas import parse_date_time
from streams.core.contracts import DEAD_LETTER
from streams.core.partitioning import partition_for
from streams.settings import Settings


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def event_time(event: dict[str, Any]) -> float:
    parsed = parse_date_time(event.get("occurred_at") or event.get("timestamp") or "")
    assert parsed is not None, event
    return parsed[0]


# --- topics ------------------------------------------------------------------------------------

def all_topics(settings: Settings) -> Topics:
    return Topics.from_settings(settings)


def settings_on(bootstrap: str, name: str) -> Settings:
    """Settings with names private to one test on a broker of the test's own, with the
    input, repartition and output topics created."""
    from agents.kafka.topics import create_topics

    tag = uuid.uuid4().hex[:6]
    s = Settings().with_overrides(broker=bootstrap, app_id=f"app-{name}-{tag}",
                                  topic_prefix=f"{name}-{tag}.")
    t = all_topics(s)
    asyncio.run(create_topics(bootstrap, [t.events, t.repartition, *t.outputs()], PARTITIONS))
    return s


def topic_suffixes(settings: Settings) -> list[str]:
    """Every journey topic, as a suffix of the test's prefix, for ``make_topics``."""
    t = all_topics(settings)
    names = [t.events, t.repartition, *t.outputs()]
    return [n.removeprefix(settings.topic_prefix) for n in names]


# --- producing ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Out:
    """One record to produce. ``partition`` None: the user's partition from the key."""

    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


def event_record(event: dict[str, Any] | str | bytes, stamp: str | float | None = "occurred_at",
                 key: str | None = None) -> Out:
    """A record of one event keyed by its user (a Segment call's userId, else its
    anonymousId, as Segment's forwarders key them). ``stamp``: "occurred_at" (the record time is
    the event's own time, as when history was produced live), an epoch instant, or None
    (the producer's clock)."""
    if isinstance(event, dict):
        value = orjson.dumps(event)
        key = key if key is not None else (event.get("user_id") or event.get("userId")
                                           or event.get("anonymousId"))
        ts = event_time(event) if stamp == "occurred_at" else stamp
    else:
        value = event.encode() if isinstance(event, str) else event
        ts = None if stamp == "occurred_at" else stamp
    return Out(value, key.encode() if key is not None else None,
               None if ts is None else int(float(ts) * 1000))


def tick_record(instant: float, partition: int) -> Out:
    """A clock tick as the worker's own ticker writes it."""
    return Out(tick_value(instant), None, int(instant * 1000), [(KIND_HEADER, TICK)], partition)


async def _produce(bootstrap: str, topic: str, records: Iterable[Out]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1 << 20,
                                request_timeout_ms=30000)
    await producer.start()
    batches: dict[int, Any] = {}

    async def ship(p: int) -> None:  # one batch per partition in flight: order is kept
        await (await producer.send_batch(batches.pop(p), topic, partition=p))

    n = 0
    try:
        for rec in records:
            p = rec.partition
            if p is None:
                assert rec.key is not None, "a record without key needs a partition"
                p = partition_for(rec.key.decode(), PARTITIONS)
            for _ in range(2):
                if p not in batches:
                    batches[p] = producer.create_batch()
                if batches[p].append(key=rec.key, value=rec.value, timestamp=rec.timestamp_ms,
                                headers=rec.headers) is not None:
                    break
                await ship(p)  # full: send it and start the next
            else:
                raise AssertionError("record larger than a batch")
            n += 1
        for p in list(batches):
            await ship(p)
    finally:
        await producer.stop()
    return n


def produce(bootstrap: str, topic: str, records: Iterable[Out]) -> int:
    """Produce in the order given (per partition); returns how many."""
    return asyncio.run(_produce(bootstrap, topic, records))


def produce_events(bootstrap: str, topic: str, events: Iterable[dict[str, Any] | str],
                   stamp: str | float | None = "occurred_at") -> int:
    return produce(bootstrap, topic, (event_record(e, stamp) for e in events))


# --- consuming ---------------------------------------------------------------------------------

async def _consume(bootstrap: str, topic: str, until: Callable[[list[ConsumerRecord]], bool] | None,
                   timeout: float, idle: float) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        parts = consumer.partitions_for_topic(topic)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not parts and loop.time() < deadline:
            # a topic the worker creates on its first publish: ask again (``topics()``
            # would fetch metadata without updating the consumer's own view)
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await asyncio.sleep(0.2)
        if not parts:
            return records
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        await consumer.seek_to_beginning()
        last_new = loop.time()
        while loop.time() < deadline:
            got = await consumer.getmany(timeout_ms=300, max_records=10000)
            for batch in got.values():
                records.extend(batch)
            if any(got.values()):
                last_new = loop.time()
            if until is not None and until(records):
                break
            if until is None and loop.time() - last_new >= idle:
                break
    finally:
        await consumer.stop()
    return records


def consume(bootstrap: str, topic: str,
            until: Callable[[list[ConsumerRecord]], bool] | None = None,
            timeout: float = 60.0, idle: float = 2.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning (no group), read until ``until(records)``
    holds or ``timeout`` passes; without ``until``, until nothing new came for ``idle``."""
    return asyncio.run(_consume(bootstrap, topic, until, timeout, idle))


async def _ends(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


def caught_up(settings: Settings, topics: Sequence[str]) -> bool:
    """Whether the worker group has committed every record of ``topics``. The committed
    offsets are read before the ends: a worker publishes what a record causes (news on
    the repartition topic among it) before it commits the record, so anything caused by
    a committed record is already counted in the ends."""
    tps = [(t, p) for t in topics for p in range(PARTITIONS)]
    committed = asyncio.run(committed_offsets(settings, settings.broker, settings.app_id, tps))
    ends = asyncio.run(_ends(settings.broker, [TopicPartition(t, p) for t, p in tps]))
    return all(committed.get((tp.topic, tp.partition), 0) >= end for tp, end in ends.items())


def dead_letters(bootstrap: str, topics: Topics, count: int,
                 timeout: float) -> list[dict[str, Any]]:
    """The dead letters published so far, read until ``count`` came (or ``timeout``
    passed); each checked against its contract, its schema header, and as rejecting a
    record of the input topic."""
    check = schemas.validator(DEAD_LETTER.name, DEAD_LETTER.version)
    letters = []
    for rec in consume(bootstrap, topics.dead_letter, until=lambda rs: len(rs) >= count,
                       timeout=timeout):
        letter = orjson.loads(rec.value)
        check(letter)
        assert header(rec, SCHEMA_HEADER) == DEAD_LETTER.id.encode()
        assert letter["origin"]["kind"] == "kafka"
        assert letter["origin"]["topic"] == topics.events
        letters.append(letter)
    return letters


def values(records: Sequence[ConsumerRecord]) -> list[dict[str, Any]]:
    return [dict(orjson.loads(r.value)) for r in records]


def header(record: ConsumerRecord, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v)
    return None


# --- sentinels ---------------------------------------------------------------------------------

def sentinels(at: float, prefix: str = "zz-sentinel") -> list[dict[str, Any]]:
    """One page view per partition at ``at``, by users who land one on each partition.
    Once all of them show in /users, the worker has handled everything produced before
    them, since a partition is consumed in order."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < PARTITIONS:
        uid = f"{prefix}-{i}"
        found.setdefault(partition_for(uid, PARTITIONS), uid)
        i += 1
    return [{"event_id": f"{uid}-e", "user_id": uid, "type": "page_view",
             "occurred_at": rfc3339(at), "source": "test", "properties": {}}
            for _, uid in sorted(found.items())]


def produce_with_sentinels(bootstrap: str, topic: str, records: list[Out],
                           prefix: str) -> list[dict[str, Any]]:
    """Produce ``records``, then sentinels stamped now; returns the sentinels (see
    :meth:`Worker.wait_users <agents.testing.workers.Worker.wait_users>`)."""
    after = sentinels(time.time(), prefix=prefix)
    produce(bootstrap, topic, [*records, *(event_record(e, stamp=time.time()) for e in after)])
    return after
