"""A replay that writes no alert or transition file only counts them: it builds neither
record (streams.core.outputs.Outputs.alert_records and transition_records), and leaves
the same state and the same summary as a replay that writes them."""

from __future__ import annotations

from typing import Any

import pytest

from streams.core import alerts, decisions
from streams.core.event import Event
from streams.replay import Replay, parallel
from streams.settings import Settings
from streams.synth import SynthConfig
from streams.testing import BASE, DAY
from tests.support.histories import synth_events

UNTIL = BASE + 150 * DAY


def _events(referrals: bool) -> list[Event]:
    return synth_events(SynthConfig(users=400, days=120, start=BASE, seed=11), referrals)


@pytest.fixture(scope="module")
def with_referrals() -> list[Event]:
    return _events(True)


@pytest.fixture(scope="module")
def without_referrals() -> list[Event]:
    return _events(False)


def _replay(events: list[Event], written: bool, jobs: int | None = None) -> dict[str, Any]:
    kept: list[dict[str, Any]] = []
    writers = {"on_alert": kept.append, "on_transition": kept.append} if written else {}
    # the report's daily series (serial only) counts alerts by the day they came
    replay = Replay(Settings(), received_at=UNTIL, track_series=jobs is None, **writers)
    assert replay.out.alert_records is written and replay.out.transition_records is written
    if jobs is None:
        replay.feed(events, UNTIL)
    else:
        assert parallel.feed(replay, events, UNTIL, jobs, min_events=0)
    as_of = replay.finish(UNTIL)
    return {"records": [s.to_list() for store in replay.stores
                        for _, s in sorted(store.items())],
            "snapshots": list(replay.snapshots(as_of)),
            "summary": replay.summary.as_dict(), "written": len(kept),
            "per_day": replay.summary.alerts_per_day}


def test_counting_only_leaves_the_same_state_and_summary(
        with_referrals: list[Event], monkeypatch: pytest.MonkeyPatch) -> None:
    full = _replay(with_referrals, written=True)
    assert full["summary"]["alerts"] and full["written"] > 100  # the case is not empty

    def not_built(*_: Any, **__: Any) -> Any:
        raise AssertionError("a record nobody writes was built")

    monkeypatch.setattr(alerts, "build_alert", not_built)
    monkeypatch.setattr(decisions, "_transition_record", not_built)
    counted = _replay(with_referrals, written=False)
    assert counted["summary"]["reactivations"]  # alert ids and control flags were kept
    assert len(full["per_day"]) > 10
    for key in ("records", "snapshots", "summary", "per_day"):
        assert counted[key] == full[key], key


def test_parallel_workers_count_the_same_way(without_referrals: list[Event]) -> None:
    full = _replay(without_referrals, written=True)
    counted = _replay(without_referrals, written=False, jobs=2)
    for key in ("records", "snapshots", "summary"):
        assert counted[key] == full[key], key
