"""How many of a partition's users stand where: by stage, funnel step, and whether they
bought, bought again, referred and were satisfied; and the outcomes of their recalls
(``uplift``). Kept up to date as states change, so the worker's gauges never scan the
users."""

from __future__ import annotations

from collections import Counter
from collections.abc import ItemsView

from streams.core.state import UserState
from streams.core.uplift import Outcomes, UpliftKey, UpliftTally, uplift_key

# stage, funnel index, buyer, repeat buyer, referrer, satisfied buyer
CensusKey = tuple[str, int, bool, bool, bool, bool]
Entry = tuple[CensusKey, UpliftKey | None]  # what a user counts for


def satisfied(s: UserState) -> bool:
    """A buyer with no refund and no low average review (2.5 or below): the rule that
    also picks the service strategy for an alert."""
    if s.orders == 0:
        return False
    sparse = s.sparse  # read once: this is on every event's path
    if sparse is None:
        return True
    return not sparse.refunds and (not sparse.reviews
                                   or sparse.rating_sum / sparse.reviews > 2.5)


def census_key(s: UserState) -> CensusKey:
    sparse, orders = s.sparse, s.orders
    referrer = sparse is not None and bool(sparse.referrals_sent or sparse.referred_converted)
    return (s.stage, s.funnel_index(), orders >= 1, orders >= 2, referrer, satisfied(s))


class Census:
    def __init__(self, uplift_window: float = 30 * 86400.0) -> None:
        self.counts: Counter[CensusKey] = Counter()
        self.recalls = UpliftTally()
        self.window = uplift_window

    def entry(self, s: UserState) -> Entry:
        """What ``s`` counts for now (take it before a change, for :meth:`moved`)."""
        return census_key(s), uplift_key(s, self.window)

    def items(self) -> ItemsView[CensusKey, int]:
        return self.counts.items()

    def clear(self) -> None:
        self.counts.clear()
        self.recalls.clear()

    def add(self, state: UserState) -> None:
        key, recalls = self.entry(state)
        self.counts[key] += 1
        self.recalls.count(recalls, 1)

    def moved(self, before: Entry | None, state: UserState) -> None:
        """``state`` changed from ``before`` (None: a new user)."""
        after = self.entry(state)
        if before == after:
            return
        if before is not None:
            self.counts[before[0]] -= 1
            self.recalls.count(before[1], -1)
        self.counts[after[0]] += 1
        self.recalls.count(after[1], 1)

    def recall_outcomes(self, now: float) -> dict[bool, Outcomes]:
        return self.recalls.outcomes(now)

    def remove(self, state: UserState) -> None:
        """``state``'s user left the partition (its profile merged into another user)."""
        key, recalls = self.entry(state)
        self.counts[key] -= 1
        self.recalls.count(recalls, -1)

    def stage_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for key, n in self.counts.items():
            counts[key[0]] += n
        return counts
