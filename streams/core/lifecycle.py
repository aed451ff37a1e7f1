"""Lifecycle stage rules: a pure function of a user's aggregates and the time.

Thresholds follow the user's own purchase rhythm once they have enough orders, and the
population's (fitted, or the operator's ``purchase_cycle_days``) before that. A buyer who
is still browsing within ``activity_grace_days`` is not declining yet.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from streams.core import btyd
from streams.core.churn.model import BTYD, LOGIT, ChurnModel, score
from streams.core.population import Model
from streams.core.state import CHURNED, DECLINING, GROWING, MATURE, NEW, UserState
from streams.settings import Settings

DAY = 86400.0


class Rhythm(NamedTuple):
    """When this user's inactivity turns into decline and churn (a named tuple: one is
    built per wake and per event, and a tuple is built much faster than a frozen class)."""

    active_stage: str  # the stage the user is in while active
    gap_days: float  # the usual gap the thresholds are built on
    gap_source: str  # own | population | new_user
    decline_at: float
    churn_at: float
    decline_days: float  # threshold, for the evidence
    churn_days: float
    anchor: float  # the activity the thresholds count from


NEVER = float("inf")


def rhythm(state: UserState, model: Model, settings: Settings) -> Rhythm:
    if not state.active_seen and state.orders == 0:
        # known only from others' events (a referral credit) or our own messages:
        # never active, so nothing to decline from
        return Rhythm(NEW, settings.new_user_decline_days, "new_user", NEVER, NEVER,
                      settings.new_user_decline_days, settings.new_user_churn_days,
                      state.last_active_at)
    if state.orders == 0 or state.last_purchase_at is None:
        d, c = settings.new_user_decline_days, settings.new_user_churn_days
        anchor = state.last_active_at
        return Rhythm(NEW, d, "new_user", anchor + d * DAY, anchor + c * DAY, d, c, anchor)
    active = active_stage(state, settings)
    own = state.avg_gap_days()
    if own is not None and state.orders >= settings.own_rhythm_min_orders and own > 0:
        gap, source = own, "own"
    else:
        gap, source = model.gap_days, "population"
    d = max(settings.min_decline_days, settings.decline_after_gaps * gap)
    c = max(settings.min_churn_days, settings.churn_after_gaps * gap)
    grace = state.last_active_at + settings.activity_grace_days * DAY
    decline_at = max(state.last_purchase_at + d * DAY, grace)
    churn_at = max(state.last_purchase_at + c * DAY, grace)
    return Rhythm(active, gap, source, decline_at, churn_at, d, c, state.last_purchase_at)


def active_stage(buyer: UserState, settings: Settings) -> str:
    """The stage ``buyer`` (a user with an order) has while active."""
    return MATURE if buyer.repeat_purchases >= settings.mature_min_repeat_purchases else GROWING


def stage_at(r: Rhythm, now: float) -> str:
    if now >= r.churn_at:
        return CHURNED
    if now >= r.decline_at:
        return DECLINING
    return r.active_stage


def next_deadline(r: Rhythm, now: float) -> float | None:
    """The next instant the stage changes without any new event."""
    if now < r.decline_at:
        return r.decline_at if r.decline_at != NEVER else None
    if now < r.churn_at:
        return r.churn_at if r.churn_at != NEVER else None
    return None


def deadline_for(stage: str, r: Rhythm) -> float | None:
    """When a user now in ``stage`` leaves it for lack of activity (None: never)."""
    if stage == CHURNED:
        return None
    due = r.churn_at if stage == DECLINING else r.decline_at
    return None if due == NEVER else due


def p_alive(state: UserState, model: Model, now: float, settings: Settings) -> float:
    """Probability the user is still active.

    Buyers: MBG/NBD on their purchases, which lets one-time buyers die too. Users who
    never bought have no purchase process to model; their probability halves every
    ``new_user_decline_days`` of silence.
    """
    if state.orders == 0 or state.first_purchase_at is None or state.last_purchase_at is None:
        idle = max(0.0, now - state.last_active_at) / DAY
        return math.exp(-math.log(2.0) * idle / settings.new_user_decline_days)
    x = state.orders - 1
    t_x = (state.last_purchase_at - state.first_purchase_at) / DAY
    big_t = max(now - state.first_purchase_at, state.last_purchase_at - state.first_purchase_at)
    return btyd.p_alive(model.params, x, t_x, big_t / DAY)


def churn_risk(state: UserState, model: Model, now: float, settings: Settings,
               r: Rhythm | None = None) -> float:
    """Probability the user makes no purchase within their churn threshold from now:
    gone, or alive but too slow. Ranks silence against each user's own pace, which
    ``1 - p_alive`` alone does not (a slow buyer's quiet is not a loss).

    Users who never bought fall back to ``1 - p_alive``.
    """
    if state.orders == 0 or state.first_purchase_at is None or state.last_purchase_at is None:
        return 1.0 - p_alive(state, model, now, settings)
    if r is None:
        r = rhythm(state, model, settings)
    x = state.orders - 1
    t_x = (state.last_purchase_at - state.first_purchase_at) / DAY
    big_t = max(now - state.first_purchase_at, state.last_purchase_at - state.first_purchase_at)
    risk = btyd.p_no_purchase(model.params, r.churn_days, x, t_x, big_t / DAY)
    return min(1.0, max(0.0, risk))


def learned_for(state: UserState, model: Model) -> ChurnModel | None:
    """The learned churn model, if it scores this user: a buyer, once the partition has
    one (until then, and for users who never bought, the rules above apply)."""
    learned = model.learned
    if learned is None or state.orders == 0 or state.last_purchase_at is None:
        return None
    return learned


def churn_score(state: UserState, model: Model, now: float, settings: Settings,
                r: Rhythm | None = None) -> tuple[float, str]:
    """The user's ``churn_risk`` and the scorer that made it: the learned p(no purchase
    within the horizon), or ``churn_risk`` above."""
    learned = learned_for(state, model)
    if learned is not None:
        return score(learned, state, now), LOGIT
    return churn_risk(state, model, now, settings, r), BTYD
