"""A deterministic harness for the lifecycle core: feed events, move the clock, read what
came out. Used by journey's own tests and meant for users testing their thresholds."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.core.event import Event
from streams.core.processor import Outputs, PartitionProcessor
from streams.core.state import UserState
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
    transitions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    reactivations: list[str] = field(default_factory=list)
    duplicates: int = 0

    def __post_init__(self) -> None:
        self.processor = PartitionProcessor(self.settings, self.store)
        self.out = Outputs()

    def send(self, *events: Event, position: int | None = None,
             received_at: float | None = None) -> Harness:
        for e in events:
            self.processor.process(e, self.out, position=position, received_at=received_at)
            while self.out.feedback:
                self.processor.process(self.out.feedback.pop(), self.out, feedback=True)
            self._collect()
        return self

    def advance_to(self, t: float) -> Harness:
        self.processor.advance(t, self.out)
        self._collect()
        return self

    def advance_days(self, day: float, base: float = 1_767_225_600.0) -> Harness:
        return self.advance_to(base + day * DAY)

    def state(self, user_id: str) -> UserState:
        return self.store[user_id]

    def snapshot(self, user_id: str) -> dict[str, Any]:
        return self.processor.snapshot(self.store[user_id])

    def alert_types(self, user_id: str | None = None) -> list[str]:
        return [a["type"] for a in self.alerts if user_id is None or a["user_id"] == user_id]

    def _collect(self) -> None:
        o = self.out
        self.alerts += o.alerts
        self.transitions += o.transitions
        self.rejected += [(r.reason, r.event.event_id) for r in o.rejected]
        self.suppressed += o.suppressed
        self.reactivations += o.reactivations
        self.duplicates += o.duplicates
        o.clear()


HarnessFactory = Callable[..., Harness]


def harness_factory(**defaults: Any) -> HarnessFactory:
    """``factory(**overrides)``: a fresh harness on the default settings with these
    overrides (what the test suite's ``harness`` fixture hands out)."""

    def build(**overrides: Any) -> Harness:
        return Harness(Settings().with_overrides(**{**defaults, **overrides}))

    return build
