"""A user's state as the user-state contract shows it (``GET /users/{id}``, and each line
of ``journey replay --state-out``)."""

from __future__ import annotations

from typing import Any

from streams.core import alerts, lifecycle, reach
from streams.core.contracts import USER_STATE
from streams.core.population import Model
from streams.core.state import UserState
from streams.core.timefmt import rfc3339
from streams.settings import Settings

DAY = 86400.0


def snapshot(state: UserState, model: Model, now: float, settings: Settings) -> dict[str, Any]:
    """The user-state record of ``state`` as of ``now``."""
    p = lifecycle.p_alive(state, model, now, settings)
    risk = lifecycle.churn_risk(state, model, now, settings)
    last_buy = state.last_purchase_at
    gap = state.avg_gap_days()
    return {
        "schema": USER_STATE.id,
        "user_id": state.user_id,
        "lifecycle_stage": state.stage,
        "churn_risk": round(risk, 6),
        "p_alive": round(p, 6),
        "recency_days": None if last_buy is None else round((now - last_buy) / DAY, 4),
        "frequency": state.repeat_purchases,
        "monetary": round(state.monetary, 2),
        "orders": state.orders,
        "monetary_90d": round(state.net_spend_90d(now), 2),
        "value_tier": model.value_tier(state),
        "role": alerts.role(state, settings),
        "funnel_stage": state.funnel_stage(),
        "first_seen_at": rfc3339(state.first_seen_at),
        "last_event_at": rfc3339(state.last_event_at),
        "last_purchase_at": None if last_buy is None else rfc3339(last_buy),
        "avg_gap_days": None if gap is None else round(gap, 4),
        "usual_active_hour": reach.usual_hour(state),
        "consent": [c for c in reach.ranked_channels(state, False, settings)],
        "refunds": state.refunds,
        "alerts_sent": state.alerts_sent,
        "last_alert_id": state.last_alert_id,
    }
