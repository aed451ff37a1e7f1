"""journey's wire contract: versioned JSON Schema files and a loader for them.

Each schema lives in this folder as ``<name>.v<version>.json`` (draft 2020-12). The files
are the single source of truth: validators are compiled from them at first use, never
from a copy. Compiled validators check ``format: date-time`` strictly (RFC 3339 with a
mandatory offset), and resolve ``$ref`` only to files in this folder, never the network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import datetime
from functools import cache
from math import inf
from pathlib import Path
from typing import Any

import fastjsonschema

__all__ = [
    "BASE_URI",
    "SCHEMA_DIR",
    "compile_schema",
    "is_valid",
    "leaf_predicate",
    "load",
    "names",
    "parse_date_time",
    "validator",
]

SCHEMA_DIR = Path(__file__).resolve().parent
BASE_URI = "https://journey.dev/schemas/"

_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9-]+)\.v(?P<version>[0-9]+)\.json$")

# RFC 3339 section 5.6 `date-time`, offset mandatory. ASCII digits only ([0-9], not \d,
# which would admit other scripts' digits). `T`/`Z` may be lower case per the RFC.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:([0-5][0-9]):([0-5][0-9]|60)(\.[0-9]+)?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# "YYYY-MM-DDTHH:" + zone -> (epoch seconds at HH:00 in that zone, offset minutes), for
# hours already validated. Events arrive in bursts from the same hours, so nearly every
# timestamp is two dictionary lookups. Bounded: a flood of odd hours only re-validates.
_HOURS: dict[str, tuple[float, int]] = {}
_HOURS_CAP = 8192
_MINUTE_SECOND = {f"{m:02d}:{s:02d}": m * 60 + s for m in range(60) for s in range(60)}
# Same arithmetic as the general path (microseconds times 1e-6), so a time parses to the
# same float whichever path it takes.
_MILLIS = {f"{i:03d}": (i * 1000) * 1e-6 for i in range(1000)}


def parse_date_time(text: str) -> tuple[float, int] | None:
    """RFC 3339 ``text`` as (epoch seconds, UTC offset in minutes); None unless strict RFC 3339.

    A time without an offset is ambiguous, so it is rejected rather than guessed. ``Z`` and
    ``-00:00`` both give offset 0. A leap second (``:60``) counts as the next minute's first
    instant; digits past the microsecond are dropped.
    """
    if type(text) is not str:
        return _parse(text) if isinstance(text, str) else None
    # The common shape, `2024-05-03T18:21:07+02:00` or `...07Z`: a known hour and zone
    # around a minute:second. Any hit is fully valid, since both tables hold only that.
    hour = _HOURS.get(text[:14] + text[19:])
    ms = _MINUTE_SECOND.get(text[14:19])
    if hour is not None and ms is not None:
        return hour[0] + ms, hour[1]
    if len(text) == 24 and text[19] == "." and text[23] == "Z":  # JavaScript's toISOString
        hour = _HOURS.get(text[:14] + "Z")
        millis = _MILLIS.get(text[20:23])
        if hour is not None and ms is not None and millis is not None:
            return hour[0] + ms + millis, 0
    return _parse(text)


def _parse(text: str) -> tuple[float, int] | None:
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        return None
    minute, second, frac, zone = m.groups()
    if text[10] == "t" or zone == "z":
        text, zone = text.upper(), zone.upper()
    key = text[:14] + zone
    hour = _HOURS.get(key)
    if hour is None:
        try:  # fromisoformat checks the calendar: no 31 April, no hour 24
            dt = datetime.fromisoformat(text[:14] + "00:00" + ("+00:00" if zone == "Z" else zone))
        except ValueError:
            return None
        off = dt.utcoffset()
        offset = off.days * 1440 + off.seconds // 60  # type: ignore[union-attr]
        hour = (float((dt.toordinal() - 719163) * 86400 + dt.hour * 3600 - offset * 60), offset)
        if len(_HOURS) >= _HOURS_CAP:
            _HOURS.clear()
        _HOURS[key] = hour
    epoch = hour[0] + int(minute) * 60 + int(second)
    if frac:
        epoch += int(frac[1:7].ljust(6, "0")) * 1e-6
    return epoch, hour[1]


def _is_date_time(text: str) -> bool:
    return parse_date_time(text) is not None


FORMATS: Mapping[str, Callable[[str], bool]] = {"date-time": _is_date_time}


def _path(name: str, version: int) -> Path:
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"bad schema name {name!r}")
    return SCHEMA_DIR / f"{name}.v{int(version)}.json"


@cache
def _read(name: str, version: int) -> dict[str, Any]:
    path = _path(name, version)
    if not path.is_file():
        raise KeyError(f"no schema {path.name} in {SCHEMA_DIR} (known: {', '.join(names())})")
    with path.open("rb") as fh:
        loaded: dict[str, Any] = json.load(fh)
    return loaded


def load(name: str, version: int = 1) -> dict[str, Any]:
    """The schema document ``<name>.v<version>.json`` as a fresh dict (safe to modify)."""
    return deepcopy(_read(name, version))


def names() -> list[str]:
    """Names of the schemas in SCHEMA_DIR, without version (``user-event``, ...)."""
    found = set()
    for p in SCHEMA_DIR.glob("*.json"):
        m = _FILE_NAME.match(p.name)
        if m:
            found.add(m.group("name"))
    return sorted(found)


def _local_ref(uri: str) -> Any:
    """Resolve a ``$ref`` to another journey schema from this folder; refuse anything else."""
    if not uri.startswith(BASE_URI):
        raise ValueError(f"refusing to resolve non-journey $ref {uri!r}")
    m = _FILE_NAME.match(uri[len(BASE_URI):].split("#", 1)[0])
    if m is None:
        raise ValueError(f"unknown journey schema {uri!r}")
    return _read(m.group("name"), int(m.group("version")))


_HANDLERS = {"https": _local_ref, "http": _local_ref, "file": _local_ref}


def compile_schema(definition: Mapping[str, Any],
                   formats: Mapping[str, Callable[[str], bool]] | None = None,
                   ) -> Callable[[Any], Any]:
    """Compile a schema document (or a variant derived from one) the way ``validator`` does.

    Defaults are not injected (``use_default=False``): validation must never change the
    object it checks.
    """
    # A deep copy: fastjsonschema rewrites the `$ref`s of the document it is given.
    return fastjsonschema.compile(
        deepcopy(dict(definition)), handlers=_HANDLERS, formats=dict(formats or FORMATS),
        use_default=False)


@cache
def validator(name: str, version: int = 1) -> Callable[[Any], Any]:
    """Compiled validator of ``<name>.v<version>.json``; raises JsonSchemaValueException."""
    return compile_schema(_read(name, version))


def is_valid(name: str, obj: Any, version: int = 1) -> bool:
    try:
        validator(name, version)(obj)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


# Keywords a leaf predicate understands; a schema using any other is refused.
_LEAF_KEYWORDS = frozenset({"description", "type", "minLength", "maxLength", "pattern",
                            "minimum", "maximum", "enum", "const", "items", "format"})


def _ecma_regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema `$` is end of string; Python's `$` also matches before a final newline.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def leaf_predicate(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A fast, strict yes/no check for a simple leaf schema (a string, number, enum...).

    True means the schema surely accepts the value. It may say False where the schema
    would accept (5.0 for an integer, NaN for a number): callers that need the exact
    verdict ask the compiled validator then. Raises LookupError for a schema it cannot
    fully check, so a hot path never vouches for rules it does not know. ``$ref`` may
    only point into ``defs`` (the document's ``$defs``).
    """
    ref = node.get("$ref")
    if ref is not None:
        if not ref.startswith("#/$defs/") or set(node) - {"$ref", "description"}:
            raise LookupError(f"unsupported $ref {ref!r}")
        node = defs[ref[len("#/$defs/"):]]
    if set(node) - _LEAF_KEYWORDS or node.get("format", "date-time") != "date-time":
        raise LookupError(f"unsupported keywords in {sorted(node)}")
    kind = node.get("type")
    lo, hi = node.get("minLength", 0), node.get("maxLength", inf)
    vmin, vmax = node.get("minimum", -inf), node.get("maximum", inf)
    rx = _ecma_regex(node["pattern"]) if "pattern" in node else None
    if "const" in node or "enum" in node:
        allowed = [node["const"]] if "const" in node else list(node["enum"])
        if kind is not None or not all(type(a) is str for a in allowed):
            raise LookupError("only string enums are supported")
        choices = frozenset(allowed)
        return lambda v: type(v) is str and v in choices
    if kind == "string":
        if "format" in node:  # our date-time pattern is implied by the parser
            return lambda v: parse_date_time(v) is not None
        if rx is None:
            return lambda v: type(v) is str and lo <= len(v) <= hi
        return lambda v: type(v) is str and lo <= len(v) <= hi and rx.search(v) is not None
    if kind == "number":  # NaN and infinities are left to the caller's slow path
        return lambda v: ((type(v) is int or (type(v) is float and -inf < v < inf))
                          and vmin <= v <= vmax)
    if kind == "integer":
        return lambda v: type(v) is int and vmin <= v <= vmax
    if kind == "array" and set(node) <= {"type", "items", "description"}:
        item = leaf_predicate(node["items"], defs)
        return lambda v: type(v) is list and all(item(x) for x in v)
    raise LookupError(f"unsupported type {kind!r}")
