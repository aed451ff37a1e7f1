"""Orders and refunds, canonical and Segment, decoded and folded through a partition: the
inputs of the full-refund tests (tests/unit/test_full_refund.py)."""

from __future__ import annotations

from typing import Any

import jsonschema

import schemas
from streams.core.decode import decode
from streams.core.event import Event
from streams.testing import Harness
from tests.support.inputs import event, line, track

# user-event.v1 as the jsonschema package reads it: a second opinion on the contract
REFERENCE = jsonschema.Draft202012Validator(
    schemas.load("user-event"), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
ORDER_AT = "2026-03-02T10:00:00Z"
REFUND_AT = "2026-03-05T09:30:00Z"


def decoded(obj: dict[str, Any]) -> Event:
    """``obj`` through the decoder, which must take it."""
    got = decode(line(obj))
    assert isinstance(got, Event), got
    return got


def canonical_order(order_id: str, amount: float, event_id: str = "o-evt",
                    at: str = ORDER_AT) -> Event:
    return decoded(event(event_id=event_id, type="purchase", occurred_at=at, properties={
        "amount": amount, "currency": "EUR", "order_id": order_id}))


def canonical_refund(event_id: str = "r-evt", **props: Any) -> Event:
    return decoded(event(event_id=event_id, type="refund", occurred_at=REFUND_AT,
                         properties=props))


def segment_order(order_id: str, total: float, message_id: str = "m-order") -> Event:
    return decoded({**track("Order Completed", order_id=order_id, total=total),
                    "messageId": message_id, "timestamp": ORDER_AT})


def segment_refund(**props: Any) -> Event:
    return decoded({**track("Order Refunded", **props), "messageId": "m-refund",
                    "timestamp": REFUND_AT})


def folded(*events: Event) -> Harness:
    """A fresh partition that has taken ``events`` in this order."""
    return Harness().send(*events)
