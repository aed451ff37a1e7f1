"""A partition's clock: the event time it has reached, the input position it has applied,
and the checks that judge an event's own time against them.

The clock only moves forward, and only through the processor (an event's time or a
tick). An event stamped further than ``max_future_skew_seconds`` after it was received
is refused, and so is one older than ``allowed_lateness_seconds`` behind the clock;
journey's own news from another partition (a referral credit) is exempt from lateness.
"""

from __future__ import annotations

from streams.core.event import Event
from streams.core.limits import EARLIEST_EVENT_AT
from streams.core.outputs import Rejected
from streams.settings import Settings

NEG_INF = float("-inf")


class PartitionClock:
    __slots__ = ("applied_position", "lateness", "now", "skew")

    def __init__(self, settings: Settings) -> None:
        self.now = NEG_INF  # the partition's event time; -inf before its first event
        self.applied_position = -1  # the newest input offset applied
        self.lateness = settings.allowed_lateness_seconds
        self.skew = settings.max_future_skew_seconds

    def deskewed(self, event: Event, received_at: float | None) -> None:
        """Move a Segment call from a device whose clock runs fast back by how far the
        call's ``sentAt`` lies after its receipt, as Segment's API places it (timestamp =
        receivedAt - (sentAt - originalTimestamp)). Only a clock ahead by more than the
        allowed skew counts as fast, and then every call it sends moves alike, those it
        had queued too; a smaller lead is network and clock noise, and nothing moves."""
        ahead = self._moved_by(event, received_at)
        if ahead and event.occurred_at - ahead >= EARLIEST_EVENT_AT:
            event.occurred_at -= ahead
        else:
            event.sent_at = None  # not moved: told so by rejection()

    def _moved_by(self, event: Event, received_at: float | None) -> float:
        """How far ``deskewed`` moves ``event`` back: 0.0 unless its device is fast."""
        sent = event.sent_at
        if sent is None or received_at is None or received_at < EARLIEST_EVENT_AT:
            return 0.0  # (a record with no time of its own says nothing of the device)
        ahead = sent - received_at
        return ahead if ahead > self.skew else 0.0

    def within_skew(self, t: float, received_at: float | None) -> bool:
        """Whether ``t`` lies no further after its event's receipt than the skew allows
        (an event of unknown receipt always does)."""
        return received_at is None or t <= received_at + self.skew

    def rejection(self, event: Event, received_at: float | None,
                  feedback: bool) -> Rejected | None:
        """Why ``event`` is refused for its time (None: it is not)."""
        t = event.occurred_at
        if received_at is not None and t > received_at + self.skew:
            moved = self._moved_by(event, received_at)
            return Rejected(
                "future_timestamp", f"occurred_at is {t - received_at:.0f}s after it was "
                f"received (allowed skew {self.skew:.0f}s)" + (
                    f", after moving it back {moved:.0f}s for the sending device's clock "
                    "(its sentAt was that far ahead)" if moved else ""), event)
        if t < self.now - self.lateness and not feedback:
            return Rejected(
                "too_late", f"occurred_at is {self.now - t:.0f}s behind the partition clock "
                f"(allowed lateness {self.lateness:.0f}s)", event)
        return None

    def note_position(self, position: int | None) -> None:
        if position is not None and position > self.applied_position:
            self.applied_position = position

    # --- in the partition's context --------------------------------------------------

    def stamp(self) -> float | None:
        return None if self.now == NEG_INF else self.now

    def restore(self, stamp: float | None, applied_position: int) -> None:
        self.now = NEG_INF if stamp is None else stamp
        self.applied_position = applied_position
