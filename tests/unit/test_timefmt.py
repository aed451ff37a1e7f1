"""The hand-built RFC 3339 text equals what ``datetime.isoformat`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from streams.core.timefmt import rfc3339


def _by_isoformat(t: float, offset_min: int = 0) -> str:
    tz = UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))
    dt = datetime.fromtimestamp(t, tz)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


instants = st.one_of(
    st.floats(min_value=-2e9, max_value=4e9, allow_nan=False),
    st.integers(min_value=-2_000_000_000, max_value=4_000_000_000).map(float),  # fast path
    st.integers(min_value=0, max_value=4_000_000_000_000).map(lambda ms: ms / 1000),
)


@given(instants, st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))
def test_rfc3339_matches_isoformat(t: float, offset_min: int) -> None:
    assert rfc3339(t, offset_min) == _by_isoformat(t, offset_min)
    assert rfc3339(t) == _by_isoformat(t)


def test_rfc3339_examples() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1.5, 90) == "1970-01-01T01:30:01.500+01:30"
    assert rfc3339(-0.25, -30) == "1969-12-31T23:29:59.750-00:30"
