"""The canonical contract, user-event.v1: a parsed object to an Event, or why not.

A valid canonical event takes a fast path whose checks are read off the schema at
import; whatever the fast path cannot vouch for goes to the compiled validator, which has
the final say and names the field at fault. On top of the schema, the decoder refuses
what JSON Schema cannot say: non-finite amounts and implausible event times.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, Final

import fastjsonschema

import schemas
from schemas import parse_date_time
from streams.core import event as ev
from streams.core.event import Event
from streams.core.limits import (
    EARLIEST_EVENT_AT,
    EVENT_TIME_RANGE,
    LATEST_EVENT_AT,
    MAX_AMOUNT_TEXT,
)
from streams.core.rejection import (
    INVALID_AMOUNT,
    INVALID_TIMESTAMP,
    MISSING_FIELD,
    SCHEMA_VIOLATION,
    UNKNOWN_CURRENCY,
    UNKNOWN_TYPE,
    UNSUPPORTED_SEGMENT_CALL,
    Rejection,
)
from streams.core.rejection import ids_of as _ids
from streams.core.rejection import show as _show

# --- the canonical contract, read off user-event.v1 ---------------------------------------

_SCHEMA: Final = schemas.load("user-event")
_DEFS: Final = _SCHEMA["$defs"]
_TOP: Final = _SCHEMA["properties"]
_TOP_KEYS: Final = frozenset(_TOP)
TYPES: Final = tuple(_TOP["type"]["enum"])  # the canonical types (no "other")
CHANNELS: Final = frozenset(_DEFS["channel"]["enum"])
CURRENCIES: Final = frozenset(_DEFS["currency"]["enum"])


def _leaf(node: Mapping[str, Any]) -> Callable[[Any], bool]:
    return schemas.leaf_predicate(node, _DEFS)


_Keys = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Rule:
    """What one event type needs under ``properties``, from the schema's if/then."""
    needs_properties: bool
    required: _Keys
    checks: tuple[tuple[str, Callable[[Any], bool]], ...]
    any_of: tuple[tuple[_Keys, ...], ...] = ()  # per anyOf, its branches' required keys
    implied: tuple[tuple[_Keys, _Keys], ...] = ()  # (if these keys, then these too)
    # the same keys as sets, for holds(): it runs for nearly every event decoded
    _required: frozenset[str] = dataclasses.field(init=False)
    _any_of: tuple[tuple[frozenset[str], ...], ...] = dataclasses.field(init=False)
    _implied: tuple[tuple[frozenset[str], frozenset[str]], ...] = dataclasses.field(init=False)
    trivial: bool = dataclasses.field(init=False)  # nothing to check: any properties object holds

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "_required", frozenset(self.required))
        put(self, "_any_of", tuple(tuple(map(frozenset, alts)) for alts in self.any_of))
        put(self, "_implied", tuple((frozenset(c), frozenset(n)) for c, n in self.implied))
        put(self, "trivial", not (self.required or self.checks or self.any_of or self.implied))

    def holds(self, props: Mapping[str, Any]) -> bool:
        """Whether ``props`` surely meets every rule the schema has for it."""
        keys = props.keys()
        if not keys >= self._required:
            return False
        for alts in self._any_of:
            if not any(keys >= keys_of for keys_of in alts):
                return False
        for given, need in self._implied:
            if keys >= given and not keys >= need:
                return False
        for k, check in self.checks:  # noqa: SIM110 - a loop: no generator per event
            if k in props and not check(props[k]):
                return False
        return True


def _required_only(node: Any) -> _Keys | None:
    """The keys of a node that says nothing but ``required``; None for any other node."""
    if type(node) is not dict or set(node) != {"required"} or not node["required"]:
        return None
    return tuple(node["required"])


def _type_rules(doc: Mapping[str, Any]) -> dict[str, _Rule | None]:
    """Per event type its fast checks, or None where the schema says more than they cover."""
    types = [*doc["properties"]["type"]["enum"], ev.OTHER]
    needs = dict.fromkeys(types, False)
    required: dict[str, list[str]] = {t: [] for t in types}
    checks: dict[str, list[tuple[str, Callable[[Any], bool]]]] = {t: [] for t in types}
    any_of: dict[str, list[tuple[_Keys, ...]]] = {t: [] for t in types}
    implied: dict[str, list[tuple[_Keys, _Keys]]] = {t: [] for t in types}
    opaque: set[str] = set()
    for branch in doc.get("allOf", ()):
        cond = branch.get("if", {}).get("properties", {}).get("type", {})
        hit = [cond["const"]] if "const" in cond else list(cond.get("enum", []))
        then = branch.get("then", {})
        inner = then.get("properties", {}).get("properties", {})
        # anyOf and if/then of bare `required` lists: "one of these keys", "this needs that"
        branches = inner.get("anyOf", ())
        alts = tuple(keys for keys in map(_required_only, branches) if keys is not None)
        given, need = _required_only(inner.get("if")), _required_only(inner.get("then"))
        if not (hit and set(branch) <= {"description", "if", "then"}
                and set(then) <= {"required", "properties"}
                and set(then.get("required", [])) <= {"properties"}
                and set(then.get("properties", {})) <= {"properties"}
                and set(inner) <= {"description", "required", "properties", "anyOf", "if",
                                   "then"}
                and len(alts) == len(branches) and ("anyOf" not in inner or alts)
                and ("if" in inner or "then" in inner) == (given is not None
                                                           and need is not None)):
            opaque.update(types)  # a rule of a shape we cannot read: trust only the validator
            continue
        for t in hit:
            needs[t] = needs[t] or "properties" in then.get("required", [])
            required[t] += inner.get("required", [])
            if alts:
                any_of[t].append(alts)
            if given is not None and need is not None:
                implied[t].append((given, need))
            try:
                checks[t] += [(k, _leaf(s)) for k, s in inner.get("properties", {}).items()]
            except LookupError:
                opaque.add(t)
    return {t: None if t in opaque else _Rule(needs[t], tuple(required[t]), tuple(checks[t]),
                                              tuple(any_of[t]), tuple(implied[t]))
            for t in types}


_RULES: Final = _type_rules(_SCHEMA)
_CHECK_SOURCE: Final = _leaf(_TOP["source"])
_CHECK_SCHEMA: Final = _leaf(_TOP["schema"])
CHECK_TIMEZONE: Final = _leaf(_TOP["properties"]["properties"]["timezone"])


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


def _money_rule_holds(r: _Rule | None) -> bool:
    """What build's money lifting relies on: an amount comes with its currency, and a
    money event without an amount names its order (a full refund)."""
    if r is None:
        return False
    with_currency = "currency" in r.required or (("amount",), ("currency",)) in r.implied
    named = "amount" in r.required or any(
        all({"amount", "order_id"} & set(keys) for keys in alts) for alts in r.any_of)
    return with_currency and named


if not all(_money_rule_holds(_RULES[t]) for t, lift in _LIFT.items() if lift == _MONEY):
    raise LookupError("user-event.v1's money rules changed; update canonical.build")


@cache
def validator(allow_other: bool) -> Callable[[Any], Any]:
    if not allow_other:
        return schemas.validator("user-event")
    # Segment track names we do not map become "other": the same contract, one more type.
    doc = schemas.load("user-event")
    doc["properties"]["type"]["enum"].append(ev.OTHER)
    return schemas.compile_schema(doc)


# --- explaining a rejection ---------------------------------------------------------------

# A refund names what it gives back: an amount, or the order it refunds in full.
REFUND_NEEDS: Final = ("a refund needs an amount (properties.amount, with properties.currency) "
                       "or the refunded order's id (properties.order_id, for a full refund)")


def _either(alts: Iterable[Iterable[str]]) -> str:
    """Alternative key sets under properties, in words: ``properties.a or properties.b``."""
    return " or ".join(" and ".join("properties." + k for k in keys) for keys in alts)


def _needs(r: _Rule) -> str:
    """What a type's rule needs under properties, in words: ``properties.a, properties.b``."""
    return ", ".join(["properties." + k for k in r.required] + [_either(a) for a in r.any_of])


# Fields of a Segment call that a canonical event never has: a body without "type" and
# "messageId" (as posted to Segment's HTTP API) is told so.
_SEGMENT_SHAPED: Final = frozenset({"userId", "anonymousId", "event", "traits"})


def _misspelt(missing: list[str], value: dict[str, Any], node: Any) -> str:
    """For a missing field, the key beside it that looks like its misspelling (a misspelt
    ``ocurred_at`` is reported as the missing field it was meant to be). Where ``node``
    forbids unknown keys the stray key is named as no field; where any key is allowed
    (``properties``) it is only offered as the likely meant one."""
    known = (node or {}).get("properties") if isinstance(node, dict) else None
    strict = isinstance(known, dict) and node.get("additionalProperties") is False
    given = [k for k in value if isinstance(k, str)
             and (not isinstance(known, dict) or k not in known)]
    hints = []
    for name in missing:
        close = difflib.get_close_matches(name, given, n=1, cutoff=0.75)
        if close:
            hints.append(f"{_show(close[0])} is not a field: did you mean {name}?" if strict
                         else f"did you mean {name}, not {_show(close[0])}?")
    return "; " + "; ".join(hints) if hints else ""


def explain(exc: fastjsonschema.JsonSchemaValueException, obj: dict[str, Any],
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
        if missing == ["properties"] and not field and r is not None \
                and (r.required or r.any_of):
            text += f" ({t} events need " + _needs(r) + ")"
        elif not field and not segment and _SEGMENT_SHAPED & obj.keys():
            text += ("; this looks like a Segment call, which journey takes with its type "
                     "(track, identify, ...) and messageId, as Segment's libraries send them")
        # a type's own rule (if type is ..., then required ...) says nothing of the other
        # keys at the top: the top of the contract does
        top = not field and not segment
        text += _misspelt(missing, value, _SCHEMA if top else exc.definition)
        return Rejection(MISSING_FIELD, f"missing field {text}", *ids)
    if rule == "anyOf" and field == "properties" and isinstance(value, dict):
        text = REFUND_NEEDS if obj.get("type") == ev.REFUND else "one of " + _either(
            b.get("required", ()) for b in exc.rule_definition or ())
        return Rejection(MISSING_FIELD, f"missing field: {text}", *ids)
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
                             "not supported; journey takes track, page, screen, identify, "
                             "alias and group", *ids)
        return Rejection(UNKNOWN_TYPE, f"unknown event type {_show(value)}; expected one of "
                         + ", ".join(TYPES), *ids)
    if field in ("occurred_at", "timestamp", "originalTimestamp", "sentAt"):
        if segment:  # what streams/core/segment_time.py mends
            return Rejection(INVALID_TIMESTAMP, f"{field} {_show(value)} is not an ISO 8601 "
                             "date-time, e.g. 2024-05-03T18:21:07+02:00, ...07+0200 or "
                             "...07.118Z (one without an offset is read as UTC)", *ids)
        return Rejection(INVALID_TIMESTAMP, f"{field} {_show(value)} is not an RFC 3339 "
                         "date-time with a UTC offset, e.g. 2024-05-03T18:21:07+02:00", *ids)
    if field == "properties.amount":
        if rule == "maximum":
            return Rejection(INVALID_AMOUNT, f"properties.amount {_show(value)} is more than "
                             f"the largest accepted amount, {MAX_AMOUNT_TEXT}", *ids)
        return Rejection(INVALID_AMOUNT, "properties.amount must be a non-negative number, "
                         f"got {_show(value)}", *ids)
    if field == "properties.currency":
        hint = ("; codes are upper case" if type(value) is str and value.upper() in CURRENCIES
                else "")
        return Rejection(UNKNOWN_CURRENCY, "properties.currency must be the ISO 4217 code of "
                         f"a currency, such as EUR or USD, got {_show(value)}{hint}", *ids)
    text = exc.message.removeprefix("data.")
    return Rejection(SCHEMA_VIOLATION, f"{text} (got {_show(value)})", *ids)


# --- building the Event ---------------------------------------------------------------------

def finite(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return None
    return f if math.isfinite(f) else None


def build(o: dict[str, Any], allow_other: bool, time_field: str = "occurred_at",
          stamp_is_local: bool = True) -> Event | Rejection:
    """The Event of a canonical object, checked against user-event.v1. ``time_field``
    names ``occurred_at`` in messages (a Segment call's ``timestamp``, say).
    ``stamp_is_local``: a numeric offset in the time is the user's own (see the end)."""
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
                                      or CHECK_TIMEZONE(props["timezone"])):
            ok = rule.trivial or rule.holds(props)
    if not ok:
        try:  # the validator has the last word, and names the field at fault
            validator(allow_other)(o)
        except fastjsonschema.JsonSchemaValueException as exc:
            return explain(exc, o)
        if when is None:  # the schema and the parser disagree: never silently accept
            return Rejection(INVALID_TIMESTAMP, f"occurred_at {_show(o['occurred_at'])} "
                             "could not be read", *_ids(o))
    if not EARLIEST_EVENT_AT <= when[0] < LATEST_EVENT_AT:  # type: ignore[index]
        return Rejection(INVALID_TIMESTAMP, f"{time_field} {_show(o['occurred_at'])} is not "
                         f"a plausible event time: journey takes {EVENT_TIME_RANGE}", *_ids(o))
    if props is None:
        props = {}
    amount = currency = order_id = rating = channel = referred = None
    lift = _LIFT.get(t)
    if lift is not None:  # only what the schema has checked for this type
        if lift == _MONEY:
            if "amount" in props:  # else a full refund of order_id (the schema saw to it)
                amount = finite(props["amount"])
                if amount is None:  # NaN or infinity, which only from_object can be handed
                    return Rejection(INVALID_AMOUNT, "properties.amount must be a finite "
                                     f"number, got {_show(props['amount'])}", *_ids(o))
                amount += 0.0  # -0.0 (which the schema allows) is plain 0 to the aggregates
            currency, order_id = props.get("currency"), props.get("order_id")
        elif lift == _RATING:
            rating = int(props["rating"])
        elif lift == _CHANNEL:
            channel = props.get("channel")
        else:
            referred = props["referred_user_id"]
    # "Z" (UTC) and "-00:00" (RFC 3339: offset unknown) say nothing of the user's local
    # time: most trackers stamp in UTC. Only a numeric offset is taken as the user's.
    stamp: str = o["occurred_at"]
    offset = None if not stamp_is_local or stamp[-1] in "Zz" or stamp.endswith("-00:00") \
        else when[1]  # type: ignore[index]
    return Event(eid, uid, t, when[0], offset, amount, currency, order_id,  # type: ignore[arg-type,index]
                 rating, channel, referred, o.get("source"), props)


