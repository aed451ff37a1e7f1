"""RFC 3339 rendering of epoch seconds (pure: no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone


def rfc3339(t: float, offset_min: int = 0) -> str:
    """``t`` as RFC 3339 in the given UTC offset, to the millisecond when needed."""
    tz = UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))
    dt = datetime.fromtimestamp(t, tz)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def offset_text(offset_min: int) -> str:
    sign = "+" if offset_min >= 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{sign}{h:02d}:{m:02d}"
