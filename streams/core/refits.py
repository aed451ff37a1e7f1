"""When a partition re-fits its population model, and the re-fits it has made.

Re-fits fall on an epoch-aligned grid, ``refit_interval_days`` apart, from the first
instant after the partition's first user. A re-fit reads other users' states, so a
restarted worker going over an instant again must not recompute it from states that
may already be ahead: the re-fits made since the last checkpoint are logged, claimed by
the next checkpoint, and read back from the log when their instant comes round again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping

from streams.core import lifecycle, population
from streams.core.population import Model
from streams.core.state import CHURNED, UserState
from streams.settings import Settings

DAY = 86400.0


class RefitSchedule:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.next_at: float | None = None  # None until the partition has a user
        # re-fits by instant since the last checkpoint (and logged ones not reached yet)
        self.log: dict[float, list[object]] = {}

    def next_epoch(self, t: float) -> float:
        """The first refit instant strictly after ``t`` on the epoch-aligned grid."""
        step = self.settings.refit_interval_days * DAY
        nxt = (t // step + 1) * step
        while nxt <= t:  # float rounding can land the product on t itself
            nxt += step
        return nxt

    def start(self, t: float) -> None:
        """The partition's first user arrived at ``t``: the first re-fit is after it."""
        if self.next_at is None:
            self.next_at = self.next_epoch(t)

    def refit(self, model: Model, sample: Iterable[UserState], at: float) -> Model:
        """The model re-fitted at ``at`` (from the log, if this instant was fitted
        before); the next re-fit is one step on."""
        logged = self.log.get(at)
        if logged is not None:
            fitted = Model.from_list(logged)
        else:
            fitted = population.refit(model, sample, at, self.settings)
            self.log[at] = fitted.to_list()
        self.next_at = self.next_epoch(at)
        return fitted

    def restore(self, next_at: float | None, refits: dict[float, list[object]] | None) -> None:
        """As a restarted partition: the checkpoint's re-fits are read back, not redone."""
        self.next_at = next_at
        self.log = dict(refits or {})

    def claim(self) -> dict[float, list[object]]:
        """The re-fits a checkpoint claims: all logged. The log then keeps only those
        not reached yet."""
        claimed = dict(self.log)
        nxt = self.next_at
        self.log = {t: m for t, m in self.log.items() if nxt is not None and t >= nxt}
        return claimed


def population_wakeups(store: MutableMapping[str, UserState], model: Model, at: float,
                       settings: Settings, owns: Callable[[str], bool] | None = None,
                       ) -> Iterator[tuple[str, UserState, float]]:
    """After a re-fit shortened the population gap: the users on the population rhythm
    whose deadline came forward, with when to wake them (later ones re-register lazily)."""
    for user_id, state in list(store.items()):
        if not isinstance(state, UserState) or state.orders == 0 \
                or state.stage == CHURNED or (owns is not None and not owns(user_id)):
            continue
        due = lifecycle.deadline_for(state.stage, lifecycle.rhythm(state, model, settings))
        if due is None:
            continue
        wake = max(due, at)
        if state.wake_at is None or wake < state.wake_at:
            yield user_id, state, wake
