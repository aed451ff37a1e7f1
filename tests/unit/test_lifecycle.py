"""Lifecycle stages and P(alive), driven through the Harness (and, for the scenarios that
take a ``driver``, through Replay and the worker's pipeline too). The population model
that drives them: test_population.py."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.core import alerts
from streams.core.event import Event
from streams.core.state import CHURNED, DECLINING, GROWING, MATURE, NEW
from streams.core.timefmt import rfc3339
from streams.settings import Settings
from streams.testing import DAY, Harness, HarnessFactory, at, make_event
from tests.support.drivers import DriverFactory


def buy(user: str, day: float, amount: float = 10.0) -> Event:
    """A purchase as a shop sends it: the wire wants a currency and an order id."""
    return make_event(user, "purchase", day, amount=amount, currency="EUR",
                      order_id=f"{user}-{day}")


def stamp(day: float) -> str:
    return rfc3339(at(day))


def moves(h: Harness, user: str) -> list[tuple[str | None, str, str]]:
    return [(t["from_stage"], t["to_stage"], t["reason"])
            for t in h.transitions if t["user_id"] == user]


def alerts_of(h: Harness, user: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [a for a in h.alerts if a["user_id"] == user and (kind is None or a["type"] == kind)]


def control_user(want: bool, settings: Settings, prefix: str = "c") -> str:
    """The first user id of the form prefix<n> whose control flag is ``want``."""
    n = 0
    while alerts.is_control(f"{prefix}{n}", settings) != want:
        n += 1
    return f"{prefix}{n}"


# --- stages while active ----------------------------------------------------------------


def test_first_event_starts_a_new_user(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0))
    assert h.state("u").stage == NEW
    assert moves(h, "u") == [(None, NEW, "first_seen")]


def test_first_purchase_moves_new_to_growing(driver: DriverFactory) -> None:
    d = driver().send(make_event("u", "page_view", 0), buy("u", 1, 5.0))
    assert d.stage("u") == GROWING
    assert d.moves("u") == [(None, NEW, "first_seen"), (NEW, GROWING, "first_purchase")]


def test_a_purchase_as_first_event_is_growing_at_once(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=5.0))
    assert moves(h, "u") == [(None, GROWING, "first_seen")]


@pytest.mark.parametrize("repeats", [1, 2, 5])
def test_mature_after_the_configured_repeat_purchases(driver: DriverFactory,
                                                     repeats: int) -> None:
    d = driver(mature_min_repeat_purchases=repeats)
    for day in range(repeats):  # the first order and repeats-1 repeats: still growing
        d.send(buy("u", day))
    assert d.stage("u") == GROWING
    d.send(buy("u", repeats))
    assert d.stage("u") == MATURE
    assert d.moves("u")[-1] == (GROWING, MATURE, "repeat_milestone")


# --- decline and churn by inactivity -------------------------------------------------------


def test_buyer_declines_and_churns_on_the_population_rhythm(driver: DriverFactory) -> None:
    # purchase_cycle_days 30: decline after 1.5 gaps (45 days), churn after 3 (90 days)
    d = driver().send(buy("u", 0, 20.0))
    d.advance_days(44.99)
    assert d.stage("u") == GROWING
    d.advance_days(45)
    assert d.stage("u") == DECLINING
    warning, = (a for a in d.alerts if a["type"] == "churn_warning")
    assert warning["detected_at"] == stamp(45)
    assert warning["evidence"]["gap_source"] == "population"
    assert warning["evidence"]["threshold_days"] == 45.0
    d.advance_days(89.99)
    assert d.stage("u") == DECLINING
    d.advance_days(90)
    assert d.stage("u") == CHURNED
    recall, = (a for a in d.alerts if a["type"] == "recall_trigger")
    assert recall["detected_at"] == stamp(90)
    assert recall["evidence"]["threshold_days"] == 90.0
    assert d.moves("u")[1:] == [(GROWING, DECLINING, "inactivity"),
                                (DECLINING, CHURNED, "inactivity")]


def test_own_rhythm_replaces_the_population_once_there_are_enough_orders(
        harness: HarnessFactory) -> None:
    # gaps of 10 days: own rhythm gives decline at last + 15, churn at last + 30
    h = harness(own_rhythm_min_orders=3)
    h.send(*(make_event("u", "purchase", d, amount=10.0) for d in (0, 10, 20)))
    h.advance_days(34.99)
    assert h.state("u").stage == GROWING
    h.advance_days(35)
    assert h.state("u").stage == DECLINING
    h.advance_days(50)
    assert h.state("u").stage == CHURNED
    warning, recall = alerts_of(h, "u")
    assert warning["evidence"]["gap_source"] == "own"
    assert warning["evidence"]["usual_gap_days"] == 10.0
    assert (warning["detected_at"], recall["detected_at"]) == (stamp(35), stamp(50))


def test_too_few_orders_still_follow_the_population(harness: HarnessFactory) -> None:
    h = harness(own_rhythm_min_orders=3)
    h.send(*(make_event("u", "purchase", d, amount=10.0) for d in (0, 10)))
    h.advance_days(54.99)  # population gap 30 from the last purchase (day 10): decline at 55
    assert h.state("u").stage == GROWING
    h.advance_days(55)
    assert h.state("u").stage == DECLINING
    assert alerts_of(h, "u")[0]["evidence"]["gap_source"] == "population"


def test_activity_grace_keeps_a_browsing_buyer_out_of_decline(harness: HarnessFactory) -> None:
    h = harness(activity_grace_days=7.0)
    h.send(make_event("u", "purchase", 0, amount=10.0), make_event("u", "page_view", 44))
    h.advance_days(50.99)  # the purchase is overdue since day 45, but they browsed on day 44
    assert h.state("u").stage == GROWING
    assert alerts_of(h, "u") == []
    h.advance_days(51)
    assert h.state("u").stage == DECLINING


def test_floors_hold_the_thresholds_up_for_quick_buyers(harness: HarnessFactory) -> None:
    # three orders 0.1 days apart: 1.5 and 3 gaps would be hours; the floors are 3 and 14 days
    h = harness(activity_grace_days=0.0, min_decline_days=3.0, min_churn_days=14.0)
    h.send(*(make_event("u", "purchase", d, amount=10.0) for d in (0.0, 0.1, 0.2)))
    h.advance_days(3.19)
    assert h.state("u").stage == GROWING
    h.advance_days(14.2)
    warning, recall = alerts_of(h, "u")
    assert warning["evidence"]["threshold_days"] == 3.0
    assert recall["evidence"]["threshold_days"] == 14.0
    assert warning["detected_at"] == rfc3339(at(0.2) + 3 * DAY)
    assert recall["detected_at"] == rfc3339(at(0.2) + 14 * DAY)


def test_never_buyers_use_the_new_user_thresholds(harness: HarnessFactory) -> None:
    h = harness(new_user_decline_days=5.0, new_user_churn_days=12.0)
    h.send(make_event("u", "page_view", 0), make_event("u", "add_to_cart", 1))
    h.advance_days(5.99)
    assert h.state("u").stage == NEW
    h.advance_days(13)
    warning, recall = alerts_of(h, "u")
    assert warning["evidence"]["gap_source"] == "new_user"
    assert (warning["detected_at"], recall["detected_at"]) == (stamp(6), stamp(13))
    assert warning["evidence"]["days_since_last_purchase"] is None
    assert h.state("u").stage == CHURNED


# --- coming back ------------------------------------------------------------------------


def test_declining_buyer_recovers_on_activity(driver: DriverFactory) -> None:
    d = driver().send(buy("u", 0)).advance_days(46)
    assert d.stage("u") == DECLINING
    d.send(make_event("u", "product_view", 47))
    assert d.stage("u") == GROWING
    last = d.transitions[-1]
    assert (last["from_stage"], last["to_stage"], last["reason"]) == (DECLINING, GROWING,
                                                                      "recovered")
    assert last["reactivation"] is False and last["after_alert_id"] is None


@pytest.mark.parametrize("control", [False, True])
def test_churned_user_reactivates_after_the_recall(harness: HarnessFactory,
                                                  control: bool) -> None:
    h = harness()
    user = control_user(control, h.settings)
    h.send(make_event(user, "page_view", 0)).advance_days(31)
    recall, = alerts_of(h, user, "recall_trigger")
    assert recall["control"] is control
    h.send(make_event(user, "search", 40))
    back = h.transitions[-1]
    assert (back["from_stage"], back["to_stage"], back["reason"]) == (CHURNED, NEW,
                                                                      "reactivation")
    assert back["reactivation"] is True
    assert back["after_alert_id"] == recall["alert_id"]
    assert back["after_alert_control"] is control
    assert h.reactivations == ["control" if control else "treated"]


def test_reactivation_without_a_recall_names_no_alert(harness: HarnessFactory) -> None:
    h = harness(default_consent=[])  # nobody reachable: the recall is suppressed
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    assert ("recall_trigger", "no_consent") in h.suppressed
    h.send(make_event("u", "page_view", 40))
    back = h.transitions[-1]
    assert back["reason"] == "reactivation" and back["after_alert_id"] is None
    assert h.reactivations == ["none"]


def test_reactivation_requiring_a_purchase_ignores_browsing(harness: HarnessFactory) -> None:
    h = harness(reactivation_requires="purchase")
    h.send(make_event("u", "purchase", 0, amount=10.0)).advance_days(91)
    assert h.state("u").stage == CHURNED
    n = len(h.transitions)
    h.send(make_event("u", "page_view", 95), make_event("u", "add_to_cart", 96))
    assert h.state("u").stage == CHURNED
    assert len(h.transitions) == n
    h.send(make_event("u", "purchase", 97, amount=10.0))
    assert h.state("u").stage == GROWING
    assert h.transitions[-1]["reason"] == "reactivation"


def test_activity_older_than_the_churn_is_late_activity(harness: HarnessFactory) -> None:
    h = harness(allowed_lateness_seconds=DAY)
    h.send(make_event("u", "page_view", 0)).advance_days(30)
    assert h.state("u").stage == CHURNED
    h.send(make_event("u", "page_view", 29.5))  # half a day behind the clock: still allowed
    back = h.transitions[-1]
    assert (back["from_stage"], back["to_stage"], back["reason"]) == (CHURNED, NEW,
                                                                      "late_activity")
    assert back["reactivation"] is False
    assert h.reactivations == []


def test_late_activity_undoes_a_churn_even_when_reactivation_needs_a_purchase(
        harness: HarnessFactory) -> None:
    """The same events in time order never churn the user; arriving half a day late must
    not leave them churned (state is meant to be independent of arrival order)."""
    in_order = harness(reactivation_requires="purchase")
    in_order.send(make_event("u", "page_view", 0), make_event("u", "page_view", 29.5))
    in_order.advance_days(30)
    late = harness(reactivation_requires="purchase")
    late.send(make_event("u", "page_view", 0)).advance_days(30)
    late.send(make_event("u", "page_view", 29.5))
    assert in_order.state("u").stage == NEW
    assert late.state("u").stage == in_order.state("u").stage


def test_declining_user_hit_by_late_activity_is_late_activity(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0)).advance_days(7.5)
    assert h.state("u").stage == DECLINING
    h.send(make_event("u", "page_view", 6.8))  # before the decline at day 7
    assert moves(h, "u")[-1] == (DECLINING, NEW, "late_activity")


@pytest.mark.parametrize("kind", ["message_opened", "message_clicked", "unsubscribe",
                                  "resubscribe", "refund"])
def test_our_own_contact_and_refunds_are_not_activity(harness: HarnessFactory,
                                                     kind: str) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=10.0)).advance_days(46)
    h.send(make_event("u", kind, 47, channel="email", amount=1.0))
    assert h.state("u").stage == DECLINING
    assert h.state("u").last_active_at == at(0)


def test_a_non_activity_first_event_is_not_activity(harness: HarnessFactory) -> None:
    """Order independence: opening our e-mail (not activity) then a slightly older page view
    must leave last activity at the page view, as the reverse arrival order does."""
    h = harness().send(make_event("u", "message_opened", 1.0, channel="email"),
                       make_event("u", "page_view", 0.9))
    assert h.state("u").last_active_at == at(0.9)


# --- funnel -----------------------------------------------------------------------------


@pytest.mark.parametrize("kinds, funnel", [
    (["page_view"], "aware"),
    (["page_view", "product_view"], "interested"),
    (["search", "add_to_cart"], "cart"),
    (["checkout_started", "purchase"], "purchased"),
    (["purchase", "purchase"], "repeat"),
    (["purchase", "share"], "advocate"),
    (["purchase", "referral"], "advocate"),
    (["share", "share"], "aware"),
])
def test_funnel_stage(harness: HarnessFactory, kinds: list[str], funnel: str) -> None:
    h = harness()
    for i, kind in enumerate(kinds):
        h.send(make_event("u", kind, i, amount=10.0, order_id=f"o{i}"))
    assert h.snapshot("u")["funnel_stage"] == funnel


# --- P(alive) ---------------------------------------------------------------------------


def test_one_time_buyer_is_not_certainly_alive_and_fades(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=30.0))
    state = h.state("u")
    values = [h.processor.snapshot(state, at(d))["p_alive"] for d in (0, 1, 10, 30, 90, 365)]
    assert values[0] < 1.0  # MBG/NBD: the first purchase may already be the last
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] < 0.5


def test_churn_risk_is_at_least_the_chance_of_being_gone(harness: HarnessFactory) -> None:
    # a buyer's risk is "no purchase within the churn threshold": gone, or alive but slow
    h = harness().send(make_event("n", "page_view", 0),
                       make_event("u", "purchase", 0, amount=30.0),
                       make_event("u", "purchase", 20, amount=30.0)).advance_days(40)
    snap = h.snapshot("u")
    assert 0.0 < snap["p_alive"] < 1.0
    assert 1.0 - snap["p_alive"] - 1e-6 <= snap["churn_risk"] <= 1.0
    later = h.processor.snapshot(h.state("u"), at(120))
    assert later["churn_risk"] > snap["churn_risk"]
    never = h.snapshot("n")  # never bought: risk is just the chance of being gone
    assert never["p_alive"] + never["churn_risk"] == pytest.approx(1.0, abs=1e-6)


def test_a_repeat_purchase_lifts_p_alive(harness: HarnessFactory) -> None:
    once = harness().send(make_event("u", "purchase", 0, amount=10.0)).advance_days(30)
    twice = harness().send(make_event("u", "purchase", 0, amount=10.0),
                           make_event("u", "purchase", 29, amount=10.0)).advance_days(30)
    assert twice.snapshot("u")["p_alive"] > once.snapshot("u")["p_alive"]


def test_never_buyer_p_alive_halves_every_new_user_decline_period(
        harness: HarnessFactory) -> None:
    h = harness(new_user_decline_days=7.0).send(make_event("u", "page_view", 0))
    state = h.state("u")
    assert h.processor.snapshot(state, at(0))["p_alive"] == 1.0
    assert h.processor.snapshot(state, at(7))["p_alive"] == pytest.approx(0.5)
    assert h.processor.snapshot(state, at(14))["p_alive"] == pytest.approx(0.25)


SNAPSHOT_FIELDS = {
    "schema", "user_id", "lifecycle_stage", "churn_risk", "p_alive", "recency_days",
    "frequency", "monetary", "orders", "monetary_90d", "value_tier", "role", "funnel_stage",
    "first_seen_at", "last_event_at", "last_purchase_at", "avg_gap_days", "usual_active_hour",
    "consent", "refunds", "alerts_sent", "last_alert_id",
}


def test_snapshot_fields(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=12.5),
                       make_event("u", "purchase", 10, amount=7.5),
                       make_event("u", "refund", 11, amount=5.0)).advance_days(20)
    snap = h.snapshot("u")
    assert SNAPSHOT_FIELDS <= set(snap)
    assert snap["schema"] == "journey.user-state/1"
    assert (snap["orders"], snap["frequency"], snap["monetary"]) == (2, 1, 15.0)
    assert snap["recency_days"] == 10.0
    assert snap["avg_gap_days"] == 10.0
    assert snap["refunds"] == 1
    assert snap["last_purchase_at"] == stamp(10)
    assert snap["first_seen_at"] == stamp(0) and snap["last_event_at"] == stamp(11)


def test_monetary_90d_is_net_spend_over_90_days_with_refunds(driver: DriverFactory) -> None:
    """The contract: net spend over the 90 days up to the instant. Ten orders of 10 and a
    refund of 50 within 90 days net 50 (the purchase log keeps only 8 orders, and no
    refunds, so it cannot be the source); older spend drops out as days pass."""
    orders = [make_event("u", "purchase", day, amount=10.0, currency="EUR", order_id=f"o{day}")
              for day in range(10)]
    d = driver().send(*orders, make_event("u", "refund", 10, amount=50.0, currency="EUR",
                                          order_id="o3"))
    d.advance_days(11)
    snap = d.snapshot("u")
    assert snap is not None
    assert (snap["monetary"], snap["monetary_90d"], snap["orders"]) == (50.0, 50.0, 10)
    # day 95: orders of days 0-5 are older than 90 days; days 6-9 (40) and the refund
    # (day 10, -50) remain: net spend cannot go below zero
    assert d.advance_days(95).snapshot("u")["monetary_90d"] == 0.0
    # a new order of 30 on day 96, whose 90 days are days 7-96: 30 + 30 - 50 = 10
    d.send(make_event("u", "purchase", 96, amount=30.0, currency="EUR", order_id="late"))
    assert d.snapshot("u")["monetary_90d"] == 10.0
    assert d.advance_days(200).snapshot("u")["monetary_90d"] == 0.0


def test_a_state_record_written_before_spend_days_still_loads(harness: HarnessFactory) -> None:
    """Records are positional lists: one written by an older version ends before the newer
    fields, which then start from what the record holds (its purchase log)."""
    from streams.core.state import RECORD_FIELDS, UserState

    h = harness().send(make_event("u", "purchase", 0, amount=10.0, currency="EUR"),
                       make_event("u", "purchase", 1, amount=5.0, currency="EUR"))
    names = list(RECORD_FIELDS)
    old = h.state("u").to_list()[:names.index("spend_days")]  # before spend_days existed
    loaded = UserState.from_list(old)
    assert loaded.net_spend_90d(at(2)) == 15.0
    assert UserState.from_list(h.state("u").to_list()) == h.state("u")


def test_a_state_record_with_an_order_log_of_lists_still_loads(
        harness: HarnessFactory) -> None:
    """Records written before ids were kept as digests hold them as text: the order log
    flat (id, time, amount, ...) or, older, a list per order, and the dedupe window as a
    list of event ids. Each loads as the same state, and a re-sent order or event in it
    is still counted once."""
    from streams.core.logs import key_of
    from streams.core.state import RECORD_FIELDS, UserState

    sent = (make_event("u", "purchase", 0, amount=10.0, currency="EUR", order_id="o1"),
            make_event("u", "purchase", 1, amount=5.0, currency="EUR", order_id="o2"))
    h = harness().send(*sent)
    state = h.state("u")
    values = state.to_list()
    names = list(RECORD_FIELDS)
    i, ids = names.index("order_log"), names.index("recent_ids")
    keys, times = values[i]
    assert keys == (key_of("o1") + key_of("o2")).hex() and times[1::2] == [10.0, 5.0]
    flat = ["o1", times[0], times[1], "o2", times[2], times[3]]
    values[ids] = [e.event_id for e in sent]
    for layout in (flat, [flat[0:3], flat[3:6]]):
        values[i] = layout
        loaded = UserState.from_list(values)
        assert loaded == state
        at_ = loaded.find_order(key_of("o2"))
        assert at_ is not None and loaded.logged_order(at_) == (times[2], 5.0)
        assert all(loaded.has_seen(e.event_id) for e in sent)
