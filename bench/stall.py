"""The stall scenario of issue 10, repeated: a real purchase history sent into a running
worker, SIGKILL while it dead-letters it, a restart; does the restarted worker catch up?

    .venv/bin/python bench/stall.py [--runs 10] [--customers 8000] [--seed 1]
                                    [--kill-after S] [--keep DIR]

Each run starts its own embedded broker and worker (wall-clock ticks on, so the 1997-98
CDNOW purchases are dead-lettered as ``too_late``), sends the purchases of ``--customers``
CDNOW customers with the test harness's producer, kills the worker once a random 10-90% of
them are dead-lettered (or ``--kill-after`` seconds after the sending began), and
supervises its replacement like an orchestrator: a worker
that exits (a fault it reported, code 3) is restarted and counted. A run ends caught up
(fresh sentinels behind the history answer on /users) or not within the bound. Prints one
line per run and a summary; exits 1 if any run did not catch up or a worker exited with
another code than 3. The topics are left for the worker to create (``--create-topics``
creates them first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from real_data import cdnow_transactions, purchase_events

from agents.broker import EmbeddedBroker
from agents.kafka.topics import create_topics
from agents.testing.kafka_io import topic_suffixes
from agents.testing.restarts import FloodReport, run_history_flood
from agents.testing.workers import PARTITIONS, Workers
from streams.settings import Settings


def one_run(events: list[dict], seed: int, create: bool, keep: Path | None,
            kill_after: float | None) -> FloodReport:
    rng = random.Random(seed)
    share = rng.uniform(0.1, 0.9)
    with (contextlib.nullcontext(str(keep / f"run-{seed}")) if keep is not None
          else tempfile.TemporaryDirectory(prefix="journey-stall-")) as tmp:
        Path(tmp).mkdir(parents=True, exist_ok=True)
        with EmbeddedBroker(log_path=Path(tmp) / "tansu.log") as broker:
            tag = uuid.uuid4().hex[:8]
            settings = Settings().with_overrides(broker=broker.bootstrap,
                                                 app_id=f"stall-{tag}",
                                                 topic_prefix=f"stall-{tag}.")
            if create:
                names = [settings.topic_prefix + s for s in topic_suffixes(settings)]
                asyncio.run(create_topics(broker.bootstrap, names, PARTITIONS))
            pool = Workers(Path(tmp))
            try:
                return run_history_flood(settings, pool, events, seed=seed,
                                         kill_share=None if kill_after else share,
                                         kill_after=kill_after)
            finally:
                pool.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--customers", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--create-topics", action="store_true")
    parser.add_argument("--kill-after", type=float, default=None, metavar="S",
                        help="kill S seconds after the sending began, not at a share")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep each run's broker and worker logs under DIR")
    args = parser.parse_args()
    transactions = cdnow_transactions()
    rng = random.Random(args.seed)
    chosen = set(rng.sample(sorted({t.customer_id for t in transactions}), args.customers))
    events = list(purchase_events(t for t in transactions if t.customer_id in chosen))
    print(f"{len(events)} CDNOW purchases of {args.customers} customers per run", flush=True)
    failures = 0
    for i in range(args.runs):
        report = one_run(events, args.seed * 1000 + i, args.create_topics, args.keep,
                         args.kill_after)
        ok = report.caught_up_seconds is not None and all(c == 3 for c in report.exits)
        failures += not ok
        print(f"run {i + 1}: {'ok' if ok else 'FAILED'}: {report.line()}", flush=True)
    print(f"{args.runs - failures} of {args.runs} runs caught up, every exit loud (code 3)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
