"""The ``driver`` fixture: a core scenario run by each of the core's three drivers, so
the scenario checks live = replay without a broker (the idea of bytewax's fixture that
runs every test under each executor).

- ``harness``: :class:`streams.testing.Harness`, one processor, outputs as objects;
- ``replay``: :class:`streams.replay.engine.Replay`, a processor per partition;
- ``pipeline``: the live worker's :class:`agents.kafka.pipeline.Pipeline` on a dict table:
  each event is a record of JSON bytes at its user's offset, each clock move a tick on
  every partition, referral credits go round the repartition topic, and alerts and
  transitions come out as the records the worker would publish.

Every event goes over the wire first (``to_object``, JSON, ``decode``), so all three
drivers see the same decoded events; an event the input contract refuses is a mistake
of the test. ``send_segment`` sends Segment calls as they are (identify, alias, group,
track, page): the pipeline gets their JSON as the record value. Each driver is shadowed
by a Harness fed the same calls: at the end of the test its alerts, transitions, every
user's user-state record and every merged id's redirect must equal the Harness's, as
JSON, byte for byte. A scenario asserts what it expects on any driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import FEEDBACK, TICK, Record, tick_value
from agents.kafka.topics import KIND_HEADER, Topics
from streams.core.decode import decode, to_object
from streams.core.event import Event
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.replay.engine import Replay
from streams.settings import Settings
from streams.testing import BASE, DAY, Harness

DRIVERS = ("harness", "replay", "pipeline")
# When every record is received: far ahead of any scenario's events, so none is refused
# as from the future (the Harness does not judge skew unless told a receipt time).
RECEIVED_AT = BASE + 20 * 365 * DAY


class Driver:
    """One driver of the core under test, and a Harness shadowing it."""

    kind = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.alerts: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self.reference = Harness(settings)
        self.now = float("-inf")  # the newest instant sent or advanced to

    def send(self, *events: Event) -> Driver:
        for event in events:
            self._deliver(orjson.dumps(to_object(event)))
        return self

    def send_segment(self, *calls: dict[str, Any]) -> Driver:
        """Segment calls, each as the JSON its library sends."""
        for call in calls:
            self._deliver(orjson.dumps(call))
        return self

    def _deliver(self, raw: bytes) -> None:
        event = decode(raw)
        if not isinstance(event, Event):
            raise AssertionError(f"not a valid input, so no driver can take it: {event}")
        self.now = max(self.now, event.occurred_at)
        self.reference.send(event)
        self._send(event, raw)

    def advance_to(self, t: float) -> Driver:
        self.now = max(self.now, t)
        self.reference.advance_to(t)
        self._advance(t)
        return self

    def advance_days(self, day: float) -> Driver:
        return self.advance_to(BASE + day * DAY)

    def alert_types(self, user_id: str | None = None) -> list[str]:
        return [a["type"] for a in self.alerts if user_id is None or a["user_id"] == user_id]

    def stage(self, user_id: str) -> str | None:
        snap = self.snapshot(user_id)
        return None if snap is None else snap["lifecycle_stage"]

    def moves(self, user_id: str) -> list[tuple[str | None, str, str]]:
        return [(t["from_stage"], t["to_stage"], t["reason"]) for t in self.transitions
                if t["user_id"] == user_id]

    def snapshot(self, user_id: str, at: float | None = None) -> dict[str, Any] | None:
        """The user-state record as of ``at`` (default: the newest instant so far)."""
        return self._snapshot(user_id, self.now if at is None else at)

    def merged_into(self, user_id: str) -> str | None:
        """The user an id was merged into (None: it was not)."""
        redirect = self._processor(user_id).redirects.get(user_id)
        return None if redirect is None else redirect.target

    def check_against_the_harness(self) -> None:
        """Alerts, transitions and every user's state equal the shadowing Harness's."""
        ref = self.reference
        assert _wire(self.alerts) == _wire(ref.alerts), f"{self.kind}: alerts differ"
        assert _wire(self.transitions) == _wire(ref.transitions), \
            f"{self.kind}: transitions differ"
        for user_id in sorted(ref.store):
            want = ref.processor.snapshot(ref.store[user_id], self.now)
            assert _wire(self.snapshot(user_id)) == _wire(want), f"{self.kind}: {user_id}"
        for user_id, redirect in sorted(ref.processor.redirects.items()):
            assert self.merged_into(user_id) == redirect.target, f"{self.kind}: {user_id}"
            assert self.snapshot(user_id) is None, f"{self.kind}: {user_id} merged, not gone"

    # --- what each driver does ---

    def _send(self, event: Event, raw: bytes) -> None:
        raise NotImplementedError

    def _processor(self, user_id: str) -> PartitionProcessor:
        raise NotImplementedError

    def _advance(self, t: float) -> None:
        raise NotImplementedError

    def _snapshot(self, user_id: str, at: float) -> dict[str, Any] | None:
        raise NotImplementedError


class HarnessDriver(Driver):
    kind = "harness"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.harness = Harness(settings, alerts=self.alerts, transitions=self.transitions)

    def _send(self, event: Event, raw: bytes) -> None:
        self.harness.send(event)

    def _processor(self, user_id: str) -> PartitionProcessor:
        return self.harness.processor

    def _advance(self, t: float) -> None:
        self.harness.advance_to(t)

    def _snapshot(self, user_id: str, at: float) -> dict[str, Any] | None:
        state = self.harness.store.get(user_id)
        return None if state is None else self.harness.processor.snapshot(state, at)


class ReplayDriver(Driver):
    kind = "replay"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.replay = Replay(settings, RECEIVED_AT, on_alert=self.alerts.append,
                             on_transition=self.transitions.append)

    def _send(self, event: Event, raw: bytes) -> None:
        self.replay.feed([event])

    def _processor(self, user_id: str) -> PartitionProcessor:
        return self.replay.processors[partition_for(user_id, self.settings.partitions)]

    def _advance(self, t: float) -> None:
        self.replay.advance(t)

    def _snapshot(self, user_id: str, at: float) -> dict[str, Any] | None:
        proc = self.replay.processors[partition_for(user_id, self.settings.partitions)]
        state = proc.store.get(user_id)
        return None if state is None else proc.snapshot(state, at)


class PipelineDriver(Driver):
    kind = "pipeline"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.topics = Topics.from_settings(settings)
        self.table: dict[str, Any] = {}
        self.pipeline = Pipeline(settings, self.topics, Metrics(), self.table,
                                 wall_clock=lambda: RECEIVED_AT)
        self._offsets: dict[tuple[str, int], int] = {}

    def _record(self, topic: str, partition: int, key: bytes | None, value: bytes,
                headers: dict[str, bytes] | None = None) -> Record:
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        return Record(topic, partition, offset, key, value, RECEIVED_AT, headers or {})

    def _send(self, event: Event, raw: bytes) -> None:
        p = partition_for(event.user_id, self.settings.partitions)
        self._batch([self._record(self.topics.events, p, event.user_id.encode(), raw)])

    def _processor(self, user_id: str) -> PartitionProcessor:
        return self.pipeline.processor(partition_for(user_id, self.settings.partitions))

    def _advance(self, t: float) -> None:
        self._batch([self._record(self.topics.events, p, None, tick_value(t), {KIND_HEADER: TICK})
                     for p in range(self.settings.partitions)])

    def _batch(self, records: list[Record]) -> None:
        """One batch, as the worker handles it; then whatever it sent to the repartition
        topic (journey's own news), as the worker reads it back."""
        while records:
            sends = self.pipeline.handle(records)
            self.pipeline.commit_state()
            records = []
            for s in sends:
                assert s.topic != self.topics.dead_letter, orjson.loads(s.value)
                if s.topic in (self.topics.churn_warnings, self.topics.recall_triggers):
                    self.alerts.append(orjson.loads(s.value))
                elif s.topic == self.topics.transitions:
                    self.transitions.append(orjson.loads(s.value))
                elif s.topic == self.topics.repartition:
                    assert dict(s.headers).get(KIND_HEADER) == FEEDBACK and s.partition is not None
                    records.append(self._record(s.topic, s.partition, s.key, s.value,
                                                dict(s.headers)))

    def _snapshot(self, user_id: str, at: float) -> dict[str, Any] | None:
        state = self.pipeline.store.get(user_id)
        proc = self.pipeline.processors.get(partition_for(user_id, self.settings.partitions))
        return None if state is None or proc is None else proc.snapshot(state, at)


KINDS: dict[str, Callable[[Settings], Driver]] = {
    "harness": HarnessDriver, "replay": ReplayDriver, "pipeline": PipelineDriver}
DriverFactory = Callable[..., Driver]


def _wire(value: Any) -> bytes:
    return orjson.dumps(value)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> Iterator[DriverFactory]:
    """``driver(**overrides)``: the scenario's driver (each test runs once per kind) on
    the default settings with these overrides, and one partition unless they say
    otherwise. At teardown, each driver made is held against its shadowing Harness."""
    made: list[Driver] = []

    def build(**overrides: Any) -> Driver:
        settings = Settings().with_overrides(**{"partitions": 1, **overrides})
        made.append(KINDS[request.param](settings))
        return made[-1]

    yield build
    for d in made:
        d.check_against_the_harness()
