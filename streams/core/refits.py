"""When a partition re-fits its population model, and the re-fits it has made.

Re-fits fall on an epoch-aligned grid, ``refit_interval_days`` apart, from the first
instant after the partition's first own event (news from other partitions does not
start it); every ``churn_snapshot_days`` one of them is
also a snapshot refit of the churn model (``churn.learner``). A re-fit reads other
users' states, so a restarted worker going over an instant again must not recompute it
from states that may already be ahead: the re-fits made since the last checkpoint are
logged, claimed by the next checkpoint, and read back from the log when their instant
comes round again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence

from streams.core import lifecycle, population
from streams.core.churn import learner, stages
from streams.core.churn.memory import ChurnMemory
from streams.core.population import Model
from streams.core.state import CHURNED, UserState
from streams.settings import Settings

DAY = 86400.0
# the sample's ids by hash, smallest first; and a way to read an id's state (None: a
# redirected id), called only for the ids a re-fit reads
Sampled = Sequence[tuple[int, str]]
StateOf = Callable[[str], "UserState | None"]


class RefitSchedule:
    def __init__(self, settings: Settings, persist: bool = False) -> None:
        self.settings = settings
        self.next_at: float | None = None  # None until the partition has a user
        # re-fits by instant since the last checkpoint (and logged ones not reached yet)
        self.log: dict[float, list[object]] = {}
        self.churn = ChurnMemory(persist)  # the churn model's snapshots

    def next_epoch(self, t: float) -> float:
        """The first refit instant strictly after ``t`` on the epoch-aligned grid."""
        step = self.settings.refit_interval_days * DAY
        nxt = (t // step + 1) * step
        while nxt <= t:  # float rounding can land the product on t itself
            nxt += step
        return nxt

    def start(self, t: float) -> None:
        """The partition's first own event is at ``t``: the first re-fit is after it."""
        if self.next_at is None:
            self.next_at = self.next_epoch(t)

    def refit(self, model: Model, sample: Sampled, state_of: StateOf, at: float) -> Model:
        """The model re-fitted at ``at`` (from the log, if this instant was fitted
        before); the next re-fit is one step on."""
        logged = self.log.get(at)
        settings = self.settings
        snapshot = learner.is_snapshot_instant(at, settings)
        if logged is not None:
            fitted = Model.from_list(logged)
            if snapshot and fitted.churn is not None:
                learner.refit(self.churn, at, (), _no_fallback, settings, fitted.churn)
        else:
            # a snapshot reads every sampled state, other re-fits only the fit's (each read
            # is a table decode in the worker: read once)
            fit_size = settings.population_fit_size
            states = [(h, state_of(u)) for h, u in (sample if snapshot else sample[:fit_size])]
            # the smallest hashes of a bottom-k sample are the bottom-k of a smaller k
            fitted = population.refit(
                model, (s for _, s in states[:fit_size] if s is not None), at, settings)
            if snapshot:
                buyers = [(h, s) for h, s in states if s is not None
                          and s.orders >= 1 and s.last_purchase_at is not None]
                fitted.churn = learner.refit(
                    self.churn, at, buyers,
                    lambda s: lifecycle.churn_risk(s, fitted, at, settings), settings)
            self.log[at] = fitted.to_list()
        self.next_at = self.next_epoch(at)
        return fitted

    def restore(self, next_at: float | None, refits: dict[float, list[object]] | None) -> None:
        """As a restarted partition: the checkpoint's re-fits are read back, not redone.
        A checkpoint from before the partition's first event has no next instant; if its
        batch re-fitted, the first of those re-fits is it (checkpoints written before the
        grid started at any own event relied on a new user arriving to find it again)."""
        self.log = dict(refits or {})
        self.next_at = min(self.log) if next_at is None and self.log else next_at

    def claim(self) -> dict[float, list[object]]:
        """The re-fits a checkpoint claims: all logged. The log then keeps only those
        not reached yet."""
        claimed = dict(self.log)
        nxt = self.next_at
        self.log = {t: m for t, m in self.log.items() if nxt is not None and t >= nxt}
        return claimed


def _no_fallback(_: UserState) -> float:
    raise AssertionError("a logged refit scores nobody")


def model_wakeups(store: MutableMapping[str, UserState], old: Model, new: Model, at: float,
                  settings: Settings, owns: Callable[[str], bool] | None = None,
                  buyers: Callable[[], list[str]] | None = None,
                  ) -> Iterator[tuple[str, UserState, float]]:
    """After a re-fit that can bring buyers' deadlines forward, the buyers to wake
    earlier than their wake, with when (later deadlines re-register lazily).

    On the rhythm rules that is a shorter population gap, or a change of churn model.
    Under a new learned model, each active buyer is scored once at ``at``: those past
    their next threshold are woken now; the others keep their wake and are judged by the
    new model when it comes (a crossing the new model puts before that wake is late).
    ``buyers``: a superset of the buyers not churned, to walk instead of every user (most
    of a long history's users have churned).
    """
    shorter = new.gap_days < old.gap_days
    changed = new.churn != old.churn
    if not (shorter or changed):
        return
    learned = new.learned
    if learned is not None and buyers is not None:
        found = ((u, store.get(u)) for u in buyers())
        users = [(u, s) for u, s in found if s is not None]
    else:
        users = list(store.items())
    if learned is not None and not changed:
        # a shorter gap under the same learned model: only the buyers it cannot score
        # follow the gap (the loop below skips the others)
        users = [(u, s) for u, s in users
                 if isinstance(s, UserState) and s.orders and s.last_purchase_at is None]
    for user_id, state in users:
        if not isinstance(state, UserState) or state.orders == 0 \
                or state.stage == CHURNED or (owns is not None and not owns(user_id)):
            continue
        if learned is not None and state.last_purchase_at is not None:
            if changed and stages.past_threshold(learned, state, at, settings):
                yield user_id, state, at
            continue
        due = lifecycle.deadline_for(state.stage, lifecycle.rhythm(state, new, settings))
        if due is None:
            continue
        wake = max(due, at)
        if state.wake_at is None or wake < state.wake_at:
            yield user_id, state, wake
