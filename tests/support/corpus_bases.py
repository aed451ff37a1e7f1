"""What the bad-input corpus (tests/support/bad_corpus.py) is built from, and the inputs
it must not reject.

A :class:`Case` is one record's exact bytes with the dead-letter reason journey must give.
The corpus makes each of its cases from one of the valid inputs here (canonical events and
Segment calls) with one defect, put in by the builders here, so the reason is unambiguous.
``ACCEPTED`` lists inputs that look suspicious but are fine by the contract: the decisions
the corpus makes in the other direction. Not a test module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import orjson

CANONICAL, SEGMENT, RAW = "canonical", "segment", "raw"
CATEGORIES = ("truncated", "binary", "deep", "huge", "non_finite", "wrong_type", "missing",
              "extra", "utf8", "time", "amount", "currency", "duplicate_keys", "type")


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    reason: str  # the dead-letter reason
    kind: str  # canonical, segment, or raw (no event structure at all)
    category: str


# --- the valid inputs the defects are made in ---------------------------------------------
# Users u-1 and u-2 exist in the state the bad input is checked against.

PURCHASE: dict[str, Any] = {
    "event_id": "bad-e1", "user_id": "u-1", "type": "purchase",
    "occurred_at": "2026-01-10T10:00:00+01:00", "source": "corpus",
    "properties": {"amount": 25.0, "currency": "EUR", "order_id": "o-1", "note": "Müller"}}
VIEW: dict[str, Any] = {
    "event_id": "bad-e2", "user_id": "u-1", "type": "page_view",
    "occurred_at": "2026-01-10T10:05:00Z", "properties": {"path": "/shoes"}}
ORDER: dict[str, Any] = {
    "type": "track", "event": "Order Completed", "messageId": "bad-m1", "userId": "u-2",
    "timestamp": "2026-01-10T09:00:00.000Z", "context": {"timezone": "Europe/Berlin"},
    "properties": {"order_id": "o-9", "revenue": 30.0, "currency": "EUR",
                   "products": [{"product_id": "p-1", "price": 15.0, "quantity": 2}]}}
IDENTIFY: dict[str, Any] = {  # as analytics-python sends it
    "type": "identify", "messageId": "bad-m5", "userId": "u-2", "anonymousId": None,
    "traits": {"email": "ada@example.com", "phone": "+49 30 1234567"},
    "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
    "integrations": {}, "timestamp": "2026-01-10T09:02:00.000+00:00"}
ALIAS: dict[str, Any] = {
    "type": "alias", "messageId": "bad-m6", "previousId": "a-2", "userId": "u-2",
    "anonymousId": None, "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
    "integrations": {}, "timestamp": "2026-01-10T09:03:00.000+00:00"}
GROUP: dict[str, Any] = {
    "type": "group", "messageId": "bad-m7", "groupId": "acme", "userId": "u-2",
    "anonymousId": None, "traits": {"name": "Acme"}, "integrations": {},
    "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
    "timestamp": "2026-01-10T09:04:00.000+00:00"}
PRODUCT_VIEW: dict[str, Any] = {
    "type": "track", "event": "Product Viewed", "messageId": "bad-m2", "userId": "u-2",
    "timestamp": "2026-01-10T09:01:00Z", "properties": {"product_id": "p-1"}}


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def edit(base: dict[str, Any], drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level ``changes`` and ``drop``ped keys."""
    out = copy.deepcopy(base)
    out.update(changes)
    for key in drop:
        out.pop(key, None)
    return out


def props(base: dict[str, Any], drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``changes`` and ``drop``s applied under properties."""
    out = copy.deepcopy(base)
    out["properties"].update(changes)
    for key in drop:
        out["properties"].pop(key, None)
    return out


def swap(obj: dict[str, Any], old: bytes, new: bytes) -> bytes:
    """The compact JSON of ``obj`` with one exact piece of text replaced."""
    raw = dumps(obj)
    assert raw.count(old) == 1, (old, raw)
    return raw.replace(old, new)


def nested(depth: int, leaf: Any = 1, array: bool = False) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if array else {"k": value}
    return value


# --- look-alikes: suspicious, but valid by the contract ------------------------------------

_P, _V, _O, _S = PURCHASE, VIEW, ORDER, PRODUCT_VIEW
_I, _A, _G = IDENTIFY, ALIAS, GROUP

# Inputs that look wrong but are fine by the contract, and must decode to an Event.
ACCEPTED: tuple[Case, ...] = tuple(Case(f"{category}/{name}", raw, "", kind, category) for
                                   category, kind, name, raw in [
    ("extra", CANONICAL, "unknown-property-keys",
     dumps(props(_P, coupon="SPRING", nested={"any": ["thing"]}))),
    ("extra", SEGMENT, "segment-unknown-top-level-fields",
     dumps(edit(_S, writeKey="k", version=2, integrations={"All": True}, channel="server"))),
    ("amount", CANONICAL, "zero-amount", dumps(props(_P, amount=0))),
    ("amount", CANONICAL, "negative-zero", dumps(props(_P, amount=-0.0))),
    ("amount", CANONICAL, "the-largest-amount", dumps(props(_P, amount=10**15))),
    ("amount", SEGMENT, "segment-amount-as-text", dumps(props(_O, revenue=" 19.90 "))),
    ("currency", CANONICAL, "withdrawn-code-for-history", dumps(props(_P, currency="HRK"))),
    ("currency", SEGMENT, "segment-currency-null-means-usd", dumps(props(_O, currency=None))),
    # the e-commerce spec v2's own example sends currency: 'usd'
    ("currency", SEGMENT, "segment-lower-case-code", dumps(props(_O, currency="usd"))),
    ("time", CANONICAL, "earliest-time", dumps(edit(_V, occurred_at="1990-01-01T00:00:00Z"))),
    ("time", CANONICAL, "leap-second", dumps(edit(_V, occurred_at="2016-12-31T23:59:60Z"))),
    ("time", SEGMENT, "segment-sent-at-only", dumps(edit(_S, drop=("timestamp",),
                                                         sentAt="2026-01-10T09:01:00Z"))),
    # as Segment's API reads them (streams/core/segment_time.py)
    ("time", SEGMENT, "segment-null-time-beside-sent-at",
     dumps(edit(_S, timestamp=None, sentAt="2026-01-10T09:01:00Z"))),
    ("time", SEGMENT, "segment-basic-offset",
     dumps(edit(_S, timestamp="2026-01-10T10:01:00+0100"))),
    ("time", SEGMENT, "segment-no-zone-is-utc", dumps(edit(_S, timestamp="2026-01-10T09:01:00"))),
    ("deep", CANONICAL, "exactly-32-levels", dumps(props(_V, extra=nested(30)))),
    ("huge", CANONICAL, "string-of-16Ki", dumps(props(_V, note="y" * 16_384))),
    ("huge", CANONICAL, "array-of-1000", dumps(props(_V, tags=[0] * 1000))),
    ("huge", CANONICAL, "object-of-500-keys",
     dumps(edit(_V, properties={f"f{i}": i for i in range(500)}))),
    ("utf8", CANONICAL, "non-ascii-ids", dumps(edit(_V, user_id="Jürgen-東京-🙂"))),
    ("utf8", CANONICAL, "escaped-surrogate-pair", swap(_V, b'"/shoes"', b'"\\ud83d\\ude42"')),
    # Segment's identity calls, as its libraries send them, and their quirks
    ("type", SEGMENT, "segment-identify", dumps(_I)),
    ("type", SEGMENT, "segment-alias", dumps(_A)),
    ("type", SEGMENT, "segment-group", dumps(_G)),
    ("type", SEGMENT, "segment-group-numeric-id", dumps(edit(_G, groupId=42))),
    ("extra", SEGMENT, "identify-anonymous-only", dumps(edit(_I, userId=None, anonymousId="a-2"))),
    ("extra", SEGMENT, "identify-traits-null", dumps(edit(_I, traits=None))),
    ("extra", SEGMENT, "identify-any-other-traits",
     dumps(edit(_I, traits={"name": "Ada", "address": {"city": "Berlin"}, "age": 36}))),
    ("extra", SEGMENT, "identify-phone-as-number", dumps(edit(_I, traits={"phone": 4930123}))),
    ("extra", SEGMENT, "identify-unknown-subscription-type", dumps(edit(_I, context={
        "messaging_subscriptions": [{"key": "+4930", "type": "WHATSAPP", "status": "nope"}]}))),
    ("extra", SEGMENT, "alias-to-itself", dumps(edit(_A, previousId="u-2"))),
    # integer ids, as analytics-ruby and analytics-php pass an application's id through
    ("type", SEGMENT, "segment-user-id-number", dumps(edit(_S, userId=42))),
    ("type", SEGMENT, "identify-ids-numbers", dumps(edit(_I, userId=42, anonymousId=7))),
    ("type", SEGMENT, "alias-previous-id-number", dumps(edit(_A, previousId=17))),
    # analytics-swift's alias for a user it never identified: no previousId
    ("missing", SEGMENT, "alias-previous-id-from-anonymous-id",
     dumps(edit(_A, drop=("previousId",), anonymousId="a-2"))),
    ("time", SEGMENT, "identify-original-timestamp-only",
     dumps(edit(_I, drop=("timestamp",), originalTimestamp="2026-01-10T09:02:00.000Z"))),
])
