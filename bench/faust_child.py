"""The child side of ``bench/faust_paths.py``: the variants, and one variant's consumer
run in a process of its own, measured from its first to its last event."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents.kafka.fastpath import lean_app_class, lean_monitor_class

PARTITIONS = 4
GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
FAUST_BASE: dict[str, Any] = {
    "broker_session_timeout": 6.0, "broker_heartbeat_interval": 1.0,
    "value_serializer": "raw", "key_serializer": "raw", "web_enabled": False,
    "topic_partitions": PARTITIONS, "store": "memory://",
}
BUFFERS: dict[str, Any] = {"stream_buffer_maxsize": 65536, "broker_max_poll_records": 5000,
                           "stream_wait_empty": False}
FAST: dict[str, Any] = {"cython_optimizations": True, **BUFFERS}


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    style: str  # which agent body (see run_faust) or "aiokafka"
    conf: dict[str, Any] = field(default_factory=dict)
    take: int = 2000
    within: float = 0.2
    table: bool = False
    lean_monitor: bool = False
    lean_drain: bool = False


LEAN = {"lean_monitor": True, "lean_drain": True}
VARIANTS = [
    Variant("a", "raw aiokafka getmany + orjson.loads", "aiokafka"),
    Variant("b", "faust agent: decode + count (baseline)", "count"),
    Variant("c", "faust take(2000, within=0.2) batches", "take"),
    Variant("d", "faust: one table write per event", "table_each", table=True),
    Variant("e", "faust take() + one table write per key per batch (use_partitioner)",
            "take_table", table=True),
    Variant("f", "b + cython_optimizations=True", "count", {"cython_optimizations": True}),
    Variant("g", "b + stream_buffer_maxsize 64k, max_poll_records 5000, no wait_empty",
            "count", BUFFERS),
    Variant("h", "b + lean Monitor (no per-event stats)", "count", lean_monitor=True),
    Variant("i", "b + f + g + h", "count", FAST, lean_monitor=True),
    Variant("j", "b + lean drain loop only (no 4-task wait_first per message)", "count",
            lean_drain=True),
    Variant("k", "i + lean drain loop: the fast no-op agent", "count", FAST, **LEAN),
    Variant("l", "k with take(2000, within=0.2) batches", "take", FAST, **LEAN),
    Variant("m", "e + f + g + h + lean drain", "take_table", FAST, table=True, **LEAN),
    Variant("n", "k, take_events(), write once per key on the event's partition with "
            "send_changelog, await before ack", "events_table", FAST, table=True, **LEAN),
    Variant("o", "n, changelog via faust Producer.send() (skips the send_soon buffer)",
            "events_send", FAST, table=True, **LEAN),
    Variant("p", "n, changelog via aiokafka create_batch/send_batch per partition",
            "events_batch", FAST, table=True, **LEAN),
    Variant("q", "p with noack_take(): a task acks events once their changelog is acked",
            "events_pipelined", FAST, table=True, **LEAN),
    Variant("r", "q with take(10000, within=0.5)", "events_pipelined", FAST, take=10000,
            within=0.5, table=True, **LEAN),
]
BY_NAME = {v.name: v for v in VARIANTS}


class Meter:
    """Wall and CPU time between the first and the last event of a child."""

    def __init__(self) -> None:
        self.count = 0
        self.wall0 = 0.0
        self.cpu0 = 0.0
        self.acks = 0.0  # seconds spent waiting for changelog acknowledgements

    def start(self) -> None:
        if not self.wall0:
            self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def result(self) -> dict[str, Any]:
        return {"events": self.count, "seconds": time.perf_counter() - self.wall0,
                "cpu": time.process_time() - self.cpu0, "acks": self.acks}

    async def wait_acks(self, futures: list[Any]) -> None:
        t0 = time.perf_counter()
        await asyncio.gather(*futures)
        self.acks += time.perf_counter() - t0


def run_aiokafka(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer

    async def main() -> dict[str, Any]:
        consumer = AIOKafkaConsumer(args.topic, bootstrap_servers=args.bootstrap,
                                    group_id=args.app_id, auto_offset_reset="earliest",
                                    **GROUP_SETTINGS)
        await consumer.start()
        meter, loads = Meter(), orjson.loads
        try:
            while meter.count < args.events:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    meter.start()
                    for r in records:
                        loads(r.value)
                    meter.count += len(records)
            return meter.result()
        finally:
            await consumer.stop()

    return asyncio.run(main())


# The lean consumer loop and Monitor live in agents/kafka/fastpath.py (the worker uses them).


def run_faust(args: argparse.Namespace, v: Variant) -> None:
    import faust

    conf = {**FAUST_BASE, **v.conf}
    if v.lean_monitor:
        conf["Monitor"] = lean_monitor_class()
    app_class = lean_app_class() if v.lean_drain else faust.App
    app = app_class(args.app_id, broker=f"kafka://{args.bootstrap}", **conf)
    source = app.topic(args.topic, key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    # Keys as raw bytes: with use_partitioner the changelog partition is murmur2 of the
    # *serialized* table key, which only matches the source partition if the bytes match.
    counts = app.Table("counts", default=int, partitions=PARTITIONS, key_type=bytes,
                       value_type=int, use_partitioner=v.style == "take_table") \
        if v.table else None
    meter, loads = Meter(), orjson.loads

    async def finish() -> None:
        result = meter.result()
        # faust's flush() gives up after 0.1 s without progress; insist until it is empty.
        while app.producer.buffer.size:
            await app.producer.flush()
        await app.producer.flush()
        result["changelog"] = counts.changelog_topic.get_topic_name() if counts else None
        Path(args.out).write_text(json.dumps(result))  # noqa: ASYNC240 - the run is over
        os._exit(0)  # the bench is over; no graceful rebalance needed

    async def counted(n: int) -> None:
        meter.count += n
        if meter.count >= args.events:
            await finish()

    async def agent_count(stream: Any) -> None:
        async for value in stream:
            meter.start()
            loads(value)
            await counted(1)

    async def agent_take(stream: Any) -> None:
        async for batch in stream.take(v.take, within=v.within):
            meter.start()
            for value in batch:
                loads(value)
            await counted(len(batch))

    async def agent_table_each(stream: Any) -> None:
        assert counts is not None
        async for value in stream:
            meter.start()
            counts[loads(value)["user_id"].encode()] += 1
            await counted(1)

    async def agent_take_table(stream: Any) -> None:
        # Inside take() there is no current_event(), so the table needs use_partitioner.
        assert counts is not None
        async for batch in stream.take(v.take, within=v.within):
            meter.start()
            per_user: Counter[bytes] = Counter()
            for value in batch:
                per_user[loads(value)["user_id"].encode()] += 1
            for user, n in per_user.items():
                counts[user] += n
            await counted(len(batch))

    def aggregate(events: Any) -> dict[bytes, list[int]]:
        per_key: dict[bytes, list[int]] = {}  # key -> [partition, events in this batch]
        for event in events:
            user = loads(event.value)["user_id"].encode()
            slot = per_key.get(user)
            if slot is None:
                per_key[user] = [event.message.partition, 1]
            else:
                slot[1] += 1
        return per_key

    def totals(per_key: dict[bytes, list[int]], data: Any) -> Iterator[tuple[bytes, int, int]]:
        """Add a batch's per-key counts to ``data``: (key, partition, new total) each."""
        for user, (partition, n) in per_key.items():
            value = data.get(user, 0) + n
            data[user] = value
            yield user, partition, value

    async def agent_events_table(stream: Any) -> None:
        # take_events() keeps each event's partition: write each key once per batch on that
        # partition, and wait for the changelog writes before take() acks the batch.
        assert counts is not None
        data = counts.data
        async for events in stream.take_events(v.take, within=v.within):
            meter.start()
            sent = [counts.send_changelog(partition, user, value)
                    for user, partition, value in totals(aggregate(events), data)]
            await meter.wait_acks(sent)
            await counted(len(events))

    async def agent_events_send(stream: Any) -> None:
        # Same pattern, but each changelog record goes straight to faust's Producer.send()
        # (one aiokafka send per key) instead of the send_soon buffer and its channel path.
        assert counts is not None
        data, topic = counts.data, counts.changelog_topic.get_topic_name()
        async for events in stream.take_events(v.take, within=v.within):
            meter.start()
            sent = [await app.producer.send(topic, user, orjson.dumps(value), partition,
                                            None, None)
                    for user, partition, value in totals(aggregate(events), data)]
            await meter.wait_acks(sent)
            await counted(len(events))

    async def agent_events_batch(stream: Any) -> None:
        # Same pattern, with the batch's changelog records packed into one aiokafka
        # BatchBuilder per partition (the fastest produce path measured on Tansu).
        from aiokafka import AIOKafkaProducer

        assert counts is not None
        data, topic = counts.data, counts.changelog_topic.get_topic_name()
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
        await producer.start()
        async for events in stream.take_events(v.take, within=v.within):
            meter.start()
            sent = [await producer.send_batch(batch, topic, partition=partition)
                    for partition, batch in changelog_batches(producer, topic,
                                                               aggregate(events), data)]
            await meter.wait_acks(sent)
            await counted(len(events))

    def changelog_batches(producer: Any, topic: str, per_key: dict[bytes, list[int]],
                          data: Any) -> list[tuple[int, Any]]:
        """Apply a batch's per-key counts and pack the changelog records per partition.

        The last record of each partition goes out in a batch of its own: Tansu answers
        ListOffsets LATEST with the newest batch's start + 1, and faust's recovery stops
        there, so a multi-record final batch would lose its tail on recovery.
        """
        per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for user, partition, value in totals(per_key, data):
            per_partition.setdefault(partition, []).append((user, orjson.dumps(value)))
        out: list[tuple[int, Any]] = []
        for partition, records in per_partition.items():
            for group in (records[:-1], records[-1:]):
                batch = producer.create_batch()
                for key, payload in group:
                    if batch.append(key=key, value=payload, timestamp=None) is None:
                        out.append((partition, batch))
                        batch = producer.create_batch()
                        batch.append(key=key, value=payload, timestamp=None)
                if batch.record_count():
                    out.append((partition, batch))
        return out

    async def agent_events_pipelined(stream: Any) -> None:
        # noack_take() leaves acking to us: a batch's events are acked only after its
        # changelog records are acknowledged by the broker, but the agent does not wait
        # for that before taking the next batch. faust commits the highest offset below
        # the first unacked one, so acks may complete out of order.
        from aiokafka import AIOKafkaProducer

        assert counts is not None
        data, topic = counts.data, counts.changelog_topic.get_topic_name()
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
        await producer.start()
        in_flight: set[asyncio.Task[None]] = set()

        async def ack_when_written(futures: list[Any], events: list[Any]) -> None:
            await asyncio.gather(*futures)
            for event in events:
                await stream.ack(event)

        async for events in stream.noack_take(v.take, within=v.within):
            meter.start()
            sent = [await producer.send_batch(batch, topic, partition=partition)
                    for partition, batch in changelog_batches(producer, topic,
                                                               aggregate(events), data)]
            task = asyncio.ensure_future(ack_when_written(sent, events))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            meter.count += len(events)
            if meter.count >= args.events:
                await meter.wait_acks(list(in_flight))
                await finish()

    agents: dict[str, Callable[[Any], Any]] = {
        "events_pipelined": agent_events_pipelined,
        "events_send": agent_events_send, "events_batch": agent_events_batch,
        "count": agent_count, "take": agent_take, "table_each": agent_table_each,
        "take_table": agent_take_table, "events_table": agent_events_table}
    body = agents[v.style]

    async def guarded(stream: Any) -> None:
        try:
            await body(stream)
        except Exception as exc:  # noqa: BLE001 - a crashed agent would idle forever
            Path(args.out).write_text(json.dumps({"error": repr(exc)}))  # noqa: ASYNC240
            os._exit(1)

    app.agent(source, name="bench")(guarded)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def child_main(args: argparse.Namespace) -> None:
    v = BY_NAME[args.child]
    if v.style == "aiokafka":
        Path(args.out).write_text(json.dumps(run_aiokafka(args)))
        return
    if args.profile_out:
        import cProfile

        prof = cProfile.Profile()
        real_exit = os._exit

        def dump_and_exit(code: int) -> None:  # finish() leaves through os._exit
            prof.disable()
            prof.dump_stats(args.profile_out)
            real_exit(code)

        os._exit = dump_and_exit  # type: ignore[assignment]
        prof.enable()
    run_faust(args, v)
