"""What journey knows about the population of one partition.

The buy-till-you-die parameters, the value-tier thresholds and the population purchase
gap are fitted on a deterministic sample of the partition's users: the ``k`` users with
the smallest hash (a bottom-k sketch). The sample depends only on which users exist, not
on the order they arrived in, so the live worker and replay fit on the same users, and
after a restart the sample is rebuilt exactly from the table.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from streams.core import btyd
from streams.core.churn.model import ChurnModel
from streams.core.state import UserState
from streams.settings import Settings

DAY = 86400.0


def user_hash(user_id: str) -> int:
    """A stable 64-bit hash of a user id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")


@dataclass(slots=True)
class Model:
    """The fitted population view, persisted with the partition so replays agree."""

    params: btyd.MBGParams
    top_min: float | None = None  # monetary at or above which a buyer is top tier
    middle_min: float | None = None
    gap_days: float = 30.0  # population purchase gap, for users without a rhythm yet
    fitted_at: float | None = None
    buyers: int = 0  # buyers in the sample at the last fit
    # the churn score's model, from the last snapshot refit; None before the first
    churn: ChurnModel | None = None

    def to_list(self) -> list[object]:
        p = self.params
        out: list[object] = [[p.r, p.alpha, p.a, p.b], self.top_min, self.middle_min,
                             self.gap_days, self.fitted_at, self.buyers]
        if self.churn is not None:  # models before the first snapshot refit read as before
            out.append(self.churn.to_list())
        return out

    @classmethod
    def from_list(cls, v: list[object]) -> Model:
        """A stored model; one stored before the churn model existed has none."""
        r, alpha, a, b = cast("list[float]", v[0])
        model = cls(btyd.MBGParams(r, alpha, a, b), *v[1:6])  # type: ignore[arg-type]
        churn = v[6] if len(v) > 6 else None
        if churn is not None:
            model.churn = ChurnModel.from_list(churn)  # type: ignore[arg-type]
        return model

    @property
    def learned(self) -> ChurnModel | None:
        """The churn model when it is the learned one (else the MBG/NBD score rules)."""
        churn = self.churn
        return churn if churn is not None and churn.learned else None

    @classmethod
    def prior(cls, settings: Settings) -> Model:
        return cls(params=btyd.prior_for_cycle(settings.purchase_cycle_days),
                   gap_days=settings.purchase_cycle_days)

    def value_tier(self, state: UserState) -> str:
        if state.orders == 0:
            return "none"
        if self.top_min is not None and state.monetary >= self.top_min:
            return "top"
        if self.middle_min is not None and state.monetary >= self.middle_min:
            return "middle"
        return "base"


class Sample:
    """Bottom-k sample of user ids by hash."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[int, str]] = []  # max-heap via negated hash
        self._members: set[str] = set()
        self._sorted: tuple[tuple[int, str], ...] | None = None  # hashed(), until a change

    def offer(self, user_id: str) -> None:
        if user_id in self._members:
            return
        h = user_hash(user_id)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (-h, user_id))
            self._members.add(user_id)
            self._sorted = None
        elif -self._heap[0][0] > h:
            _, dropped = heapq.heapreplace(self._heap, (-h, user_id))
            self._members.discard(dropped)
            self._members.add(user_id)
            self._sorted = None

    def load(self, user_ids: Iterable[str]) -> None:
        """Offer many users at once (a restore): the same sample as ``offer`` one by one,
        since it depends only on which users exist."""
        members = self._members
        self._sorted = None
        fresh = {u for u in user_ids if u not in members}
        for h, u in heapq.nsmallest(self.k, ((user_hash(u), u) for u in fresh)):
            neg = -h
            if len(self._heap) < self.k:
                heapq.heappush(self._heap, (neg, u))
                members.add(u)
            elif self._heap[0][0] < neg:
                _, dropped = heapq.heapreplace(self._heap, (neg, u))
                members.discard(dropped)
                members.add(u)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._members))

    def hashed(self) -> tuple[tuple[int, str], ...]:
        """The members with their hashes, smallest hash first (kept between re-fits: once
        a partition is large, a new user rarely enters the sample)."""
        if self._sorted is None:
            self._sorted = tuple(sorted((-h, user_id) for h, user_id in self._heap))
        return self._sorted

    def __len__(self) -> int:
        return len(self._members)


def refit(model: Model, states: Iterable[UserState], now: float, settings: Settings) -> Model:
    """A new model from the sampled users' states as they are at ``now`` (never later)."""
    buyers = [s for s in states if s.orders >= 1 and s.first_purchase_at is not None]
    new = Model(params=model.params, top_min=model.top_min, middle_min=model.middle_min,
                gap_days=model.gap_days, fitted_at=now, buyers=len(buyers), churn=model.churn)
    if len(buyers) < settings.refit_min_buyers:
        return new
    xs = [s.orders - 1 for s in buyers]
    txs = [((s.last_purchase_at or 0.0) - (s.first_purchase_at or 0.0)) / DAY for s in buyers]
    ts = [max(now - (s.first_purchase_at or now), 0.0) / DAY for s in buyers]
    new.params = btyd.fit(xs, txs, ts, start=model.params)
    spend = sorted(s.monetary for s in buyers)
    new.top_min = _quantile(spend, 1.0 - settings.top_tier_share)
    new.middle_min = _quantile(spend, 1.0 - settings.top_tier_share - settings.middle_tier_share)
    gaps = sorted(g for s in buyers if (g := s.avg_gap_days()) is not None and g > 0)
    if len(gaps) >= max(10, settings.refit_min_buyers // 5):
        new.gap_days = _quantile(gaps, 0.5)
    return new


def _quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile, so thresholds are values some user really has."""
    if not sorted_values:
        raise ValueError("empty")
    i = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values))))
    return sorted_values[i]


StateLookup = Callable[[str], UserState | None]
