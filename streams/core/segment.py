"""Segment Spec calls as Events. RudderStack sends the same shape.

A track, page or screen call is checked against segment-track.v1, mapped onto a
user-event object, and that object is then checked like any canonical event (see
canonical.build), with one more type, "other", for track names journey does not map.

identify, alias and group calls are checked against their own contracts
(segment-identify.v1, segment-alias.v1, segment-group.v1) and become Events of their own
types (see streams/core/identity.py for what the core does with them). An identify's
traits are digested here into what the core reads, so no address or number goes
further than the decoder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import fastjsonschema

import schemas
from schemas import parse_date_time
from streams.core import event as ev
from streams.core.apply import CHANNELS_OFF, CHANNELS_ON, CONSENT, CONTACT_BITS, PREVIOUS_ID
from streams.core.canonical import CHANNELS as _CHANNELS
from streams.core.canonical import CHECK_TIMEZONE as _CHECK_TIMEZONE
from streams.core.canonical import CURRENCIES as _CURRENCIES
from streams.core.canonical import build, explain, finite
from streams.core.contracts import SEGMENT_ALIAS, SEGMENT_GROUP, SEGMENT_IDENTIFY
from streams.core.event import Event
from streams.core.limits import (
    EARLIEST_EVENT_AT,
    EVENT_TIME_RANGE,
    LATEST_EVENT_AT,
    MAX_AMOUNT,
    MAX_AMOUNT_TEXT,
)
from streams.core.rejection import (
    INVALID_AMOUNT,
    INVALID_TIMESTAMP,
    MISSING_FIELD,
    UNSUPPORTED_SEGMENT_CALL,
    Rejection,
)
from streams.core.rejection import ids_of as _ids
from streams.core.rejection import show as _show
from streams.core.segment_time import mended, sent_at
from streams.core.state import EMAIL_KNOWN, HAS_EMAIL, HAS_PHONE, PHONE_KNOWN

SEGMENT_CALLS: Final = frozenset({"track", "page", "screen", "identify", "group", "alias"})
_TAKEN: Final = ("track", "page", "screen")
IDENTITY_CALLS: Final = frozenset({ev.IDENTIFY, ev.ALIAS, ev.GROUP})
TAKES: Final = "journey takes track, page, screen, identify, alias and group"
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
    # e-commerce spec v1 names, which v2 still accepts (analytics-android's docs use them)
    "Completed Order": ev.PURCHASE, "Viewed Product": ev.PRODUCT_VIEW,
    "Added Product": ev.ADD_TO_CART, "Removed Product": ev.REMOVE_FROM_CART,
    "Viewed Product Category": ev.PAGE_VIEW,
    # names the v2 spec says its events are aliased to, and a wishlist item moved to the cart
    "Clicked Product": ev.PRODUCT_VIEW, "Started Order": ev.CHECKOUT_STARTED,
    "Wishlist Product Added to Cart": ev.ADD_TO_CART,
}
# The channel a name implies. "Unsubscribed" comes from the email spec: email, unless the
# call names one of our channels itself.
_SEGMENT_CHANNEL: Final = {
    "Email Opened": "email", "Email Link Clicked": "email", "Unsubscribed": "email",
    "Push Notification Opened": "app_push", "Push Notification Tapped": "app_push"}
SEGMENT_DEFAULT_CURRENCY: Final = "USD"
# Ids a library may send as JSON integers: analytics-ruby and analytics-php pass the
# application's value through (a Rails `user.id`), where analytics-python sends str(id).
_ID_FIELDS: Final = ("userId", "anonymousId", "previousId")


# What a tracker may send as a number in a string ("19.90", "-3", "1e3"): JSON's number
# syntax, ASCII only. float() also reads "1_000", " nan", "infinity" and other scripts'
# digits, none of which a tracker means as an amount.
_NUMBER_TEXT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


# A rating as text: whole stars, written with a zero fraction or without ("4", "4.0").
_STARS: Final = re.compile(r"([0-9]{1,8})(?:\.0+)?")


def _money(holder: dict[str, Any], key: str, where: str,
           refunded: bool = False) -> float | Rejection:
    """A non-negative money value; trackers often send numbers as strings, so take those.
    ``refunded``: a refund's own figure, which may carry the minus sign some trackers and
    tools (Amplitude's revenue, say) give money going back; its size is the amount."""
    v = holder[key]
    if isinstance(v, str):
        text = v.strip()
        f = finite(text) if _NUMBER_TEXT.fullmatch(text) else None
    else:
        f = finite(v)
    if refunded and f is not None and f < 0:
        f = -f
    if f is None or f < 0:
        return Rejection(INVALID_AMOUNT, f"{where}.{key} must be a non-negative number, got "
                         f"{_show(v)}")
    if f > MAX_AMOUNT:
        return Rejection(INVALID_AMOUNT, f"{where}.{key} {_show(v)} is more than the largest "
                         f"accepted amount, {MAX_AMOUNT_TEXT}")
    return f + 0.0  # -0.0 is plain 0


# what else says how much an order came to: the spec's subtotal (after discounts, before
# tax and shipping, as revenue is) and value (its name for the amount of Checkout Started,
# which some trackers send on orders too). Not on a refund: one with only its order id
# and one of these stays the spec's full refund, as it was before these were read.
_LAST_RESORT: Final = ("subtotal", "value")


def _states_amount(props: dict[str, Any]) -> bool:
    """Whether a call says how much, well or badly: an order or a partial refund. A stray
    ``amount`` (not a spec key) counts, so it is never mistaken for a full refund."""
    return any(props.get(k) is not None for k in ("revenue", "total", "amount")) \
        or props.get("products") not in (None, [])


def _order_amount(props: dict[str, Any], name: str, refund: bool) -> float | Rejection:
    """revenue, else total, else the sum of product price times quantity, else (for an
    order) subtotal, else value."""
    for key in ("revenue", "total"):
        if props.get(key) is not None:
            return _money(props, key, "properties", refund)
    products = props.get("products")
    fallback = None if refund else next(
        (k for k in _LAST_RESORT if props.get(k) is not None), None)
    if not isinstance(products, list) or not products:
        if fallback is not None:
            return _money(props, fallback, "properties")
        full = ", or for a full refund only the refunded order's id (properties.order_id)" \
            if refund else ""
        more = "" if refund else ", properties.subtotal or properties.value"
        return Rejection(MISSING_FIELD, f"missing field: {name} needs properties.revenue, "
                         f"properties.total or priced properties.products{more}{full}")
    total = 0.0
    for i, p in enumerate(products):
        if not isinstance(p, dict) or p.get("price") is None:
            if fallback is not None:  # the order's own figure, when a product has no price
                return _money(props, fallback, "properties")
            return Rejection(MISSING_FIELD, f"missing field properties.products[{i}].price")
        price, qty = (_money(p, k, f"properties.products[{i}]") if p.get(k) is not None
                      else 1.0 for k in ("price", "quantity"))
        for part in (price, qty):
            if isinstance(part, Rejection):
                return part
        total += price * qty  # type: ignore[operator]
    if not total <= MAX_AMOUNT:  # also catches a product that overflowed to infinity
        return Rejection(INVALID_AMOUNT, f"properties.products add up to {total:.6g}, more "
                         f"than the largest accepted amount, {MAX_AMOUNT_TEXT}")
    return total


def _to_canonical(obj: dict[str, Any]) -> dict[str, Any] | Rejection:
    """A Segment track/page/screen call as a canonical user-event object."""
    call = obj.get("type")
    if "type" in obj and call not in _TAKEN:  # say so before any field it may lack
        return Rejection(UNSUPPORTED_SEGMENT_CALL, f"Segment call type {_show(call)} is not "
                         f"supported; {TAKES}", *_ids(obj))
    checked = _checked(obj, schemas.validator("segment-track"))
    if isinstance(checked, Rejection):
        return checked
    obj = checked
    props = dict(obj.get("properties") or {})
    name = obj.get("event") if call == "track" else None
    etype = ev.PAGE_VIEW if name is None else SEGMENT_EVENTS.get(name, ev.OTHER)
    if name is not None:
        props["segment_event"] = name
    if etype in (ev.PURCHASE, ev.REFUND):
        if props.get("order_id") is None and props.get("orderId") is not None:
            # e-commerce spec v1's key, written by analytics-go's SetOrderId and
            # analytics-android's putOrderId
            props["order_id"] = props["orderId"]
        if type(props.get("order_id")) is int:
            props["order_id"] = str(props["order_id"])
        # The spec's full refund names only the order: the core refunds its logged amount.
        if etype == ev.PURCHASE or _states_amount(props) or props.get("order_id") in (None, ""):
            amount = _order_amount(props, str(name), refund=etype == ev.REFUND)
            if isinstance(amount, Rejection):
                return amount._replace(event_id=obj["messageId"], user_id=_ids(obj)[1])
            props["amount"] = amount
            if props.get("currency") is None:
                props["currency"] = SEGMENT_DEFAULT_CURRENCY
        else:  # a null amount or currency says nothing, as it does on an order
            for key in ("amount", "currency"):
                if key in props and props[key] is None:
                    del props[key]
        currency = props.get("currency")
        if type(currency) is str and currency.upper() in _CURRENCIES:
            # a code in any case is that currency: the spec v2's own example sends 'usd'
            props["currency"] = currency.upper()
    elif etype == ev.REVIEW:  # the spec types rating as a string ("5")
        r = props.get("rating")
        if r is None or (type(r) is str and not r.strip()):
            etype = ev.OTHER  # a review without stars: the spec's properties are all optional
        elif type(r) is str and len(r) <= 16 and r.isascii():
            stars = _STARS.fullmatch(r.strip())  # short: int() of long digits is costly
            if stars is not None:
                props["rating"] = int(stars.group(1))
    elif name in _SEGMENT_CHANNEL and (etype != ev.UNSUBSCRIBE
                                       or props.get("channel") not in _CHANNELS):
        props["channel"] = _SEGMENT_CHANNEL[name]  # type: ignore[index]
    context = obj.get("context")
    if isinstance(context, dict) and _CHECK_TIMEZONE(context.get("timezone")):
        props["timezone"] = context["timezone"]
    elif "timezone" in props and not _CHECK_TIMEZONE(props["timezone"]):
        del props["timezone"]  # no meaning in the Segment Spec: not worth losing the event
    return {"event_id": obj["messageId"], "user_id": obj.get("userId") or obj["anonymousId"],
            "type": etype, "occurred_at": obj[_time_field(obj)], "source": "segment",
            "properties": props}


def _time_field(obj: dict[str, Any]) -> str:
    """The call's time: the schema holds each one given to RFC 3339, and wants one."""
    return ("timestamp" if obj.get("timestamp") is not None
            else "originalTimestamp" if obj.get("originalTimestamp") is not None else "sentAt")


def _checked(obj: dict[str, Any], validate: Callable[[Any], Any]) -> dict[str, Any] | Rejection:
    """``obj`` if its contract takes it; else the call with its times mended (see
    segment_time) if that takes it; else why not, naming the value as it was sent."""
    try:
        validate(obj)
        return obj
    except fastjsonschema.JsonSchemaValueException as exc:
        fix = mended(obj)
        if fix is None:
            return explain(exc, obj, segment=True)
    better, was = fix
    try:
        validate(better)
        return better
    except fastjsonschema.JsonSchemaValueException as exc:
        why = explain(exc, better, segment=True)
    for key, value in was.items():  # a mended time that is still wrong: show what came
        if value is not None and why.message.startswith(key + " "):
            return _as_sent(why, better[key], value)
    return why


def _as_sent(why: Rejection, mended: object, sent: object) -> Rejection:
    """``why``, quoting a time segment_time mended as it was sent."""
    return why._replace(message=why.message.replace(_show(mended), _show(sent), 1))


def from_segment(obj: dict[str, Any]) -> Event | Rejection:
    """A Segment call as an Event, or why not: track/page/screen checked as a canonical
    event would be (with the Segment-only type "other"), identify/alias/group against
    their own contracts."""
    call = obj.get("type")
    if call is None and type(obj.get("batch")) is list:
        return Rejection(UNSUPPORTED_SEGMENT_CALL, "a Segment batch envelope (the body a "
                         f"library posts to /v1/batch, {len(obj['batch'])} call(s)): journey "
                         "takes one call per record, so send each call of batch[] as its own "
                         "record", *_ids(obj))
    obj = _ids_as_text(obj)
    if type(call) is str and call in IDENTITY_CALLS:
        return _identity_call(obj)
    mapped = _to_canonical(obj)
    if isinstance(mapped, Rejection):
        return mapped
    # Segment's browser and mobile libraries stamp in UTC; its server libraries in the
    # server's zone, which says nothing of where the user is. The user's zone comes from
    # context.timezone (in ``mapped``), as for identify below.
    field = _time_field(obj)
    got = build(mapped, allow_other=True, time_field=field, stamp_is_local=False)
    if isinstance(got, Rejection):
        if mapped["occurred_at"] != obj[field]:  # a mended time
            return _as_sent(got, mapped["occurred_at"], obj[field])
        return got
    got.sent_at = sent_at(obj)
    return got


def _ids_as_text(obj: dict[str, Any]) -> dict[str, Any]:
    """The call with integer ids as their decimal text, as Segment reads them; ``obj``
    itself when there is none (a bool is no id)."""
    ints = [k for k in _ID_FIELDS if type(obj.get(k)) is int]
    return {**obj, **{k: str(obj[k]) for k in ints}} if ints else obj


# --- identify, alias, group ----------------------------------------------------------------

_CONTRACT: Final = {ev.IDENTIFY: SEGMENT_IDENTIFY, ev.ALIAS: SEGMENT_ALIAS,
                    ev.GROUP: SEGMENT_GROUP}
# Segment subscription types (context.messaging_subscriptions) and journey's channels.
_SUBSCRIPTION_CHANNEL: Final = {"EMAIL": "email", "SMS": "sms", "IOS_PUSH": "app_push",
                                "ANDROID_PUSH": "app_push"}


def _identity_call(obj: dict[str, Any]) -> Event | Rejection:
    call = obj["type"]
    anonymous = obj.get("anonymousId")
    if call == ev.ALIAS and not obj.get("previousId") and type(anonymous) is str and anonymous:
        # analytics-swift sends no previousId for a user it never identified; analytics.js
        # and analytics-kotlin fill it with the anonymousId then, and so does journey
        obj = {**obj, "previousId": anonymous}
    checked = _checked(obj, schemas.validator(_CONTRACT[call].name, _CONTRACT[call].version))
    if isinstance(checked, Rejection):
        return checked
    field = _time_field(obj)
    when = parse_date_time(checked[field])
    if when is None or not EARLIEST_EVENT_AT <= when[0] < LATEST_EVENT_AT:
        return Rejection(INVALID_TIMESTAMP, f"{field} {_show(obj[field])} is not a plausible "
                         f"event time: journey takes {EVENT_TIME_RANGE}", *_ids(obj))
    user_id = obj.get("userId") or obj["anonymousId"]
    props: dict[str, Any] = {}
    if call == ev.ALIAS and obj["previousId"] != user_id:
        props[PREVIOUS_ID] = obj["previousId"]
    elif call == ev.IDENTIFY:
        props = _identify_properties(obj)
    # no utc_offset_min: a server's stamp says nothing of where the user is
    return Event(obj["messageId"], user_id, call, when[0], source="segment", properties=props,
                 sent_at=sent_at(obj))


def _identify_properties(obj: dict[str, Any]) -> dict[str, Any]:
    """What the core reads of an identify (streams/core/apply.py), and nothing else."""
    props: dict[str, Any] = {}
    anonymous = obj.get("anonymousId")
    if obj.get("userId") and anonymous and anonymous != obj["userId"]:
        props[PREVIOUS_ID] = anonymous
    context = obj.get("context") or {}
    if _CHECK_TIMEZONE(context.get("timezone")):
        props["timezone"] = context["timezone"]
    traits = obj.get("traits") or {}
    bits = 0
    if "email" in traits:
        bits |= EMAIL_KNOWN | (HAS_EMAIL if _given(traits["email"]) else 0)
    if "phone" in traits:
        bits |= PHONE_KNOWN | (HAS_PHONE if _given(traits["phone"]) else 0)
    if bits:
        props[CONTACT_BITS] = bits
    if isinstance(traits.get("consent"), list):
        props[CONSENT] = sorted({c for c in traits["consent"] if c in _CHANNELS})
    on: set[str] = set()
    off: set[str] = set()
    for sub in context.get("messaging_subscriptions") or ():
        channel = _SUBSCRIPTION_CHANNEL.get(str(sub.get("type", "")).upper())
        status = str(sub.get("status", "")).upper()
        if channel is not None and status in ("SUBSCRIBED", "UNSUBSCRIBED"):
            (on if status == "SUBSCRIBED" else off).add(channel)
    unsubscribed = traits.get("unsubscribed")
    if isinstance(unsubscribed, bool):
        (off if unsubscribed else on).add("email")
    if on:
        props[CHANNELS_ON] = sorted(on)
    if off:
        props[CHANNELS_OFF] = sorted(off)
    return props


def _given(value: Any) -> bool:
    """An email address or phone number that is there (a number counts: trackers send them)."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, (int, float)) and not isinstance(value, bool)
