"""Inputs for the decoder's tests, events and Segment calls as objects and lines, and the
checks on what comes out: a rejection's reason, an Event's sanity."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import hypothesis
import orjson

import schemas
from streams.core import rejection
from streams.core.apply import PREVIOUS_ID, READ_PROPERTIES
from streams.core.decode import Rejection, decode, to_object
from streams.core.event import EVENT_TYPES, OTHER, SEGMENT_ONLY_TYPES, Event
from streams.core.limits import EARLIEST_EVENT_AT, LATEST_EVENT_AT, MAX_AMOUNT
from streams.core.state import CHANNELS


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
       ) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def line(obj: Any) -> bytes:
    return orjson.dumps(obj)


def event(**fields: Any) -> dict[str, Any]:
    base = {"event_id": "e-1", "user_id": "u-1", "type": "page_view",
            "occurred_at": "2024-05-03T18:21:07+02:00"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def track(name: str, **props: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": "m-1", "userId": "u-1",
            "timestamp": "2024-05-03T16:21:07.118Z", "properties": props}


def rejected(result: Event | Rejection, reason: str) -> Rejection:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert result.message
    return result


# the reasons the decoder gives (the dead-letter schema has more: the core's and the shell's)
DECODER_REASONS = {v for k, v in vars(rejection).items() if k.isupper() and type(v) is str}
CURRENCIES = frozenset(schemas.load("user-event")["$defs"]["currency"]["enum"])


def _with_other() -> Any:
    """user-event.v1 with the Segment-only type "other" admitted."""
    doc = schemas.load("user-event")
    doc["properties"]["type"]["enum"].append(OTHER)
    return schemas.compile_schema(doc)


USER_EVENT = _with_other()


def assert_sane(event: Event) -> None:
    """What any Event out of the decoder must be, whatever went in."""
    assert type(event.event_id) is str and 0 < len(event.event_id) <= 200
    assert type(event.user_id) is str and 0 < len(event.user_id) <= 200
    assert EARLIEST_EVENT_AT <= event.occurred_at < LATEST_EVENT_AT
    if event.type in SEGMENT_ONLY_TYPES:  # not user events: what the core reads of them
        assert event.source == "segment" and event.utc_offset_min is None
        assert set(event.properties) <= READ_PROPERTIES, event.properties
        previous = event.properties.get(PREVIOUS_ID)
        assert previous is None or (type(previous) is str and previous != event.user_id)
        return
    assert event.type in EVENT_TYPES
    assert event.utc_offset_min is None or abs(event.utc_offset_min) < 24 * 60
    if event.type == "refund" and event.amount is None:  # a full refund of a named order
        assert type(event.order_id) is str and event.order_id
        assert event.currency is None or event.currency in CURRENCIES
    elif event.type in ("purchase", "refund"):
        assert event.amount is not None and event.currency in CURRENCIES
    if event.amount is not None:
        assert math.isfinite(event.amount) and 0.0 <= event.amount <= MAX_AMOUNT
        assert math.copysign(1.0, event.amount) == 1.0  # no -0.0 in the aggregates
    assert event.rating is None or (type(event.rating) is int and 1 <= event.rating <= 5)
    assert event.channel is None or event.channel in CHANNELS
    again = to_object(event)
    USER_EVENT(again)  # schema-valid when re-serialised
    raw = orjson.dumps(again)
    if event.type != OTHER:  # "other" is a Segment-only type: not canonical input
        back = decode(raw)
        assert isinstance(back, Event), back
        assert (back.event_id, back.user_id, back.type, back.amount, back.currency) == \
            (event.event_id, event.user_id, event.type, event.amount, event.currency)
        assert abs(back.occurred_at - event.occurred_at) < 0.001


def outcome(raw: bytes | str) -> Event | Rejection:
    got = decode(raw)
    hypothesis.event(got.reason if isinstance(got, Rejection) else "event")
    if isinstance(got, Rejection):
        assert got.reason in DECODER_REASONS and got.message, got
    else:
        assert isinstance(got, Event), got
        assert_sane(got)
    return got
