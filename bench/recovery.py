"""How fast a worker is back after kill -9, per set-up, next to the time to consume.

    .venv/bin/python bench/recovery.py [--users 1000000] [--probes 60]
        [--setups memory,rocksdb,standby] [--standby-store memory://] [--keep DIR]
        [--py-spy DIR]

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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.broker import EmbeddedBroker, wait_for_broker
from agents.kafka.topics import create_topics
from agents.testing.chaos import CORE_FIELDS
from agents.testing.kafka_io import Out, produce, topic_suffixes
from agents.testing.workers import PARTITIONS, Worker, Workers
from streams.core.partitioning import partition_for
from streams.settings import Settings

POLL = 0.2  # seconds between two looks at a recovering worker
BOUND = 1800.0  # longest any one phase may take


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def user_id(i: int) -> str:
    return f"u{i:08d}"


def purchase(uid: str, n: int, at: float, amount: float) -> Out:
    body = {"event_id": f"{uid}-p{n}", "user_id": uid, "type": "purchase",
            "occurred_at": rfc3339(at), "source": "bench",
            "properties": {"amount": amount, "currency": "EUR", "order_id": f"{uid}-o{n}"}}
    return Out(orjson.dumps(body), uid.encode(), int(at * 1000))


def first_purchases(users: int, now: float) -> Iterator[Out]:
    """One purchase per user within the last hour, in time order."""
    start = now - 3600.0
    for i in range(users):
        yield purchase(user_id(i), 1, start + 3000.0 * i / users, 10.0 + i % 90)


# --- a worker's state, as the bench sees it ------------------------------------------------

def rss_mib(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process in MiB."""
    got = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                got[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return got.get("VmRSS", 0.0), got.get("VmHWM", 0.0)


def answers(worker: Worker, users: list[str]) -> dict[str, tuple[int | None, dict[str, Any]]]:
    out = {}
    for uid in users:
        status, body = worker.get(f"/users/{uid}", timeout=10.0)
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            doc = {}
        out[uid] = (status, doc)
    return out


def core(doc: dict[str, Any]) -> dict[str, Any]:
    return {f: doc.get(f) for f in CORE_FIELDS}


def snapshot(worker: Worker, users: list[str]) -> dict[str, dict[str, Any]]:
    got = answers(worker, users)
    bad = [u for u, (s, _) in got.items() if s != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} probe users did not answer 200, e.g. {bad[0]}: "
                           f"{got[bad[0]]}")
    return {u: core(doc) for u, (_, doc) in got.items()}


@dataclass
class Recovery:
    """One worker coming back: when it said ready, when the probes were right."""

    name: str
    ready_at: float | None = None  # /health/ready 200 with the partitions, from t0
    right_at: float | None = None  # ... and every probe right
    lies: int = 0  # probe answers 503 while /health/ready said 200
    lie_examples: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # probes still wrong at the end
    rss: tuple[float, float] = (0.0, 0.0)
    to_read: int | None = None  # changelog records faust set out to read
    bulk_read: int = 0  # changelog records the store read itself (agents.kafka.tablestore)
    synced_at: float | None = None  # the group's last sync before ready, from t0
    extra: str = ""


def wait_recovered(name: str, worker: Worker, t0: float, expected: dict[str, dict[str, Any]],
                   partitions: int = PARTITIONS,
                   on_ready: Callable[[], None] | None = None) -> Recovery:
    """Poll until ``worker`` is ready and answers every probe as expected."""
    rec = Recovery(name)
    wall0 = time.time() - (time.monotonic() - t0)
    users = sorted(expected)
    deadline = time.monotonic() + BOUND
    while True:
        if worker.returncode is not None:
            raise RuntimeError(f"{name}: worker exited with {worker.returncode}:\n"
                               f"{worker.log_tail(30)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not recovered after {BOUND:.0f}s:\n"
                               f"{worker.log_tail(30)}")
        status, body = worker.get("/health/ready")
        report = orjson.loads(body) if status in (200, 503) and body else {}
        ready = status == 200 and len(report.get("partitions") or []) >= partitions
        if ready:
            if rec.ready_at is None:
                rec.ready_at = time.monotonic() - t0
                if on_ready is not None:
                    on_ready()
            got = answers(worker, users)
            for uid, (s, doc) in got.items():
                if s == 503:
                    rec.lies += 1
                    if len(rec.lie_examples) < 3:
                        rec.lie_examples.append(f"{uid}: {doc}")
            rec.wrong = [u for u, (s, doc) in got.items()
                         if s != 200 or core(doc) != expected[u]]
            if not rec.wrong:
                rec.right_at = time.monotonic() - t0
                rec.rss = rss_mib(worker.proc.pid)
                rec.to_read = changelog_to_read(worker.log_path)
                rec.bulk_read, synced = from_log(worker.log_path, wall0)
                rec.synced_at = None if synced is None else synced - wall0
                return rec
        time.sleep(POLL)


_BULK = re.compile(r"changelog partitions \[[^]]*\]: (\d+) records read")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def from_log(log: Path, since: float) -> tuple[int, float | None]:
    """Changelog records the store read in bulk, and when the group last synced (epoch),
    from the worker's log lines after ``since`` (epoch)."""
    bulk, synced = 0, None
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return 0, None
    for line in lines:
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at < since:
            continue
        if "Successfully synced group" in line:
            synced = at
        m = _BULK.search(line)
        if m:
            bulk += int(m.group(1))
    return bulk, synced


_TABLE_ROW = re.compile(r"[│|]\s*(\S+)\s*[│|]\s*(\d+)\s*[│|]\s*(-?\d+)\s*[│|]")


def changelog_to_read(log: Path) -> int | None:
    """Records between where faust's last recovery started reading the changelog and the
    highwater it read to, from the two tables it logs at INFO (active partitions)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None

    def last_table(title: str) -> dict[int, int]:
        at = text.rfind(title)
        if at < 0:
            return {}
        rows: dict[int, int] = {}
        for line in text[at:].splitlines()[1:40]:
            m = _TABLE_ROW.search(line)
            if m:
                rows[int(m.group(2))] = int(m.group(3))
            elif rows and line.lstrip().startswith(("└", "+")):
                break
        return rows

    high = last_table("Highwater - Active")
    start = last_table("Reading Starts At - Active")
    if not high:
        return None
    return sum(max(0, h - start.get(p, -1)) for p, h in high.items())


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
        return self.pool.start(self.settings, **overrides)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def choose_probes(users: int, count: int, seed: int) -> list[str]:
    """``count`` users spread evenly over the partitions, the last user among them (its
    state is in the changelog's newest batch, the one a short recovery misses)."""
    rng = random.Random(seed)
    per: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    want = max(1, count // PARTITIONS)
    tries = 0
    while any(len(v) < want for v in per.values()) and tries < 100 * count:
        tries += 1
        uid = user_id(rng.randrange(users))
        p = partition_for(uid, PARTITIONS)
        if len(per[p]) < want and uid not in per[p]:
            per[p].append(uid)
    chosen = {u for v in per.values() for u in v}
    chosen.add(user_id(users - 1))
    for p in range(PARTITIONS):  # and each partition's last user
        for i in range(users - 1, max(-1, users - 1000), -1):
            if partition_for(user_id(i), PARTITIONS) == p:
                chosen.add(user_id(i))
                break
    return sorted(chosen)


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
        rec = wait_recovered(name, worker, t0, run.expected)
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
    cold = wait_recovered("rocksdb, cold (from the changelog)", worker, t0, run.expected)
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
    rec = wait_recovered(f"standby ({store}) failover", b, killed, run.expected)
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
    args = parser.parse_args()
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    BOUND = args.bound
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="journey-recovery-", dir=args.keep))
    load_before = os.getloadavg()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"{args.users:,} users, {PARTITIONS} partitions; files in {tmp}", flush=True)
    pool = Workers(tmp)
    try:
        with EmbeddedBroker(log_path=tmp / "tansu.log") as broker:
            wait_for_broker(broker.bootstrap, 15.0)
            tag = uuid.uuid4().hex[:6]
            settings = Settings().with_overrides(broker=broker.bootstrap,
                                                 app_id=f"recovery-{tag}",
                                                 topic_prefix=f"recovery-{tag}.")
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
