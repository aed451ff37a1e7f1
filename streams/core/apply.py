"""Folding one event into a user's aggregates (no stage logic here)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core import event as ev
from streams.core.event import Event
from streams.core.logs import key_of
from streams.core.state import CHANNEL_BIT, CONTACTS, UserState, channel_mask
from streams.settings import Settings

REFERRAL_CONVERTED = "referral_converted"  # internal: a user this user referred bought
DAY = 86400.0

# What an identify event carries, digested from its traits by the decoder
# (streams/core/segment.py): never the address or number themselves.
CONSENT = "consent"  # channel names: the whole consent set, as a signup's `consent`
CHANNELS_ON = "channels_on"  # channel names subscribed to
CHANNELS_OFF = "channels_off"  # channel names unsubscribed from
CONTACT_BITS = "contact_bits"  # state.EMAIL_KNOWN | HAS_EMAIL | PHONE_KNOWN | HAS_PHONE
PREVIOUS_ID = "previous_id"  # identify and alias: the id that is this user too
# Every property key the core reads. An event forwarded from a merged id keeps only these
# (streams/core/identity.py): a new key read here must be added.
READ_PROPERTIES = frozenset({"timezone", CONSENT, "referred_by", "referred_user_id",
                             CHANNELS_ON, CHANNELS_OFF, CONTACT_BITS, PREVIOUS_ID})


def new_state(event: Event) -> UserState:
    t = event.occurred_at
    return UserState(user_id=event.user_id, first_seen_at=t, last_event_at=t,
                     last_active_at=t, stage_since=t)


# A fixed offset as some trackers name the zone: RudderStack's JavaScript SDK sends
# "GMT+0530", Java's TimeZone (Android) "GMT+05:30" when the device has no zone id.
_FIXED_OFFSET = re.compile(r"(?:GMT|UTC)([+-])([0-9]{1,2})(?::?([0-9]{2}))?")


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    fixed = _FIXED_OFFSET.fullmatch(name)
    if fixed is None:
        return None
    sign, h, m = fixed.groups()
    hours, minutes = int(h), int(m or 0)
    if hours > 14 or minutes >= 60:  # no zone is further from UTC than 14 hours
        return None
    total = hours * 60 + minutes
    return timezone(timedelta(minutes=-total if sign == "-" else total))


def _zone_offset(name: str, at: float) -> int:
    """A zone's UTC offset in minutes at ``at`` (0 for UTC or an unknown zone)."""
    if name == "UTC":
        return 0
    zone = _zone(name)
    off = datetime.fromtimestamp(at, zone).utcoffset() if zone is not None else None
    return int(off.total_seconds() // 60) if off is not None else 0


def local_offset(event: Event) -> int | None:
    """The user's UTC offset: their IANA zone if the event names one, else the stamp's
    (None for a UTC stamp, which says nothing of the user's zone)."""
    tz_name = event.properties.get("timezone") if event.properties else None
    if isinstance(tz_name, str):
        zone = _zone(tz_name)
        if zone is not None:
            off = datetime.fromtimestamp(event.occurred_at, zone).utcoffset()
            if off is not None:
                return int(off.total_seconds() // 60)
    return event.utc_offset_min


def apply_event(state: UserState, event: Event, settings: Settings) -> None:
    """Fold ``event`` into ``state``."""
    t = event.occurred_at
    kind = event.type
    # a credit is journey's news, not the referrer's own doing: its instant (the referred
    # user's first purchase) also moves with the order a stitch and that user's events
    # arrive in, which a worker working off a backlog does not share with replay
    if kind != REFERRAL_CONVERTED:
        if t > state.last_event_at:
            state.last_event_at = t
        if t < state.first_seen_at:
            state.first_seen_at = t
    offset = local_offset(event)
    if offset is not None:
        state.utc_offset_min = offset
    if kind in ev.ACTIVITY_TYPES:
        if t > state.last_active_at or not state.active_seen:
            state.last_active_at = t
            state.active_seen = True
        if offset is None:  # no zone known: the operator's default_timezone
            offset = state.utc_offset_min
            if offset is None:
                offset = _zone_offset(settings.default_timezone, t)
        local_hour = ((t + offset * 60) % 86400.0) / 3600.0
        angle = local_hour / 24.0 * 2.0 * math.pi
        state.add_hour(math.cos(angle), math.sin(angle))
    elif not state.active_seen:
        # no activity yet: the user counts from first sight, whichever event came first
        state.last_active_at = state.first_seen_at

    if kind == ev.PURCHASE:
        amount = event.amount or 0.0
        key = None
        if event.order_id:
            key = key_of(event.order_id)
            seen = state.find_order(key)
            if seen is not None:
                # the same order sent twice: keep the earliest copy, whatever arrives first
                if (t, amount) < state.logged_order(seen):
                    replace_purchase(state, seen, t, amount)
                return
        state.fold_purchase_day(t, amount)
        state.orders += 1
        state.gross_spend += amount
        if state.first_purchase_at is None or t < state.first_purchase_at:
            state.first_purchase_at = t
        if state.last_purchase_at is None or t > state.last_purchase_at:
            state.last_purchase_at = t
        state.record_purchase(key, t, amount)  # in the order, purchase and spend logs
        if key is not None and state.held_refunds:
            for refund_at in state.release_refunds(key):  # its full refunds came first
                refund(state, refund_at, amount)
    elif kind == ev.REFUND:
        state.refunds += 1
        if event.amount is not None:
            refund(state, t, event.amount)
        elif event.order_id:
            refund_order(state, key_of(event.order_id), t)
    elif kind in (ev.PRODUCT_VIEW, ev.SEARCH, ev.WISHLIST_ADD):
        state.interested = True
    elif kind in (ev.ADD_TO_CART, ev.CHECKOUT_STARTED):
        state.interested = True
        state.carted = True
    elif kind == ev.REVIEW:
        if event.rating is not None:
            state.reviews += 1
            state.rating_sum += event.rating
    elif kind == ev.SHARE:
        state.shares += 1
    elif kind == ev.REFERRAL:
        state.referrals_sent += 1
    elif kind == REFERRAL_CONVERTED:
        state.referred_converted += 1
    elif kind == ev.COUPON_REDEEMED:
        state.coupons += 1
    elif kind == ev.SIGNUP:
        props = event.properties or {}
        consent = props.get("consent")
        if isinstance(consent, list):
            state.consent_mask = channel_mask([c for c in consent if isinstance(c, str)])
        referred_by = props.get("referred_by")
        if isinstance(referred_by, str) and referred_by and referred_by != state.user_id \
                and (state.referred_at is None or state.referred_by is None
                     or (t, referred_by) < (state.referred_at, state.referred_by)):
            # first touch: the earliest signup's referrer, whichever signup arrives first
            state.referred_by = referred_by
            state.referred_at = t
    elif kind in (ev.UNSUBSCRIBE, ev.RESUBSCRIBE):
        bit = CHANNEL_BIT.get(event.channel or "", 0)
        mask = state.consented(channel_mask(settings.default_consent))
        state.consent_mask = mask & ~bit if kind == ev.UNSUBSCRIBE else mask | bit
    elif kind == ev.IDENTIFY:
        _traits(state, event.properties, settings)


def _traits(state: UserState, props: dict[str, Any], settings: Settings) -> None:
    """An identify's traits: the consent set, then channels on, then off (an opt-out
    said in the same call wins); contact details only where the traits said."""
    consent, on, off = props.get(CONSENT), props.get(CHANNELS_ON), props.get(CHANNELS_OFF)
    if isinstance(consent, list):
        state.consent_mask = channel_mask(consent)
    if on or off:
        mask = state.consented(channel_mask(settings.default_consent))
        state.consent_mask = (mask | channel_mask(on or [])) & ~channel_mask(off or [])
    bits = props.get(CONTACT_BITS)
    if isinstance(bits, int):
        for known, there in CONTACTS:
            if bits & known:
                state.contact_bits = state.contact_bits & ~(known | there) \
                    | bits & (known | there)


def refund(state: UserState, at: float, amount: float) -> None:
    """Give ``amount`` back at ``at``. A full refund (an order id, no amount) gives back
    the amount counted for its order, when the order comes if it has not yet: the same
    in whichever order the two arrive (docs/producing.md#full-refunds)."""
    state.refunded += amount
    state.add_spend(at, -amount)


def refund_order(state: UserState, key: bytes, at: float) -> None:
    """A full refund at ``at`` of the order whose id has digest ``key``: its logged
    amount, or, for an order not come yet, held until it comes."""
    seen = state.find_order(key)
    if seen is None:
        state.hold_refund(key, at)
    else:
        refund(state, at, state.logged_order(seen)[1])


def converted_referrer(state: UserState) -> tuple[str, float] | None:
    """The referrer to credit, once, when a referred user has bought (in either order),
    with the instant both were true: the same whichever event arrived last."""
    if state.referred_by and state.orders >= 1 and not state.referral_reported \
            and state.first_purchase_at is not None:
        state.referral_reported = True
        return state.referred_by, max(state.referred_at or 0.0, state.first_purchase_at)
    return None


def replace_purchase(state: UserState, seen: int, t: float, amount: float) -> None:
    """The copy of logged order ``seen`` (its place in the order log) at ``t`` replaces
    the one counted."""
    old_t, old_amount = state.logged_order(seen)
    state.relog_order(seen, t, amount)
    state.gross_spend += amount - old_amount
    state.add_spend(old_t, -old_amount)  # the copy kept replaces the one counted
    state.add_spend(t, amount)
    if state.unlog_purchase(old_t, old_amount):
        state.log_purchase(t, amount)
    if state.first_purchase_at is None or t < state.first_purchase_at:
        state.first_purchase_at = t
    if state.last_purchase_at == old_t and state.purchase_log:
        state.last_purchase_at = state.purchase_times()[-1]
    if state.logged_purchases() == state.orders:
        state.refold_purchase_days()  # the log holds every order: as if in order
    elif int(t // DAY) == int(old_t // DAY) == int((state.last_purchase_at or t) // DAY):
        state.last_day_spend += amount - old_amount
    # otherwise an older copy moved a day among orders the capped log no longer holds:
    # the aggregates keep the first copy's day (docs/lifecycle.md#the-churn-score)
