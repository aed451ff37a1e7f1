"""Replay throughput against a bare decode loop over the same file, and memory per user.

Usage: .venv/bin/python bench/replay_throughput.py [--events 1000000] [--file PATH]

Both figures come from the same run on the same file, so the ratio holds on a noisy
machine where the absolute rates do not. Memory per tracked user is measured with
tracemalloc over the replayed users' state (the table values a worker would hold).
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import orjson

from streams.replay import Replay
from streams.replay.sources import BadLine, read_events, time_ordered
from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def ensure_file(events: int) -> Path:
    path = REPO / "bench" / "data" / f"synth-{events}.jsonl.gz"
    if not path.exists():
        subprocess.run([sys.executable, str(REPO / "bench" / "make_data.py"), "--events",
                        str(events), "--out", str(path)], check=True)
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


def replay(path: Path, settings: Settings) -> tuple[Replay, float]:
    started = time.perf_counter()
    r = Replay(settings, received_at=time.time())

    def good():  # type: ignore[no-untyped-def]
        for item, _ in read_events([path], settings.max_event_bytes):
            if isinstance(item, BadLine):
                r.bad_line(item)
            else:
                yield item

    r.feed(time_ordered(good()))
    r.finish(None)
    return r, time.perf_counter() - started


def memory_per_user(path: Path, settings: Settings, users: int = 20000) -> float:
    """Bytes of user state per tracked user, on the first ``users`` users' events."""
    wanted: set[str] = set()
    events = []
    for item, _ in read_events([path], settings.max_event_bytes):
        if isinstance(item, BadLine):
            continue
        if item.user_id not in wanted and len(wanted) >= users:
            continue
        wanted.add(item.user_id)
        events.append(item)
    events.sort(key=lambda e: e.occurred_at)
    r = Replay(settings, received_at=time.time())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    r.feed(events)
    r.finish(None)
    del events
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracked = sum(len(s) for s in r.stores)
    return (after - before) / max(tracked, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--file", type=Path)
    args = ap.parse_args()
    path = args.file or ensure_file(args.events)
    settings = Settings()
    n, bare_s = bare_decode(path)
    r, replay_s = replay(path, settings)
    bare_rate, replay_rate = n / bare_s, r.summary.read / replay_s
    per_user = memory_per_user(path, settings)
    print(f"file              {path.name} ({n:,} lines)")
    print(f"bare orjson loop  {bare_rate:>10,.0f} lines/s  ({bare_s:.1f}s)")
    print(f"journey replay    {replay_rate:>10,.0f} events/s ({replay_s:.1f}s)  "
          f"users={sum(len(s) for s in r.stores):,} alerts={dict(r.summary.alerts)}")
    print(f"ratio             replay / bare decode = {replay_rate / bare_rate:.3f}")
    print(f"memory per user   {per_user:,.0f} bytes of state (tracemalloc, 20k users)")


if __name__ == "__main__":
    main()
