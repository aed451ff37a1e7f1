"""What ``journey bootstrap`` writes and how it reads an app's changelog, without a broker
(the broker tests are in tests/kafka/test_bootstrap.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

from agents.cli.bootstrap import digest_of
from agents.kafka import codec
from agents.kafka.bootstrap import (
    COMPLETE,
    STARTED,
    Found,
    PartitionLog,
    Plan,
    _note,
    marker_key,
    unfinished,
)
from agents.kafka.table import ctx_key
from agents.kafka.topics import Topics
from streams.core.partitioning import partition_for
from streams.settings import Settings

N = 4


def test_each_partitions_marker_lives_on_that_partition() -> None:
    keys = [marker_key(p, N) for p in range(N)]
    assert [partition_for(k, N) for k in keys] == list(range(N))
    assert not set(keys) & {ctx_key(p, N) for p in range(N)}


def test_a_worker_refuses_a_partition_whose_bootstrap_did_not_complete() -> None:
    started = codec.dumps({"bootstrap": STARTED, "digest": "ab" * 32})
    table = {marker_key(2, N): started, marker_key(1, N): {"bootstrap": COMPLETE}}
    problem = unfinished(table, [0, 1, 2], N)
    assert problem is not None and "partition 2" in problem
    assert "run `journey bootstrap` again" in problem
    assert unfinished(table, [0, 1, 3], N) is None  # complete, or never bootstrapped


def test_the_plan_ends_each_partition_with_its_checkpoint_and_a_lone_marker() -> None:
    users = {p: [(f"u{p}-{i}".encode(), b"v") for i in range(3)] for p in range(N)}
    plan = Plan("cl", N, {"digest": "d"}, lambda p: iter(users[p]), {p: 3 for p in range(N)},
                {p: {"clock": 1.0, "bootstrap": "d"} for p in range(N)}, {1: {b"gone"}})
    assert plan.records(0) == 3 + 3 and plan.records(1) == 3 + 1 + 3
    assert list(plan.body(1)) == [*users[1], (b"gone", None)]  # tombstones after users
    for state in (STARTED, COMPLETE):
        markers = plan.markers(state)
        assert all(len(markers[p]) == 1 for p in range(N))  # one record: a batch alone
        key, value = markers[3][0]
        assert key == marker_key(3, N).encode()
        assert codec.loads(value or b"") == {"digest": "d", "bootstrap": state}
    assert plan.checkpoints()[2] == [(ctx_key(2, N).encode(),
                                      codec.dumps({"clock": 1.0, "bootstrap": "d"}))]


def _log(*records: tuple[str, object]) -> PartitionLog:
    log = PartitionLog()
    for key, value in records:
        raw = None if value is None else codec.dumps(value)
        record = SimpleNamespace(key=key.encode(), value=raw, partition=0)
        _note(log, record)  # type: ignore[arg-type]
    return log


def _found(logs: dict[int, PartitionLog], committed: bool = False) -> Found:
    topics = Topics.from_settings(Settings())
    return Found(topics, "cl", logs, {}, {}, {}, {(topics.events, 0): 7} if committed else {})


def test_what_the_changelog_says_about_going_live() -> None:
    ctx, marker = ctx_key(0, N), marker_key(0, N)
    fresh = _found({0: _log()})
    assert fresh.went_live() is None and fresh.previous("d") is None
    assert _found({0: _log()}, committed=True).went_live() is not None  # no bootstrap
    booted = _log((marker, {"bootstrap": STARTED, "digest": "d"}), ("u1", ["u", []]),
                  (ctx, {"clock": 1.0, "bootstrap": "d"}),
                  (marker, {"bootstrap": COMPLETE, "digest": "d"}))
    assert booted.keys == {marker.encode(), b"u1", ctx.encode()}
    done = _found({0: booted}, committed=True)  # workers skipping old input commit too
    assert done.went_live() is None and done.previous("d") == {"bootstrap": COMPLETE,
                                                              "digest": "d"}
    assert done.previous("other") is None
    _note(booted, SimpleNamespace(key=ctx.encode(), value=codec.dumps({"clock": 2.0}),
                                  partition=0))  # type: ignore[arg-type]
    assert "workers have processed input" in (_found({0: booted}).went_live() or "")
    _note(booted, SimpleNamespace(key=b"u1", value=None, partition=0))  # type: ignore[arg-type]
    assert b"u1" not in booted.keys


def test_the_digest_follows_the_inputs_and_the_rules_not_the_plumbing(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    args = argparse.Namespace(until=None, input_from=None, live_from=None)
    base = digest_of([path], Settings(), args)
    assert digest_of([path], Settings().with_overrides(session_timeout_seconds=9), args) == base
    assert digest_of([path], Settings().with_overrides(purchase_cycle_days=9), args) != base
    assert digest_of([path], Settings().with_overrides(partitions=8), args) != base
    assert digest_of([path], Settings(), argparse.Namespace(
        until=1.0, input_from=None, live_from=None)) != base
    path.write_bytes(b'{"a": 2}\n')
    assert digest_of([path], Settings(), args) != base
