"""``journey produce FILE.jsonl [--topic T]``: validate a JSONL file and send its good lines.

Each non-blank line is checked by the worker's decoder. Bad lines are reported on stderr as
``FILE:LINE: reason: message`` and not sent; good lines are sent byte for byte as they are
in the file (never re-encoded), keyed by user id. A Segment batch envelope (the body a
library posts to /v1/batch) is sent as its calls, each a record keyed by its user.

Events older than ``allowed_lateness_seconds`` behind now are not sent either: a running
worker would dead-letter them as ``too_late``. History goes in with ``journey bootstrap``;
``--allow-old`` sends them anyway, and so does a deployment whose producer keeps the clock
(``tick_interval_seconds = 0``), whose lateness the wall clock does not judge.

Exit status:
  0  every valid line was sent and acknowledged (rejected lines only warn, so one typo
     does not make a pipeline retry a file whose good lines are already in);
  1  sending failed: the broker was unreachable or did not acknowledge some lines. Running
     the same file again is safe, since journey drops repeats by event id;
  2  unusable input or configuration: no such file, not JSON lines, no broker configured,
     or history: none of the first 1000 valid lines is recent enough to send.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from agents.cli.progress import ProgressBar
from agents.client.producer import InvalidEvent, JourneyProducer
from streams.core.decode import decode
from streams.core.segment_batch import batch_calls
from streams.replay.sources import GIVE_UP_AFTER, NOT_JSON, InputError, open_lines
from streams.settings import Settings

PROG = "journey produce"
_BOM = b"\xef\xbb\xbf"
TOO_LATE = "too_late"
SHOWN_BAD_LINES = 100  # invalid lines listed; the rest, and too_late ones, only counted
FLUSH_TIMEOUT = 300.0
BOOTSTRAP_TIMEOUT_MS = 10_000  # a live broker answers in milliseconds, even over TLS/SASL


def _counts(sent: int, rejected: int) -> str:
    return f"{sent:>10,} sent {rejected:>8,} rejected"


class _Delivery:
    """Counts broker acknowledgements and failures as kafka-python's sender thread reports."""

    def __init__(self) -> None:
        self.acked = 0
        self.failed = 0
        self.first_error: BaseException | None = None

    def ok(self, _metadata: Any) -> None:
        self.acked += 1  # one writer (the sender thread); read only after flush

    def error(self, exc: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = exc


def _calls(line: bytes, max_bytes: int) -> list[bytes]:
    """A Segment batch envelope's calls, each to be sent as a record of its own keyed by
    its user (streams/core/segment_batch.py); any other line as it is."""
    if b'"batch"' not in line:
        return [line]
    calls = batch_calls(line, decode(line, max_bytes=max_bytes))
    return [line] if calls is None else calls


def _err(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


def run_produce(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not settings.broker:
        _err("no Kafka broker configured: set JOURNEY_BROKER=host:port (or `broker` in the "
             "config file). `journey produce` does not start the embedded broker; "
             "`journey broker` and `journey demo` start one.")
        return 2
    try:
        fh = open_lines(path)
    except InputError as exc:
        _err(str(exc))
        return 2
    try:
        producer = JourneyProducer(settings, topic=args.topic,
                                   bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except ValueError as exc:  # e.g. an unknown security_protocol
        fh.close()
        _err(f"configuration: {exc}")
        return 2
    except KafkaError as exc:
        fh.close()
        _err(f"cannot connect to {settings.broker}: {exc!r}")
        return 1
    old = bool(getattr(args, "allow_old", False))  # programmatic callers may omit it
    not_before = None if old or settings.tick_interval_seconds == 0 else (
        time.time() - settings.allowed_lateness_seconds)
    try:
        with fh:
            return _send_file(path, fh, producer, not_before)
    finally:
        # Bounded: after a failed flush, waiting forever for a dead broker helps nobody.
        producer.close(timeout=10.0)


def _send_file(path: Path, fh: Any, producer: JourneyProducer, not_before: float | None) -> int:
    progress = ProgressBar("sending", path.stat().st_size, enabled=sys.stderr.isatty())
    # Progress in bytes of the file on disk: the compressed position for a .gz.
    compressed = getattr(fh, "fileobj", None)
    delivery = _Delivery()
    reasons: Counter[str] = Counter()
    sent = read = listed = 0
    json_seen = False
    started = time.monotonic()
    try:
        for number, raw in enumerate(fh, start=1):
            read = compressed.tell() if compressed is not None else read + len(raw)
            line = raw.rstrip(b"\r\n")
            if number == 1 and line.startswith(_BOM):  # files saved by some Windows editors
                line = line[len(_BOM):]
            if not line.strip():
                continue
            for piece in _calls(line, producer.max_bytes):
                try:
                    future = producer.send_raw(piece, not_before=not_before)
                except InvalidEvent as bad:
                    reasons[bad.reason] += 1
                    if bad.reason == TOO_LATE:  # old, not bad: counted, and told about once
                        if not sent and reasons[TOO_LATE] >= GIVE_UP_AFTER:
                            progress.close()
                            _err(f"{path}: the first {GIVE_UP_AFTER} valid events are history; "
                                 f"nothing was sent. {_old_advice()}")
                            return 2
                        continue
                    if bad.reason not in NOT_JSON:
                        json_seen = True
                    elif not json_seen and reasons.total() >= GIVE_UP_AFTER:
                        progress.close()
                        _err(f"{path}: not JSON lines (none of the first {GIVE_UP_AFTER} lines "
                             "is JSON); nothing was sent")
                        return 2
                    shown = listed < SHOWN_BAD_LINES
                    if shown:
                        listed += 1
                        progress.clear()
                        print(f"{path}:{number}: {bad.reason}: {bad.message}", file=sys.stderr)
                    progress.draw(read, sent, _counts(sent, reasons.total()), force=shown)
                    continue
                json_seen = True
                future.add_callback(delivery.ok)
                future.add_errback(delivery.error)
                sent += 1
                if sent % 1024 == 0:
                    progress.draw(read, sent, _counts(sent, reasons.total()))
        progress.draw(read, sent, _counts(sent, reasons.total()), force=True)
        producer.flush(FLUSH_TIMEOUT)
    except (OSError, EOFError) as exc:  # a truncated .gz, a disk error mid-file
        progress.close()
        with contextlib.suppress(KafkaError):  # reported as unacknowledged just below
            producer.flush(FLUSH_TIMEOUT)
        _err(f"{path}: cannot read: {exc}; of the valid lines before it, "
             f"{delivery.acked:,} of {sent:,} were sent")
        return 2
    except KafkaError as exc:
        progress.close()
        _err(f"sending to {producer.topic} failed: {exc!r}")
        return 1
    progress.close()
    return _summary(path, producer.topic, delivery, sent, reasons, listed,
                    time.monotonic() - started)


def _summary(path: Path, topic: str, delivery: _Delivery, sent: int, reasons: Counter[str],
             listed: int, seconds: float) -> int:
    rejected = reasons.total()
    rate = delivery.acked / seconds if seconds > 0 else 0.0
    by_reason = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
    print(f"sent      {delivery.acked:>12,}   to {topic} ({rate:,.0f}/s over {seconds:.1f}s)",
          file=sys.stderr)
    print(f"rejected  {rejected:>12,}   {by_reason}".rstrip(), file=sys.stderr)
    invalid = rejected - reasons[TOO_LATE]
    if invalid > listed:
        print(f"(only the first {listed} of the {invalid:,} invalid lines are listed above)",
              file=sys.stderr)
    unacked = sent - delivery.acked
    if unacked:
        _err(f"{unacked:,} lines were not acknowledged by the broker (first error: "
             f"{delivery.first_error!r}); sending the file again is safe")
        return 1
    old = reasons[TOO_LATE]
    if old:
        _err(f"warning: {old:,} events in {path} were not sent: {_old_advice()}")
    if rejected > old:
        _err(f"warning: {rejected - old:,} invalid lines in {path} were not sent")
    return 2 if old and not sent else 0


def _old_advice() -> str:
    return ("events older than allowed_lateness_seconds behind now would be dead-lettered "
            "by a running worker as too_late. To go live with history, load it with "
            "`journey bootstrap` (docs/going-live.md); --allow-old sends them anyway")
