"""Filling holes between what the table holds and what the consumer delivers.

faust restores a table by reading its changelog up to the end offset the broker reports.
The embedded broker under-reports that end by up to one record batch, so a restarted
worker can come back missing the last state writes while its consumer resumes after
them. Each partition's context records, per input topic, the newest offset whose effects
it holds; any hole between that and the next record delivered (or the group's committed
offset) is read again here and applied first. Records the table already holds are
skipped, so this is also harmless on a broker without the bug.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from agents.kafka_config import kafka_kwargs
from agents.pipeline import Gap, Record, in_offset_order
from streams.settings import Settings

log = logging.getLogger("journey.heal")


async def read_range(settings: Settings, bootstrap: str, topic: str, partition: int,
                     start: int, stop: int, timeout: float = 60.0) -> list[Record]:
    """Records ``start <= offset < stop`` of one partition (fewer if the log starts later)."""
    if stop <= start:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Record] = []
    try:
        consumer.assign([tp])
        beginning = (await consumer.beginning_offsets([tp]))[tp]
        consumer.seek(tp, max(start, beginning))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            msgs = batch.get(tp, [])
            if not msgs and await consumer.position(tp) >= stop:
                break
            for m in msgs:
                if m.offset >= stop:
                    return out
                out.append(Record(topic, partition, m.offset, m.key, m.value,
                                  m.timestamp / 1000.0, dict(m.headers or ())))
            if out and out[-1].offset >= stop - 1:
                break
        else:
            raise TimeoutError(f"could not re-read {topic}[{partition}] {start}..{stop}")
    finally:
        await asyncio.shield(consumer.stop())
    return out


async def committed_offsets(settings: Settings, bootstrap: str, group: str,
                            tps: Iterable[tuple[str, int]],
                            timeout: float = 30.0) -> dict[tuple[str, int], int]:
    """The group's committed offsets (the next offset to consume) for ``tps``; a
    topic-partition without one is left out. Reads them without joining the group."""
    wanted = [TopicPartition(t, p) for t, p in tps]
    if not wanted:
        return {}
    admin = AIOKafkaAdminClient(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap))
    await admin.start()
    try:
        got = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group, partitions=wanted), timeout)
    finally:
        await asyncio.shield(admin.close())
    return {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()
            if meta.offset >= 0}


async def fill(settings: Settings, bootstrap: str, gaps: list[Gap],
               records: list[Record]) -> tuple[list[Record], int]:
    """``records`` with the holes read back in: each topic-partition in offset order
    (holes first), each offset once. Returns the records and how many were read back."""
    if not gaps:
        return records, 0
    healed: list[Record] = []
    for topic, partition, start, stop in gaps:
        log.warning("%s[%d]: offsets %d..%d are missing from the table; re-applying them",
                    topic, partition, start, stop - 1)
        healed += await read_range(settings, bootstrap, topic, partition, start, stop)
    return in_offset_order(healed + records), len(healed)
