"""A deterministic harness for the lifecycle core: feed events, move the clock, read what
came out. Used by journey's own tests and meant for users testing their thresholds.

Also the bounds that the caps put on one user's state (``CAPS``, ``state_ceiling``), which
the state tests and ``bench/overload.py`` hold a user's stored state against."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemas
from streams.core.churn.model import ChurnModel
from streams.core.event import Event
from streams.core.outputs import Outputs, Rejected, drain
from streams.core.processor import PartitionProcessor
from streams.core.state import RECORD_FIELDS, UserState
from streams.core.suppression import SUPPRESSION_REASONS
from streams.core.user_logs import (
    ALERT_LOG_CAP,
    HELD_REFUND_CAP,
    ORDER_LOG_CAP,
    PURCHASE_LOG_CAP,
    SPEND_DAYS_CAP,
)
from streams.settings import Settings

DAY = 86400.0
BASE = 1_767_225_600.0  # 2026-01-01T00:00Z (a Thursday): day 0 of make_event and at
_ids = itertools.count()


def at(day: float) -> float:
    """The instant ``day`` days after ``BASE``."""
    return BASE + day * DAY


def make_event(user_id: str, type: str, day: float, *, event_id: str | None = None,
               base: float = BASE, **fields: Any) -> Event:
    """An event ``day`` days after ``base`` (2026-01-01T00:00Z)."""
    props = dict(fields.pop("properties", {}) or {})
    return Event(event_id=event_id or f"e{next(_ids)}", user_id=user_id, type=type,
                 occurred_at=base + day * DAY, utc_offset_min=fields.pop("utc_offset_min", 0),
                 properties=props, **fields)


@dataclass
class Harness:
    settings: Settings = field(default_factory=Settings)
    store: dict[str, UserState] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    historical: list[dict[str, Any]] = field(default_factory=list)  # see live_from
    transitions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    reactivations: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # Segment calls taken, not used
    stitches: list[str] = field(default_factory=list)  # identity outcomes
    churn_models: list[tuple[int, ChurnModel]] = field(default_factory=list)  # re-fits' models
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.processor = PartitionProcessor(self.settings, self.store)
        self.out = Outputs()
        self._credits: list[Event] = []  # journey's own news on its way back in, in order

    def send(self, *events: Event, position: int | None = None,
             received_at: float | None = None) -> Harness:
        for e in events:
            self.processor.process(e, self.out, position=position, received_at=received_at)
            self._drain()
        return self

    def advance_to(self, t: float) -> Harness:
        self.processor.advance(t, self.out)
        self._drain()
        return self

    def advance_days(self, day: float, base: float = 1_767_225_600.0) -> Harness:
        return self.advance_to(base + day * DAY)

    def state(self, user_id: str) -> UserState:
        return self.store[user_id]

    def snapshot(self, user_id: str) -> dict[str, Any]:
        return self.processor.snapshot(self.store[user_id])

    def alert_types(self, user_id: str | None = None) -> list[str]:
        return [a["type"] for a in self.alerts if user_id is None or a["user_id"] == user_id]

    def _drain(self) -> None:
        """Collect what came out; journey's own news (referral credits, identity stitches
        and merges) goes back in, as the worker's repartition hop brings it to its
        partition (here: the same one)."""
        drain(self.out, self)
        while self._credits:
            self.processor.process(self._credits.pop(0), self.out, feedback=True)
            drain(self.out, self)

    # --- the Sink ----------------------------------------------------------------------

    def on_applied(self, events: list[Event]) -> None:
        pass

    def on_duplicates(self, count: int) -> None:
        self.duplicates += count

    def on_rejected(self, rejected: Rejected) -> None:
        self.rejected.append((rejected.reason, rejected.event.event_id))

    def on_alert(self, alert: dict[str, Any]) -> None:
        self.alerts.append(alert)

    def on_historical(self, alert: dict[str, Any]) -> None:
        self.historical.append(alert)

    def on_transition(self, transition: dict[str, Any]) -> None:
        self.transitions.append(transition)

    def on_feedback(self, event: Event) -> None:
        self._credits.append(event)

    def on_suppressed(self, kind: str, reason: str) -> None:
        # the metric's help and the docs list the known reasons; an unknown one is a bug
        if reason not in SUPPRESSION_REASONS:
            raise AssertionError(f"suppression reason {reason!r} is not in "
                                 "streams/core/suppression.py")
        self.suppressed.append((kind, reason))

    def on_deferred(self, kind: str) -> None:
        pass

    def on_reactivation(self, label: str) -> None:
        self.reactivations.append(label)

    def on_refits(self, count: int) -> None:
        pass

    def on_churn_model(self, partition: int, model: ChurnModel) -> None:
        self.churn_models.append((partition, model))

    def on_ignored(self, call: str) -> None:
        self.ignored.append(call)

    def on_stitch(self, outcome: str) -> None:
        self.stitches.append(outcome)


HarnessFactory = Callable[..., Harness]


def harness_factory(**defaults: Any) -> HarnessFactory:
    """``factory(**overrides)``: a fresh harness on the default settings with these
    overrides (what the test suite's ``harness`` fixture hands out)."""

    def build(**overrides: Any) -> Harness:
        return Harness(Settings().with_overrides(**{**defaults, **overrides}))

    return build


# --- bounds on one user's state ------------------------------------------------------------------

# The longest id the input contract accepts: every string kept per user is one of these.
MAX_ID = max(schemas.load("user-event")["$defs"][name]["maxLength"]
             for name in ("user_id", "order_id"))
MAX_EVENT_ID = schemas.load("user-event")["properties"]["event_id"]["maxLength"]
# Every collection field of UserState and its cap, in bytes. A new list/dict/set field fails
# test_every_per_user_collection_has_a_cap until it is given a cap here and in the core.
CAPS: dict[str, Callable[[Settings], int]] = {
    # bytes (streams/core/logs.py): an 8-byte digest per id, 8 bytes per value
    "recent_ids": lambda s: 8 * s.dedupe_window,
    "purchase_log": lambda s: 16 * PURCHASE_LOG_CAP,  # time, amount
    "order_log": lambda s: 24 * ORDER_LOG_CAP,  # digest, time, amount
    "alert_log": lambda s: 8 * ALERT_LOG_CAP,
    "spend_days": lambda s: 16 * SPEND_DAYS_CAP,  # day, net spend
    "held_refunds": lambda s: 16 * HELD_REFUND_CAP,  # order id digest, refund time
}


def state_ceiling(settings: Settings) -> int:
    """An upper bound on one user's encoded state from the caps: each id at its longest
    plus quoting, each number at its longest repr (24 bytes), each field's separator."""
    number, text = 24, max(MAX_ID, MAX_EVENT_ID) + 3
    ids = settings.dedupe_window * text
    orders = ORDER_LOG_CAP * (text + 2 * number + 3)
    purchases = PURCHASE_LOG_CAP * (2 * number + 3)
    alert_times = ALERT_LOG_CAP * number
    spend_days = SPEND_DAYS_CAP * (2 * number + 3)
    held = HELD_REFUND_CAP * (16 + number + 2) + 8  # hex digests, times
    scalars = len(RECORD_FIELDS) * (text + 1)  # generous: as if each were an id
    return ids + orders + purchases + alert_times + spend_days + held + scalars + 16
