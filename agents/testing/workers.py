"""Helpers for the live-worker tests: run ``journey worker`` as a process, feed it records,
read what it publishes, scrape its HTTP endpoints, and compute replay's answer to compare.

Not a test module (no ``test_`` prefix): the worker tests import it. Every wait here polls
until a condition holds or a generous deadline passes (the CI box is a busy 2-core machine),
and a failed wait says what it waited for and shows the tail of the worker's log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from agents.broker import free_port
from agents.kafka.topics import KIND_HEADER, Topics
from agents.process import parent_death_signal
from schemas import parse_date_time
from streams.core.partitioning import partition_for
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
# Short group timings: the embedded broker makes a join wait half the session timeout.
FAST_GROUP = {"session_timeout_seconds": 6.0, "heartbeat_interval_seconds": 1.0}
# How a worker is started; a module attribute so a run can point it at another build.
WORKER_COMMAND = [sys.executable, "-m", "agents.cli", "worker"]


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def event_time(event: dict[str, Any]) -> float:
    parsed = parse_date_time(event.get("occurred_at") or event.get("timestamp") or "")
    assert parsed is not None, event
    return parsed[0]


# --- the worker process ----------------------------------------------------------------------

@dataclass
class Worker:
    """One ``journey worker`` subprocess with its web port and log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    # --- HTTP ---

    def get(self, path: str, timeout: float = 5.0) -> tuple[int | None, bytes]:
        """(status, body); status None when nothing answered."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (OSError, urllib.error.URLError):
            return None, b""

    def health(self) -> tuple[int | None, dict[str, Any]]:
        status, body = self.get("/health")
        try:
            return status, orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            return status, {}

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample as {(name, sorted label pairs): value}; empty if unreachable."""
        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def metric(self, name: str, samples: dict[Any, float] | None = None,
               **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        samples = self.metrics() if samples is None else samples
        return sum(v for (n, lbl), v in samples.items()
                   if n == name and all(dict(lbl).get(k) == want for k, want in labels.items()))

    def user(self, user_id: str, wait: float = 60.0) -> dict[str, Any] | None:
        """The user's state, None if unknown (404). A worker that is starting does not
        answer yet, and one that is not ready, or cannot reach the user's owner, answers
        503 for a while (a start, a rebalance, a failover): asked again for up to
        ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            status, body = self.get(f"/users/{user_id}")
            if status == 200:
                return dict(orjson.loads(body))
            if status not in (None, 503) or time.monotonic() > deadline \
                    or self.returncode is not None:
                break
            time.sleep(0.2)
        assert status == 404, f"/users/{user_id} answered {status}: {body[:300]!r}"
        return None

    # --- life cycle ---

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, message: str) -> None:
        import pytest

        pytest.fail(f"{message}\n--- worker log ({self.log_path}), last lines ---\n"
                    f"{self.log_tail()}", pytrace=False)

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 interval: float = 0.5) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail (with the log) if
        the deadline passes or the worker exits first."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got:
                return got
            if self.returncode is not None:
                self.fail(f"worker exited with code {self.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(interval)

    def wait_ready(self, timeout: float = 90.0, partitions: int = PARTITIONS) -> dict[str, Any]:
        """Until /health is 200 and ``partitions`` input partitions have a restored
        processor (restored when the table was, so /users answers for every user; no
        record need have been handled yet: see :meth:`wait_ticked`). ``partitions=0``:
        until the worker owns partitions (journey_assigned_partitions > 0)."""

        def ready() -> dict[str, Any] | None:
            status, report = self.health()
            if status != 200:
                return None
            if partitions == 0:
                return report if self.metric("journey_assigned_partitions") > 0 else None
            return report if len(report.get("partitions") or []) >= partitions else None

        what = (f"/health 200 with {partitions} partitions" if partitions
                else "/health 200 and assigned partitions")
        return dict(self.wait_for(ready, timeout, what))

    def wait_ticked(self, since: float, timeout: float = 60.0,
                    partitions: int = PARTITIONS) -> None:
        """Until ``partitions`` partitions' clocks (``/health``) have reached ``since``
        (epoch): the worker's own ticks have been applied there, so events older than
        ``allowed_lateness_seconds`` before ``since`` are now too late."""

        def ticked() -> bool:
            _, report = self.health()
            clocks = report.get("clocks") or {}
            return sum(1 for c in clocks.values() if c is not None and c >= since) \
                >= partitions

        self.wait_for(ticked, timeout, f"{partitions} partition clocks at the wall clock")

    def wait_quiet(self, quiet: float = 3.0, timeout: float = 60.0) -> None:
        """Until the output counters stay put for ``quiet`` s: sentinels on the input topic
        do not cover referral credits, which come round through the repartition topic."""
        names = ("journey_events_applied_total", "journey_events_duplicate_total",
                 "journey_dead_letters_total", "journey_lifecycle_transitions_total",
                 "journey_alerts_total", "journey_healed_records_total")
        seen: dict[str, Any] = {"counts": None, "since": time.monotonic()}

        def settled() -> bool:
            m = self.metrics()
            counts = tuple(self.metric(n, m) for n in names)
            now = time.monotonic()
            if counts != seen["counts"]:
                seen.update(counts=counts, since=now)
            return bool(m) and now - seen["since"] >= quiet

        self.wait_for(settled, timeout, f"the counters to stay put for {quiet:.0f}s",
                      interval=0.5)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait; SIGKILL (and fail) if it does not stop in time."""
        if self.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(timeout)
        if code is None:
            self.kill()
            self.fail(f"worker ignored SIGTERM for {timeout:.0f}s")
        return int(self.proc.returncode)

    def kill(self) -> int:
        if self.returncode is None:
            self.proc.kill()
        return self.proc.wait(30)


def worker_env(settings: Settings, web_port: int, **overrides: Any) -> dict[str, str]:
    """The environment of a worker process: ours without JOURNEY_*, then the test's names,
    the fast group timings, and ``overrides`` (setting names, any value type)."""
    values: dict[str, Any] = {**FAST_GROUP, "broker": settings.broker,
                              "app_id": settings.app_id, "topic_prefix": settings.topic_prefix,
                              "partitions": PARTITIONS, "web_port": web_port, **overrides}
    env = settings.with_overrides(**values).to_env(os.environ, values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def replay_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The same settings for ``journey replay`` (which ignores the Kafka ones)."""
    return worker_env(settings, 0, **overrides)


class Workers:
    """Starts workers for one test and makes sure none outlives it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Worker] = []

    def start(self, settings: Settings, **overrides: Any) -> Worker:
        port = free_port()
        # one data folder per test: a restarted worker finds its files (rocksdb://) again
        overrides.setdefault("data_dir", self.tmp_path / "data")
        env = worker_env(settings, port, **overrides)
        log_path = self.tmp_path / f"worker-{len(self.started) + 1}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - the child holds its own descriptor
        try:
            proc = subprocess.Popen(list(WORKER_COMMAND), cwd=ROOT, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT,
                                    preexec_fn=parent_death_signal())  # noqa: PLW1509
        finally:
            log.close()
        worker = Worker(proc, port, log_path)
        self.started.append(worker)
        return worker

    def cleanup(self) -> None:
        for w in self.started:
            if w.returncode is None:
                w.kill()


# --- topics ------------------------------------------------------------------------------------

def all_topics(settings: Settings) -> Topics:
    return Topics.from_settings(settings)


def settings_on(bootstrap: str, name: str) -> Settings:
    """Settings with names private to one test on a broker of the test's own, with the
    input, repartition and output topics created."""
    from agents.kafka.topics import create_topics

    tag = uuid.uuid4().hex[:6]
    s = Settings().with_overrides(broker=bootstrap, app_id=f"app-{name}-{tag}",
                                  topic_prefix=f"{name}-{tag}.")
    t = all_topics(s)
    asyncio.run(create_topics(bootstrap, [t.events, t.repartition, *t.outputs()], PARTITIONS))
    return s


def topic_suffixes(settings: Settings) -> list[str]:
    """Every journey topic, as a suffix of the test's prefix, for ``make_topics``."""
    t = all_topics(settings)
    names = [t.events, t.repartition, *t.outputs()]
    return [n.removeprefix(settings.topic_prefix) for n in names]


# --- producing ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Out:
    """One record to produce. ``partition`` None: the user's partition from the key."""

    value: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None


def event_record(event: dict[str, Any] | str | bytes, stamp: str | float | None = "occurred_at",
                 key: str | None = None) -> Out:
    """A record of one event keyed by its user. ``stamp``: "occurred_at" (the record time is
    the event's own time, as when history was produced live), an epoch instant, or None
    (the producer's clock)."""
    if isinstance(event, dict):
        value = orjson.dumps(event)
        key = key if key is not None else event.get("user_id") or event.get("userId")
        ts = event_time(event) if stamp == "occurred_at" else stamp
    else:
        value = event.encode() if isinstance(event, str) else event
        ts = None if stamp == "occurred_at" else stamp
    return Out(value, key.encode() if key is not None else None,
               None if ts is None else int(float(ts) * 1000))


def tick_record(instant: float, partition: int) -> Out:
    """A clock tick as the worker's own ticker writes it (see ``pipeline.tick_value``)."""
    return Out(repr(float(instant)).encode(), None, int(instant * 1000),
               [(KIND_HEADER, b"tick")], partition)


async def _produce(bootstrap: str, topic: str, records: Iterable[Out]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=1 << 20,
                                request_timeout_ms=30000)
    await producer.start()
    batches: dict[int, Any] = {}

    async def ship(p: int) -> None:  # one batch per partition in flight: order is kept
        await (await producer.send_batch(batches.pop(p), topic, partition=p))

    n = 0
    try:
        for rec in records:
            p = rec.partition
            if p is None:
                assert rec.key is not None, "a record without key needs a partition"
                p = partition_for(rec.key.decode(), PARTITIONS)
            for _ in range(2):
                if p not in batches:
                    batches[p] = producer.create_batch()
                if batches[p].append(key=rec.key, value=rec.value, timestamp=rec.timestamp_ms,
                                headers=rec.headers) is not None:
                    break
                await ship(p)  # full: send it and start the next
            else:
                raise AssertionError("record larger than a batch")
            n += 1
        for p in list(batches):
            await ship(p)
    finally:
        await producer.stop()
    return n


def produce(bootstrap: str, topic: str, records: Iterable[Out]) -> int:
    """Produce in the order given (per partition); returns how many."""
    return asyncio.run(_produce(bootstrap, topic, records))


def produce_events(bootstrap: str, topic: str, events: Iterable[dict[str, Any] | str],
                   stamp: str | float | None = "occurred_at") -> int:
    return produce(bootstrap, topic, (event_record(e, stamp) for e in events))


# --- consuming ---------------------------------------------------------------------------------

async def _consume(bootstrap: str, topic: str, until: Callable[[list[ConsumerRecord]], bool] | None,
                   timeout: float, idle: float) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        parts = consumer.partitions_for_topic(topic)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not parts and loop.time() < deadline:
            # a topic the worker creates on its first publish: ask again (``topics()``
            # would fetch metadata without updating the consumer's own view)
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await asyncio.sleep(0.2)
        if not parts:
            return records
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        await consumer.seek_to_beginning()
        last_new = loop.time()
        while loop.time() < deadline:
            got = await consumer.getmany(timeout_ms=300, max_records=10000)
            for batch in got.values():
                records.extend(batch)
            if any(got.values()):
                last_new = loop.time()
            if until is not None and until(records):
                break
            if until is None and loop.time() - last_new >= idle:
                break
    finally:
        await consumer.stop()
    return records


def consume(bootstrap: str, topic: str,
            until: Callable[[list[ConsumerRecord]], bool] | None = None,
            timeout: float = 60.0, idle: float = 2.0) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning (no group), read until ``until(records)``
    holds or ``timeout`` passes; without ``until``, until nothing new came for ``idle``."""
    return asyncio.run(_consume(bootstrap, topic, until, timeout, idle))


def values(records: Sequence[ConsumerRecord]) -> list[dict[str, Any]]:
    return [dict(orjson.loads(r.value)) for r in records]


def header(record: ConsumerRecord, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v)
    return None


# --- synthetic histories and replay's answer -------------------------------------------------

def sentinels(at: float, prefix: str = "zz-sentinel") -> list[dict[str, Any]]:
    """One page view per partition at ``at``, by users who land one on each partition.
    Once all of them show in /users, the worker has handled everything produced before
    them, since a partition is consumed in order."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < PARTITIONS:
        uid = f"{prefix}-{i}"
        found.setdefault(partition_for(uid, PARTITIONS), uid)
        i += 1
    return [{"event_id": f"{uid}-e", "user_id": uid, "type": "page_view",
             "occurred_at": rfc3339(at), "source": "test", "properties": {}}
            for _, uid in sorted(found.items())]


@dataclass
class ReplayResult:
    states: dict[str, dict[str, Any]]
    alerts: list[dict[str, Any]]
    transitions: list[dict[str, Any]]


def run_replay(history: Path, until: float, env: dict[str, str], out_dir: Path,
               timeout: float = 300.0) -> ReplayResult:
    """``journey replay HISTORY --until T`` in a subprocess; its state, alerts and
    transitions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state, alerts, transitions = (out_dir / n for n in ("state.jsonl", "alerts.jsonl",
                                                        "transitions.jsonl"))
    proc = subprocess.run(
        [sys.executable, "-m", "agents.cli", "replay", str(history), "--until", rfc3339(until),
         "--state-out", str(state), "--alerts-out", str(alerts),
         "--transitions-out", str(transitions), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"journey replay failed ({proc.returncode}):\n{proc.stderr}"

    def lines(p: Path) -> list[dict[str, Any]]:
        return [dict(orjson.loads(x)) for x in p.read_bytes().splitlines() if x.strip()]

    return ReplayResult({s["user_id"]: s for s in lines(state)}, lines(alerts),
                        lines(transitions))


def field_diffs(worker: dict[str, dict[str, Any] | None], truth: dict[str, dict[str, Any]],
                fields: Sequence[str], tolerance: dict[str, float] | None = None,
                ) -> list[str]:
    """Human-readable differences of ``fields`` between two {user: state} views."""
    tolerance = tolerance or {}
    out = []
    for uid in sorted(truth):
        got = worker.get(uid)
        if got is None:
            out.append(f"{uid}: unknown to the worker")
            continue
        for f in fields:
            a, b = got.get(f), truth[uid].get(f)
            tol = tolerance.get(f)
            same = (a == b) if tol is None or a is None or b is None else abs(a - b) <= tol
            if not same:
                out.append(f"{uid}.{f}: worker {a!r} != replay {b!r}")
    return out
