"""The ``journey`` command line.

Kafka-side commands import the shell lazily, so ``journey replay`` starts fast and runs
without any broker.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from streams import __version__
from streams.settings import Settings, settings_markdown


def parse_instant(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 instant: {text!r}") from exc
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (write Z or +hh:mm)")
    return dt.timestamp()


def _load_settings(args: argparse.Namespace) -> Settings:
    try:
        return Settings.load(getattr(args, "config", None))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"journey: configuration: {exc}") from exc


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.replay_cli import run

    return run(args, _load_settings(args))


def cmd_config(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    import orjson

    sys.stdout.write(orjson.dumps(_load_settings(args).public_dict(),
                                  option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        fn = getattr(importlib.import_module(module), name)
        return int(fn(args, _load_settings(args)) or 0)

    return run


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
    r.add_argument("--config", type=Path)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_replay)

    c = sub.add_parser("config", help="print the effective settings")
    c.add_argument("--config", type=Path)
    c.add_argument("--markdown", action="store_true", help="the configuration reference")
    c.set_defaults(func=cmd_config)

    _add_kafka_commands(sub)
    return p


def _add_kafka_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser("worker", help="run the stream processor")
    w.add_argument("--config", type=Path)
    w.set_defaults(func=_lazy("agents.worker_cli", "run_worker"))

    b = sub.add_parser("broker", help="run the embedded Kafka-compatible broker")
    b.add_argument("--port", type=int, default=0)
    b.add_argument("--config", type=Path)
    b.set_defaults(func=_lazy("agents.worker_cli", "run_broker"))

    d = sub.add_parser("demo", help="embedded broker + worker + simulated storefront")
    d.add_argument("--duration", type=float, default=None, help="seconds to run, then stop")
    d.add_argument("--speed", type=float, default=None, help="simulated days per second")
    d.add_argument("--config", type=Path)
    d.set_defaults(func=_lazy("agents.demo.run", "run_demo"))

    pr = sub.add_parser("produce", help="validate and send a JSONL file of events")
    pr.add_argument("file", type=Path)
    pr.add_argument("--topic", default=None)
    pr.add_argument("--config", type=Path)
    pr.set_defaults(func=_lazy("agents.produce_cli", "run_produce"))

    t = sub.add_parser("tail", help="pretty-print alerts from a topic")
    t.add_argument("topic", nargs="?", default=None)
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--filter", action="append", default=[], help="FIELD=VALUE")
    t.add_argument("--max", type=int, default=None, help="stop after this many records")
    t.add_argument("--config", type=Path)
    t.set_defaults(func=_lazy("agents.tail_cli", "run_tail"))

    s = sub.add_parser("synth", help="write a synthetic storefront history (JSONL)")
    s.add_argument("out", type=Path)
    s.add_argument("--users", type=int, default=1000)
    s.add_argument("--days", type=float, default=180.0)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--start", type=parse_instant, default=None)
    s.add_argument("--segment-share", type=float, default=0.0)
    s.add_argument("--config", type=Path)
    s.set_defaults(func=_lazy("streams.synth_cli", "run_synth"))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"journey: interrupted after {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
