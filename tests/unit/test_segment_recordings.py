"""Recordings of Segment libraries (tests/support/recorded/) through the decoder and a
replay: every call taken, mapped to the right event, and each shopper stitched into one
user whose orders, spend and refunds are the recording's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.core.decode import decode
from streams.core.event import Event
from streams.core.limits import MAX_EVENT_BYTES_DEFAULT
from streams.core.timefmt import rfc3339
from streams.replay.sources import read_events
from tests.support.recordings import recording, replayed

LIBRARIES = ("analytics-next-1.84.1", "analytics-node-3.1.0", "analytics-swift-1.9.4",
             "analytics-ruby-2.5.0", "analytics-go-3.3.0", "analytics-java-3.5.4",
             "analytics-php-3.8.2", "analytics-dotnet-3.8.1", "analytics-kotlin-1.24.1",
             "analytics-csharp-2.6.0", "analytics-react-native-2.21.4",
             "analytics-android-4.11.4", "analytics-ios-4.1.8", "analytics-flutter-1.1.10",
             "analytics-python-2.4.0")
NEW = LIBRARIES[:-1]  # the python file has its own test in test_identity.py

# What each library's file must come to: (user, orders, net spend, refunds, funnel step,
# first seen) per user, the identity merges, and the repeated calls dropped.
OUTCOME: dict[str, tuple[list[tuple[str, int, float, int, str, str]], int, int]] = {
    "analytics-next-1.84.1": (
        [("cus_A81F2", 3, 159.0, 1, "advocate", "2026-09-01T17:02:11.204Z")], 1, 1),
    "analytics-node-3.1.0": (
        [("usr_7c2d91", 3, 132.5, 1, "advocate", "2026-09-03T09:14:03.120Z")], 1, 0),
    "analytics-swift-1.9.4": (
        [("user-5521", 2, 29.0, 1, "advocate", "2026-09-02T07:30:00.104Z"),
         ("user-6003", 1, 14.5, 0, "purchased", "2026-09-21T19:00:00.500Z")], 2, 0),
    "analytics-ruby-2.5.0": (
        [("1042", 3, 153.4, 1, "advocate", "2026-09-05T12:00:05.031Z")], 1, 0),
    "analytics-go-3.3.0": (
        [("c-40017", 3, 153.9, 1, "advocate", "2026-10-16T06:50:01.250Z")], 1, 0),
    "analytics-java-3.5.4": (
        [("cust-20931", 3, 163.9, 1, "advocate", "2026-09-07T18:02:44.310Z")], 1, 0),
    "analytics-php-3.8.2": (
        [("7781", 3, 128.9, 1, "advocate", "2026-09-12T08:15:02Z")], 1, 0),
    "analytics-dotnet-3.8.1": (
        [("u_5f3a9c", 3, 183.4, 1, "advocate", "2026-09-08T14:03:11.512Z")], 1, 0),
    "analytics-kotlin-1.24.1": (
        [("cli-88412", 3, 88.3, 1, "advocate", "2026-09-04T18:20:01.112Z")], 1, 0),
    "analytics-csharp-2.6.0": (
        [("acct_71c0e2", 3, 115.4, 1, "advocate", "2026-09-09T16:40:12.480Z")], 1, 0),
    "analytics-react-native-2.21.4": (
        [("bloom-50917", 3, 83.95, 1, "advocate", "2026-09-06T21:14:00.210Z")], 1, 0),
    "analytics-android-4.11.4": (
        [("kb-302114", 3, 113.4, 1, "advocate", "2026-09-10T06:45:00.050Z")], 1, 0),
    "analytics-ios-4.1.8": (
        [("pl_61c2a9", 3, 125.49, 1, "advocate", "2026-09-11T12:00:00.125Z")], 1, 0),
    "analytics-flutter-1.1.10": (
        [("mc-9031077", 3, 155.4, 1, "advocate", "2026-09-14T22:10:05.301Z")], 1, 0),
}

# Every order and refund of each file: (type, user, UTC time, amount, currency, order id).
MONEY: dict[str, list[tuple[str, str, str, float | None, str | None, str]]] = {
    "analytics-next-1.84.1": [
        ("purchase", "cus_A81F2", "2026-09-01T17:09:58.430Z", 78.9, "EUR", "ORD-51870"),
        ("purchase", "cus_A81F2", "2026-09-01T17:09:58.430Z", 78.9, "EUR", "ORD-51870"),
        ("purchase", "cus_A81F2", "2026-09-10T19:45:12.871Z", 80.1, "EUR", "ORD-52311"),
        ("refund", "cus_A81F2", "2026-09-14T08:12:40.511Z", 29.0, "EUR", "ORD-51870"),
        ("purchase", "cus_A81F2", "2026-10-02T18:20:05.450Z", 29.0, "EUR", "ORD-55002")],
    "analytics-node-3.1.0": [
        ("purchase", "usr_7c2d91", "2026-09-03T09:21:37.007Z", 43.5, "USD", "10523"),
        ("purchase", "usr_7c2d91", "2026-09-12T22:06:12.096Z", 49.9, "USD", "10877"),
        ("refund", "usr_7c2d91", "2026-09-15T10:00:03.555Z", 49.9, "USD", "10877"),
        ("purchase", "usr_7c2d91", "2026-09-28T07:45:19.040Z", 89.0, "USD", "11630")],
    "analytics-swift-1.9.4": [
        ("purchase", "user-5521", "2026-09-02T07:36:20.742Z", 89.0, "GBP", "SH-30017"),
        ("purchase", "user-5521", "2026-09-09T21:04:44.613Z", 29.0, "GBP", "SH-30342"),
        ("refund", "user-5521", "2026-09-13T12:01:30.250Z", 89.0, "GBP", "SH-30017"),
        ("purchase", "user-6003", "2026-09-21T19:05:03.455Z", 14.5, "EUR", "SH-31210")],
    "analytics-ruby-2.5.0": [
        ("purchase", "1042", "2026-09-05T12:06:09.455Z", 89.0, "USD", "90211"),
        ("purchase", "1042", "2026-09-19T16:42:31.876Z", 59.9, "USD", "90577"),
        ("refund", "1042", "2026-09-20T09:00:12.300Z", 10.0, "USD", "90577"),
        ("purchase", "1042", "2026-10-11T11:11:11.111Z", 14.5, "USD", "91840")],
    "analytics-go-3.3.0": [
        ("purchase", "c-40017", "2026-10-16T06:55:02.345Z", 49.9, "EUR", "B-7781"),
        ("purchase", "c-40017", "2026-10-27T18:00:40.005Z", 104.0, "EUR", "B-7902"),
        ("refund", "c-40017", "2026-10-28T08:30:00Z", 14.5, "EUR", "B-7902"),
        ("purchase", "c-40017", "2026-11-10T07:00:59.999Z", 14.5, "EUR", "B-8120")],
    "analytics-java-3.5.4": [
        ("purchase", "cust-20931", "2026-09-07T18:08:13.448Z", 49.9, "EUR", "100458"),
        ("purchase", "cust-20931", "2026-09-19T07:44:57.730Z", 44.95, "EUR", "100912"),
        ("refund", "cust-20931", "2026-09-23T10:12:30Z", 19.95, "EUR", "100912"),
        ("purchase", "cust-20931", "2026-10-14T20:01:15.264Z", 89.0, "EUR", "101377")],
    "analytics-php-3.8.2": [
        ("purchase", "7781", "2026-09-12T08:22:48Z", 39.9, "EUR", "5120"),
        ("purchase", "7781", "2026-09-30T17:05:55Z", 25.98, "EUR", "5188"),
        ("refund", "7781", "2026-10-02T06:00:00Z", None, None, "5188"),  # in full
        ("purchase", "7781", "2026-10-28T11:30:19Z", 89.0, "EUR", "5302")],
    "analytics-dotnet-3.8.1": [
        ("purchase", "u_5f3a9c", "2026-09-08T14:09:18.661Z", 129.9, "USD", "SO-40017"),
        ("purchase", "u_5f3a9c", "2026-09-20T13:15:42Z", 59.0, "USD", "SO-40102"),
        ("refund", "u_5f3a9c", "2026-09-24T19:00:03.001Z", 30.0, "USD", "SO-40017"),
        ("purchase", "u_5f3a9c", "2026-10-19T12:30:00.250Z", 24.5, "USD", "SO-40388")],
    "analytics-kotlin-1.24.1": [
        ("purchase", "cli-88412", "2026-09-04T18:25:47.903Z", 69.8, "EUR", "ES-20481"),
        ("purchase", "cli-88412", "2026-09-15T09:02:44.870Z", 18.5, "EUR", "ES-20977"),
        ("refund", "cli-88412", "2026-09-18T11:40:02.007Z", 34.9, "EUR", "ES-20481"),
        ("purchase", "cli-88412", "2026-10-03T20:15:09.334Z", 34.9, "EUR", "ES-21503")],
    "analytics-csharp-2.6.0": [
        ("purchase", "acct_71c0e2", "2026-09-09T16:45:07.075Z", 44.9, "USD", "GX-1204"),
        ("purchase", "acct_71c0e2", "2026-09-22T02:10:44.500Z", 89.0, "USD", "GX-1377"),
        ("refund", "acct_71c0e2", "2026-09-25T13:00:00.012Z", 31.0, "USD", "GX-1377"),
        ("purchase", "acct_71c0e2", "2026-10-12T19:30:18.224Z", 12.5, "USD", "GX-1590")],
    "analytics-react-native-2.21.4": [
        ("purchase", "bloom-50917", "2026-09-06T21:19:40.066Z", 59.0, "AUD", "BL-77120"),
        ("refund", "bloom-50917", "2026-09-12T08:03:55.129Z", None, None, "BL-77120"),  # in full
        ("purchase", "bloom-50917", "2026-10-01T23:45:09.902Z", 34.95, "AUD", "BL-78804"),
        ("purchase", "bloom-50917", "2026-10-14T10:10:10.101Z", 49.0, "AUD", "BL-79310")],
    "analytics-android-4.11.4": [
        ("purchase", "kb-302114", "2026-09-10T06:50:02.384Z", 79.0, "EUR", "50-11873"),
        ("purchase", "kb-302114", "2026-09-21T15:31:09.670Z", 43.0, "EUR", "50-12240"),
        ("refund", "kb-302114", "2026-09-23T09:12:44.015Z", 21.5, "EUR", "50-12240"),
        ("purchase", "kb-302114", "2026-10-07T17:03:59.998Z", 12.9, "EUR", "50-12907")],
    "analytics-ios-4.1.8": [
        ("purchase", "pl_61c2a9", "2026-09-11T12:06:17.580Z", 89.99, "CAD", "PX-33018"),
        ("purchase", "pl_61c2a9", "2026-09-19T23:30:45.712Z", 24.0, "CAD", "PX-33462"),
        ("refund", "pl_61c2a9", "2026-09-22T14:10:00.048Z", 45.0, "CAD", "PX-33018"),
        ("purchase", "pl_61c2a9", "2026-10-05T01:05:06.007Z", 56.5, "CAD", "PX-34190")],
    "analytics-flutter-1.1.10": [
        ("purchase", "mc-9031077", "2026-09-14T22:16:55.123Z", 129.8, "BRL", "MC-88120"),
        ("purchase", "mc-9031077", "2026-09-27T13:40:10.400Z", 38.0, "BRL", "MC-89544"),
        ("refund", "mc-9031077", "2026-09-29T10:00:31.875Z", 64.9, "BRL", "MC-88120"),
        ("purchase", "mc-9031077", "2026-10-20T18:59:59.999Z", 52.5, "BRL", "MC-90311")],
}

# Each file's calls by journey type (identify, alias and group are calls of their own).
KINDS: dict[str, dict[str, int]] = {
    "analytics-next-1.84.1": {"page_view": 3, "product_view": 2, "add_to_cart": 3,
                              "identify": 1, "checkout_started": 1, "purchase": 4,
                              "search": 1, "coupon_redeemed": 1, "refund": 1, "review": 1,
                              "share": 1},
    "analytics-node-3.1.0": {"page_view": 2, "product_view": 2, "add_to_cart": 1,
                             "identify": 1, "checkout_started": 1, "purchase": 3,
                             "refund": 1, "review": 1, "share": 1},
    "analytics-swift-1.9.4": {"other": 2, "session_start": 3, "page_view": 3,
                              "product_view": 2, "add_to_cart": 1, "identify": 1,
                              "checkout_started": 1, "purchase": 3, "review": 1,
                              "refund": 1, "share": 1, "alias": 1},
    "analytics-ruby-2.5.0": {"page_view": 2, "product_view": 1, "add_to_cart": 1,
                             "identify": 1, "checkout_started": 1, "purchase": 3,
                             "refund": 1, "review": 1, "share": 1},
    "analytics-go-3.3.0": {"page_view": 1, "product_view": 1, "add_to_cart": 1, "alias": 1,
                           "identify": 1, "purchase": 3, "refund": 1, "review": 1,
                           "share": 1},
    **{name: {"page_view": 2, "product_view": 1, "add_to_cart": 1, "identify": 1,
              "checkout_started": 1, "purchase": 3, "refund": 1, "review": 1, "share": 1}
       for name in ("analytics-java-3.5.4", "analytics-php-3.8.2", "analytics-dotnet-3.8.1",
                    "analytics-csharp-2.6.0")},
    "analytics-kotlin-1.24.1": {"other": 2, "session_start": 1, "page_view": 2,
                                "product_view": 1, "add_to_cart": 1, "identify": 1,
                                "checkout_started": 1, "purchase": 3, "refund": 1,
                                "review": 1, "share": 1},
    **{name: {"session_start": 1, "page_view": pages, "product_view": 1, "add_to_cart": 1,
              "alias": 1, "identify": 1, "checkout_started": 1, "purchase": 3, "refund": 1,
              "review": 1, "share": 1}
       for name, pages in (("analytics-react-native-2.21.4", 2), ("analytics-ios-4.1.8", 1))},
    "analytics-android-4.11.4": {"session_start": 1, "page_view": 1, "product_view": 1,
                                 "add_to_cart": 1, "identify": 1, "checkout_started": 1,
                                 "purchase": 3, "refund": 1, "review": 1, "share": 1},
    "analytics-flutter-1.1.10": {"other": 1, "session_start": 1, "page_view": 1,
                                 "product_view": 1, "add_to_cart": 1, "identify": 1,
                                 "checkout_started": 1, "purchase": 3, "refund": 1,
                                 "review": 1, "share": 1},
}


@pytest.mark.parametrize("name", LIBRARIES)
def test_every_recorded_call_is_taken(name: str) -> None:
    rec = recording(name)
    assert rec.rejections == []
    assert len(rec.events) == len(rec.lines) > 10
    for call, event in zip(rec.calls, rec.events, strict=True):
        assert event.event_id == call["messageId"]
        user = call.get("userId") or call.get("anonymousId")
        assert event.user_id == str(user)  # an integer id as its text


@pytest.mark.parametrize("name", NEW)
def test_recorded_calls_map_to_their_events(name: str) -> None:
    rec = recording(name)
    assert Counter(e.type for e in rec.events) == KINDS[name]
    money = [(e.type, e.user_id, rfc3339(e.occurred_at, 0), e.amount, e.currency, e.order_id)
             for e in rec.events if e.type in ("purchase", "refund")]
    assert money == MONEY[name]


@pytest.mark.parametrize("name", NEW)
def test_a_recording_replays_to_its_shoppers(name: str) -> None:
    users, summary = replayed(recording(name).events)
    want, merged, duplicates = OUTCOME[name]
    assert summary.dead_letters == {}
    assert summary.stitches == {"merged": merged}
    assert summary.duplicates == duplicates
    got = [(u, s["orders"], round(s["monetary"], 2), s["refunds"], s["funnel_stage"],
            s["first_seen_at"]) for u, s in sorted(users.items())]
    assert got == want  # no anonymous profile is left beside the user


@pytest.mark.parametrize("name", NEW)
def test_a_recording_sent_twice_counts_once(name: str) -> None:
    """Retries keep the messageId: a second copy of every call changes nothing."""
    events = recording(name).events
    once, _ = replayed(events)
    twice, summary = replayed(events + events)
    assert twice == once
    assert summary.duplicates >= len(events) - OUTCOME[name][1]


@pytest.mark.parametrize("name", NEW)
def test_a_recording_posted_as_batches_reads_as_its_calls(name: str, tmp_path: Path) -> None:
    """The body a library posts to /v1/batch is not one call, so ``decode`` refuses it;
    replay and bootstrap read each of its calls in order (the worker sends them on to
    their users' partitions), the same events as the calls one per line."""
    rec = recording(name)
    bodies = [{"batch": rec.calls[i:i + 4], "sentAt": "2026-11-30T10:00:00.000Z",
               "writeKey": "k"} for i in range(0, len(rec.calls), 4)]
    got = decode(orjson.dumps(bodies[0]))
    assert not isinstance(got, Event) and got.reason == "unsupported_segment_call"
    assert f"batch envelope (the body a library posts to /v1/batch, {len(bodies[0]['batch'])} " \
        "call(s))" in got.message
    path = tmp_path / "posted.jsonl"
    path.write_bytes(b"".join(orjson.dumps(b) + b"\n" for b in bodies))
    read = [item for item, _ in read_events([path], MAX_EVENT_BYTES_DEFAULT)]
    assert read == rec.events


def _call(name: str, line: int) -> tuple[dict[str, Any], Event]:
    rec = recording(name)
    event = rec.decoded[line - 1]
    assert isinstance(event, Event), event
    return rec.calls[line - 1], event


def test_analytics_next_quirks() -> None:
    """analytics.js: userId null until identify, times in UTC with milliseconds, the
    browser's zone in context.timezone, a retried POST with the same messageId."""
    call, event = _call("analytics-next-1.84.1", 4)
    assert call["userId"] is None and call["writeKey"] and call["_metadata"]["bundled"]
    assert (event.user_id, event.type, event.utc_offset_min) == (call["anonymousId"],
                                                                 "add_to_cart", None)
    assert event.properties["timezone"] == "Europe/Berlin"
    assert event.properties["product_id"] == "p-2040"
    first, retry = _call("analytics-next-1.84.1", 8), _call("analytics-next-1.84.1", 9)
    assert first[0]["messageId"] == retry[0]["messageId"]
    assert retry[0]["_metadata"]["retryCount"] == 2 and first[1] == retry[1]
    _, identify = _call("analytics-next-1.84.1", 6)
    assert identify.properties["previous_id"] == call["anonymousId"]


def test_analytics_node_quirks() -> None:
    """@segment/analytics-node: numeric order ids, no anonymousId once logged in."""
    call, event = _call("analytics-node-3.1.0", 7)
    assert call["properties"]["order_id"] == 10523 and "anonymousId" not in call
    assert (event.user_id, event.order_id, event.amount) == ("usr_7c2d91", "10523", 43.5)
    assert call["messageId"].startswith("node-next-")


def test_analytics_swift_quirks() -> None:
    """analytics-swift: no userId key before identify, upper-case UUIDs, lifecycle
    events, a rating as text, and alias(newId:) without a previousId."""
    call, event = _call("analytics-swift-1.9.4", 1)
    assert "userId" not in call and call["messageId"].isupper()
    assert event.type == "other" and event.properties["segment_event"] == "Application Installed"
    _, review = _call("analytics-swift-1.9.4", 14)
    assert review.rating == 2
    alias_call, alias = _call("analytics-swift-1.9.4", 19)
    assert "previousId" not in alias_call
    assert (alias.type, alias.user_id, alias.properties) == (
        "alias", "user-6003", {"previous_id": alias_call["anonymousId"]})


def test_analytics_ruby_quirks() -> None:
    """analytics-ruby: a Rails integer user id, amounts as BigDecimal text, a server's
    +00:00 stamp."""
    call, event = _call("analytics-ruby-2.5.0", 8)
    assert call["userId"] == 1042 and call["properties"]["total"] == "0.599e2"
    assert (event.user_id, event.amount, event.order_id) == ("1042", 59.9, "90577")
    # the server's +00:00 is not the shopper's zone: none is known
    assert call["timestamp"].endswith("+00:00") and event.utc_offset_min is None
    assert "timezone" not in event.properties


def test_analytics_go_quirks() -> None:
    """analytics-go: SetOrderId's orderId, nanosecond RFC 3339 in the server's zone, no
    context on the messages (the batch carries it), a spec v1 event name."""
    call, event = _call("analytics-go-3.3.0", 6)
    assert "order_id" not in call["properties"] and "context" not in call
    assert call["timestamp"] == "2026-10-16T08:55:02.345000449+02:00"
    assert (event.order_id, event.amount, rfc3339(event.occurred_at, 0)) == (
        "B-7781", 49.9, "2026-10-16T06:55:02.345Z")
    call, event = _call("analytics-go-3.3.0", 11)
    assert call["event"] == "Completed Order" and event.type == "purchase"


def test_analytics_java_quirks() -> None:
    """analytics-java through a serializeNulls() Gson: every unset field written as null
    (sentAt, context, anonymousId, properties), BigDecimal amounts with their scale, Gson's
    HTML-safe escapes, UTC times to the millisecond, no library in the message (the batch
    carries it)."""
    name = "analytics-java-3.5.4"
    raw = recording(name).lines[0]
    assert b"\\u003d" in raw and b"\\u0026" in raw  # "=" and "&" of the page's URL
    call, event = _call(name, 6)
    assert call["sentAt"] is None and call["context"] is None and call["anonymousId"] is None
    assert b'"revenue":49.90' in recording(name).lines[5] and call["integrations"] == {}
    assert (event.type, event.amount, event.order_id) == ("purchase", 49.9, "100458")
    assert rfc3339(event.occurred_at, 0) == call["timestamp"]
    call, event = _call(name, 7)
    assert call["properties"] is None and (event.type, event.properties) == ("page_view", {})
    call, event = _call(name, 8)  # no revenue or total: the products' sum
    assert "total" not in call["properties"] and event.amount == 44.95


def test_analytics_php_quirks() -> None:
    """analytics-php: an integer user id, date('c') times in the server's zone without a
    fraction, json_encode's escaped slashes and \\u escapes, amounts as decimal text, an
    empty properties object, a full refund by order id."""
    name = "analytics-php-3.8.2"
    assert b'"url":"https:\\/\\/kaffee.example.de\\/"' in recording(name).lines[0]
    call, event = _call(name, 2)
    assert b"Kaffeem\\u00fchle" in recording(name).lines[1]
    assert call["properties"]["name"] == "Kaffeemühle Classic"
    assert call["context"]["library"] == {"name": "analytics-php", "version": "3.8.2",
                                          "consumer": "LibCurl"}
    call, event = _call(name, 6)
    assert call["userId"] == 7781 and call["properties"]["revenue"] == "39.90"
    assert call["timestamp"] == "2026-09-12T10:22:48+02:00" and "sentAt" not in call
    assert (event.user_id, event.amount, event.order_id) == ("7781", 39.9, "5120")
    call, event = _call(name, 7)
    assert call["properties"] == {} and event.type == "page_view"
    call, event = _call(name, 9)
    assert call["properties"] == {"order_id": 5188}
    assert (event.type, event.amount, event.order_id) == ("refund", None, "5188")


def test_analytics_dotnet_quirks() -> None:
    """Analytics.NET: Json.NET writes nulls (anonymousId, category), DateTime.Now.ToString("o")
    with seven fraction digits and the server's offset, decimals with their scale, and a
    back-office import whose DateTime of Kind Unspecified has no offset: read as UTC, as
    Segment's API reads it."""
    name = "analytics-dotnet-3.8.1"
    call, event = _call(name, 1)
    assert call["userId"] is None and call["category"] is None
    assert call["timestamp"] == "2026-09-08T10:03:11.5123456-04:00"
    assert rfc3339(event.occurred_at, 0) == "2026-09-08T14:03:11.512Z"
    assert event.user_id == call["anonymousId"] and event.utc_offset_min is None
    call, event = _call(name, 8)
    assert call["timestamp"] == "2026-09-20T13:15:42.0000000"  # no offset
    assert (event.type, rfc3339(event.occurred_at, 0), event.amount) == (
        "purchase", "2026-09-20T13:15:42Z", 59.0)
    assert b'"total":59.00' in recording(name).lines[7]


def test_analytics_kotlin_quirks() -> None:
    """analytics-kotlin: no userId key while anonymous (a blank one is filtered out), a
    screen's category as "", the device's zone in context.timezone, UTC milliseconds, a
    lifecycle event journey does not map, an identify with userId and anonymousId."""
    name = "analytics-kotlin-1.24.1"
    call, event = _call(name, 1)
    assert "userId" not in call and call["timestamp"] == "2026-09-04T18:20:01.112Z"
    assert (event.type, event.user_id) == ("other", call["anonymousId"])
    assert event.properties["timezone"] == "Europe/Madrid"
    call, event = _call(name, 3)
    assert (call["type"], call["name"], call["category"]) == ("screen", "Inicio", "")
    assert call["context"]["screen"]["density"] == 2.625 and event.type == "page_view"
    call, event = _call(name, 6)
    assert event.properties["previous_id"] == call["anonymousId"]
    assert event.properties["timezone"] == "Europe/Madrid"
    call, event = _call(name, 9)
    assert (event.amount, event.order_id) == (69.8, "ES-20481")  # revenue, not total


def test_analytics_csharp_quirks() -> None:
    """Analytics-CSharp: every unset field written as null (userId, metrics), a page's
    category as "", DateTime.UtcNow.ToString("o") with seven fraction digits, context.os
    as a string, no timezone, doubles without a fraction (89)."""
    name = "analytics-csharp-2.6.0"
    call, event = _call(name, 1)
    assert call["userId"] is None and call["metrics"] is None and call["category"] == ""
    assert isinstance(call["context"]["os"], str) and call["context"]["platform"] == ".NET"
    assert (event.type, event.user_id) == ("page_view", call["anonymousId"])
    assert "timezone" not in event.properties
    call, event = _call(name, 6)
    assert call["timestamp"] == "2026-09-09T16:43:22.6100441Z"
    assert rfc3339(event.occurred_at, 0) == "2026-09-09T16:43:22.610Z"
    call, event = _call(name, 8)
    assert b'"revenue":89,' in recording(name).lines[7] and event.amount == 89.0


def test_analytics_react_native_quirks() -> None:
    """analytics-react-native: no userId key while anonymous, screens without a category,
    an empty context.traits, alias(newId) filling previousId with the anonymousId, a full
    refund by order id, a products-only order."""
    name = "analytics-react-native-2.21.4"
    call, event = _call(name, 2)
    assert "userId" not in call and "category" not in call and call["context"]["traits"] == {}
    assert event.type == "page_view" and event.properties["timezone"] == "Australia/Sydney"
    call, event = _call(name, 5)
    assert call["previousId"] == call["anonymousId"]
    assert (event.type, event.user_id, event.properties) == (
        "alias", "bloom-50917", {"previous_id": call["anonymousId"]})
    call, event = _call(name, 10)
    assert call["properties"] == {"order_id": "BL-77120"}
    assert (event.type, event.amount, event.order_id) == ("refund", None, "BL-77120")
    call, event = _call(name, 13)
    assert "revenue" not in call["properties"] and event.amount == 49.0


def test_analytics_android_quirks() -> None:
    """analytics-android 4.x: channel "mobile", the cached traits (with anonymousId) in
    context.traits and in identify's traits, putOrderId's orderId, Product's id, a
    java.util.Date property as Date.toString(), a rating as text."""
    name = "analytics-android-4.11.4"
    call, event = _call(name, 1)
    assert call["channel"] == "mobile" and "userId" not in call
    assert call["context"]["traits"] == {"anonymousId": call["anonymousId"]}
    call, event = _call(name, 5)
    assert call["traits"]["anonymousId"] == call["anonymousId"] == event.properties["previous_id"]
    call, event = _call(name, 7)
    assert "order_id" not in call["properties"] and call["properties"]["products"][0]["id"]
    assert call["properties"]["delivery_date"] == "Sat Sep 12 00:00:00 GMT+02:00 2026"
    assert (event.type, event.amount, event.order_id) == ("purchase", 79.0, "50-11873")
    call, event = _call(name, 8)  # no revenue or total: the products' sum
    assert (event.amount, event.order_id) == (43.0, "50-12240")
    _, review = _call(name, 10)
    assert review.rating == 4


def test_analytics_ios_quirks() -> None:
    """analytics-ios 4.x (Objective-C): NSJSONSerialization's escaped slashes, upper-case
    CFUUID ids, an NSDate property as ISO 8601 UTC text, empty url/referring_application on
    Application Opened, alias then identify."""
    name = "analytics-ios-4.1.8"
    raw = recording(name).lines[0]
    assert b'"timezone":"America\\/Toronto"' in raw
    call, event = _call(name, 1)
    assert call["messageId"].isupper() and call["properties"]["url"] == ""
    assert (event.type, event.properties["timezone"]) == ("session_start", "America/Toronto")
    call, event = _call(name, 5)
    assert (event.type, event.properties) == ("alias", {"previous_id": call["anonymousId"]})
    call, event = _call(name, 8)
    assert call["properties"]["delivery_date"] == "2026-09-16T04:00:00.000Z"
    assert (event.amount, event.order_id) == (89.99, "PX-33018")


def test_analytics_flutter_quirks() -> None:
    """analytics_flutter 1.1: json_serializable writes nulls (userId, integrations),
    toUtc().toIso8601String() with microseconds (milliseconds when those are zero), a route
    name as the screen name."""
    name = "analytics-flutter-1.1.10"
    call, event = _call(name, 1)
    assert call["userId"] is None and call["integrations"] is None
    assert call["timestamp"] == "2026-09-14T22:10:05.301442Z"
    assert (event.type, event.user_id) == ("other", call["anonymousId"])
    call, event = _call(name, 3)
    assert call["name"] == "/home" and event.type == "page_view"
    call, event = _call(name, 9)
    assert call["timestamp"] == "2026-09-27T13:40:10.400Z"
    assert (event.amount, event.order_id) == (38.0, "MC-89544")
