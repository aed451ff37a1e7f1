"""The decoder on Segment input: calls mapped onto user events, and those it refuses."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import schemas
from streams.core import decode as dec
from streams.core.decode import decode, to_object
from streams.core.event import OTHER, Event
from streams.core.segment_batch import batch_calls
from tests.support.inputs import at, line, rejected, track

SEGMENT = schemas.load("segment-track")["examples"]


def test_segment_examples_decode_to_the_expected_events() -> None:
    got = [decode(line(e)) for e in SEGMENT]
    assert got[0] == Event(
        "ajs-3f1c0d2e8b", "u-42", "purchase", at(2024, 5, 3, 16, 21, 7) + 0.118, None,
        amount=59.9,
        currency="EUR", order_id="o-981", source="segment",
        properties={**SEGMENT[0]["properties"], "amount": 59.9, "timezone": "Europe/Berlin",
                    "segment_event": "Order Completed"})
    # a Segment time's offset places the instant; it is not the user's zone
    assert got[1] == Event("ajs-77aa01", "a-9c1", "page_view", at(2024, 5, 3, 16, 2, 11), None,
                           source="segment", properties={"path": "/shoes", "title": "Shoes"})
    assert got[2] == Event("ios-1b2c3d", "u-42", "review", at(2024, 5, 6, 18, 15), None,
                           rating=2,
                           source="segment", properties={
                               "product_id": "p-17", "review_id": "r-5", "rating": 2,
                               "segment_event": "Product Reviewed"})
    assert got[3] == Event("and-0f0f", "u-7", "page_view", at(2024, 5, 9, 13, 40), None,
                           source="segment")


@pytest.mark.parametrize("name, etype", sorted(dec.SEGMENT_EVENTS.items()))
def test_segment_event_names_map(name: str, etype: str) -> None:
    props: dict[str, Any] = {"order_id": "o-1", "total": 10, "rating": "4"}
    got = decode(line(track(name, **props)))
    assert isinstance(got, Event), got
    assert got.type == etype and got.properties["segment_event"] == name


def test_unknown_track_names_are_other_activity() -> None:
    got = decode(line(track("Level Completed", level=3)))
    assert isinstance(got, Event) and got.type == OTHER
    assert got.properties == {"level": 3, "segment_event": "Level Completed"}
    assert dec._validator(True)(to_object(got))  # valid, with "other" admitted


@pytest.mark.parametrize("props, amount", [
    ({"revenue": 25, "total": 27.5}, 25.0),
    ({"total": 27.5}, 27.5),
    ({"revenue": "19.90"}, 19.9),
    ({"products": [{"price": 19, "quantity": 1}, {"price": 3, "quantity": 2}]}, 25.0),
    ({"products": [{"price": "4.5"}]}, 4.5),
    # subtotal and value only when nothing above says how much
    ({"subtotal": 22, "value": 30}, 22.0),
    ({"value": "30.5"}, 30.5),
    ({"products": [{"price": 4}], "subtotal": 22}, 4.0),
    ({"products": [{"name": "no price"}], "value": 9}, 9.0),
    ({"revenue": 25, "subtotal": 22, "value": 30}, 25.0),
])
def test_segment_order_amount(props: dict[str, Any], amount: float) -> None:
    got = decode(line(track("Order Completed", order_id="o-1", **props)))
    assert isinstance(got, Event) and got.amount == pytest.approx(amount)
    assert got.currency == "USD"  # the Segment default when none is given


@pytest.mark.parametrize("name, props, reason", [
    ("Order Completed", {"revenue": -5}, "invalid_amount"),
    ("Order Refunded", {"total": "lots"}, "invalid_amount"),
    ("Order Refunded", {"products": [{"price": 3, "quantity": -1}]}, "invalid_amount"),
    # (an Order Refunded with only its order id is a full refund: test_full_refund.py)
    ("Order Completed", {}, "missing_field"),
    ("Order Refunded", {"products": [{"name": "no price"}]}, "missing_field"),
    ("Order Refunded", {"total": 5, "currency": "dollars"}, "unknown_currency"),
    ("Order Completed", {"value": -3}, "invalid_amount"),
    ("Order Completed", {"products": [{"name": "no price"}], "subtotal": "n/a"},
     "invalid_amount"),
])
def test_segment_order_problems(name: str, props: dict[str, Any], reason: str) -> None:
    got = rejected(decode(line(track(name, order_id="o-1", **props))), reason)
    assert got.event_id == "m-1" and got.user_id == "u-1"


@pytest.mark.parametrize("value", [7.5, 0, True, "n/a"])
def test_a_refund_with_its_order_id_and_a_value_is_still_a_full_refund(value: Any) -> None:
    # subtotal and value are read on orders only: a refund stays as it was before
    got = decode(line(track("Order Refunded", order_id="o-1", value=value)))
    assert isinstance(got, Event) and got.type == "refund"
    assert got.amount is None and got.order_id == "o-1"


@pytest.mark.parametrize("props", [{"revenue": -5}, {"total": "-5.0"},
                                   {"products": [{"price": 2}], "revenue": "-5"}])
def test_a_refund_written_as_money_going_back_is_that_amount(props: dict[str, Any]) -> None:
    got = decode(line(track("Order Refunded", order_id="o-1", **props)))
    assert isinstance(got, Event) and got.type == "refund" and got.amount == 5.0


def test_segment_channels() -> None:
    cases = {"Email Opened": "email", "Email Link Clicked": "email",
             "Push Notification Tapped": "app_push", "Unsubscribed": "email"}
    for name, channel in cases.items():
        got = decode(line(track(name, channel="web")))
        assert isinstance(got, Event) and got.channel == channel, name
    got = decode(line(track("Unsubscribed", channel="sms")))
    assert isinstance(got, Event) and got.channel == "sms"


def test_segment_ids_times_and_zones() -> None:
    call = track("Product Viewed")
    call.update(userId=None, anonymousId="a-1", originalTimestamp="2024-05-03T18:00:00+02:00",
                sentAt="2024-05-03T18:00:05+02:00", context={"timezone": "America/New_York"})
    del call["timestamp"]
    got = decode(line(call))
    assert isinstance(got, Event)
    assert (got.user_id, got.occurred_at, got.utc_offset_min) == ("a-1", at(2024, 5, 3, 16), None)
    assert got.properties["timezone"] == "America/New_York"
    for fixed in ("GMT+0530", "GMT+05:30"):  # RudderStack's JavaScript SDK; Android
        call["context"] = {"timezone": fixed}
        got = decode(line(call))
        assert isinstance(got, Event) and got.properties["timezone"] == fixed
    call["context"] = {"timezone": "not a zone!"}  # trackers sometimes send junk: ignored
    got = decode(line(call))
    assert isinstance(got, Event) and "timezone" not in got.properties
    call["properties"] = {"timezone": "Europe/Paris"}
    got = decode(line(call))
    assert isinstance(got, Event) and got.properties["timezone"] == "Europe/Paris"
    call["properties"] = {"timezone": 7}
    got = decode(line(call))
    assert isinstance(got, Event) and "timezone" not in got.properties


@pytest.mark.parametrize("change, reason", [
    ({"userId": None}, "missing_field"),
    ({"userId": ""}, "schema_violation"),
    ({"timestamp": None}, "missing_field"),
    ({"timestamp": "2024-05-03 16:21:07Z"}, "invalid_timestamp"),
    ({"event": None}, "missing_field"),
    ({"messageId": None}, "missing_field"),
    ({"properties": "x"}, "schema_violation"),
])
def test_segment_shape_errors(change: dict[str, Any], reason: str) -> None:
    call = {k: v for k, v in {**track("Product Viewed"), **change}.items() if v is not None}
    if "userId" in change and change["userId"] == "":
        call["userId"] = ""
    rejected(decode(line(call)), reason)


def test_page_and_screen_calls_are_page_views() -> None:
    for call in ("page", "screen"):
        got = decode(line({"type": call, "name": "Home", "messageId": "m", "userId": "u",
                           "timestamp": "2024-05-03T16:21:07Z"}))
        assert isinstance(got, Event) and got.type == "page_view"


# --- what real libraries send that the Spec's examples do not --------------------------------

_AT = at(2024, 5, 3, 16, 21, 7)


@pytest.mark.parametrize("times, when", [
    ({"timestamp": None, "sentAt": "2024-05-03T16:21:07Z"}, _AT),
    ({"timestamp": "2024-05-03T16:21:07Z", "originalTimestamp": None}, _AT),
    ({"timestamp": "2024-05-03T16:21:07Z", "sentAt": None}, _AT),
    ({"timestamp": None, "originalTimestamp": None, "sentAt": "2024-05-03T16:21:07Z"}, _AT),
])
def test_a_null_time_beside_a_given_one_is_no_time(times: dict[str, Any], when: float) -> None:
    """analytics-java through a serializeNulls() Gson writes "sentAt": null on each call."""
    for call in ({**track("Product Viewed"), **times},
                 {"type": "identify", "messageId": "m-1", "userId": "u-1", **times}):
        if "timestamp" not in times:
            del call["timestamp"]
        got = decode(line(call))
        assert isinstance(got, Event) and got.occurred_at == when, got


def test_null_objects_are_none() -> None:
    """The same Gson writes "context": null and "properties": null where none was set."""
    nulls = {"context": None, "properties": None, "integrations": None}
    order = {**track("Order Completed"), **nulls, "properties": {"order_id": "o", "total": 5}}
    got = decode(line(order))
    assert isinstance(got, Event) and got.amount == 5.0
    got = decode(line({**track("Product Viewed"), **nulls}))
    assert isinstance(got, Event) and got.properties == {"segment_event": "Product Viewed"}
    for call in ({"type": "identify", "traits": None}, {"type": "group", "groupId": "g"},
                 {"type": "alias", "previousId": "a"}):
        got = decode(line({**call, "messageId": "m", "userId": "u", **nulls,
                           "timestamp": "2024-05-03T16:21:07Z"}))
        assert isinstance(got, Event), got
    rejected(decode(line({**track("Product Viewed"), "context": [1]})), "schema_violation")


def test_null_times_alone_are_a_missing_time() -> None:
    call = {**track("Product Viewed"), "timestamp": None, "sentAt": None}
    got = rejected(decode(line(call)), "missing_field")
    assert "timestamp, originalTimestamp, sentAt" in got.message


@pytest.mark.parametrize("text, when", [
    ("2024-05-03T16:21:07+0000", _AT),
    ("2024-05-03T16:21:07.118+0000", _AT + 0.118),
    ("2024-05-03T21:51:07+0530", _AT),
    ("2024-05-03T08:21:07-0800", _AT),
    ("2024-05-03T18:21:07+02", _AT),
    ("2024-05-03T18:21:07.5-00", at(2024, 5, 3, 18, 21, 7) + 0.5),
    # no offset: UTC, as Segment's API reads it (.NET's DateTime.ToString("o"), Kind
    # Unspecified; analytics_flutter before 1.1)
    ("2024-05-03T16:21:07.0000000", _AT),
    ("2024-05-03T16:21:07", _AT),
])
def test_iso_8601_times_are_read_for_segment(text: str, when: float) -> None:
    for field in ("timestamp", "originalTimestamp", "sentAt"):
        call = {k: v for k, v in track("Product Viewed").items() if k != "timestamp"}
        got = decode(line({**call, field: text}))
        assert isinstance(got, Event) and got.occurred_at == pytest.approx(when), (field, got)
        assert got.utc_offset_min is None  # a Segment stamp's offset is never the user's
    alias = decode(line({"type": "alias", "messageId": "m", "userId": "u", "previousId": "a",
                         "timestamp": text}))
    assert isinstance(alias, Event) and alias.occurred_at == pytest.approx(when)


@pytest.mark.parametrize("text", [
    "2024-05-03T16:21:07+5", "2024-05-03T16:21:07+2400", "2024-05-03T16:21:07+0060",
    "2024-05-03T16:21:07+24", "2024-05-03T16:21:07+00000", "2024-05-03T16:21:07+0:00",
    "2024-05-03 16:21:07+0000", "2024-02-30T16:21:07+0000", "2024-05-03T24:00:00",
    "2024-05-03T16:21", "2024-05-03", "2024-05-03T16:21:07+02:00Z",
    "\uff12\uff10\uff12\uff14-05-03T16:21:07",  # full-width digits
])
def test_garbage_times_are_still_refused(text: str) -> None:
    got = rejected(decode(line({**track("Product Viewed"), "timestamp": text})),
                   "invalid_timestamp")
    assert got.message.startswith(f"timestamp {text!r} is not an ISO 8601 date-time")


def test_a_mended_time_is_checked_and_named_as_sent() -> None:
    got = rejected(decode(line({**track("Product Viewed"),
                                "timestamp": "1970-01-01T00:33:44+0000"})), "invalid_timestamp")
    assert got.message.startswith("timestamp '1970-01-01T00:33:44+0000' is not a plausible")
    got = rejected(decode(line({"type": "identify", "messageId": "m", "userId": "u",
                                "timestamp": "1970-01-01T00:33:44"})), "invalid_timestamp")
    assert got.message.startswith("timestamp '1970-01-01T00:33:44' is not a plausible")
    # another field's fault is still found in a call whose time was mended
    rejected(decode(line({**track("Product Viewed"), "timestamp": "2024-05-03T16:21:07+0000",
                          "properties": "x"})), "schema_violation")


def test_the_canonical_event_stays_strict_rfc_3339() -> None:
    for text in ("2024-05-03T16:21:07+0000", "2024-05-03T16:21:07", "2024-05-03T18:21:07+02"):
        rejected(decode(line({"event_id": "e", "user_id": "u", "type": "page_view",
                              "occurred_at": text})), "invalid_timestamp")
        assert schemas.parse_date_time(text) is None


def test_the_spec_v1_order_id_key_names_the_order() -> None:
    """analytics-go's SetOrderId and analytics-android's putOrderId write ``orderId``."""
    got = decode(line(track("Order Completed", orderId="o-7", revenue=10.0, currency="USD")))
    assert isinstance(got, Event), got
    assert (got.type, got.order_id, got.amount, got.currency) == ("purchase", "o-7", 10.0, "USD")
    both = decode(line(track("Order Completed", order_id="o-1", orderId="o-7", total=1)))
    assert isinstance(both, Event) and both.order_id == "o-1"  # the v2 key wins
    refund = decode(line(track("Order Refunded", orderId=17, total=4)))
    assert isinstance(refund, Event) and refund.order_id == "17"


@pytest.mark.parametrize("name, etype", [
    ("Completed Order", "purchase"), ("Viewed Product", "product_view"),
    ("Added Product", "add_to_cart"), ("Removed Product", "remove_from_cart"),
    ("Viewed Product Category", "page_view")])
def test_spec_v1_event_names_map(name: str, etype: str) -> None:
    got = decode(line(track(name, orderId="o-1", total=3)))
    assert isinstance(got, Event) and got.type == etype, got


def test_integer_ids_are_read_as_their_text() -> None:
    """analytics-ruby and analytics-php pass a numeric application id through."""
    call = {**track("Product Viewed"), "userId": 42, "anonymousId": 7}
    got = decode(line(call))
    assert isinstance(got, Event) and got.user_id == "42"
    anonymous = decode(line({**call, "userId": None}))
    assert isinstance(anonymous, Event) and anonymous.user_id == "7"
    alias = decode(line({"type": "alias", "messageId": "m-2", "userId": 42, "previousId": 7,
                         "timestamp": "2024-05-03T16:21:07.118+00:00"}))
    assert isinstance(alias, Event) and (alias.user_id, alias.properties) == (
        "42", {"previous_id": "7"})
    for bad in (42.5, True):
        rejected(decode(line({**call, "userId": bad, "anonymousId": None})), "schema_violation")


def test_an_alias_without_previous_id_stitches_the_anonymous_id() -> None:
    """analytics-swift's alias(newId:) for a user it never identified: no previousId."""
    call = {"type": "alias", "messageId": "6F1C", "anonymousId": "a-9", "userId": "u-1",
            "timestamp": "2024-05-03T16:21:07.118Z"}
    for previous in ({}, {"previousId": None}, {"previousId": ""}):
        got = decode(line({**call, **previous}))
        assert isinstance(got, Event) and got.properties == {"previous_id": "a-9"}, got
    kept = decode(line({**call, "previousId": "u-0"}))
    assert isinstance(kept, Event) and kept.properties == {"previous_id": "u-0"}
    rejected(decode(line({**call, "anonymousId": None})), "schema_violation")
    rejected(decode(line({k: v for k, v in call.items() if k != "anonymousId"})),
             "missing_field")


def test_a_batch_envelope_is_refused_whole_and_says_why() -> None:
    calls = [track("Product Viewed"), {**track("Order Completed", order_id="o", total=1),
                                       "messageId": "m-2"}]
    for envelope in ({"batch": calls, "sentAt": "2024-05-03T16:21:08.000Z", "writeKey": "k"},
                     {"messageId": "b-1", "sentAt": "2024-05-03T16:21:08Z", "batch": calls,
                      "context": {"library": {"name": "analytics-go", "version": "3.0.0"}}}):
        got = rejected(decode(line(envelope)), "unsupported_segment_call")
        assert "batch envelope" in got.message and "2 call(s)" in got.message
        assert rejected(dec.from_object(envelope), "unsupported_segment_call") == got


def test_a_batch_envelope_splits_into_its_calls_as_segment_would_take_them() -> None:
    """The envelope's sentAt for a call without one, its context under the call's own."""
    no_time = {k: v for k, v in track("Product Viewed").items() if k != "timestamp"}
    own = {**track("Order Completed", order_id="o", total=1), "messageId": "m-2",
           "context": {"timezone": "Europe/Paris"}, "sentAt": "2024-05-03T16:21:07.900Z"}
    body = line({"batch": [no_time, own, 7], "sentAt": "2024-05-03T16:21:08.000Z",
                 "context": {"timezone": "Asia/Tokyo", "locale": "ja-JP"}, "writeKey": "k"})
    calls = batch_calls(body, decode(body))
    assert calls is not None and len(calls) == 3
    first, second = (orjson.loads(c) for c in calls[:2])
    assert first["sentAt"] == "2024-05-03T16:21:08.000Z"
    assert first["context"] == {"timezone": "Asia/Tokyo", "locale": "ja-JP"}
    assert second["context"] == {"timezone": "Europe/Paris", "locale": "ja-JP"}
    assert second["sentAt"] == own["sentAt"]  # a call's own fields are kept
    got = decode(calls[0])
    assert isinstance(got, Event) and got.occurred_at == at(2024, 5, 3, 16, 21, 8)
    assert got.properties["timezone"] == "Asia/Tokyo"
    rejected(decode(calls[2]), "not_an_object")  # dead-lettered on its own
    # not an envelope: any other record, a rejected call, and a batch with a type
    for other in (line(track("Product Viewed")), line({**own, "type": "Track"}),
                  line({"type": "batch", "messageId": "b", "batch": [own]})):
        assert batch_calls(other, decode(other)) is None


# --- valid Segment input that journey used to refuse or misread ------------------------------

@pytest.mark.parametrize("name, props, code", [
    ("Order Completed", {"order_id": "o-1", "total": 5, "currency": "eur"}, "EUR"),
    ("Order Completed", {"order_id": "o-1", "revenue": "5", "currency": "Gbp"}, "GBP"),
    ("Order Refunded", {"order_id": "o-1", "total": 5, "currency": "usd"}, "USD"),
    ("Order Refunded", {"order_id": "o-1", "currency": "chf"}, "CHF"),  # a full refund
])
def test_a_lower_case_currency_is_its_code(name: str, props: dict[str, Any], code: str) -> None:
    """The e-commerce spec v2's own example sends ``currency: 'usd'``: a code in any case
    names the same currency, so a Segment order is not lost to the dead letters for it."""
    got = decode(line(track(name, **props)))
    assert isinstance(got, Event), got
    assert got.currency == code and got.properties["currency"] == code
    bad = rejected(decode(line(track(name, order_id="o-1", total=5, currency="abc"))),
                   "unknown_currency")
    assert "'abc'" in bad.message  # a code that is none is still named as sent


def test_a_null_time_zone_or_subscription_list_is_none() -> None:
    """A server library passes the application's context through: a user without a known
    zone is ``"timezone": null`` from Node, Python or Ruby, and that says nothing."""
    got = decode(line({**track("Product Viewed"), "context": {"timezone": None}}))
    assert isinstance(got, Event) and "timezone" not in got.properties, got
    identify = decode(line({"type": "identify", "messageId": "m-2", "userId": "u-1",
                            "anonymousId": "a-1", "timestamp": "2024-05-03T16:21:07Z",
                            "context": {"timezone": None, "messaging_subscriptions": None}}))
    assert isinstance(identify, Event), identify
    assert identify.properties == {"previous_id": "a-1"}
    rejected(decode(line({**track("Product Viewed"), "context": {"timezone": 7}})),
             "schema_violation")


@pytest.mark.parametrize("rating", [None, "", "  "])
def test_a_review_without_stars_is_activity(rating: Any) -> None:
    """The spec's Product Reviewed properties are all optional (a text-only review, or a
    null written by Gson's serializeNulls or Json.NET): it counts as activity, as a
    name journey does not map would, and is not dead-lettered."""
    for props in ({"product_id": "p-1", "review_body": "ok"},
                  {"product_id": "p-1", "rating": rating}):
        got = decode(line(track("Product Reviewed", **props)))
        assert isinstance(got, Event), (props, got)
        assert (got.type, got.rating) == (OTHER, None)
        assert got.properties["segment_event"] == "Product Reviewed"


def test_a_whole_rating_written_with_a_fraction_is_read() -> None:
    """The spec types rating as a string: "4.0" is four stars, as the number 4.0 is."""
    for rating in ("4.0", " 4.00 ", 4.0):
        got = decode(line(track("Product Reviewed", rating=rating)))
        assert isinstance(got, Event) and got.rating == 4, (rating, got)
    for rating in ("five", "4.5", "6.0", "4.0e0"):
        rejected(decode(line(track("Product Reviewed", rating=rating))), "schema_violation")


@pytest.mark.parametrize("name, etype", [
    ("Clicked Product", "product_view"),  # v2's Product Clicked is aliased to it
    ("Started Order", "checkout_started"),  # v2's Checkout Started is aliased to it
    ("Wishlist Product Added to Cart", "add_to_cart"),  # moved from the wishlist to the cart
])
def test_spec_aliases_map(name: str, etype: str) -> None:
    got = decode(line(track(name, product_id="p-1")))
    assert isinstance(got, Event) and got.type == etype, got
