"""What an alert says: ids, evidence, priority, churn type, strategy, control flag."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from streams.core import contracts
from streams.core.lifecycle import Rhythm
from streams.core.population import Model
from streams.core.reach import SendWindow
from streams.core.state import UserState
from streams.core.timefmt import rfc3339
from streams.settings import Settings

DAY = 86400.0
CHURN_WARNING = "churn_warning"
RECALL_TRIGGER = "recall_trigger"
SCHEMA = {CHURN_WARNING: contracts.CHURN_WARNING.id, RECALL_TRIGGER: contracts.RECALL_TRIGGER.id}
PREFIX = {CHURN_WARNING: "cw", RECALL_TRIGGER: "rt"}
PRIORITY = {"top": "high", "middle": "medium", "base": "low", "none": "low"}


class Risk(NamedTuple):
    """The churn score an alert reports, who made it, and (learned score) the threshold
    the alert's stage stands for."""

    score: float
    scorer: str  # logit | btyd
    threshold: float | None = None


def stable_id(prefix: str, *parts: object) -> str:
    """Same inputs, same id: subscribers dedupe re-sent alerts by it."""
    text = "|".join(map(str, parts))
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def episode_key(t: float) -> int:
    return int(round(t * 1000))  # noqa: RUF046 - t may be a numpy 1.x float: not an int


def is_control(user_id: str, settings: Settings) -> bool:
    """Deterministic per user, so a control user stays untouched across alerts."""
    digest = hashlib.sha256(f"{settings.control_salt}|{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < settings.control_share


def churn_type(state: UserState) -> str:
    return "new_user" if state.orders <= 1 else "established"


def role(state: UserState, settings: Settings) -> str:
    if state.referred_converted >= settings.opinion_leader_min_converted:
        return "opinion_leader"
    if state.orders >= settings.own_rhythm_min_orders:  # gap_cv only when it can matter
        cv = state.gap_cv()
        if cv is not None and cv <= settings.rigid_demand_max_cv:
            return "rigid_demand"
    if state.orders == 0 and state.shares >= settings.sharer_min_shares:
        return "sharer"
    return "regular"


def strategy(state: UserState, kind: str, tier: str, user_role: str) -> dict[str, str]:
    top = tier == "top"
    if churn_type(state) == "new_user":
        if kind == RECALL_TRIGGER:
            return {"kind": "price", "incentive": "coupon",
                    "reason": "new user who never came back: a first-order privilege to break zero"}
        return {"kind": "service", "incentive": "none",
                "reason": "new user going quiet: warm onboarding help, not a campaign"}
    avg_rating = state.rating_sum / state.reviews if state.reviews else None
    if state.refunds or (avg_rating is not None and avg_rating <= 2.5):
        return {"kind": "service", "incentive": "personal_call" if top else "voucher",
                "reason": "refunds or low ratings point to a service problem"}
    if state.orders and state.coupons / state.orders >= 0.5:
        return {"kind": "price", "incentive": "voucher" if top else "coupon",
                "reason": "price-sensitive: coupons on most orders"}
    if user_role == "rigid_demand":
        return {"kind": "product", "incentive": "points",
                "reason": "buys on a regular cycle that has lapsed: points or a member upgrade, "
                          "not cash"}
    return {"kind": "product", "incentive": "personal_call" if top else "none",
            "reason": "personalised offer on what they bought before"}


def episode_start(state: UserState, r: Rhythm) -> float:
    """Where the inactivity episode an alert is about began: its id names it."""
    return r.anchor if state.orders == 0 else max(r.anchor, state.last_active_at)


def alert_id(kind: str, state: UserState, episode: float) -> str:
    return stable_id(PREFIX[kind], state.user_id, kind, episode_key(episode))


def counted_alert(kind: str, state: UserState, now: float, r: Rhythm,
                  settings: Settings) -> dict[str, Any]:
    """An alert as a driver that only counts alerts gets it: its type and time (a report
    counts alerts by day), and the id and control flag the state keeps (the same as
    ``build_alert``'s)."""
    return {"type": kind, "alert_id": alert_id(kind, state, episode_start(state, r)),
            "detected_at": rfc3339(now), "control": is_control(state.user_id, settings)}


def build_alert(kind: str, state: UserState, now: float, r: Rhythm, model: Model,
                p_alive: float, risk: Risk, stage_from: str, channels: list[str],
                window: SendWindow, settings: Settings) -> dict[str, Any]:
    tier = model.value_tier(state)
    user_role = role(state, settings)
    idle_days = (now - state.last_active_at) / DAY
    since_buy = None if state.last_purchase_at is None else (now - state.last_purchase_at) / DAY
    threshold = r.churn_days if kind == RECALL_TRIGGER else r.decline_days
    aov = state.monetary / state.orders if state.orders else None
    evidence = {
        "days_since_last_activity": round(idle_days, 3),
        "days_since_last_purchase": None if since_buy is None else round(since_buy, 3),
        "usual_gap_days": round(r.gap_days, 3),
        "gap_source": r.gap_source,
        "threshold_days": round(threshold, 3),
        "p_alive": round(p_alive, 4),
        "churn_risk": round(risk.score, 4),
        "churn_scorer": risk.scorer,
        "risk_threshold": None if risk.threshold is None else round(risk.threshold, 4),
        "orders": state.orders,
        "repeat_purchases": state.repeat_purchases,
        "monetary": round(state.monetary, 2),
        "monetary_90d": round(state.net_spend_90d(now), 2),
        "avg_order_value": None if aov is None else round(aov, 2),
        "refunds": state.refunds,
        "summary": _summary(kind, state, idle_days, since_buy, r, p_alive, risk, tier),
    }
    episode = episode_start(state, r)
    alert: dict[str, Any] = {
        "schema": SCHEMA[kind],
        "type": kind,
        "alert_id": alert_id(kind, state, episode),
        "user_id": state.user_id,
        "detected_at": rfc3339(now),
        "episode_started_at": rfc3339(episode),
        "stage_from": stage_from,
        "churn_type": churn_type(state),
        "priority": PRIORITY[tier],
        "priority_score": round(max(0.0, state.monetary) * risk.score, 2),
        "value_tier": tier,
        "role": user_role,
        "funnel_stage": state.funnel_stage(),
        "evidence": evidence,
        "strategy": strategy(state, kind, tier, user_role),
        "channels": channels,
        "send_window": window.as_dict(),
        "control": is_control(state.user_id, settings),
    }
    if kind == RECALL_TRIGGER:
        alert["recall_number"] = state.recalls + 1
    return alert


def _summary(kind: str, state: UserState, idle_days: float, since_buy: float | None,
             r: Rhythm, p_alive: float, risk: Risk, tier: str) -> str:
    # The sentence gives what decided the stage. A buyer's P(alive) did not (the rhythm
    # or the learned score did), and beside "now churned" a high one reads as a
    # contradiction; it stays in the evidence.
    if state.orders == 0:
        head = (f"Never bought; no activity for {idle_days:.0f} days; "
                f"P(alive) {p_alive:.2f}")
    else:
        head = (f"No purchase for {since_buy:.0f} days against a usual gap of "
                f"{r.gap_days:.0f} days ({r.gap_source} rhythm)")
    if risk.threshold is not None:
        head += (f"; learned churn risk {risk.score:.2f} reached the {risk.threshold:.2f} "
                 "threshold")
    verdict = "churned" if kind == RECALL_TRIGGER else "declining"
    return (f"{head}; {state.orders} orders, "
            f"{state.monetary:.2f} spent; value tier {tier}; now {verdict}.")
