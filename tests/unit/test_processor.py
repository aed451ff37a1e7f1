"""The partition processor: idempotency, lateness, referrals, the re-fit schedule, dead
letters (its census and its restore after a kill: test_restore.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streams.core.deadletter import PAYLOAD_CAP, dead_letter
from streams.core.event import Event
from streams.core.logs import key_of
from streams.core.outputs import Outputs
from streams.core.partitioning import partition_for
from streams.core.processor import PartitionProcessor
from streams.core.state import UserState
from streams.settings import Settings
from streams.testing import BASE, DAY, Harness, HarnessFactory, at, make_event
from tests.support.drivers import DriverFactory


def frozen(h: Harness, user: str) -> list[Any]:
    return json.loads(json.dumps(h.state(user).to_list()))


# --- idempotency --------------------------------------------------------------------------


def test_the_same_event_twice_is_a_duplicate(harness: HarnessFactory) -> None:
    e = make_event("u", "purchase", 1, amount=10.0, order_id="o1")
    h = harness().send(e)
    before, outputs = frozen(h, "u"), (len(h.alerts), len(h.transitions))
    h.send(e)
    assert h.duplicates == 1
    assert frozen(h, "u") == before
    assert (len(h.alerts), len(h.transitions)) == outputs
    assert h.state("u").orders == 1


def test_a_resent_event_changes_nothing_under_every_driver(driver: DriverFactory) -> None:
    """A producer retry: the same event again, later, in a record of its own."""
    e = make_event("u", "purchase", 1, amount=10.0, currency="EUR", order_id="o1")
    d = driver().send(e, make_event("u", "page_view", 2))
    before, outputs = d.snapshot("u", at(3)), (len(d.alerts), len(d.transitions))
    d.send(e)
    assert d.snapshot("u", at(3)) == before and before is not None
    assert before["orders"] == 1 and before["monetary"] == 10.0
    assert (len(d.alerts), len(d.transitions)) == outputs


def test_a_redelivered_position_is_a_duplicate(harness: HarnessFactory) -> None:
    h = harness()
    h.send(make_event("u", "page_view", 1), position=5)
    before = frozen(h, "u")
    h.send(make_event("u", "purchase", 1.1, amount=3.0), position=5)
    h.send(make_event("u", "purchase", 1.2, amount=3.0), position=4)
    assert h.duplicates == 2
    assert frozen(h, "u") == before
    h.send(make_event("u", "purchase", 1.3, amount=3.0), position=6)
    assert h.state("u").orders == 1 and h.state("u").max_position == 6
    assert h.processor.applied_position == 6


def test_positions_are_per_user(harness: HarnessFactory) -> None:
    h = harness().send(make_event("a", "page_view", 1), position=9)
    h.send(make_event("b", "page_view", 1), position=3)  # another user: not a redelivery
    assert h.duplicates == 0 and "b" in h.store
    assert h.processor.applied_position == 9


def test_the_same_order_under_two_event_ids_counts_once(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 1, amount=25.0, order_id="A-1"),
                       make_event("u", "purchase", 1.01, amount=25.0, order_id="A-1"))
    assert h.duplicates == 0  # not the same event, but the same order
    assert (h.state("u").orders, h.state("u").monetary) == (1, 25.0)
    h.send(make_event("u", "purchase", 2, amount=25.0, order_id="A-2"))
    assert h.state("u").orders == 2


def test_the_same_order_under_two_ids_keeps_the_same_purchase_in_any_order(
        harness: HarnessFactory) -> None:
    """Which copy of a re-sent order is kept must not depend on which arrives first."""
    a = make_event("u", "purchase", 1.0, amount=10.0, order_id="A-1")
    b = make_event("u", "purchase", 1.01, amount=10.0, order_id="A-1")
    first, second = harness().send(a, b), harness().send(b, a)
    assert first.state("u").orders == second.state("u").orders == 1
    assert first.state("u").last_purchase_at == second.state("u").last_purchase_at


def test_a_refund_arriving_before_its_purchase_still_counts(harness: HarnessFactory) -> None:
    """Within the allowed lateness, a refund may overtake the purchase it refunds."""
    purchase = make_event("u", "purchase", 1.0, amount=5.70, order_id="o1")
    refund = make_event("u", "refund", 1.001, amount=3.37, order_id="o1")
    in_order = harness().send(purchase, refund)
    overtaken = harness().send(refund, purchase)
    assert in_order.state("u").monetary == pytest.approx(2.33)
    assert overtaken.state("u").monetary == pytest.approx(2.33)


def test_the_dedupe_window_is_bounded(harness: HarnessFactory) -> None:
    h = harness(dedupe_window=4)
    events = [make_event("u", "page_view", i * 0.01) for i in range(10)]
    h.send(*events)
    assert h.state("u").recent_ids == b"".join(key_of(e.event_id) for e in events[-4:])
    h.send(events[-1])
    assert h.duplicates == 1


# --- lateness and the future ------------------------------------------------------------


def test_too_late_beyond_allowed_lateness(harness: HarnessFactory) -> None:
    h = harness(allowed_lateness_seconds=DAY)
    h.send(make_event("a", "page_view", 10))
    late = make_event("b", "page_view", 9 - 1 / DAY)
    h.send(late)
    assert h.rejected == [("too_late", late.event_id)]
    assert "b" not in h.store
    h.send(make_event("b", "page_view", 9))  # exactly at the limit: accepted
    assert "b" in h.store and len(h.rejected) == 1


def test_late_within_lateness_is_applied(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 10, amount=5.0),
                       make_event("u", "purchase", 9.5, amount=7.0))
    s = h.state("u")
    assert (s.orders, s.first_purchase_at, s.last_purchase_at) == (2, at(9.5), at(10))
    assert h.processor.clock == at(10)


def test_future_timestamp_beyond_the_skew(harness: HarnessFactory) -> None:
    h = harness(max_future_skew_seconds=300.0)
    received = at(5)
    ahead = make_event("u", "page_view", 5 + 301 / DAY)
    h.send(ahead, received_at=received)
    assert h.rejected == [("future_timestamp", ahead.event_id)]
    assert "u" not in h.store and h.processor.clock == float("-inf")
    h.send(make_event("u", "page_view", 5 + 300 / DAY), received_at=received)
    assert "u" in h.store and len(h.rejected) == 1


def test_no_receive_time_means_no_future_check(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 5000))
    assert h.rejected == [] and h.processor.clock == at(5000)


def test_rejections_carry_a_message(harness: HarnessFactory) -> None:
    h = harness().send(make_event("a", "page_view", 10))
    out = Outputs()
    h.processor.process(make_event("a", "page_view", 1), out)
    rejected, = out.rejected
    assert rejected.reason == "too_late" and "lateness" in rejected.message
    assert out.applied == [] and out.touched == set()


# --- referrals ------------------------------------------------------------------------------


def refer(user: str, referrer: str, day: float) -> Event:
    return make_event(user, "signup", day, properties={"referred_by": referrer})


def test_referred_first_purchase_credits_the_referrer_once(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "page_view", 0), make_event("r", "referral", 0.5),
                       refer("f", "r", 1))
    assert h.state("r").referred_converted == 0
    h.send(make_event("f", "purchase", 2, amount=10.0))
    assert h.state("r").referred_converted == 1
    h.send(make_event("f", "purchase", 3, amount=10.0), refer("f", "r", 4))
    assert h.state("r").referred_converted == 1
    assert h.snapshot("r")["role"] == "regular"  # one convert: not yet an opinion leader


def test_the_credit_is_a_feedback_event_for_the_referrer(harness: HarnessFactory) -> None:
    h = harness().send(refer("f", "r", 1))
    out = Outputs()
    h.processor.process(make_event("f", "purchase", 2, amount=10.0), out)
    credit, = out.feedback
    assert (credit.user_id, credit.type, credit.occurred_at) == ("r", "referral_converted", at(2))
    assert credit.properties == {"referred_user_id": "f"}


def test_signup_after_the_purchase_still_credits(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "share", 0), make_event("f", "purchase", 1, amount=9.0))
    assert h.state("r").referred_converted == 0
    h.send(refer("f", "r", 1.5))
    assert h.state("r").referred_converted == 1


def test_opinion_leader_after_enough_converted_referrals(harness: HarnessFactory) -> None:
    h = harness(opinion_leader_min_converted=2)
    h.send(make_event("r", "purchase", 0, amount=5.0))
    for i, friend in enumerate(("f1", "f2")):
        h.send(refer(friend, "r", 1 + i), make_event(friend, "purchase", 1.5 + i, amount=1.0))
    assert h.state("r").referred_converted == 2
    assert h.snapshot("r")["role"] == "opinion_leader"
    assert h.snapshot("r")["funnel_stage"] == "advocate"


@pytest.mark.parametrize("partitions", [1, 2])
def test_referral_credits_reach_the_referrer_under_every_driver(
        driver: DriverFactory, partitions: int) -> None:
    """With two partitions the friends (ann, bob) are on the other partition than the
    referrer (r): each credit crosses it (live, through the repartition topic), and is
    held until the referrer's partition reaches its time."""
    assert partition_for("r", 2) != partition_for("ann", 2) == partition_for("bob", 2)
    d = driver(opinion_leader_min_converted=2, partitions=partitions)
    d.send(make_event("r", "purchase", 0, amount=5.0, currency="EUR", order_id="r-o"))
    for i, friend in enumerate(("ann", "bob")):
        d.send(refer(friend, "r", 1 + i), make_event(friend, "purchase", 1.5 + i, amount=1.0,
                                                     currency="EUR", order_id=f"{friend}-o"))
    d.advance_days(5)
    assert d.snapshot("r")["role"] == "opinion_leader"
    assert d.snapshot("r")["funnel_stage"] == "advocate"
    assert [d.snapshot(f)["role"] for f in ("ann", "bob")] == ["regular"] * 2


def test_the_credit_does_not_depend_on_the_order_of_signup_and_purchase(
        harness: HarnessFactory) -> None:
    purchase = make_event("f", "purchase", 1.0, amount=3.0)
    signup = refer("f", "r", 1.001)
    visit = make_event("r", "page_view", 0)  # one event id for both runs
    runs = [harness().send(visit, *pair)
            for pair in ((purchase, signup), (signup, purchase))]
    assert [h.state("r").referred_converted for h in runs] == [1, 1]
    assert runs[0].state("r").to_list() == runs[1].state("r").to_list()


def test_a_referrer_with_no_activity_of_their_own_gets_no_lifecycle_alerts(
        harness: HarnessFactory) -> None:
    """A credit is news about someone else's purchase, not the referrer's own activity."""
    h = harness().send(refer("f", "ghost", 0), make_event("f", "purchase", 1, amount=3.0))
    h.advance_days(60)
    assert h.alert_types("ghost") == []


def test_a_self_referral_is_ignored(harness: HarnessFactory) -> None:
    h = harness().send(refer("u", "u", 0), make_event("u", "purchase", 1, amount=1.0))
    assert h.state("u").referred_by is None and h.state("u").referred_converted == 0


def test_unpurchased_referral_credits_nobody(harness: HarnessFactory) -> None:
    h = harness().send(make_event("r", "page_view", 0), refer("f", "r", 1),
                       make_event("f", "add_to_cart", 2))
    assert h.state("r").referred_converted == 0


# --- model re-fit schedule ----------------------------------------------------------------


class LoopGuardStore(dict[str, UserState]):
    """A store that raises once it has been read far more often than the stream can
    explain: a processor stuck in a loop fails the test instead of hanging it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.reads = limit, 0

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.reads += 1
        if self.reads > self.limit:
            raise RuntimeError(f"store read {self.reads} times: the processor is looping")
        return super().get(key, default)


@pytest.mark.parametrize("interval", [7.0, 2.5, 1.1, 0.7, 1 / 24])
def test_refits_step_forward_for_any_interval(interval: float) -> None:
    settings = Settings().with_overrides(refit_interval_days=interval,
                                         churn_snapshot_days=4 * interval,
                                         churn_horizon_days=12 * interval)
    settings.validate()
    p = PartitionProcessor(settings, LoopGuardStore(limit=50_000))
    refits, fitted = 0, []
    for day in range(21):
        out = Outputs()
        p.process(make_event("u", "page_view", day), out)
        refits += out.refits
        fitted.append(p.model.fitted_at)
        assert p.next_refit_at is not None and p.next_refit_at > p.clock
    assert 20 / interval - 2 <= refits <= 20 / interval + 2
    stamps = [f for f in fitted if f is not None]
    assert stamps == sorted(stamps) and stamps[-1] <= at(20)


# --- dead letters ----------------------------------------------------------------------------


def test_dead_letter_of_text() -> None:
    rec = dead_letter("invalid_json", "Expecting value", b'{"x": ', {"topic": "t", "partition": 1,
                                                                  "offset": 7}, BASE, None, None)
    assert rec["schema"] == "journey.dead-letter/1"
    assert rec["received_at"] == "2026-01-01T00:00:00Z"
    assert rec["payload"] == '{"x": ' and rec["payload_truncated"] is False
    assert "payload_base64" not in rec
    assert rec["origin"] == {"topic": "t", "partition": 1, "offset": 7}


def test_dead_letter_truncates_and_keeps_binary() -> None:
    long = dead_letter("oversize", "too big", "x" * (PAYLOAD_CAP + 10), {}, BASE, "e1", "u1")
    assert len(long["payload"]) == PAYLOAD_CAP and long["payload_truncated"] is True
    assert (long["event_id"], long["user_id"]) == ("e1", "u1")
    raw = bytes(range(256)) * 20
    binary = dead_letter("invalid_json", "not utf-8", raw, {}, BASE)
    assert binary["payload_truncated"] is True
    assert base64.b64decode(binary["payload_base64"]) == raw[:PAYLOAD_CAP]
