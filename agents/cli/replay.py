"""``journey replay``: file handling, progress and summary around
:class:`streams.replay.engine.Replay`."""

from __future__ import annotations

import argparse
import gzip
import math
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from agents.cli.progress import ProgressBar
from streams import __version__
from streams.core.event import Event
from streams.core.timefmt import rfc3339
from streams.replay import parallel
from streams.replay.engine import LineWriter, Replay, Summary, Writer, drop
from streams.replay.sources import BadLine, InputError, read_events, time_ordered
from streams.settings import Settings


def writer(stack: ExitStack, path: Path | None) -> Writer:
    if path is None:
        return drop
    path.parent.mkdir(parents=True, exist_ok=True)
    # entered into the caller's ExitStack, which closes it
    fh: IO[bytes] = stack.enter_context(
        gzip.open(path, "wb") if path.suffix == ".gz"  # type: ignore[arg-type]  # noqa: SIM115
        else open(path, "wb"))  # noqa: SIM115
    return LineWriter(fh.write)


class Progress:
    """Events read and events replayed, on a progress line (see
    :mod:`agents.cli.progress`); ``lines``: plain lines, for a log without a terminal."""

    def __init__(self, total_bytes: int, enabled: bool, lines: bool = False) -> None:
        self.bar = ProgressBar("reading", total_bytes, enabled, lines)
        self.done = 0
        self.count = 0
        self.replayed = 0

    def step(self, nbytes: int) -> None:
        self.done += nbytes
        self.count += 1
        if self.bar.enabled and self.count % 4096 == 0:
            self._draw()

    def fed(self) -> None:
        """One event handed to the core (the sort holds events back until it has read
        enough, so this can trail reading by a lot)."""
        self.replayed += 1
        if self.bar.enabled and self.replayed % 4096 == 0:
            self._draw()

    def _draw(self) -> None:
        self.bar.draw(self.done, self.replayed,
                      f"{self.count:>10,} events, {self.replayed:>10,} replayed")

    def close(self) -> None:
        self.bar.close()


def feed_files(replay: Replay, paths: list[Path], settings: Settings, progress: Progress,
               until: float | None, ordered: bool = True, jobs: int = 1) -> None:
    """Decode the files into ``replay`` (bad lines to its dead letters): in event-time
    order, or with ``ordered=False`` in file order, as a live worker receives them.
    ``jobs`` other than 1 lets an ordered first feed spread partitions over processes
    (0: one per core; see :mod:`streams.replay.parallel`). Raises InputError for an
    unusable file."""

    def good_events() -> Iterator[Event]:
        latest = replay.received_at + settings.max_future_skew_seconds
        for item, size in read_events(paths, settings.max_event_bytes, latest=latest,
                                      on_late=replay.note_origin):
            progress.step(size)
            if isinstance(item, BadLine):
                replay.bad_line(item)
            else:
                yield item

    def counted(events: Iterator[Event]) -> Iterator[Event]:
        for e in events:
            progress.fed()
            yield e

    if ordered and jobs != 1:
        parallel.feed(replay, counted(time_ordered(good_events())), until, jobs or None)
        return
    replay.feed(counted(time_ordered(good_events()) if ordered else good_events()),
                until=until)


def run_facts(paths: list[Path], settings: Settings, received_at: float,
              **instants: float | None) -> dict[str, Any]:
    """What a backtest ran on, beside its settings: the report and the summary JSON carry
    it so that a result can be reproduced (the partition count moves which users share a
    model; the receipt bounds how far in the future an event may be stamped)."""
    return {"journey": __version__,
            "inputs": [{"file": str(p), "bytes": p.stat().st_size} for p in paths],
            "partitions": settings.partitions,
            **{name: None if t is None or math.isinf(t) else rfc3339(t)
               for name, t in instants.items()},
            "received_at": rfc3339(received_at)}


def missing(prog: str, paths: list[Path]) -> bool:
    for path in paths:
        if not path.exists():
            print(f"{prog}: {path}: no such file", file=sys.stderr)
            return True
    return False


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    inputs: list[Path] = args.inputs
    live: list[Path] = args.live or []
    if missing("journey replay", [*inputs, *live]):
        return 2
    if (live and args.cut_over is None) or (args.cut_over is not None and args.until
                                            is not None and args.until < args.cut_over):
        print("journey replay: --live needs --cut-over (where the history ends), and "
              "--until must not be before it", file=sys.stderr)
        return 2
    received_at = time.time()  # the shell's one clock read: bounds future timestamps
    total = sum(p.stat().st_size for p in [*inputs, *live])
    progress = Progress(total, enabled=sys.stderr.isatty() and not args.no_progress)
    started = time.monotonic()
    with ExitStack() as stack:
        replay = Replay(settings, received_at,
                        on_alert=writer(stack, args.alerts_out),
                        on_transition=writer(stack, args.transitions_out),
                        on_dead_letter=writer(stack, args.dead_letter_out),
                        track_series=args.report is not None,
                        live_from=math.inf if args.cut_over is not None else args.live_from,
                        on_historical=writer(stack, args.historical_alerts_out))
        try:
            if args.cut_over is None:
                feed_files(replay, inputs, settings, progress, args.until, jobs=args.jobs)
            else:  # as `journey bootstrap --until CUT` and then workers on the live input
                feed_files(replay, inputs, settings, progress, args.cut_over)
                replay.cut_over(args.cut_over, args.cut_over if args.live_from is None
                                else args.live_from)
                feed_files(replay, live, settings, progress, args.until, ordered=False)
        except InputError as exc:
            progress.close()
            print(f"journey replay: {exc}", file=sys.stderr)
            return 2
        progress.close()
        as_of = replay.finish(args.until)
        if args.state_out is not None:
            write_state = writer(stack, args.state_out)
            for record in replay.snapshots(as_of):
                write_state(record)
    elapsed = time.monotonic() - started
    summary = replay.summary
    print(format_summary(summary, elapsed), file=sys.stderr)
    run = run_facts([*inputs, *live], settings, received_at, until=args.until,
                    cut_over=args.cut_over, live_from=args.live_from)
    if args.summary_json is not None:
        args.summary_json.write_bytes(orjson.dumps(
            {"run": run, **summary.as_dict(), "seconds": round(elapsed, 3)},
            option=orjson.OPT_INDENT_2))
    if args.report is not None:
        from streams.replay.report import write_report

        write_report(args.report, replay, as_of, run)
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
        + ", ".join(f"{k}={v}" for k, v in sorted(s.stages.items()) if v),
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
