"""Bad input, without Kafka: the corpus in tests/support/bad_corpus.py, then fuzzing.

(a) every corpus case decodes to a Rejection with the expected reason, never an error;
(b) through the worker's pipeline (a dict for a table) every case becomes one
    schema-valid dead letter and leaves every user's state byte-identical;
(c) the decoder, fuzzed with arbitrary bytes, arbitrary JSON and mutated valid events,
    never raises, and whatever Event it returns is sane;
(d) the core, fuzzed with valid events, duplicates and ticks, never raises and keeps its
    invariants (counts and money finite and non-negative, the state codec round-trips).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemas
from agents.kafka.codec import dumps as state_bytes
from agents.kafka.codec import loads as state_from_bytes
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import Record
from agents.kafka.table import CTX_PREFIX
from agents.kafka.topics import SCHEMA_HEADER, Topics
from streams.core import rejection
from streams.core.decode import REASONS, Rejection, decode, to_object
from streams.core.event import EVENT_TYPES, OTHER, Event
from streams.core.limits import (
    EARLIEST_EVENT_AT,
    LATEST_EVENT_AT,
    MAX_AMOUNT,
    MAX_ARRAY_ITEMS,
    MAX_DEPTH,
    MAX_OBJECT_KEYS,
    MAX_STRING_CHARS,
)
from streams.core.partitioning import partition_for
from streams.core.state import CHANNELS, STAGES, UserState
from streams.core.timefmt import rfc3339
from streams.settings import Settings
from streams.testing import Harness
from tests.support.bad_corpus import (
    ACCEPTED,
    CANONICAL,
    CASES,
    CATEGORIES,
    ORDER,
    PRODUCT_VIEW,
    PURCHASE,
    SEGMENT,
    VIEW,
    Case,
)

# the reasons the decoder gives (the dead-letter schema has more: the core's and the shell's)
DECODER_REASONS = {v for k, v in vars(rejection).items() if k.isupper() and type(v) is str}
CURRENCIES = frozenset(schemas.load("user-event")["$defs"]["currency"]["enum"])
NOW = 1_768_050_000.0  # 2026-01-10T12:20Z: after every valid event below


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
    assert event.type in EVENT_TYPES
    assert EARLIEST_EVENT_AT <= event.occurred_at < LATEST_EVENT_AT
    assert event.utc_offset_min is None or abs(event.utc_offset_min) < 24 * 60
    if event.type in ("purchase", "refund"):
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


# --- (a) the corpus through the decoder ------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_is_rejected_with_its_reason(case: Case) -> None:
    got = decode(case.raw)
    assert isinstance(got, Rejection), got
    assert got.reason == case.reason, got
    assert got.message and len(got.message) < 400
    if case.category in ("time", "amount", "currency"):  # the dead letter names the event
        assert got.event_id in ("bad-e1", "bad-e2", "bad-m1", "bad-m2"), got
        assert got.user_id in ("u-1", "u-2"), got


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_look_alikes_that_the_contract_accepts(case: Case) -> None:
    got = decode(case.raw)
    assert isinstance(got, Event), got
    assert_sane(got)


def test_corpus_covers_every_category_reason_and_input_kind() -> None:
    assert len(DECODER_REASONS) == 13 and DECODER_REASONS <= set(REASONS)
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.reason for c in CASES} == DECODER_REASONS
    for category in CATEGORIES:
        kinds = {c.kind for c in CASES if c.category == category}
        assert {CANONICAL, SEGMENT} <= kinds, category
    assert {c.category for c in CASES} == set(CATEGORIES)


def test_rejections_name_the_limit_and_the_field() -> None:
    by_name = {c.name: decode(c.raw) for c in CASES}
    assert f"{MAX_STRING_CHARS}" in by_name["huge/string-over-16Ki"].message
    assert "properties.note" in by_name["huge/string-over-16Ki"].message
    assert f"{MAX_ARRAY_ITEMS}" in by_name["huge/array-of-5000"].message
    assert "properties.tags" in by_name["huge/array-of-5000"].message
    assert f"{MAX_OBJECT_KEYS}" in by_name["huge/object-of-600-keys"].message
    assert f"{MAX_DEPTH} levels" in by_name["deep/objects-40-deep"].message
    assert "65536-byte" in by_name["huge/record-over-64KiB"].message
    assert "1990-01-01" in by_name["time/year-1"].message
    assert "timestamp" in by_name["time/segment-year-1"].message
    assert "1e15" in by_name["amount/over-1e15"].message
    assert "upper case" in by_name["currency/lower-case"].message
    assert "properties.revenue" in by_name["amount/segment-underscored-number"].message
    assert "'event_id'" in by_name["duplicate_keys/event-id-twice"].message
    assert "NaN and Infinity" in by_name["non_finite/nan-literal"].message
    assert "messageId" in by_name["extra/segment-field-in-canonical"].message


def test_limits_hold_whatever_max_event_bytes_allows() -> None:
    # An operator may raise the byte limit; the per-value limits stay.
    big = dict(VIEW, properties={"note": "y" * (MAX_STRING_CHARS + 1)})
    got = decode(orjson.dumps(big), max_bytes=10 * 2**20)
    assert isinstance(got, Rejection) and got.reason == "oversize"
    wide = dict(VIEW, properties={"tags": list(range(MAX_ARRAY_ITEMS + 1))})
    got = decode(orjson.dumps(wide), max_bytes=10 * 2**20)
    assert isinstance(got, Rejection) and got.reason == "oversize"


# --- (b) the corpus through the pipeline: dead letters, and no state touched ------------------

SETTINGS = Settings().with_overrides(partitions=4)
TOPICS = Topics.from_settings(SETTINGS)
DEAD_LETTER = schemas.validator("dead-letter")


def _history() -> list[dict[str, Any]]:
    """Valid events for u-1, u-2 (the corpus's users) and a few more, around the corpus."""
    out: list[dict[str, Any]] = [PURCHASE, VIEW, ORDER, PRODUCT_VIEW]
    for i in range(12):
        user = f"u-{3 + i % 4}"
        out.append({"event_id": f"h-{i}", "user_id": user,
                    "type": "purchase" if i % 3 == 0 else "product_view",
                    "occurred_at": f"2026-01-{1 + i:02d}T08:00:00Z",
                    "properties": {"amount": 10.0 + i, "currency": "EUR", "order_id": f"o-{i}"}
                    if i % 3 == 0 else {}})
    out.append({"event_id": "h-signup", "user_id": "u-1", "type": "signup",
                "occurred_at": "2026-01-09T08:00:00Z", "properties": {"consent": ["email"]}})
    return out


@dataclass
class Fed:
    pipeline: Pipeline
    offsets: Counter[int]
    users: dict[str, bytes]  # user id -> codec bytes, as before any bad input
    contexts: dict[str, dict[str, Any]]


def _record(offsets: Counter[int], key: str, value: bytes, stamp: float) -> Record:
    p = partition_for(key, SETTINGS.partitions)
    offsets[p] += 1
    return Record(TOPICS.events, p, offsets[p], key.encode(), value, stamp)


def _users(table: dict[str, Any]) -> dict[str, bytes]:
    return {k: state_bytes(v) for k, v in table.items() if isinstance(v, UserState)}


def _contexts(pipeline: Pipeline) -> dict[int, dict[str, Any]]:
    """Each partition's clock, model, position and held credits as they are now (what
    its next checkpoint will claim; the offsets read so far move with every record)."""
    return {p: proc.context().to_dict() for p, proc in pipeline.processors.items()}


def _checkpoints(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {f: x for f, x in v.items() if not f.startswith(("consumed", "refits"))}
            for k, v in table.items() if k.startswith(CTX_PREFIX)}


@pytest.fixture(scope="module")
def fed() -> Iterator[Fed]:
    table: dict[str, Any] = {}
    pipeline = Pipeline(SETTINGS, TOPICS, Metrics(), table, wall_clock=lambda: NOW)
    offsets: Counter[int] = Counter()
    decoded = [(e, decode(orjson.dumps(e))) for e in _history()]
    for e, got in sorted(decoded, key=lambda pair: getattr(pair[1], "occurred_at", 0.0)):
        assert isinstance(got, Event), got
        rec = _record(offsets, got.user_id, orjson.dumps(e), got.occurred_at + 1.0)
        sends = pipeline.handle([rec])
        assert [orjson.loads(s.value) for s in sends if s.topic == TOPICS.dead_letter] == []
        pipeline.commit_state()
    users = _users(table)
    assert {"u-1", "u-2", "u-3", "u-4", "u-5", "u-6"} <= set(users)
    yield Fed(pipeline, offsets, users, _contexts(pipeline))


def _dead_letters(pipeline: Pipeline, reason: str) -> float:
    value = pipeline.metrics.registry.get_sample_value("journey_dead_letters_total",
                                                       {"reason": reason})
    return value or 0.0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_is_dead_lettered_and_touches_no_state(fed: Fed, case: Case) -> None:
    pipeline = fed.pipeline
    table = pipeline.table
    counted = _dead_letters(pipeline, case.reason)
    rec = _record(fed.offsets, f"bad-{case.name}", case.raw, NOW)
    sends = pipeline.handle([rec])
    pipeline.commit_state()

    assert [s.topic for s in sends] == [TOPICS.dead_letter]
    send = sends[0]
    assert send.headers == [(SCHEMA_HEADER, b"journey.dead-letter/1")]
    assert send.key == rec.key
    letter = orjson.loads(send.value)
    DEAD_LETTER(letter)
    expected = decode(case.raw)
    assert isinstance(expected, Rejection)
    assert letter["reason"] == case.reason
    assert letter["message"] == expected.message
    assert (letter["event_id"], letter["user_id"]) == (expected.event_id, expected.user_id)
    assert letter["origin"] == {"kind": "kafka", "topic": TOPICS.events,
                                "partition": rec.partition, "offset": rec.offset,
                                "key": f"bad-{case.name}"}
    head = case.raw[:4096]
    if "payload_base64" in letter:  # not UTF-8: the bytes themselves are kept
        assert base64.b64decode(letter["payload_base64"]) == head
    else:
        assert letter["payload"] == case.raw.decode()[:4096]
    assert letter["payload_truncated"] == (len(case.raw) > 4096)
    assert _dead_letters(pipeline, case.reason) == counted + 1

    assert _users(table) == fed.users  # byte-identical: nothing applied, nothing half-applied
    assert _contexts(pipeline) == fed.contexts
    # the checkpoint written with this batch claims the good input before it, no more
    key = next(k for k in _checkpoints(table) if k.startswith(f"{CTX_PREFIX}{rec.partition}:"))
    assert _checkpoints(table)[key] == fed.contexts[rec.partition]


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
            applied = state is not None and value.event_id in state.recent_ids
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
