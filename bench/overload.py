"""A burst far above steady throughput, with a poison user, into one live worker.

    .venv/bin/python bench/overload.py                       # the default run (~5 min)
    .venv/bin/python bench/overload.py --factor 10           # a 10x burst (~6 min)
    .venv/bin/python bench/overload.py --poison 100000 --factor 3 --quiet   # ~1 min

1. Starts an embedded broker (free port) and one ``journey worker``.
2. Steady throughput: ``--steady`` events of ``--users`` users produced at once, timed
   from the first to the last applied (the same users as the burst, so the table holds
   them before the burst begins).
3. The burst: ``--factor`` times what the worker handled in ``--seconds`` seconds at that
   rate, produced as fast as aiokafka batches write, with a poison user's ``--poison``
   events interleaved (all on one partition).
4. Once a second until the backlog is drained: consumer lag, worker RSS, events done/s,
   /health; a canary user on every partition times how long a fresh event waits.
5. Prints peak lag, time to drain, peak RSS against RSS before the burst, canary delays
   on the other partitions against poison's, and poison's encoded state size (its newest
   changelog record) against the ceiling the caps allow.

Figures are of this machine and run only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.broker import EmbeddedBroker, wait_for_broker
from agents.kafka import codec
from agents.kafka.topics import create_topics
from agents.testing.kafka_io import all_topics, produce
from agents.testing.overload import (
    Burst,
    progress,
    rss_mib,
    run_burst,
    start_worker,
    state_record,
    tag,
)
from agents.testing.workers import PARTITIONS
from streams.settings import Settings
from streams.testing import state_ceiling


def steady_rate(settings: Settings, worker: object, users: int, events: int) -> float:
    """Events/s of the worker over a backlog of ``events`` (timed first to last done)."""
    warm = Burst(tag(), users, events, 0, start=time.time() - 1800.0)
    base = progress(worker)  # type: ignore[arg-type]
    produce(settings.broker, all_topics(settings).events, warm.records())
    first = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = progress(worker) - base  # type: ignore[arg-type]
        now = time.perf_counter()
        if done > 0 and first is None:
            first = (now, done)
        if done >= events and first is not None:
            return (done - first[1]) / max(1e-6, now - first[0])
        time.sleep(0.1)
    raise RuntimeError("the steady-state backlog did not drain in 600 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=20_000, help="ordinary users")
    ap.add_argument("--steady", type=int, default=40_000,
                    help="events of the steady-throughput measurement")
    ap.add_argument("--factor", type=float, default=5.0,
                    help="burst size as a multiple of what the worker handles in --seconds")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--burst", type=int, default=0,
                    help="ordinary burst events (overrides --factor/--seconds)")
    ap.add_argument("--poison", type=int, default=1_000_000, help="the poison user's events")
    ap.add_argument("--timeout", type=float, default=900.0, help="drain allowance, seconds")
    ap.add_argument("--window", type=float, default=30.0,
                    help="seconds per line of the canary timeline")
    ap.add_argument("--quiet", action="store_true", help="no per-second readings")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="journey-overload-"))
    with EmbeddedBroker(log_path=workdir / "tansu.log") as broker:
        wait_for_broker(broker.bootstrap, 15.0)
        t = tag()
        settings = Settings().with_overrides(broker=broker.bootstrap, app_id=f"overload-{t}",
                                             topic_prefix=f"overload-{t}.")
        topics = all_topics(settings)
        asyncio.run(create_topics(broker.bootstrap,
                                  [topics.events, topics.repartition, *topics.outputs()],
                                  PARTITIONS))
        worker = start_worker(settings, workdir, log_level="WARNING")
        try:
            worker.wait_ready(partitions=PARTITIONS, timeout=120)
            rate = steady_rate(settings, worker, args.users, args.steady)
            events = args.burst or int(args.factor * rate * args.seconds)
            print(f"steady: {rate:,.0f} events/s over {args.steady:,} events; RSS "
                  f"{rss_mib(worker.proc.pid):.0f} MiB; burst of {events:,} + poison "
                  f"{args.poison:,} ({PARTITIONS} partitions, {os.cpu_count()} CPUs)",
                  flush=True)
            burst = Burst(t, args.users, events, args.poison)
            report = run_burst(settings, worker, burst, drain_timeout=args.timeout,
                               log=None if args.quiet else lambda s: print(s, flush=True))
            raw = state_record(settings, burst.poison)
            for line in report.lines():
                print(line)
            print(f"canary delay by when it was produced ({args.window:.0f}s windows):")
            for line in report.canary_windows(args.window):
                print(line)
            if raw is not None:
                state = codec.loads(raw)
                print(f"poison user: {len(raw):,} bytes encoded (ceiling from the caps "
                      f"{state_ceiling(settings):,}), orders {state.orders:,} "
                      f"(produced {burst.purchases[burst.poison]:,}), dedupe window "
                      f"{len(state.recent_ids) // 8} ids, order log "
                      f"{len(state.order_log) // 24} orders")
            else:
                print("poison user: no changelog record found")
            if report.drain_seconds is not None and rate:
                print(f"drain rate {burst.total / report.drain_seconds:,.0f} events/s vs "
                      f"steady {rate:,.0f} (ratio "
                      f"{burst.total / report.drain_seconds / rate:.2f})")
        finally:
            if worker.returncode is None:
                worker.terminate(timeout=60)
            print(f"worker log: {worker.log_path}")


if __name__ == "__main__":
    main()
