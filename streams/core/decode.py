"""Input bytes to a validated Event, or a Rejection that says why not.

Pure: no clock and no I/O beyond reading the schema files once. The contract is the JSON
Schema in ``schemas/`` (user-event.v1, segment-track.v1); this module is the entry point
and the checks on raw input. Its parts: ``limits`` (size and shape limits),
``canonical`` (user-event.v1 to an Event), ``segment`` (Segment calls, mapped onto
user-event objects first) and ``rejection`` (the reasons).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from schemas import parse_date_time
from streams.core.canonical import TYPES as _CANONICAL_TYPES
from streams.core.canonical import build as _build
from streams.core.canonical import validator as _validator  # noqa: F401 - the contract with "other"
from streams.core.event import Event
from streams.core.limits import (
    MAX_DEPTH,
    MAX_EVENT_BYTES_DEFAULT,
    SMALL_RECORD_BYTES,
    shape_problem,
)
from streams.core.rejection import (
    DUPLICATE_KEYS,
    INVALID_AMOUNT,
    INVALID_TIMESTAMP,
    INVALID_UTF8,
    MISSING_FIELD,
    NOT_AN_OBJECT,
    NOT_JSON,
    OVERSIZE,
    REASONS,
    SCHEMA_VIOLATION,
    TOO_DEEP,
    UNKNOWN_CURRENCY,
    UNKNOWN_TYPE,
    UNSUPPORTED_SEGMENT_CALL,
    Rejection,
)
from streams.core.rejection import ids_of as _ids
from streams.core.rejection import show as _show
from streams.core.segment import SEGMENT_CALLS, SEGMENT_DEFAULT_CURRENCY, SEGMENT_EVENTS
from streams.core.segment import from_segment as _from_segment
from streams.core.timefmt import rfc3339

__all__ = [
    "DUPLICATE_KEYS", "INVALID_AMOUNT", "INVALID_TIMESTAMP", "INVALID_UTF8", "MISSING_FIELD",
    "NOT_AN_OBJECT", "NOT_JSON", "OVERSIZE", "REASONS", "SCHEMA_VIOLATION", "SEGMENT_CALLS",
    "SEGMENT_DEFAULT_CURRENCY", "SEGMENT_EVENTS", "TOO_DEEP", "UNKNOWN_CURRENCY",
    "UNKNOWN_TYPE", "UNSUPPORTED_SEGMENT_CALL", "Rejection", "decode", "from_object",
    "parse_timestamp", "to_object",
]

# (epoch seconds, UTC offset minutes) of an RFC 3339 date-time; None if no zone or invalid.
parse_timestamp: Final[Callable[[str], tuple[float, int] | None]] = parse_date_time

_CANONICAL: Final = frozenset(_CANONICAL_TYPES)
_JSON_KINDS: Final = {type(None): "null", bool: "boolean", int: "number", float: "number",
                      str: "string", list: "array"}


def _json_kind(v: Any) -> str:
    return _JSON_KINDS.get(type(v), type(v).__name__)


def _is_segment(obj: dict[str, Any]) -> bool:
    """A Segment call by its type; or by its messageId, unless the type is one of ours (a
    canonical event with a stray messageId is told about the field, not about Segment)."""
    t = obj.get("type")
    if type(t) is str:
        return t in SEGMENT_CALLS or ("messageId" in obj and t not in _CANONICAL)
    return "messageId" in obj or "batch" in obj  # a Segment batch envelope has no type


def from_object(obj: Any) -> Event | Rejection:
    """Decode an already-parsed JSON value: a canonical event or a Segment call. Never raises.

    The size limits of ``decode`` are not checked here: they are about raw input. A
    canonical event's Event keeps ``obj["properties"]`` itself, not a copy.
    """
    if not isinstance(obj, dict):
        return Rejection(NOT_AN_OBJECT, f"input is a JSON {_json_kind(obj)}, not an object")
    return _from_segment(obj) if _is_segment(obj) else _build(obj, allow_other=False)


def decode(raw: bytes | bytearray | memoryview | str, *,
           max_bytes: int = MAX_EVENT_BYTES_DEFAULT, max_depth: int = MAX_DEPTH,
           ) -> Event | Rejection:
    """One input record (a Kafka value, a replay line) to an Event or a Rejection.

    Never raises. Checks in order: size, UTF-8 and JSON syntax (NaN/Infinity literals are
    not JSON: ``not_json``), object-ness, the limits of ``streams.core.limits`` (nesting
    depth, string, array and object sizes), duplicate keys, then the contract.
    """
    if type(raw) is bytes:
        data = raw
    elif isinstance(raw, str):
        if len(raw) > max_bytes:
            return Rejection(OVERSIZE, f"input of {len(raw)} characters exceeds the "
                             f"{max_bytes}-byte limit")
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            return Rejection(INVALID_UTF8, "input text has an unpaired surrogate at position "
                             f"{exc.start}, which UTF-8 cannot carry")
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        data = bytes(raw)
    else:
        return Rejection(NOT_JSON, f"expected bytes or str, got {type(raw).__name__}")
    if len(data) > max_bytes:
        return Rejection(OVERSIZE, f"input of {len(data)} bytes exceeds the {max_bytes}-byte "
                         "limit")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _unparsable(data, exc, max_depth)
    if type(obj) is not dict:
        return Rejection(NOT_AN_OBJECT, f"input is a JSON {_json_kind(obj)}, not an object")
    # The cheap half of the limits inline (most records are small and shallow).
    if len(data) > SMALL_RECORD_BYTES or data.count(b"{") > max_depth or b"[" in data:
        too_big = shape_problem(data, obj, max_depth)
        if too_big is not None:
            return too_big
    again = orjson.dumps(obj)
    if again != data:  # see _duplicate_key: equal means nothing was lost
        dup = _duplicate_key(data, again)
        if dup is not None:
            return Rejection(DUPLICATE_KEYS, f"key {_show(dup)} appears twice in one object, "
                             "so which value was meant is unknowable", *_ids(obj))
    t = obj.get("type")
    if type(t) is str:  # _is_segment, inline
        if t in SEGMENT_CALLS or ("messageId" in obj and t not in _CANONICAL):
            return _from_segment(obj)
        return _build(obj, False)
    return _from_segment(obj) if "messageId" in obj or "batch" in obj else _build(obj, False)


_NON_JSON_NUMBER: Final = re.compile(rb"(?<![\"\w])-?(NaN|Infinity)\b")


def _unparsable(data: bytes, exc: Exception, max_depth: int) -> Rejection:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection(INVALID_UTF8, f"input is not valid UTF-8 (byte 0x{data[bad.start]:02x}"
                         f" at position {bad.start})")
    text = str(exc)
    if "depth limit" in text or "recursion" in text.lower():
        return Rejection(TOO_DEEP, f"input nests more than {max_depth} levels deep")
    hint = "; NaN and Infinity are not JSON numbers" if _NON_JSON_NUMBER.search(data) else ""
    return Rejection(NOT_JSON, f"not valid JSON: {text}{hint}")


def _duplicate_key(data: bytes, again: bytes) -> str | None:
    """A key written twice in one object of ``data``, or None.

    orjson silently keeps the last of repeated keys, so re-serialising the parsed object
    loses every repeat. If that gives back the input (compact producers), nothing was lost.
    Otherwise count colons: outside strings a colon only ends a key, and strings keep
    their colons both ways unless one is written as a \\u escape, so equal counts also
    prove there is no repeat. Only a mismatch pays for the slow search.
    """
    if again == data:  # compact producers: nothing was lost in the round trip
        return None
    if (b"\\" not in data or b"\\u003" not in data) and data.count(b":") == again.count(b":"):
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in items:
            if k in seen and not found:
                found.append(k)
            seen.add(k)
        return dict(items)

    try:
        json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def to_object(event: Event) -> dict[str, Any]:
    """The user-event object of an Event (time to the millisecond), e.g. to re-emit it."""
    lifted = zip(("amount", "currency", "order_id", "rating", "channel", "referred_user_id"),
                 (event.amount, event.currency, event.order_id, event.rating, event.channel,
                  event.referred_user_id), strict=True)
    props = {**event.properties, **{k: v for k, v in lifted if v is not None}}
    out: dict[str, Any] = {
        "event_id": event.event_id, "user_id": event.user_id, "type": event.type,
        "occurred_at": rfc3339(event.occurred_at, event.utc_offset_min or 0)}
    if event.source is not None:
        out["source"] = event.source
    if props:
        out["properties"] = props
    return out
