"""Filling holes between what the table holds and what the consumer delivers.

faust restores a table by reading its changelog up to the end offset the broker reports.
The embedded broker under-reports that end by up to one record batch, so a restarted
worker can come back missing the last state writes while its consumer resumes after
them. Each partition's checkpoint records, per input topic, the newest offset whose
effects the table held before the checkpoint's batch (see ``Pipeline.commit_state``); any
hole between that and the next record delivered (or the group's committed offset) is
read again here and applied first. So every start reads each partition's last batch
back, whose events the users already hold count as duplicates; on a broker without the
bug that is all this does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from agents.kafka.config import kafka_kwargs
from agents.kafka.records import Gap, Record, in_offset_order
from streams.settings import Settings

log = logging.getLogger("journey.heal")
T = TypeVar("T")


async def read_ranges(settings: Settings, bootstrap: str, gaps: list[Gap]) -> list[Record]:
    """The records of each ``(topic, partition, start, stop)`` range, with one consumer:
    a restart reads each partition's last batch back, so this runs on every start.
    Raises ``TimeoutError`` if they cannot all be read within ``broker_outage_seconds``."""
    wanted = {TopicPartition(t, p): (start, stop) for t, p, start, stop in gaps if stop > start}
    if not wanted:
        return []
    timeout = settings.broker_outage_seconds
    request_ms = int(settings.broker_request_timeout_seconds * 1000)
    consumer = AIOKafkaConsumer(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                enable_auto_commit=False, group_id=None,
                                request_timeout_ms=request_ms)
    deadline = time.monotonic() + timeout
    out: list[Record] = []
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        consumer.assign(list(wanted))
        beginning = await asyncio.wait_for(consumer.beginning_offsets(list(wanted)),
                                           max(0.1, deadline - time.monotonic()))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, max(start, beginning[tp]))
        open_ = set(wanted)
        while open_:
            if time.monotonic() > deadline:
                left = ", ".join(f"{tp.topic}[{tp.partition}] {wanted[tp][0]}..{wanted[tp][1]}"
                                 for tp in sorted(open_))
                raise TimeoutError(f"could not re-read {left}")
            batch = await consumer.getmany(*open_, timeout_ms=500, max_records=5000)
            for tp in list(open_):
                stop = wanted[tp][1]
                out.extend(Record(tp.topic, tp.partition, m.offset, m.key, m.value,
                                  m.timestamp / 1000.0, dict(m.headers or ()))
                           for m in batch.get(tp, []) if m.offset < stop)
                position = await asyncio.wait_for(consumer.position(tp),
                                                  max(0.1, deadline - time.monotonic()))
                if position >= stop:
                    open_.discard(tp)
    finally:
        await _bounded(consumer.stop(), settings.broker_request_timeout_seconds)
    return out


async def committed_offsets(settings: Settings, bootstrap: str, group: str,
                            tps: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The group's committed offsets (the next offset to consume) for ``tps``; a
    topic-partition without one is left out. Reads them without joining the group, and
    raises ``TimeoutError`` past ``broker_outage_seconds``."""
    wanted = [TopicPartition(t, p) for t, p in tps]
    if not wanted:
        return {}
    timeout = settings.broker_outage_seconds
    admin = AIOKafkaAdminClient(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                request_timeout_ms=int(
                                    settings.broker_request_timeout_seconds * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        got = await asyncio.wait_for(
            admin.list_consumer_group_offsets(group, partitions=wanted), timeout)
    finally:
        await _bounded(admin.close(), settings.broker_request_timeout_seconds)
    return {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()
            if meta.offset >= 0}


async def fill(settings: Settings, bootstrap: str, gaps: list[Gap],
               records: list[Record]) -> tuple[list[Record], int]:
    """``records`` with the holes read back in: each topic-partition in offset order
    (holes first), each offset once. Returns the records and how many were read back."""
    if not gaps:
        return records, 0
    for topic, partition, start, stop in gaps:
        log.info("%s[%d]: re-applying offsets %d..%d, which the table may not hold",
                 topic, partition, start, stop - 1)
    healed = await read_ranges(settings, bootstrap, gaps)
    return in_offset_order(healed + records), len(healed)


async def _bounded(closing: Awaitable[None], timeout: float) -> None:
    """Close a client without letting a silent broker hold the caller (shielded, so a
    cancelled caller still closes it)."""
    try:
        await asyncio.wait_for(asyncio.shield(closing), timeout)
    except TimeoutError:
        log.warning("a Kafka client did not close within %.0fs; left behind", timeout)


class BrokerUnreachable(RuntimeError):
    """A call to the broker kept failing for ``broker_outage_seconds``."""


RETRY_PAUSE_SECONDS = 1.0


async def retrying(settings: Settings, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` again after each failure until ``broker_outage_seconds`` have passed,
    then :class:`BrokerUnreachable`: a short outage is ridden out, a long one is fatal."""
    deadline = time.monotonic() + settings.broker_outage_seconds
    while True:
        try:
            return await call()
        except (KafkaError, OSError, TimeoutError) as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerUnreachable(
                    f"broker unreachable for {settings.broker_outage_seconds:.0f}s while "
                    f"{what}: {type(exc).__name__}: {exc}") from exc
            log.warning("%s failed (%s: %s); trying again for another %.0fs", what,
                        type(exc).__name__, exc, left)
            await asyncio.sleep(min(RETRY_PAUSE_SECONDS, left))
