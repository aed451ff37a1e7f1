"""Replay with partitions in worker processes leaves what the serial replay leaves:
state, alerts, transitions, dead letters and the summary, in the same order."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.core.decode import decode
from streams.core.event import Event
from streams.replay import Replay, parallel
from streams.settings import Settings
from streams.synth import SynthConfig, generate
from streams.testing import BASE, DAY


def _history(referrals: bool) -> list[Event]:
    raw, _ = generate(SynthConfig(users=400, days=90, start=BASE, seed=7, duplicate_share=0.02))
    events = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        if not referrals:
            item = {**item, "properties": {k: v for k, v in item.get("properties", {}).items()
                                           if k != "referred_by"}}
        e = decode(orjson.dumps(item))
        if isinstance(e, Event):
            events.append(e)
    return events


@pytest.fixture(scope="module")
def with_referrals() -> list[Event]:
    return _history(True)


@pytest.fixture(scope="module")
def without_referrals() -> list[Event]:
    return _history(False)


def _run(events: list[Event], jobs: int | None, until: float | None = None,
         ) -> tuple[dict[str, Any], bool]:
    got: dict[str, list[bytes]] = {"alerts": [], "transitions": [], "dead": []}
    replay = Replay(Settings(), received_at=BASE + 1000 * DAY,
                    on_alert=lambda r: got["alerts"].append(orjson.dumps(r)),
                    on_transition=lambda r: got["transitions"].append(orjson.dumps(r)),
                    on_dead_letter=lambda r: got["dead"].append(orjson.dumps(r)))
    if jobs is None:
        replay.feed(events, until)
        ran = False
    else:
        ran = parallel.feed(replay, events, until, jobs, min_events=0)
    as_of = replay.finish(until)
    state = [orjson.dumps(s) for s in replay.snapshots(as_of)]
    summary = replay.summary.as_dict()
    summary["came_back"] = sorted(replay.summary.came_back)
    credited = sum(s.referred_converted for store in replay.stores for s in store.values())
    return {**got, "state": state, "summary": summary, "credited": credited}, ran


def test_without_referrals_partitions_run_in_parallel_with_the_same_outputs(
        without_referrals: list[Event]) -> None:
    until = BASE + 70 * DAY  # some events after the cut, some timers due by it
    serial, _ = _run(without_referrals, None, until)
    par, ran = _run(without_referrals, 2, until)
    assert ran
    assert serial["alerts"] and serial["transitions"] and serial["summary"]["after_until"]
    assert par == serial


def test_a_history_with_referrals_is_replayed_serially(with_referrals: list[Event]) -> None:
    """Credits cross partitions: the parallel feed declines, and the outputs still match."""
    serial, _ = _run(with_referrals, None)
    par, ran = _run(with_referrals, 2)
    assert not ran
    assert serial["credited"] > 0
    assert par == serial


def test_a_credit_met_by_a_worker_aborts_the_parallel_feed_before_any_output(
        with_referrals: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    serial, _ = _run(with_referrals, None)
    monkeypatch.setattr(parallel, "crosses_partitions", lambda _e: False)
    par, ran = _run(with_referrals, 2)
    assert not ran
    assert par == serial


def test_referrals_and_identity_stitches_keep_the_replay_serial() -> None:
    def event(type_: str, **props: object) -> Event:
        return Event("e1", "u1", type_, BASE, properties=dict(props))

    assert parallel.crosses_partitions(event("signup", referred_by="u2"))
    assert parallel.crosses_partitions(event("alias", previous_id="anon-1"))
    assert parallel.crosses_partitions(event("identify", previous_id="anon-1"))
    assert not parallel.crosses_partitions(event("identify"))
    assert not parallel.crosses_partitions(event("purchase", amount=3.0))
