"""Records in, records out: the worker's logic without faust or a broker.

The faust agent hands batches of consumed records to :meth:`Pipeline.handle` and sends
what comes back; this class decodes, routes mis-keyed events to the repartition topic,
drives one :class:`PartitionProcessor` per partition, coalesces state writes to one per
user per batch (``table``), and drains outputs into records with schema headers
(``sink``). Tests drive it directly, with a dict for a table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from agents.kafka.gauges import Gauges
from agents.kafka.logsafe import exception_summary
from agents.kafka.metrics import Metrics
from agents.kafka.offsets import InputOffsets
from agents.kafka.order import Replan, Runs, joined, note, stored_runs
from agents.kafka.records import FEEDBACK, TICK, Gap, Record, Send, decode_feedback, find_gaps
from agents.kafka.sink import RecordSink
from agents.kafka.table import WriteBack, ctx_key, snapshot_key, table_value
from agents.kafka.topics import KIND_HEADER, RECEIVED_HEADER, Topics
from streams.core.churn.learner import is_snapshot_instant
from streams.core.churn.memory import BASE, LABELS
from streams.core.context import PartitionContext
from streams.core.decode import Rejection, decode
from streams.core.outputs import Outputs, drain
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.core.segment_batch import batch_calls
from streams.settings import Settings

log = logging.getLogger("journey.pipeline")

Snapshots = dict[tuple[float, str], Any]  # the churn model's records a context names
# restores a processor from the table's own rows (processor, partition, context, snapshots)
Rebuild = Callable[[PartitionProcessor, int, PartitionContext | None, Snapshots], None]


class Pipeline:
    def __init__(self, settings: Settings, topics: Topics, metrics: Metrics,
                 table: MutableMapping[str, Any],
                 wall_clock: Callable[[], float] = time.time,
                 write: Callable[[str, Any], None] | None = None,
                 rebuild: Rebuild | None = None) -> None:
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
        self.offsets = InputOffsets(topics.events)
        self._runs: dict[int, Runs] = {}  # per partition, the order of its batch's input
        self._plans: dict[int, Replan] = {}  # restored partitions redoing a recorded order
        self.out = Outputs()
        self.sink = RecordSink(topics, metrics, settings.partitions, wall_clock)
        self.gauges = Gauges(metrics)

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
                                  owns=lambda user_id: partition_for(user_id, n) == partition,
                                  redirects=self.store.redirects, persist=True)
        ctx = table_value(self.table.get(key))
        context = PartitionContext.from_dict(ctx) if isinstance(ctx, dict) and ctx else None
        snapshots = self._snapshots(partition, context)
        if self.rebuild is not None:
            self.rebuild(proc, partition, context, snapshots)
        else:
            states = (v for k, v in self.store.items() if partition_for(k, n) == partition)
            redirected = (k for k in self.store.redirected() if partition_for(k, n) == partition)
            proc.restore(context, states, redirected, snapshots)
        self.offsets.restored(partition, ctx)
        self._runs.pop(partition, None)
        runs = stored_runs(ctx)
        if runs:
            self._plans[partition] = Replan(self.topics.events, runs, self.wall_clock())
        else:
            self._plans.pop(partition, None)
        self.processors[partition] = proc
        return proc

    def _snapshots(self, partition: int, ctx: PartitionContext | None) -> Snapshots:
        """The churn model's snapshot records a restored context may need: those it lists,
        and those its logged refits took (see ``streams.core.churn.memory``)."""
        if ctx is None:
            return {}
        wanted = {t for t, _ in ctx.snapshots}
        wanted |= {t for t in ctx.refits or () if is_snapshot_instant(t, self.settings)}
        out = {}
        for t in wanted:
            for kind in (BASE, LABELS):
                rec = table_value(self.table.get(
                    snapshot_key(partition, self.settings.partitions, t, kind)))
                if isinstance(rec, dict):
                    out[(t, kind)] = rec
        return out

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.processors.pop(p, None)
            self._unchecked.discard(p)
            self.offsets.forget(p)
            self._touched.discard(p)
            self._runs.pop(p, None)
            self._plans.pop(p, None)
            self.gauges.forget(p)

    def held(self, topic: str, partition: int) -> int:
        """The newest offset of ``topic[partition]`` whose effects the table holds."""
        return self.offsets.held(topic, partition)

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
        """Input this worker never applied that lies before ``records`` (see
        :func:`agents.kafka.records.find_gaps`).

        Each topic-partition must be applied without holes. A hole appears when table
        recovery came back short (the broker under-reported the changelog's end) while
        the consumer resumed at its committed offset, or when a rebalance dropped
        fetched records.
        """
        return find_gaps(self._fetched, records, committed)

    def _fetched(self, topic: str, partition: int) -> int:
        """The newest offset held by the table or held back by a restored plan."""
        held = self.offsets.held(topic, partition)
        plan = self._plans.get(partition)
        return held if plan is None else max(held, plan.newest(topic))

    def context(self, partition: int) -> dict[str, Any] | None:
        key = self._ctx_keys.get(partition) or ctx_key(partition, self.settings.partitions)
        ctx = table_value(self.table.get(key))
        return ctx if isinstance(ctx, dict) else None

    # --- the batch -------------------------------------------------------------------

    def handle(self, records: Iterable[Record]) -> list[Send]:
        """Apply a batch; returns the records to publish. State writes are staged on the
        table by :meth:`commit_state`, which the caller runs before publishing."""
        m, sink, offsets, plans = self.metrics, self.sink, self.offsets, self._plans
        consumed: dict[str, int] = {}
        redelivered = 0
        if plans:
            for rec in self._overdue():
                redelivered += not self._one(rec, consumed)
        for rec in records:
            p = rec.partition
            self.processor(p)
            plan = plans.get(p)
            if plan is None:
                redelivered += not self._one(rec, consumed)
                continue
            if rec.offset <= offsets.held(rec.topic, p):
                redelivered += 1
                continue
            for due in plan.offer(rec):
                redelivered += not self._one(due, consumed)
            if plan.done:
                del plans[p]
        for topic, count in consumed.items():  # counted per batch: labels() is not free
            m.events_consumed.labels(topic).inc(count)
        sink.count_applied()
        if redelivered:
            m.records_redelivered.inc(redelivered)
        return sink.take()

    def _one(self, rec: Record, consumed: dict[str, int]) -> bool:
        """Apply one record, noting its place in its partition's order; False when the
        table holds it already (fetched again after a rebalance or a heal)."""
        p = rec.partition
        if not self.offsets.take(rec):
            return False
        self._touched.add(p)
        runs = self._runs.get(p)
        if runs is None:
            runs = self._runs[p] = []
        note(runs, rec.topic == self.topics.events)
        sink = self.sink
        sink.record = rec
        try:
            if self._apply(rec, self.processors[p], consumed):
                drain(self.out, sink)
        except Exception as exc:  # noqa: BLE001 - a bug must cost one record, not the worker
            self.out.clear()
            # the message can hold a user id: it goes to the dead letter, not the log
            log.error("%s[%d]@%d could not be applied (%s); dead-lettered", rec.topic,
                      rec.partition, rec.offset, exception_summary(exc))
            sink.dead("processing_error", f"{type(exc).__name__}: {exc}", rec)
        return True

    def _overdue(self) -> list[Record]:
        """What plans that waited longer than ``broker_outage_seconds`` for their records
        held back: released in arrival order (the order of a batch gone over again is
        then not guaranteed, which is logged)."""
        now = self.wall_clock()
        out: list[Record] = []
        for p, plan in list(self._plans.items()):
            if now - plan.started > self.settings.broker_outage_seconds:
                log.warning("partition %d: the input a restart must go over again in its "
                            "recorded order did not arrive within %.0fs; applying the %d "
                            "records held in arrival order", p,
                            self.settings.broker_outage_seconds, plan.held())
                out += plan.give_up()
                del self._plans[p]
        return out

    def _apply(self, rec: Record, proc: PartitionProcessor, consumed: dict[str, int]) -> bool:
        """One record into its partition's processor; False when it went elsewhere."""
        kind = rec.headers.get(KIND_HEADER)
        if kind == TICK:
            instant = self._tick_instant(rec)
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
                # split once, as replay does: an envelope inside an envelope is refused
                calls = batch_calls(rec.value or b"", got) \
                    if rec.topic == self.topics.events else None
                if calls is not None:
                    self._split(calls, rec)
                    return False
                self.sink.dead(got.reason, got.message, rec, got.event_id, got.user_id)
                return False
            want = partition_for(got.user_id, self.settings.partitions)
            if want != rec.partition:
                # not keyed by user (or by another partitioner): move it to the user's
                # partition before it touches state
                self.sink.sends.append(Send(self.topics.repartition, got.user_id.encode(),
                                            rec.value or b"", [self._receipt(rec)], want))
                return False
            position = rec.offset if rec.topic == self.topics.events else None
            proc.process(got, self.out, received_at=self._received_at(rec),
                         position=position)
        return True

    def _received_at(self, rec: Record) -> float:
        """When ``rec``'s event first reached Kafka: its record time, or for one journey
        moved through the repartition topic, the original's (carried in a header)."""
        if rec.topic == self.topics.repartition:
            carried = rec.headers.get(RECEIVED_HEADER)
            if carried is not None:
                try:
                    return float(carried)
                except ValueError:
                    pass  # only journey writes that topic: a bad header is a bug, not input
        return rec.timestamp

    def _receipt(self, rec: Record) -> tuple[str, bytes]:
        """The header that carries ``rec``'s receipt over a repartition hop."""
        return RECEIVED_HEADER, repr(self._received_at(rec)).encode()

    def _split(self, calls: list[bytes], rec: Record) -> None:
        """A Segment batch envelope's calls on to their users' partitions through the
        repartition topic, each a record of its own, as a mis-keyed event goes; a call
        that names no user stays on this partition, to be dead-lettered there with its
        own reason."""
        n = self.settings.partitions
        receipt = self._receipt(rec)
        for call in calls:
            one = decode(call, max_bytes=self.settings.max_event_bytes)
            user = one.user_id
            want = rec.partition if user is None else partition_for(user, n)
            self.sink.sends.append(Send(self.topics.repartition,
                                        None if user is None else user.encode(), call,
                                        [receipt], want))

    def _tick_instant(self, rec: Record) -> float | None:
        """A tick's instant, or None (dead-lettered) when it is no number, or lies in the
        future while this worker keeps the clock itself: a forged tick would otherwise
        fire every timer up to its date, and a partition clock never moves back."""
        try:
            instant = float(rec.value or b"")
        except ValueError:
            self.sink.dead("schema_violation", "tick value is not a number", rec)
            return None
        skew = self.settings.max_future_skew_seconds
        if self.settings.tick_interval_seconds > 0:
            ahead = instant - self.wall_clock()
            if not ahead <= skew:  # NaN included
                self.sink.dead("future_timestamp", f"tick is {ahead:.0f}s ahead of the wall "
                               f"clock (allowed skew {skew:.0f}s)", rec)
                return None
        return instant

    def commit_state(self) -> int:
        """Stage each touched partition's snapshot records and checkpoint, then each
        touched user once.

        The checkpoint claims only what the table held *before* this batch (with the
        batch's re-fits), so whichever of the user writes that follow a crash lets
        through, a restart goes over the batch again and ends as if nothing happened
        (see :meth:`PartitionProcessor.checkpoint`). The snapshots the batch's re-fits
        took or labelled go before it, so a checkpoint that claims a refit finds its
        snapshot; a snapshot is deleted after the checkpoint that stops listing it. The
        worker publishes the groups in this order, each acknowledged before the next
        (``agents.kafka.table.changelog_groups``).
        """
        n = self.settings.partitions
        deletes: list[str] = []
        for p in self._touched:
            proc = self.processors.get(p)
            if proc is not None:
                churn = proc.refits.churn
                for t, kind, rec in churn.take_writes():
                    self.store.write(snapshot_key(p, n, t, kind), rec)
                deletes += [snapshot_key(p, n, t, kind) for t in churn.take_deletes()
                            for kind in (BASE, LABELS)]
                key = self._ctx_keys.setdefault(p, ctx_key(p, n))
                ctx = proc.checkpoint().to_dict()
                ctx["consumed"], ctx["consumed_repartition"] = self.offsets.claim(p)
                # how this batch interleaved its input, for a restart to redo; a plan not
                # done yet is part of the batch this checkpoint goes back before
                runs = self._runs.pop(p, None) or []
                plan = self._plans.get(p)
                if plan is not None:
                    runs = joined(runs, plan.runs)
                if runs:
                    ctx["order"] = runs
                self.store.write(key, ctx)
        for key in deletes:
            self.store.write(key, None)
        self._touched.clear()
        written = len(self.store.dirty)
        self.store.flush()
        return written

    # --- views for metrics and the HTTP endpoint -------------------------------------

    def merged_into(self, user_id: str) -> str | None:
        """The user an id was merged into, if it was (see streams.core.identity)."""
        redirect = self.store.redirects.get(user_id)
        return None if redirect is None else redirect.target

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
        self.gauges.set_lag(partition, highwater, self.offsets.held(self.topics.events, partition))

    def refresh_gauges(self, now: float | None = None) -> None:
        self.gauges.refresh(self.processors.values(),
                            self.wall_clock() if now is None else now)
