"""The decoder: canonical input to Events, and every way input is refused (Segment input:
test_segment.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from streams.core import decode as dec
from streams.core.decode import Rejection, decode, from_object, parse_timestamp, to_object
from streams.core.event import EVENT_TYPES, OTHER, Event
from tests.support.inputs import at, event, line, rejected

CANONICAL = schemas.load("user-event")["examples"]
SEGMENT = schemas.load("segment-track")["examples"]
DEAD_LETTER_REASONS = set(schemas.load("dead-letter")["properties"]["reason"]["enum"])


# --- canonical input ------------------------------------------------------------------------

def test_canonical_examples_decode_to_the_expected_events() -> None:
    got = [decode(line(e)) for e in CANONICAL]
    assert got[0] == Event(
        "evt-0001", "u-42", "purchase", at(2024, 5, 3, 16, 21, 7), 120, amount=59.9,
        currency="EUR", order_id="o-981", source="web-shop", properties=CANONICAL[0]["properties"])
    # a "Z" stamp says nothing of the user's local time: no offset
    assert got[1] == Event("evt-0002", "u-42", "page_view", at(2024, 5, 3, 16, 2, 11) + 0.25,
                           None, properties={"path": "/shoes"})
    assert got[2] == Event("evt-0003", "u-7", "signup", at(2024, 4, 28, 14), -300,
                           properties={"consent": ["email", "sms"], "referred_by": "u-42"})
    assert got[3] == Event("evt-0004", "u-7", "unsubscribe", at(2024, 5, 1, 12, 30), None,
                           channel="sms", properties={"channel": "sms"})
    assert got[4] == Event("evt-0005", "u-42", "review", at(2024, 5, 6, 18, 15), 120, rating=2,
                           properties={"rating": 2, "product_id": "p-17"})
    assert got[5] == Event("evt-0006", "u-42", "refund", at(2024, 5, 7, 8), 120, amount=59.9,
                           currency="EUR", order_id="o-981", properties=CANONICAL[5]["properties"])
    assert got[6] == Event("evt-0007", "u-42", "referral", at(2024, 5, 8, 9), 120,
                           referred_user_id="u-7", properties={"referred_user_id": "u-7"})
    assert isinstance(got[7], Event)
    assert got[7].type == "message_clicked" and got[7].channel == "email"


def test_str_bytes_bytearray_and_memoryview_decode_alike() -> None:
    raw = line(CANONICAL[0])
    expected = decode(raw)
    assert isinstance(expected, Event)
    assert decode(raw.decode()) == decode(bytearray(raw)) == decode(memoryview(raw)) == expected


def test_pretty_printed_input_is_fine() -> None:
    raw = json.dumps(CANONICAL[0], indent=2).encode()
    assert decode(raw) == decode(line(CANONICAL[0]))


def test_lifted_fields_come_only_from_types_that_define_them() -> None:
    got = decode(line(event(properties={"amount": 5, "channel": "fax", "rating": 9})))
    assert isinstance(got, Event)
    assert (got.amount, got.channel, got.rating) == (None, None, None)
    assert got.properties == {"amount": 5, "channel": "fax", "rating": 9}


def test_integral_amount_and_rating_are_normalised() -> None:
    got = decode(line(event(type="purchase", properties={
        "amount": 12, "currency": "EUR", "order_id": "o"})))
    assert isinstance(got, Event) and got.amount == 12.0 and isinstance(got.amount, float)
    got = from_object(event(type="review", properties={"rating": 4.0}))
    assert isinstance(got, Event) and got.rating == 4 and isinstance(got.rating, int)


def test_from_object_takes_parsed_json() -> None:
    got = from_object(dict(CANONICAL[0]))
    assert got == decode(line(CANONICAL[0]))
    rejected(from_object([1, 2]), "not_an_object")
    rejected(from_object(None), "not_an_object")


def test_parse_timestamp_requires_a_zone() -> None:
    assert parse_timestamp("2024-05-03T18:21:07+02:00") == (at(2024, 5, 3, 16, 21, 7), 120)
    assert parse_timestamp("2024-05-03T18:21:07") is None


def test_to_object_round_trips() -> None:
    for example in CANONICAL:
        got = decode(line(example))
        assert isinstance(got, Event)
        again = to_object(got)
        assert schemas.is_valid("user-event", again)
        assert decode(line(again)) == got


# --- one test per rejection reason ------------------------------------------------------------

def test_reasons_are_dead_letter_codes() -> None:
    assert set(dec.REASONS) == DEAD_LETTER_REASONS
    emitted = {v for k, v in vars(dec).items() if k.isupper() and isinstance(v, str)
               and v in DEAD_LETTER_REASONS}
    assert len(emitted) == 13  # all but the core's future_timestamp and too_late


@pytest.mark.parametrize("raw", [b"", b"{", b"{'a': 1}", b"{} {}", b"[1,]", b"nul"])
def test_not_json(raw: bytes) -> None:
    assert "not valid JSON" in rejected(decode(raw), "not_json").message


@pytest.mark.parametrize("raw", [b'{"amount": NaN}', b'{"amount": Infinity}',
                                 b'{"amount": -Infinity}'])
def test_nan_and_infinity_literals_are_not_json(raw: bytes) -> None:
    assert "NaN and Infinity" in rejected(decode(raw), "not_json").message


def test_non_text_input_is_not_json() -> None:
    rejected(decode(12345), "not_json")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw, kind", [(b"[]", "array"), (b"42", "number"), (b'"x"', "string"),
                                       (b"null", "null"), (b"true", "boolean")])
def test_not_an_object(raw: bytes, kind: str) -> None:
    assert kind in rejected(decode(raw), "not_an_object").message


@pytest.mark.parametrize("raw", [b'{"event_id": "\xff"}', b"\xed\xa0\x80", b"\xc3"])
def test_invalid_utf8(raw: bytes) -> None:
    assert "UTF-8" in rejected(decode(raw), "invalid_utf8").message


def test_unpaired_surrogate_in_text_input_is_invalid_utf8() -> None:
    rejected(decode('{"event_id": "\ud800"}'), "invalid_utf8")


def test_oversize_is_checked_before_parsing() -> None:
    big = b"x" * 70_000  # not JSON either, but too big is what matters first
    assert "70000" in rejected(decode(big), "oversize").message
    rejected(decode(big.decode()), "oversize")
    ok = line(event(properties={"pad": "y" * 300}))
    assert isinstance(decode(ok), Event)
    rejected(decode(ok, max_bytes=len(ok) - 1), "oversize")
    assert isinstance(decode(ok, max_bytes=len(ok)), Event)


def test_too_deep() -> None:
    def nested(depth: int) -> dict[str, Any]:
        props: Any = 1
        for _ in range(depth - 1):  # the event object is the first level
            props = {"k": props}
        return event(properties=props if isinstance(props, dict) else {})

    assert isinstance(decode(line(nested(32))), Event)
    got = rejected(decode(line(nested(33))), "too_deep")
    assert got.event_id == "e-1" and got.user_id == "u-1"
    assert isinstance(decode(line(nested(33)), max_depth=33), Event)
    rejected(decode(b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}"), "too_deep")


HEAD = b'{"event_id":"e","user_id":"u","type":"page_view","occurred_at":"2024-05-03T18:21:07Z",'


@pytest.mark.parametrize("raw", [
    HEAD.replace(b'"user_id"', b'"event_id":"f","user_id"') + b'"source":"x"}',
    HEAD + b'"properties":{"a":{"b":1,"b":"x:y"}}}',
    HEAD + b'"properties":{"a":1,"\\u0061":2}}',
    HEAD + b'"properties":{"a":"\\u003a","a":2}}',
    b'{ "event_id" : "e" , "user_id" : "u" , "user_id" : "v" }',
])
def test_duplicate_keys(raw: bytes) -> None:
    rejected(decode(raw), "duplicate_keys")


@pytest.mark.parametrize("props", [{"note": "a\\u003ab"}, {"colon": "x:y", "esc": "\\" + '"'},
                                   {"list": [{"a": 1}, {"a": 2}]}])
def test_look_alike_duplicates_are_not_duplicates(props: dict[str, Any]) -> None:
    raw = json.dumps(event(properties=props), indent=1, ensure_ascii=True).encode()
    assert isinstance(decode(raw), Event)


def test_missing_field() -> None:
    got = rejected(decode(line(event(occurred_at=None))), "missing_field")
    assert "occurred_at" in got.message and got.event_id == "e-1"
    got = rejected(decode(line(event(type="purchase"))), "missing_field")
    assert "properties.amount" in got.message
    got = rejected(decode(line(event(type="purchase", properties={
        "amount": 3, "currency": "EUR"}))), "missing_field")
    assert "properties.order_id" in got.message


def test_a_misspelt_required_field_is_named_beside_the_missing_one() -> None:
    obj = event(occurred_at=None)
    obj["ocurred_at"] = "2026-01-01T00:00:00Z"
    got = rejected(decode(line(obj)), "missing_field")
    assert got.message == ("missing field occurred_at; 'ocurred_at' is not a field: "
                           "did you mean occurred_at?")
    obj["when"] = obj.pop("ocurred_at")  # nothing like the missing name: no guess
    assert rejected(decode(line(obj)), "missing_field").message == "missing field occurred_at"


def test_a_misspelling_is_named_where_a_types_own_rule_finds_the_field_missing() -> None:
    # "properties" is required by the purchase rule, which names no other key
    obj = event(type="purchase")
    obj["propertie"] = {"amount": 3, "currency": "EUR", "order_id": "o1"}
    got = rejected(decode(line(obj)), "missing_field")
    assert got.message.endswith("; 'propertie' is not a field: did you mean properties?")
    # under properties any key is allowed: the near miss is offered, not called wrong
    obj = event(type="purchase", properties={"amont": 3, "currency": "EUR", "order_id": "o1"})
    got = rejected(decode(line(obj)), "missing_field")
    assert got.message == "missing field properties.amount; did you mean amount, not 'amont'?"
    obj = event(type="review", properties={"stars": 4})  # nothing close: no guess
    assert rejected(decode(line(obj)), "missing_field").message == \
        "missing field properties.rating"


def test_a_segment_body_without_type_and_message_id_is_told_what_it_lacks() -> None:
    """As posted to Segment's HTTP API: the endpoint names the call, so the body has no
    type, and Segment adds the messageId. journey needs both in the record."""
    body = {"userId": "u-1", "event": "Order Completed", "properties": {"revenue": 5},
            "timestamp": "2026-01-01T00:00:00Z"}
    got = rejected(decode(line(body)), "missing_field")
    assert "looks like a Segment call" in got.message and "messageId" in got.message
    assert got.user_id == "u-1"
    got = rejected(decode(line(event(occurred_at=None))), "missing_field")
    assert "Segment" not in got.message  # a canonical event is not told about Segment


def test_unknown_type() -> None:
    got = rejected(decode(line(event(type="teleport"))), "unknown_type")
    assert "'teleport'" in got.message and "page_view" in got.message
    rejected(decode(line(event(type="other"))), "unknown_type")  # Segment-only


@pytest.mark.parametrize("when", ["2024-05-03T18:21:07", "2024-05-03", "yesterday", 1714753267,
                                  "2024-02-30T10:00:00Z"])
def test_invalid_timestamp(when: Any) -> None:
    got = rejected(decode(line(event(occurred_at=when))), "invalid_timestamp")
    assert "occurred_at" in got.message


@pytest.mark.parametrize("amount", [-0.01, "12", None, True, [1]])
def test_invalid_amount(amount: Any) -> None:
    obj = event(type="purchase", properties={"amount": amount, "currency": "EUR",
                                             "order_id": "o"})
    assert "properties.amount" in rejected(decode(line(obj)), "invalid_amount").message


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf])
def test_non_finite_amount_from_parsed_objects(amount: float) -> None:
    obj = event(type="refund", properties={"amount": amount, "currency": "EUR"})
    rejected(from_object(obj), "invalid_amount")


@pytest.mark.parametrize("currency", ["eur", "EURO", "€", 978, "EU"])
def test_unknown_currency(currency: Any) -> None:
    obj = event(type="purchase", properties={"amount": 1, "currency": currency, "order_id": "o"})
    assert "ISO 4217" in rejected(decode(line(obj)), "unknown_currency").message


@pytest.mark.parametrize("obj, field", [
    (event(extra=1), "extra"),
    (event(user_id=""), "user_id"),
    (event(event_id="x" * 201), "event_id"),
    (event(type="review", properties={"rating": 6}), "rating"),
    (event(type="unsubscribe", properties={"channel": "fax"}), "channel"),
    (event(type="signup", properties={"consent": ["email", "pigeon"]}), "consent"),
    (event(properties={"timezone": "Mars/Olympus Mons"}), "timezone"),
    (event(properties=[1]), "properties"),
    (event(schema="journey.user-event/2"), "schema"),
])
def test_schema_violation_names_the_field(obj: dict[str, Any], field: str) -> None:
    assert field in rejected(decode(line(obj)), "schema_violation").message


@pytest.mark.parametrize("call", ["batch", "Track", "identity", "screenview"])
def test_unsupported_segment_call(call: str) -> None:
    got = rejected(decode(line({"type": call, "messageId": "m", "userId": "u",
                                "timestamp": "2024-05-03T16:21:07Z"})), "unsupported_segment_call")
    assert call in got.message and got.event_id == "m" and got.user_id == "u"
    assert "identify, alias and group" in got.message


# --- properties -------------------------------------------------------------------------------

REASONS = set(dec.REASONS)


def outcome_ok(result: Any) -> bool:
    return isinstance(result, Event) or (isinstance(result, Rejection)
                                         and result.reason in REASONS and bool(result.message))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decode_never_raises_on_bytes(raw: bytes) -> None:
    assert outcome_ok(decode(raw, max_bytes=200, max_depth=4))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_decode_never_raises_on_json_values(value: Any) -> None:
    assert outcome_ok(decode(orjson.dumps(value)))
    assert outcome_ok(from_object(value))


KEYS = st.sampled_from(["event_id", "user_id", "type", "occurred_at", "source", "properties",
                        "schema", "messageId", "userId", "anonymousId", "event", "timestamp",
                        "amount", "currency", "order_id", "rating", "channel", "timezone",
                        "referred_user_id", "consent", "revenue", "total", "products"])
VALUES = st.one_of(
    st.sampled_from([*EVENT_TYPES, "track", "page", "identify", "Order Completed",
                                         "2024-05-03T18:21:07+02:00", "2024-05-03T18:21:07",
                                         "EUR", "eur", "email", "fax", "Europe/Berlin", "", "5"]),
    st.integers(-3, 7), st.floats(allow_nan=True, allow_infinity=True), st.none(),
    st.lists(st.sampled_from(["email", "sms", "x"]), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, VALUES | st.dictionaries(KEYS, VALUES, max_size=6), max_size=8))
def test_from_object_never_raises_on_event_like_objects(obj: dict[str, Any]) -> None:
    assert outcome_ok(from_object(obj))


def valid_event() -> st.SearchStrategy[dict[str, Any]]:
    ids = st.text(min_size=1, max_size=20)
    when = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
                        timezones=st.sampled_from([UTC])).map(
        lambda d: d.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    extra = st.dictionaries(st.text(max_size=6).filter(lambda k: k not in (
        "timezone", "amount", "currency", "order_id", "rating", "channel", "referred_user_id",
        "consent", "referred_by")), st.integers(-2**63, 2**63 - 1) | st.text(max_size=5),
        max_size=3)
    by_type: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "purchase": st.fixed_dictionaries({"amount": st.floats(0, 1e6), "currency": st.just("EUR"),
                                           "order_id": ids}),
        "refund": st.fixed_dictionaries({"amount": st.integers(0, 500),
                                         "currency": st.just("JPY")},
                                        optional={"order_id": ids}),
        "review": st.fixed_dictionaries({"rating": st.integers(1, 5)}),
        "referral": st.fixed_dictionaries({"referred_user_id": ids}),
        "unsubscribe": st.fixed_dictionaries({"channel": st.sampled_from(["sms", "email"])}),
        "resubscribe": st.fixed_dictionaries({"channel": st.just("phone")}),
        "signup": st.fixed_dictionaries({}, optional={
            "consent": st.lists(st.sampled_from(["email", "app_push"])), "referred_by": ids}),
    }
    types = [t for t in EVENT_TYPES if t != OTHER]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        t = draw(st.sampled_from(types))
        props = {**draw(extra), **draw(by_type.get(t, st.fixed_dictionaries({})))}
        obj: dict[str, Any] = {"event_id": draw(ids), "user_id": draw(ids), "type": t,
               "occurred_at": draw(when)}
        if props or t in ("purchase", "refund", "review", "referral", "unsubscribe",
                          "resubscribe"):
            obj["properties"] = props
        if draw(st.booleans()):
            obj["source"] = draw(st.text(max_size=10))
        return obj
    return build()


@settings(max_examples=200, deadline=None)
@given(valid_event())
def test_every_valid_event_decodes_and_re_validates(obj: dict[str, Any]) -> None:
    assert schemas.is_valid("user-event", obj)
    got = decode(orjson.dumps(obj))
    assert isinstance(got, Event), got
    assert got.event_id == obj["event_id"] and got.type == obj["type"]
    schemas.validator("user-event")(to_object(got))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_event(), st.sampled_from(["drop", "set", "prop", "unprop"]), KEYS, VALUES)
def test_decoder_agrees_with_the_schema(obj: dict[str, Any], how: str, key: str,
                                        value: Any) -> None:
    """Mutate a valid event; the decoder's verdict must match the validator's."""
    props = dict(obj.get("properties", {}))
    if how == "drop":
        obj.pop(key, None)
    elif how == "set":
        obj[key] = value
    elif how == "prop":
        props[key] = value
        obj["properties"] = props
    else:
        props.pop(key, None)
        obj["properties"] = props
    valid = schemas.is_valid("user-event", obj)
    amount = props.get("amount")
    if valid and obj.get("type") in ("purchase", "refund") and isinstance(amount, float) \
            and not math.isfinite(amount):
        valid = False  # the schema cannot say "finite"; the decoder does
    got = from_object(obj)
    assert isinstance(got, Event) == valid, (obj, got)
    if valid:
        assert isinstance(got, Event)
        schemas.validator("user-event")(to_object(got))
