"""The time fields of a Segment call, mended into RFC 3339 where Segment's own API reads them.

journey's contracts want RFC 3339 with an offset. Segment's libraries and the apps around
them also send, and Segment's API takes:

- a null time field beside a given one (analytics-java with a ``serializeNulls()`` Gson
  writes ``"sentAt": null`` on every message): a null says nothing, like a missing key;
- ISO 8601's basic offset, ``+0000``, ``+0530`` or ``+02`` (Java's SimpleDateFormat ``Z``,
  Jackson before 2.11, strftime's ``%z``): the same instant as ``+00:00``;
- no offset at all (.NET's ``DateTime.ToString("o")`` of a DateTime of Kind Unspecified,
  analytics_flutter before 1.1's ``DateTime.now().toIso8601String()``): Segment's API reads
  it as UTC, its docs say every timestamp is UTC, and journey places it where Segment does.

Only the decoder's failure path mends: a call the contract already takes costs nothing.
:func:`sent_at` reads when the device sent a call, by its own clock, which tells the core
how far that clock runs fast (see ``streams.core.clock``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from schemas import parse_date_time
from streams.core.limits import EARLIEST_EVENT_AT, LATEST_EVENT_AT

TIME_FIELDS: Final = ("timestamp", "originalTimestamp", "sentAt")
# An RFC 3339 date and time, then the zone as ISO 8601 allows beyond RFC 3339: hours and
# minutes without the colon, hours alone, or nothing. ASCII digits only, like the parser.
_ISO_8601: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?)"
    r"(?:([+-])([01][0-9]|2[0-3])([0-5][0-9])?)?")


def as_rfc3339(text: str) -> str | None:
    """``text`` as the RFC 3339 date-time of the same instant and offset, if it is one in
    ISO 8601 basic-offset form or without an offset (then UTC); None for anything else."""
    m = _ISO_8601.fullmatch(text)
    if m is None:
        return None
    stamp, sign, hours, minutes = m.groups()
    fixed = stamp + (f"{sign}{hours}:{minutes or '00'}" if sign else "Z")
    return fixed if parse_date_time(fixed) is not None else None  # the calendar decides


def mended(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The call with null time fields dropped and ISO 8601 times in RFC 3339, and the
    original value of each field it changed; None when there is nothing to mend."""
    was: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for key in TIME_FIELDS:
        if key not in obj:
            continue
        value = obj[key]
        if value is None:
            was[key] = None
        elif type(value) is str and parse_date_time(value) is None:
            text = as_rfc3339(value)
            if text is not None:
                was[key], fixed[key] = value, text
    if not was:
        return None
    out = {k: v for k, v in obj.items() if k not in was or k in fixed}
    out.update(fixed)
    return out, was


def sent_at(obj: dict[str, Any]) -> float | None:
    """A call's ``sentAt`` in epoch seconds, read as its other times are; None if it has
    none that reads as a time, or if Segment delivered it (it has a ``receivedAt``): its
    ``timestamp`` is then corrected for the device's clock already."""
    value = obj.get("sentAt")
    if type(value) is not str or "receivedAt" in obj:
        return None
    when = parse_date_time(value)
    if when is None:
        text = as_rfc3339(value)
        when = None if text is None else parse_date_time(text)
    if when is None or not EARLIEST_EVENT_AT <= when[0] < LATEST_EVENT_AT:
        return None
    return when[0]
