"""How fast can a faust-streaming worker consume on the embedded broker, and what makes it fast.
(The variants, and the child process that runs one, are in ``bench/faust_child.py``.)

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
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faust_child import BY_NAME, PARTITIONS, VARIANTS, Variant, child_main

from agents.broker import EmbeddedBroker, wait_for_broker

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
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", v.name,
           "--bootstrap", bootstrap, "--topic", topic, "--events", str(args.events), "--out", out,
           "--app-id", f"bench-{v.name}-{uuid.uuid4().hex[:6]}"]
    if profile_out:
        cmd += ["--profile-out", profile_out]
    try:
        # faust keeps its table data under the working directory: not in the checkout
        with tempfile.TemporaryDirectory(prefix="journey-bench-faust-") as workdir:
            proc = subprocess.run(cmd, timeout=args.timeout, capture_output=True, text=True,
                                  check=False, cwd=workdir)
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
