"""Broker faults under a running worker: a topic deleted from under it, and the embedded
broker restarted while a storefront keeps writing.

Every case must end one of two ways, never in a silent stall or silent loss:

- a loud failure: a CRITICAL log line naming the cause, /health 503 with the fault in
  ``fatal``, ``journey_healthy`` 0, then exit code 3 (``EXIT_FATAL``); or
- a clean recovery: the worker stays healthy and everything produced after the fault is
  applied and published where subscribers can read it.

What Tansu (the embedded broker) does on DeleteTopics, which shapes these cases: it answers
success and drops the topic from cluster metadata, but a Metadata request that *names* the
topic re-creates it, empty, with 4 partitions (auto-create cannot be switched off). A
produce to a deleted topic is acknowledged, at offsets from 0 again, yet the records never
show up for consumers. So a storefront that keeps producing re-creates a deleted input
topic at once, and a worker publishing to a deleted output topic gets no error at all.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from agents.broker import EmbeddedBroker, free_port
from agents.cli.worker import EXIT_FATAL
from agents.testing.kafka_io import (
    Out,
    all_topics,
    consume,
    event_record,
    produce,
    rfc3339,
    sentinels,
    settings_on,
    topic_suffixes,
)
from agents.testing.workers import PARTITIONS, Worker, Workers
from streams.core.partitioning import partition_for
from streams.settings import Settings

# How long the worker has to notice a fault: its watchdog probes every 3 s, and the
# test box is a busy 2-core machine. A deadline for a wait, not a speed assertion.
DETECT_WITHIN = 20.0
# How long a worker that carried on gets to show it recovered (apply what came after),
# and how long mis-keyed events may trail the sentinels (they take the repartition hop).
RECOVER_WITHIN = 20.0
REPARTITION_TRAIL = 5.0

# --- talking to the broker directly ------------------------------------------------------------

async def _admin_call(bootstrap: str, call: str, *args: Any) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await getattr(admin, call)(*args)
    finally:
        await admin.close()


def delete_topic(bootstrap: str, topic: str) -> None:
    response = asyncio.run(_admin_call(bootstrap, "delete_topics", [topic]))
    errors = {name: code for name, code in response.topic_error_codes}
    assert errors == {topic: 0}, f"DeleteTopics {topic}: {response}"


def listed_topics(bootstrap: str) -> set[str]:
    """Topics in the cluster's metadata (an all-topics request: it creates nothing)."""
    return set(asyncio.run(_admin_call(bootstrap, "list_topics")))


def partition_count(bootstrap: str, topic: str) -> int:
    """Partitions of an existing topic (naming it in a request may create it: check
    ``listed_topics`` first)."""
    described = asyncio.run(_admin_call(bootstrap, "describe_topics", [topic]))
    return len(described[0]["partitions"])


# --- input -------------------------------------------------------------------------------------

def page_views(tag: str, users: int, at: float) -> list[dict[str, Any]]:
    return [{"event_id": f"{tag}-{i}", "user_id": f"{tag}-u{i}", "type": "page_view",
             "occurred_at": rfc3339(at), "source": "test", "properties": {}}
            for i in range(users)]


def misrouting_key(user_id: str) -> str:
    """A record key that lands on another partition than ``user_id`` does."""
    home = partition_for(user_id, PARTITIONS)
    n = 0
    while partition_for(f"cart-{user_id}-{n}", PARTITIONS) == home:
        n += 1
    return f"cart-{user_id}-{n}"


def traffic(tag: str, at: float, users: int = 40) -> tuple[list[Out], list[str]]:
    """One page view by each of ``users`` new users, a quarter of them keyed by something
    other than the user id so they travel through the repartition topic, then one sentinel
    per partition. Returns the records and every user id they introduce."""
    records = [event_record(e, stamp=at, key=misrouting_key(e["user_id"]) if i % 4 == 0
                            else None)
               for i, e in enumerate(page_views(tag, users, at))]
    done = sentinels(at, prefix=f"{tag}-done")
    records += [event_record(e, stamp=at) for e in done]
    return records, [*(f"{tag}-u{i}" for i in range(users)), *(e["user_id"] for e in done)]


class Storefront:
    """Writes page views of new users to the input topic from a background thread until
    stopped, riding out errors as a real storefront's producer would (and, like one,
    re-creating the topic through auto-create when it is gone)."""

    def __init__(self, bootstrap: str, topic: str, tag: str, every: float = 0.1) -> None:
        self.bootstrap, self.topic, self.tag, self.every = bootstrap, topic, tag, every
        self.sent = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storefront", daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            now = time.time()
            batch = page_views(f"{self.tag}-{n}", 20, now)
            try:
                self.sent += produce(self.bootstrap, self.topic,
                                     (event_record(e, stamp=now) for e in batch))
            except (KafkaError, OSError, TimeoutError):  # the broker is away: next round
                self.failures += 1
            n += 1
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(60)


# --- the two acceptable endings ---------------------------------------------------------------

@dataclass
class Outcome:
    """What the worker did in the ``DETECT_WITHIN`` seconds after a fault."""

    code: int | None  # exit code, None while still running
    seconds: float  # fault to exit (or to the end of the watch)
    unhealthy: dict[str, Any] | None = None  # the first /health 503 body that listed a fault
    healthy_gauge: float | None = None  # journey_healthy scraped right after that 503
    critical: list[str] = field(default_factory=list)  # CRITICAL lines of the log


def watch(worker: Worker, since: float, within: float = DETECT_WITHIN) -> Outcome:
    """Poll /health (and /metrics once it turns 503) until the worker exits or ``within``
    seconds after ``since`` pass. After a fatal fault the worker answers 503 for a 2 s grace
    before it exits, which is when the gauge can be read."""
    out = Outcome(None, 0.0)
    while worker.returncode is None and time.monotonic() - since < within:
        status, report = worker.health()
        if status == 503 and report.get("fatal") and out.unhealthy is None:
            out.unhealthy = report
            out.healthy_gauge = worker.metrics().get(("journey_healthy", ()))
        time.sleep(0.2)
    # a worker that reported a fault is about to exit: give it the grace and some slack
    out.code = worker.wait_exit(15) if out.unhealthy is not None else worker.returncode
    out.seconds = time.monotonic() - since
    out.critical = [ln for ln in worker.log_path.read_text(errors="replace").splitlines()
                    if " CRITICAL " in ln]
    return out


def carried_on_quietly(outcome: Outcome) -> bool:
    return outcome.code is None and outcome.unhealthy is None and not outcome.critical


def assert_failed_loudly(worker: Worker, outcome: Outcome, *naming: str) -> None:
    """Exit 3, a CRITICAL line and a /health fault naming each of ``naming``, gauge 0."""
    if carried_on_quietly(outcome):
        worker.fail(f"the worker carried on for {outcome.seconds:.0f}s with /health 200 and "
                    "no CRITICAL log line; it must stop with exit code "
                    f"{EXIT_FATAL}")
    if outcome.code is None:
        worker.fail(f"the worker reported a fault ({outcome.critical[:1]}, /health "
                    f"{outcome.unhealthy}) but was still running {outcome.seconds:.0f}s "
                    f"later: it must exit with code {EXIT_FATAL}")
    if outcome.code != EXIT_FATAL:
        worker.fail(f"exit code {outcome.code} {outcome.seconds:.1f}s after the fault, "
                    f"expected {EXIT_FATAL}")
    assert outcome.critical, "no CRITICAL log line"
    for name in naming:
        assert any(name in ln for ln in outcome.critical), (
            f"no CRITICAL log line names {name}: {outcome.critical}")
    assert outcome.unhealthy is not None, "/health never answered 503 before the exit"
    assert all(any(name in f for f in outcome.unhealthy["fatal"]) for name in naming), \
        outcome.unhealthy
    assert outcome.healthy_gauge == 0.0, (
        f"journey_healthy was {outcome.healthy_gauge} while /health answered 503")


def assert_recovered(worker: Worker, s: Settings, fault: str, deleted: str | None = None,
                     users: list[str] | None = None) -> None:
    """The worker carried on: then every user of ``users`` (new traffic produced after the
    fault, by default produced here) must be applied, the worker healthy, a deleted topic
    back with its partitions, and a deleted output topic must hold what was published to
    it after the fault."""
    t = all_topics(s)
    if users is None:
        records, users = traffic(f"after-{uuid.uuid4().hex[:6]}", time.time())
        produce(s.broker, t.events, records)
    deadline = time.monotonic() + RECOVER_WITHIN
    missing = list(users)
    while missing and worker.returncode is None and time.monotonic() < deadline:
        missing = [u for u in missing if worker.user(u) is None]
        if not any("-done-" in u for u in missing):
            # the sentinels, produced last, are in: the input topic has been read past
            # everything; only the repartition hop may still be on its way
            deadline = min(deadline, time.monotonic() + REPARTITION_TRAIL)
        time.sleep(0.5)
    if worker.returncode is not None:
        worker.fail(f"after {fault}, the worker exited with code {worker.returncode} "
                    f"without first reporting a fault on /health or in a CRITICAL line")
    warnings = [ln for ln in worker.log_path.read_text(errors="replace").splitlines()
                if " WARNING " in ln or " ERROR " in ln][-5:]
    m = worker.metrics()
    if missing:
        worker.fail(
            f"silent loss after {fault}: {len(missing)} of {len(users)} users produced "
            f"after it were never applied within {RECOVER_WITHIN:.0f}s, yet /health answers "
            f"{worker.health()[0]}, journey_healthy={m.get(('journey_healthy', ()))}, "
            f"consumed={worker.metric('journey_events_consumed_total', m):.0f}, "
            f"lag={worker.metric('journey_consumer_lag', m):.0f}; last warnings: {warnings}")
    assert worker.health()[0] == 200
    assert m.get(("journey_healthy", ())) == 1.0
    if deleted is None:
        return
    present = listed_topics(s.broker)
    if deleted not in present:
        worker.fail(f"silent loss after {fault}: the worker stayed healthy and went on "
                    f"publishing, but {deleted} is still gone from the cluster's metadata")
    assert partition_count(s.broker, deleted) == PARTITIONS
    if deleted == t.transitions:
        fresh = set(users)
        seen = consume(s.broker, deleted, timeout=RECOVER_WITHIN,
                       until=lambda rs: fresh <= {orjson.loads(r.value)["user_id"] for r in rs})
        published = {orjson.loads(r.value)["user_id"] for r in seen}
        lost = fresh - published
        if lost:
            worker.fail(f"silent loss after {fault}: the transitions of {len(lost)} of "
                        f"{len(fresh)} new users are not in {deleted} (the worker counted "
                        f"them: journey_lifecycle_transitions_total="
                        f"{worker.metric('journey_lifecycle_transitions_total', m):.0f})")


# --- setup -------------------------------------------------------------------------------------

def started_worker(workers: Workers, s: Settings) -> Worker:
    """A worker on ``s`` that has applied some traffic on every partition and has been
    running long enough for its watchdog (every 3 s) to have seen the healthy broker."""
    worker = workers.start(s)
    worker.wait_ready()
    records, users = traffic("before", time.time())
    produce(s.broker, all_topics(s).events, records)
    worker.wait_for(lambda: all(worker.user(u) for u in users), 60,
                    "the first traffic applied")
    worker.wait_for(lambda: worker.health()[1].get("uptime_seconds", 0) >= 8, 30,
                    "8 s of uptime")
    return worker


def victim_topic(s: Settings, victim: str) -> str:
    if victim == "changelog":
        return f"{s.app_id}-users-changelog"
    return f"{s.topic_prefix}{victim}"


# --- a topic deleted --------------------------------------------------------------------------

@pytest.mark.parametrize("victim", [
    "events",
    "changelog",
    "lifecycle-transitions",
    "events-repartition",
])
def test_topic_deleted_under_a_running_worker(
        victim: str, broker: Any, kafka_settings: Settings, make_topics: Any,
        workers: Workers) -> None:
    """Nothing but the worker itself (ticks, state writes) touches the broker for the
    first ``DETECT_WITHIN`` seconds after the delete. The changelog holds the only copy of
    the table outside the worker's memory, so losing it must be fatal; for the others a
    worker that carries on must then handle new traffic as if nothing had happened."""
    s = kafka_settings
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = started_worker(workers, s)
    topic = victim_topic(s, victim)
    assert topic in listed_topics(s.broker)

    delete_topic(s.broker, topic)
    outcome = watch(worker, time.monotonic())
    print(f"{topic} deleted: exit {outcome.code} after {outcome.seconds:.1f}s; "
          f"{outcome.critical[:1]}")
    if carried_on_quietly(outcome) and victim != "changelog":
        assert_recovered(worker, s, f"deleting {topic}", deleted=topic)
    else:
        assert_failed_loudly(worker, outcome, topic)


def test_input_topic_deleted_and_recreated_by_a_producer(
        broker: Any, kafka_settings: Settings, make_topics: Any,
        workers: Workers) -> None:
    """Storefronts do not stop when someone deletes the input topic: their next write
    re-creates it, empty. The worker's consumer offsets now point past records it has
    never seen; it must either stop loudly or read the new topic from its start."""
    s = kafka_settings
    t = all_topics(s)
    make_topics(*topic_suffixes(s), partitions=PARTITIONS)
    worker = started_worker(workers, s)

    delete_topic(s.broker, t.events)
    # a second's worth from a small shop: fewer records per partition than came before
    records, users = traffic("recreated", time.time(), users=20)
    produce(s.broker, t.events, records)  # the producer's metadata request re-creates it
    outcome = watch(worker, time.monotonic())
    print(f"{t.events} deleted and re-created by a producer: exit {outcome.code} after "
          f"{outcome.seconds:.1f}s; {outcome.critical[:1]}")
    if carried_on_quietly(outcome):
        assert_recovered(worker, s, f"deleting {t.events} under a live producer", users=users)
    else:
        assert_failed_loudly(worker, outcome)


# --- the broker restarted while events flow ---------------------------------------------------

def broker_on(port: int, log: Path, patience: float = 20.0) -> EmbeddedBroker:
    """A fresh embedded broker on ``port``; the stopped one's socket can hold the port
    for a moment, so binding is retried for up to ``patience`` seconds."""
    give_up = time.monotonic() + patience
    while True:
        try:
            return EmbeddedBroker(port=port, log_path=log).start()
        except Exception:
            if time.monotonic() >= give_up:
                raise
            time.sleep(0.5)


def test_broker_restarted_while_events_flow_is_fatal(workers: Workers,
                                                      tmp_path: Path) -> None:
    """``test_worker_faults`` restarts the broker while nothing but ticks flows. Here a
    storefront keeps writing through the restart, so its producer re-creates the input
    topic on the new, empty broker within moments: the worker must still see that the
    broker lost its data, and stop."""
    port = free_port()
    first = EmbeddedBroker(port=port, log_path=tmp_path / "tansu-1.log").start()
    second: EmbeddedBroker | None = None
    try:
        s = settings_on(first.bootstrap, "flow")
        worker = started_worker(workers, s)
        with Storefront(first.bootstrap, all_topics(s).events, "shop") as shop:
            worker.wait_for(lambda: shop.sent >= 200 and worker.metric(
                "journey_events_applied_total") >= 200, 60, "the storefront's events applied")
            first.stop()
            second = broker_on(port, tmp_path / "tansu-2.log")
            restarted = time.monotonic()
            sent_before = shop.sent
            outcome = watch(worker, restarted)
            sent_after = shop.sent - sent_before
        print(f"broker restarted under a storefront ({sent_after} events sent after the "
              f"restart, {shop.failures} failed sends): exit {outcome.code} after "
              f"{outcome.seconds:.1f}s; {outcome.critical[:1]}")
        assert sent_after > 0, "the storefront wrote nothing after the restart"
        assert_failed_loudly(worker, outcome)
    finally:
        first.stop()
        if second is not None:
            second.stop()
