"""The purchase-day aggregates of a user's state, which the learned churn score reads.

Several purchases on one UTC day are one purchase day. Per user the score needs only a
few numbers, updated as purchases come: how many purchase days, the last day's spend, the
gap between the last two days, and the purchase days decayed with three half-lives.
"""

from __future__ import annotations

import math

DAY = 86400.0
# half-lives (days) of the decayed purchase-day counts the churn model reads
HALF_LIVES: tuple[float, float, float] = (30.0, 90.0, 180.0)
_DECAY = tuple(-math.log(2.0) / h for h in HALF_LIVES)


class PurchaseDayAggregates:
    """Folding purchases into the aggregates; ``UserState`` holds the fields."""

    __slots__ = ()
    orders: int
    last_purchase_at: float | None
    purchase_days: int
    last_day_spend: float
    last_gap_days: int
    decay_30: float
    decay_90: float
    decay_180: float

    def purchases(self) -> list[tuple[float, float]]:
        raise NotImplementedError

    def purchase_times(self) -> list[float]:
        raise NotImplementedError

    def decays(self) -> tuple[float, ...]:
        """The three decayed counts at once (a state may read them together)."""
        return self.decay_30, self.decay_90, self.decay_180

    def set_decays(self, d30: float, d90: float, d180: float) -> None:
        """Set the three decayed counts at once (a state may store them together)."""
        self.decay_30, self.decay_90, self.decay_180 = d30, d90, d180

    def fold_purchase_day(self, at: float, amount: float) -> None:
        """Fold a purchase into the purchase-day aggregates. Call it before the purchase
        enters ``purchase_log`` and ``last_purchase_at``. In time order only the first
        branch runs; a late purchase (an earlier day, within the allowed lateness) folds
        in too, equal to in-order folding up to float rounding."""
        last = self.last_purchase_at
        if last is None or self.purchase_days == 0:
            self.purchase_days, self.last_day_spend, self.last_gap_days = 1, amount, 0
            self.set_decays(1.0, 1.0, 1.0)
            return
        day, last_day = int(at // DAY), int(last // DAY)
        if day > last_day:  # a new, later purchase day: the usual case
            gap = day - last_day
            self.set_decays(self.decay_30 * math.exp(_DECAY[0] * gap) + 1.0,
                            self.decay_90 * math.exp(_DECAY[1] * gap) + 1.0,
                            self.decay_180 * math.exp(_DECAY[2] * gap) + 1.0)
            self.purchase_days += 1
            self.last_gap_days = gap
            self.last_day_spend = amount
        elif day == last_day:
            self.last_day_spend += amount
        elif all(int(t // DAY) != day for t in self.purchase_times()):  # a late, new day
            age = last_day - day
            self.set_decays(self.decay_30 + math.exp(_DECAY[0] * age),
                            self.decay_90 + math.exp(_DECAY[1] * age),
                            self.decay_180 + math.exp(_DECAY[2] * age))
            if self.purchase_days == 1 or age < self.last_gap_days:
                self.last_gap_days = age  # it falls between the last two purchase days
            self.purchase_days += 1

    def absorb_purchase_days(self, other: PurchaseDayAggregates) -> None:
        """Add ``other``'s purchase-day aggregates (a profile merged into this one; call
        it before the orders merge moves ``last_purchase_at``). Both decay to the later
        last purchase day and add; a day both bought on counts twice (two ids buying on
        the same day is rare, and the counts are features, not totals anyone reads)."""
        if other.purchase_days == 0 or other.last_purchase_at is None:
            return
        if self.purchase_days == 0 or self.last_purchase_at is None:
            self.purchase_days, self.last_day_spend = other.purchase_days, other.last_day_spend
            self.last_gap_days = other.last_gap_days
            self.decay_30, self.decay_90, self.decay_180 = \
                other.decay_30, other.decay_90, other.decay_180
            return
        mine, theirs = int(self.last_purchase_at // DAY), int(other.last_purchase_at // DAY)
        last = max(mine, theirs)
        a, b = last - mine, last - theirs
        self.decay_30 = self.decay_30 * math.exp(_DECAY[0] * a) \
            + other.decay_30 * math.exp(_DECAY[0] * b)
        self.decay_90 = self.decay_90 * math.exp(_DECAY[1] * a) \
            + other.decay_90 * math.exp(_DECAY[1] * b)
        self.decay_180 = self.decay_180 * math.exp(_DECAY[2] * a) \
            + other.decay_180 * math.exp(_DECAY[2] * b)
        self.purchase_days += other.purchase_days
        if theirs == mine:
            self.last_day_spend += other.last_day_spend
        elif theirs > mine:
            self.last_day_spend = other.last_day_spend
            self.last_gap_days = min(theirs - mine, other.last_gap_days or theirs - mine)
        else:
            self.last_gap_days = min(mine - theirs, self.last_gap_days or mine - theirs)

    def refold_purchase_days(self) -> None:
        """Rebuild the purchase-day aggregates from ``purchase_log``: exact while it holds
        every order; otherwise older orders count as one purchase day each and add
        nothing to the decays (records written before the aggregates existed)."""
        log, last = self.purchases(), self.last_purchase_at
        self.purchase_days = 0
        self.last_purchase_at = None
        for t, amount in log:
            self.fold_purchase_day(t, amount)
            self.last_purchase_at = t
        self.last_purchase_at = last
        self.purchase_days += max(0, self.orders - len(log))
