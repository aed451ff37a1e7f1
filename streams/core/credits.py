"""Referral credits: the news a referrer gets when someone it referred has bought, and
the news from other partitions a partition holds until its clock reaches it.

A credit crosses partitions asynchronously (live, through the repartition topic).
Applied on arrival, one from a partition that is ahead would date the referrer's state
(and start its partition's re-fit epochs) in this partition's future. Held, it takes
effect in event time, as in a replay. Identity stitches and events forwarded from a
merged id (``identity``) are held the same way. Held news is kept in the partition's
context, so written with every batch that touches the partition: past
``HELD_CREDITS_CAP`` it is applied on arrival instead.
"""

from __future__ import annotations

import heapq
from typing import Any

from streams.core import alerts
from streams.core.apply import REFERRAL_CONVERTED, converted_referrer
from streams.core.event import Event, event_from_dict, event_to_dict
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
    """News (credits, stitches, forwarded events) from ahead of the partition's clock,
    earliest first."""

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


def held_to_entry(e: Event) -> list[Any] | dict[str, Any]:
    """A held event as its context entry: a credit as a list (the format checkpoints have
    always had), other news as the event's dict."""
    if e.type == REFERRAL_CONVERTED:
        return [e.event_id, e.user_id, e.occurred_at, e.properties.get("referred_user_id")]
    return event_to_dict(e)


def held_from_entry(c: list[Any] | dict[str, Any]) -> Event:
    if isinstance(c, dict):
        return event_from_dict(c)
    return Event(event_id=c[0], user_id=c[1], type=REFERRAL_CONVERTED, occurred_at=float(c[2]),
                 source="journey", properties={"referred_user_id": c[3]})
