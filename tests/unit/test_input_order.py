"""A restarted partition goes over its last batch in the order that batch took its two
input topics (``agents.kafka.order``), however the consumer fetches them this time."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from agents.kafka.metrics import Metrics
from agents.kafka.order import Replan, joined, note, stored_runs
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import Record
from agents.kafka.table import ctx_key
from agents.kafka.topics import Topics
from streams.core.partitioning import partition_for
from streams.settings import Settings

SETTINGS = Settings().with_overrides(partitions=2)
TOPICS = Topics.from_settings(SETTINGS)
START = 1_767_225_600.0  # 2026-01-01T00:00Z
USER = next(u for u in (f"u{i}" for i in range(100)) if partition_for(u, 2) == 0)


def _purchase(topic: str, offset: int, n: int) -> Record:
    body = {"event_id": f"{topic}-{offset}", "user_id": USER, "type": "purchase",
            "occurred_at": f"2026-01-{1 + n:02d}T10:00:00Z",
            "properties": {"amount": 10.0 + n, "currency": "EUR", "order_id": f"o{n}"}}
    return Record(topic, 0, offset, USER.encode(), orjson.dumps(body), START + n * 86400.0)


def _batch() -> list[Record]:
    """Events and repartition records of partition 0, interleaved as one fetch fell."""
    e = [_purchase(TOPICS.events, i, i) for i in range(3)]
    r = [_purchase(TOPICS.repartition, i, 3 + i) for i in range(3)]
    return [e[0], e[1], r[0], e[2], r[1], r[2]]


class Wall:
    def __init__(self) -> None:
        self.now = START + 30 * 86400.0

    def __call__(self) -> float:
        return self.now


def _pipeline(table: dict[str, Any], wall: Wall | None = None) -> Pipeline:
    return Pipeline(SETTINGS, TOPICS, Metrics(), table, wall_clock=wall or Wall())


def _order(pipeline: Pipeline) -> Any:
    ctx = pipeline.table[ctx_key(0, SETTINGS.partitions)]
    return ctx.get("order")


def _first_pass() -> dict[str, Any]:
    table: dict[str, Any] = {}
    first = _pipeline(table)
    first.handle(_batch())
    first.commit_state()
    assert _order(first) == [2, -1, 1, -2]
    return copy.deepcopy(table)


def test_runs_count_each_topic_in_turn() -> None:
    runs: list[int] = []
    for events in (True, True, False, True, False, False):
        note(runs, events)
    assert runs == [2, -1, 1, -2]
    assert stored_runs({"order": runs}) == runs
    assert stored_runs({"order": "x"}) == [] and stored_runs({}) == [] and stored_runs(None) == []
    assert stored_runs({"order": [2, True, 0, "3", -1]}) == [2, -1]


def test_a_plan_holds_records_back_until_their_turn() -> None:
    plan = Replan(TOPICS.events, [2, -1, 1], START)
    e = [_purchase(TOPICS.events, i, i) for i in range(4)]
    r = [_purchase(TOPICS.repartition, i, i) for i in range(2)]
    assert plan.offer(r[0]) == []  # its turn comes after two events
    assert plan.offer(r[0]) == []  # a second copy (a heal) is not held twice
    assert plan.offer(r[1]) == []
    assert plan.offer(e[0]) == [e[0]]
    assert plan.offer(e[1]) == [e[1], r[0]]
    assert not plan.done and plan.held() == 1
    # the last run done, the rest goes in arrival order
    assert plan.offer(e[2]) == [e[2], r[1]]
    assert plan.done and plan.held() == 0


def test_a_restart_goes_over_the_batch_in_the_recorded_order() -> None:
    table = _first_pass()
    second = _pipeline(table)
    batch = _batch()
    second.handle([r for r in batch if r.topic == TOPICS.repartition]
                  + [r for r in batch if r.topic == TOPICS.events])
    second.commit_state()
    assert _order(second) == [2, -1, 1, -2]


def test_records_held_back_are_not_read_again_as_a_hole() -> None:
    table = _first_pass()
    second = _pipeline(table)
    batch = _batch()
    rep = [r for r in batch if r.topic == TOPICS.repartition]
    assert second.restore_for(rep) == [0]
    second.handle(rep)  # held: the plan starts with events
    assert second.held(TOPICS.repartition, 0) == -1
    second.commit_state()
    events = [r for r in batch if r.topic == TOPICS.events]
    assert second.gaps(events) == []
    assert second.gaps([_purchase(TOPICS.repartition, 3, 6)]) == []  # after the held ones
    second.handle(events)
    second.commit_state()
    assert second.held(TOPICS.repartition, 0) == 2 and second.held(TOPICS.events, 0) == 2
    assert _order(second) == [2, -1, 1, -2]


def test_a_plan_whose_records_do_not_come_is_given_up_after_the_outage_bound() -> None:
    table = _first_pass()
    wall = Wall()
    second = _pipeline(table, wall)
    rep = [r for r in _batch() if r.topic == TOPICS.repartition]
    second.handle(rep)
    wall.now += SETTINGS.broker_outage_seconds - 1
    second.handle([])
    assert second.held(TOPICS.repartition, 0) == -1  # still waiting for the events
    wall.now += 2
    second.handle([])
    assert second.held(TOPICS.repartition, 0) == 2  # released, in arrival order
    second.commit_state()
    assert _order(second) == [-3]


def test_a_revoked_partition_forgets_its_plan() -> None:
    table = _first_pass()
    second = _pipeline(table)
    second.handle([r for r in _batch() if r.topic == TOPICS.repartition])
    second.revoke([0])
    second.handle(_batch())  # restored again, the plan read again from the checkpoint
    second.commit_state()
    assert _order(second) == [2, -1, 1, -2]


def test_a_restart_killed_half_way_through_its_plan_keeps_the_whole_plan() -> None:
    table = _first_pass()
    second = _pipeline(table)
    batch = _batch()
    second.handle(batch[:3])  # e0, e1, r0: the plan's first two runs
    second.commit_state()
    assert second.held(TOPICS.events, 0) == 1 and second.held(TOPICS.repartition, 0) == 0
    assert _order(second) == [2, -1, 1, -2]  # what was applied, then what is still due
    third = _pipeline(copy.deepcopy(table))  # killed before the rest came
    third.handle([r for r in batch if r.topic == TOPICS.repartition]
                 + [r for r in batch if r.topic == TOPICS.events])
    third.commit_state()
    assert _order(third) == [2, -1, 1, -2]


def test_joined_runs_merge_at_the_seam() -> None:
    assert joined([2, -1], [-2, 3]) == [2, -3, 3]
    assert joined([], [1]) == [1] and joined([1], []) == [1]
