"""How many of a partition's users stand where: by stage, funnel step, and whether they
bought, bought again and referred. Kept up to date as states change, so the worker's
gauges never scan the users."""

from __future__ import annotations

from collections import Counter
from collections.abc import ItemsView

from streams.core.state import UserState

CensusKey = tuple[str, int, bool, bool, bool]  # stage, funnel index, buyer, repeat, referrer


def census_key(s: UserState) -> CensusKey:
    return (s.stage, s.funnel_index(), s.orders >= 1, s.orders >= 2,
            bool(s.referrals_sent or s.referred_converted))


class Census:
    def __init__(self) -> None:
        self.counts: Counter[CensusKey] = Counter()

    def items(self) -> ItemsView[CensusKey, int]:
        return self.counts.items()

    def clear(self) -> None:
        self.counts.clear()

    def add(self, state: UserState) -> None:
        self.counts[census_key(state)] += 1

    def moved(self, before: CensusKey | None, state: UserState) -> None:
        """``state`` changed from ``before`` (None: a new user)."""
        after = census_key(state)
        if before != after:
            if before is not None:
                self.counts[before] -= 1
            self.counts[after] += 1

    def remove(self, before: CensusKey) -> None:
        """A user left the partition (its profile merged into another user)."""
        self.counts[before] -= 1

    def stage_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for key, n in self.counts.items():
            counts[key[0]] += n
        return counts
