"""What churn warnings and recall triggers say, and when they are held back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.core import alerts
from streams.core.timefmt import rfc3339
from streams.settings import Settings
from streams.testing import Harness, HarnessFactory, at, make_event

HOUR = 3600.0





@pytest.fixture
def lapsed_buyer(harness: HarnessFactory) -> Callable[..., Harness]:
    """``lapsed_buyer(*extra_events, days=(0, 10), **overrides)``: a buyer with orders on
    ``days`` plus ``extra_events``, advanced past their churn threshold."""

    def build(*extra: Any, days: tuple[float, ...] = (0.0, 10.0), **overrides: Any) -> Harness:
        h = harness(**overrides)
        events = [make_event("u", "purchase", d, amount=40.0, order_id=f"o{i}")
                  for i, d in enumerate(days)]
        h.send(*sorted(events + list(extra), key=lambda e: e.occurred_at))
        return h.advance_days(max(days) + 200)

    return build


def of(h: Harness, user: str = "u", kind: str | None = None) -> list[dict[str, Any]]:
    return [a for a in h.alerts if a["user_id"] == user and (kind is None or a["type"] == kind)]


def churn_story(h: Harness) -> Harness:
    """A never-buyer and a buyer who both lapse, warn, churn and come back."""
    h.send(make_event("n", "page_view", 0), make_event("b", "purchase", 0, amount=25.0),
           make_event("b", "purchase", 12, amount=25.0))
    h.advance_days(40)
    h.send(make_event("n", "page_view", 41))
    return h.advance_days(200)


# --- ids -------------------------------------------------------------------------------


def test_alert_and_transition_ids_are_deterministic(harness: HarnessFactory) -> None:
    first, second = churn_story(harness()), churn_story(harness())
    assert len(first.alerts) >= 4
    assert [a["alert_id"] for a in first.alerts] == [a["alert_id"] for a in second.alerts]
    assert [t["transition_id"] for t in first.transitions] == \
        [t["transition_id"] for t in second.transitions]
    assert first.alerts == second.alerts


def test_ids_differ_between_kinds_and_episodes(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0)).advance_days(31)
    h.send(make_event("u", "page_view", 35)).advance_days(70)
    kinds = [a["type"] for a in of(h)]
    assert kinds == ["churn_warning", "recall_trigger", "churn_warning", "recall_trigger"]
    ids = [a["alert_id"] for a in of(h)]
    assert len(set(ids)) == 4
    assert [i[:3] for i in ids] == ["cw-", "rt-", "cw-", "rt-"]
    assert of(h)[0]["episode_started_at"] == rfc3339(at(0))
    assert of(h)[2]["episode_started_at"] == rfc3339(at(35))
    assert [t["transition_id"] for t in h.transitions] == \
        list(dict.fromkeys(t["transition_id"] for t in h.transitions))


def test_stable_id_shape() -> None:
    a = alerts.stable_id("cw", "u", "churn_warning", 1)
    assert a == alerts.stable_id("cw", "u", "churn_warning", 1)
    assert a != alerts.stable_id("cw", "u", "churn_warning", 2)
    assert a.startswith("cw-") and len(a) == 3 + 32


def test_recall_number_counts_recalls(harness: HarnessFactory) -> None:
    h = harness(recall_cooldown_days=1.0)
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    h.send(make_event("u", "page_view", 32)).advance_days(70)
    assert [a["recall_number"] for a in of(h, kind="recall_trigger")] == [1, 2]
    assert all("recall_number" not in a for a in of(h, kind="churn_warning"))
    assert h.state("u").alerts_sent == 4
    assert h.snapshot("u")["last_alert_id"] == of(h)[-1]["alert_id"]


# --- churn type, priority, role ------------------------------------------------------------


@pytest.mark.parametrize("days, expected", [
    ((), "new_user"), ((0.0,), "new_user"), ((0.0, 10.0), "established"),
    ((0.0, 10.0, 25.0), "established"),
])
def test_churn_type(harness: HarnessFactory, days: tuple[float, ...], expected: str) -> None:
    h = harness().send(make_event("u", "page_view", 0))
    h.send(*(make_event("u", "purchase", d + 0.5, amount=10.0) for d in days))
    h.advance_days(400)
    assert of(h), "the user must lapse"
    assert {a["churn_type"] for a in of(h)} == {expected}


def test_priority_follows_the_fitted_value_tier(harness: HarnessFactory) -> None:
    # ten one-time buyers spending 10..100; the re-fit on day 7 sets the tiers:
    # top = the best 20% (90, 100), middle = the next 30% (60, 70, 80)
    h = harness(refit_min_buyers=5)
    for i in range(10):
        h.send(make_event(f"b{i}", "signup", 0.5, properties={"consent": ["email", "phone"]}),
               make_event(f"b{i}", "purchase", 1, amount=10.0 * (i + 1)))
    h.advance_days(47)
    assert (h.processor.model.top_min, h.processor.model.middle_min) == (90.0, 60.0)
    warnings = {a["user_id"]: a for a in h.alerts if a["type"] == "churn_warning"}
    assert len(warnings) == 10
    tiers = [warnings[f"b{i}"]["value_tier"] for i in range(10)]
    assert tiers == ["base"] * 5 + ["middle"] * 3 + ["top"] * 2
    priorities = [warnings[f"b{i}"]["priority"] for i in range(10)]
    assert priorities == ["low"] * 5 + ["medium"] * 3 + ["high"] * 2
    # top-tier users are reached on the high-value order (phone first), others on the
    # ordinary one; both only on channels they consented to
    assert warnings["b9"]["channels"] == ["phone", "email"]
    assert warnings["b0"]["channels"] == ["email", "phone"]
    scores = [warnings[f"b{i}"]["priority_score"] for i in range(10)]
    assert scores == sorted(scores) and scores[0] > 0
    assert h.snapshot("b9")["value_tier"] == "top"


def test_without_a_fit_everyone_is_base_or_none(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "purchase", 0, amount=1e6),
                       make_event("v", "page_view", 0)).advance_days(50)
    assert h.snapshot("u")["value_tier"] == "base"
    assert h.snapshot("v")["value_tier"] == "none"
    assert {a["priority"] for a in h.alerts} == {"low"}


def test_role_rigid_demand(lapsed_buyer: Callable[..., Harness]) -> None:
    h = lapsed_buyer(days=(0.0, 10.0, 20.0, 30.0))
    assert h.snapshot("u")["role"] == "rigid_demand"
    assert {a["role"] for a in of(h)} == {"rigid_demand"}


def test_irregular_buyer_is_regular(lapsed_buyer: Callable[..., Harness]) -> None:
    assert lapsed_buyer(days=(0.0, 2.0, 20.0)).snapshot("u")["role"] == "regular"


def test_role_sharer(harness: HarnessFactory) -> None:
    h = harness(sharer_min_shares=2).send(make_event("u", "share", 0))
    assert h.snapshot("u")["role"] == "regular"
    h.send(make_event("u", "share", 1))
    assert h.snapshot("u")["role"] == "sharer"
    h.send(make_event("u", "purchase", 2, amount=5.0))  # a buyer who shares is an advocate
    assert h.snapshot("u")["role"] == "regular"
    assert h.snapshot("u")["funnel_stage"] == "advocate"


# --- strategy ---------------------------------------------------------------------------


def strategy_of(h: Harness) -> tuple[str, str]:
    s = of(h, kind="churn_warning")[0]["strategy"]
    assert s["reason"]
    return s["kind"], s["incentive"]


def test_strategy_for_a_new_user(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0)).advance_days(31)
    warning, recall = of(h)
    assert (warning["strategy"]["kind"], warning["strategy"]["incentive"]) == ("service", "none")
    assert (recall["strategy"]["kind"], recall["strategy"]["incentive"]) == ("price", "coupon")


def test_strategy_refunds_point_to_service(lapsed_buyer: Callable[..., Harness]) -> None:
    h = lapsed_buyer(make_event("u", "refund", 11, amount=10.0))
    assert strategy_of(h) == ("service", "voucher")


@pytest.mark.parametrize("rating, expected", [(1, "service"), (2, "service"), (5, "product")])
def test_strategy_low_ratings_point_to_service(lapsed_buyer: Callable[..., Harness],
                                               rating: int, expected: str) -> None:
    h = lapsed_buyer(make_event("u", "review", 11, rating=rating))
    assert strategy_of(h)[0] == expected


def test_strategy_coupon_users_get_a_price_offer(lapsed_buyer: Callable[..., Harness]) -> None:
    h = lapsed_buyer(make_event("u", "coupon_redeemed", 10))
    assert strategy_of(h) == ("price", "coupon")


def test_strategy_rigid_demand_gets_points(lapsed_buyer: Callable[..., Harness]) -> None:
    assert strategy_of(lapsed_buyer(days=(0.0, 10.0, 20.0))) == ("product", "points")


def test_strategy_service_wins_over_price_and_rhythm(
        lapsed_buyer: Callable[..., Harness]) -> None:
    h = lapsed_buyer(make_event("u", "refund", 21, amount=1.0),
                     make_event("u", "coupon_redeemed", 20), days=(0.0, 10.0, 20.0))
    assert strategy_of(h)[0] == "service"


def test_strategy_default_is_a_personal_product_offer(
        lapsed_buyer: Callable[..., Harness]) -> None:
    assert strategy_of(lapsed_buyer()) == ("product", "none")


# --- consent and channels ---------------------------------------------------------------


def lapsed_user(h: Harness, *events: Any) -> Harness:
    h.send(make_event("u", "page_view", 0), *events)
    return h.advance_days(8)


def test_default_consent_in_preference_order(harness: HarnessFactory) -> None:
    h = lapsed_user(harness())
    assert of(h)[0]["channels"] == ["app_push", "email"]


def test_signup_consent_list_replaces_the_default(harness: HarnessFactory) -> None:
    h = lapsed_user(harness(), make_event("u", "signup", 0.1,
                                          properties={"consent": ["sms", "email"]}))
    assert of(h)[0]["channels"] == ["email", "sms"]
    assert h.snapshot("u")["consent"] == ["email", "sms"]


def test_unsubscribe_removes_and_resubscribe_adds(harness: HarnessFactory) -> None:
    h = lapsed_user(harness(), make_event("u", "unsubscribe", 0.1, channel="app_push"),
                    make_event("u", "resubscribe", 0.2, channel="sms"))
    assert of(h)[0]["channels"] == ["email", "sms"]


def test_no_channel_left_suppresses_the_alert(harness: HarnessFactory) -> None:
    h = lapsed_user(harness(), make_event("u", "unsubscribe", 0.1, channel="app_push"),
                    make_event("u", "unsubscribe", 0.2, channel="email"))
    assert of(h) == []
    assert h.suppressed == [("churn_warning", "no_consent")]
    assert h.state("u").stage == "declining"  # the stage still changes
    assert h.state("u").alerts_sent == 0


def test_empty_signup_consent_suppresses(harness: HarnessFactory) -> None:
    h = lapsed_user(harness(), make_event("u", "signup", 0.1, properties={"consent": []}))
    assert h.suppressed == [("churn_warning", "no_consent")]


# --- send window ------------------------------------------------------------------------


def test_send_window_prefers_the_usual_active_hour(harness: HarnessFactory) -> None:
    # active at 14:00 local (+02:00); the warning is due at 20:00 local, after today's slot,
    # so the window opens at 14:00 local the next day
    h = harness(new_user_decline_days=7.25)
    h.send(*(make_event("u", "page_view", d + 0.5, utc_offset_min=120) for d in range(3)))
    h.advance_days(10)
    warning = of(h)[0]
    assert warning["detected_at"] == rfc3339(at(2.5 + 7.25))
    window = warning["send_window"]
    assert window["utc_offset"] == "+02:00"
    assert window["start"] == "2026-01-11T14:00:00+02:00"
    assert window["end"] == "2026-01-11T16:00:00+02:00"
    assert window["deferred_for_quiet_hours"] is False
    assert h.snapshot("u")["usual_active_hour"] == 14


def test_send_window_defers_out_of_quiet_hours(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 23 / 24)).advance_days(9)
    warning = of(h)[0]
    assert warning["detected_at"] == "2026-01-08T23:00:00Z"
    window = warning["send_window"]
    assert window["deferred_for_quiet_hours"] is True
    assert window["start"] == "2026-01-09T08:00:00Z"
    assert window["end"] == "2026-01-09T10:00:00Z"


def test_send_window_uses_the_default_timezone_without_an_offset(
        harness: HarnessFactory) -> None:
    """Settings.default_timezone: 'IANA zone for users whose events carry no usable UTC
    offset'. Tokyo is +09:00 all year."""
    h = harness(default_timezone="Asia/Tokyo")
    h.send(make_event("u", "page_view", 0, utc_offset_min=None)).advance_days(8)
    assert of(h)[0]["send_window"]["utc_offset"] == "+09:00"


def test_iana_timezone_property_sets_the_offset(harness: HarnessFactory) -> None:
    h = harness().send(make_event("u", "page_view", 0.5, utc_offset_min=None,
                                  properties={"timezone": "America/New_York"}))
    h.advance_days(8)
    assert of(h)[0]["send_window"]["utc_offset"] == "-05:00"  # January: EST


@pytest.mark.parametrize(("zone", "offset"), [
    ("GMT+0530", "+05:30"),  # RudderStack's JavaScript SDK
    ("GMT+05:30", "+05:30"),  # Java's TimeZone id on a device without a zone id
    ("GMT-3", "-03:00"), ("UTC+01:00", "+01:00")])
def test_a_fixed_offset_zone_sets_the_offset(harness: HarnessFactory, zone: str,
                                             offset: str) -> None:
    h = harness().send(make_event("u", "page_view", 0.5, utc_offset_min=None,
                                  properties={"timezone": zone}))
    h.advance_days(8)
    assert of(h)[0]["send_window"]["utc_offset"] == offset


@pytest.mark.parametrize("zone", ["GMT+15", "GMT+05:75", "GMT+0530x", "Mars/Olympus"])
def test_an_unknown_zone_leaves_the_default(harness: HarnessFactory, zone: str) -> None:
    h = harness(default_timezone="Asia/Tokyo")
    h.send(make_event("u", "page_view", 0.5, utc_offset_min=None,
                      properties={"timezone": zone})).advance_days(8)
    assert of(h)[0]["send_window"]["utc_offset"] == "+09:00"


# --- caps and cooldowns -------------------------------------------------------------------


def test_frequency_cap_suppresses(harness: HarnessFactory) -> None:
    h = harness(contact_cap=1, contact_cap_days=60.0)
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    assert [a["type"] for a in of(h)] == ["churn_warning"]
    assert h.suppressed == [("recall_trigger", "frequency_cap")]
    assert h.state("u").stage == "churned"


def test_frequency_cap_window_expires(harness: HarnessFactory) -> None:
    h = harness(contact_cap=1, contact_cap_days=20.0)
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    assert [a["type"] for a in of(h)] == ["churn_warning", "recall_trigger"]
    assert h.suppressed == []


def test_recall_cooldown_suppresses_a_second_recall(harness: HarnessFactory) -> None:
    h = harness(recall_cooldown_days=60.0)
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    h.send(make_event("u", "page_view", 31.5)).advance_days(70)
    assert [a["type"] for a in of(h)] == ["churn_warning", "recall_trigger", "churn_warning"]
    assert h.suppressed == [("recall_trigger", "recall_cooldown")]


def test_recall_after_the_cooldown_goes_out(harness: HarnessFactory) -> None:
    h = harness(recall_cooldown_days=30.0)
    h.send(make_event("u", "page_view", 0)).advance_days(31)
    h.send(make_event("u", "page_view", 31.5)).advance_days(70)
    assert [a["type"] for a in of(h)].count("recall_trigger") == 2


# --- control group ----------------------------------------------------------------------


def test_control_flag_is_deterministic_per_user(harness: HarnessFactory) -> None:
    h = harness(control_share=0.5)
    users = [f"u{i}" for i in range(40)]
    h.send(*(make_event(u, "page_view", 0) for u in users)).advance_days(31)
    by_user: dict[str, set[bool]] = {}
    for a in h.alerts:
        by_user.setdefault(a["user_id"], set()).add(a["control"])
    assert set(by_user) == set(users)
    assert all(len(flags) == 1 for flags in by_user.values())  # warning and recall agree
    assert {u for u, f in by_user.items() if True in f} == \
        {u for u in users if alerts.is_control(u, h.settings)}
    assert 0 < sum(True in f for f in by_user.values()) < len(users)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25])
def test_control_share_is_close_to_the_setting(share: float) -> None:
    settings = Settings().with_overrides(control_share=share)
    n = 20000
    drawn = sum(alerts.is_control(f"user-{i}", settings) for i in range(n)) / n
    assert abs(drawn - share) < 0.01  # ~5 standard deviations at n = 20000
    if share == 0.0:
        assert drawn == 0.0


def test_control_salt_draws_another_group() -> None:
    a = Settings().with_overrides(control_share=0.5)
    b = a.with_overrides(control_salt="other")
    users = [f"u{i}" for i in range(200)]
    assert [alerts.is_control(u, a) for u in users] != [alerts.is_control(u, b) for u in users]


# --- evidence -----------------------------------------------------------------------------


def test_a_never_buyers_summary_gives_p_alive_which_decides_its_stage(
        harness: HarnessFactory) -> None:
    h = harness().send(make_event("n", "page_view", 0))
    h.advance_days(8)
    warning = of(h, user="n", kind="churn_warning")[0]
    assert warning["evidence"]["summary"] == (
        "Never bought; no activity for 7 days; P(alive) 0.50; 0 orders, 0.00 spent; "
        "value tier none; now declining.")


def test_evidence_numbers(lapsed_buyer: Callable[..., Harness]) -> None:
    h = lapsed_buyer(make_event("u", "refund", 11, amount=20.0))
    warning = of(h, kind="churn_warning")[0]
    ev = warning["evidence"]
    assert warning["detected_at"] == rfc3339(at(55))  # population gap 30 after day 10
    assert ev["days_since_last_purchase"] == 45.0
    assert ev["days_since_last_activity"] == 45.0
    assert (ev["orders"], ev["repeat_purchases"], ev["refunds"]) == (2, 1, 1)
    assert ev["monetary"] == 60.0 and ev["avg_order_value"] == 30.0
    assert ev["monetary_90d"] == 60.0  # net spend over 90 days: the refund counts
    assert 1.0 - ev["p_alive"] - 2e-4 <= ev["churn_risk"] <= 1.0
    assert "45 days" in ev["summary"] and "population" in ev["summary"]
    # the rhythm decided: P(alive) is evidence, not the sentence's reason
    assert "P(alive)" not in ev["summary"] and ev["summary"].endswith("now declining.")
    assert warning["stage_from"] == "growing"
    assert warning["schema"] == "journey.churn-warning/1"
    recall = of(h, kind="recall_trigger")[0]
    assert recall["stage_from"] == "declining" and recall["schema"] == "journey.recall-trigger/1"
