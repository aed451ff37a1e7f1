"""Fuzzing, without Kafka (the corpus of known bad input: test_bad_input.py).

(c) the decoder, fuzzed with arbitrary bytes, arbitrary JSON and mutated valid events,
    never raises, and whatever Event it returns is sane;
(d) the core, fuzzed with valid events, duplicates and ticks, never raises and keeps its
    invariants (counts and money finite and non-negative, the state codec round-trips).
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from agents.kafka.codec import dumps as state_bytes
from agents.kafka.codec import loads as state_from_bytes
from streams.core.decode import decode
from streams.core.event import EVENT_TYPES, OTHER, Event
from streams.core.limits import EARLIEST_EVENT_AT, LATEST_EVENT_AT, MAX_AMOUNT
from streams.core.state import CHANNELS, STAGES
from streams.core.timefmt import rfc3339
from streams.settings import Settings
from streams.testing import Harness
from tests.support.corpus_bases import ORDER, PRODUCT_VIEW, PURCHASE, VIEW
from tests.support.inputs import outcome

# --- (c) fuzzing the decoder --------------------------------------------------------------------

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["event_id", "user_id", "type", "occurred_at", "source", "properties", "schema",
        "messageId", "userId", "anonymousId", "event", "timestamp", "sentAt", "context",
        "amount", "currency", "order_id", "rating", "channel", "timezone", "revenue", "total",
        "products", "price", "quantity", "consent", "referred_user_id", "referred_by"]
NASTY: list[Any] = [
    None, True, False, 0, -1, -0.0, 0.5, 1e15, 1e16, 2**63, -(2**63), 10**30, "", " ", "0",
    "5", "-5", "NaN", "Infinity", "1e999", "1_000", "١٢", "x" * 300, "\x00", "🙂", "\ud800",
    "\ud83d\ude42",  # a surrogate pair in a str: an emoji only once escaped
    "2026-01-10T10:00:00", "2026-01-10T10:00:00Z", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "EUR", "eur", "XYZ", "XXX", "email", "fax",
    "Europe/Berlin", "Mars/Base", "purchase", "refund", "review", "other", "track", "page",
    "identify", "Order Completed", "Order Refunded", "Product Reviewed", "Unsubscribed",
    [], {}, [1, 2], ["email", "sms"], {"a": {"b": 1}}, [{"price": 1e15, "quantity": 2}],
    [{"price": "3", "quantity": "2"}],
]
# drawn values are copies: a mutation inside one must not change the list
NASTY_VALUE = st.sampled_from(NASTY).map(copy.deepcopy)
SEEDS: list[dict[str, Any]] = ([PURCHASE, VIEW, ORDER, PRODUCT_VIEW]
                               + schemas.load("user-event")["examples"]
                               + schemas.load("segment-track")["examples"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    | st.sampled_from(NASTY[:40]),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6),
    max_leaves=20)


# Bytes: anything, and text made of JSON's own characters (which gets past the UTF-8 check).
JSONISH_TEXT = st.text(alphabet='{}[]":,.-+eE0123456789 \\ntrufalsNIy"u\u00fc', max_size=300)


@FUZZ
@given(st.binary(max_size=600) | JSONISH_TEXT.map(str.encode))
def test_decoder_survives_arbitrary_bytes(raw: bytes) -> None:
    outcome(raw)


def to_json(value: Any, ascii_only: bool = False) -> bytes:
    """JSON text of ``value`` (the standard library's: orjson refuses integers past 64 bits,
    which producers in other languages do send). Surrogates in strings become \\u escapes
    or, unescaped, the bytes a careless encoder writes for them (not UTF-8)."""
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.dictionaries(st.sampled_from(KEYS), JSON, max_size=10) | JSON, st.booleans())
def test_decoder_survives_arbitrary_json(value: Any, ascii_only: bool) -> None:
    outcome(to_json(value, ascii_only))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``obj`` (dict keys and list indexes)."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) \
        if isinstance(obj, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


def _parent(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        obj = obj[key]
    return obj


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_decoder_survives_mutated_valid_events(seed: dict[str, Any], data: st.DataObject,
                                               ) -> None:
    obj = orjson.loads(orjson.dumps(seed))  # a private copy
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(obj))
        how = data.draw(st.sampled_from(["drop", "retype", "add"]), label="how")
        if how == "add" or not paths:
            target = obj if not paths or data.draw(st.booleans()) else obj.get("properties")
            if isinstance(target, dict):
                target[data.draw(st.sampled_from(KEYS))] = data.draw(NASTY_VALUE)
            continue
        path = data.draw(st.sampled_from(paths), label="path")
        parent = _parent(obj, path)
        if how == "drop":
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(NASTY_VALUE | JSON, label="value")
    raw = to_json(obj)
    outcome(raw)
    if data.draw(st.booleans(), label="damage the bytes too"):
        where = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at")
        damage = data.draw(st.sampled_from(["truncate", "flip", "insert", "repeat"]))
        if damage == "truncate":
            raw = raw[:where]
        elif damage == "flip":
            raw = raw[:where] + bytes([raw[where] ^ data.draw(st.integers(1, 255))]) + \
                raw[where + 1:]
        elif damage == "insert":
            raw = raw[:where] + data.draw(st.binary(min_size=1, max_size=4)) + raw[where:]
        else:
            raw = raw[:where] + raw[where:where + 40] + raw[where:]
        outcome(raw)
        outcome(raw.decode("utf-8", "replace"))  # the same damage as text


# --- (d) fuzzing the core -----------------------------------------------------------------------

BASE = 1_767_225_600.0  # 2026-01-01T00:00Z
DAY = 86400.0
USERS = ("ann", "bob", "cy", "dee")
TYPES = [t for t in EVENT_TYPES if t != OTHER]
AMOUNT = st.one_of(st.sampled_from([0.0, 0.01, MAX_AMOUNT, MAX_AMOUNT / 3]),
                   st.floats(0, MAX_AMOUNT, allow_nan=False))
# from seconds to years, and now and then to the edges of the accepted time range
STEP = st.one_of(st.sampled_from([0.0, 1.0, 3600.0, DAY, 30 * DAY, 400 * DAY]),
                 st.floats(-2 * DAY, 90 * DAY))
EDGE = st.sampled_from([EARLIEST_EVENT_AT, LATEST_EVENT_AT - 0.001])


def _event_json(draw: st.DrawFn, i: int, t: float) -> bytes:
    kind = draw(st.sampled_from(TYPES))
    props: dict[str, Any] = {}
    if kind in ("purchase", "refund"):
        props = {"amount": draw(AMOUNT), "currency": draw(st.sampled_from(["EUR", "JPY"])),
                 "order_id": f"o-{draw(st.integers(0, 3))}"}
    elif kind == "review":
        props = {"rating": draw(st.integers(1, 5))}
    elif kind in ("unsubscribe", "resubscribe", "message_opened", "message_clicked"):
        props = {"channel": draw(st.sampled_from(CHANNELS))}
    elif kind == "referral":
        props = {"referred_user_id": draw(st.sampled_from(USERS))}
    elif kind == "signup":
        props = {"consent": draw(st.lists(st.sampled_from(CHANNELS), unique=True)),
                 "referred_by": draw(st.sampled_from(USERS))}
    offset = draw(st.sampled_from([0, 330, -480, 840]))  # minutes east of UTC
    return orjson.dumps({"event_id": f"f-{i}", "user_id": draw(st.sampled_from(USERS)),
                         "type": kind, "occurred_at": rfc3339(t, offset), "properties": props})


@st.composite
def core_ops(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """Valid events (via the decoder), re-sent duplicates, ticks, and the odd event
    stamped at the edge of the accepted time range."""
    ops: list[tuple[str, Any]] = []
    sent: list[Event] = []
    t = BASE
    for i in range(draw(st.integers(1, 40))):
        roll = draw(st.integers(0, 19))
        if roll < 3 and sent:
            ops.append(("duplicate", draw(st.sampled_from(sent))))
            continue
        if roll < 6:
            ops.append(("tick", t + draw(STEP)))
            continue
        at = draw(EDGE) if roll == 6 else min(max(t + draw(STEP), EARLIEST_EVENT_AT),
                                              LATEST_EVENT_AT - 1.0)
        got = decode(_event_json(draw, i, at))
        assert isinstance(got, Event), got
        sent.append(got)
        t = max(t, got.occurred_at)
        skew = draw(st.one_of(st.none(), st.floats(-600.0, 600.0)))
        ops.append(("event", (got, None if skew is None else got.occurred_at + skew)))
    return ops


def _check_invariants(h: Harness) -> dict[str, bytes]:
    states: dict[str, bytes] = {}
    for user, s in h.store.items():
        assert s.orders >= 0 and s.refunds >= 0
        for money in (s.gross_spend, s.refunded, s.monetary):
            assert math.isfinite(money) and money >= 0.0, (user, money)
        assert s.stage in STAGES
        raw = state_bytes(s)
        back = state_from_bytes(raw)
        assert back == s and state_bytes(back) == raw  # the table's codec round-trips
        states[user] = raw
    assert h.processor.stage_counts() == Counter(s.stage for s in h.store.values())
    orjson.dumps(h.processor.context().to_dict())
    return states


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(core_ops(), st.booleans())
def test_core_survives_events_duplicates_and_ticks(ops: list[tuple[str, Any]],
                                                    purchase_reactivates: bool) -> None:
    h = Harness(Settings().with_overrides(
        reactivation_requires="purchase" if purchase_reactivates else "activity"))
    for position, (kind, value) in enumerate(ops):
        if kind == "tick":
            h.advance_to(value)
        elif kind == "duplicate":
            state = h.store.get(value.user_id)
            applied = state is not None and state.has_seen(value.event_id)
            before, dups = _check_invariants(h), h.duplicates
            h.send(value)
            if applied:  # (one the core refused may be sent again, and may count now)
                assert h.duplicates == dups + 1
                assert _check_invariants(h) == before  # a re-sent event changes nothing
        else:
            event, received_at = value
            h.send(event, received_at=received_at, position=position)
        _check_invariants(h)
    h.advance_to(LATEST_EVENT_AT)  # every timer fires
    _check_invariants(h)
    check = schemas.validator("user-state")
    for user in h.store:
        check(h.snapshot(user))
    assert {r for r, _ in h.rejected} <= {"too_late", "future_timestamp"}
