"""Input bytes to a validated Event, or a Rejection that says why not.

Pure: no clock and no I/O beyond reading the schema files once. The contract is the JSON
Schema in ``schemas/`` (user-event.v1, segment-track.v1). A valid canonical event takes a
fast path whose checks are read off that schema at import; whatever the fast path cannot
vouch for goes to the compiled validator, which has the final say and names the field at
fault. A Segment call is checked against segment-track.v1, mapped onto a canonical event,
and that event is then checked like any other.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from functools import cache
from typing import Any, Final, NamedTuple

import fastjsonschema
import orjson

import schemas
from schemas import parse_date_time
from streams.core import event as ev
from streams.core.event import Event
from streams.core.timefmt import rfc3339

NOT_JSON: Final = "not_json"
NOT_AN_OBJECT: Final = "not_an_object"
INVALID_UTF8: Final = "invalid_utf8"
OVERSIZE: Final = "oversize"
TOO_DEEP: Final = "too_deep"
DUPLICATE_KEYS: Final = "duplicate_keys"
SCHEMA_VIOLATION: Final = "schema_violation"
MISSING_FIELD: Final = "missing_field"
UNKNOWN_TYPE: Final = "unknown_type"
INVALID_TIMESTAMP: Final = "invalid_timestamp"
INVALID_AMOUNT: Final = "invalid_amount"
UNKNOWN_CURRENCY: Final = "unknown_currency"
UNSUPPORTED_SEGMENT_CALL: Final = "unsupported_segment_call"

# Every reason a dead letter may carry: the decoder's above plus the core's time checks.
REASONS: Final[tuple[str, ...]] = tuple(
    schemas.load("dead-letter")["properties"]["reason"]["enum"])


class Rejection(NamedTuple):
    reason: str
    message: str
    event_id: str | None = None
    user_id: str | None = None


# (epoch seconds, UTC offset minutes) of an RFC 3339 date-time; None if no zone or invalid.
parse_timestamp: Final[Callable[[str], tuple[float, int] | None]] = parse_date_time


# --- the canonical contract, read off user-event.v1 ---------------------------------------

_SCHEMA: Final = schemas.load("user-event")
_DEFS: Final = _SCHEMA["$defs"]
_TOP: Final = _SCHEMA["properties"]
_TOP_KEYS: Final = frozenset(_TOP)
_TYPES: Final = tuple(_TOP["type"]["enum"])


def _leaf(node: Mapping[str, Any]) -> Callable[[Any], bool]:
    return schemas.leaf_predicate(node, _DEFS)


class _Rule(NamedTuple):
    """What one event type needs under ``properties``, from the schema's if/then."""
    needs_properties: bool
    required: tuple[str, ...]
    checks: tuple[tuple[str, Callable[[Any], bool]], ...]


def _type_rules(doc: Mapping[str, Any]) -> dict[str, _Rule | None]:
    """Per event type its fast checks, or None where the schema says more than they cover."""
    types = list(doc["properties"]["type"]["enum"]) + [ev.OTHER]
    needs = dict.fromkeys(types, False)
    required: dict[str, list[str]] = {t: [] for t in types}
    checks: dict[str, list[tuple[str, Callable[[Any], bool]]]] = {t: [] for t in types}
    opaque: set[str] = set()
    for branch in doc.get("allOf", ()):
        cond = branch.get("if", {}).get("properties", {}).get("type", {})
        hit = [cond["const"]] if "const" in cond else list(cond.get("enum", []))
        then = branch.get("then", {})
        inner = then.get("properties", {}).get("properties", {})
        if not (hit and set(branch) <= {"description", "if", "then"}
                and set(then) <= {"required", "properties"}
                and set(then.get("required", [])) <= {"properties"}
                and set(then.get("properties", {})) <= {"properties"}
                and set(inner) <= {"description", "required", "properties"}):
            opaque.update(types)  # a rule of a shape we cannot read: trust only the validator
            continue
        for t in hit:
            needs[t] = needs[t] or "properties" in then.get("required", [])
            required[t] += inner.get("required", [])
            try:
                checks[t] += [(k, _leaf(s)) for k, s in inner.get("properties", {}).items()]
            except LookupError:
                opaque.add(t)
    return {t: None if t in opaque else _Rule(needs[t], tuple(required[t]), tuple(checks[t]))
            for t in types}


_RULES: Final = _type_rules(_SCHEMA)
_CHECK_SOURCE: Final = _leaf(_TOP["source"])
_CHECK_SCHEMA: Final = _leaf(_TOP["schema"])
_CHECK_TIMEZONE: Final = _leaf(_TOP["properties"]["properties"]["timezone"])


# The rest of the document must be what _build checks inline, or it would vouch wrongly.
_ID_NODES: Final = (_TOP["event_id"], _DEFS["user_id"])
if set(_SCHEMA) - {"$schema", "$id", "title", "description", "type", "required",
                   "additionalProperties", "properties", "allOf", "$defs", "examples"} or \
        _SCHEMA["additionalProperties"] is not False or \
        set(_SCHEMA["required"]) - {"event_id", "user_id", "type", "occurred_at"} or \
        set(_TOP) != {"schema", "event_id", "user_id", "type", "occurred_at", "source",
                      "properties"} or \
        _TOP["user_id"].get("$ref") != "#/$defs/user_id" or \
        any(set(n) != {"description", "type", "minLength", "maxLength"} or n["type"] != "string"
            or n["minLength"] != 1 for n in _ID_NODES) or \
        set(_TOP["properties"]) - {"description", "type", "properties"} or \
        set(_TOP["properties"]["properties"]) != {"timezone"} or \
        set(_TOP["type"]) - {"description", "enum"} or \
        _TOP["occurred_at"].get("$ref") != "#/$defs/date_time" or \
        _DEFS["date_time"].get("format") != "date-time":
    raise LookupError("user-event.v1 changed shape; update decode._build")
_EVENT_ID_MAX: Final = int(_ID_NODES[0]["maxLength"])
_USER_ID_MAX: Final = int(_ID_NODES[1]["maxLength"])
# _build makes Events positionally (a third of the cost of keywords); insist on the order.
_EVENT_FIELDS: Final = ("event_id", "user_id", "type", "occurred_at", "utc_offset_min",
                        "amount", "currency", "order_id", "rating", "channel",
                        "referred_user_id", "source", "properties")
if tuple(f.name for f in fields(Event))[:len(_EVENT_FIELDS)] != _EVENT_FIELDS:
    raise LookupError("Event's field order changed; update decode._build")
# Which of Event's typed fields each type lifts out of `properties`.
_MONEY, _RATING, _CHANNEL, _REFERRED = 1, 2, 3, 4
_LIFT: Final = {ev.PURCHASE: _MONEY, ev.REFUND: _MONEY, ev.REVIEW: _RATING,
                ev.UNSUBSCRIBE: _CHANNEL, ev.RESUBSCRIBE: _CHANNEL, ev.MESSAGE_OPENED: _CHANNEL,
                ev.MESSAGE_CLICKED: _CHANNEL, ev.REFERRAL: _REFERRED}


@cache
def _validator(allow_other: bool) -> Callable[[Any], Any]:
    if not allow_other:
        return schemas.validator("user-event")
    # Segment track names we do not map become "other": the same contract, one more type.
    doc = schemas.load("user-event")
    doc["properties"]["type"]["enum"].append(ev.OTHER)
    return schemas.compile_schema(doc)


# --- explaining a rejection ---------------------------------------------------------------

def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _ids(obj: Any) -> tuple[str | None, str | None]:
    """Best-effort event and user id of a rejected object, for the dead letter."""
    if not isinstance(obj, dict):
        return None, None

    def pick(*keys: str) -> str | None:
        return next((v for v in map(obj.get, keys) if type(v) is str and 0 < len(v) <= 200),
                    None)
    return pick("event_id", "messageId"), pick("user_id", "userId", "anonymousId")


def _explain(exc: fastjsonschema.JsonSchemaValueException, obj: dict[str, Any],
             segment: bool = False) -> Rejection:
    """A validator error as a dead-letter reason and a message that names the field."""
    name = exc.name or "data"
    field = "" if name == "data" else name.removeprefix("data.")
    rule, value, ids = exc.rule, exc.value, _ids(obj)
    if rule == "required" and isinstance(value, dict):
        missing = [k for k in exc.rule_definition or () if k not in value]
        text = ", ".join((field + "." if field else "") + k for k in missing)
        t = obj.get("type")
        r = _RULES.get(t) if type(t) is str and not segment else None
        if missing == ["properties"] and not field and r is not None and r.required:
            text += f" ({t} events need " + ", ".join("properties." + k for k in r.required) + ")"
        return Rejection(MISSING_FIELD, f"missing field {text}", *ids)
    if rule == "anyOf" and segment and not field:  # no user id, or no time at all
        names = [b["required"][0] for b in exc.rule_definition or () if b.get("required")]
        if not any(n in obj for n in names):
            return Rejection(MISSING_FIELD, "missing field: one of " + ", ".join(names), *ids)
        return Rejection(SCHEMA_VIOLATION, " or ".join(names) + " must be a non-empty string",
                         *ids)
    if rule == "additionalProperties" and isinstance(value, dict):
        extra = sorted(map(str, set(value) - set((exc.definition or {}).get("properties", {}))))
        return Rejection(SCHEMA_VIOLATION, f"unexpected field(s) {', '.join(extra)}", *ids)
    if field == "type":
        if segment:
            return Rejection(UNSUPPORTED_SEGMENT_CALL, f"Segment call type {_show(value)} is "
                             "not supported; journey takes track, page and screen", *ids)
        return Rejection(UNKNOWN_TYPE, f"unknown event type {_show(value)}; expected one of "
                         + ", ".join(_TYPES), *ids)
    if field in ("occurred_at", "timestamp", "originalTimestamp", "sentAt"):
        return Rejection(INVALID_TIMESTAMP, f"{field} {_show(value)} is not an RFC 3339 "
                         "date-time with a UTC offset, e.g. 2024-05-03T18:21:07+02:00", *ids)
    if field == "properties.amount":
        return Rejection(INVALID_AMOUNT, "properties.amount must be a non-negative number, "
                         f"got {_show(value)}", *ids)
    if field == "properties.currency":
        return Rejection(UNKNOWN_CURRENCY, "properties.currency must be an ISO 4217 code of "
                         f"three upper-case letters, got {_show(value)}", *ids)
    text = exc.message.removeprefix("data.")
    return Rejection(SCHEMA_VIOLATION, f"{text} (got {_show(value)})", *ids)


# --- building the Event ---------------------------------------------------------------------

def _finite(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return None
    return f if math.isfinite(f) else None


def _build(o: dict[str, Any], allow_other: bool) -> Event | Rejection:
    """The Event of a canonical object, checked against user-event.v1."""
    t: Any = o.get("type")
    props: Any = o.get("properties")
    eid, uid = o.get("event_id"), o.get("user_id")
    when = parse_date_time(o.get("occurred_at"))  # type: ignore[arg-type]
    rule = _RULES.get(t) if type(t) is str else None
    # The fast path: checks read off the schema, that pass only if the schema surely would.
    ok = False
    if (rule is not None and when is not None and o.keys() <= _TOP_KEYS
            and type(eid) is str and 0 < len(eid) <= _EVENT_ID_MAX
            and type(uid) is str and 0 < len(uid) <= _USER_ID_MAX
            and (t != ev.OTHER or allow_other)
            and ("schema" not in o or _CHECK_SCHEMA(o["schema"]))
            and ("source" not in o or _CHECK_SOURCE(o["source"]))):
        if props is None:
            ok = "properties" not in o and not rule.needs_properties
        elif type(props) is dict and ("timezone" not in props
                                      or _CHECK_TIMEZONE(props["timezone"])):
            ok = not (rule.required or rule.checks) or (
                all(k in props for k in rule.required)
                and all(check(props[k]) for k, check in rule.checks if k in props))
    if not ok:
        try:  # the validator has the last word, and names the field at fault
            _validator(allow_other)(o)
        except fastjsonschema.JsonSchemaValueException as exc:
            return _explain(exc, o)
        if when is None:  # the schema and the parser disagree: never silently accept
            return Rejection(INVALID_TIMESTAMP, f"occurred_at {_show(o['occurred_at'])} "
                             "could not be read", *_ids(o))
    if props is None:
        props = {}
    amount = currency = order_id = rating = channel = referred = None
    lift = _LIFT.get(t)
    if lift is not None:  # only what the schema has checked for this type
        if lift == _MONEY:
            amount = _finite(props["amount"])
            if amount is None:  # NaN or infinity, which only from_object can be handed
                return Rejection(INVALID_AMOUNT, "properties.amount must be a finite number, "
                                 f"got {_show(props['amount'])}", *_ids(o))
            currency, order_id = props["currency"], props.get("order_id")
        elif lift == _RATING:
            rating = int(props["rating"])
        elif lift == _CHANNEL:
            channel = props.get("channel")
        else:
            referred = props["referred_user_id"]
    return Event(eid, uid, t, when[0], when[1], amount, currency, order_id,  # type: ignore[arg-type,index]
                 rating, channel, referred, o.get("source"), props)


# --- Segment ----------------------------------------------------------------------------------

SEGMENT_CALLS: Final = frozenset({"track", "page", "screen", "identify", "group", "alias"})
# Segment Spec names (e-commerce v2, email, mobile, B2B SaaS) and what they are to journey.
# The spec has no referral event, so nothing maps to "referral".
SEGMENT_EVENTS: Final[Mapping[str, str]] = {
    "Order Completed": ev.PURCHASE, "Order Refunded": ev.REFUND,
    "Product Viewed": ev.PRODUCT_VIEW, "Product Clicked": ev.PRODUCT_VIEW,
    "Product List Viewed": ev.PAGE_VIEW, "Product List Filtered": ev.PAGE_VIEW,
    "Products Searched": ev.SEARCH, "Product Added": ev.ADD_TO_CART,
    "Product Removed": ev.REMOVE_FROM_CART, "Product Added to Wishlist": ev.WISHLIST_ADD,
    "Checkout Started": ev.CHECKOUT_STARTED, "Product Shared": ev.SHARE,
    "Cart Shared": ev.SHARE, "Product Reviewed": ev.REVIEW,
    "Coupon Applied": ev.COUPON_REDEEMED, "Signed Up": ev.SIGNUP,
    "Application Opened": ev.SESSION_START,
    "Email Opened": ev.MESSAGE_OPENED, "Push Notification Opened": ev.MESSAGE_OPENED,
    "Email Link Clicked": ev.MESSAGE_CLICKED, "Push Notification Tapped": ev.MESSAGE_CLICKED,
    "Unsubscribed": ev.UNSUBSCRIBE,
}
# The channel a name implies. "Unsubscribed" comes from the email spec: email, unless the
# call names one of our channels itself.
_SEGMENT_CHANNEL: Final = {
    "Email Opened": "email", "Email Link Clicked": "email", "Unsubscribed": "email",
    "Push Notification Opened": "app_push", "Push Notification Tapped": "app_push"}
_CHANNELS: Final = frozenset(_DEFS["channel"]["enum"])
SEGMENT_DEFAULT_CURRENCY: Final = "USD"


def _money(holder: dict[str, Any], key: str, where: str) -> float | Rejection:
    """A non-negative money value; trackers often send numbers as strings, so take those."""
    v = holder[key]
    f = _finite(v.strip()) if isinstance(v, str) else _finite(v)
    if f is None or f < 0:
        return Rejection(INVALID_AMOUNT, f"{where}.{key} must be a non-negative number, got "
                         f"{_show(v)}")
    return f


def _order_amount(props: dict[str, Any], name: str) -> float | Rejection:
    """revenue, else total, else the sum of product price times quantity."""
    for key in ("revenue", "total"):
        if props.get(key) is not None:
            return _money(props, key, "properties")
    products = props.get("products")
    if not isinstance(products, list) or not products:
        return Rejection(MISSING_FIELD, f"missing field: {name} needs properties.revenue, "
                         "properties.total or priced properties.products")
    total = 0.0
    for i, p in enumerate(products):
        if not isinstance(p, dict) or p.get("price") is None:
            return Rejection(MISSING_FIELD, f"missing field properties.products[{i}].price")
        price, qty = (_money(p, k, f"properties.products[{i}]") if p.get(k) is not None
                      else 1.0 for k in ("price", "quantity"))
        for part in (price, qty):
            if isinstance(part, Rejection):
                return part
        total += price * qty  # type: ignore[operator]
    return total


def _from_segment(obj: dict[str, Any]) -> dict[str, Any] | Rejection:
    """A Segment track/page/screen call as a canonical user-event object."""
    call = obj.get("type")
    if call in ("identify", "group", "alias"):
        return Rejection(UNSUPPORTED_SEGMENT_CALL, f"Segment {call} calls carry no user "
                         "activity; journey takes track, page and screen", *_ids(obj))
    try:
        schemas.validator("segment-track")(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _explain(exc, obj, segment=True)
    props = dict(obj.get("properties") or {})
    name = obj.get("event") if call == "track" else None
    etype = ev.PAGE_VIEW if name is None else SEGMENT_EVENTS.get(name, ev.OTHER)
    if name is not None:
        props["segment_event"] = name
    if etype in (ev.PURCHASE, ev.REFUND):
        amount = _order_amount(props, str(name))
        if isinstance(amount, Rejection):
            return amount._replace(event_id=obj["messageId"], user_id=_ids(obj)[1])
        props["amount"] = amount
        if props.get("currency") is None:
            props["currency"] = SEGMENT_DEFAULT_CURRENCY
        if type(props.get("order_id")) is int:
            props["order_id"] = str(props["order_id"])
    elif etype == ev.REVIEW:  # the spec types rating as a string ("5")
        r = props.get("rating")
        if isinstance(r, str) and r.strip().isdecimal() and r.strip().isascii():
            props["rating"] = int(r)
    elif name in _SEGMENT_CHANNEL and (etype != ev.UNSUBSCRIBE
                                       or props.get("channel") not in _CHANNELS):
        props["channel"] = _SEGMENT_CHANNEL[name]  # type: ignore[index]
    context = obj.get("context")
    if isinstance(context, dict) and _CHECK_TIMEZONE(context.get("timezone")):
        props["timezone"] = context["timezone"]
    elif "timezone" in props and not _CHECK_TIMEZONE(props["timezone"]):
        del props["timezone"]  # no meaning in the Segment Spec: not worth losing the event
    when = next(obj[k] for k in ("timestamp", "originalTimestamp", "sentAt")
                if obj.get(k) is not None)
    return {"event_id": obj["messageId"], "user_id": obj.get("userId") or obj["anonymousId"],
            "type": etype, "occurred_at": when, "source": "segment", "properties": props}


# --- entry points -----------------------------------------------------------------------------

_JSON_KINDS: Final = {type(None): "null", bool: "boolean", int: "number", float: "number",
                      str: "string", list: "array"}


def _json_kind(v: Any) -> str:
    return _JSON_KINDS.get(type(v), type(v).__name__)


def from_object(obj: Any) -> Event | Rejection:
    """Decode an already-parsed JSON value: a canonical event or a Segment call. Never raises.

    A canonical event's Event keeps ``obj["properties"]`` itself, not a copy.
    """
    if not isinstance(obj, dict):
        return Rejection(NOT_AN_OBJECT, f"input is a JSON {_json_kind(obj)}, not an object")
    t = obj.get("type")
    if "messageId" in obj or (type(t) is str and t in SEGMENT_CALLS):
        mapped = _from_segment(obj)
        return mapped if isinstance(mapped, Rejection) else _build(mapped, allow_other=True)
    return _build(obj, allow_other=False)


def decode(raw: bytes | bytearray | memoryview | str, *, max_bytes: int = 65536,
           max_depth: int = 32) -> Event | Rejection:
    """One input record (a Kafka value, a replay line) to an Event or a Rejection.

    Never raises. Checks in order: size, UTF-8 and JSON syntax (NaN/Infinity literals are
    not JSON: ``not_json``), object-ness, nesting depth, duplicate keys, then the schema.
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
    # Bracket counts bound the depth from above, so the walk runs only when it could fail.
    braces = data.count(b"{")
    if (braces > max_depth or (b"[" in data and braces + data.count(b"[") > max_depth)) and \
            _deeper_than(obj, max_depth):
        return Rejection(TOO_DEEP, f"input nests more than {max_depth} levels deep", *_ids(obj))
    again = orjson.dumps(obj)
    if again != data:  # see _duplicate_key: equal means nothing was lost
        dup = _duplicate_key(data, again)
        if dup is not None:
            return Rejection(DUPLICATE_KEYS, f"key {_show(dup)} appears twice in one object, "
                             "so which value was meant is unknowable", *_ids(obj))
    t = obj.get("type")
    if "messageId" in obj or (type(t) is str and t in SEGMENT_CALLS):
        return from_object(obj)
    return _build(obj, False)


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


def _deeper_than(obj: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


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
                  event.referred_user_id))
    props = {**event.properties, **{k: v for k, v in lifted if v is not None}}
    out: dict[str, Any] = {
        "event_id": event.event_id, "user_id": event.user_id, "type": event.type,
        "occurred_at": rfc3339(event.occurred_at, event.utc_offset_min or 0)}
    if event.source is not None:
        out["source"] = event.source
    if props:
        out["properties"] = props
    return out
