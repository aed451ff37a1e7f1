"""``journey replay``: file handling, progress and summary around
:class:`streams.replay.engine.Replay`."""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from agents.cli.progress import ProgressBar
from streams.core.event import Event
from streams.replay.engine import Replay, Summary, Writer
from streams.replay.sources import BadLine, InputError, read_events, time_ordered
from streams.settings import Settings


def _writer(stack: ExitStack, path: Path | None) -> Writer:
    if path is None:
        return lambda _record: None
    path.parent.mkdir(parents=True, exist_ok=True)
    # entered into the caller's ExitStack, which closes it
    fh: IO[bytes] = stack.enter_context(
        gzip.open(path, "wb") if path.suffix == ".gz"  # type: ignore[arg-type]  # noqa: SIM115
        else open(path, "wb"))  # noqa: SIM115
    write = fh.write
    dumps = orjson.dumps

    def sink(record: dict[str, Any]) -> None:
        write(dumps(record))
        write(b"\n")

    return sink


class Progress:
    """Events read, on a progress line (see :mod:`agents.cli.progress`)."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.bar = ProgressBar("reading", total_bytes, enabled)
        self.done = 0
        self.count = 0

    def step(self, nbytes: int) -> None:
        self.done += nbytes
        self.count += 1
        if self.bar.enabled and self.count % 4096 == 0:
            self.bar.draw(self.done, self.count, f"{self.count:>10,} events")

    def close(self) -> None:
        self.bar.close()


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    inputs: list[Path] = args.inputs
    for path in inputs:
        if not path.exists():
            print(f"journey replay: {path}: no such file", file=sys.stderr)
            return 2
    received_at = time.time()  # the shell's one clock read: bounds future timestamps
    total = sum(p.stat().st_size for p in inputs)
    progress = Progress(total, enabled=sys.stderr.isatty() and not args.no_progress)
    started = time.monotonic()
    with ExitStack() as stack:
        replay = Replay(settings, received_at,
                        on_alert=_writer(stack, args.alerts_out),
                        on_transition=_writer(stack, args.transitions_out),
                        on_dead_letter=_writer(stack, args.dead_letter_out),
                        track_series=args.report is not None)

        def good_events() -> Iterator[Event]:
            for item, size in read_events(inputs, settings.max_event_bytes):
                progress.step(size)
                if isinstance(item, BadLine):
                    replay.bad_line(item)
                else:
                    yield item

        try:
            replay.feed(time_ordered(good_events()), until=args.until)
        except InputError as exc:
            progress.close()
            print(f"journey replay: {exc}", file=sys.stderr)
            return 2
        progress.close()
        as_of = replay.finish(args.until)
        if args.state_out is not None:
            write_state = _writer(stack, args.state_out)
            for record in replay.snapshots(as_of):
                write_state(record)
    elapsed = time.monotonic() - started
    summary = replay.summary
    print(format_summary(summary, elapsed), file=sys.stderr)
    if args.summary_json is not None:
        args.summary_json.write_bytes(orjson.dumps(
            {**summary.as_dict(), "seconds": round(elapsed, 3)}, option=orjson.OPT_INDENT_2))
    if args.report is not None:
        from streams.replay.report import write_report

        write_report(args.report, replay, as_of)
    return 0


def format_summary(s: Summary, seconds: float) -> str:
    rate = s.read / seconds if seconds > 0 else 0.0
    dead = sum(s.dead_letters.values())
    lines = [
        f"events read      {s.read:>12,}   ({rate:,.0f}/s over {seconds:.1f}s)",
        f"applied          {s.applied:>12,}",
        f"duplicates       {s.duplicates:>12,}",
        f"after --until    {s.after_until:>12,}",
        f"dead letters     {dead:>12,}   "
        + ", ".join(f"{k}={v}" for k, v in sorted(s.dead_letters.items())),
        f"users            {s.users:>12,}   "
        + ", ".join(f"{k}={v}" for k, v in sorted(s.stages.items())),
        "alerts           " + (", ".join(f"{k}={v}" for k, v in sorted(s.alerts.items()))
                               or "none"),
        "suppressed       " + (", ".join(f"{k}={v}" for k, v in sorted(s.suppressed.items()))
                               or "none"),
        "reactivations    " + (", ".join(f"{k}={v}" for k, v in
                                         sorted(s.reactivations.items())) or "none"),
    ]
    if s.stitches or s.ignored:  # Segment identity calls: only when the input had some
        lines += [
            "identity         " + (", ".join(f"{k}={v}" for k, v in sorted(s.stitches.items()))
                                   or "none"),
            "ignored          " + (", ".join(f"{k}={v}" for k, v in sorted(s.ignored.items()))
                                   or "none")]
    return "\n".join(lines)
