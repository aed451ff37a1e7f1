"""Replay throughput on CDNOW x10 against a bare decode loop over the same file, serial
and with partitions in parallel processes; and memory of state per tracked user.

Usage: .venv/bin/python bench/replay_throughput.py [--file PATH] [--jobs N]
       [--memory-users 100000] [--profile OUT.prof]

The default file is CDNOW x10 (696,590 purchases of 235,700 users; see ``real_data.py``),
built under ``bench/data/`` on first use. Every rate is printed with its ratio to the bare
``orjson.loads`` loop timed in the same run, so the ratios hold on a loaded machine where
the absolute rates do not. The serial and the parallel replay must leave the same state
and the same alert and transition counts; the bench checks that. Memory per tracked user
is measured with tracemalloc over the state of the first ``--memory-users`` users,
counting what the state keeps of the decoded events.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_data import DEFAULT_CACHE, cdnow_transactions, copies, purchase_events, write_jsonl

from streams.core.decode import decode
from streams.core.event import Event
from streams.replay import Replay, parallel
from streams.replay.sources import BadLine, open_lines, read_events, time_ordered
from streams.settings import Settings


def cdnow_x10() -> Path:
    path = DEFAULT_CACHE / "cdnow-x10.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_jsonl(purchase_events(copies(cdnow_transactions(), 10)), tmp)
        tmp.rename(path)
    return path


def bare_decode(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    loads = orjson.loads
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
        for line in fh:
            loads(line)
            n += 1
    return n, time.perf_counter() - started


def replay(path: Path, settings: Settings, jobs: int) -> tuple[Replay, float, bool]:
    """Read, decode, sort, replay and finish, as ``journey replay --jobs N`` does."""
    started = time.perf_counter()
    r = Replay(settings, received_at=time.time())

    def good() -> Iterator[Event]:
        for item, _ in read_events([path], settings.max_event_bytes):
            if isinstance(item, BadLine):
                r.bad_line(item)
            else:
                yield item

    ran_parallel = parallel.feed(r, time_ordered(good()), None, jobs)
    r.finish(None)
    return r, time.perf_counter() - started, ran_parallel


def fingerprint(r: Replay) -> tuple[object, ...]:
    """What must not differ between the serial and the parallel replay."""
    s = r.summary
    state = [orjson.dumps(rec) for rec in r.snapshots(max(p.clock for p in r.processors))]
    return (s.applied, dict(s.alerts), s.transitions, dict(s.suppressed),
            dict(s.reactivations), dict(s.stages), hash(tuple(state)))


def first_users(path: Path, settings: Settings, users: int) -> list[bytes]:
    """The lines of the first ``users`` users' events in ``path``."""
    wanted: set[str] = set()
    lines = []
    with open_lines(path) as fh:
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            event = decode(line, max_bytes=settings.max_event_bytes)
            if not isinstance(event, Event):
                continue
            if event.user_id not in wanted and len(wanted) >= users:
                continue
            wanted.add(event.user_id)
            lines.append(line)
    return lines


def memory_per_user(path: Path, settings: Settings, users: int) -> tuple[int, float]:
    """Bytes of user state per tracked user, over the first ``users`` users' events.

    Tracing starts before their lines are decoded and ends after the events are dropped,
    so what the state keeps of them (ids, times) counts, as it does in a worker, where
    the decoded event is gone once it is applied."""
    lines = first_users(path, settings, users)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    events = [e for e in (decode(x, max_bytes=settings.max_event_bytes) for x in lines)
              if isinstance(e, Event)]
    events.sort(key=lambda e: e.occurred_at)
    r = Replay(settings, received_at=time.time())
    r.feed(events)
    r.finish(None)
    del events
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracked = sum(len(s) for s in r.stores)
    return tracked, (after - before) / max(tracked, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, help="a JSONL history (default: CDNOW x10)")
    ap.add_argument("--jobs", type=int, default=0, help="parallel processes (0: per core)")
    ap.add_argument("--memory-users", type=int, default=100_000, help="0: skip")
    ap.add_argument("--profile", type=Path, help="cProfile the serial replay into this file")
    args = ap.parse_args()
    path = args.file or cdnow_x10()
    settings = Settings()
    jobs = args.jobs or parallel.default_jobs(settings.partitions)
    n, bare_s = bare_decode(path)
    bare_rate = n / bare_s
    print(f"file              {path.name} ({n:,} lines); {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"bare orjson loop  {bare_rate:>10,.0f} lines/s  ({bare_s:.1f}s)")
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    serial, serial_s, _ = replay(path, settings, 1)
    if prof:
        prof.disable()
        prof.dump_stats(args.profile)
    rates = {"serial": serial.summary.read / serial_s}
    par, par_s, ran = replay(path, settings, jobs)
    rates[f"{jobs} jobs" + ("" if ran else " (fell back to serial)")] = par.summary.read / par_s
    for label, rate in rates.items():
        print(f"replay {label:<10} {rate:>10,.0f} events/s  ratio to bare decode "
              f"{rate / bare_rate:.4f}")
    print(f"parallel / serial {par_s and serial_s / par_s:.2f}x  "
          f"(load average {os.getloadavg()[0]:.1f} at end)")
    same = fingerprint(serial) == fingerprint(par)
    s = serial.summary
    print(f"outputs           users={s.users:,} alerts={dict(s.alerts)} "
          f"transitions={s.transitions:,}; parallel identical: {same}")
    if args.memory_users:
        tracked, per_user = memory_per_user(path, settings, args.memory_users)
        print(f"memory per user   {per_user:,.0f} bytes of state (tracemalloc, "
              f"{tracked:,} users)")
    if not same:
        sys.exit("the parallel replay differs from the serial one")


if __name__ == "__main__":
    main()
