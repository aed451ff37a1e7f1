"""A worker killed between any two of its writes ends where an uninterrupted run ends.

No broker here: a few lists stand in for the topics, and a loop publishes each batch the
way ``agents.kafka.worker`` does (outputs, then each partition's checkpoint, then the users,
then the commit). A run is killed after every possible number of changelog writes of
chosen batches; the restarted pipeline recovers a table from what reached the changelog,
resumes at the committed offsets, reads back what it is missing, and must end with the
same user states and the same alerts as a run that was never killed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from agents.kafka import codec
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import TICK, Record, Send, in_offset_order, tick_value
from agents.kafka.table import CTX_PREFIX, SNAPSHOT_PREFIX, Staged, changelog_groups
from agents.kafka.topics import KIND_HEADER, Topics
from agents.testing.chaos import CORE_FIELDS, alert_differences
from agents.testing.kafka_io import event_time
from agents.testing.replay_check import field_diffs
from agents.testing.segment_stream import record_key, segment_stream
from streams.core.identity import Redirect
from streams.core.partitioning import partition_for
from streams.settings import Settings
from streams.synth import SynthConfig, generate

DAY = 86400.0
START = 1_767_225_600.0  # 2026-01-01T00:00Z
PARTITIONS = 2
BATCH = 150  # records per topic-partition per batch
# frequent re-fits on a small sample, so a re-fit that read the wrong states shows
SETTINGS = Settings().with_overrides(partitions=PARTITIONS, tick_interval_seconds=0.0,
                                     refit_interval_days=3.0, refit_min_buyers=5,
                                     population_sample_size=40)
# the canonical history also runs the churn model on a short grid, so its snapshot records
# are written, relabelled and deleted, and it switches on, within the history. (Not yet
# with the Segment source: with this grid one kill pattern loses an order of a stitched
# user, see test_a_re_closed_id_keeps_what_it_took_after_the_restart.)
CHURN_SETTINGS = SETTINGS.with_overrides(churn_snapshot_days=6.0, churn_horizon_days=12.0,
                                         churn_min_rows=20, churn_min_class=3)
TOPICS = Topics.from_settings(SETTINGS)


class Killed(Exception):
    pass


@dataclass
class Broker:
    """Topic-partitions as lists; the changelog as one ordered list of (key, value)."""

    logs: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    changelog: list[tuple[str, bytes | None]] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    settings: Settings = SETTINGS  # the workers' settings for this history

    def append(self, topic: str, partition: int, key: bytes | None, value: bytes,
               headers: dict[str, bytes], timestamp: float) -> None:
        log = self.logs.setdefault((topic, partition), [])
        log.append(Record(topic, partition, len(log), key, value, timestamp, headers))

    def tick_all(self, t: float) -> None:
        """A wall-clock tick at ``t`` into every partition of the events topic."""
        for p in range(self.settings.partitions):
            self.append(TOPICS.events, p, None, tick_value(t), {KIND_HEADER: TICK}, t)

    def publish(self, s: Send, now: float) -> None:
        p = s.partition if s.partition is not None else partition_for(
            (s.key or b"").decode(), self.settings.partitions)
        self.append(s.topic, p, s.key, s.value, dict(s.headers), now)

    def copy(self) -> Broker:
        return Broker({k: list(v) for k, v in self.logs.items()}, list(self.changelog),
                      dict(self.committed), self.settings)


def _history(source: str, settings: Settings | None = None) -> Broker:
    """The synthetic history, as canonical events or as a Segment source sends it
    (anonymous browsing stitched into users at login: see tests/support/segment_stream)."""
    events, _ = generate(SynthConfig(users=160, days=45, start=START, seed=7))
    if source == "segment":
        events = list(segment_stream(events, seed=7))
    if settings is None:
        settings = SETTINGS if source == "segment" else CHURN_SETTINGS
    broker = Broker(settings=settings)
    items: list[tuple[float, int, dict[str, Any] | None]] = [
        (event_time(e), 1, e) for e in events if isinstance(e, dict)]
    items += [(START + d * DAY, 0, None) for d in range(46)]
    items.sort(key=lambda x: (x[0], x[1]))
    for t, _, e in items:
        if e is None:
            broker.tick_all(t)
        else:
            key = record_key(e)
            broker.append(TOPICS.events, partition_for(key, PARTITIONS), key.encode(),
                          orjson.dumps(e), {}, t + 1)
    end = START + 200 * DAY  # long after the history: every timer comes due
    broker.tick_all(end)
    return broker


class Run:
    """One worker over the fake broker, with a kill switch after N changelog writes."""

    def __init__(self, broker: Broker, kill_after_writes: int | None = None,
                 fetch: random.Random | None = None, batch: int = BATCH) -> None:
        self.broker = broker
        self.batch = batch
        # with ``fetch``, each batch takes a random share of each topic-partition, in a
        # random order: a consumer fetches its topics independently of each other
        self.fetch = fetch
        self.table: dict[str, Any] = {}
        for k, v in broker.changelog:  # recovery: the last write of each key wins
            if v is None:
                self.table.pop(k, None)
            else:
                self.table[k] = codec.loads(v)
        self.pending: list[Staged] = []

        def write(key: str, value: Any) -> None:
            if value is None:
                self.table.pop(key, None)
                self.pending.append((key, 0, b"", None))
                return
            self.table[key] = value
            self.pending.append((key, 0, b"", codec.dumps(value)))

        self.pipeline = Pipeline(broker.settings, TOPICS, Metrics(), self.table,
                                 wall_clock=lambda: START + 400 * DAY, write=write)
        self.writes_left = kill_after_writes
        self.alerts: list[dict[str, Any]] = []
        self.position = {tp: broker.committed.get(tp, 0) for tp in self._tps()}
        self.restarted = bool(broker.changelog)

    def _tps(self) -> list[tuple[str, int]]:
        return [(t, p) for t in (TOPICS.events, TOPICS.repartition)
                for p in range(self.broker.settings.partitions)]

    def _next_batch(self) -> list[Record]:
        tps, rng, batch = self._tps(), self.fetch, self.batch
        if rng is None:
            return self._take([batch] * len(tps), tps)
        rng.shuffle(tps)
        shares = [rng.choice([0, 1, batch // 3, batch]) for _ in tps]
        return self._take(shares, tps) or self._take([batch] * len(tps), tps)  # never stall

    def _take(self, shares: list[int], tps: list[tuple[str, int]]) -> list[Record]:
        out: list[Record] = []
        for share, tp in zip(shares, tps, strict=True):
            log = self.broker.logs.get(tp, [])
            out += log[self.position[tp]:self.position[tp] + share]
        return out

    def _without_holes(self, records: list[Record]) -> list[Record]:
        """As ``agents.kafka.worker._without_holes``, reading the fake broker."""
        fresh = self.pipeline.restore_for(records)
        committed = {tp: off for tp, off in self.broker.committed.items() if tp[1] in fresh}
        gaps = self.pipeline.gaps(records, committed)
        healed = [r for topic, p, start, stop in gaps
                  for r in self.broker.logs.get((topic, p), [])[start:stop]]
        return in_offset_order(healed + records)

    def run(self) -> None:
        while self.step():
            pass

    def step(self) -> bool:
        """One batch: handle, then publish as the worker does; False when caught up."""
        records = self._next_batch()
        if not records:
            return False
        sends = self.pipeline.handle(self._without_holes(records))
        self.pipeline.commit_state()
        now = max(r.timestamp for r in records)
        pending, self.pending = self.pending, []
        before, users = changelog_groups(pending)
        for group in before:  # snapshots and checkpoints, then the outputs, then users
            self._write(group)
        for s in sends:
            self.broker.publish(s, now)
            if s.topic in (TOPICS.churn_warnings, TOPICS.recall_triggers):
                self.alerts.append(orjson.loads(s.value))
        self._write(users)
        for r in records:
            tp = (r.topic, r.partition)
            self.position[tp] = max(self.position[tp], r.offset + 1)
        self.broker.committed.update(self.position)
        return True

    def _write(self, group: list[Staged]) -> None:
        for key, _, _, value in group:
            if self.writes_left is not None:
                if self.writes_left == 0:
                    raise Killed
                self.writes_left -= 1
            self.broker.changelog.append((key, value))

    def states(self) -> dict[str, dict[str, Any] | None]:
        users = {k for k in self.table if not k.startswith("\x00")}
        return {u: self.pipeline.snapshot(u) for u in users}

    def redirects(self) -> dict[str, str]:
        """Each merged id and the user it leads to."""
        return {k: v.target for k, v in self.table.items() if isinstance(v, Redirect)}


@dataclass
class Reference:
    source: str  # canonical, or segment (with identity stitching)
    history: Broker
    run: Run
    writes: list[int]  # changelog writes of each batch
    committed: list[dict[tuple[str, int], int]]  # committed offsets before each batch


def _comparable(ctx: dict[str, Any]) -> dict[str, Any]:
    """A context without the snapshots still to delete: which batch dropped a snapshot
    depends on where batches begin, which a restart moves; that they are deleted, not
    when, is what matters (see ``_no_orphan_snapshots``)."""
    return {k: v for k, v in ctx.items() if k != "dropped"}


def _no_orphan_snapshots(run: Run) -> None:
    """Every snapshot record left in the table is live, or listed for deletion."""
    named: set[tuple[int, float]] = set()
    for p, proc in run.pipeline.processors.items():
        ctx = proc.context()
        named |= {(p, float(t)) for t, _ in ctx.snapshots} | {(p, t) for t in ctx.dropped}
    for key in run.table:
        if key.startswith(SNAPSHOT_PREFIX):
            partition, at, _kind, _suffix = key[len(SNAPSHOT_PREFIX):].split(":")
            assert (int(partition), float(at)) in named, key


@pytest.fixture(scope="module", params=["canonical", "segment"])
def reference(request: pytest.FixtureRequest) -> Reference:
    history = _history(request.param)
    whole = Run(history.copy())
    writes: list[int] = []
    committed: list[dict[tuple[str, int], int]] = []
    while True:
        before = len(whole.broker.changelog)
        committed.append(dict(whole.broker.committed))
        if not whole.step():
            break
        writes.append(len(whole.broker.changelog) - before)
    return Reference(request.param, history, whole, writes, committed)


def test_the_reference_run_has_re_fits_alerts_and_credits(reference: Reference) -> None:
    whole = reference.run
    assert {a["type"] for a in whole.alerts} == {"churn_warning", "recall_trigger"}
    assert all(p.model.fitted_at is not None for p in whole.pipeline.processors.values())
    assert any(whole.broker.logs.get((TOPICS.repartition, p)) for p in range(PARTITIONS))
    assert len(reference.writes) >= 8
    # a Segment source: anonymous profiles merged into users, across partitions
    assert bool(whole.redirects()) == (reference.history is not None and any(
        b'"identify"' in r.value for log in reference.history.logs.values() for r in log
        if r.value))
    # the churn model learned in every partition (while the history lasted: long after
    # it, every label says "no purchase" and the fallback returns), from snapshots that
    # were written, labelled and deleted
    if reference.source == "segment":
        return
    learned = {k for k, v in whole.broker.changelog if k.startswith(CTX_PREFIX)
               and v is not None and (m := codec.loads(v)["model"])[6:] and m[6][0] == "logit"}
    assert len(learned) == PARTITIONS, reference.source
    snapshots = [(k, v) for k, v in whole.broker.changelog if k.startswith(SNAPSHOT_PREFIX)]
    assert any(":labels:" in k for k, _ in snapshots)
    assert any(v is None for _, v in snapshots)


# What a user has done, whatever the order it was learnt in.
AGGREGATES = ("orders", "monetary", "frequency", "refunds", "funnel_stage", "first_seen_at",
              "last_event_at")


def same_end(run: Run, alerts: list[dict[str, Any]], reference: Reference,
             fields: tuple[str, ...] | None = None) -> None:
    """The restarted run ends where the uninterrupted one did: the partitions' contexts
    (or only their ``fields``), every user's state and the alerts.

    With identity stitching (a Segment source) only in part. A merge, or an event
    forwarded from a merged id, is news from another partition, and a restart puts it in
    another batch, so a partition may pass a deadline or a re-fit before the news or
    after it (docs/producing.md#identity-stitching): stages, alerts and the model can
    differ. What every user did, and where every merged id leads, must not: nothing is
    merged or counted twice, or lost.
    """
    want = reference.run
    segment = reference.source == "segment"

    def contexts(r: Run) -> dict[int, dict[str, Any]]:
        return {p: {k: v for k, v in _comparable(proc.context().to_dict()).items()
                    if (fields is None or k in fields) and not (segment and k == "model")}
                for p, proc in r.pipeline.processors.items()}

    assert contexts(run) == contexts(want)
    _no_orphan_snapshots(run)
    truth = {u: s for u, s in want.states().items() if s is not None}
    diffs = field_diffs(run.states(), truth, AGGREGATES if segment else CORE_FIELDS)
    assert not diffs, diffs[:5]
    assert run.redirects() == want.redirects()
    if not segment:
        counts, examples = alert_differences(alerts, want.alerts)
        assert counts["missing"] + counts["unexpected"] + counts["inexact_resends"] == 0, \
            (counts, examples)


@pytest.mark.parametrize("batch", [2, 6, 10, 14, 18, 20])
@pytest.mark.parametrize("where", ["no_write", "checkpoints_only", "some_users",
                                   "all_but_one", "all_uncommitted"])
def test_a_kill_between_writes_changes_nothing(reference: Reference, batch: int,
                                               where: str) -> None:
    writes = reference.writes
    n = writes[batch]
    after = {"no_write": 0, "checkpoints_only": PARTITIONS, "some_users": PARTITIONS + n // 3,
             "all_but_one": n - 1, "all_uncommitted": n}[where]
    assert 0 <= after <= n
    broker = reference.history.copy()
    first = Run(broker, kill_after_writes=sum(writes[:batch]) + after)
    if where == "all_uncommitted":  # every write landed, the commit did not
        first.writes_left = None
        for _ in range(batch + 1):
            first.step()
        broker.committed = dict(reference.committed[batch])
    else:
        with pytest.raises(Killed):
            first.run()
    second = Run(broker)
    assert second.restarted
    second.run()

    # the partitions' clocks, re-fitted models and held credits too: a re-fit reads other
    # users' states, which a restart finds ahead of the batch it goes over again
    same_end(second, first.alerts + second.alerts, reference)


# (130, 6): a referral credit reaches a buyer late, after the partition re-fitted its
# learned model; it used to pull the buyer's wake back to the floor and re-solve it under
# the new model, so the warning's instant depended on when the credit arrived
@pytest.mark.parametrize(("seed", "kills"), [(s, 3) for s in range(6)] + [(130, 6)])
def test_three_kills_anywhere_with_topics_fetched_unevenly(reference: Reference,
                                                          seed: int, kills: int) -> None:
    """Kills at random writes, and after each restart batches that take the two input
    topics in random shares and orders (a referral credit may come before the input it
    trails): the end is still the uninterrupted run's."""
    rng = random.Random(seed)
    broker = reference.history.copy()
    total = sum(reference.writes)
    alerts: list[dict[str, Any]] = []
    for at_write in sorted(rng.sample(range(1, total), kills)):
        run = Run(broker, kill_after_writes=max(0, at_write - len(broker.changelog)),
                  fetch=random.Random(rng.random()))
        with pytest.raises(Killed):
            run.run()
        alerts += run.alerts
    end = START + 200 * DAY  # the last restart ticks every partition, at the same instant
    broker.tick_all(end)
    last = Run(broker, fetch=random.Random(rng.random()))
    last.run()
    alerts += last.alerts

    same_end(last, alerts, reference, fields=("model", "snapshots"))


@pytest.mark.parametrize("seed", range(8))
def test_a_re_closed_id_keeps_what_it_took_after_the_restart(seed: int) -> None:
    """Segment source (identify calls stitch anonymous ids), short churn grid, three kills
    at random writes, topics fetched unevenly. Seed 1 used to lose a purchase: the first
    pass closed anon-u000051 (its stitch came back on the repartition topic) and published
    the merge; the kill lost the redirect write. After the restart the events topic came
    in ahead of the repartition topic, so the anonymous id's purchase went into its state,
    the stitch closed it again, and the merge (same id, one more order) was dropped by
    u000051 as a duplicate. A restarted partition now goes over the batch in the order the
    checkpoint recorded (``agents.kafka.order``)."""
    history = _history("segment", CHURN_SETTINGS)
    whole = Run(history.copy())
    whole.run()
    rng = random.Random(seed)
    broker = history.copy()
    for at_write in sorted(rng.sample(range(1, len(whole.broker.changelog)), 3)):
        run = Run(broker, kill_after_writes=max(0, at_write - len(broker.changelog)),
                  fetch=random.Random(rng.random()))
        with pytest.raises(Killed):
            run.run()
    end = START + 200 * DAY
    broker.tick_all(end)
    last = Run(broker, fetch=random.Random(rng.random()))
    last.run()
    truth = {u: s for u, s in whole.states().items() if s is not None}
    assert not field_diffs(last.states(), truth, AGGREGATES)


# The chaos run's history (agents.testing.chaos) on the default settings: four partitions,
# the weekly re-fit grid, and batches as large as the worker's.
WIDE = Settings().with_overrides(partitions=4, tick_interval_seconds=0.0)


def _wide_history(start: float) -> Broker:
    events, _ = generate(SynthConfig(users=400, days=60, start=start, seed=43))
    broker = Broker(settings=WIDE)
    received = start + 330 * DAY  # all of it sent long after it happened, as chaos does
    for e in events:
        if isinstance(e, dict):
            key = str(e["user_id"])
            broker.append(TOPICS.events, partition_for(key, WIDE.partitions), key.encode(),
                          orjson.dumps(e), {}, received)
    return broker


@pytest.mark.parametrize("start", [1_765_000_000.0, 1_767_000_000.0])
def test_a_kill_right_after_each_partitions_first_batch_changes_nothing(start: float) -> None:
    """The checkpoint before a partition's first batch has no clock and no re-fit instant
    yet. Killed once that batch's users were written, the worker goes over the batch again
    with every user known. The re-fit grid used to start only at a new user, so the
    batch's logged re-fits were skipped and the model went its own way: in the chaos
    two-worker failover of 2026-12-04 a churn warning went missing, and here five to nine
    did for these two histories."""
    batch, end = 2000, start + 330 * DAY
    history = _wide_history(start)
    whole = Run(history.copy(), batch=batch)
    whole.step()
    first_batch = len(whole.broker.changelog)
    whole.run()
    whole.broker.tick_all(end)
    whole.run()
    assert any(r for r in whole.broker.changelog[:first_batch]
               if r[0].startswith(CTX_PREFIX) and r[1] is not None
               and codec.loads(r[1]).get("refits")), "the first batch re-fits"

    broker = history.copy()
    first = Run(broker, kill_after_writes=first_batch, batch=batch)
    with pytest.raises(Killed):
        first.run()
    broker.tick_all(end)
    second = Run(broker, batch=batch)
    assert second.restarted
    second.run()
    truth = {u: s for u, s in whole.states().items() if s is not None}
    assert not field_diffs(second.states(), truth, CORE_FIELDS)
    counts, examples = alert_differences(first.alerts + second.alerts, whole.alerts)
    assert counts["missing"] + counts["unexpected"] + counts["inexact_resends"] == 0, \
        (counts, examples)
