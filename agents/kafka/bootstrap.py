"""Loading a replayed history into the users table's changelog (``journey bootstrap``).

What a worker restores from each changelog partition after a bootstrap, in log order:

1. a marker ``started``: the bootstrap's digest, cut-over and input offsets;
2. the partition's users (large batches), and tombstones for keys an earlier, different
   attempt wrote that this history does not have;
3. the partition's checkpoint: clock at the cut-over, model, ``live_from``, the input
   offsets the worker resumes after, marked as a bootstrap's;
4. a marker ``complete``, alone in its record batch.

Each step starts once every partition's previous step is acknowledged. Without
transactions (the embedded broker has none) this order is what makes a kill safe: a
partition whose newest marker is ``started`` is half loaded, and a worker refuses it
(see :func:`unfinished`) until a run completes. The last record is alone in its batch
because the embedded broker reports a partition's end as the start of its newest batch
+ 1: faust's recovery then reads to the true end, marker included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents.kafka import codec
from agents.kafka.config import kafka_kwargs
from agents.kafka.heal import committed_offsets
from agents.kafka.table import CTX_PREFIX, ctx_key, table_value
from agents.kafka.topics import Topics, changelog_topic, create_topics
from streams.settings import Settings

MARKER_PREFIX = "\x00bootstrap:"
STARTED, COMPLETE = "started", "complete"
BATCH_BYTES = 1_000_000  # under the 1 MiB a Kafka broker accepts by default
Write = tuple[bytes, bytes | None]  # key, value (None: a tombstone)
Progress = Callable[[str, int, int], None]  # phase, records acknowledged, records in it


class BootstrapError(RuntimeError):
    """Bootstrap cannot go on; ``code`` is the command's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def marker_key(partition: int, partitions: int) -> str:
    return ctx_key(partition, partitions, MARKER_PREFIX)


def unfinished(table: Mapping[Any, Any], partitions: Iterable[int], n: int) -> str | None:
    """Why a worker must not serve these partitions: one holds a bootstrap that was
    started and never completed (its users may be half written). None when all is well."""
    for p in partitions:
        marker = table_value(table.get(marker_key(p, n)))
        if isinstance(marker, dict) and marker.get("bootstrap") == STARTED:
            return (f"partition {p} holds a bootstrap that did not complete (digest "
                    f"{str(marker.get('digest'))[:12]}): run `journey bootstrap` again with "
                    "the same files and options, then start the workers")
    return None


# --- what the app's topics hold ---------------------------------------------------------------

@dataclass
class PartitionLog:
    """One changelog partition, as a bootstrap sees it before writing."""

    keys: set[bytes] = field(default_factory=set)  # keys whose newest record has a value
    marker: dict[str, Any] | None = None  # the newest bootstrap marker
    worker_wrote: bool = False  # a worker's checkpoint after that marker (or with none)
    end: int = 0


@dataclass
class Found:
    topics: Topics
    changelog: str
    logs: dict[int, PartitionLog]
    input_beginnings: dict[int, int]
    input_ends: dict[int, int]
    repartition_ends: dict[int, int]
    committed: dict[tuple[str, int], int]

    def previous(self, digest: str) -> dict[str, Any] | None:
        """The marker of an earlier run with this digest, if every partition has one."""
        markers = [log.marker for log in self.logs.values()]
        if markers and all(m is not None and m.get("digest") == digest for m in markers):
            return markers[0]
        return None

    def went_live(self) -> str | None:
        """Why the table holds more than a bootstrap: workers processed input since the
        newest bootstrap (or without one). None when a bootstrap may (re)write it."""
        busy = sorted(p for p, log in self.logs.items() if log.worker_wrote)
        if busy:
            return (f"workers have processed input since the last bootstrap (a worker's "
                    f"checkpoint in {self.changelog} partitions {busy})")
        if self.committed and not any(log.marker for log in self.logs.values()):
            return ("the consumer group has committed offsets on the input topics but the "
                    "table holds no bootstrap: workers have consumed input")
        return None


async def inspect(settings: Settings, bootstrap: str) -> Found:
    """Create the app's topics that are missing (as a worker would), check their
    partition counts, and read what the changelog and the group hold."""
    topics = Topics.from_settings(settings)
    changelog = changelog_topic(settings)
    n = settings.partitions
    await ensure_topics(settings, bootstrap, {topics.events: {}, topics.repartition: {},
                                              changelog: {"cleanup.policy": "compact"}})
    logs = {p: PartitionLog() for p in range(n)}
    ends = await read_to_end(settings, bootstrap, changelog, range(n),
                             on_record=lambda m: _note(logs[m.partition], m))
    for p, end in ends.items():
        logs[p].end = end
    beginnings, input_ends = await topic_bounds(settings, bootstrap, topics.events, n)
    _, repartition_ends = await topic_bounds(settings, bootstrap, topics.repartition, n)
    committed = await committed_offsets(
        settings, bootstrap, settings.app_id,
        [(t, p) for t in (topics.events, topics.repartition) for p in range(n)])
    return Found(topics, changelog, logs, beginnings, input_ends, repartition_ends, committed)


def _note(log: PartitionLog, m: ConsumerRecord) -> None:
    key: bytes = m.key or b""
    if m.value is None:
        log.keys.discard(key)
        return
    log.keys.add(key)
    if key.startswith(MARKER_PREFIX.encode()):
        log.marker = codec.loads(m.value)
        log.worker_wrote = False
    elif key.startswith(CTX_PREFIX.encode()) and "bootstrap" not in codec.loads(m.value):
        log.worker_wrote = True


async def changed_since(settings: Settings, bootstrap: str, found: Found) -> bool:
    """Whether anything was written to the changelog after ``found`` read it."""
    ends = await read_to_end(settings, bootstrap, found.changelog, range(settings.partitions),
                             starts={p: log.end for p, log in found.logs.items()})
    return any(ends[p] != log.end for p, log in found.logs.items())


async def group_members(settings: Settings, bootstrap: str) -> int:
    """Members of the workers' consumer group. Only a hint: the embedded broker keeps
    listing members that left until the group next changes."""
    async with _admin(settings, bootstrap) as admin:
        described = await admin.describe_consumer_groups([settings.app_id])
    return sum(len(g[-1]) for resp in described for g in resp.groups)


async def ensure_topics(settings: Settings, bootstrap: str,
                        wanted: Mapping[str, Mapping[str, str]]) -> None:
    """Create the topics of ``wanted`` that do not exist (with their configs); raise
    BootstrapError if one exists with another partition count than the settings'."""
    async with _admin(settings, bootstrap) as admin:
        existing = set(await admin.list_topics())
        present = [t for t in wanted if t in existing]
        described = await admin.describe_topics(present) if present else []
    wrong = [f"{d['topic']} has {len(d['partitions'])}" for d in described
             if len(d["partitions"]) != settings.partitions]
    if wrong:
        raise BootstrapError(f"{', '.join(wrong)} partitions, the settings say "
                             f"{settings.partitions}: a bootstrap must use the workers' "
                             "partition count", 2)
    missing = [t for t in wanted if t not in existing]
    if missing:
        await create_topics(bootstrap, missing, settings.partitions,
                            settings.replication_factor,
                            client=kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                            configs=wanted)


async def topic_bounds(settings: Settings, bootstrap: str, topic: str,
                       n: int) -> tuple[dict[int, int], dict[int, int]]:
    """Each partition's first offset and true end (next offset to be written)."""
    beginnings: dict[int, int] = {}

    async def seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        got = await consumer.beginning_offsets(tps)
        reported = await consumer.end_offsets(tps)  # low by up to a batch on Tansu
        for tp in tps:
            beginnings[tp.partition] = got[tp]
            consumer.seek(tp, max(got[tp], reported[tp]))

    ends = await read_to_end(settings, bootstrap, topic, range(n), seek=seek)
    return beginnings, ends


async def read_to_end(settings: Settings, bootstrap: str, topic: str,
                      partitions: Iterable[int],
                      on_record: Callable[[ConsumerRecord], None] | None = None,
                      starts: Mapping[int, int] | None = None,
                      seek: Callable[[AIOKafkaConsumer, list[TopicPartition]], Any] | None = None,
                      ) -> dict[int, int]:
    """Read ``topic``'s partitions from ``starts`` (or ``seek``; default: the beginning)
    to their true ends, which are returned: where the consumer's position reaches the
    high-water mark of a fetch response. Not ``end_offsets()``, which the embedded broker
    under-reports. Raises TimeoutError when nothing is read for ``broker_outage_seconds``."""
    tps = [TopicPartition(topic, p) for p in partitions]
    timeout = settings.broker_outage_seconds
    consumer = AIOKafkaConsumer(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50,
                                request_timeout_ms=int(
                                    settings.broker_request_timeout_seconds * 1000))
    ends: dict[int, int] = {}
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        consumer.assign(tps)
        if seek is not None:
            await asyncio.wait_for(seek(consumer, tps), timeout)
        elif starts is not None:
            for tp in tps:
                consumer.seek(tp, starts[tp.partition])
        else:
            await asyncio.wait_for(consumer.seek_to_beginning(*tps), timeout)
        left = set(tps)
        quiet_since = time.monotonic()
        while left:
            got = await consumer.getmany(*left, timeout_ms=500, max_records=20_000)
            for tp in sorted(left):
                records = got.get(tp, ())
                if records:
                    quiet_since = time.monotonic()
                if on_record is not None:
                    for m in records:
                        on_record(m)
                high = consumer.highwater(tp)
                position = await asyncio.wait_for(consumer.position(tp), timeout)
                if high is not None and position >= high:
                    ends[tp.partition] = position
                    left.discard(tp)
            if left and time.monotonic() - quiet_since > timeout:
                raise TimeoutError(f"{topic}: could not read to the end of partitions "
                                   f"{sorted(tp.partition for tp in left)}")
    finally:
        await _closed(consumer.stop(), settings)
    return ends


@asynccontextmanager
async def _admin(settings: Settings, bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                request_timeout_ms=int(
                                    settings.broker_request_timeout_seconds * 1000))
    await asyncio.wait_for(admin.start(), settings.broker_outage_seconds)
    try:
        yield admin
    finally:
        await _closed(admin.close(), settings)


async def _closed(closing: Any, settings: Settings) -> None:
    with contextlib.suppress(TimeoutError):  # a silent broker must not hold the exit
        await asyncio.wait_for(closing, settings.broker_request_timeout_seconds)


# --- writing -----------------------------------------------------------------------------------

@dataclass
class Plan:
    """Everything one bootstrap writes, per changelog partition."""

    changelog: str
    partitions: int
    marker: dict[str, Any]  # shared by every partition's two markers
    users: Callable[[int], Iterable[Write]]  # a partition's user records, made on demand
    sizes: dict[int, int]  # user records per partition
    contexts: dict[int, dict[str, Any]]
    stale: dict[int, set[bytes]] = field(default_factory=dict)  # keys to tombstone

    def records(self, p: int) -> int:
        """How many records this plan writes to partition ``p``."""
        return self.sizes.get(p, 0) + len(self.stale.get(p, ())) + 3

    def markers(self, state: str) -> dict[int, list[Write]]:
        value = codec.dumps({**self.marker, "bootstrap": state})
        return {p: [(marker_key(p, self.partitions).encode(), value)]
                for p in range(self.partitions)}

    def checkpoints(self) -> dict[int, list[Write]]:
        return {p: [(ctx_key(p, self.partitions).encode(), codec.dumps(ctx))]
                for p, ctx in self.contexts.items()}

    def body(self, p: int) -> Iterable[Write]:
        yield from self.users(p)
        for key in sorted(self.stale.get(p, ())):
            yield key, None


async def write(settings: Settings, bootstrap: str, plan: Plan, progress: Progress) -> list[int]:
    """Write ``plan`` in the order described at the top of this module. ``progress`` is
    told as batches are sent and when a phase is acknowledged; an exception from it
    stops the write there (which is how the tests kill a bootstrap at a chosen point).

    Returns the partitions where other records landed between this plan's first and
    last (a worker wrote to the table meanwhile): the offsets of the two markers tell."""
    producer = AIOKafkaProducer(**kafka_kwargs(settings, "aiokafka", bootstrap=bootstrap),
                                acks="all", max_batch_size=BATCH_BYTES,
                                client_id=f"{settings.app_id}-bootstrap",
                                request_timeout_ms=int(
                                    settings.broker_request_timeout_seconds * 1000))
    await asyncio.wait_for(producer.start(), settings.broker_outage_seconds)
    n = plan.partitions
    try:
        send = _Sender(producer, plan.changelog, progress)
        first = await send.phase("started", plan.markers(STARTED), n)
        await send.phase("users", {p: plan.body(p) for p in range(n)},
                         sum(plan.records(p) - 3 for p in range(n)))
        await send.phase("checkpoints", plan.checkpoints(), n)
        last = await send.phase("complete", plan.markers(COMPLETE), n)
    finally:
        await _closed(producer.stop(), settings)
    return [p for p in range(n) if last[p] - first[p] + 1 != plan.records(p)]


class _Sender:
    def __init__(self, producer: AIOKafkaProducer, topic: str, progress: Progress) -> None:
        self.producer, self.topic, self.progress = producer, topic, progress

    async def phase(self, name: str, records: Mapping[int, Iterable[Write]],
                    total: int) -> dict[int, int]:
        """Every partition's records, partitions in parallel, each in order; returns when
        all are acknowledged, with each partition's last batch's base offset. The
        accumulator holds one batch per partition, so a partition's next batch waits for
        the previous one: memory stays bounded."""
        acked = [0]

        def count(n: int) -> Callable[[asyncio.Future[Any]], None]:
            def counted(f: asyncio.Future[Any]) -> None:
                if not f.cancelled() and f.exception() is None:
                    acked[0] += n
            return counted

        async def partition(p: int, recs: Iterable[Write]) -> list[asyncio.Future[Any]]:
            futures: list[asyncio.Future[Any]] = []
            batch = self.producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await self._ship(batch, p, count(batch.record_count())))
                    self.progress(name, acked[0], total)  # may raise: see write()
                    batch = self.producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise BootstrapError(f"a record of {len(value or b'')} bytes does "
                                             "not fit a batch", 1)
            if batch.record_count():
                futures.append(await self._ship(batch, p, count(batch.record_count())))
            return futures

        sent = await asyncio.gather(*(partition(p, recs) for p, recs in records.items()))
        await asyncio.gather(*(f for fs in sent for f in fs))
        self.progress(name, acked[0], total)
        return {p: fs[-1].result().offset for p, fs in zip(records, sent, strict=True) if fs}

    async def _ship(self, batch: Any, p: int,
                    on_done: Callable[[asyncio.Future[Any]], None]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self.producer.send_batch(batch, self.topic,
                                                                     partition=p)
        future.add_done_callback(on_done)
        return future
