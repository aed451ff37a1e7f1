"""How fast can a faust-streaming worker consume on the embedded broker, and what makes it fast.

Not a test. One embedded broker, one input topic (4 partitions) filled with 200-byte JSON
events keyed by user, produced with aiokafka batches. Each variant runs in its own Python
process with its own consumer group, reads the whole topic from the start, and reports
events/s between its first and last event (group join and start-up are left out). The
table prints the ratio of each variant to `b`, the no-op faust agent measured in the
same run. Table variants also have their changelog read back and checked: every key's
changelog records must sit on the key's source partition, and the last value per key
must add up to the number of events.

    .venv/bin/python bench/faust_paths.py                      # all variants
    .venv/bin/python bench/faust_paths.py --variants a,b,g --events 300000
    .venv/bin/python bench/faust_paths.py --profile b          # cProfile one variant
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.broker import EmbeddedBroker, wait_for_broker
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


# ---------------------------------------------------------------- data

def murmur2_partition(key: bytes, partitions: int) -> int:
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def user_of(i: int, users: int, session: int) -> str:
    # Users act in bursts (sessions) of `session` consecutive events, as shoppers do.
    return f"u{((i // session) * 7919) % users:06d}"


def make_event(i: int, users: int, session: int) -> tuple[bytes, bytes]:
    user = user_of(i, users, session)
    body = {"event_id": f"e{i:010d}", "user_id": user, "type": "page_view",
            "ts": 1_700_000_000.0 + i * 0.01, "store": "s01",
            "props": {"page": f"/p/{i % 977}", "ref": "campaign-x", "pad": ""}}
    raw = orjson.dumps(body)
    body["props"]["pad"] = "x" * max(0, 200 - len(raw))  # type: ignore[index]
    return user.encode(), orjson.dumps(body)


async def produce(bootstrap: str, topic: str, n: int, users: int, session: int) -> float:
    """Fill the topic with aiokafka batches; keys go to murmur2(key) % partitions."""
    records = (make_event(i, users, session) for i in range(n))
    return await produce_keyed(bootstrap, topic, records,
                               lambda key: murmur2_partition(key, PARTITIONS))


async def produce_keyed(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]],
                        partition_of: Callable[[bytes], int]) -> float:
    """Create the topic and fill it with (key, value) records, one aiokafka batch per
    partition at a time; returns records/s."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    t0 = time.perf_counter()
    batches = {p: producer.create_batch() for p in range(PARTITIONS)}
    pending = []
    n = 0
    for key, value in records:
        n += 1
        p = partition_of(key)
        if batches[p].append(key=key, value=value, timestamp=None) is None:
            pending.append(await producer.send_batch(batches[p], topic, partition=p))
            batches[p] = producer.create_batch()
            batches[p].append(key=key, value=value, timestamp=None)
    for p, b in batches.items():
        if b.record_count():
            pending.append(await producer.send_batch(b, topic, partition=p))
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - t0
    await producer.stop()
    return n / elapsed


# ---------------------------------------------------------------- children

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
        Path(args.out).write_text(json.dumps(result))
        os._exit(0)  # the bench is over; no graceful rebalance needed

    async def agent_count(stream: Any) -> None:
        async for value in stream:
            meter.start()
            loads(value)
            meter.count += 1
            if meter.count >= args.events:
                await finish()

    async def agent_take(stream: Any) -> None:
        async for batch in stream.take(v.take, within=v.within):
            meter.start()
            for value in batch:
                loads(value)
            meter.count += len(batch)
            if meter.count >= args.events:
                await finish()

    async def agent_table_each(stream: Any) -> None:
        assert counts is not None
        async for value in stream:
            meter.start()
            counts[loads(value)["user_id"].encode()] += 1
            meter.count += 1
            if meter.count >= args.events:
                await finish()

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
            meter.count += len(batch)
            if meter.count >= args.events:
                await finish()

    async def agent_events_table(stream: Any) -> None:
        # take_events() keeps each event's partition: write each key once per batch on that
        # partition, and wait for the changelog writes before take() acks the batch.
        assert counts is not None
        data = counts.data
        async for events in stream.take_events(v.take, within=v.within):
            meter.start()
            per_key: dict[bytes, list[int]] = {}
            for event in events:
                user = loads(event.value)["user_id"].encode()
                slot = per_key.get(user)
                if slot is None:
                    per_key[user] = [event.message.partition, 1]
                else:
                    slot[1] += 1
            sent = []
            for user, (partition, n) in per_key.items():
                value = data.get(user, 0) + n
                data[user] = value
                sent.append(counts.send_changelog(partition, user, value))
            await meter.wait_acks(sent)
            meter.count += len(events)
            if meter.count >= args.events:
                await finish()

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

    async def agent_events_send(stream: Any) -> None:
        # Same pattern, but each changelog record goes straight to faust's Producer.send()
        # (one aiokafka send per key) instead of the send_soon buffer and its channel path.
        assert counts is not None
        data, topic = counts.data, counts.changelog_topic.get_topic_name()
        async for events in stream.take_events(v.take, within=v.within):
            meter.start()
            sent = []
            for user, (partition, n) in aggregate(events).items():
                value = data.get(user, 0) + n
                data[user] = value
                sent.append(await app.producer.send(topic, user, orjson.dumps(value),
                                                    partition, None, None))
            await meter.wait_acks(sent)
            meter.count += len(events)
            if meter.count >= args.events:
                await finish()

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
            meter.count += len(events)
            if meter.count >= args.events:
                await finish()

    def changelog_batches(producer: Any, topic: str, per_key: dict[bytes, list[int]],
                          data: Any) -> list[tuple[int, Any]]:
        """Apply a batch's per-key counts and pack the changelog records per partition.

        The last record of each partition goes out in a batch of its own: Tansu answers
        ListOffsets LATEST with the newest batch's start + 1, and faust's recovery stops
        there, so a multi-record final batch would lose its tail on recovery.
        """
        per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for user, (partition, n) in per_key.items():
            value = data.get(user, 0) + n
            data[user] = value
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
            Path(args.out).write_text(json.dumps({"error": repr(exc)}))
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


# ---------------------------------------------------------------- parent

async def read_topic(bootstrap: str, topic: str, idle: float = 2.0) -> list[Any]:
    """All records of a topic, read until it has been idle a while (Tansu's end offsets lie)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)
                last = time.monotonic()
        return out
    finally:
        await consumer.stop()


def check_changelog(bootstrap: str, topic: str, n: int, users: int, session: int) -> str:
    records = asyncio.run(read_topic(bootstrap, topic))
    misplaced = 0
    final: dict[str, int] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        if murmur2_partition(r.key, PARTITIONS) != r.partition:
            misplaced += 1
        final[r.key.decode()] = orjson.loads(r.value)
    ok = final == dict(Counter(user_of(i, users, session) for i in range(n)))
    return (f"{len(records)} records, {misplaced} on a foreign partition, "
            f"final counts {'match' if ok else 'DO NOT match'}")


def run_child(v: Variant, args: argparse.Namespace, bootstrap: str, topic: str,
              profile_out: str | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    cmd = [sys.executable, __file__, "--child", v.name, "--bootstrap", bootstrap,
           "--topic", topic, "--events", str(args.events), "--out", out,
           "--app-id", f"bench-{v.name}-{uuid.uuid4().hex[:6]}"]
    if profile_out:
        cmd += ["--profile-out", profile_out]
    try:
        proc = subprocess.run(cmd, timeout=args.timeout, capture_output=True, text=True,
                              check=False)
        result = json.loads(Path(out).read_text())
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"variant {v.name} did not finish in {args.timeout}s") from None
    except (OSError, ValueError):
        raise RuntimeError(f"variant {v.name} failed (rc={proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}") from None
    finally:
        Path(out).unlink(missing_ok=True)
    if "error" in result:
        raise RuntimeError(f"variant {v.name} crashed: {result['error']}")
    result["rate"] = result["events"] / result["seconds"]
    result["cpu_rate"] = result["events"] / result["cpu"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=5_000, help="distinct keys")
    ap.add_argument("--session", type=int, default=4,
                    help="consecutive events per user burst (1 = no key repeats within "
                         "a take() batch, the worst case for per-key aggregation)")
    ap.add_argument("--variants", default=",".join(v.name for v in VARIANTS))
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds over all variants, interleaved; the median is kept")
    ap.add_argument("--bootstrap", help="use this broker instead of starting Tansu")
    ap.add_argument("--timeout", type=float, default=600.0, help="per variant, seconds")
    ap.add_argument("--profile", help="cProfile this one variant and print the top entries")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--app-id", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args)
        return
    # A SIGTERM must still run the finally below, or the broker outlives us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    broker = None if args.bootstrap else EmbeddedBroker(
        log_path=Path(tempfile.gettempdir()) / "journey-bench-tansu.log").start()
    bootstrap = args.bootstrap or broker.bootstrap  # type: ignore[union-attr]
    try:
        wait_for_broker(bootstrap, 15.0)
        topic = f"bench-in-{uuid.uuid4().hex[:8]}"
        rate = asyncio.run(produce(bootstrap, topic, args.events, args.users, args.session))
        print(f"produced {args.events} events ({args.users} users, bursts of "
              f"{args.session}) into {topic} at "
              f"{rate:,.0f}/s ({PARTITIONS} partitions, aiokafka send_batch); "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        if args.profile:
            import pstats

            prof = Path(tempfile.gettempdir()) / f"faust-{args.profile}.prof"
            res = run_child(BY_NAME[args.profile], args, bootstrap, topic, str(prof))
            print(f"{args.profile}: {res['rate']:,.0f} events/s (profiled)")
            pstats.Stats(str(prof)).sort_stats("tottime").print_stats(40)
            return
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        if "b" not in names:
            names.insert(0, "b")
        runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        notes: dict[str, str] = {}
        for rnd in range(args.rounds):
            for name in names:
                v = BY_NAME[name]
                r = run_child(v, args, bootstrap, topic)
                runs[name].append(r)
                if v.table:
                    notes[name] = check_changelog(bootstrap, r["changelog"], args.events,
                                                  args.users, args.session)
                acks = f", {r['acks'] / r['seconds']:.0%} waiting for acks" if v.table else ""
                print(f"  round {rnd + 1} {name}: {r['rate']:,.0f} events/s, "
                      f"{r['cpu_rate']:,.0f} events/CPU-s{acks} {notes.get(name, '')}",
                      flush=True)
        med = {n: (statistics.median(r["rate"] for r in rs),
                   statistics.median(r["cpu_rate"] for r in rs)) for n, rs in runs.items()}
        base_wall, base_cpu = med["b"]
        print()
        print("events/s is wall clock, first to last event; events/CPU-s divides by the "
              "worker's own CPU time, which is steadier when the machine is shared.")
        print(f"{'':2} {'variant':<78} {'events/s':>9} {'x b':>5} {'ev/CPU-s':>9} {'x b':>5}")
        for name in names:
            v, (wall, cpu) = BY_NAME[name], med[name]
            print(f"{name:2} {v.title[:78]:<78} {wall:>9,.0f} {wall / base_wall:>5.2f} "
                  f"{cpu:>9,.0f} {cpu / base_cpu:>5.2f}")
            if name in notes:
                print(f"{'':5}changelog: {notes[name]}")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
