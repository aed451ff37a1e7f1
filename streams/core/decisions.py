"""What a user's stage change means: the lifecycle-transition record, and on entering
decline or churn, whether to alert, on which channels and when (or why not)."""

from __future__ import annotations

from typing import Any

from streams.core import alerts, identity, lifecycle, reach
from streams.core import event as ev
from streams.core.churn import stages
from streams.core.contracts import LIFECYCLE_TRANSITION
from streams.core.event import Event
from streams.core.outputs import Outputs
from streams.core.population import Model
from streams.core.state import ACTIVE_STAGES, CHURNED, DECLINING, NEW, UserState
from streams.core.timefmt import rfc3339
from streams.settings import Settings

DAY = 86400.0
NEVER = float("-inf")  # a live_from before everything: no alert is historical


def after_event(state: UserState, event: Event, known: bool, now: float, model: Model,
                settings: Settings, out: Outputs, live_from: float = NEVER) -> float | None:
    """Re-derive the stage of a user ``event`` was applied to (``known``: the user was
    seen before), record a change; returns the user's next deadline. Alerts dated before
    ``live_from`` are historical (see :func:`alert`)."""
    stage, r = _stage_now(state, now, model, settings)
    old = state.stage if known else None
    if old == CHURNED and stage in ACTIVE_STAGES \
            and settings.reactivation_requires == "purchase" \
            and event.type != ev.PURCHASE and event.occurred_at >= state.stage_since \
            and not identity.brings_purchase(event, state.stage_since):
        stage = CHURNED  # browsing is not a comeback here; late activity still counts
    if stage != old:
        enter(state, old, stage, now, _rhythm(r, state, model, settings),
              change_reason(old, stage, event, state), model, settings, out, live_from)
    if stage == CHURNED:
        return None
    return lifecycle.next_deadline(r, now) if r is not None \
        else stages.next_wake(state, stage, now, settings)


def at_deadline(state: UserState, now: float, model: Model, settings: Settings,
                out: Outputs, live_from: float = NEVER) -> float | None:
    """Re-derive the stage of a user whose deadline came, record a change; returns the
    user's next deadline."""
    stage, r = _stage_now(state, now, model, settings)
    if stage != state.stage:
        enter(state, state.stage, stage, now, _rhythm(r, state, model, settings),
              "inactivity", model, settings, out, live_from)
    return lifecycle.next_deadline(r, now) if r is not None \
        else stages.next_wake(state, stage, now, settings)


def _stage_now(state: UserState, now: float, model: Model,
               settings: Settings) -> tuple[str, lifecycle.Rhythm | None]:
    """The user's stage at ``now`` and the rhythm it was read from; None under the learned
    score, which reads no rhythm: it is then built only when an alert needs it."""
    learned = lifecycle.learned_for(state, model)
    if learned is None:
        r = lifecycle.rhythm(state, model, settings)
        return lifecycle.stage_at(r, now), r
    active = lifecycle.active_stage(state, settings)
    return stages.stage_at(learned, state, active, now, settings), None


def _rhythm(r: lifecycle.Rhythm | None, state: UserState, model: Model,
            settings: Settings) -> lifecycle.Rhythm:
    return r if r is not None else lifecycle.rhythm(state, model, settings)


def due(state: UserState, woken_at: float, model: Model, settings: Settings) -> float | None:
    """When a user whose wake came at ``woken_at`` leaves their stage (re-derived, not
    read back: activity and re-fits move it); None: never without activity."""
    learned = lifecycle.learned_for(state, model)
    if learned is None:
        return lifecycle.deadline_for(state.stage, lifecycle.rhythm(state, model, settings))
    return stages.due(learned, state, woken_at, settings)


def change_reason(old: str | None, new: str, event: Event, state: UserState) -> str:
    """Why an event moved a user from ``old`` to ``new``."""
    if old is None:
        return "first_seen"
    if old == CHURNED:
        return "reactivation" if event.occurred_at >= state.stage_since else "late_activity"
    if old == DECLINING:
        return "recovered" if event.occurred_at >= state.stage_since else "late_activity"
    if old == NEW:
        return "first_purchase"
    return "repeat_milestone"


def enter(state: UserState, old: str | None, new: str, now: float, r: lifecycle.Rhythm,
          reason: str, model: Model, settings: Settings, out: Outputs,
          live_from: float = NEVER) -> None:
    """Record a stage change and, on entering decline or churn, decide the alert."""
    inactive = new in (DECLINING, CHURNED)
    days = (now - state.last_active_at) / DAY if inactive else None
    transition(state, old, new, now, "inactivity" if inactive else reason, out, days,
               settings.uplift_window_days * DAY)
    if new == DECLINING:
        alert(alerts.CHURN_WARNING, state, now, r, old or NEW, model, settings, out, live_from)
    elif new == CHURNED:
        alert(alerts.RECALL_TRIGGER, state, now, r, old or NEW, model, settings, out, live_from)


def transition(state: UserState, old: str | None, new: str, now: float, reason: str,
               out: Outputs, days_inactive: float | None, return_window: float) -> None:
    """The lifecycle-transition record; the user enters ``new`` at ``now``. A return
    within ``return_window`` of the recall it follows counts for uplift."""
    reactivation = reason == "reactivation"
    after_id: str | None = None
    after_control: bool | None = None
    if reactivation:
        if state.last_recall_id and state.last_recall_at is not None \
                and state.last_recall_at >= state.stage_since:
            after_id, after_control = state.last_recall_id, state.last_recall_control
            out.reactivations.append("control" if after_control else "treated")
            if now - state.last_recall_at <= return_window:
                state.recall_returns += 1
        else:
            out.reactivations.append("none")
    if out.transition_records:
        out.transitions.append(_transition_record(state, old, new, now, reason, after_id,
                                                  after_control, days_inactive))
    else:
        out.transitions.append({"type": "lifecycle_transition"})  # counted only
    state.stage = new
    state.stage_since = now


def _transition_record(state: UserState, old: str | None, new: str, now: float,
                       reason: str, after_id: str | None, after_control: bool | None,
                       days_inactive: float | None) -> dict[str, Any]:
    return {
        "schema": LIFECYCLE_TRANSITION.id,
        "type": "lifecycle_transition",
        "transition_id": alerts.stable_id("lt", state.user_id, old, new,
                                          alerts.episode_key(now)),
        "user_id": state.user_id,
        "at": rfc3339(now),
        "from_stage": old,
        "to_stage": new,
        "reason": reason,
        "reactivation": reason == "reactivation",
        "after_alert_id": after_id,
        "after_alert_control": after_control,
        "days_inactive": None if days_inactive is None else round(days_inactive, 3),
    }


def alert(kind: str, state: UserState, now: float, r: lifecycle.Rhythm, stage_from: str,
          model: Model, settings: Settings, out: Outputs, live_from: float = NEVER) -> None:
    """A churn warning or recall trigger, unless the user cannot be reached or was
    contacted too recently (then the reason is counted as suppressed). Dated before
    ``live_from`` (set by ``journey bootstrap``), it is historical."""
    tier = model.value_tier(state)
    channels = reach.ranked_channels(state, tier == "top", settings)
    if not channels:
        out.suppressed.append((kind, reach.unreachable_reason(state, settings)))
        return
    reason = reach.cap_reason(state, kind, now, settings)
    if reason is not None:
        out.suppressed.append((kind, reason))
        return
    offset = state.utc_offset_min if state.utc_offset_min is not None \
        else reach.zone_offset(settings.default_timezone, now)
    if out.alert_records:
        window = reach.send_window(state, now, offset, settings)
        deferred = window.deferred
        p_alive = lifecycle.p_alive(state, model, now, settings)
        risk = alerts.Risk(*lifecycle.churn_score(state, model, now, settings, r),
                           _risk_threshold(kind, state, model))
        record = alerts.build_alert(kind, state, now, r, model, p_alive, risk, stage_from,
                                    channels, window, settings)
    else:
        deferred = reach.is_deferred(now, offset, settings)  # (a count needs no window)
        record = alerts.counted_alert(kind, state, now, r, settings)
    if now < live_from:
        # about a lapse from before going live: reported, not sent, so not recorded as
        # sent (caps, cooldown and reactivation attribution ignore it)
        out.historical.append(record)
        out.suppressed.append((kind, "historical"))
        return
    if deferred:
        out.deferred.append(kind)
    out.alerts.append(record)
    state.alerts_sent += 1
    state.log_alert(now)
    state.last_alert_id = record["alert_id"]
    if kind == alerts.RECALL_TRIGGER:
        state.recalls += 1
        state.last_recall_id = record["alert_id"]
        state.last_recall_at = now
        state.last_recall_control = record["control"]


def _risk_threshold(kind: str, state: UserState, model: Model) -> float | None:
    """The learned score's threshold the alert's stage stands for (None: the rhythm's)."""
    learned = lifecycle.learned_for(state, model)
    if learned is None:
        return None
    return learned.churned_threshold if kind == alerts.RECALL_TRIGGER \
        else learned.declining_threshold
