"""Stages of a buyer under the learned churn score.

A buyer is ``declining`` from the first instant their score reaches the model's
declining threshold and ``churned`` from the first at which it reaches the churned one,
if they do nothing more; never before journey's floors: ``min_decline_days`` and
``min_churn_days`` of purchase silence, and ``activity_grace_days`` after any activity.
Stages stay timer-driven and sticky: without activity a user never moves back.

The hot path stays cheap. After an event only the score at ``now`` is read, and only
past the floors; the next deadline handed to the timer index is a lower bound (the
floor). The crossing is solved when that wake fires (:func:`due`), off the event path.
"""

from __future__ import annotations

from streams.core.churn.model import ChurnModel, crossing, curve, score_each
from streams.core.state import CHURNED, DAY, DECLINING, INACTIVE_STAGES, UserState
from streams.settings import Settings


def floors(s: UserState, settings: Settings) -> tuple[float, float]:
    """The earliest instants buyer ``s`` can be declining and churned."""
    last = s.last_purchase_at or 0.0
    grace = s.last_active_at + settings.activity_grace_days * DAY
    decline = last + settings.min_decline_days * DAY
    churn = last + settings.min_churn_days * DAY
    return (decline if decline > grace else grace), (churn if churn > grace else grace)


def stage_at(model: ChurnModel, s: UserState, active_stage: str, now: float,
             settings: Settings) -> str:
    """Buyer ``s``'s stage at ``now``; ``active_stage`` is the one they have while active
    (growing or mature)."""
    decline_floor, churn_floor = floors(s, settings)
    if now < decline_floor:
        return active_stage
    c = curve(model, s)
    if now >= churn_floor and c.crossed(now, model.churned_threshold):
        return CHURNED
    if c.crossed(now, model.declining_threshold):
        return DECLINING
    # below both (the score is not monotone): an inactive user stays where they are
    return s.stage if s.stage in INACTIVE_STAGES else active_stage


def next_wake(s: UserState, stage: str, now: float, settings: Settings) -> float | None:
    """A lower bound of when ``stage`` next changes without activity: its floor, or
    ``now`` when that has passed (the crossing is solved when the wake fires)."""
    if stage == CHURNED:
        return None
    decline_floor, churn_floor = floors(s, settings)
    floor = churn_floor if stage == DECLINING else decline_floor
    return floor if floor > now else now


def due(model: ChurnModel, s: UserState, woken_at: float, settings: Settings) -> float | None:
    """When buyer ``s``, woken at ``woken_at``, leaves their current stage: at or before
    ``woken_at`` means now; None means not within the solver's reach."""
    if s.stage == CHURNED:
        return None
    decline_floor, churn_floor = floors(s, settings)
    if s.stage == DECLINING:
        floor, threshold = churn_floor, model.churned_threshold
    else:
        floor, threshold = decline_floor, model.declining_threshold
    if woken_at < floor:
        return floor
    return crossing(model, s, threshold, woken_at)


def schedule_inputs(s: UserState) -> tuple[object, ...]:
    """Everything a buyer's learned stage and wake are derived from: the stage, the
    floors' inputs and the score's (``features.row``). An event that leaves these as they
    were leaves the wake as it was (see ``PartitionProcessor._settle``)."""
    return (s.stage, s.stage_since, s.last_active_at, s.last_purchase_at, s.first_purchase_at,
            s.purchase_days, s.gross_spend, s.last_day_spend, s.last_gap_days, s.decays())


def past_threshold(model: ChurnModel, s: UserState, at: float, settings: Settings) -> bool:
    """Whether a new model puts buyer ``s`` past the threshold of their next stage at
    ``at`` (a refit wakes those at once; the others keep their wake)."""
    if s.stage == CHURNED:
        return False
    decline_floor, churn_floor = floors(s, settings)
    # (score_each, not a Curve: a refit asks this of every active buyer, once each)
    if s.stage == DECLINING:
        return at >= churn_floor and score_each(model, (s,), at)[0] >= model.churned_threshold
    return at >= decline_floor and score_each(model, (s,), at)[0] >= model.declining_threshold
