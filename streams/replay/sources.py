"""Reading JSONL history (plain or gzip) and putting it in event-time order.

Lines are decoded once. When the input holds more events than fit the in-memory budget,
sorted runs are spilled to temporary files and merged, so replay of a file larger than
memory still processes in event-time order.
"""

from __future__ import annotations

import gzip
import heapq
import math
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streams.core.decode import Rejection, decode
from streams.core.event import Event
from streams.core.segment_batch import batch_calls


class InputError(Exception):
    """The input cannot be used at all (missing, unreadable, not JSON lines)."""


@dataclass(slots=True)
class BadLine:
    file: str
    line: int
    raw: bytes
    rejection: Rejection


def open_lines(path: Path) -> IO[bytes]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    try:
        if path.suffix == ".gz":
            # the caller closes it (open_lines is used in a with statement)
            fh: IO[bytes] = gzip.open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
            fh.peek(1)  # type: ignore[attr-defined]
            return fh
        return open(path, "rb")
    except (OSError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc


NOT_JSON = frozenset({"not_json", "invalid_utf8"})
GIVE_UP_AFTER = 1000  # leading lines that are not JSON before a file counts as unusable


def read_events(paths: list[Path], max_bytes: int, *, latest: float = math.inf,
                on_late: Callable[[Event, str, int, bytes], None] | None = None,
                ) -> Iterator[tuple[Event | BadLine, int]]:
    """Decoded events (or bad lines) with the size of their line, in file order.

    A file in which no line is JSON at all is unusable input, not a file of bad events.
    Events come without a Segment call's ``sentAt`` (a file has no receipt times).
    ``on_late`` is told the file, line and text of each event stamped after ``latest``
    (which the core will refuse as stamped in the future), so that its dead letter can
    say where it was; the core still judges it, after its duplicate check, as a worker's
    does.
    """
    def note(item: Event | BadLine, path: Path, n: int, text: bytes) -> Event | BadLine:
        if isinstance(item, BadLine):
            return item
        # a file has no receipt times, so no device clock is measured from a Segment call's
        # sentAt here (see clock.PartitionClock.deskewed): a call is taken as stamped
        item.sent_at = None
        if on_late is not None and item.occurred_at > latest:
            on_late(item, str(path), n, text)
        return item

    for path in paths:
        pending: list[BadLine] = []  # bad lines before the first JSON line
        json_seen = False
        with open_lines(path) as fh:
            try:
                for n, raw in enumerate(fh, start=1):
                    line = raw.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    got = decode(line, max_bytes=max_bytes)
                    calls = batch_calls(line, got)
                    if calls is not None:  # a Segment batch envelope: its calls, in order
                        json_seen = True
                        yield from _pending(pending)
                        size = len(raw)  # the line's bytes go with its first call
                        for call in calls:
                            one = decode(call, max_bytes=max_bytes)
                            yield note(BadLine(str(path), n, call, one)
                                       if isinstance(one, Rejection) else one,
                                       path, n, call), size
                            size = 0
                        continue
                    item = BadLine(str(path), n, line, got) if isinstance(got, Rejection) else got
                    if not json_seen:
                        if isinstance(item, BadLine) and item.rejection.reason in NOT_JSON:
                            pending.append(item)
                            if len(pending) >= GIVE_UP_AFTER:
                                break
                            continue
                        json_seen = True
                        yield from _pending(pending)
                    yield note(item, path, n, line), len(raw)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise InputError(f"{path}: cannot read: {exc}") from exc
        if pending:
            first = pending[0]
            raise InputError(f"{path}: not JSON lines (line {first.line}: "
                             f"{first.rejection.message})")


def _pending(held: list[BadLine]) -> Iterator[tuple[BadLine, int]]:
    """The bad lines held before the first JSON line, once one is seen; ``held`` empties."""
    for bad in held:
        yield bad, len(bad.raw)
    held.clear()


def time_ordered(events: Iterator[Event], budget: int = 2_000_000) -> Iterator[Event]:
    """``events`` sorted by event time, stable for equal times (arrival order)."""
    runs: list[str] = []
    chunk: list[tuple[float, int, Event]] = []
    for seq, e in enumerate(events):
        chunk.append((e.occurred_at, seq, e))
        if len(chunk) >= budget:
            runs.append(_spill(chunk))
            chunk = []
    chunk.sort(key=_key)
    if not runs:
        for _, _, e in chunk:
            yield e
        return
    runs.append(_spill(chunk))
    try:
        for _, _, e in heapq.merge(*(_read_run(r) for r in runs), key=_key):
            yield e
    finally:
        for r in runs:
            os.unlink(r)


def _key(item: tuple[float, int, Event]) -> tuple[float, int]:
    return item[0], item[1]


def _spill(chunk: list[tuple[float, int, Event]]) -> str:
    chunk.sort(key=_key)
    fd, name = tempfile.mkstemp(prefix="journey-run-", suffix=".pkl")
    with os.fdopen(fd, "wb") as fh:
        for i in range(0, len(chunk), 10_000):
            pickle.dump(chunk[i:i + 10_000], fh, protocol=pickle.HIGHEST_PROTOCOL)
    return name


def _read_run(name: str) -> Iterator[tuple[float, int, Event]]:
    with open(name, "rb") as fh:
        while True:
            try:
                block = pickle.load(fh)
            except EOFError:
                return
            yield from block
