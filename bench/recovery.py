"""How fast a worker is back after kill -9, per set-up, next to the time to consume.

    .venv/bin/python bench/recovery.py [--users 1000000] [--probes 60]
        [--setups memory,rocksdb,standby] [--standby-store memory://] [--keep DIR]
        [--py-spy DIR] [--session-timeout 6 --heartbeat 1]

One embedded broker and one app (one consumer group, one changelog), in one run:

1. **consume**: ``--users`` users, one recent purchase each, go into the input topic
   (aiokafka batches); one ``memory://`` worker consumes them, timed from its start to
   the last event applied (and first to last event, as a rate). ``--probes`` users,
   spread over every partition, are read on ``/users``: the states to find again.
2. **memory**: kill -9, start a ``memory://`` worker again; it restores the table from
   the changelog.
3. **rocksdb**: kill -9; a ``rocksdb://`` worker on an empty folder restores the
   changelog into RocksDB (timed as "rocksdb, cold"); a second purchase for the probe
   users and for 2% of all users goes through it, so its own writes are on disk too;
   kill -9 and a restart on the same folder: only the changelog's tail should be read.
4. **standby**: kill -9; two workers with ``standby_replicas=1`` (``--standby-store``)
   start and share the partitions; once both are ready and their standbys caught up,
   kill -9 one: timed until the other serves every partition.

"Ready" is ``/health/ready`` 200 with every owned partition listed, AND every probe user
answering on ``/users`` with the same state as before the kill (orders, spend, stage,
funnel, first and last event, alerts). Whenever ``/health/ready`` said 200, the probes'
answers were also checked for a 503 ("lies": ready while ``/users`` could not answer).
Restart times run from the start of the new process (kill -9 and restart are back to
back); the standby time from the kill. Each recovery also prints how many changelog
records faust set out to read (from the worker's log) and the worker's RSS.

``--py-spy DIR`` records the restarted ``memory://`` worker with py-spy (raw collapsed
stacks, one line per stack with its sample count) from its start until it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recovery_input import choose_probes, first_purchases, purchase, user_id
from recovery_watch import POLL, Recovery, rss_mib, snapshot, wait_recovered

from agents.broker import EmbeddedBroker, wait_for_broker
from agents.kafka.topics import create_topics
from agents.testing.kafka_io import produce, topic_suffixes
from agents.testing.workers import PARTITIONS, Worker, Workers
from streams.settings import Settings

BOUND = 1800.0  # longest any one phase may take


# --- the run ---------------------------------------------------------------------------------

@dataclass
class Run:
    args: argparse.Namespace
    tmp: Path
    settings: Settings
    pool: Workers
    probes: list[str] = field(default_factory=list)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    consume: dict[str, float] = field(default_factory=dict)
    recoveries: list[Recovery] = field(default_factory=list)

    def start(self, **overrides: Any) -> Worker:
        overrides.setdefault("log_level", "INFO")
        if self.args.instance_id:
            overrides.setdefault("instance_id", self.args.instance_id)
        overrides.setdefault("data_dir", self.tmp / "memory-data")
        # passed on by name: the worker pool's own short group timings win otherwise
        overrides.setdefault("session_timeout_seconds", self.args.session_timeout)
        overrides.setdefault("heartbeat_interval_seconds", self.args.heartbeat)
        return self.pool.start(self.settings, **overrides)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def consume_phase(run: Run) -> Worker:
    n = run.args.users
    topics = run.settings.topic_prefix + "events"
    t = time.monotonic()
    sent = produce(run.settings.broker, topics, first_purchases(n, time.time()))
    run.say(f"fed {sent:,} users in {time.monotonic() - t:.1f}s")
    t0 = time.monotonic()
    worker = run.start(store="memory://")
    first = None
    deadline = t0 + BOUND
    while True:
        time.sleep(1.0)
        if worker.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"consume: worker stopped or too slow:\n{worker.log_tail(30)}")
        m = worker.metrics()
        done = sum(worker.metric(name, m) for name in (
            "journey_events_applied_total", "journey_events_duplicate_total",
            "journey_dead_letters_total"))
        if done > 0 and first is None:
            first = time.monotonic()
        if done >= n:
            break
    end = time.monotonic()
    run.consume = {"total": end - t0, "rate": n / max(1e-9, end - (first or t0)),
                   "rss": rss_mib(worker.proc.pid)[0], "peak": rss_mib(worker.proc.pid)[1],
                   "dead": worker.metric("journey_dead_letters_total")}
    run.say(f"consumed in {end - t0:.1f}s from start ({run.consume['rate']:,.0f} events/s "
            f"first to last), RSS {run.consume['rss']:,.0f} MiB, "
            f"dead letters {run.consume['dead']:.0f}")
    run.probes = choose_probes(n, run.args.probes, 7)
    worker.wait_ready()
    run.expected = snapshot(worker, run.probes)
    return worker


def restart(run: Run, old: Worker, name: str, **overrides: Any) -> tuple[Worker, Recovery]:
    old.wait_published()  # the states the probes showed are in the changelog
    old.kill()
    t0 = time.monotonic()
    worker = run.start(**overrides)
    spy = None
    if run.args.py_spy and name == "memory":
        out = Path(run.args.py_spy) / f"{name}-restart.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        spy = subprocess.Popen([py_spy, "record", "--pid", str(worker.proc.pid),
                                "--rate", "100", "--format", "raw", "--nonblocking",
                                "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rec = wait_recovered(name, worker, t0, run.expected, bound=BOUND)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    run.recoveries.append(rec)
    return worker, rec


def report(run: Run, rec: Recovery) -> None:
    ready = "never" if rec.ready_at is None else f"{rec.ready_at:.1f}s"
    right = "never" if rec.right_at is None else f"{rec.right_at:.1f}s"
    read = "?" if rec.to_read is None else f"{rec.to_read:,}"
    synced = "?" if rec.synced_at is None else f"{rec.synced_at:.1f}s"
    run.say(f"{rec.name}: group synced at {synced}, /health/ready at {ready}, probes right "
            f"at {right}, lies {rec.lies}, changelog records read in bulk "
            f"{rec.bulk_read:,} and by faust {read}, RSS {rec.rss[0]:,.0f} MiB "
            f"(peak {rec.rss[1]:,.0f}){rec.extra}")
    for example in rec.lie_examples:
        run.say(f"  ready while /users said: {example}")


def rocksdb_phase(run: Run, old: Worker) -> Worker:
    data = run.tmp / "rocksdb-data"
    old.kill()
    t0 = time.monotonic()
    worker = run.start(store="rocksdb://", data_dir=data)
    cold = wait_recovered("rocksdb, cold (from the changelog)", worker, t0, run.expected,
                          bound=BOUND)
    run.recoveries.append(cold)
    report(run, cold)
    # the worker's own writes: a second purchase for the probes and 2% of everyone
    n = run.args.users
    rng = random.Random(11)
    again = sorted(set(run.probes) | {user_id(rng.randrange(n)) for _ in range(n // 50)})
    now = time.time()
    before = worker.metric("journey_events_applied_total")
    produce(run.settings.broker, run.settings.topic_prefix + "events",
            (purchase(u, 2, now - 1.0, 25.0) for u in again))
    worker.wait_for(lambda: worker.metric("journey_events_applied_total") - before
                    >= len(again), BOUND, "the second purchases")
    run.expected = snapshot(worker, run.probes)
    run.say(f"rocksdb: {len(again):,} second purchases applied by the rocksdb worker")
    worker, rec = restart(run, worker, "rocksdb (same disk)", store="rocksdb://",
                          data_dir=data)
    report(run, rec)
    return worker


def standby_phase(run: Run, old: Worker) -> None:
    store = run.args.standby_store
    old.kill()
    common: dict[str, Any] = {"store": store, "standby_replicas": 1}
    t0 = time.monotonic()
    a = run.start(data_dir=run.tmp / "standby-a", **common)
    b = run.start(data_dir=run.tmp / "standby-b", **common)

    def both_settled() -> bool:
        reports = [w.health() for w in (a, b)]
        parts = [set(r.get("partitions") or []) for _, r in reports]
        return (all(s == 200 for s, _ in reports)
                and not (parts[0] & parts[1]) and len(parts[0] | parts[1]) == PARTITIONS
                and all(parts))

    a.wait_for(both_settled, BOUND, "both standby workers ready, partitions split",
               interval=POLL)
    time.sleep(2.0)  # a little slack for the standbys to read the last writes
    run.say(f"standby ({store}): two workers ready with standbys after "
            f"{time.monotonic() - t0:.1f}s; partitions {a.health()[1].get('partitions')} "
            f"and {b.health()[1].get('partitions')}")
    a.kill()
    killed = time.monotonic()
    rec = wait_recovered(f"standby ({store}) failover", b, killed, run.expected,
                         bound=BOUND)
    run.recoveries.append(rec)
    report(run, rec)


def main() -> int:
    global BOUND
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--setups", default="memory,rocksdb,standby")
    parser.add_argument("--standby-store", default="memory://")
    parser.add_argument("--bound", type=float, default=BOUND,
                        help="longest any one phase may take, seconds")
    parser.add_argument("--instance-id", default="",
                        help="static group membership for the single workers")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the logs and table files under DIR")
    parser.add_argument("--py-spy", default=None, metavar="DIR",
                        help="record the memory:// restart with py-spy into DIR")
    defaults = Settings()
    parser.add_argument("--session-timeout", type=float,
                        default=defaults.session_timeout_seconds,
                        help="the workers' broker_session_timeout, seconds: how soon the "
                        "group notices a dead worker")
    parser.add_argument("--heartbeat", type=float,
                        default=defaults.heartbeat_interval_seconds,
                        help="the workers' broker_heartbeat_interval, seconds")
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    BOUND = args.bound
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="journey-recovery-", dir=args.keep))
    load_before = os.getloadavg()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"{args.users:,} users, {PARTITIONS} partitions; session timeout "
          f"{args.session_timeout:g} s, heartbeat {args.heartbeat:g} s; files in {tmp}",
          flush=True)
    pool = Workers(tmp)
    try:
        with EmbeddedBroker(log_path=tmp / "tansu.log") as broker:
            wait_for_broker(broker.bootstrap, 15.0)
            tag = uuid.uuid4().hex[:6]
            settings = Settings().with_overrides(broker=broker.bootstrap,
                                                 app_id=f"recovery-{tag}",
                                                 topic_prefix=f"recovery-{tag}.",
                                                 session_timeout_seconds=args.session_timeout,
                                                 heartbeat_interval_seconds=args.heartbeat)
            names = [settings.topic_prefix + s for s in topic_suffixes(settings)]
            asyncio.run(create_topics(broker.bootstrap, names, PARTITIONS))
            run = Run(args, tmp, settings, pool)
            worker = consume_phase(run)
            if "memory" in setups:
                worker, rec = restart(run, worker, "memory", store="memory://")
                report(run, rec)
            if "rocksdb" in setups:
                worker = rocksdb_phase(run, worker)
            if "standby" in setups:
                standby_phase(run, worker)
            summary(run)
    finally:
        pool.cleanup()
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def summary(run: Run) -> None:
    load = os.getloadavg()
    print(f"\n{run.args.users:,} users; load at the end {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}")
    print(f"{'phase':<38} {'synced':>7} {'ready':>7} {'probes':>7} {'lies':>5} "
          f"{'bulk read':>10} {'faust read':>10} {'RSS MiB':>8}")
    c = run.consume
    print(f"{'consume (start to last event)':<38} {'':>7} {c['total']:>6.1f}s {'':>7} {'':>5} "
          f"{'':>10} {'':>10} {c['rss']:>8,.0f}   ({c['rate']:,.0f} events/s)")
    for rec in run.recoveries:
        ready = "-" if rec.ready_at is None else f"{rec.ready_at:.1f}s"
        right = "-" if rec.right_at is None else f"{rec.right_at:.1f}s"
        synced = "-" if rec.synced_at is None else f"{rec.synced_at:.1f}s"
        read = "?" if rec.to_read is None else f"{rec.to_read:,}"
        print(f"{rec.name:<38} {synced:>7} {ready:>7} {right:>7} {rec.lies:>5} "
              f"{rec.bulk_read:>10,} {read:>10} {rec.rss[0]:>8,.0f}")


if __name__ == "__main__":
    sys.exit(main())
