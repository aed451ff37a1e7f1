"""One partition's state machine: events and clock ticks in, outputs out.

The live worker and ``journey replay`` both drive this class, with the partition's
events in the same order, so they produce the same state and the same alerts. Time only
moves through ``process`` (an event's time) and ``advance`` (a tick or the end of a
replay); timers, held referral credits and model re-fits fire at their own instants, in
order, as time passes over them.

The parts: the clock and its lateness and skew checks (``clock``), held credits
(``credits``), the re-fit schedule (``refits``), the census (``census``), the persisted
context (``context``), what a stage change means (``decisions``) and the user-state
record (``snapshot``). This class applies events and runs the loop that merges the
three due-queues: deadlines, credits and re-fits.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from streams.core import decisions, identity, lifecycle
from streams.core.apply import REFERRAL_CONVERTED, apply_event, new_state
from streams.core.census import Census, Entry
from streams.core.churn import stages
from streams.core.clock import PartitionClock
from streams.core.context import PartitionContext
from streams.core.credits import HeldCredits, credit_for
from streams.core.decisions import NEVER
from streams.core.event import GROUP, Event
from streams.core.identity import MERGE, STITCH, Redirect
from streams.core.logs import has_key, key_of
from streams.core.outputs import Outputs
from streams.core.population import Model, Sample
from streams.core.refits import RefitSchedule, model_wakeups
from streams.core.snapshot import snapshot
from streams.core.state import CHURNED, UserState
from streams.core.timers import DeadlineIndex
from streams.settings import Settings


class PartitionProcessor:
    """State machine of one partition over a mutable mapping of user id to state."""

    def __init__(self, settings: Settings, store: MutableMapping[str, UserState],
                 partition: int = 0, owns: Callable[[str], bool] | None = None,
                 redirects: MutableMapping[str, Redirect] | None = None,
                 persist: bool = False) -> None:
        self.settings = settings
        self.store = store
        # ids merged into another user, and where their events go now (``identity``); the
        # worker keeps them in the users table under the merged id, beside the states
        self.redirects: MutableMapping[str, Redirect] = {} if redirects is None else redirects
        self.partition = partition
        # which of the store's keys are this partition's users (a shared table holds
        # several partitions; replay gives each partition a store of its own)
        self.owns = owns
        self.time = PartitionClock(settings)
        self.model = Model.prior(settings)
        # persist: the driver writes the churn model's snapshots (see churn.memory)
        self.refits = RefitSchedule(settings, persist)
        self.index = DeadlineIndex()
        # buyers not churned without a wake (no crossing in reach): with the index's users
        # they are every buyer a new churn model can wake (see ``refits.model_wakeups``)
        self.dormant: set[str] = set()
        self.credits = HeldCredits()
        self.sample = Sample(settings.population_sample_size)
        self.census = Census(settings.uplift_window_days * 86400.0)
        # alerts dated before this instant are historical (set by journey bootstrap)
        self.live_from = NEVER
        self._base = self.context()

    @property
    def clock(self) -> float:
        """The partition's event time (-inf before its first event)."""
        return self.time.now

    @property
    def applied_position(self) -> int:  # the newest input offset applied
        return self.time.applied_position

    @property
    def next_refit_at(self) -> float | None:
        return self.refits.next_at

    @property
    def refit_log(self) -> dict[float, list[object]]:  # see RefitSchedule.log
        return self.refits.log

    # --- persistence of the partition's own context ---------------------------------

    def context(self) -> PartitionContext:
        churn = self.refits.churn
        live_from = None if self.live_from == NEVER else self.live_from
        return PartitionContext(self.time.stamp(), self.model, self.refits.next_at,
                                self.time.applied_position, self.credits.events(),
                                snapshots=churn.listing(), dropped=churn.undeleted(),
                                live_from=live_from)

    def checkpoint(self) -> PartitionContext:
        """The context to persist *before* a batch's user writes: as it was at the
        previous checkpoint, plus the re-fits made since. The current context becomes
        the next checkpoint's base.

        A crash can leave any subset of the batch's user writes in the table. Restored
        from this, the partition goes over the batch again: users already written count
        its events as duplicates, the others apply them, and re-fits come from the log,
        so neither depends on which writes made it.
        """
        claimed = dataclasses.replace(self._base, refits=self.refits.claim())
        self._base = self.context()
        self.refits.churn.checkpointed()
        return claimed

    def restore(self, ctx: PartitionContext | None, states: Iterable[UserState],
                redirected: Iterable[str] = (),
                snapshots: Mapping[tuple[float, str], Mapping[str, Any]] | None = None,
                ) -> None:
        """Rebuild the in-memory index, sample and census from the table (after a restart
        or a rebalance): O(users in the partition), once. ``redirected``: the ids with a
        redirect, which stay in the sample as they were when they were users;
        ``snapshots``: the churn model's snapshot records the context names (see
        ``churn.memory``)."""
        self.refits.log = {}
        if ctx is not None:
            self.time.restore(ctx.clock, ctx.applied_position)
            self.model = ctx.model
            self.refits.restore(ctx.next_refit_at, ctx.refits)
            self.refits.churn.restore(ctx.snapshots, ctx.dropped, snapshots or {})
            self.live_from = NEVER if ctx.live_from is None else ctx.live_from
        self.credits = HeldCredits(ctx.held_credits if ctx is not None else None)
        self.index = DeadlineIndex()
        self.dormant = set()
        self.sample = Sample(self.settings.population_sample_size)
        self.census.clear()
        for s in states:
            self.sample.offer(s.user_id)
            self.census.add(s)
            if s.wake_at is not None:
                self.index.register(s.user_id, s.wake_at)
            elif s.orders and s.stage != CHURNED:
                self.dormant.add(s.user_id)
        for user_id in redirected:
            self.sample.offer(user_id)
        self._base = self.context()

    # --- the two ways time moves ----------------------------------------------------

    def process(self, event: Event, out: Outputs, *, received_at: float | None = None,
                position: int | None = None, feedback: bool = False) -> None:
        """Apply one decoded event (at-least-once safe: duplicates change nothing).

        ``feedback`` marks journey's own news from another partition (a referral credit,
        an identity stitch or merge, an event forwarded from a merged id): it travels a
        repartition hop, so it is exempt from the lateness cut-off, and one from ahead of
        this partition's clock is held until the clock gets there (a merge, which
        carries a whole state, is not: it is never ahead on its own partition). News is
        judged at its own instant, not at the clock it happens to arrive at, so every
        driver judges it alike however far the partitions are apart.
        """
        if event.type == GROUP:  # journey keeps no accounts: nothing to apply
            out.ignored.append(event.type)
            return
        if event.sent_at is not None and not feedback:
            self.time.deskewed(event, received_at)
        if feedback and event.occurred_at > self.time.now and event.type != MERGE:
            if event.event_id in self.credits:
                out.duplicates += 1
            elif self.credits.full():
                self._take(event, out, None, None, True, max(self.time.now, event.occurred_at))
            else:
                self.credits.hold(event)
            return
        self._take(event, out, received_at, position, feedback,
                   event.occurred_at if feedback else self.time.now)

    def advance(self, now: float, out: Outputs) -> None:
        """Move the clock to ``now`` (a wall-clock tick, or the end of a replay) and fire
        every timer due by then."""
        if now <= self.time.now:
            return
        self._run_until(now, out)
        self.time.now = now

    def _take(self, event: Event, out: Outputs, received_at: float | None,
              position: int | None, feedback: bool, at: float) -> None:
        """``process`` once an event is due; ``at`` is the instant news is judged at."""
        clock = self.time
        uid, t = event.user_id, event.occurred_at
        state = self.store.get(uid)
        redirect = self.redirects.get(uid) if state is None else None
        revived = None
        if redirect is not None and event.type in (STITCH, MERGE):
            if identity.at_redirect(redirect, event, out):
                return
            revived, redirect = redirect, None  # a merge come full circle: a user again
        seen = state if state is not None else redirect
        key = key_of(event.event_id)  # taken once: checked here, remembered below
        if seen is not None and (
                (position is not None and position <= seen.max_position)
                or has_key(seen.recent_ids, key)):
            out.duplicates += 1
            # time still passes: a restarted partition going over records its users
            # already hold must fire timers, re-fit and judge lateness as the first pass did
            if not feedback:
                if t > clock.now and clock.within_skew(t, received_at):
                    self._pass_time(t, out)
                self.refits.start(t)
            clock.note_position(position)
            return
        rejected = clock.rejection(event, received_at, feedback)
        if rejected is not None:
            out.rejected.append(rejected)
            return
        if not feedback:  # news from another partition is not our time
            if t > clock.now:
                self._pass_time(t, out)
                state = self.store.get(uid)  # what fell due may have merged this id away
                redirect = self.redirects.get(uid) if state is None else None
            # The re-fit grid starts at the partition's first own event, new user or not:
            # going over its first batch again, a restarted partition meets that event as
            # a duplicate and must start the grid at the same instant.
            self.refits.start(t)
        clock.note_position(position)
        if redirect is not None:
            identity.forward(self.redirects, redirect, event, position, out,
                             self.settings.dedupe_window)
            return
        if event.type == STITCH:
            self._close(state, event, out)
            return
        if state is None:
            state = new_state(event)
            before = None
            self.sample.offer(uid)
            if revived is not None:
                identity.revive(state, revived)
        else:
            before = self.census.entry(state)
        inputs = None if before is None else stages.schedule_inputs(state)
        if position is not None:
            state.max_position = max(state.max_position, position)
        state.remember_key(key, self.settings.dedupe_window)
        if event.type == MERGE:
            identity.merge_into(state, identity.merged_state(event))
        else:
            apply_event(state, event, self.settings)
        credit = credit_for(state)
        if credit is not None:
            out.feedback.append(credit)
        source = identity.stitch_source(event)
        if source is not None and not state.has_seen(identity.merge_id(source, uid)):
            out.feedback.append(identity.stitch(source, uid, t))
        self._settle(state, event, before, out, at if feedback else clock.now, inputs)
        if revived is not None and self.redirects.get(uid) is not None:
            del self.redirects[uid]  # (the worker's table: the state replaced it)
        out.applied.append(event)

    def _pass_time(self, t: float, out: Outputs) -> None:
        """Move the clock forward to ``t``, firing what falls due on the way."""
        if t >= self._wake():
            self._run_until(t, out)
        self.time.now = t

    # --- the due-queues -------------------------------------------------------------

    def _wake(self) -> float:
        """Lower bound of the next timer, held news or re-fit instant."""
        refit = self.refits.next_at
        earliest = min(self.index.earliest(), self.credits.earliest())
        return earliest if refit is None or earliest < refit else refit

    def _run_until(self, until: float, out: Outputs) -> None:
        """Fire re-fits, held credits and timers due at or before ``until``, in time
        order. Deadlines equal to an event's time fire first, in replay and live alike."""
        index, credits = self.index, self.credits
        while True:
            refit_at = self.refits.next_at
            if refit_at is not None and refit_at <= until and refit_at <= index.earliest() \
                    and (not credits or refit_at <= credits.earliest()):
                self._refit(refit_at, out)
                continue
            if credits and credits.earliest() <= until \
                    and credits.earliest() < index.earliest():
                t, credit = credits.pop()
                self._take(credit, out, None, None, True, t)
                continue
            popped = index.pop_due(until)
            if popped is None:
                return
            woken_at, user_id = popped
            state = self.store.get(user_id)
            if state is None:
                continue
            due = decisions.due(state, woken_at, self.model, self.settings)
            if due is None or due > woken_at or state.stage_since > woken_at:
                # (nor is a user judged before its own last change: see _settle)
                self._schedule(state, None if due is None else max(due, state.stage_since))
                self.store[user_id] = state
                continue
            self._fire(state, woken_at, out)

    def _refit(self, at: float, out: Outputs) -> None:
        old = self.model
        self.model = self.refits.refit(old, self.sample.hashed(), self.store.get, at)
        out.refits += 1
        if self.model.churn is not None and self.model.churn is not old.churn:
            out.churn_models.append((self.partition, self.model.churn))
        # deadlines that come forward (a shorter population gap, a new churn model)
        for user_id, state, wake in model_wakeups(self.store, old, self.model, at,
                                                  self.settings, self.owns, self.buyers):
            self._schedule(state, wake)
            self.store[user_id] = state

    # --- a user's stage -------------------------------------------------------------

    def _fire(self, state: UserState, now: float, out: Outputs) -> None:
        before = self.census.entry(state)
        self._schedule(state, decisions.at_deadline(state, now, self.model, self.settings, out,
                                                    self.live_from))
        self._store(state, before, out)

    def _settle(self, state: UserState, event: Event, before: Entry | None,
                out: Outputs, now: float, inputs: tuple[object, ...] | None = None) -> None:
        """Re-derive the stage after an event and schedule the next deadline. ``inputs``:
        the user's ``stages.schedule_inputs`` before the event (None: a new user)."""
        if before is not None and event.type == REFERRAL_CONVERTED:
            # A credit is not the user's activity, so it cannot move a known user's stage.
            # Judged anyway, it could undo one: at a restarted partition the model is from
            # before its last batch, whose re-fit may have set this stage (and the timer
            # would send the alert again).
            self._store(state, before, out)
            return
        if before is not None and state.stage_since > now:
            # Never judge a user before its own last stage change. Only a restarted
            # partition gets here: its clock resumes at the checkpoint before its last
            # batch, while users the batch changed are already past it (see checkpoint).
            now = state.stage_since
        deadline = decisions.after_event(state, event, before is not None, now, self.model,
                                         self.settings, out, self.live_from)
        if inputs is not None and self.index.wake_at(state.user_id) is not None \
                and lifecycle.learned_for(state, self.model) is not None \
                and stages.schedule_inputs(state) == inputs:
            # Under the learned score a wake is a lower bound or a crossing solved when it
            # last fired; pulling it back to the floor re-solves under whatever model is
            # in force now. An event that changed nothing the schedule reads (a referral
            # credit, often news arriving late) must not do that, or the alert's instant
            # would depend on when the news arrived: a restart or a lagging repartition
            # topic would move it, or skip the warning for a recall, against replay.
            deadline = None
        self._schedule(state, deadline)
        self._store(state, before, out)

    def _schedule(self, state: UserState, deadline: float | None) -> None:
        uid = state.user_id
        if deadline is not None:
            self.index.register(uid, deadline)
        wake = state.wake_at = self.index.wake_at(uid)
        if wake is None and state.orders and state.stage != CHURNED:
            self.dormant.add(uid)
        elif self.dormant:
            self.dormant.discard(uid)

    def buyers(self) -> list[str]:
        """A superset of the buyers not churned: the users with a wake, and the dormant."""
        return [*self.index.users(), *self.dormant]

    def _store(self, state: UserState, before: Entry | None, out: Outputs) -> None:
        self.census.moved(before, state)
        self.store[state.user_id] = state
        out.touched.add(state.user_id)

    # --- identity stitching (see streams.core.identity) ------------------------------

    def _close(self, state: UserState | None, event: Event, out: Outputs) -> None:
        """This id is another user's: its profile goes there, a redirect stays here."""
        uid, cap = event.user_id, self.settings.dedupe_window
        redirect = Redirect(identity.stitch_target(event))
        if state is None:
            out.stitches.append("linked")
            self.sample.offer(uid)  # the sample counts every id, user or redirect
        else:
            out.stitches.append("merged")
            redirect.max_position, redirect.recent_ids = state.max_position, state.recent_ids
            self.census.remove(state)
            self.index.cancel(uid)
            self.dormant.discard(uid)
            out.feedback.append(identity.merge(state, redirect.target, event.occurred_at))
        redirect.remember(event.event_id, None, cap)
        self.redirects[uid] = redirect  # the worker's table: replaces the state
        if self.store.get(uid) is not None:
            del self.store[uid]
        out.touched.add(uid)

    # --- views --------------------------------------------------------------------------

    def snapshot(self, state: UserState, now: float | None = None) -> dict[str, Any]:
        """The user-state/1 record of a user, as of ``now`` (default: the partition clock)."""
        at = self.time.now if now is None else now
        return snapshot(state, self.model, at, self.settings)

    def stage_counts(self) -> Counter[str]:
        return self.census.stage_counts()
