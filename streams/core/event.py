"""The canonical user event, as the core sees it after decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

SIGNUP: Final = "signup"
SESSION_START: Final = "session_start"
PAGE_VIEW: Final = "page_view"
PRODUCT_VIEW: Final = "product_view"
SEARCH: Final = "search"
ADD_TO_CART: Final = "add_to_cart"
REMOVE_FROM_CART: Final = "remove_from_cart"
WISHLIST_ADD: Final = "wishlist_add"
CHECKOUT_STARTED: Final = "checkout_started"
PURCHASE: Final = "purchase"
REFUND: Final = "refund"
REVIEW: Final = "review"
SHARE: Final = "share"
REFERRAL: Final = "referral"
COUPON_REDEEMED: Final = "coupon_redeemed"
MESSAGE_OPENED: Final = "message_opened"
MESSAGE_CLICKED: Final = "message_clicked"
UNSUBSCRIBE: Final = "unsubscribe"
RESUBSCRIBE: Final = "resubscribe"
OTHER: Final = "other"  # a Segment track event with a name we do not map: still activity
# Segment identity calls (see streams/core/identity.py). Never canonical input, never activity.
IDENTIFY: Final = "identify"  # traits: consent, reachable channels, time zone; may stitch
ALIAS: Final = "alias"  # previousId -> userId: stitch only
GROUP: Final = "group"  # accepted and ignored: journey keeps no accounts

EVENT_TYPES: Final = (
    SIGNUP, SESSION_START, PAGE_VIEW, PRODUCT_VIEW, SEARCH, ADD_TO_CART, REMOVE_FROM_CART,
    WISHLIST_ADD, CHECKOUT_STARTED, PURCHASE, REFUND, REVIEW, SHARE, REFERRAL,
    COUPON_REDEEMED, MESSAGE_OPENED, MESSAGE_CLICKED, UNSUBSCRIBE, RESUBSCRIBE, OTHER,
)

SEGMENT_ONLY_TYPES: Final = (IDENTIFY, ALIAS, GROUP)

# Events that are the user's own doing and so count as activity. Message opens and
# clicks answer our own contact, and consent changes are not engagement.
ACTIVITY_TYPES: Final = frozenset(EVENT_TYPES) - {
    MESSAGE_OPENED, MESSAGE_CLICKED, UNSUBSCRIBE, RESUBSCRIBE, REFUND,
}


@dataclass(slots=True)
class Event:
    """One decoded, validated event.

    ``occurred_at`` is seconds since the Unix epoch (UTC); ``utc_offset_min`` is the
    offset the producer wrote in the RFC 3339 timestamp, which tells us the user's
    local time when the producer stamps local time.
    """

    event_id: str
    user_id: str
    type: str
    occurred_at: float
    utc_offset_min: int | None = None
    amount: float | None = None  # purchase/refund amount, in `currency`
    currency: str | None = None
    order_id: str | None = None
    rating: int | None = None  # review
    channel: str | None = None  # unsubscribe / resubscribe / message_*
    referred_user_id: str | None = None  # referral
    source: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    # a Segment call's sentAt: the sending device's clock when it sent the call, which
    # shows by how much that clock runs fast (see ``clock.PartitionClock.deskewed``);
    # about the transport, not the event, so equal events compare equal without it
    sent_at: float | None = field(default=None, compare=False)


_OPTIONAL: Final = ("utc_offset_min", "amount", "currency", "order_id", "rating", "channel",
                    "referred_user_id", "source")


def event_to_dict(e: Event) -> dict[str, Any]:
    """An Event as a JSON-ready dict, every field kept: how journey's own news travels
    between partitions (the repartition topic) and waits in a partition's context."""
    d: dict[str, Any] = {"event_id": e.event_id, "user_id": e.user_id, "type": e.type,
                         "occurred_at": e.occurred_at}
    for name in _OPTIONAL:
        value = getattr(e, name)
        if value is not None:
            d[name] = value
    d["properties"] = e.properties
    return d


def event_from_dict(d: dict[str, Any]) -> Event:
    """The Event of :func:`event_to_dict` (of journey's own making: not validated)."""
    return Event(d["event_id"], d["user_id"], d["type"], float(d["occurred_at"]),
                 utc_offset_min=d.get("utc_offset_min"), amount=d.get("amount"),
                 currency=d.get("currency"), order_id=d.get("order_id"),
                 rating=d.get("rating"), channel=d.get("channel"),
                 referred_user_id=d.get("referred_user_id"), source=d.get("source", "journey"),
                 properties=d.get("properties") or {})
