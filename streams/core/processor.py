"""One partition's state machine: events and clock ticks in, outputs out.

The live worker and ``journey replay`` both drive this class, with the partition's
events in the same order, so they produce the same state and the same alerts. Time only
moves through ``process`` (an event's time) and ``advance`` (a tick or the end of a
replay); timers and model re-fits fire at their own instants, in order, as time passes
over them.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from streams.core import alerts, lifecycle, population, reach
from streams.core import event as ev
from streams.core.apply import REFERRAL_CONVERTED, apply_event, converted_referrer, new_state
from streams.core.contracts import LIFECYCLE_TRANSITION, USER_STATE
from streams.core.event import Event
from streams.core.outputs import Outputs, Rejected
from streams.core.population import Model, Sample
from streams.core.state import ACTIVE_STAGES, CHURNED, DECLINING, NEW, UserState
from streams.core.timefmt import rfc3339
from streams.core.timers import DeadlineIndex
from streams.settings import Settings

DAY = 86400.0
NEG_INF = float("-inf")
# Referral credits held for a partition whose clock is behind them (kept in its context,
# so written with every batch that touches the partition): beyond this, apply on arrival.
HELD_CREDITS_CAP = 5000


def _credit_to_list(e: Event) -> list[Any]:
    return [e.event_id, e.user_id, e.occurred_at, e.properties.get("referred_user_id")]


def _credit_from_list(c: list[Any]) -> Event:
    return Event(event_id=c[0], user_id=c[1], type=REFERRAL_CONVERTED, occurred_at=float(c[2]),
                 source="journey", properties={"referred_user_id": c[3]})


def _census_key(s: UserState) -> tuple[str, int, bool, bool, bool]:
    return (s.stage, s.funnel_index(), s.orders >= 1, s.orders >= 2,
            bool(s.referrals_sent or s.referred_converted))


class PartitionProcessor:
    """State machine of one partition over a mutable mapping of user id to state."""

    def __init__(self, settings: Settings, store: MutableMapping[str, UserState],
                 partition: int = 0, owns: Callable[[str], bool] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.partition = partition
        # which of the store's keys are this partition's users (a shared table holds
        # several partitions; replay gives each partition a store of its own)
        self.owns = owns
        self.clock = NEG_INF
        self.model = Model.prior(settings)
        self.next_refit_at: float | None = None
        self.applied_position = -1
        self.index = DeadlineIndex()
        self.sample = Sample(settings.population_sample_size)
        self.census: Counter[tuple[str, int, bool, bool, bool]] = Counter()
        self._lateness = settings.allowed_lateness_seconds
        self._skew = settings.max_future_skew_seconds
        self._held: list[tuple[float, str, Event]] = []  # credits ahead of the clock
        self._held_ids: set[str] = set()
        # re-fits by instant since the last checkpoint (and logged ones not reached yet):
        # a re-fit reads other users' states, so it is recorded, not recomputed, when a
        # restarted worker goes over its instant again
        self.refit_log: dict[float, list[object]] = {}
        self._base = self.context()

    # --- persistence of the partition's own context ---------------------------------

    def context(self) -> dict[str, Any]:
        return {"clock": None if self.clock == NEG_INF else self.clock,
                "model": self.model.to_list(), "next_refit_at": self.next_refit_at,
                "applied_position": self.applied_position,
                "held_credits": [_credit_to_list(e) for _, _, e in sorted(self._held)]}

    def checkpoint(self) -> dict[str, Any]:
        """The context to persist *before* a batch's user writes: as it was at the
        previous checkpoint, plus the re-fits made since. The current context becomes
        the next checkpoint's base.

        A crash can leave any subset of the batch's user writes in the table. Restored
        from this, the partition goes over the batch again: users already written count
        its events as duplicates, the others apply them, and re-fits come from the log,
        so neither depends on which writes made it.
        """
        ctx = dict(self._base)
        ctx["refits"] = [[t, m] for t, m in sorted(self.refit_log.items())]
        self._base = self.context()
        nxt = self.next_refit_at
        self.refit_log = {t: m for t, m in self.refit_log.items()
                          if nxt is not None and t >= nxt}
        return ctx

    def restore(self, ctx: dict[str, Any] | None, states: Iterable[UserState]) -> None:
        """Rebuild the in-memory index, sample and census from the table (after a restart
        or a rebalance): O(users in the partition), once."""
        self.refit_log = {}
        if ctx:
            self.clock = NEG_INF if ctx.get("clock") is None else float(ctx["clock"])
            self.model = Model.from_list(ctx["model"])
            self.next_refit_at = ctx.get("next_refit_at")
            self.applied_position = int(ctx.get("applied_position", -1))
            self.refit_log = {float(t): m for t, m in ctx.get("refits") or ()}
        held = [_credit_from_list(c) for c in (ctx or {}).get("held_credits") or ()]
        self._held = [(e.occurred_at, e.event_id, e) for e in held]
        heapq.heapify(self._held)
        self._held_ids = {e.event_id for e in held}
        self.index = DeadlineIndex()
        self.sample = Sample(self.settings.population_sample_size)
        self.census.clear()
        for s in states:
            self.sample.offer(s.user_id)
            self.census[_census_key(s)] += 1
            if s.wake_at is not None:
                self.index.register(s.user_id, s.wake_at)
        self._base = self.context()

    # --- the two ways time moves ----------------------------------------------------

    def process(self, event: Event, out: Outputs, *, received_at: float | None = None,
                position: int | None = None, feedback: bool = False) -> None:
        """Apply one decoded event (at-least-once safe: duplicates change nothing).

        ``feedback`` marks journey's own news from another partition (a referral credit):
        it travels a repartition hop, so it is exempt from the lateness cut-off.
        """
        if feedback and event.occurred_at > self.clock:
            self._hold(event, out)
            return
        self._take(event, out, received_at, position, feedback, self.clock)

    def _take(self, event: Event, out: Outputs, received_at: float | None,
              position: int | None, feedback: bool, at: float) -> None:
        """``process`` once an event is due; ``at`` is the instant a credit is judged at."""
        state = self.store.get(event.user_id)
        t = event.occurred_at
        if state is not None and (
                (position is not None and position <= state.max_position)
                or event.event_id in state.recent_ids):
            out.duplicates += 1
            # time still passes: a restarted partition going over records its users
            # already hold must fire timers and judge lateness as the first pass did
            if not feedback and t > self.clock and (received_at is None
                                                    or t <= received_at + self._skew):
                self._pass_time(t, out)
            self._note_position(position)
            return
        if received_at is not None and t > received_at + self._skew:
            out.rejected.append(Rejected(
                "future_timestamp", f"occurred_at is {t - received_at:.0f}s after it was "
                f"received (allowed skew {self._skew:.0f}s)", event))
            return
        if t < self.clock - self._lateness and not feedback:
            out.rejected.append(Rejected(
                "too_late", f"occurred_at is {self.clock - t:.0f}s behind the partition clock "
                f"(allowed lateness {self._lateness:.0f}s)", event))
            return
        if t > self.clock and not feedback:  # news from another partition is not our time
            self._pass_time(t, out)
            state = self.store.get(event.user_id)
        self._note_position(position)
        if state is None:
            state = new_state(event)
            before = None
            self.sample.offer(event.user_id)
            if self.next_refit_at is None:
                self.next_refit_at = self._next_epoch(t)
        else:
            before = _census_key(state)
        if position is not None:
            state.max_position = max(state.max_position, position)
        state.remember_id(event.event_id, self.settings.dedupe_window)
        apply_event(state, event, self.settings)
        credit = converted_referrer(state)
        if credit is not None:
            referrer, credited_at = credit
            out.feedback.append(Event(
                event_id=alerts.stable_id("rc", state.user_id), user_id=referrer,
                type=REFERRAL_CONVERTED, occurred_at=credited_at, source="journey",
                properties={"referred_user_id": state.user_id}))
        self._settle(state, event, before, out, at if feedback else self.clock)
        out.applied.append(event)

    def _pass_time(self, t: float, out: Outputs) -> None:
        """Move the clock forward to ``t``, firing what falls due on the way."""
        if t >= self._wake():
            self._run_until(t, out)
        self.clock = t

    def _note_position(self, position: int | None) -> None:
        if position is not None and position > self.applied_position:
            self.applied_position = position

    def _hold(self, event: Event, out: Outputs) -> None:
        """Keep a credit from ahead of this partition's clock until the clock gets there.

        Credits cross partitions asynchronously; applied on arrival, one from a partition
        that is ahead would date the referrer's state (and start its partition's re-fit
        epochs) in this partition's future. Held, it takes effect in event time, as in a
        replay. Past the cap, credits are applied on arrival instead.
        """
        if event.event_id in self._held_ids:
            out.duplicates += 1
            return
        if len(self._held) >= HELD_CREDITS_CAP:
            self._take(event, out, None, None, True, max(self.clock, event.occurred_at))
            return
        heapq.heappush(self._held, (event.occurred_at, event.event_id, event))
        self._held_ids.add(event.event_id)

    def advance(self, now: float, out: Outputs) -> None:
        """Move the clock to ``now`` (a wall-clock tick, or the end of a replay) and fire
        every timer due by then."""
        if now <= self.clock:
            return
        self._run_until(now, out)
        self.clock = now

    # --- internals ------------------------------------------------------------------

    def _wake(self) -> float:
        """Lower bound of the next timer or re-fit instant."""
        refit = self.next_refit_at
        earliest = self.index.earliest()
        return earliest if refit is None or earliest < refit else refit

    def _next_epoch(self, t: float) -> float:
        """The first refit instant strictly after ``t`` on the epoch-aligned grid."""
        step = self.settings.refit_interval_days * DAY
        nxt = (t // step + 1) * step
        while nxt <= t:  # float rounding can land the product on t itself
            nxt += step
        return nxt

    def _run_until(self, until: float, out: Outputs) -> None:
        """Fire timers and re-fits due at or before ``until``, in time order. Deadlines
        equal to an event's time fire first, in replay and live alike."""
        index, held = self.index, self._held
        while True:
            refit_at = self.next_refit_at
            if refit_at is not None and refit_at <= until and refit_at <= index.earliest() \
                    and (not held or refit_at <= held[0][0]):
                self._refit(refit_at, out)
                continue
            if held and held[0][0] <= until and held[0][0] < index.earliest():
                t, event_id, credit = heapq.heappop(held)
                self._held_ids.discard(event_id)
                self._take(credit, out, None, None, True, t)
                continue
            popped = index.pop_due(until)
            if popped is None:
                return
            woken_at, user_id = popped
            state = self.store.get(user_id)
            if state is None:
                continue
            # the deadline is re-derived, not read back: activity and re-fits move it
            due = lifecycle.deadline_for(state.stage,
                                         lifecycle.rhythm(state, self.model, self.settings))
            if due is None or due > woken_at or state.stage_since > woken_at:
                # (nor is a user judged before its own last change: see _settle)
                self._schedule(state, None if due is None else max(due, state.stage_since))
                self.store[user_id] = state
                continue
            self._fire(state, woken_at, out)

    def _refit(self, at: float, out: Outputs) -> None:
        states = (s for u in self.sample if (s := self.store.get(u)) is not None)
        old_gap = self.model.gap_days
        logged = self.refit_log.get(at)
        if logged is not None:
            self.model = Model.from_list(logged)
        else:
            self.model = population.refit(self.model, states, at, self.settings)
            self.refit_log[at] = self.model.to_list()
        self.next_refit_at = self._next_epoch(at)
        out.refits += 1
        if self.model.gap_days < old_gap:
            self._reschedule_population_rhythm(at)

    def _reschedule_population_rhythm(self, at: float) -> None:
        """A shorter population gap brings deadlines forward: wake the users on the
        population rhythm at their new deadline (later ones re-register lazily)."""
        owns = self.owns
        for user_id, state in list(self.store.items()):
            if not isinstance(state, UserState) or state.orders == 0 \
                    or state.stage == CHURNED or (owns is not None and not owns(user_id)):
                continue
            due = lifecycle.deadline_for(state.stage,
                                         lifecycle.rhythm(state, self.model, self.settings))
            if due is None:
                continue
            wake = max(due, at)
            if state.wake_at is None or wake < state.wake_at:
                self._schedule(state, wake)
                self.store[user_id] = state

    def _fire(self, state: UserState, now: float, out: Outputs) -> None:
        before = _census_key(state)
        r = lifecycle.rhythm(state, self.model, self.settings)
        stage = lifecycle.stage_at(r, now)
        if stage != state.stage:
            self._enter(state, state.stage, stage, now, r, "inactivity", out)
        self._schedule(state, lifecycle.next_deadline(r, now))
        self._store(state, before, out)

    def _enter(self, state: UserState, old: str | None, new: str, now: float,
               r: lifecycle.Rhythm, reason: str, out: Outputs) -> None:
        """Record a stage change and, on entering decline or churn, decide the alert."""
        inactive = new in (DECLINING, CHURNED)
        days = (now - state.last_active_at) / DAY if inactive else None
        self._transition(state, old, new, now, "inactivity" if inactive else reason, out, days)
        if new == DECLINING:
            self._alert(alerts.CHURN_WARNING, state, now, r, old or NEW, out)
        elif new == CHURNED:
            self._alert(alerts.RECALL_TRIGGER, state, now, r, old or NEW, out)

    def _settle(self, state: UserState, event: Event, before: tuple[Any, ...] | None,
                out: Outputs, now: float) -> None:
        """Re-derive the stage after an event and schedule the next deadline."""
        if before is not None and state.stage_since > now:
            # Never judge a user before its own last stage change. Only a restarted
            # partition gets here: its clock resumes at the checkpoint before its last
            # batch, while users the batch changed are already past it (see checkpoint).
            now = state.stage_since
        r = lifecycle.rhythm(state, self.model, self.settings)
        stage = lifecycle.stage_at(r, now)
        old = state.stage if before is not None else None
        if old == CHURNED and stage in ACTIVE_STAGES \
                and self.settings.reactivation_requires == "purchase" \
                and event.type != ev.PURCHASE and event.occurred_at >= state.stage_since:
            stage = CHURNED  # browsing is not a comeback here; late activity still counts
        if stage != old:
            self._enter(state, old, stage, now, r, _reason(old, stage, event, state), out)
        self._schedule(state, lifecycle.next_deadline(r, now) if stage != CHURNED else None)
        self._store(state, before, out)

    def _transition(self, state: UserState, old: str | None, new: str, now: float,
                    reason: str, out: Outputs, days_inactive: float | None) -> None:
        reactivation = reason == "reactivation"
        after_id: str | None = None
        after_control: bool | None = None
        if reactivation:
            if state.last_recall_id and state.last_recall_at is not None \
                    and state.last_recall_at >= state.stage_since:
                after_id, after_control = state.last_recall_id, state.last_recall_control
                out.reactivations.append("control" if after_control else "treated")
            else:
                out.reactivations.append("none")
        out.transitions.append({
            "schema": LIFECYCLE_TRANSITION.id,
            "type": "lifecycle_transition",
            "transition_id": alerts.stable_id("lt", state.user_id, old, new,
                                              alerts.episode_key(now)),
            "user_id": state.user_id,
            "at": rfc3339(now),
            "from_stage": old,
            "to_stage": new,
            "reason": reason,
            "reactivation": reactivation,
            "after_alert_id": after_id,
            "after_alert_control": after_control,
            "days_inactive": None if days_inactive is None else round(days_inactive, 3),
        })
        state.stage = new
        state.stage_since = now

    def _alert(self, kind: str, state: UserState, now: float, r: lifecycle.Rhythm,
               stage_from: str, out: Outputs) -> None:
        settings = self.settings
        tier = self.model.value_tier(state)
        channels = reach.ranked_channels(state, tier == "top", settings)
        if not channels:
            out.suppressed.append((kind, "no_consent"))
            return
        reason = reach.cap_reason(state, kind, now, settings)
        if reason is not None:
            out.suppressed.append((kind, reason))
            return
        offset = state.utc_offset_min if state.utc_offset_min is not None \
            else reach.zone_offset(settings.default_timezone, now)
        window = reach.send_window(state, now, offset, settings)
        p_alive = lifecycle.p_alive(state, self.model, now, settings)
        risk = lifecycle.churn_risk(state, self.model, now, settings, r)
        alert = alerts.build_alert(kind, state, now, r, self.model, p_alive, risk, stage_from,
                                   channels, window, settings)
        if window.deferred:
            out.deferred.append(kind)
        out.alerts.append(alert)
        state.alerts_sent += 1
        state.log_alert(now)
        state.last_alert_id = alert["alert_id"]
        if kind == alerts.RECALL_TRIGGER:
            state.recalls += 1
            state.last_recall_id = alert["alert_id"]
            state.last_recall_at = now
            state.last_recall_control = alert["control"]

    def _schedule(self, state: UserState, deadline: float | None) -> None:
        if deadline is not None:
            self.index.register(state.user_id, deadline)
        state.wake_at = self.index.wake_at(state.user_id)

    def _store(self, state: UserState, before: tuple[Any, ...] | None, out: Outputs) -> None:
        after = _census_key(state)
        if before != after:
            if before is not None:
                self.census[before] -= 1
            self.census[after] += 1
        self.store[state.user_id] = state
        out.touched.add(state.user_id)

    # --- views --------------------------------------------------------------------------

    def snapshot(self, state: UserState, now: float | None = None) -> dict[str, Any]:
        """The user-state/1 record of a user, as of ``now`` (default: the partition clock)."""
        at = self.clock if now is None else now
        return snapshot(state, self.model, at, self.settings)

    def stage_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for key, n in self.census.items():
            counts[key[0]] += n
        return counts


def _reason(old: str | None, new: str, event: Event, state: UserState) -> str:
    if old is None:
        return "first_seen"
    if old == CHURNED:
        return "reactivation" if event.occurred_at >= state.stage_since else "late_activity"
    if old == DECLINING:
        return "recovered" if event.occurred_at >= state.stage_since else "late_activity"
    if old == NEW:
        return "first_purchase"
    return "repeat_milestone"


def snapshot(state: UserState, model: Model, now: float, settings: Settings) -> dict[str, Any]:
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
        "monetary_90d": round(state.spend_since(now - 90 * DAY), 2),
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
