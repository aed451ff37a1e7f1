"""Overload runs: a burst far above what a worker handles, with one pathological user.

Used by ``tests/kafka/test_overload.py`` (a short burst in ``make test``, structural
checks) and ``bench/overload.py`` (a big burst with a 1,000,000-event user, figures
printed). A running worker gets, as fast as aiokafka batches can write them, many users'
events plus one *poison* user's long history interleaved on one partition. Meanwhile, once
a second: consumer lag, the worker's resident memory, events applied per second and
/health; and a *canary* user is produced on every partition, to time how long a fresh
event waits behind the backlog of its own partition (poison's partition vs the others).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from agents.broker import free_port
from agents.process import parent_death_signal
from agents.testing import workers
from agents.testing.kafka_io import Out, all_topics, produce, rfc3339
from agents.testing.overload_report import OverloadReport, Reading
from agents.testing.workers import PARTITIONS, Worker, worker_env
from streams.core.partitioning import partition_for
from streams.settings import Settings

# the kinds a burst cycles through (purchases twice per cycle)
KINDS = ("page_view", "product_view", "purchase", "search", "add_to_cart", "session_start",
         "share", "referral", "review", "refund", "page_view", "purchase")
PROGRESS = ("journey_events_applied_total", "journey_events_duplicate_total",
            "journey_dead_letters_total")


# --- the worker --------------------------------------------------------------------------------

def start_worker(settings: Settings, workdir: Path, **overrides: Any) -> Worker:
    """``journey worker`` with the harness's environment, run in ``workdir`` (faust writes
    its data directory into the working directory; the package is installed, so any
    directory will do)."""
    port = free_port()
    log_path = workdir / f"worker-{port}.log"
    with open(log_path, "wb") as log:
        # read at call time: a run may point the harness at another build
        proc = subprocess.Popen(list(workers.WORKER_COMMAND), cwd=workdir,
                                env=worker_env(settings, port, **{
                                    "data_dir": workdir / "data", **overrides}),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=parent_death_signal())  # noqa: PLW1509
    return Worker(proc, port, log_path)


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory of a process from /proc (``VmHWM``: its peak so far)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def progress(worker: Worker, samples: dict[Any, float] | None = None) -> float:
    """Input records the worker is done with: applied, skipped as duplicates, dead-lettered."""
    m = worker.metrics() if samples is None else samples
    return sum(worker.metric(n, m) for n in PROGRESS)


# --- what is produced --------------------------------------------------------------------------

def user_on(partition: int, prefix: str, start: int = 0) -> str:
    """The first user id ``prefix-N`` (N >= start) that lands on ``partition``."""
    i = start
    while partition_for(f"{prefix}-{i}", PARTITIONS) != partition:
        i += 1
    return f"{prefix}-{i}"


@dataclass
class Burst:
    """Events of ``users`` ordinary users and ``poison_events`` of one poison user, in
    one interleaved stream; ``purchases`` counts each user's distinct orders."""

    tag: str
    users: int
    events: int
    poison_events: int
    poison_partition: int = 0
    start: float = field(default_factory=lambda: time.time() - 900.0)
    purchases: Counter[str] = field(default_factory=Counter)

    @property
    def poison(self) -> str:
        return user_on(self.poison_partition, f"poison-{self.tag}")

    def user(self, i: int) -> str:
        return f"u-{self.tag}-{i % self.users}"

    @property
    def total(self) -> int:
        return self.events + self.poison_events

    def records(self) -> Iterator[Out]:
        """All records, the poison user's spread evenly among the others'. Event times
        run over the 15 minutes before the burst (within the allowed lateness behind the
        worker's wall-clock ticks, and never in the future)."""
        total, poison = self.total, self.poison
        step = 900.0 / max(1, total)
        stamps: dict[int, str] = {}
        every = total / self.poison_events if self.poison_events else 0.0
        next_poison = every / 2
        n_user = n_poison = 0
        for i in range(total):
            if self.poison_events and n_poison < self.poison_events and (
                    i >= next_poison or n_user >= self.events):
                uid, k = poison, n_poison
                n_poison += 1
                next_poison += every
            else:
                uid, k = self.user(n_user * 7919), n_user
                n_user += 1
            t = self.start + i * step
            ms = int(t * 1000)
            stamp = stamps.get(ms)
            if stamp is None:
                stamps.clear()
                stamp = stamps[ms] = rfc3339(ms / 1000)
            yield self._record(uid, k, i, stamp, ms)

    def _record(self, uid: str, k: int, i: int, stamp: str, ms: int) -> Out:
        kind = KINDS[(k + len(uid)) % len(KINDS)]
        props: dict[str, Any] = {}
        if kind == "purchase":
            props = {"amount": 5 + k % 50, "currency": "EUR", "order_id": f"o-{uid}-{k}"}
            self.purchases[uid] += 1
        elif kind == "refund":
            props = {"amount": 1, "currency": "EUR", "order_id": f"o-{uid}-{k - 1}"}
        elif kind == "referral":
            props = {"referred_user_id": f"friend-{self.tag}-{i}"}
        elif kind == "review":
            props = {"rating": 1 + k % 5}
        body = {"event_id": f"{self.tag}-{i}", "user_id": uid, "type": kind,
                "occurred_at": stamp, "source": "overload", "properties": props}
        key = uid.encode()
        return Out(orjson.dumps(body), key, ms, [], partition_for(uid, PARTITIONS))


# --- canaries ----------------------------------------------------------------------------------

@dataclass
class Canary:
    user: str
    partition: int
    produced: float  # monotonic, when the broker acknowledged it
    shown: float | None = None

    @property
    def delay(self) -> float | None:
        return None if self.shown is None else self.shown - self.produced


class Canaries:
    """One fresh user per partition every ``interval`` seconds, produced from a thread of
    its own; :meth:`check` polls the oldest unseen one of each partition (a partition is
    applied in order, so the later ones cannot have been applied before it)."""

    def __init__(self, bootstrap: str, topic: str, tag: str, interval: float = 1.0) -> None:
        self.bootstrap, self.topic, self.tag, self.interval = bootstrap, topic, tag, interval
        self.sent: list[Canary] = []
        self._next = {p: 0 for p in range(PARTITIONS)}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Canaries:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0,
                                    request_timeout_ms=60000)
        await producer.start()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                for p in range(PARTITIONS):
                    user = user_on(p, f"canary-{self.tag}", self._next[p])
                    self._next[p] = int(user.rsplit("-", 1)[1]) + 1
                    now = time.time()
                    body = {"event_id": f"{user}-e", "user_id": user, "type": "page_view",
                            "occurred_at": rfc3339(now), "source": "canary", "properties": {}}
                    await producer.send_and_wait(self.topic, orjson.dumps(body),
                                                 key=user.encode(), partition=p,
                                                 timestamp_ms=int(now * 1000))
                    with self._lock:
                        self.sent.append(Canary(user, p, time.monotonic()))
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            await producer.stop()

    def pending(self) -> list[Canary]:
        with self._lock:
            return [c for c in self.sent if c.shown is None]

    def check(self, worker: Worker) -> None:
        for p in range(PARTITIONS):
            for c in [c for c in self.pending() if c.partition == p]:
                status, _ = worker.get(f"/users/{c.user}")
                if status != 200:  # 404 not yet; no answer: a busy worker, ask again
                    break
                c.shown = time.monotonic()

    def caught_up(self, after: float) -> bool:
        """Every partition has a canary produced at or after ``after`` that is applied:
        everything produced into it before then is applied too."""
        with self._lock:
            return all(any(c.partition == p and c.produced >= after and c.shown is not None
                           for c in self.sent) for p in range(PARTITIONS))

    def delays(self, partitions: set[int]) -> list[float]:
        with self._lock:
            return [d for c in self.sent if c.partition in partitions
                    and (d := c.delay) is not None]

    def timeline(self, since: float) -> list[tuple[float, int, float]]:
        """(produced, seconds after ``since``; partition; delay) of every canary seen."""
        with self._lock:
            return [(c.produced - since, c.partition, d) for c in self.sent
                    if (d := c.delay) is not None]


# --- the run -----------------------------------------------------------------------------------

def run_burst(settings: Settings, worker: Worker, burst: Burst, *, drain_timeout: float,
              interval: float = 1.0, log: Any = None) -> OverloadReport:
    """Produce ``burst`` into the running ``worker`` and watch it until the backlog is
    drained (or ``drain_timeout`` s pass): see the module docstring."""
    topic = all_topics(settings).events
    report = OverloadReport(burst.events, burst.poison_events, burst.users)
    report.rss_before_mib = rss_mib(worker.proc.pid)
    base = progress(worker)
    produced: dict[str, float] = {}

    def produce_all() -> None:
        started = time.monotonic()
        produce(settings.broker, topic, burst.records())
        produced["done_at"] = time.monotonic()
        produced["seconds"] = produced["done_at"] - started

    producer = threading.Thread(target=produce_all, daemon=True)
    canaries = Canaries(settings.broker, topic, burst.tag)
    began = time.monotonic()
    producer.start()
    canaries.start()
    last_done, last_at = base, began
    try:
        while True:
            tick = time.monotonic()
            m = worker.metrics()
            done = progress(worker, m) - base if m else last_done - base
            lag = worker.metric("journey_consumer_lag", m) if m else float("nan")
            now = time.monotonic()
            rate = (done + base - last_done) / (now - last_at) if m else 0.0
            if m:
                last_done, last_at = done + base, now
            status, _ = worker.health()
            reading = Reading(now - began, lag, rss_mib(worker.proc.pid), done, rate, status,
                              producer.is_alive())
            report.readings.append(reading)
            if log is not None:
                log(f"t={reading.at:6.1f}s lag={lag:>9,.0f} rss={reading.rss_mib:6.0f}MiB "
                    f"done={done:>10,.0f} rate={rate:>8,.0f}/s health={status} "
                    f"{'producing' if reading.producing else ''}")
            if worker.returncode is not None:
                report.exited = worker.returncode
                break
            # drained: the whole burst is behind a canary that was applied, on every
            # partition, and the lag the worker reports is back to zero
            if "done_at" in produced and lag == 0 and canaries.caught_up(produced["done_at"]):
                report.drain_seconds = now - began
                break
            if now - began > drain_timeout:
                break
            while time.monotonic() - tick < interval:  # canaries polled 4x per reading
                canaries.check(worker)
                time.sleep(max(0.0, min(interval / 4, interval - (time.monotonic() - tick))))
    finally:
        canaries.stop()
        producer.join(60)
    report.produce_seconds = produced.get("seconds", float("nan"))
    # the last canaries were produced just before the drain: give them a moment
    deadline = time.monotonic() + 15
    while canaries.pending() and time.monotonic() < deadline and worker.returncode is None:
        canaries.check(worker)
        time.sleep(0.2)
    others = set(range(PARTITIONS)) - {burst.poison_partition}
    report.canary_others = canaries.delays(others)
    report.canary_poison = canaries.delays({burst.poison_partition})
    report.canaries_unseen = len(canaries.pending())
    report.canary_timeline = canaries.timeline(began)
    report.poison_partition = burst.poison_partition
    report.rss_after_mib = rss_mib(worker.proc.pid)
    report.rss_hwm_mib = rss_mib(worker.proc.pid, "VmHWM")
    report.exited = worker.returncode
    return report


def orders_by_user(worker: Worker, users: list[str], threads: int = 4) -> dict[str, int | None]:
    """Each user's ``orders`` as /users shows it (None: unknown user). Asked once the
    worker is idle, so a request that gets no answer is a failure."""
    def one(uid: str) -> int | None:
        state = worker.user(uid)
        return None if state is None else int(state["orders"])

    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(users, pool.map(one, users), strict=True))


# --- the table's record of one user -------------------------------------------------------------

async def _last_value(bootstrap: str, topic: str, partition: int, key: bytes,
                      tail: int, timeout: float) -> bytes | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, max(0, end - tail))
        found: bytes | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # up to the end seen at the start, then one more fetch: the embedded broker may
        # report the end a record batch short. (Not "until idle": ticks keep adding
        # partition-context records to the changelog every second.)
        passes_after_end = 0
        while passes_after_end < 2 and loop.time() < deadline:
            got = await consumer.getmany(tp, timeout_ms=300, max_records=20000)
            for rec in got.get(tp, []):
                if rec.key == key:
                    found = rec.value
            if await consumer.position(tp) >= end:
                passes_after_end += 1
        return found
    finally:
        await consumer.stop()


def state_record(settings: Settings, user_id: str, tail: int = 50_000,
                 timeout: float = 60.0) -> bytes | None:
    """The newest changelog record of ``user_id``'s state: the bytes the table stores
    and a restore reads back. Read from the tail of its changelog partition only."""
    topic = f"{settings.app_id}-users-changelog"
    return asyncio.run(_last_value(settings.broker, topic,
                                   partition_for(user_id, settings.partitions),
                                   user_id.encode(), tail, timeout))


def tag() -> str:
    return f"{random.getrandbits(32):08x}"
