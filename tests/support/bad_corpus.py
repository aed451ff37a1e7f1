"""A corpus of malformed input, each case with the dead-letter reason journey must give.

Not a test module: tests/unit/test_bad_input.py and tests/kafka/test_bad_input_live.py read it.
Every case is the exact bytes of one record (a Kafka value, a replay line), built from
a valid canonical event or Segment call by one defect, so the reason is unambiguous.
``ACCEPTED`` lists inputs that look suspicious but are fine by the contract: the
decisions the corpus makes in the other direction.

Categories (``Case.category``), each covered for canonical events and Segment calls:
truncated, binary, deep, huge, non_finite, wrong_type, missing, extra, utf8, time,
amount, currency, duplicate_keys, type.
"""

from __future__ import annotations

import base64
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


# --- the cases -----------------------------------------------------------------------------

_P, _V, _O, _S = PURCHASE, VIEW, ORDER, PRODUCT_VIEW
_I, _A, _G = IDENTIFY, ALIAS, GROUP
_TRUNC = dumps(PURCHASE)
_TRUNC_SEG = dumps(ORDER)
_UMLAUT = _TRUNC.index("ü".encode())

_CASES: list[tuple[str, str, str, str, bytes]] = [  # (category, kind, name, reason, raw)
    # truncated: the record was cut off
    ("truncated", RAW, "empty", "not_json", b""),
    ("truncated", RAW, "one-brace", "not_json", b"{"),
    ("truncated", CANONICAL, "cut-in-a-key", "not_json", _TRUNC[:15]),
    ("truncated", CANONICAL, "cut-in-half", "not_json", _TRUNC[:len(_TRUNC) // 2]),
    ("truncated", CANONICAL, "last-brace-missing", "not_json", _TRUNC[:-1]),
    ("truncated", CANONICAL, "cut-inside-a-character", "invalid_utf8", _TRUNC[:_UMLAUT + 1]),
    ("truncated", SEGMENT, "segment-cut-in-half", "not_json", _TRUNC_SEG[:len(_TRUNC_SEG) // 2]),
    ("truncated", SEGMENT, "segment-last-brace-missing", "not_json", _TRUNC_SEG[:-1]),
    ("truncated", SEGMENT, "segment-cut-after-a-comma", "not_json",
     _TRUNC_SEG[:_TRUNC_SEG.index(b",") + 1]),
    # binary: not text, or text around something that is not JSON
    ("binary", RAW, "all-byte-values", "invalid_utf8", bytes(range(256))),
    ("binary", RAW, "nul-bytes", "not_json", b"\x00" * 32),
    ("binary", RAW, "gzip-member", "invalid_utf8",
     b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xab\x56\xca\x4c\x51\xb2\x52\x32\x54\xaa\x05\x00"),
    ("binary", RAW, "msgpack-map", "invalid_utf8", b"\x82\xa8event_id\xa1e\xa7user_id\xa1u"),
    ("binary", RAW, "random-bytes", "invalid_utf8",
     bytes((i * 151 + 7) % 256 for i in range(300))),
    ("binary", CANONICAL, "schema-registry-framing", "not_json",
     b"\x00\x00\x00\x00\x07" + dumps(_V)),
    ("binary", CANONICAL, "byte-order-mark", "not_json", b"\xef\xbb\xbf" + dumps(_V)),
    ("binary", CANONICAL, "trailing-garbage", "not_json", dumps(_V) + b"\x00\x01\x02"),
    ("binary", CANONICAL, "utf16-without-bom", "not_json", dumps(_V).decode().encode("utf-16-le")),
    ("binary", CANONICAL, "two-events-in-one-record", "not_json", dumps(_V) + b"\n" + dumps(_P)),
    ("binary", SEGMENT, "segment-utf16-with-bom", "invalid_utf8",
     dumps(_S).decode().encode("utf-16")),
    ("binary", SEGMENT, "segment-base64", "not_json",
     base64.b64encode(dumps(_S))),
    ("binary", SEGMENT, "segment-trailing-garbage", "not_json", dumps(_S) + b"\r\n\x1a"),
    # deep: nesting past the limit (32 levels, the event being the first)
    ("deep", CANONICAL, "objects-40-deep", "too_deep", dumps(props(_V, extra=nested(40)))),
    ("deep", CANONICAL, "arrays-40-deep", "too_deep",
     dumps(props(_V, extra=nested(40, array=True)))),
    ("deep", CANONICAL, "arrays-3000-deep", "too_deep",
     swap(_V, b'"/shoes"', b"[" * 3000 + b"]" * 3000)),
    ("deep", CANONICAL, "just-past-the-limit", "too_deep", dumps(props(_V, extra=nested(31)))),
    ("deep", SEGMENT, "segment-context-40-deep", "too_deep",
     dumps(edit(_S, context={"library": nested(40)}))),
    ("deep", SEGMENT, "segment-products-2000-deep", "too_deep",
     swap(_O, b'"p-1"', b"[" * 2000 + b"]" * 2000)),
    ("deep", RAW, "bare-brackets", "too_deep", b"[" * 5000 + b"]" * 5000),
    # huge: strings, arrays and objects past the limits
    ("huge", CANONICAL, "record-over-64KiB", "oversize", dumps(props(_V, pad="x" * 70_000))),
    ("huge", CANONICAL, "string-over-16Ki", "oversize", dumps(props(_V, note="y" * 20_000))),
    ("huge", CANONICAL, "key-over-16Ki", "oversize", dumps(props(_V, **{"k" * 17_000: 1}))),
    ("huge", CANONICAL, "array-of-5000", "oversize", dumps(props(_V, tags=[0] * 5000))),
    ("huge", CANONICAL, "object-of-600-keys", "oversize",
     dumps(props(_V, **{f"f{i}": i for i in range(600)}))),
    ("huge", CANONICAL, "consent-of-1500", "oversize",
     dumps(edit(_V, type="signup", properties={"consent": ["email"] * 1500}))),
    ("huge", CANONICAL, "user-id-over-200", "schema_violation", dumps(edit(_V, user_id="u" * 201))),
    ("huge", CANONICAL, "event-id-over-200", "schema_violation",
     dumps(edit(_V, event_id="e" * 201))),
    ("huge", CANONICAL, "order-id-over-200", "schema_violation",
     dumps(props(_P, order_id="o" * 201))),
    ("huge", SEGMENT, "segment-record-over-64KiB", "oversize",
     dumps(edit(_S, context={"userAgent": "z" * 70_000}))),
    ("huge", SEGMENT, "segment-url-over-16Ki", "oversize",
     dumps(edit(_S, context={"page": {"url": "https://shop.example/?" + "q" * 20_000}}))),
    ("huge", SEGMENT, "segment-1500-products", "oversize",
     dumps(props(_O, drop=("revenue",), products=[{"price": 1}] * 1500))),
    ("huge", SEGMENT, "segment-event-name-over-200", "schema_violation",
     dumps(edit(_S, event="E" * 201))),
    ("huge", SEGMENT, "segment-user-id-over-200", "schema_violation",
     dumps(edit(_S, userId="u" * 201))),
    # non_finite: NaN and infinities, as literals (not JSON) or as text
    ("non_finite", CANONICAL, "nan-literal", "not_json", swap(_P, b"25.0", b"NaN")),
    ("non_finite", CANONICAL, "infinity-literal", "not_json", swap(_P, b"25.0", b"Infinity")),
    ("non_finite", CANONICAL, "minus-infinity-literal", "not_json", swap(_P, b"25.0",
     b"-Infinity")),
    ("non_finite", CANONICAL, "overflowing-number", "not_json", swap(_P, b"25.0", b"1e999")),
    ("non_finite", CANONICAL, "400-digit-number", "not_json", swap(_P, b"25.0", b"9" * 400)),
    ("non_finite", CANONICAL, "nan-in-free-properties", "not_json",
     swap(_V, b'"/shoes"', b"NaN")),
    ("non_finite", CANONICAL, "nan-as-text", "invalid_amount", dumps(props(_P, amount="NaN"))),
    ("non_finite", SEGMENT, "segment-nan-literal", "not_json", swap(_O, b"30.0", b"NaN")),
    ("non_finite", SEGMENT, "segment-nan-as-text", "invalid_amount",
     dumps(props(_O, revenue="NaN"))),
    ("non_finite", SEGMENT, "segment-infinity-as-text", "invalid_amount",
     dumps(props(_O, revenue="Infinity"))),
    ("non_finite", SEGMENT, "segment-overflow-as-text", "invalid_amount",
     dumps(props(_O, drop=("revenue",), products=[{"price": "1e999"}]))),
    # wrong_type: the field is there, with a value of the wrong kind
    ("wrong_type", RAW, "array-of-events", "not_an_object", b"[" + dumps(_V) + b"]"),
    ("wrong_type", RAW, "a-number", "not_an_object", b"42"),
    ("wrong_type", RAW, "null", "not_an_object", b"null"),
    ("wrong_type", CANONICAL, "double-encoded", "not_an_object", dumps(dumps(_V).decode())),
    ("wrong_type", CANONICAL, "event-id-number", "schema_violation", dumps(edit(_V, event_id=17))),
    ("wrong_type", CANONICAL, "user-id-null", "schema_violation", dumps(edit(_V, user_id=None))),
    ("wrong_type", CANONICAL, "user-id-object", "schema_violation",
     dumps(edit(_V, user_id={"id": "u-1"}))),
    ("wrong_type", CANONICAL, "type-list", "unknown_type", dumps(edit(_P, type=["purchase"]))),
    ("wrong_type", CANONICAL, "time-epoch-seconds", "invalid_timestamp",
     dumps(edit(_V, occurred_at=1768035900))),
    ("wrong_type", CANONICAL, "time-epoch-millis-text", "invalid_timestamp",
     dumps(edit(_V, occurred_at="1768035900000"))),
    ("wrong_type", CANONICAL, "properties-list", "schema_violation",
     dumps(edit(_V, properties=[["path", "/shoes"]]))),
    ("wrong_type", CANONICAL, "properties-text", "schema_violation",
     dumps(edit(_V, properties="path=/shoes"))),
    ("wrong_type", CANONICAL, "amount-text", "invalid_amount", dumps(props(_P, amount="25.00"))),
    ("wrong_type", CANONICAL, "amount-boolean", "invalid_amount", dumps(props(_P, amount=True))),
    ("wrong_type", CANONICAL, "amount-object", "invalid_amount",
     dumps(props(_P, amount={"value": 25, "currency": "EUR"}))),
    ("wrong_type", CANONICAL, "currency-number", "unknown_currency",
     dumps(props(_P, currency=978))),
    ("wrong_type", CANONICAL, "order-id-number", "schema_violation",
     dumps(props(_P, order_id=981))),
    ("wrong_type", CANONICAL, "rating-text", "schema_violation",
     dumps(edit(_V, type="review", properties={"rating": "5"}))),
    ("wrong_type", CANONICAL, "rating-fraction", "schema_violation",
     dumps(edit(_V, type="review", properties={"rating": 4.5}))),
    ("wrong_type", CANONICAL, "rating-out-of-range", "schema_violation",
     dumps(edit(_V, type="review", properties={"rating": 6}))),
    ("wrong_type", CANONICAL, "channel-list", "schema_violation",
     dumps(edit(_V, type="unsubscribe", properties={"channel": ["email"]}))),
    ("wrong_type", CANONICAL, "consent-text", "schema_violation",
     dumps(edit(_V, type="signup", properties={"consent": "email"}))),
    ("wrong_type", CANONICAL, "source-number", "schema_violation", dumps(edit(_V, source=7))),
    ("wrong_type", CANONICAL, "timezone-number", "schema_violation",
     dumps(props(_V, timezone=60))),
    ("wrong_type", CANONICAL, "schema-version-2", "schema_violation",
     dumps(edit(_V, schema="journey.user-event/2"))),
    ("wrong_type", SEGMENT, "segment-double-encoded", "not_an_object", dumps(dumps(_S).decode())),
    ("wrong_type", SEGMENT, "segment-message-id-number", "schema_violation",
     dumps(edit(_S, messageId=5))),
    ("wrong_type", SEGMENT, "segment-user-id-number", "schema_violation",
     dumps(edit(_S, userId=42))),
    ("wrong_type", SEGMENT, "segment-event-number", "schema_violation", dumps(edit(_S, event=5))),
    ("wrong_type", SEGMENT, "segment-call-type-number", "unsupported_segment_call",
     dumps(edit(_S, type=5))),
    ("wrong_type", SEGMENT, "segment-properties-text", "schema_violation",
     dumps(edit(_S, properties="x"))),
    ("wrong_type", SEGMENT, "segment-context-list", "schema_violation",
     dumps(edit(_S, context=[1]))),
    ("wrong_type", SEGMENT, "segment-time-epoch", "invalid_timestamp",
     dumps(edit(_S, timestamp=1768035660))),
    ("wrong_type", SEGMENT, "segment-revenue-boolean", "invalid_amount",
     dumps(props(_O, revenue=True))),
    ("wrong_type", SEGMENT, "segment-rating-word", "schema_violation",
     dumps(edit(_S, event="Product Reviewed", properties={"rating": "five"}))),
    ("wrong_type", SEGMENT, "segment-rating-5000-digits", "schema_violation",
     dumps(edit(_S, event="Product Reviewed", properties={"rating": "9" * 5000}))),
    ("wrong_type", SEGMENT, "segment-order-id-fraction", "schema_violation",
     dumps(props(_O, order_id=1.5))),
    ("wrong_type", SEGMENT, "segment-order-id-object", "schema_violation",
     dumps(props(_O, order_id={"id": 9}))),
    # missing: a field the contract requires is absent (or null where null means absent)
    ("missing", CANONICAL, "empty-object", "missing_field", b"{}"),
    ("missing", CANONICAL, "no-event-id", "missing_field", dumps(edit(_V, drop=("event_id",)))),
    ("missing", CANONICAL, "no-user-id", "missing_field", dumps(edit(_V, drop=("user_id",)))),
    ("missing", CANONICAL, "no-type", "missing_field", dumps(edit(_V, drop=("type",)))),
    ("missing", CANONICAL, "no-time", "missing_field", dumps(edit(_V, drop=("occurred_at",)))),
    ("missing", CANONICAL, "purchase-without-properties", "missing_field",
     dumps(edit(_P, drop=("properties",)))),
    ("missing", CANONICAL, "purchase-without-amount", "missing_field",
     dumps(props(_P, drop=("amount",)))),
    ("missing", CANONICAL, "purchase-without-currency", "missing_field",
     dumps(props(_P, drop=("currency",)))),
    ("missing", CANONICAL, "purchase-without-order-id", "missing_field",
     dumps(props(_P, drop=("order_id",)))),
    ("missing", CANONICAL, "refund-without-amount", "missing_field",
     dumps(edit(_V, type="refund", properties={"currency": "EUR"}))),
    ("missing", CANONICAL, "review-without-rating", "missing_field",
     dumps(edit(_V, type="review", properties={"product_id": "p-1"}))),
    ("missing", CANONICAL, "referral-without-referred-user", "missing_field",
     dumps(edit(_V, type="referral", properties={}))),
    ("missing", CANONICAL, "unsubscribe-without-channel", "missing_field",
     dumps(edit(_V, type="unsubscribe", drop=("properties",)))),
    ("missing", SEGMENT, "segment-track-without-event", "missing_field",
     dumps(edit(_S, drop=("event",)))),
    ("missing", SEGMENT, "segment-without-message-id", "missing_field",
     dumps(edit(_S, drop=("messageId",)))),
    ("missing", SEGMENT, "segment-without-call-type", "missing_field",
     dumps(edit(_S, drop=("type",)))),
    ("missing", SEGMENT, "segment-without-user", "missing_field",
     dumps(edit(_S, drop=("userId",)))),
    ("missing", SEGMENT, "segment-user-ids-null", "schema_violation",
     dumps(edit(_S, userId=None, anonymousId=None))),
    ("missing", SEGMENT, "segment-without-time", "missing_field",
     dumps(edit(_S, drop=("timestamp",)))),
    ("missing", SEGMENT, "segment-order-without-amount", "missing_field",
     dumps(props(_O, drop=("revenue", "products")))),
    ("missing", SEGMENT, "segment-product-without-price", "missing_field",
     dumps(props(_O, drop=("revenue",), products=[{"product_id": "p-1", "quantity": 1}]))),
    ("missing", SEGMENT, "segment-order-without-order-id", "missing_field",
     dumps(props(_O, drop=("order_id",)))),
    # extra: fields the canonical contract does not have (a closed object at the top)
    ("extra", CANONICAL, "unknown-top-level-field", "schema_violation", dumps(edit(_V, extra=1))),
    ("extra", CANONICAL, "amount-at-top-level", "schema_violation",
     dumps(edit(_P, amount=25.0))),
    ("extra", CANONICAL, "segment-field-in-canonical", "schema_violation",
     dumps(edit(_V, messageId="m-1"))),
    ("extra", CANONICAL, "camel-case-twin", "schema_violation", dumps(edit(_V, userId="u-1"))),
    ("extra", SEGMENT, "segment-canonical-time-field-only", "missing_field",
     dumps(edit(_S, drop=("timestamp",), occurred_at="2026-01-10T09:01:00Z"))),
    ("extra", SEGMENT, "segment-canonical-user-field-only", "missing_field",
     dumps(edit(_S, drop=("userId",), user_id="u-2"))),
    # utf8: bytes that are not UTF-8, and escapes that are not text
    ("utf8", CANONICAL, "ff-in-user-id", "invalid_utf8", swap(_V, b'"u-1"', b'"u-\xff1"')),
    ("utf8", CANONICAL, "latin-1-text", "invalid_utf8", swap(_P, "Müller".encode(), b"M\xfcller")),
    ("utf8", CANONICAL, "overlong-slash", "invalid_utf8", swap(_V, b"/shoes", b"\xc0\xafshoes")),
    ("utf8", CANONICAL, "encoded-surrogate", "invalid_utf8", swap(_V, b"/shoes", b"\xed\xa0\x80")),
    ("utf8", CANONICAL, "beyond-u10ffff", "invalid_utf8", swap(_V, b"/shoes", b"\xf4\x90\x80\x80")),
    ("utf8", CANONICAL, "escaped-lone-surrogate", "not_json",
     swap(_V, b'"bad-e2"', b'"bad-\\ud800"')),
    ("utf8", SEGMENT, "segment-fe-in-user-id", "invalid_utf8", swap(_S, b'"u-2"', b'"u-\xfe2"')),
    ("utf8", SEGMENT, "segment-cut-character-in-name", "invalid_utf8",
     swap(_S, b"Product Viewed", "Produkt angesehen ü".encode()[:-1])),
    ("utf8", SEGMENT, "segment-escaped-lone-low-surrogate", "not_json",
     swap(_S, b'"p-1"', b'"p-\\udc00"')),
    # time: no zone, not RFC 3339, not a calendar date, or not a plausible time
    ("time", CANONICAL, "no-zone", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10T10:05:00"))),
    ("time", CANONICAL, "date-only", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10"))),
    ("time", CANONICAL, "space-separator", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10 10:05:00Z"))),
    ("time", CANONICAL, "offset-without-colon", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10T10:05:00+0100"))),
    ("time", CANONICAL, "zone-name-suffix", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10T10:05:00+01:00[Europe/Berlin]"))),
    ("time", CANONICAL, "february-30", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-02-30T10:05:00Z"))),
    ("time", CANONICAL, "hour-24", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2026-01-10T24:00:00Z"))),
    ("time", CANONICAL, "words", "invalid_timestamp", dumps(edit(_V, occurred_at="yesterday"))),
    ("time", CANONICAL, "empty", "invalid_timestamp", dumps(edit(_V, occurred_at=""))),
    ("time", CANONICAL, "year-1", "invalid_timestamp",
     dumps(edit(_V, occurred_at="0001-01-01T00:00:00Z"))),
    ("time", CANONICAL, "year-9999", "invalid_timestamp",
     dumps(edit(_V, occurred_at="9999-12-31T23:59:59Z"))),
    ("time", CANONICAL, "unix-epoch", "invalid_timestamp",
     dumps(edit(_V, occurred_at="1970-01-01T00:00:00Z"))),
    ("time", CANONICAL, "year-1900", "invalid_timestamp",
     dumps(edit(_P, occurred_at="1900-01-01T00:00:00+01:00"))),
    ("time", CANONICAL, "just-before-1990", "invalid_timestamp",
     dumps(edit(_V, occurred_at="1989-12-31T23:59:59Z"))),
    ("time", CANONICAL, "year-2100", "invalid_timestamp",
     dumps(edit(_V, occurred_at="2100-01-01T00:00:00Z"))),
    ("time", SEGMENT, "segment-no-zone", "invalid_timestamp",
     dumps(edit(_S, timestamp="2026-01-10T09:01:00"))),
    ("time", SEGMENT, "segment-year-1", "invalid_timestamp",
     dumps(edit(_S, timestamp="0001-01-01T00:00:00.000Z"))),
    ("time", SEGMENT, "segment-original-year-9999", "invalid_timestamp",
     dumps(edit(_S, drop=("timestamp",), originalTimestamp="9999-12-31T23:59:59Z"))),
    ("time", SEGMENT, "segment-sent-at-no-zone", "invalid_timestamp",
     dumps(edit(_S, drop=("timestamp",), sentAt="2026-01-10T09:01:00.5"))),
    ("time", SEGMENT, "segment-null-time-beside-sent-at", "invalid_timestamp",
     dumps(edit(_S, timestamp=None, sentAt="2026-01-10T09:01:00Z"))),
    ("time", SEGMENT, "segment-unix-epoch", "invalid_timestamp",
     dumps(edit(_O, timestamp="1970-01-01T00:00:00Z"))),
    # amount: negative or absurd amounts (a refund is its own type, with a positive amount)
    ("amount", CANONICAL, "negative-purchase", "invalid_amount", dumps(props(_P, amount=-25))),
    ("amount", CANONICAL, "negative-cent", "invalid_amount", dumps(props(_P, amount=-0.01))),
    ("amount", CANONICAL, "negative-refund", "invalid_amount",
     dumps(edit(_P, type="refund", properties={"amount": -10, "currency": "EUR"}))),
    ("amount", CANONICAL, "over-1e15", "invalid_amount", dumps(props(_P, amount=1e16))),
    ("amount", CANONICAL, "huge-integer", "invalid_amount",
     swap(_P, b"25.0", b"123456789012345678901234567890")),
    ("amount", SEGMENT, "segment-negative-revenue", "invalid_amount",
     dumps(props(_O, revenue=-30))),
    ("amount", SEGMENT, "segment-negative-total-text", "invalid_amount",
     dumps(props(_O, drop=("revenue",), total="-5"))),
    ("amount", SEGMENT, "segment-negative-price", "invalid_amount",
     dumps(props(_O, drop=("revenue",), products=[{"price": -1, "quantity": 1}]))),
    ("amount", SEGMENT, "segment-negative-quantity", "invalid_amount",
     dumps(props(_O, drop=("revenue",), products=[{"price": 5, "quantity": -2}]))),
    ("amount", SEGMENT, "segment-underscored-number", "invalid_amount",
     dumps(props(_O, revenue="1_000"))),
    ("amount", SEGMENT, "segment-decimal-comma", "invalid_amount",
     dumps(props(_O, revenue="12,50"))),
    ("amount", SEGMENT, "segment-arabic-indic-digits", "invalid_amount",
     dumps(props(_O, revenue="١٢"))),
    ("amount", SEGMENT, "segment-currency-sign", "invalid_amount", dumps(props(_O, revenue="$30"))),
    ("amount", SEGMENT, "segment-over-1e15", "invalid_amount", dumps(props(_O, revenue=1e16))),
    ("amount", SEGMENT, "segment-products-overflow-the-limit", "invalid_amount",
     dumps(props(_O, drop=("revenue",), products=[{"price": 9e14, "quantity": 9e14}]))),
    # currency: not an ISO 4217 code of money a shop takes
    ("currency", CANONICAL, "lower-case", "unknown_currency", dumps(props(_P, currency="eur"))),
    ("currency", CANONICAL, "made-up", "unknown_currency", dumps(props(_P, currency="XYZ"))),
    ("currency", CANONICAL, "word", "unknown_currency", dumps(props(_P, currency="EURO"))),
    ("currency", CANONICAL, "sign", "unknown_currency", dumps(props(_P, currency="€"))),
    ("currency", CANONICAL, "empty", "unknown_currency", dumps(props(_P, currency=""))),
    ("currency", CANONICAL, "no-currency-code", "unknown_currency",
     dumps(props(_P, currency="XXX"))),
    ("currency", CANONICAL, "testing-code", "unknown_currency", dumps(props(_P, currency="XTS"))),
    ("currency", CANONICAL, "fund-code", "unknown_currency", dumps(props(_P, currency="USN"))),
    ("currency", CANONICAL, "crypto-ticker", "unknown_currency", dumps(props(_P, currency="BTC"))),
    ("currency", SEGMENT, "segment-lower-case", "unknown_currency",
     dumps(props(_O, currency="usd"))),
    ("currency", SEGMENT, "segment-gold", "unknown_currency", dumps(props(_O, currency="XAU"))),
    ("currency", SEGMENT, "segment-made-up", "unknown_currency", dumps(props(_O, currency="ABC"))),
    # duplicate_keys: one key twice in one object; which value was meant is unknowable
    ("duplicate_keys", CANONICAL, "event-id-twice", "duplicate_keys",
     swap(_V, b'"event_id":"bad-e2"', b'"event_id":"bad-e2","event_id":"bad-e3"')),
    ("duplicate_keys", CANONICAL, "user-id-twice-same-value", "duplicate_keys",
     swap(_V, b'"user_id":"u-1"', b'"user_id":"u-1","user_id":"u-1"')),
    ("duplicate_keys", CANONICAL, "type-twice", "duplicate_keys",
     swap(_P, b'"type":"purchase"', b'"type":"page_view","type":"purchase"')),
    ("duplicate_keys", CANONICAL, "amount-twice", "duplicate_keys",
     swap(_P, b'"amount":25.0', b'"amount":25.0,"amount":2500')),
    ("duplicate_keys", CANONICAL, "escaped-twin-key", "duplicate_keys",
     swap(_P, b'"amount":25.0', b'"amount":25.0,"\\u0061mount":2500')),
    ("duplicate_keys", CANONICAL, "pretty-printed-twice", "duplicate_keys",
     (b'{\n  "event_id": "bad-e2",\n  "user_id": "u-1",\n  "user_id": "u-9",\n'
      b'  "type": "page_view",\n  "occurred_at": "2026-01-10T10:05:00Z"\n}')),
    ("duplicate_keys", SEGMENT, "segment-message-id-twice", "duplicate_keys",
     swap(_S, b'"messageId":"bad-m2"', b'"messageId":"bad-m2","messageId":"bad-m3"')),
    ("duplicate_keys", SEGMENT, "segment-call-type-twice", "duplicate_keys",
     swap(_S, b'"type":"track"', b'"type":"identify","type":"track"')),
    ("duplicate_keys", SEGMENT, "segment-revenue-twice", "duplicate_keys",
     swap(_O, b'"revenue":30.0', b'"revenue":30.0,"revenue":3000.0')),
    ("duplicate_keys", SEGMENT, "segment-price-twice", "duplicate_keys",
     swap(_O, b'"price":15.0', b'"price":15.0,"price":1.0')),
    # type: an event type, or a Segment call, that journey does not take
    ("type", CANONICAL, "unknown", "unknown_type", dumps(edit(_V, type="teleport"))),
    ("type", CANONICAL, "capitalised", "unknown_type", dumps(edit(_V, type="Page_View"))),
    ("type", CANONICAL, "trailing-space", "unknown_type", dumps(edit(_V, type="page_view "))),
    ("type", CANONICAL, "segment-only-other", "unknown_type", dumps(edit(_V, type="other"))),
    ("type", CANONICAL, "empty", "unknown_type", dumps(edit(_V, type=""))),
    ("type", CANONICAL, "null", "unknown_type", dumps(edit(_V, type=None))),
    ("type", SEGMENT, "segment-batch", "unsupported_segment_call",
     dumps({"type": "batch", "messageId": "bad-m4", "batch": [_S]})),
    ("type", SEGMENT, "segment-capitalised-track", "unsupported_segment_call",
     dumps(edit(_S, type="Track"))),
    ("type", SEGMENT, "segment-capitalised-identify", "unsupported_segment_call",
     dumps(edit(_I, type="Identify"))),
    # identify, alias and group: journey's contracts for them
    ("missing", SEGMENT, "identify-without-user", "missing_field",
     dumps(edit(_I, drop=("userId", "anonymousId")))),
    ("wrong_type", SEGMENT, "identify-user-ids-null", "schema_violation",
     dumps(edit(_I, userId=None))),
    ("missing", SEGMENT, "identify-without-message-id", "missing_field",
     dumps(edit(_I, drop=("messageId",)))),
    ("missing", SEGMENT, "identify-without-time", "missing_field",
     dumps(edit(_I, drop=("timestamp",)))),
    ("missing", SEGMENT, "alias-without-previous-id", "missing_field",
     dumps(edit(_A, drop=("previousId",)))),
    ("missing", SEGMENT, "alias-without-user-id", "missing_field",
     dumps(edit(_A, drop=("userId",)))),
    ("missing", SEGMENT, "group-without-group-id", "missing_field",
     dumps(edit(_G, drop=("groupId",)))),
    ("wrong_type", SEGMENT, "identify-traits-list", "schema_violation",
     dumps(edit(_I, traits=["email"]))),
    ("wrong_type", SEGMENT, "identify-email-object", "schema_violation",
     dumps(edit(_I, traits={"email": {"primary": "ada@example.com"}}))),
    ("wrong_type", SEGMENT, "identify-unsubscribed-text", "schema_violation",
     dumps(edit(_I, traits={"unsubscribed": "yes"}))),
    ("wrong_type", SEGMENT, "identify-subscriptions-object", "schema_violation",
     dumps(edit(_I, context={"messaging_subscriptions": {"type": "EMAIL"}}))),
    ("wrong_type", SEGMENT, "alias-previous-id-number", "schema_violation",
     dumps(edit(_A, previousId=17))),
    ("wrong_type", SEGMENT, "alias-previous-id-empty", "schema_violation",
     dumps(edit(_A, previousId=""))),
    ("wrong_type", SEGMENT, "group-id-object", "schema_violation",
     dumps(edit(_G, groupId={"id": "acme"}))),
    ("huge", SEGMENT, "identify-anonymous-id-over-200", "schema_violation",
     dumps(edit(_I, anonymousId="a" * 201))),
    ("time", SEGMENT, "identify-no-zone", "invalid_timestamp",
     dumps(edit(_I, timestamp="2026-01-10T09:02:00.000"))),
    ("time", SEGMENT, "alias-year-1", "invalid_timestamp",
     dumps(edit(_A, timestamp="0001-01-01T00:00:00Z"))),
    ("duplicate_keys", SEGMENT, "identify-user-id-twice", "duplicate_keys",
     swap(_I, b'"userId":"u-2"', b'"userId":"u-2","userId":"u-3"')),
]

CASES: tuple[Case, ...] = tuple(
    Case(f"{category}/{name}", raw, reason, kind, category)
    for category, kind, name, reason, raw in _CASES)

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
    ("time", CANONICAL, "earliest-time", dumps(edit(_V, occurred_at="1990-01-01T00:00:00Z"))),
    ("time", CANONICAL, "leap-second", dumps(edit(_V, occurred_at="2016-12-31T23:59:60Z"))),
    ("time", SEGMENT, "segment-sent-at-only", dumps(edit(_S, drop=("timestamp",),
                                                         sentAt="2026-01-10T09:01:00Z"))),
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
    ("time", SEGMENT, "identify-original-timestamp-only",
     dumps(edit(_I, drop=("timestamp",), originalTimestamp="2026-01-10T09:02:00.000Z"))),
])
