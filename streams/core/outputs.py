"""What the core produces, and the one way a driver takes it.

A processor step appends to an :class:`Outputs`; a driver (the live worker's pipeline,
``journey replay``, the test harness) hands it to :func:`drain` with its own
:class:`Sink`, which publishes, writes or collects each kind of output. A new kind of
output is a field here, a method of ``Sink`` and a line of ``drain``, then one method in
each sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.core.churn.model import ChurnModel
from streams.core.event import Event
from streams.core.suppression import SuppressionReason


@dataclass(slots=True)
class Rejected:
    reason: str
    message: str
    event: Event


@dataclass(slots=True)
class Outputs:
    """What one or more steps produced; the shell publishes and counts them, then clears."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    # alerts dated before the partition's ``live_from``: reported, never published
    historical: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    feedback: list[Event] = field(default_factory=list)  # events for other users
    applied: list[Event] = field(default_factory=list)
    duplicates: int = 0
    # (alert type, reason)
    suppressed: list[tuple[str, SuppressionReason]] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # alert types sent outside quiet hours
    reactivations: list[str] = field(default_factory=list)  # treated | control | none
    refits: int = 0
    # (partition, model) for each churn model a re-fit put in force
    churn_models: list[tuple[int, ChurnModel]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # Segment calls taken but not used (group)
    stitches: list[str] = field(default_factory=list)  # identity outcomes (see identity)
    touched: set[str] = field(default_factory=set)  # users whose state changed (not drained)
    # False: a driver that only counts them (a replay writing no file) gets alerts, or
    # transitions, as their type alone (an alert also with its time, and the id and
    # control flag the state keeps); the state is the same either way. Not cleared.
    alert_records: bool = True
    transition_records: bool = True

    def clear(self) -> None:
        for items in (self.alerts, self.historical, self.transitions, self.rejected, self.feedback,
                      self.applied, self.suppressed, self.deferred, self.reactivations,
                      self.churn_models, self.ignored, self.stitches, self.touched):
            if items:
                items.clear()
        self.duplicates = 0
        self.refits = 0


class Sink(Protocol):
    """Where a driver puts each kind of output. :func:`drain` calls the methods in the
    order below; a list handed over is cleared afterwards, so a sink keeps none."""

    def on_applied(self, events: list[Event]) -> None:
        """Events applied to user state."""

    def on_duplicates(self, count: int) -> None:
        """Events skipped because their user holds them already."""

    def on_rejected(self, rejected: Rejected) -> None:
        """An event refused for its time: a dead letter."""

    def on_alert(self, alert: dict[str, Any]) -> None:
        """A churn warning or a recall trigger."""

    def on_historical(self, alert: dict[str, Any]) -> None:
        """An alert about a lapse before going live (see ``live_from``): for a file or a
        report, never published; also counted by ``on_suppressed``."""

    def on_transition(self, transition: dict[str, Any]) -> None:
        """A lifecycle transition."""

    def on_feedback(self, event: Event) -> None:
        """journey's own news for another user (a referral credit), for that user's
        partition."""

    def on_suppressed(self, kind: str, reason: SuppressionReason) -> None:
        """An alert of ``kind`` not sent, and why."""

    def on_deferred(self, kind: str) -> None:
        """An alert of ``kind`` sent with a window outside quiet hours."""

    def on_reactivation(self, label: str) -> None:
        """A churned user came back: ``treated``, ``control`` or ``none``."""

    def on_refits(self, count: int) -> None:
        """Population model re-fits."""

    def on_churn_model(self, partition: int, model: ChurnModel) -> None:
        """A re-fit put a new churn model in force on ``partition``."""

    def on_ignored(self, call: str) -> None:
        """A Segment call accepted and left unused (``group``)."""

    def on_stitch(self, outcome: str) -> None:
        """An identity step: ``merged`` (a profile folded into its user), ``linked`` (an id
        with no profile yet now leads to one), ``redirected`` (an event for a merged id
        sent on), ``already_merged`` (a stitch for an id merged elsewhere before: the
        first stands), ``revived`` (merges that went round a loop ended at this id)."""


def drain(out: Outputs, sink: Sink) -> None:
    """Hand everything in ``out`` to ``sink``, kind by kind, then clear ``out``."""
    if out.applied:
        sink.on_applied(out.applied)
    if out.duplicates:
        sink.on_duplicates(out.duplicates)
    for rejected in out.rejected:
        sink.on_rejected(rejected)
    for alert in out.alerts:
        sink.on_alert(alert)
    for alert in out.historical:
        sink.on_historical(alert)
    for transition in out.transitions:
        sink.on_transition(transition)
    for event in out.feedback:
        sink.on_feedback(event)
    for kind, reason in out.suppressed:
        sink.on_suppressed(kind, reason)
    for kind in out.deferred:
        sink.on_deferred(kind)
    for label in out.reactivations:
        sink.on_reactivation(label)
    if out.refits:
        sink.on_refits(out.refits)
    for partition, model in out.churn_models:
        sink.on_churn_model(partition, model)
    for call in out.ignored:
        sink.on_ignored(call)
    for outcome in out.stitches:
        sink.on_stitch(outcome)
    out.clear()
