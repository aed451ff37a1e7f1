"""What a real producer gets wrong, added to the clean synthetic stream on request:
Segment calls instead of canonical events, re-sent events, and malformed lines."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import orjson

from streams.core import event as ev
from streams.synth.plan import CURRENCY, SynthConfig

# Segment e-commerce v2 names for the canonical types that have one; others stay canonical.
SEGMENT_NAMES: dict[str, str] = {
    ev.PURCHASE: "Order Completed", ev.REFUND: "Order Refunded", ev.SIGNUP: "Signed Up",
    ev.PRODUCT_VIEW: "Product Viewed", ev.SEARCH: "Products Searched",
    ev.ADD_TO_CART: "Product Added", ev.REMOVE_FROM_CART: "Product Removed",
    ev.CHECKOUT_STARTED: "Checkout Started", ev.SHARE: "Product Shared",
    ev.REVIEW: "Product Reviewed", ev.COUPON_REDEEMED: "Coupon Applied"}
BAD_KINDS = ("not_json", "missing_field", "negative_amount", "no_timezone", "unknown_type",
             "bad_timestamp", "not_object")


_ZONES_OFF_THE_HOUR = {"+05:30": "Asia/Kolkata", "+09:30": "Australia/Darwin"}  # no DST


def zone_of(stamp: str) -> str:
    """An IANA zone always at the offset of an RFC 3339 time (a synthetic user keeps one
    offset all year)."""
    suffix = stamp[-6:]
    if stamp[-1] in "Zz":
        return "Etc/UTC"
    if suffix in _ZONES_OFF_THE_HOUR:
        return _ZONES_OFF_THE_HOUR[suffix]
    hours = int(suffix[1:3])
    if hours == 0:
        return "Etc/UTC"
    return f"Etc/GMT{'-' if suffix[0] == '+' else '+'}{hours}"  # POSIX signs: east is minus


def to_segment(event: dict[str, Any]) -> dict[str, Any]:
    """A canonical event as the Segment `track` call a Segment-instrumented shop would send."""
    props, kind = event["properties"], event["type"]
    out = dict(props)
    if kind in (ev.PURCHASE, ev.REFUND):  # Segment's money fields
        out = {"order_id": props["order_id"], "revenue": props["amount"],
               "total": props["amount"], "currency": props["currency"]}
    elif kind == ev.COUPON_REDEEMED:
        out = {"order_id": props["order_id"], "coupon_id": props["coupon"]}
    return {"type": "track", "event": SEGMENT_NAMES[kind], "messageId": event["event_id"],
            "userId": event["user_id"], "timestamp": event["occurred_at"], "properties": out,
            "context": {"timezone": zone_of(event["occurred_at"])}}


def _bad_line(rng: random.Random, event: dict[str, Any], n: int) -> str:
    """A malformed line modelled on a real event, with an id of its own."""
    bad = {**event, "event_id": f"bad-{n}", "properties": dict(event["properties"])}
    kind = BAD_KINDS[int(rng.random() * len(BAD_KINDS))]
    if kind == "missing_field":
        del bad[("event_id", "user_id", "type", "occurred_at")[int(rng.random() * 4)]]
    elif kind == "negative_amount":
        bad["type"] = ev.PURCHASE
        bad["properties"] = {"amount": -round(1 + rng.random() * 50, 2), "currency": CURRENCY,
                             "order_id": f"bad-{n}"}
    elif kind == "no_timezone":
        bad["occurred_at"] = bad["occurred_at"][:-6]  # drop the "+01:00"
    elif kind == "unknown_type":
        bad["type"] = "teleported"
    elif kind == "bad_timestamp":
        bad["occurred_at"] = "yesterday at noon"
    text = orjson.dumps([bad] if kind == "not_object" else bad).decode()
    return text[: len(text) // 2] if kind == "not_json" else text


def with_noise(cfg: SynthConfig,
               events: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any] | str]:
    # One sequential RNG over the ordered stream: the noise never alters the clean events.
    rng, bad, segment = random.Random(f"{cfg.seed}:noise"), itertools.count(1), cfg.segment_share
    for event in events:
        if cfg.bad_share and rng.random() < cfg.bad_share:
            yield _bad_line(rng, event, next(bad))
        if segment and event["type"] in SEGMENT_NAMES and rng.random() < segment:
            event = to_segment(event)
        yield event
        if cfg.duplicate_share and rng.random() < cfg.duplicate_share:
            yield {**event, "properties": dict(event["properties"])}  # same id, re-sent
