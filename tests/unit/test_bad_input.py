"""Bad input, without Kafka: the corpus in tests/support/bad_corpus.py.

(a) every corpus case decodes to a Rejection with the expected reason, never an error;
(b) through the worker's pipeline (a dict for a table) every case becomes one
    schema-valid dead letter and leaves every user's state byte-identical;
and fuzzing, in test_fuzz.py.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

import schemas
from agents.kafka.codec import dumps as state_bytes
from agents.kafka.metrics import Metrics
from agents.kafka.pipeline import Pipeline
from agents.kafka.records import Record
from agents.kafka.table import CTX_PREFIX
from agents.kafka.topics import SCHEMA_HEADER, Topics
from streams.core.decode import REASONS, Rejection, decode
from streams.core.event import Event
from streams.core.limits import (
    MAX_ARRAY_ITEMS,
    MAX_DEPTH,
    MAX_OBJECT_KEYS,
    MAX_STRING_CHARS,
)
from streams.core.partitioning import partition_for
from streams.core.state import UserState
from streams.settings import Settings
from tests.support.bad_corpus import CASES
from tests.support.corpus_bases import (
    ACCEPTED,
    CANONICAL,
    CATEGORIES,
    ORDER,
    PRODUCT_VIEW,
    PURCHASE,
    SEGMENT,
    VIEW,
    Case,
)
from tests.support.inputs import DECODER_REASONS, assert_sane

NOW = 1_768_050_000.0  # 2026-01-10T12:20Z: after every valid event below


# --- (a) the corpus through the decoder ------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case_is_rejected_with_its_reason(case: Case) -> None:
    got = decode(case.raw)
    assert isinstance(got, Rejection), got
    assert got.reason == case.reason, got
    assert got.message and len(got.message) < 400
    if case.category in ("time", "amount", "currency"):  # the dead letter names the event
        assert got.event_id in ("bad-e1", "bad-e2", "bad-m1", "bad-m2", "bad-m5", "bad-m6"), got
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
    return {k: {f: x for f, x in v.items() if not f.startswith(("consumed", "refits", "order"))}
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
