"""Closing the gap between a recovered table and the committed offset.

faust restores a table by reading its changelog up to the end offset the broker reports.
The embedded broker under-reports that end by up to one record batch, so a restarted
worker can come back missing the last state writes, while its consumer resumes after
them. Each partition's context records the newest input offset whose effects it holds;
when the consumer resumes past that, the skipped records are read again and re-applied.
The core's position and event-id checks make re-applying what did survive a no-op, so
this is also harmless on a broker without the bug.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from agents.kafka_config import kafka_kwargs
from agents.pipeline import Record
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
