"""Records in, records out: the worker's logic without faust or a broker.

The faust agent hands batches of consumed records to :meth:`Pipeline.handle` and sends
what comes back; this class decodes, routes mis-keyed events to the repartition topic,
drives one :class:`PartitionProcessor` per partition, coalesces state writes to one per
user per batch, and turns outputs into records with schema headers. Tests drive it
directly, with a dict for a table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.kafka.logsafe import exception_summary
from agents.kafka.metrics import Metrics
from agents.kafka.topics import KIND_HEADER, SCHEMA_HEADER, Topics
from streams.core.deadletter import dead_letter
from streams.core.decode import Rejection, decode
from streams.core.event import Event
from streams.core.partitioning import partition_for
from streams.core.processor import Outputs, PartitionProcessor
from streams.core.state import UserState
from streams.settings import Settings

TICK = b"tick"
FEEDBACK = b"feedback"
CTX_PREFIX = "\x00partition:"
log = logging.getLogger("journey.pipeline")
Gap = tuple[str, int, int, int]  # topic, partition, first offset missing, offset after the hole


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds: the broker's record time (when it was produced)
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Send:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None
    source_time: float | None = None  # deadline or event receipt, for the latency metric


def ctx_key(partition: int, partitions: int) -> str:
    """A table key that the default partitioner puts on ``partition`` itself, so the
    partition's context is restored with, and only with, that partition's users."""
    i = 0
    while True:
        key = f"{CTX_PREFIX}{partition}:{i}"
        if partition_for(key, partitions) == partition:
            return key
        i += 1


def changelog_groups(pending: list[tuple[str, int, bytes, bytes]]
                     ) -> list[list[tuple[str, int, bytes, bytes]]]:
    """A batch's staged changelog writes (key, partition, key bytes, value bytes) in the
    groups the worker publishes, each acknowledged before the next is sent: the
    partitions' checkpoints, then the users (see :meth:`Pipeline.commit_state`)."""
    contexts = [w for w in pending if w[0].startswith(CTX_PREFIX)]
    users = [w for w in pending if not w[0].startswith(CTX_PREFIX)]
    return [g for g in (contexts, users) if g]


def in_offset_order(records: Iterable[Record]) -> list[Record]:
    """Each topic-partition's records in offset order, each offset once (the first copy),
    topic-partitions in order of first appearance."""
    groups: dict[tuple[str, int], dict[int, Record]] = {}
    for rec in records:
        groups.setdefault((rec.topic, rec.partition), {}).setdefault(rec.offset, rec)
    return [rec for group in groups.values() for _, rec in sorted(group.items())]


def tick_value(now: float) -> bytes:
    """The body of a tick record: the instant, in epoch seconds, that it stands for.
    Producers that keep their own clock (the demo's simulator) write ticks too."""
    return repr(float(now)).encode()


def encode_feedback(e: Event) -> bytes:
    return orjson.dumps({"event_id": e.event_id, "user_id": e.user_id, "type": e.type,
                         "occurred_at": e.occurred_at, "properties": e.properties})


def decode_feedback(raw: bytes) -> Event:
    d = orjson.loads(raw)
    return Event(event_id=d["event_id"], user_id=d["user_id"], type=d["type"],
                 occurred_at=float(d["occurred_at"]), source="journey",
                 properties=d.get("properties") or {})


def _decoded(value: Any) -> Any:
    """Table values are objects in a memory store, codec bytes in RocksDB."""
    if isinstance(value, bytes):
        from agents.kafka.codec import loads

        return loads(value)
    return value


class WriteBack(MutableMapping[str, UserState]):
    """A processor's view of the table: reads through, writes held until the batch ends,
    so a user touched by many events in a batch costs one changelog record."""

    def __init__(self, table: MutableMapping[str, Any],
                 write: Callable[[str, Any], None] | None = None) -> None:
        self.table = table
        self.write = write or table.__setitem__
        self.dirty: dict[str, UserState] = {}

    def __getitem__(self, key: str) -> UserState:
        got = self.dirty.get(key)
        if got is not None:
            return got
        value = _decoded(self.table[key])
        if not isinstance(value, UserState):
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # hot path: avoid KeyError
        got = self.dirty.get(key)
        if got is not None:
            return got
        value = _decoded(self.table.get(key))
        return value if isinstance(value, UserState) else default

    def __setitem__(self, key: str, value: UserState) -> None:
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("user state is never deleted by the processor")

    def __iter__(self) -> Any:
        return (k for k, _ in self.items())

    def items(self) -> Any:  # type: ignore[override]
        """User states only (the table also holds partition contexts), newest first."""
        dirty = self.dirty
        for key, value in list(self.table.items()):
            if isinstance(key, bytes):
                key = key.decode()
            value = _decoded(value)
            if key in dirty:
                yield key, dirty[key]
            elif isinstance(value, UserState):
                yield key, value
        table = self.table
        for key, value in list(dirty.items()):
            if key not in table:
                yield key, value

    def __len__(self) -> int:
        return len(self.table)

    def flush(self) -> None:
        write = self.write
        for key, value in self.dirty.items():
            write(key, value)
        self.dirty.clear()


class Pipeline:
    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics,
                 table: MutableMapping[str, Any],
                 wall_clock: Callable[[], float] = time.time,
                 write: Callable[[str, Any], None] | None = None,
                 rebuild: Callable[[PartitionProcessor, int, dict[str, Any] | None], None]
                 | None = None) -> None:
        # restores a partition's processor from the table's own index of its users
        # (agents.kafka.tablestore); without it, from a scan of the whole table
        self.rebuild = rebuild
        self.settings = settings
        self.topics = topics
        self.metrics = metrics
        self.table = table
        self.wall_clock = wall_clock
        self.store = WriteBack(table, write)
        self.processors: dict[int, PartitionProcessor] = {}
        self._ctx_keys: dict[int, str] = {}
        self._touched: set[int] = set()
        self._unchecked: set[int] = set()  # restored, no batch since: look for holes
        self.consumed: dict[int, int] = {}  # newest input offset seen, ticks included
        self.consumed_repartition: dict[int, int] = {}
        # per partition, the input offsets its last checkpoint's successor will claim
        self._base_consumed: dict[int, tuple[int, int]] = {}
        self._lag_labels: set[str] = set()
        self._applied: dict[str, int] = {}
        self.out = Outputs()

    # --- partitions ------------------------------------------------------------------

    def processor(self, partition: int) -> PartitionProcessor:
        proc = self.processors.get(partition)
        if proc is None:
            proc = self._restore(partition)
        return proc

    def _restore(self, partition: int) -> PartitionProcessor:
        self._unchecked.add(partition)
        n = self.settings.partitions
        key = self._ctx_keys.setdefault(partition, ctx_key(partition, n))
        proc = PartitionProcessor(self.settings, self.store, partition,
                                  owns=lambda user_id: partition_for(user_id, n) == partition)
        ctx = _decoded(self.table.get(key))
        if self.rebuild is not None:
            self.rebuild(proc, partition, ctx if isinstance(ctx, dict) else None)
        else:
            states = (v for k, v in self.store.items() if partition_for(k, n) == partition)
            proc.restore(ctx if isinstance(ctx, dict) else None, states)
        if isinstance(ctx, dict):
            self.consumed[partition] = int(ctx.get("consumed", -1))
            self.consumed_repartition[partition] = int(ctx.get("consumed_repartition", -1))
        self._base_consumed[partition] = (self.consumed.get(partition, -1),
                                          self.consumed_repartition.get(partition, -1))
        self.processors[partition] = proc
        return proc

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.processors.pop(p, None)
            self._unchecked.discard(p)
            self.consumed.pop(p, None)
            self.consumed_repartition.pop(p, None)
            self._base_consumed.pop(p, None)
            self._touched.discard(p)
            if str(p) in self._lag_labels:  # a gauge for a partition we no longer own
                self.metrics.consumer_lag.remove(str(p))
                self._lag_labels.discard(str(p))

    def held(self, topic: str, partition: int) -> int:
        """The newest offset of ``topic[partition]`` whose effects the table holds."""
        consumed = self.consumed if topic == self.topics.events else self.consumed_repartition
        return consumed.get(partition, -1)

    def restore_for(self, records: Iterable[Record]) -> list[int]:
        """Restore the partitions these records belong to; returns those that had no
        batch since their restore (their committed offsets are worth a look, see
        :meth:`gaps`)."""
        fresh: list[int] = []
        for rec in records:
            p = rec.partition
            if p not in self.processors:
                self.processor(p)
            if p in self._unchecked:
                self._unchecked.discard(p)
                fresh.append(p)
        return fresh

    def gaps(self, records: Iterable[Record],
             committed: Mapping[tuple[str, int], int] | None = None) -> list[Gap]:
        """Input this worker never applied that lies before ``records``: (topic,
        partition, start, stop) ranges, ``start <= offset < stop``.

        Each topic-partition must be applied without holes. A hole appears when table
        recovery came back short (the broker under-reported the changelog's end) while
        the consumer resumed at its committed offset, or when a rebalance dropped
        fetched records. ``committed`` adds the group's committed offsets, which catch a
        hole on a topic that has no record in this batch.
        """
        expected: dict[tuple[str, int], int] = {}
        starts: dict[tuple[str, int], int] = {}
        out: list[Gap] = []
        for (topic, p), offset in (committed or {}).items():
            nxt = self.held(topic, p) + 1
            if offset > nxt:
                starts[(topic, p)] = nxt
            expected[(topic, p)] = max(nxt, offset)
        for rec in records:
            key = (rec.topic, rec.partition)
            known = expected.get(key)
            nxt = self.held(rec.topic, rec.partition) + 1 if known is None else known
            if rec.offset > nxt:
                start = starts.pop(key, nxt)
                out.append((rec.topic, rec.partition, start, rec.offset))
            elif key in starts:
                out.append((rec.topic, rec.partition, starts.pop(key), nxt))
            expected[key] = max(nxt, rec.offset + 1)
        out.extend((topic, p, start, expected[(topic, p)])
                   for (topic, p), start in starts.items())
        return out

    def context(self, partition: int) -> dict[str, Any] | None:
        key = self._ctx_keys.get(partition) or ctx_key(partition, self.settings.partitions)
        ctx = _decoded(self.table.get(key))
        return ctx if isinstance(ctx, dict) else None

    # --- the batch -------------------------------------------------------------------

    def handle(self, records: Iterable[Record]) -> list[Send]:
        """Apply a batch; returns the records to publish. State writes are staged on the
        table by :meth:`commit_state`, which the caller runs before publishing."""
        sends: list[Send] = []
        m = self.metrics
        events_topic = self.topics.events
        consumed: dict[str, int] = {}
        applied: dict[str, int] = self._applied
        redelivered = 0
        for rec in records:
            proc = self.processor(rec.partition)
            held = self.consumed if rec.topic == events_topic else self.consumed_repartition
            if rec.offset <= held.get(rec.partition, -1):
                redelivered += 1  # fetched again after a rebalance or a heal: applied
                continue
            held[rec.partition] = rec.offset
            self._touched.add(rec.partition)
            try:
                if self._apply(rec, proc, sends, consumed):
                    self._drain(rec, sends)
            except Exception as exc:  # a bug must cost one record, not the worker
                self.out.clear()
                # the message can hold a user id: it goes to the dead letter, not the log
                log.error("%s[%d]@%d could not be applied (%s); dead-lettered", rec.topic,
                          rec.partition, rec.offset, exception_summary(exc))
                self.out_dead(sends, "processing_error", f"{type(exc).__name__}: {exc}", rec)
        for topic, count in consumed.items():  # counted per batch: labels() is not free
            m.events_consumed.labels(topic).inc(count)
        for kind, count in applied.items():
            m.events_applied.labels(kind).inc(count)
        applied.clear()
        if redelivered:
            m.records_redelivered.inc(redelivered)
        return sends

    def _apply(self, rec: Record, proc: PartitionProcessor, sends: list[Send],
               consumed: dict[str, int]) -> bool:
        """One record into its partition's processor; False when it went elsewhere."""
        kind = rec.headers.get(KIND_HEADER)
        if kind == TICK:
            instant = self._tick_instant(rec, sends)
            if instant is None:
                return False
            started = time.perf_counter()
            proc.advance(instant, self.out)
            self.metrics.sweep_duration.observe(time.perf_counter() - started)
        elif kind == FEEDBACK and rec.topic == self.topics.repartition:
            # only journey writes the repartition topic; on the input topic the header is
            # a producer's claim and the record is judged as any other input
            proc.process(decode_feedback(rec.value or b"{}"), self.out, feedback=True)
        else:
            consumed[rec.topic] = consumed.get(rec.topic, 0) + 1
            got = decode(rec.value if rec.value is not None else b"",
                         max_bytes=self.settings.max_event_bytes)
            if isinstance(got, Rejection):
                self.out_dead(sends, got.reason, got.message, rec, got.event_id, got.user_id)
                return False
            want = partition_for(got.user_id, self.settings.partitions)
            if want != rec.partition:
                # not keyed by user (or by another partitioner): move it to the user's
                # partition before it touches state
                sends.append(Send(self.topics.repartition, got.user_id.encode(),
                                  rec.value or b"", [], want))
                return False
            position = rec.offset if rec.topic == self.topics.events else None
            proc.process(got, self.out, received_at=rec.timestamp, position=position)
        return True

    def _tick_instant(self, rec: Record, sends: list[Send]) -> float | None:
        """A tick's instant, or None (dead-lettered) when it is no number, or lies in the
        future while this worker keeps the clock itself: a forged tick would otherwise
        fire every timer up to its date, and a partition clock never moves back."""
        try:
            instant = float(rec.value or b"")
        except ValueError:
            self.out_dead(sends, "schema_violation", "tick value is not a number", rec)
            return None
        settings = self.settings
        if settings.tick_interval_seconds > 0:
            ahead = instant - self.wall_clock()
            if not ahead <= settings.max_future_skew_seconds:  # NaN included
                self.out_dead(sends, "future_timestamp", f"tick is {ahead:.0f}s ahead of the "
                              f"wall clock (allowed skew {settings.max_future_skew_seconds:.0f}s)",
                              rec)
                return None
        return instant

    def commit_state(self) -> int:
        """Stage each touched partition's checkpoint, then each touched user once.

        The checkpoint goes first and claims only what the table held *before* this
        batch (with the batch's re-fits), so whichever of the user writes that follow a
        crash lets through, a restart goes over the batch again and ends as if nothing
        happened (see :meth:`PartitionProcessor.checkpoint`). The worker publishes the
        two groups in this order, each acknowledged before the next.
        """
        for p in self._touched:
            proc = self.processors.get(p)
            if proc is not None:
                key = self._ctx_keys.setdefault(p, ctx_key(p, self.settings.partitions))
                ctx = proc.checkpoint()
                ctx["consumed"], ctx["consumed_repartition"] = self._base_consumed.get(
                    p, (-1, -1))
                self._base_consumed[p] = (self.consumed.get(p, -1),
                                          self.consumed_repartition.get(p, -1))
                self.store.write(key, ctx)
        self._touched.clear()
        written = len(self.store.dirty)
        self.store.flush()
        return written

    def out_dead(self, sends: list[Send], reason: str, message: str, rec: Record,
                 event_id: str | None = None, user_id: str | None = None) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        origin = {"kind": "kafka", "topic": rec.topic, "partition": rec.partition,
                  "offset": rec.offset,
                  "key": None if rec.key is None else rec.key.decode("utf-8", "replace")}
        record = dead_letter(reason, message, rec.value or b"", origin, self.wall_clock(),
                             event_id, user_id)
        sends.append(Send(self.topics.dead_letter, rec.key, orjson.dumps(record),
                          [(SCHEMA_HEADER, b"journey.dead-letter/1")]))

    def _drain(self, rec: Record, sends: list[Send]) -> None:
        out, m, topics = self.out, self.metrics, self.topics
        if out.applied:
            now = self.wall_clock()
            applied = self._applied
            for e in out.applied:
                applied[e.type] = applied.get(e.type, 0) + 1
                m.event_age.observe(max(0.0, now - e.occurred_at))
        if out.duplicates:
            m.events_duplicate.inc(out.duplicates)
        for rej in out.rejected:
            e = rej.event
            self.out_dead(sends, rej.reason, rej.message, rec, e.event_id, e.user_id)
        for alert in out.alerts:
            m.alerts.labels(alert["type"], alert["priority"],
                            "true" if alert["control"] else "false").inc()
            sends.append(Send(topics.alert_topic(alert["type"]), alert["user_id"].encode(),
                              orjson.dumps(alert),
                              [(SCHEMA_HEADER, alert["schema"].encode())],
                              source_time=rec.timestamp))
        for tr in out.transitions:
            m.transitions.labels(tr["from_stage"] or "none", tr["to_stage"]).inc()
            sends.append(Send(topics.transitions, tr["user_id"].encode(), orjson.dumps(tr),
                              [(SCHEMA_HEADER, tr["schema"].encode())]))
        for fb in out.feedback:
            sends.append(Send(topics.repartition, fb.user_id.encode(), encode_feedback(fb),
                              [(KIND_HEADER, FEEDBACK)],
                              partition_for(fb.user_id, self.settings.partitions)))
        for kind, reason in out.suppressed:
            m.alerts_suppressed.labels(kind, reason).inc()
        for kind in out.deferred:
            m.alerts_deferred.labels(kind).inc()
        for label in out.reactivations:
            m.reactivations.labels(label).inc()
        if out.refits:
            m.model_refits.inc(out.refits)
        out.clear()

    # --- views for metrics and the HTTP endpoint -------------------------------------

    def snapshot(self, user_id: str) -> dict[str, Any] | None:
        state = self.store.get(user_id)
        if state is None:
            return None
        proc = self.processors.get(partition_for(user_id, self.settings.partitions))
        if proc is None:
            return None
        return proc.snapshot(state, max(proc.clock, state.last_event_at))

    def owns_restored(self, user_id: str) -> bool:
        """Whether the user's partition has a restored processor here."""
        return partition_for(user_id, self.settings.partitions) in self.processors

    def set_lag(self, partition: int, highwater: int) -> None:
        label = str(partition)
        self._lag_labels.add(label)
        consumed = self.consumed.get(partition, -1)
        self.metrics.consumer_lag.labels(label).set(max(0, highwater - (consumed + 1)))

    def refresh_gauges(self, now: float | None = None) -> None:
        m = self.metrics
        stages: dict[str, int] = {}
        funnel: dict[int, int] = {}
        users = buyers = repeaters = referrers = active = 0
        pending = backlog = 0
        for proc in self.processors.values():
            for (stage, fidx, buyer, repeat, referrer), count in proc.census.items():
                stages[stage] = stages.get(stage, 0) + count
                funnel[fidx] = funnel.get(fidx, 0) + count
                users += count
                buyers += count * buyer
                repeaters += count * repeat
                referrers += count * referrer
                if stage not in ("declining", "churned"):
                    active += count
            pending += len(proc.index)
            backlog += proc.index.due_count(self.wall_clock() if now is None else now)
        from streams.core.state import FUNNEL, STAGES

        for s in STAGES:
            m.users.labels(s).set(stages.get(s, 0))
        for i, name in enumerate(FUNNEL):
            m.funnel_users.labels(name).set(funnel.get(i, 0))
        m.operating_rate.labels("retention").set(active / users if users else 0.0)
        m.operating_rate.labels("conversion").set(buyers / users if users else 0.0)
        m.operating_rate.labels("repeat").set(repeaters / buyers if buyers else 0.0)
        m.operating_rate.labels("referral").set(referrers / users if users else 0.0)
        m.timers_pending.set(pending)
        m.timer_backlog.set(backlog)
