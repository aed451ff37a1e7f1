"""The live worker against faust and aiokafka baselines on one embedded broker.

    .venv/bin/python bench/worker_throughput.py [--events 100000] [--rate 2000]

1. Fills an input topic (4 partitions) with canonical journey events keyed by user.
2. Consumes it three ways, each in its own process and consumer group, timing from
   the first to the last event so group joins are left out:
   (a) raw aiokafka ``getmany`` + ``orjson.loads``;
   (b) a faust agent that only decodes and counts (``bench/faust_paths.py`` variant b);
   (w) ``journey worker``: decode, validate, lifecycle core, one state write per user
       per batch, outputs flushed before the offsets are acknowledged.
3. Prints events/s and the ratios w/b and w/a measured in the same run.
4. Feeds the running worker a steady ``--rate`` events/s of first-time users and
   measures produce-to-output latency on the lifecycle-transitions topic (every new
   user's first event emits one), p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import faust_paths

from agents.broker import EmbeddedBroker, free_port, wait_for_broker
from streams.core.partitioning import partition_for
from streams.core.timefmt import rfc3339

PARTITIONS = 4
TYPES = ("session_start", "page_view", "product_view", "search", "add_to_cart", "page_view")


def event(i: int, users: int, t: float, prefix: str = "u") -> tuple[bytes, bytes]:
    user = f"{prefix}{(i // 4 * 7919) % users:06d}"
    kind = TYPES[i % len(TYPES)]
    body = {"event_id": f"{prefix}e{i:010d}", "user_id": user, "type": kind,
            "occurred_at": rfc3339(t), "source": "bench",
            "properties": {"page": f"/p/{i % 977}"}}
    return user.encode(), orjson.dumps(body)


async def fill(bootstrap: str, topic: str, n: int, users: int) -> None:
    start = time.time() - 3600.0  # history of the last hour: never too late for the ticks
    records = (event(i, users, start + i * 3600.0 / n) for i in range(n))
    await faust_paths.produce_keyed(bootstrap, topic, records,
                                    lambda key: partition_for(key.decode(), PARTITIONS))


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(journey_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def run_worker(bootstrap: str, prefix: str, n: int, log: Path) -> tuple[subprocess.Popen[bytes],
                                                                         int, float]:
    port = free_port()
    env = dict(os.environ, JOURNEY_BROKER=bootstrap, JOURNEY_TOPIC_PREFIX=prefix,
               JOURNEY_APP_ID=f"bench-w-{uuid.uuid4().hex[:6]}", JOURNEY_WEB_PORT=str(port),
               JOURNEY_PARTITIONS=str(PARTITIONS), JOURNEY_LOG_LEVEL="WARNING",
               JOURNEY_DATA_DIR=str(log.parent / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "worker"], env=env,
                            stdout=open(log, "wb"),  # noqa: SIM115 - the child's, until exit
                            stderr=subprocess.STDOUT,
                            start_new_session=True)
    first = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        time.sleep(0.25)
        try:
            m = scrape(port)
        except OSError:
            continue
        done = (m.get("journey_events_applied_total", 0) + m.get("journey_dead_letters_total", 0)
                + m.get("journey_events_duplicate_total", 0))
        if done > 0 and first is None:
            first = time.perf_counter()
        if done >= n and first is not None:
            return proc, port, n / (time.perf_counter() - first)
    proc.kill()
    raise RuntimeError(f"worker did not finish; see {log}")


async def latency(bootstrap: str, prefix: str, rate: int,
                  seconds: float) -> tuple[list[float], int]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(f"{prefix}lifecycle-transitions", bootstrap_servers=bootstrap,
                                group_id=None, auto_offset_reset="latest",
                                fetch_max_wait_ms=20)  # the measuring side adds no wait
    await consumer.start()
    await asyncio.sleep(2.0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await producer.start()
    sent: dict[str, float] = {}
    lat: list[float] = []
    seen: set[str] = set()

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.time()
                for r in records:
                    uid = orjson.loads(r.value)["user_id"]
                    if uid in sent and uid not in seen:  # the user's first transition
                        seen.add(uid)
                        lat.append(now - sent[uid])

    reader = asyncio.create_task(read())
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        due = int((time.monotonic() - t0) * rate)
        while i < due:
            key, value = event(i, 10**9, time.time(), prefix="fresh")
            # a user's first event makes the transition: time it from that send
            sent.setdefault(key.decode(), time.time())
            await producer.send(f"{prefix}events", value, key=key)
            i += 1
        await asyncio.sleep(0.005)
    await producer.flush()
    await asyncio.sleep(5.0)
    reader.cancel()
    await producer.stop()
    await consumer.stop()
    return lat, len(sent)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="journey-bench-"))
    with EmbeddedBroker(log_path=tmp / "tansu.log") as broker:
        wait_for_broker(broker.bootstrap, 15.0)
        prefix = f"wb-{uuid.uuid4().hex[:6]}."
        asyncio.run(fill(broker.bootstrap, f"{prefix}events", args.events, args.users))
        child_args = SimpleNamespace(events=args.events, timeout=900.0)
        results = {}
        for name in ("a", "b"):
            results[name] = faust_paths.run_child(faust_paths.BY_NAME[name], child_args,
                                                  broker.bootstrap, f"{prefix}events")["rate"]
        proc, _port, w_rate = run_worker(broker.bootstrap, prefix, args.events, tmp / "w.log")
        try:
            lat, sent = asyncio.run(latency(broker.bootstrap, prefix, args.rate,
                                            args.seconds))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    print(f"{args.events:,} events, {PARTITIONS} partitions, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"(a) raw aiokafka + orjson     {results['a']:>10,.0f} events/s")
    print(f"(b) faust no-op agent         {results['b']:>10,.0f} events/s")
    print(f"(w) journey worker            {w_rate:>10,.0f} events/s")
    print(f"ratio w/b {w_rate / results['b']:.2f}   w/a {w_rate / results['a']:.3f}")
    if lat:
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        # an output not seen within 5 s of the last send counts as slower than any seen
        print(f"latency at {args.rate}/s for {args.seconds:.0f}s: new users {sent:,}, "
              f"transitions seen {len(lat):,}; p50={statistics.median(lat) * 1000:.0f} ms "
              f"p99={p99 * 1000:.0f} ms" + ("" if len(lat) >= 0.99 * sent else
                                            " (p99 of those seen only: not all arrived)"))
    else:
        print("latency: no outputs observed")
    shutil.rmtree(tmp, ignore_errors=True)  # (kept when a step failed: its logs are there)


if __name__ == "__main__":
    main()
