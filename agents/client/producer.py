"""The producer storefront code calls to publish user events to journey.

Every event is checked by the same decoder the worker runs, before anything leaves the
process, so a storefront learns about a broken event at the call site instead of finding
it later in the dead-letter topic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from agents.kafka.config import kafka_kwargs
from agents.kafka.topics import Topics
from streams.core.decode import MISSING_FIELD, NOT_JSON, Rejection, decode
from streams.settings import Settings

# Delivery settings; any of them can be overridden by keyword (``JourneyProducer(linger_ms=50)``).
DELIVERY_DEFAULTS: dict[str, Any] = {
    "enable_idempotence": True,
    "acks": "all",
    "retries": 2**31 - 1,  # bounded in time by delivery_timeout_ms, not by count
    "max_in_flight_requests_per_connection": 5,  # the most idempotence keeps in order
    "linger_ms": 5,  # a few ms of batching; a storefront request barely notices
    "delivery_timeout_ms": 120_000,
    "max_block_ms": 30_000,  # how long send() may wait for metadata or buffer space
    "compression_type": None,  # "gzip" is always available; others need extra libraries
}


class InvalidEvent(ValueError):
    """The event breaks journey's contract, so it was not sent.

    ``reason`` is one of the dead-letter reasons (``missing_field``, ``invalid_timestamp``,
    ...) the worker would have used; ``message`` says what is wrong, naming the field.
    """

    def __init__(self, reason: str, message: str, event_id: str | None = None,
                 user_id: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.event_id = event_id
        self.user_id = user_id

    @classmethod
    def of(cls, rejection: Rejection) -> InvalidEvent:
        return cls(rejection.reason, rejection.message, rejection.event_id, rejection.user_id)


@dataclass(frozen=True, slots=True)
class Rejected:
    """One event of a ``send_many`` batch that was not sent, or not acknowledged."""

    index: int
    reason: str
    message: str


@dataclass(slots=True)
class SendReport:
    """Outcome of ``send_many``: how many the broker acknowledged, and what went wrong.

    ``rejected`` failed validation and were never sent; ``failed`` were sent but not
    acknowledged (reason ``delivery_failed``) and are safe to send again.
    """

    sent: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    failed: list[Rejected] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.failed


class JourneyProducer:
    """Publishes storefront events to journey's input topic.

    ``send`` validates an event (a canonical journey event or a Segment track/page/screen
    call, as the worker accepts) and raises :class:`InvalidEvent` before anything is sent.
    Valid events are keyed by ``user_id`` (UTF-8), so Kafka's default murmur2 partitioner
    puts all of a user's events on one partition, in the order they were sent.

    Delivery guarantees:

    * **At least once to the broker.** ``acks="all"`` and unlimited retries within
      ``delivery_timeout_ms``; a future that resolves means the broker has the event.
    * **Idempotent within one producer session.** ``enable_idempotence=True`` makes the
      broker drop the copies that internal retries would otherwise write, and keeps
      each partition in send order.
    * **Safe to re-send.** After an error, or across a restart (a new producer session),
      just send the event again: journey drops repeats by ``event_id`` downstream, so
      an event must keep its ``event_id`` when re-sent.

    Call ``flush()`` before exiting, or use the producer as a context manager; events
    still buffered when the process dies are lost (they were never acknowledged).
    Validation covers the contract (schema, size, JSON hygiene), not time: whether an
    event is too late or stamped in the future is judged by the worker's clock.
    One producer is safe to share between threads; make one per process.
    Security (TLS, SASL) comes from the settings, as for every journey client.
    """

    def __init__(self, settings: Settings | None = None, *, bootstrap: str | None = None,
                 topic: str | None = None, validate: bool = True, **overrides: Any) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.topic = topic or Topics.from_settings(self.settings).events
        self.validate = validate
        self.max_bytes = self.settings.max_event_bytes
        config = {**DELIVERY_DEFAULTS,
                  **kafka_kwargs(self.settings, "kafka-python", bootstrap=bootstrap),
                  "client_id": f"{self.settings.app_id}-producer", **overrides}
        self._producer = KafkaProducer(**config)

    # --- sending ---------------------------------------------------------------------------

    def send(self, event: Mapping[str, Any]) -> FutureRecordMetadata:
        """Validate and send one event; returns kafka-python's future of its record metadata.

        Raises InvalidEvent (nothing sent) if the event breaks the contract.
        """
        try:
            value = orjson.dumps(event)
        except TypeError as exc:  # not JSON-shaped: a set, a datetime, a non-string key...
            raise InvalidEvent(NOT_JSON, f"event cannot be written as JSON: {exc}") from exc
        return self.send_raw(value)

    def send_raw(self, value: bytes, *, not_before: float | None = None) -> FutureRecordMetadata:
        """Send already-serialized JSON bytes exactly as given, after the same validation.

        With ``validate=False`` the bytes must still carry a readable ``user_id`` (or
        Segment ``userId``/``anonymousId``) for the key. ``not_before`` (validated events
        only): an event that occurred earlier is not sent (InvalidEvent ``too_late``).
        """
        if self.validate:
            got = decode(value, max_bytes=self.max_bytes)
            if isinstance(got, Rejection):
                raise InvalidEvent.of(got)
            if not_before is not None and got.occurred_at < not_before:
                behind = not_before - got.occurred_at
                raise InvalidEvent("too_late", f"occurred_at is {behind:.0f}s before the oldest "
                                   "time allowed", got.event_id, got.user_id)
            user_id = got.user_id
        else:
            user_id = _user_id_of(value)
        return self._producer.send(self.topic, value=value, key=user_id.encode("utf-8"))

    def send_many(self, events: Iterable[Mapping[str, Any]],
                  timeout: float | None = None) -> SendReport:
        """Send every valid event, wait for the broker's acknowledgements, and report.

        Invalid events are skipped (listed with their index), never raised; events the
        broker did not acknowledge are listed in ``failed`` and may be sent again.
        """
        report = SendReport()
        pending: list[tuple[int, FutureRecordMetadata]] = []
        for i, event in enumerate(events):
            try:
                pending.append((i, self.send(event)))
            except InvalidEvent as exc:
                report.rejected.append(Rejected(i, exc.reason, exc.message))
            except KafkaError as exc:  # no metadata or buffer space within max_block_ms
                report.failed.append(Rejected(i, "delivery_failed", repr(exc)))
        # whatever is still unacknowledged is reported as failed below
        with contextlib.suppress(KafkaTimeoutError):
            self.flush(timeout)
        for i, future in pending:
            if future.succeeded():
                report.sent += 1
            else:
                error = future.exception if future.is_done else "not acknowledged in time"
                report.failed.append(Rejected(i, "delivery_failed", str(error)))
        return report

    def partitions(self) -> set[int]:
        """Partition ids of the topic (waits for metadata up to ``max_block_ms``)."""
        return set(self._producer.partitions_for(self.topic))

    # --- lifecycle -------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every buffered event is acknowledged or has failed.

        Raises kafka.errors.KafkaTimeoutError if ``timeout`` seconds pass first.
        """
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the connections. Idempotent."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _user_id_of(value: bytes) -> str:
    """The partition key of an unvalidated event: canonical ``user_id`` or Segment ids."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(NOT_JSON, f"not valid JSON: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("user_id", "userId", "anonymousId"):
            if isinstance(obj.get(key), str) and obj[key]:
                return str(obj[key])
    raise InvalidEvent(MISSING_FIELD, "missing field: user_id (needed as the partition key)")


__all__ = ["DELIVERY_DEFAULTS", "InvalidEvent", "JourneyProducer", "Rejected", "SendReport"]
