"""Channels, send windows, quiet hours and contact caps (streams.core.reach, timefmt)."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

import schemas
from streams.core import reach
from streams.core.decode import Rejection, decode
from streams.core.state import UserState, channel_mask, mask_channels
from streams.core.timefmt import offset_text, rfc3339
from streams.settings import Settings

BASE = 1_767_225_600.0  # 2026-01-01T00:00Z
DAY = 86400.0
HOUR = 3600.0


def user(hours: list[float] | None = None, consent: list[str] | None = None) -> UserState:
    """A user whose activity fell on these local hours."""
    s = UserState(user_id="u", first_seen_at=BASE, last_event_at=BASE, last_active_at=BASE)
    for h in hours or []:
        angle = h / 24.0 * 2.0 * math.pi
        s.hour_x += math.cos(angle)
        s.hour_y += math.sin(angle)
    if consent is not None:
        s.consent_mask = channel_mask(consent)
    return s


def quiet_hours(start: int, end: int) -> set[int]:
    """The quiet clock hours, walked from start to end (independent of reach.is_quiet)."""
    return {(start + i) % 24 for i in range((end - start) % 24)}


def local_hour(t: float, offset_min: int) -> float:
    return ((t + offset_min * 60) % DAY) / HOUR


# --- quiet hours and usual hour ------------------------------------------------------------


@pytest.mark.parametrize("start, end", [(21, 8), (22, 6), (1, 5), (0, 7), (23, 0), (9, 9)])
def test_is_quiet_matches_the_walked_hours(start: int, end: int) -> None:
    s = Settings().with_overrides(quiet_hours_start=start, quiet_hours_end=end)
    quiet = quiet_hours(start, end)
    for tenth in range(240):
        hour = tenth / 10
        assert reach.is_quiet(hour, s) == (int(hour) in quiet), hour


def test_usual_hour_is_a_circular_mean() -> None:
    assert reach.usual_hour(user()) is None
    assert reach.usual_hour(user([14.0, 14.0, 14.0])) == 14
    assert reach.usual_hour(user([23.0, 1.0])) == 0  # not 12, as a plain mean would say
    assert reach.usual_hour(user([22.9, 23.4, 23.1])) == 23
    assert reach.usual_hour(user([9.0, 11.0])) == 10


# --- channels -----------------------------------------------------------------------------


def test_ranked_channels_follow_consent_and_preference() -> None:
    s = Settings()
    assert reach.ranked_channels(user(), False, s) == ["app_push", "email"]
    assert reach.ranked_channels(user(consent=["phone", "sms", "email"]), False, s) == \
        ["email", "sms", "phone"]
    assert reach.ranked_channels(user(consent=["phone", "sms", "email"]), True, s) == \
        ["phone", "sms", "email"]
    assert reach.ranked_channels(user(consent=[]), True, s) == []
    assert reach.ranked_channels(user(consent=["carrier_pigeon"]), False, s) == []


def test_channel_mask_round_trip() -> None:
    assert mask_channels(channel_mask(["sms", "app_push"])) == ["app_push", "sms"]
    assert channel_mask([]) == 0


# --- caps -----------------------------------------------------------------------------------


def test_cap_reason() -> None:
    s = Settings().with_overrides(contact_cap=2, contact_cap_days=7.0, recall_cooldown_days=30.0)
    u = user()
    now = BASE + 100 * DAY
    assert reach.cap_reason(u, "churn_warning", now, s) is None
    u.log_alert(now - 8 * DAY)
    u.log_alert(now - 6 * DAY)
    assert reach.cap_reason(u, "churn_warning", now, s) is None  # one inside the window
    u.log_alert(now - 1 * DAY)
    assert reach.cap_reason(u, "churn_warning", now, s) == "frequency_cap"
    assert reach.cap_reason(u, "churn_warning", now + 7 * DAY, s) is None
    u.last_recall_at = now - 29 * DAY
    assert reach.cap_reason(u, "recall_trigger", now + 7 * DAY, s) is None
    assert reach.cap_reason(u, "recall_trigger", now - 0.5 * DAY + DAY, s) == "recall_cooldown"
    assert reach.cap_reason(u, "churn_warning", now + 7 * DAY, s) is None  # warnings ignore it


# --- send window ----------------------------------------------------------------------------


@st.composite
def window_cases(draw: st.DrawFn) -> tuple[Settings, UserState, float, int, int | None]:
    qs = draw(st.integers(0, 23))
    qe = draw(st.integers(0, 23))
    length = draw(st.integers(1, 6))
    s = Settings().with_overrides(quiet_hours_start=qs, quiet_hours_end=qe,
                                  send_window_hours=length)
    usual = draw(st.none() | st.integers(0, 23))
    state = user([] if usual is None else [usual + 0.2, usual + 0.1])
    now = draw(st.floats(BASE, BASE + 800 * DAY, allow_nan=False))
    offset = draw(st.integers(-12 * 60, 14 * 60))
    return s, state, now, offset, usual


@hyp_settings(max_examples=400, deadline=None)
@given(window_cases())
def test_send_window_is_never_inside_quiet_hours(
        case: tuple[Settings, UserState, float, int, int | None]) -> None:
    s, state, now, offset, usual = case
    w = reach.send_window(state, now, offset, s)
    quiet = quiet_hours(s.quiet_hours_start, s.quiet_hours_end)
    assert w.offset_min == offset
    assert w.start >= now
    assert w.end > w.start
    assert w.start - now <= DAY + HOUR  # never more than a day out
    # sample the window: no instant of it is in a quiet hour
    for k in range(41):
        t = w.start + (w.end - w.start) * k / 40
        if t >= w.end:
            t = w.end - 1e-3
        assert int(local_hour(t, offset)) not in quiet, (k, local_hour(t, offset))
    assert w.deferred == (int(local_hour(now, offset)) in quiet)
    if usual is not None and usual not in quiet:  # the usual hour is taken when allowed
        assert int(local_hour(w.start, offset)) == usual
    elif not w.deferred:
        assert w.start == now  # nothing to wait for: right away


@hyp_settings(max_examples=150, deadline=None)
@given(window_cases())
def test_send_window_renders_in_the_users_offset(
        case: tuple[Settings, UserState, float, int, int | None]) -> None:
    s, state, now, offset, _ = case
    w = reach.send_window(state, now, offset, s)
    rendered = w.as_dict()
    assert rendered["utc_offset"] == offset_text(offset)
    assert rendered["deferred_for_quiet_hours"] is w.deferred
    for key, value in (("start", w.start), ("end", w.end)):
        parsed = schemas.parse_date_time(str(rendered[key]))
        assert parsed is not None
        assert parsed[0] == pytest.approx(value, abs=1e-3)
        assert parsed[1] == offset


def test_send_window_examples() -> None:
    s = Settings()  # quiet 21:00-08:00, two-hour windows
    # 10:00 UTC, usual hour 15: today 15:00-17:00
    w = reach.send_window(user([15.2]), BASE + 10 * HOUR, 0, s)
    assert (w.start, w.end, w.deferred) == (BASE + 15 * HOUR, BASE + 17 * HOUR, False)
    # 20:30, usual hour 20: now until quiet hours begin at 21:00
    w = reach.send_window(user([20.1]), BASE + 20.5 * HOUR, 0, s)
    assert (w.start, w.end) == (BASE + 20.5 * HOUR, BASE + 21 * HOUR)
    # 02:00 local at +05:30, no usual hour: deferred to 08:00 local
    now = BASE + 2 * HOUR - 330 * 60
    w = reach.send_window(user(), now, 330, s)
    assert w.deferred and w.start == BASE + 8 * HOUR - 330 * 60
    assert w.as_dict()["start"] == "2026-01-01T08:00:00+05:30"


# --- time rendering ---------------------------------------------------------------------


def test_rfc3339() -> None:
    assert rfc3339(BASE) == "2026-01-01T00:00:00Z"
    assert rfc3339(BASE + 0.25) == "2026-01-01T00:00:00.250Z"
    assert rfc3339(BASE, 60) == "2026-01-01T01:00:00+01:00"
    assert rfc3339(BASE, -570) == "2025-12-31T14:30:00-09:30"
    assert offset_text(0) == "+00:00" and offset_text(-90) == "-01:30"
    assert offset_text(845) == "+14:05"


@hyp_settings(max_examples=200, deadline=None)
@given(st.floats(0, 4e9, allow_nan=False), st.integers(-1439, 1439))
def test_rfc3339_round_trips(t: float, offset: int) -> None:
    parsed = schemas.parse_date_time(rfc3339(t, offset))
    assert parsed is not None
    assert parsed[0] == pytest.approx(t, abs=1e-3)
    assert parsed[1] == offset


def test_a_utc_stamp_leaves_the_zone_to_default_timezone(harness: Any) -> None:
    """Trackers stamp in UTC ("Z"): that says nothing of where the user is, so the operator's
    default_timezone sets the user's local hours; a numeric offset is the user's own."""
    h = harness(default_timezone="Asia/Tokyo")
    stamps = {"zulu": "2026-01-05T03:00:00Z", "explicit": "2026-01-05T03:00:00+00:00"}
    for user, stamp in stamps.items():
        got = decode(orjson.dumps({"event_id": f"{user}-1", "user_id": user,
                                   "type": "page_view", "occurred_at": stamp}))
        assert not isinstance(got, Rejection)
        h.send(got)
    assert h.state("zulu").utc_offset_min is None
    assert h.state("explicit").utc_offset_min == 0
    # 03:00 UTC is noon in Tokyo: the usual active hour follows the zone each user is in
    assert h.snapshot("zulu")["usual_active_hour"] == 12
    assert h.snapshot("explicit")["usual_active_hour"] == 3
