"""Reaching a user without harassing them: channels, send windows, caps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.state import CHANNEL_BIT, UserState, channel_mask
from streams.core.suppression import SuppressionReason
from streams.core.timefmt import offset_text, rfc3339
from streams.settings import Settings

HOUR = 3600.0
DAY = 86400.0


@dataclass(slots=True, frozen=True)
class SendWindow:
    start: float
    end: float
    offset_min: int
    deferred: bool  # moved out of quiet hours

    def as_dict(self) -> dict[str, object]:
        return {"start": rfc3339(self.start, self.offset_min),
                "end": rfc3339(self.end, self.offset_min),
                "utc_offset": offset_text(self.offset_min),
                "deferred_for_quiet_hours": self.deferred}


def zone_offset(zone: str, at: float) -> int:
    """UTC offset in minutes of an IANA zone at an instant (0 for an unknown zone)."""
    if zone == "UTC":  # the default zone, asked once per alert: no lookup needed
        return 0
    try:
        off = datetime.fromtimestamp(at, ZoneInfo(zone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(off.total_seconds() // 60) if off is not None else 0


def ranked_channels(state: UserState, high_value: bool, settings: Settings) -> list[str]:
    """The channels the user allows and has the details for, in the operator's order of
    preference."""
    allowed = state.consented(channel_mask(settings.default_consent)) & state.reachable()
    order = settings.high_value_channels if high_value else settings.channels
    return [c for c in order if allowed & CHANNEL_BIT.get(c, 0)]


def unreachable_reason(state: UserState, settings: Settings) -> SuppressionReason:
    """Why a user has no channel left: ``no_consent``, or ``no_contact`` when channels are
    consented but identify said the user has no address or number for them."""
    consented = state.consented(channel_mask(settings.default_consent)) \
        & channel_mask(settings.channels)
    return "no_contact" if consented else "no_consent"


def is_quiet(hour: float, settings: Settings) -> bool:
    qs, qe = settings.quiet_hours_start, settings.quiet_hours_end
    if qs == qe:
        return False
    if qs > qe:  # wraps midnight, the usual case
        return hour >= qs or hour < qe
    return qs <= hour < qe


def is_deferred(now: float, offset_min: int, settings: Settings) -> bool:
    """Whether an alert raised at ``now`` waits for its window: it is quiet hours there."""
    return is_quiet(((now + offset_min * 60) % DAY) / HOUR, settings)


def usual_hour(state: UserState) -> int | None:
    x, y = state.hour_x, state.hour_y  # each read unpacks them (streams/core/packed.py)
    if x == 0.0 and y == 0.0:
        return None
    angle = math.atan2(y, x)
    return round((angle % (2 * math.pi)) / (2 * math.pi) * 24) % 24


def send_window(state: UserState, now: float, offset_min: int, settings: Settings) -> SendWindow:
    """The first good moment from ``now``: the user's usual hour if it is allowed, and
    never inside quiet hours."""
    local = now + offset_min * 60
    day_start = local - (local % DAY)
    deferred = is_deferred(now, offset_min, settings)
    preferred = usual_hour(state)
    if preferred is not None and not is_quiet(preferred, settings):
        start = day_start + preferred * HOUR
        if start + HOUR <= local:  # today's slot has passed: tomorrow's
            start += DAY
        start = max(start, local)
    elif not deferred:
        start = local
    else:
        start = day_start + settings.quiet_hours_end * HOUR
        if start < local:
            start += DAY
    end = start + settings.send_window_hours * HOUR
    quiet_start = start - (start % DAY) + settings.quiet_hours_start * HOUR
    if quiet_start <= start:
        quiet_start += DAY
    end = min(end, quiet_start)
    shift = offset_min * 60
    return SendWindow(start - shift, end - shift, offset_min, deferred)


def cap_reason(state: UserState, kind: str, now: float,
               settings: Settings) -> SuppressionReason | None:
    """Why this alert must not go out now, or None."""
    if kind == "recall_trigger" and state.last_recall_at is not None \
            and now - state.last_recall_at < settings.recall_cooldown_days * DAY:
        return "recall_cooldown"
    since = now - settings.contact_cap_days * DAY
    if sum(1 for t in state.alert_times() if t > since) >= settings.contact_cap:
        return "frequency_cap"
    return None
