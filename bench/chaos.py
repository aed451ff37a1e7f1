"""Chaos soak: SIGKILL workers at random points of a known history, compare with replay.

    .venv/bin/python bench/chaos.py [--users 2000] [--kills 10] [--pair] [--seed 7] [--segment]
                                    [--at-start [--store rocksdb://]]

The same run as ``tests/kafka/test_chaos.py`` (``agents/testing/chaos.py``), longer:
more users, more kills. Starts its own embedded broker; prints M, N, lost, double-counted,
wrong states, wrong alerts and the recovery time of every kill. Exits 1 when anything was
lost, counted twice or wrong. ``--at-start`` kills each replacement at a random moment of
its own start instead (``agents/testing/restarts.py``), and prints where the kills landed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.broker import EmbeddedBroker
from agents.kafka.topics import create_topics
from agents.testing.chaos import run_chaos
from agents.testing.kafka_io import topic_suffixes
from agents.testing.restarts import run_start_kills
from agents.testing.workers import PARTITIONS, Workers
from streams.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pair", action="store_true",
                        help="two workers share the partitions; kill one at a time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--segment", action="store_true",
                        help="send the history as Segment calls, anonymous visitors "
                             "stitched into their users at login")
    parser.add_argument("--at-start", action="store_true",
                        help="kill each replacement at a random moment of its start: "
                             "before it answers, while it restores the table, just after")
    parser.add_argument("--store", default="memory://",
                        help="the table store of the workers, with --at-start")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="write the broker's and workers' logs here and keep them")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(args.keep)) if args.keep is not None
          else tempfile.TemporaryDirectory(prefix="journey-chaos-")) as tmp, \
            EmbeddedBroker(log_path=Path(tmp) / "tansu.log") as broker:
        tag = uuid.uuid4().hex[:8]
        settings = Settings().with_overrides(broker=broker.bootstrap, app_id=f"chaos-{tag}",
                                             topic_prefix=f"chaos-{tag}.")
        names = [settings.topic_prefix + s for s in topic_suffixes(settings)]
        asyncio.run(create_topics(broker.bootstrap, names, PARTITIONS))
        pool = Workers(Path(tmp))
        try:
            if args.at_start:
                report, statuses = run_start_kills(settings, pool, Path(tmp), users=args.users,
                                                   kills=args.kills, seed=args.seed,
                                                   store=args.store)
                print("/health of each worker when it was killed (None: not answering "
                      "yet; 503: restoring):", statuses)
            else:
                report = run_chaos(settings, pool, Path(tmp), users=args.users,
                                   kills=args.kills, pair=args.pair, seed=args.seed,
                                   segment=args.segment)
        finally:
            pool.cleanup()
    print(report.line())
    for example in [] if report.segment else report.examples:
        print("  re-sent copy differs:", example)
    for diff in report.diffs[:10]:
        print("  state differs from replay:", diff)
    for detail in report.details:
        print("  alerts:", detail)
    bad = report.lost or report.double or report.wrong_states or report.wrong_alerts
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
