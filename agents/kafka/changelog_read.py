"""Reading a table's changelog in bulk, with one plain consumer in large fetches.

faust's recovery passes every changelog record through its consumer, conductor, a queue
and a per-record loop; the table stores (``agents.kafka.tablestore``) read their
partitions with this first, up to the true end, and leave faust only what is written
after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka.structs import TopicPartition

from agents.kafka.config import kafka_kwargs
from streams.settings import Settings

log = logging.getLogger("journey.tablestore")

FETCH_BYTES = 16 * 1024 * 1024  # per partition and fetch, while loading
FETCH_WAIT_MS = 100
TAIL_ROUNDS = 5  # extra fetches past the reported end before a partition still written
# to (a standby's) is left to faust's own reading


Apply = Callable[[int, list[Any]], None]


async def read_changelog(settings: Settings, bootstrap: str, topic: str,
                         start: dict[int, int], apply: Apply) -> dict[int, int]:
    """Read ``topic``'s partitions from ``start[p]`` (an offset, inclusive) to their end,
    handing each fetched run of records to ``apply(partition, records)`` in offset order.

    Returns the end each partition's broker reported before the reading, minus one: what
    faust will take for its highwater at the earliest. The end read to is the true one
    (a fetch that brings nothing more), which the embedded broker reports low by up to a
    record batch. Bounded by ``broker_outage_seconds``; what is not read by then is left
    to faust's recovery (the caller's offsets say how far this got).
    """
    from aiokafka import AIOKafkaConsumer

    if not start:
        return {}
    tps = {p: TopicPartition(topic, p) for p in start}
    consumer = AIOKafkaConsumer(
        **kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap), group_id=None,
        enable_auto_commit=False, check_crcs=False, fetch_max_wait_ms=FETCH_WAIT_MS,
        max_partition_fetch_bytes=FETCH_BYTES, fetch_max_bytes=4 * FETCH_BYTES,
        request_timeout_ms=int(settings.broker_request_timeout_seconds * 1000))
    limit = settings.broker_outage_seconds
    deadline = time.monotonic() + limit
    reported: dict[int, int] = {}
    try:
        await asyncio.wait_for(consumer.start(), limit)
        consumer.assign(list(tps.values()))
        left = max(0.1, deadline - time.monotonic())
        first = await asyncio.wait_for(consumer.beginning_offsets(list(tps.values())), left)
        ends = await asyncio.wait_for(consumer.end_offsets(list(tps.values())), left)
        reported = {p: ends[tp] - 1 for p, tp in tps.items()}
        for p, tp in tps.items():
            consumer.seek(tp, max(start[p], first[tp]))
        open_ = set(tps.values())
        past_end: dict[TopicPartition, int] = {}
        while open_:
            if time.monotonic() > deadline:
                log.warning("changelog %s: read for %.0fs, left %s to faust's recovery",
                            topic, limit, sorted(tp.partition for tp in open_))
                break
            got = await consumer.getmany(*open_, timeout_ms=2 * FETCH_WAIT_MS,
                                         max_records=50_000)
            for tp, records in got.items():
                if records:
                    apply(tp.partition, records)
            for tp in list(open_):
                if await consumer.position(tp) < ends[tp]:
                    continue
                rounds = past_end[tp] = past_end.get(tp, 0) + 1
                if not any(got.values()) or rounds > TAIL_ROUNDS:
                    open_.discard(tp)
    finally:
        try:
            await asyncio.wait_for(asyncio.shield(consumer.stop()),
                                   settings.broker_request_timeout_seconds)
        except TimeoutError:
            log.warning("the changelog reader did not close in time; left behind")
    return reported
