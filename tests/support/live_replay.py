"""What a live worker and ``journey replay`` are compared on, for the tests that check they
agree (test_live_equals_replay, test_bootstrap, test_segment_live): the history's mix,
the settings both run with, and the per-user state fields that must match."""

from __future__ import annotations

from typing import Any

from streams.synth import DEFAULT_MIX

# No opinion leaders, so no referrals: a referral credit crosses partitions (through the
# repartition topic). Replay applies it at its own time; the live worker holds one that
# arrives early, but applies one that arrives late (the referrer's partition already past
# its time, as happens while partitions catch up a backlog at different speeds) on
# arrival, so an alert in between can differ in role. With opinion leaders in the mix,
# 21 alerts of test_live_equals_replay's history differ in role, and only in role.
# Everything else is here.
MIX: dict[str, float] = {k: v for k, v in DEFAULT_MIX.items() if k != "opinion_leader"}
# The churn model on a short grid and a small training set, so that within
# test_live_equals_replay's 80-day history it learns, switches on and drives stages: its
# refits must agree too.
OVERRIDES: dict[str, Any] = {"tick_interval_seconds": 0, "churn_snapshot_days": 7,
                             "churn_horizon_days": 14, "churn_min_rows": 30,
                             "churn_min_class": 5}
STATE_FIELDS = ("churn_scorer", "lifecycle_stage", "orders", "frequency", "monetary",
                "value_tier", "role", "funnel_stage", "alerts_sent", "last_alert_id", "refunds",
                "first_seen_at", "last_event_at", "last_purchase_at", "avg_gap_days",
                "usual_active_hour", "consent", "recency_days", "monetary_90d")
# taken at the same instant T on both sides, so equal up to float rounding
AT_SAME_INSTANT = {"churn_risk": 1e-6, "p_alive": 1e-6}
