"""Replay with partitions in worker processes leaves what the serial replay leaves:
state, alerts, transitions, dead letters and the summary, in the same order."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from streams.core.event import Event
from streams.replay import Replay, parallel
from streams.replay.engine import LineWriter
from streams.settings import Settings
from streams.synth import SynthConfig
from streams.testing import BASE, DAY
from tests.support.histories import synth_events


def _history(referrals: bool) -> list[Event]:
    return synth_events(SynthConfig(users=400, days=90, start=BASE, seed=7,
                                    duplicate_share=0.02), referrals)


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


def _lines(events: list[Event], jobs: int | None) -> tuple[dict[str, bytes], bool]:
    """A replay writing JSON lines, as ``journey replay`` does to its files."""
    files = {name: io.BytesIO() for name in ("alerts", "transitions", "dead")}
    replay = Replay(Settings(), received_at=BASE + 1000 * DAY,
                    on_alert=LineWriter(files["alerts"].write),
                    on_transition=LineWriter(files["transitions"].write),
                    on_dead_letter=LineWriter(files["dead"].write))
    ran = False
    if jobs is None:
        replay.feed(events)
    else:
        ran = parallel.feed(replay, events, None, jobs, min_events=0)
    as_of = replay.finish(None)
    got = {name: fh.getvalue() for name, fh in files.items()}
    got["state"] = b"".join(orjson.dumps(s) for s in replay.snapshots(as_of))
    got["summary"] = orjson.dumps(replay.summary.as_dict())
    return got, ran


def test_workers_write_the_serial_replays_lines_byte_for_byte(
        without_referrals: list[Event]) -> None:
    serial, _ = _lines(without_referrals, None)
    par, ran = _lines(without_referrals, 2)
    assert ran and serial["alerts"].count(b"\n") > 10 and serial["transitions"]
    assert par == serial


def test_workers_send_nothing_back_for_writers_that_drop_it(
        without_referrals: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    """With no output files only the counts and churn models matter: the workers send no
    record back, and the summary and state are the serial replay's."""
    sent: list[Any] = []
    read = parallel._read

    def reading(path: Any) -> Any:
        for tagged in read(path):
            sent.append(tagged)
            yield tagged

    monkeypatch.setattr(parallel, "_read", reading)

    def run(jobs: int | None) -> tuple[bytes, list[bytes], bool]:
        replay = Replay(Settings(), received_at=BASE + 1000 * DAY)
        ran = False
        if jobs is None:
            replay.feed(without_referrals)
        else:
            ran = parallel.feed(replay, without_referrals, None, jobs, min_events=0)
        as_of = replay.finish(None)
        return (orjson.dumps(replay.summary.as_dict()),
                [orjson.dumps(s) for s in replay.snapshots(as_of)], ran)

    serial = run(None)
    par = run(2)
    assert par[2] and par[:2] == serial[:2]
    assert orjson.loads(serial[0])["alerts"]  # there were alerts to leave behind
    assert all(tagged[1:5] == (None, None, None, None) for tagged in sent)
