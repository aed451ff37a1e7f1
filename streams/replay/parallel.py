"""Replay with partitions spread over worker processes, same outputs as the serial feed.

Partitions share nothing but journey's own news: referral credits and identity stitches
and merges, each processed by another partition at the moment the event behind it is,
so their effect depends on where that partition stands then. When no event names a
referrer or stitches two ids, no news can arise, and each partition's events, in their
global order, give the same state and the same outputs whichever process runs them.
Otherwise the serial feed runs (and a worker that meets news anyway aborts the parallel
attempt before anything is written).

Each worker drains its partitions' outputs through its own copy of the replay's sink:
the counts stay with the worker, and what must come out in order (alerts, transitions,
dead letters, churn models) is tagged with the index of the event that produced it, as
finished JSON lines when the replay writes lines (:class:`LineWriter`), as records for
any other writer, and not at all for one that drops them. The parent merges the tagged
outputs in index order into its own writers and adds up the counts, so files, counts and
their order are those of the serial feed. Workers are forked: they read the decoded
events and the fresh processors from the parent's memory, spill their tagged outputs to
a temporary file as they go, and send back the processors they ran and their counts.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO, cast

from streams.collector import SWEEP_EVERY, gc_paused, sweep_young
from streams.core import identity
from streams.core.churn.model import ChurnModel
from streams.core.event import Event
from streams.core.outputs import Outputs, drain
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.core.state import UserState
from streams.replay.engine import LineWriter, Replay, Summary, Writer, drops

# Below this many events process start-up costs more than it saves.
MIN_EVENTS = 20_000
# Events held in memory for the workers; a bigger input takes the serial path, which
# spills sorted runs to disk (see sources.time_ordered).
MAX_EVENTS = 2_000_000
SPILL_EVERY = 5_000  # tagged outputs per pickled block


class _NewsMet(Exception):
    """A worker produced news for another partition: partitions are not independent."""


# (event index, alerts, historical alerts, transitions, dead letters, churn models): each
# output is finished lines (bytes), records (a list) or None; see _Capture
Tagged = tuple[int, Any, Any, Any, Any, list[tuple[int, ChurnModel]]]
# the Summary's counts a worker's drain adds to; the parent owns the rest
_WORKER_COUNTS = ("applied", "duplicates", "transitions", "refits", "dead_letters", "alerts",
                  "suppressed", "reactivations", "ignored", "stitches")


@dataclass(slots=True)
class _Result:
    spilled: Path  # the worker's Tagged outputs, in event order, in pickled blocks
    summary: Summary  # what its drain counted (churn models come tagged, in order)
    processors: dict[int, PartitionProcessor]


class _Capture:
    """Stands in for one of the replay's writers in a worker, keeping per event what the
    parent's writer will need."""

    __slots__ = ("encode", "items", "keep")

    def __init__(self, writer: Writer) -> None:
        self.items: list[Any] = []
        self.keep = not drops(writer)
        self.encode = writer.encode if isinstance(writer, LineWriter) else None

    def __call__(self, record: dict[str, Any]) -> None:
        if self.keep:
            self.items.append(record if self.encode is None else self.encode(record))

    def take(self) -> Any:
        items = self.items
        if not items:
            return None
        self.items = []
        return b"".join(items) if self.encode is not None else items


def _write(writer: Writer, taken: Any) -> None:
    if taken is None:
        return
    if isinstance(taken, bytes):
        writer.lines(taken)  # type: ignore[attr-defined]  # a LineWriter's, by _Capture
    else:
        for record in taken:
            writer(record)


def default_jobs(partitions: int) -> int:
    """One process per core this process may run on, up to the partition count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    return max(1, min(cores, partitions))


def crosses_partitions(event: Event) -> bool:
    """Whether the event can send news to another partition: it names a referrer (a
    credit when the user buys) or says two ids are one person (a stitch)."""
    referred_by = event.properties.get("referred_by")
    return (isinstance(referred_by, str) and bool(referred_by)) \
        or identity.stitch_source(event) is not None


def feed(replay: Replay, events: Iterable[Event], until: float | None = None,
         jobs: int | None = None, min_events: int = MIN_EVENTS) -> bool:
    """``replay.feed(events, until)``, with partitions in ``jobs`` processes when that is
    safe and worth it. Must be the replay's first feed. Returns whether it ran parallel."""
    with gc_paused():  # (the events read, then the workers' states: see streams.collector)
        return _feed(replay, events, until, jobs, min_events)


def _feed(replay: Replay, events: Iterable[Event], until: float | None, jobs: int | None,
          min_events: int) -> bool:
    n_parts = replay.settings.partitions
    jobs = min(jobs or default_jobs(n_parts), n_parts)
    it = iter(events)
    taken: list[Event] = []
    news = False
    for e in it:
        taken.append(e)
        news = news or crosses_partitions(e)
        if len(taken) >= MAX_EVENTS:
            break
    big = len(taken) >= MAX_EVENTS
    if jobs < 2 or big or news or len(taken) < min_events or replay.track_series \
            or replay.summary.read or "fork" not in multiprocessing.get_all_start_methods():
        replay.feed(chain(taken, it) if big else taken, until)
        return False
    summary = replay.summary
    kept: list[Event] = []
    for e in taken:
        summary.read += 1
        if until is not None and e.occurred_at > until:
            summary.after_until += 1
            summary.came_back.add(e.user_id)
        else:
            kept.append(e)
    spill = Path(tempfile.mkdtemp(prefix="journey-parallel-"))
    try:
        try:
            results = _run(replay, kept, jobs, spill)
        except _NewsMet:
            summary.read = summary.after_until = 0
            summary.came_back.clear()
            replay.feed(taken, until)
            return False
        for result in results:
            for p, proc in result.processors.items():
                replay.processors[p] = proc
                replay.stores[p] = cast(dict[str, UserState], proc.store)  # a replay's are dicts
            for name in _WORKER_COUNTS:
                mine = getattr(result.summary, name)
                if isinstance(mine, Counter):
                    getattr(summary, name).update(mine)
                else:
                    setattr(summary, name, getattr(summary, name) + mine)
        writers = (replay.alerts_to, replay.historical_to, replay.transitions_to,
                   replay.dead_letters_to)
        for tagged in heapq.merge(*(_read(r.spilled) for r in results), key=_index):
            for writer, taken in zip(writers, tagged[1:5], strict=True):
                _write(writer, taken)
            summary.churn_models.extend(tagged[5])
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return True


def _index(item: Tagged) -> int:
    return item[0]


def _read(path: Path) -> Iterator[Tagged]:
    with open(path, "rb") as fh:
        while True:
            try:
                block: list[Tagged] = pickle.load(fh)
            except EOFError:
                return
            yield from block


# what the forked workers of _run read (set in the parent just before the fork)
_job: tuple[Replay, list[Event], int, Path] | None = None


def _run(replay: Replay, events: list[Event], jobs: int, spill: Path) -> list[_Result]:
    global _job
    _job = (replay, events, jobs, spill)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return pool.map(_work, range(jobs))
    finally:
        _job = None


def _work(job: int) -> _Result:
    """One worker: the partitions ``p`` with ``p % jobs == job``, over all events."""
    assert _job is not None
    replay, events, jobs, spill = _job
    path = spill / f"job-{job}.pkl"
    with open(path, "wb") as fh:
        summary, processors = _replay_share(replay, events, jobs, job, fh)
    return _Result(path, summary, processors)


def _replay_share(replay: Replay, events: list[Event], jobs: int, job: int,
                  fh: BinaryIO) -> tuple[Summary, dict[int, PartitionProcessor]]:
    n_parts = replay.settings.partitions
    processors = replay.processors
    received_at = replay.received_at
    # this process's copy of the replay becomes the sink: its own counts, captured writers
    summary = replay.summary = Summary()
    captures = (_Capture(replay.alerts_to), _Capture(replay.historical_to),
                _Capture(replay.transitions_to), _Capture(replay.dead_letters_to))
    (replay.alerts_to, replay.historical_to, replay.transitions_to,
     replay.dead_letters_to) = captures
    alerts, historical, transitions, dead = captures
    models = summary.churn_models
    out = Outputs(alert_records=replay.out.alert_records,
                  transition_records=replay.out.transition_records)
    tagged: list[Tagged] = []
    gc.disable()  # (a worker process: see streams.collector)
    for i, event in enumerate(events):
        p = partition_for(event.user_id, n_parts)
        if p % jobs != job:
            continue
        if not i % SWEEP_EVERY:
            sweep_young()
        processors[p].process(event, out, received_at=received_at)
        if out.feedback:
            raise _NewsMet
        drain(out, replay)
        if alerts.items or historical.items or transitions.items or dead.items or models:
            tagged.append((i, alerts.take(), historical.take(), transitions.take(),
                           dead.take(), models[:]))
            models.clear()
            if len(tagged) >= SPILL_EVERY:
                pickle.dump(tagged, fh, protocol=pickle.HIGHEST_PROTOCOL)
                tagged = []
    pickle.dump(tagged, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return summary, {p: processors[p] for p in range(n_parts) if p % jobs == job}
