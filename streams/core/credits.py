"""Referral credits: the news a referrer gets when someone it referred has bought, and
the credits a partition holds until its clock reaches them.

A credit crosses partitions asynchronously (live, through the repartition topic).
Applied on arrival, one from a partition that is ahead would date the referrer's state
(and start its partition's re-fit epochs) in this partition's future. Held, it takes
effect in event time, as in a replay. Held credits are kept in the partition's context,
so written with every batch that touches the partition: past ``HELD_CREDITS_CAP`` they
are applied on arrival instead.
"""

from __future__ import annotations

import heapq
from typing import Any

from streams.core import alerts
from streams.core.apply import REFERRAL_CONVERTED, converted_referrer
from streams.core.event import Event
from streams.core.state import UserState

HELD_CREDITS_CAP = 5000
INF = float("inf")


def credit_for(state: UserState) -> Event | None:
    """The credit a user's state owes its referrer now (once: see ``converted_referrer``)."""
    credit = converted_referrer(state)
    if credit is None:
        return None
    referrer, credited_at = credit
    return Event(event_id=alerts.stable_id("rc", state.user_id), user_id=referrer,
                 type=REFERRAL_CONVERTED, occurred_at=credited_at, source="journey",
                 properties={"referred_user_id": state.user_id})


class HeldCredits:
    """Credits from ahead of the partition's clock, earliest first."""

    def __init__(self, credits: list[Event] | None = None) -> None:
        self._heap = [(e.occurred_at, e.event_id, e) for e in credits or ()]
        heapq.heapify(self._heap)
        self._ids = {e.event_id for e in credits or ()}

    def __len__(self) -> int:
        return len(self._heap)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def full(self) -> bool:
        return len(self._heap) >= HELD_CREDITS_CAP

    def hold(self, credit: Event) -> None:
        heapq.heappush(self._heap, (credit.occurred_at, credit.event_id, credit))
        self._ids.add(credit.event_id)

    def earliest(self) -> float:
        """When the first held credit is due (inf when none is held)."""
        return self._heap[0][0] if self._heap else INF

    def pop(self) -> tuple[float, Event]:
        """The earliest credit, released, with its instant."""
        t, event_id, credit = heapq.heappop(self._heap)
        self._ids.discard(event_id)
        return t, credit

    def events(self) -> list[Event]:
        """The held credits, earliest first (for the partition's context)."""
        return [e for _, _, e in sorted(self._heap)]


def credit_to_list(e: Event) -> list[Any]:
    return [e.event_id, e.user_id, e.occurred_at, e.properties.get("referred_user_id")]


def credit_from_list(c: list[Any]) -> Event:
    return Event(event_id=c[0], user_id=c[1], type=REFERRAL_CONVERTED, occurred_at=float(c[2]),
                 source="journey", properties={"referred_user_id": c[3]})
