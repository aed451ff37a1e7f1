"""``journey replay``: the live worker's core, driven by event time over a history file.

Events are routed to the partition Kafka would give their user, so each partition's
processor sees what the live worker's would, in event-time order. Timers fire as event
time passes them, and ``until`` fires the ones due by the cut-off even when the log has
no later events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from streams.collector import SWEEP_EVERY, gc_paused, sweep_young
from streams.core.churn.model import ChurnModel
from streams.core.deadletter import dead_letter
from streams.core.event import Event
from streams.core.outputs import Outputs, Rejected, drain
from streams.core.partitioning import partition_for, partition_of
from streams.core.processor import PartitionProcessor
from streams.core.state import UserState
from streams.core.timefmt import rfc3339
from streams.core.uplift import Outcomes, Uplift, uplift
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.replay.sources import BadLine

DAY = 86400.0
Writer = Callable[[dict[str, Any]], None]  # where records of one kind go


def drop(_: dict[str, Any]) -> None:
    """The :data:`Writer` that keeps nothing."""
    return None


def drops(writer: Writer) -> bool:
    """Whether ``writer`` throws its records away (a parallel worker sends none back)."""
    return writer is drop


class LineWriter:
    """A :data:`Writer` of JSON lines: each record as one ``orjson`` line, handed to
    ``write``. A parallel replay's workers encode the lines themselves (``encode``) and the
    parent passes them on as they are (``lines``)."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write

    def __call__(self, record: dict[str, Any]) -> None:
        self.write(self.encode(record))

    @staticmethod
    def encode(record: dict[str, Any]) -> bytes:
        return orjson.dumps(record) + b"\n"

    def lines(self, data: bytes) -> None:
        """Lines ``encode`` made, joined."""
        self.write(data)


@dataclass(slots=True)
class Summary:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    after_until: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    transitions: int = 0
    reactivations: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    users: int = 0
    refits: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # Segment calls taken, not used
    stitches: Counter[str] = field(default_factory=Counter)  # identity outcomes
    # for the backtest report
    stage_series: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    alerts_per_day: dict[float, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    came_back: set[str] = field(default_factory=set)  # users active after `until`
    # each partition's churn model as each snapshot refit left it, in stream order
    churn_models: list[tuple[int, ChurnModel]] = field(default_factory=list)
    uplift: Uplift | None = None  # of recalls against the control group, at the end

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values; counts by key in key order (the same
        whichever order the keys were first met in, serial or parallel)."""
        return {"events_read": self.read, "applied": self.applied,
                "duplicates": self.duplicates, "after_until": self.after_until,
                "dead_letters": _sorted(self.dead_letters), "alerts": _sorted(self.alerts),
                "suppressed": _sorted(self.suppressed), "transitions": self.transitions,
                "reactivations": _sorted(self.reactivations),
                "users_by_stage": _sorted(self.stages),
                "users": self.users, "model_refits": self.refits,
                "ignored": _sorted(self.ignored), "identity": _sorted(self.stitches),
                "churn_models": [_churn_dict(p, m) for p, m in self.churn_models],
                "uplift": None if self.uplift is None else self.uplift.as_dict()}


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items()))


def _churn_dict(partition: int, m: ChurnModel) -> dict[str, Any]:
    q = m.quality
    return {"partition": partition, "fitted_at": rfc3339(m.fitted_at), "kind": m.kind,
            "rows": m.rows, "positives": m.positives,
            "declining_threshold": m.declining_threshold,
            "churned_threshold": m.churned_threshold,
            "quality": None if q is None else {"n": q.n, "auc": q.auc, "brier": q.brier,
                                               "base_rate": q.base_rate, "scorer": q.scorer}}


class Replay:
    """Drives one processor per partition; outputs go to the given sinks."""

    def __init__(self, settings: Settings, received_at: float, *,
                 on_alert: Writer = drop, on_transition: Writer = drop,
                 on_dead_letter: Writer = drop, track_series: bool = False,
                 live_from: float | None = None, on_historical: Writer = drop) -> None:
        """``live_from``: alerts dated before it are historical (``on_historical``, not
        ``on_alert``), as a worker after ``journey bootstrap`` treats them."""
        self.settings = settings
        self.received_at = received_at
        self.stores: list[dict[str, UserState]] = [{} for _ in range(settings.partitions)]
        self.processors = [PartitionProcessor(settings, store, p)
                           for p, store in enumerate(self.stores)]
        if live_from is not None:
            for proc in self.processors:
                proc.live_from = live_from
        self.alerts_to, self.transitions_to, self.dead_letters_to = (
            on_alert, on_transition, on_dead_letter)
        self.historical_to = on_historical
        self.summary = Summary()
        # records nobody writes are only counted: not built (see Outputs)
        self.out = Outputs(alert_records=not (drops(on_alert) and drops(on_historical)),
                           transition_records=not drops(on_transition))
        self.track_series = track_series
        self._next_day: float | None = None
        self._credits: list[Event] = []  # journey's own news on its way, in order
        # where the events stamped past the skew were read (see note_origin), in order
        self._origins: dict[tuple[str, str, float], list[tuple[str, int, bytes]]] = {}

    def bad_line(self, bad: BadLine) -> None:
        r = bad.rejection
        self.summary.dead_letters[r.reason] += 1
        self.dead_letters_to(dead_letter(
            r.reason, r.message, bad.raw, {"kind": "file", "file": bad.file, "line": bad.line},
            self.received_at, r.event_id, r.user_id))

    def _partition(self, user_id: str, n_parts: int) -> int:
        """The user's partition: the one whose store holds the id (each store holds only
        its own partition's ids), else Kafka's partitioner. Asking the stores first costs
        less than hashing and needs no memo of every id seen."""
        for p, store in enumerate(self.stores):
            if user_id in store:
                return p
        return partition_of(user_id, n_parts)  # a new id: met once, so not memoised

    def feed(self, events: Iterable[Event], until: float | None = None) -> None:
        with gc_paused():
            self._feed(events, until)

    def _feed(self, events: Iterable[Event], until: float | None) -> None:
        n_parts = self.settings.partitions
        processors = self.processors
        out = self.out
        summary = self.summary
        for event in events:
            summary.read += 1
            if not summary.read % SWEEP_EVERY:
                sweep_young()
            if until is not None and event.occurred_at > until:
                summary.after_until += 1
                summary.came_back.add(event.user_id)
                continue
            if self.track_series:
                self._sample_series(event.occurred_at)
            processors[self._partition(event.user_id, n_parts)].process(
                event, out, received_at=self.received_at)
            if out.transitions or out.alerts or out.rejected or out.suppressed \
                    or out.duplicates or out.refits or out.feedback or out.ignored \
                    or out.stitches:
                self._drain()
            else:  # the common case: one event applied, nothing else to report
                summary.applied += len(out.applied)
                out.applied.clear()
                out.touched.clear()

    def finish(self, until: float | None) -> float:
        """Advance every partition to ``until`` (or the newest event time) and fire what
        is due; returns the instant the state is as of."""
        end = until if until is not None else max(
            (p.clock for p in self.processors), default=0.0)
        if end == float("-inf"):
            end = 0.0
        if self.track_series:
            self._sample_series(end)
        self.advance(end)
        s = self.summary
        treated, control = Outcomes(), Outcomes()
        for p in self.processors:
            s.stages.update(p.stage_counts())
            s.users += len(p.store)
            outcomes = p.census.recall_outcomes(end)
            treated, control = treated + outcomes[False], control + outcomes[True]
        s.uplift = uplift(treated, control)
        return end

    def advance(self, until: float) -> None:
        """Advance every partition to ``until`` and fire what is due (as a tick does)."""
        for p in self.processors:
            p.advance(until, self.out)
        self._drain()

    def cut_over(self, at: float, live_from: float) -> None:
        """Go live as ``journey bootstrap --until at`` leaves the workers: every clock at
        ``at``, and from now on alerts dated before ``live_from`` are historical (replay
        the history with ``live_from=math.inf``, so that all of its alerts are)."""
        self.advance(at)
        for p in self.processors:
            p.live_from = live_from

    def snapshots(self, at: float) -> Iterator[dict[str, Any]]:
        for p in self.processors:
            for user_id in sorted(p.store):
                yield p.snapshot(p.store[user_id], at)

    def _drain(self) -> None:
        """Count and write what came out; journey's own news (referral credits, identity
        stitches and merges) goes on to its partition. That partition is first brought to
        the news's time, which the events before it have reached (the input is in time
        order): a live worker's partitions get there by their ticks."""
        drain(self.out, self)
        n_parts = self.settings.partitions
        while self._credits:
            news = self._credits.pop(0)
            target = self.processors[partition_for(news.user_id, n_parts)]
            target.advance(news.occurred_at, self.out)
            target.process(news, self.out, feedback=True)
            drain(self.out, self)

    # --- the Sink ----------------------------------------------------------------------

    def on_applied(self, events: list[Event]) -> None:
        self.summary.applied += len(events)

    def on_duplicates(self, count: int) -> None:
        self.summary.duplicates += count

    def note_origin(self, event: Event, file: str, line: int, text: bytes) -> None:
        """Where ``event``, which the core will refuse as stamped in the future unless
        it is a duplicate, was read: its dead letter then has the file, line and text."""
        key = (event.user_id, event.event_id, event.occurred_at)
        self._origins.setdefault(key, []).append((file, line, text))

    def on_rejected(self, rejected: Rejected) -> None:
        self.summary.dead_letters[rejected.reason] += 1
        e = rejected.event
        origin: dict[str, Any] = {"kind": "file"}
        payload: str | bytes = ""
        read = self._origins.get((e.user_id, e.event_id, e.occurred_at))
        if read:
            file, line, payload = read.pop(0)
            origin.update(file=file, line=line)
        self.dead_letters_to(dead_letter(
            rejected.reason, rejected.message, payload or _event_text(e), origin,
            self.received_at, e.event_id, e.user_id))

    def on_alert(self, alert: dict[str, Any]) -> None:
        self.summary.alerts[alert["type"]] += 1
        if self.track_series:
            self.summary.alerts_per_day[_day(alert["detected_at"])][alert["type"]] += 1
        self.alerts_to(alert)

    def on_historical(self, alert: dict[str, Any]) -> None:  # counted under suppressed
        if self.track_series:
            self.summary.alerts_per_day[_day(alert["detected_at"])][alert["type"]] += 1
        self.historical_to(alert)

    def on_transition(self, transition: dict[str, Any]) -> None:
        self.summary.transitions += 1
        self.transitions_to(transition)

    def on_feedback(self, event: Event) -> None:
        self._credits.append(event)

    def on_suppressed(self, kind: str, reason: str) -> None:
        self.summary.suppressed[f"{kind}:{reason}"] += 1

    def on_deferred(self, kind: str) -> None:
        pass

    def on_reactivation(self, label: str) -> None:
        self.summary.reactivations[label] += 1

    def on_refits(self, count: int) -> None:
        self.summary.refits += count

    def on_churn_model(self, partition: int, model: ChurnModel) -> None:
        self.summary.churn_models.append((partition, model))

    def on_ignored(self, call: str) -> None:
        self.summary.ignored[call] += 1

    def on_stitch(self, outcome: str) -> None:
        self.summary.stitches[outcome] += 1

    def _sample_series(self, t: float) -> None:
        if self._next_day is None:
            self._next_day = (t // DAY + 1) * DAY
            return
        while t >= self._next_day:
            counts: Counter[str] = Counter()
            for p in self.processors:
                counts.update(p.stage_counts())
            self.summary.stage_series.append((self._next_day, dict(counts)))
            self._next_day += DAY


def _day(rfc: str) -> float:
    from datetime import datetime

    t = datetime.fromisoformat(rfc).timestamp()
    return t // DAY * DAY


def _event_text(e: Event) -> str:
    import orjson

    from streams.core.timefmt import rfc3339

    return orjson.dumps({"event_id": e.event_id, "user_id": e.user_id, "type": e.type,
                         "occurred_at": rfc3339(e.occurred_at, e.utc_offset_min or 0),
                         "properties": e.properties}).decode()
