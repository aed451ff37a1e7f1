"""RFC 3339 rendering of epoch seconds (pure: no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

_DAY = 86400
_dates: dict[int, str] = {}  # "YYYY-MM-DDT" by UTC day number: a replay renders few days
_TWO = tuple(f"{i:02d}" for i in range(60))
_last: list[object] = [None, ""]  # the last whole UTC second rendered: an alert asks again


def rfc3339(t: float, offset_min: int = 0) -> str:
    """``t`` as RFC 3339 in the given UTC offset, to the millisecond when needed."""
    # Formatted from the fields: the same text as ``isoformat`` (with ``Z`` for UTC),
    # at a fraction of its cost; every alert carries four of these.
    whole = int(t) if -1e15 < t < 1e15 else None
    if offset_min == 0 and whole == t:
        # whole seconds in UTC, the usual case: the date from a cache, the time by
        # arithmetic (no fraction to round)
        last = _last
        if last[0] == whole:
            return last[1]  # type: ignore[return-value]
        day, sec = divmod(whole, _DAY)
        date = _dates.get(day)
        if date is None:
            d = datetime.fromtimestamp(day * _DAY, UTC)
            date = _dates[day] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
        h, rest = divmod(sec, 3600)
        m, s = divmod(rest, 60)
        text = date + _TWO[h] + ":" + _TWO[m] + ":" + _TWO[s] + "Z"
        last[0], last[1] = whole, text
        return text
    if offset_min == 0:
        dt = datetime.fromtimestamp(t, UTC)
        zone = "Z"
    else:
        dt = datetime.fromtimestamp(t, timezone(timedelta(minutes=offset_min)))
        zone = offset_text(offset_min)
    us = dt.microsecond
    frac = f".{us // 1000:03d}" if us else ""
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}{frac}{zone}")


def offset_text(offset_min: int) -> str:
    sign = "+" if offset_min >= 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{sign}{h:02d}:{m:02d}"
