"""The faust app: topics, the users table, the state loop, the ticker, the gauges and
the watchdog (``watchdog``), sharing a :class:`~agents.kafka.runtime.Runtime`.

One state loop (the only table writer) takes batches of the input topic and the
repartition topic from the consumer (``agents.kafka.inbox``) and hands them to
:class:`agents.kafka.pipeline.Pipeline`. Before
a batch is acknowledged, its state records and outputs are flushed to the broker, so an
offset is never committed ahead of the state it produced (at-least-once; the core's
position and event-id checks make redelivery harmless).

Inactivity is the absence of events, so the worker stamps a wall-clock *tick* record into
each input partition it owns every ``tick_interval_seconds``. Ticks travel behind the
events already in the partition, so a tick never fires a timer ahead of a backlog.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import faust

from agents.kafka import codec
from agents.kafka.bootstrap import unfinished
from agents.kafka.config import kafka_kwargs
from agents.kafka.heal import committed_offsets, fill, retrying
from agents.kafka.inbox import Inbox
from agents.kafka.logsafe import exception_summary
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline, Snapshots
from agents.kafka.publish import send_acknowledged
from agents.kafka.records import TICK, Record, Send, tick_value
from agents.kafka.runtime import Runtime, fatal, fatal_soon, guarded, owned
from agents.kafka.table import Staged, changelog_groups
from agents.kafka.tablerows import restore_from_table
from agents.kafka.tablestore import changelog_offsets, users_table
from agents.kafka.topics import KIND_HEADER, Topics
from agents.kafka.watchdog import check_broker, check_progress
from agents.kafka.web import install_views
from streams.core.context import PartitionContext
from streams.core.partitioning import partition_for
from streams.settings import Settings

BATCH_MAX = 2000  # input records per batch, at most


def _headers(raw: Any) -> dict[str, bytes]:
    if not raw:
        return {}
    items = raw.items() if isinstance(raw, dict) else raw
    return {k: (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


def to_records(messages: Sequence[Any]) -> list[Record]:
    return [Record(m.topic, m.partition, m.offset, m.key, m.value, (m.timestamp or 0.0),
                   _headers(m.headers)) for m in messages]


def build(settings: Settings, bootstrap: str, metrics: Metrics | None = None) -> Runtime:
    codec.register()
    topics = Topics.from_settings(settings)
    metrics = metrics or Metrics()
    from agents.kafka.fastpath import lean_app_class, lean_monitor_class

    data_path = settings.data_path()
    data_path.mkdir(parents=True, exist_ok=True)  # faust creates only the last level

    app = lean_app_class(settings.fetch_max_wait_seconds)(
        settings.app_id,
        Monitor=lean_monitor_class(),
        # for what faust still delivers itself; the input's buffer is the
        # inbox's four batches (agents.kafka.inbox), shared by all partitions: records
        # of a partition with a backlog keep the others waiting behind them
        stream_buffer_maxsize=4 * BATCH_MAX,
        broker_max_poll_records=5000,
        **kafka_kwargs(settings, "faust", bootstrap=bootstrap),
        store=settings.store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=advertised_url(settings),
        consumer_group_instance_id=settings.instance_id or None,
        web_in_thread=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        # a rebalance waits for the batch in hand to be published and acknowledged, so
        # the partition's next owner recovers a changelog this worker has finished with
        stream_wait_empty=True,
        producer_linger=0.005,
        # a request the broker never answers fails after this and is retried, instead of
        # holding the batch for faust's default of 20 minutes
        producer_request_timeout=settings.broker_request_timeout_seconds,
        datadir=str(data_path),
        broker_commit_every=BATCH_MAX,
        broker_commit_interval=1.0,
        table_cleanup_interval=3600.0,
    )
    # Keys and values travel as raw bytes (our codec); the store restores quickly and
    # knows its partitions' users (agents.kafka.tablestore).
    table = users_table(app, settings, bootstrap)
    n = settings.partitions
    pending_changelog: list[Staged] = []

    def write(key: str, value: Any) -> None:
        # Held for a direct producer send after the batch (faster than faust's send_soon
        # buffer, measured), on our own partition choice: faust's partitioner needs
        # producer metadata for the changelog topic, which it may not have yet.
        partition = partition_for(key, n)
        raw = None if value is None else codec.dumps(value)  # None: a tombstone
        table.data.put(key, value, raw, partition)
        pending_changelog.append((key, partition, key.encode(), raw))

    def rebuild(proc: Any, partition: int, ctx: PartitionContext | None,
                snapshots: Snapshots) -> None:
        restore_from_table(table, proc, partition, ctx, snapshots)

    pipeline = Pipeline(settings, topics, metrics, table, write=write, rebuild=rebuild)
    rt = Runtime(settings, topics, metrics, app, table, pipeline, bootstrap=bootstrap,
                 pending_changelog=pending_changelog)
    _wire(rt)
    # whatever else crashes the app (a rebalance callback, the consumer thread) is fatal too
    app.on_service_crash = lambda reason: _crashed(rt, reason)
    return rt


def advertised_url(settings: Settings) -> str:
    """Where other workers forward ``/users/{id}`` requests for this worker's partitions."""
    if settings.web_advertised_url:
        return settings.web_advertised_url
    host = settings.web_host
    if host in ("", "0.0.0.0", "::"):  # listening everywhere: name this machine
        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def _wire(rt: Runtime) -> None:
    app, topics, settings = rt.app, rt.topics, rt.settings
    inputs = app.topic(topics.events, topics.repartition, key_type=bytes, value_type=bytes,
                       partitions=settings.partitions)
    out_topics = {name: app.topic(name, partitions=settings.partitions)
                  for name in topics.outputs()}

    # The consumer hands the input topics' records to the inbox in batches, not to a
    # faust agent (agents.kafka.inbox); the topics are registered so that it subscribes.
    app.topics.add(cast(faust.TopicT, inputs.clone(is_iterator=True)))
    inbox = Inbox(app, frozenset(inputs.topics), BATCH_MAX)
    cast(Any, app).inbox = inbox  # read by fastpath's consumer

    @app.task
    async def state_loop() -> None:
        """The only table writer: each batch's state and outputs are acknowledged by the
        broker before its input offsets are."""
        while True:
            messages = await inbox.take()
            rt.progress.started()
            started = time.perf_counter()
            try:
                records = await _without_holes(rt, to_records(messages))
                sends = rt.pipeline.handle(records)
                rt.pipeline.commit_state()
                await _publish(rt, sends)
            except Exception as exc:  # noqa: BLE001 - any failure of a batch is fatal
                # the batch's offsets are left unacknowledged: a restarted process takes
                # it up again from the table's checkpoint
                await fatal(rt, f"the state loop failed: {exception_summary(exc)}")
                await asyncio.Event().wait()
            inbox.done(messages)
            rt.progress.finished()
            rt.metrics.processing_latency.observe(time.perf_counter() - started)

    async def ticker() -> None:
        """Stamp wall-clock ticks into the input partitions this worker owns."""
        if not rt.ready:
            return
        now = time.time()
        mine = owned(app, topics.events)
        # what the table held before these ticks: the agent may apply a tick before
        # this task reads its acknowledgement
        floors = {(topics.events, tp.partition): rt.pipeline.held(topics.events,
                                                                   tp.partition)
                  for tp in mine}
        ticks = [Send(topics.events, None, tick_value(now), [(KIND_HEADER, TICK)],
                      tp.partition) for tp in mine]
        if ticks:
            acks = await send_acknowledged(app.producer, ticks, rt.deadline())
            await _check_acks(rt, acks, floors)

    async def gauges() -> None:
        rt.pipeline.refresh_gauges()
        mine = owned(app, topics.events)
        rt.metrics.assigned_partitions.set(len(mine))
        for tp in mine:
            high = app.consumer.highwater(tp) if app.consumer else None
            if high is not None and high >= 0:
                rt.pipeline.set_lag(tp.partition, high)

    async def watchdog() -> None:
        await check_broker(rt)
        await check_progress(rt)

    # Every timer's failure goes through fatal(): a tick unacknowledged past the outage
    # allowance (PublishTimeout) must end the worker like any other broker fault.
    if settings.tick_interval_seconds > 0:
        app.timer(interval=settings.tick_interval_seconds, on_leader=False)(
            guarded(rt, "the ticker", ticker))
    app.timer(interval=2.0, on_leader=False)(guarded(rt, "the gauges", gauges))
    app.timer(interval=3.0, on_leader=False)(guarded(rt, "the watchdog", watchdog))

    @app.task
    async def mark_ready() -> None:
        rt.ready = True
        rt.metrics.healthy.set(1)

    app.on_partitions_revoked.connect(_make_revoke_handler(rt))
    app.on_partitions_assigned.connect(_make_assign_handler(rt))

    @rt.table.on_recover
    async def restored() -> None:
        """The table holds this worker's partitions again: rebuild their processors now,
        not at their first record, so /users answers and readiness means it. A partition
        that a bootstrap left half-loaded is fatal; streams resume only after this."""
        mine = owned(app, topics.events)
        problem = unfinished(rt.table, [tp.partition for tp in mine], settings.partitions)
        if problem:
            await fatal(rt, problem)
            await asyncio.Event().wait()
        for tp in mine:
            rt.pipeline.processor(tp.partition)
        rt.serving = True
    _ = out_topics  # declared so faust creates them at start-up
    install_views(rt)


def _crashed(rt: Runtime, reason: BaseException) -> None:
    """A crash faust reports (see ``fastpath.lean_app_class``) is fatal, unless a fault
    was reported already or the worker is stopping on a signal."""
    if not rt.fatal and not rt.app.should_stop:
        fatal_soon(rt, f"faust crashed: {exception_summary(reason)}", rt.app.loop)


def _make_revoke_handler(rt: Runtime) -> Any:
    async def on_revoked(app: faust.App, revoked: Iterable[Any], **_: Any) -> None:
        rt.serving = False  # a rebalance: not ready until the table is recovered again
        rt.table.data.group_joining()  # the store reads kept rows while the join is held
        rt.pipeline.revoke(tp.partition for tp in revoked if tp.topic == rt.topics.events)
        rt.metrics.assigned_partitions.set(len(owned(app, rt.topics.events)))

    return on_revoked


def _make_assign_handler(rt: Runtime) -> Any:
    async def on_assigned(app: faust.App, assigned: Iterable[Any], **_: Any) -> None:
        # the gauge follows the assignment at once, not at the next refresh
        rt.metrics.assigned_partitions.set(
            sum(1 for tp in assigned if tp.topic == rt.topics.events))
        rt.progress.idle()  # a new assignment starts the stall clock afresh

    return on_assigned


async def _without_holes(rt: Runtime, records: list[Record]) -> list[Record]:
    """The batch, preceded by any input the table is missing (see ``agents.kafka.heal``)."""
    pipeline, topics = rt.pipeline, rt.topics
    fresh = pipeline.restore_for(records)
    committed: dict[tuple[str, int], int] = {}
    if fresh:
        tps = [(t, p) for p in fresh for t in (topics.events, topics.repartition)]
        committed = await retrying(
            rt.settings, "reading the group's committed offsets",
            lambda: committed_offsets(rt.settings, rt.bootstrap, rt.settings.app_id, tps))
    gaps = pipeline.gaps(records, committed)
    if not gaps:
        return records
    records, healed = await retrying(rt.settings, "re-reading input the table may lack",
                                     lambda: fill(rt.settings, rt.bootstrap, gaps, records))
    rt.metrics.healed_records.inc(healed)
    return records


async def _publish(rt: Runtime, sends: list[Send]) -> None:
    """Each touched partition's snapshots and checkpoint, then the outputs, then the user
    records that remember them, each group acknowledged before the next is sent, all
    before the batch's offsets are acknowledged. A checkpoint claims only what the table
    held before this batch, and records the order the batch took its two input topics in:
    whatever prefix of these writes a crash, or a short recovery on the embedded broker
    (which reports a partition's end as the start of its newest batch + 1), lets through,
    the next owner goes over the batch again, in that order, and sends the same outputs.
    So a crash can re-send an alert (same id, same contents, subscribers dedupe) but never
    leave state claiming an alert nobody received. Whatever is not acknowledged within
    ``broker_outage_seconds`` is fatal."""
    producer = rt.app.producer
    deadline = rt.deadline()
    latency = rt.metrics.alert_latency

    def acked(s: Any) -> None:
        if s.source_time is not None:
            latency.observe(max(0.0, time.time() - s.source_time))

    changelog = rt.table.changelog_topic.get_topic_name()
    # No partition changes hands mid-batch: a rebalance waits for this batch to be
    # acknowledged (stream_wait_empty), so the next owner recovers these writes too.
    pending = list(rt.pending_changelog)
    rt.pending_changelog.clear()
    before, users = changelog_groups(pending)
    acks: list[Any] = []
    for group in before:
        acks += await _write(rt, changelog, group, deadline)
    await _check_acks(rt, await send_acknowledged(producer, sends, deadline, acked))
    if users:
        acks += await _write(rt, changelog, users, deadline)
    # the store records how far the changelog holds this batch (RocksDB writes it now)
    rt.table.data.acked(changelog_offsets(acks, changelog))


async def _write(rt: Runtime, changelog: str, group: list[Staged], deadline: float) -> list[Any]:
    writes = [Send(changelog, kb, vb, [], p) for _, p, kb, vb in group]
    got = await send_acknowledged(rt.app.producer, writes, deadline)
    await _check_acks(rt, got)
    return got


def _went_back(rt: Runtime, acks: Iterable[Any],
               floors: dict[tuple[str, int], int] | None = None) -> str | None:
    """A topic-partition whose acknowledged offset fell below one acknowledged before (or
    below ``floors``: for a tick, what the table held of its partition before it was sent):
    it was deleted and re-created under us. Acks carry exact offsets, unlike the embedded
    broker's ends."""
    for md in acks:
        key = (md.topic, md.partition)
        floor = max(rt.acked.get(key, -1), (floors or {}).get(key, -1))
        if md.offset <= floor:
            return (f"{md.topic}[{md.partition}] acknowledged offset {md.offset} after "
                    f"{floor}: the topic was deleted and re-created")
        rt.acked[key] = md.offset
    return None


async def _check_acks(rt: Runtime, acks: Iterable[Any],
                      floors: dict[tuple[str, int], int] | None = None) -> None:
    problem = _went_back(rt, acks, floors)
    if problem:
        await fatal(rt, problem)
        await asyncio.Event().wait()  # never acknowledge this batch; the exit is coming
