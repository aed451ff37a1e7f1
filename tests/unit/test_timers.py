"""Inactivity deadlines: the index itself, and timers firing in the processor."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from streams.core.outputs import Outputs
from streams.core.state import UserState
from streams.core.timefmt import rfc3339
from streams.core.timers import DeadlineIndex
from streams.settings import Settings
from streams.testing import Harness, HarnessFactory, at, make_event


@pytest.fixture
def index() -> Callable[[dict[str, float]], DeadlineIndex]:
    """``index({user: deadline})``: an index holding these wake-ups."""

    def build(deadlines: dict[str, float]) -> DeadlineIndex:
        idx = DeadlineIndex()
        for user, deadline in deadlines.items():
            idx.register(user, deadline)
        return idx

    return build


def drain(idx: DeadlineIndex, now: float) -> list[tuple[float, str]]:
    out = []
    while (item := idx.pop_due(now)) is not None:
        out.append(item)
    return out


# --- the index --------------------------------------------------------------------------


def test_pops_in_deadline_order(index: Callable[[dict[str, float]], DeadlineIndex]) -> None:
    idx = index({"c": 30.0, "a": 10.0, "b": 20.0, "d": 40.0})
    assert len(idx) == 4 and idx.earliest() == 10.0
    assert drain(idx, 30.0) == [(10.0, "a"), (20.0, "b"), (30.0, "c")]
    assert len(idx) == 1 and idx.earliest() == 40.0


def test_equal_deadlines_pop_by_user_id(index: Callable[[dict[str, float]],
                                                         DeadlineIndex]) -> None:
    idx = index({"z": 5.0, "m": 5.0, "a": 5.0})
    assert [u for _, u in drain(idx, 5.0)] == ["a", "m", "z"]


def test_a_deadline_at_now_is_due(index: Callable[[dict[str, float]], DeadlineIndex]) -> None:
    idx = index({"a": 10.0})
    assert idx.pop_due(9.99) is None
    assert idx.pop_due(10.0) == (10.0, "a")
    assert idx.pop_due(100.0) is None and idx.earliest() == float("inf") and len(idx) == 0


def test_an_earlier_registration_supersedes_a_later_one(
        index: Callable[[dict[str, float]], DeadlineIndex]) -> None:
    idx = index({"a": 50.0, "b": 20.0})
    idx.register("a", 10.0)  # earlier: replaces the day-50 wake-up
    idx.register("b", 60.0)  # later: the day-20 wake-up stays, the processor re-registers
    assert len(idx) == 2
    assert drain(idx, 100.0) == [(10.0, "a"), (20.0, "b")]
    assert len(idx) == 0


def test_earliest_is_a_lower_bound(index: Callable[[dict[str, float]], DeadlineIndex]) -> None:
    rng = random.Random(3)
    idx = index({})
    registered: dict[str, float] = {}
    for _ in range(2000):
        user, d = f"u{rng.randrange(50)}", rng.uniform(0, 1000)
        idx.register(user, d)
        registered[user] = min(registered.get(user, d), d)
        assert idx.earliest() <= min(registered.values())


def test_heap_stays_bounded_under_churn() -> None:
    idx = DeadlineIndex()
    rng = random.Random(7)
    users = [f"u{i}" for i in range(10)]
    d = 1e9
    for _ in range(20000):  # ever earlier wake-ups: every one pushes a heap entry
        d -= rng.uniform(0, 10)
        idx.register(rng.choice(users), d)
        assert len(idx._heap) <= 2 * len(idx) + 65
    popped = drain(idx, 2e9)
    assert len(popped) == 10 and sorted(u for _, u in popped) == sorted(users)


@pytest.mark.parametrize("users", [100, 5000])
def test_due_count_matches_a_brute_force_count(users: int) -> None:
    rng = random.Random(users)
    idx = DeadlineIndex()
    truth: dict[str, float] = {}
    for i in range(users):
        d = rng.uniform(0, 1000)
        idx.register(f"u{i}", d)
        truth[f"u{i}"] = d
    for i in range(0, users, 3):  # superseded entries must not be counted
        d = rng.uniform(0, truth[f"u{i}"])
        idx.register(f"u{i}", d)
        truth[f"u{i}"] = d
    for now in (-1.0, 0.5, 123.0, 500.0, 999.9, 2000.0):
        assert idx.due_count(now) == sum(1 for d in truth.values() if d <= now)


# --- timers in the processor ------------------------------------------------------------


def test_timers_fire_without_further_events(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0))
    assert h.state("u").wake_at == at(7)
    h.advance_days(6.5)
    assert h.alerts == [] and h.state("u").stage == "new"
    h.advance_days(7)
    assert h.alert_types() == ["churn_warning"]
    assert h.state("u").wake_at == at(30)


def test_a_deadline_moved_later_by_activity_does_not_fire_early(
        harness: HarnessFactory) -> None:
    h = harness()
    for day in range(40):  # browsing daily: the 7-day deadline keeps moving
        h.send(make_event("u", "page_view", day))
    h.advance_days(45.9)
    assert h.alerts == [] and h.state("u").stage == "new"
    assert len(h.processor.index) == 1
    h.advance_days(46)
    assert h.alert_types() == ["churn_warning"]
    assert h.alerts[0]["detected_at"] == rfc3339(at(46))


def test_a_jump_over_both_deadlines_warns_then_recalls(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=10.0)).advance_days(1000)
    warning, recall = h.alerts
    assert (warning["type"], recall["type"]) == ("churn_warning", "recall_trigger")
    assert warning["detected_at"] == rfc3339(at(45))
    assert recall["detected_at"] == rfc3339(at(90))
    assert [t["at"] for t in h.transitions[1:]] == [rfc3339(at(45)), rfc3339(at(90))]
    assert h.state("u").wake_at is None and len(h.processor.index) == 0


def test_timers_fire_in_deadline_order_across_users(harness: HarnessFactory) -> None:
    h = harness()
    days = {"a": 0.7, "b": 0.1, "c": 0.5, "d": 0.3, "e": 0.9}
    h.send(*sorted((make_event(u, "page_view", d) for u, d in days.items()),
                   key=lambda e: e.occurred_at))
    h.advance_days(100)
    fired = [(t["at"], t["user_id"]) for t in h.transitions if t["reason"] == "inactivity"]
    assert fired == sorted(fired)
    assert [u for _, u in fired[:5]] == ["b", "d", "c", "a", "e"]  # the five warnings
    detected = [a["detected_at"] for a in h.alerts]
    assert detected == sorted(detected)


def test_events_fire_due_timers_of_other_users_first(harness: HarnessFactory) -> None:
    h = harness().send(make_event("quiet", "page_view", 0))
    h.send(make_event("busy", "page_view", 8))  # the clock passes quiet's deadline
    assert h.alert_types("quiet") == ["churn_warning"]
    assert h.alerts[0]["detected_at"] == rfc3339(at(7))


def test_a_deadline_at_the_events_instant_fires_first(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0), make_event("u", "page_view", 7))
    assert h.alert_types() == ["churn_warning"]
    assert [(t["from_stage"], t["to_stage"]) for t in h.transitions] == \
        [(None, "new"), ("new", "declining"), ("declining", "new")]


def test_advance_backwards_changes_nothing(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 10))
    before = h.state("u").to_list()
    h.advance_days(5)
    assert h.processor.clock == at(10)
    assert h.state("u").to_list() == before and h.transitions[-1]["from_stage"] is None


def test_churned_users_leave_the_index(harness: HarnessFactory) -> None:
    h = harness().send(*(make_event(f"u{i}", "page_view", 0) for i in range(5)))
    assert len(h.processor.index) == 5
    h.advance_days(31)
    assert len(h.processor.index) == 0
    h.send(make_event("u0", "page_view", 32))
    assert len(h.processor.index) == 1


class CountingStore(dict[str, UserState]):
    """A dict that counts reads, to see how many users a sweep touches."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> UserState:
        self.reads += 1
        return super().__getitem__(key)


def test_a_sweep_touches_only_the_due_users() -> None:
    # the model re-fit walks its sample (population_sample_size users); keep it out of the
    # sweep measured here by putting the next epoch years away
    settings = Settings().with_overrides(refit_interval_days=3650.0)
    store = CountingStore()
    h = Harness(settings, store=store)
    h.send(make_event("early", "page_view", 0))
    h.send(*(make_event(f"u{i}", "page_view", 3) for i in range(10_000)))
    assert len(h.processor.index) == 10_001
    assert h.processor.index.due_count(at(7.5)) == 1
    store.reads = 0
    out = Outputs()
    h.processor.advance(at(7.5), out)
    assert store.reads == 1
    assert out.touched == {"early"}
    assert [a["user_id"] for a in out.alerts] == ["early"]
    store.reads = 0
    h.processor.advance(at(9.0), out)  # nothing due: nobody read
    assert store.reads == 0
    h.processor.advance(at(10.5), out)  # everybody due
    assert store.reads == 10_000


def test_a_refit_due_before_a_timer_runs_first_whatever_the_ticks(
        harness: HarnessFactory) -> None:
    """The first re-fit (day 21) creates the value tiers; x's warning is due at day 21.5, so
    it must see them, whether the clock gets there in one sweep (replay) or in ticks (live).
    s's deadline moved earlier (day 20 -> 15.5), leaving a superseded day-20 wake-up that
    surfaces mid-sweep and must not count as the next timer."""

    def run(*ticks: float) -> list[tuple[str, str]]:
        h = harness(refit_interval_days=21.0, refit_min_buyers=5, purchase_cycle_days=10.0,
                    activity_grace_days=1.0, new_user_decline_days=20.0,
                    new_user_churn_days=40.0)
        h.send(make_event("s", "page_view", 0))
        h.send(*(make_event(f"b{i}", "purchase", 0.1, amount=10.0 * (i + 1))
                 for i in range(10)))
        h.send(make_event("s", "purchase", 0.5, amount=1.0),
               make_event("x", "purchase", 6.5, amount=1000.0))
        for day in ticks:
            h.advance_days(day)
        return [(a["value_tier"], a["detected_at"]) for a in h.alerts if a["user_id"] == "x"]

    expected = [("top", rfc3339(at(21.5)))]
    assert run(20.5, 22) == expected
    assert run(22) == expected
