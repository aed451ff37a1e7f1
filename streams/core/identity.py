"""Identity stitching: an anonymous profile folded into the user it turned out to be.

A Segment ``alias`` (previousId -> userId), or an ``identify`` that carries both an
``anonymousId`` and a ``userId``, says two ids are one person. The two usually live on
different partitions, so the merge travels as journey's own news between partitions
(the repartition topic live; straight to the partition in replay and the Harness), in
two steps:

1. ``STITCH`` to the source id's partition: the source profile is *closed*. Its state
   leaves the table, its timer and its place in the census go with it (a merged
   visitor gets no more alerts), and a small :class:`Redirect` to the target takes its
   key: the target's id, and the source's dedupe window and input position, so a
   redelivered event the profile already counted is still known as a duplicate.
2. ``MERGE`` to the target's partition, carrying the closed profile's state, which
   :func:`merge_into` folds into the target's (creating the target if it has no
   state yet). The merge id is remembered in the target's dedupe window.

An event that later reaches a redirect (input under the old id, a referral credit for
it, a held event released) is forwarded to the target, as journey's own news. Merges
chain (A -> B, then B -> C: A's events go on through B to C). Two stitches racing the
other way round (A -> B and B -> A, each closing its source before the other's merge
arrives) leave a loop of redirects: the merges go round it to its smallest id, which
becomes a user again with everything. The first stitch of an id stands: a later one to
another target (a shared device, or the user's id changed since) is counted and ignored.

Every step is idempotent (stable ids, the redirect's target, dedupe windows), and the
merge folds aggregates that do not depend on order (sums, minima, maxima, "ever"
flags, bounded sorted logs), so the merged user is the same whichever way events,
stitches and merges interleave.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from streams.core import event as ev
from streams.core.alerts import stable_id
from streams.core.apply import PREVIOUS_ID, READ_PROPERTIES, refund_order, replace_purchase
from streams.core.event import Event
from streams.core.logs import has_id, held_entries, ids_from_record, ids_record, with_id
from streams.core.outputs import Outputs, Rejected
from streams.core.state import CONTACTS, RECORD_FIELDS, UserState

STITCH: Final = "stitch"  # internal: close this id's profile into properties["into"]
MERGE: Final = "merge"  # internal: a closed profile's state for its user
MAX_HOPS: Final = 8  # redirects an event or merge may pass through (a loop guard)

# What a merge does with each field of the target's state: its own stay, the rest fold
# in the source's (tests hold this against UserState, so a new field needs a decision).
KEPT: Final = ("user_id", "max_position", "recent_ids", "stage", "stage_since", "wake_at")
MERGED: Final = (
    "first_seen_at", "last_event_at", "last_active_at", "active_seen", "orders",
    "first_purchase_at", "last_purchase_at", "gross_spend", "refunded", "refunds",
    "purchase_log", "order_log", "interested", "carted", "shares", "referrals_sent",
    "referred_converted", "referred_by", "referred_at", "referral_reported", "coupons",
    "reviews", "rating_sum", "consent_mask", "contact_bits", "utc_offset_min", "hour_x",
    "hour_y", "alerts_sent", "recalls", "alert_log", "last_alert_id", "last_recall_id",
    "last_recall_at", "last_recall_control", "spend_days", "purchase_days", "last_day_spend",
    "last_gap_days", "decay_30", "decay_90", "decay_180", "recall_returns", "held_refunds")


@dataclass(slots=True)
class Redirect:
    """What a closed profile leaves under its id: where its events go now."""

    target: str
    max_position: int = -1  # the closed profile's, then of each input forwarded
    recent_ids: bytes = b""  # digests (streams/core/logs.py), bounded by the dedupe window

    def has_seen(self, event_id: str) -> bool:
        return has_id(self.recent_ids, event_id)

    def holds(self, event_id: str, position: int | None) -> bool:
        """Whether the event was counted already (before the close, or forwarded)."""
        return (position is not None and position <= self.max_position) \
            or self.has_seen(event_id)

    def remember(self, event_id: str, position: int | None, cap: int) -> None:
        if position is not None and position > self.max_position:
            self.max_position = position
        self.recent_ids = with_id(self.recent_ids, event_id, cap)

    def to_list(self) -> list[Any]:
        return [self.target, self.max_position, ids_record(self.recent_ids)]

    @classmethod
    def from_list(cls, values: list[Any]) -> Redirect:
        return cls(values[0], int(values[1]), ids_from_record(values[2]))


# --- the messages -------------------------------------------------------------------------

def merge_id(source: str, target: str) -> str:
    return stable_id("mi", source, target)


def stitch_source(event: Event) -> str | None:
    """The id an identify or alias event says is this user too (None: none)."""
    if event.type not in (ev.IDENTIFY, ev.ALIAS):
        return None
    source = event.properties.get(PREVIOUS_ID)
    return source if isinstance(source, str) and source != event.user_id else None


def stitch(source: str, target: str, at: float) -> Event:
    """The news for ``source``'s partition that ``source`` is ``target`` from ``at``."""
    return Event(stable_id("st", source, target), source, STITCH, at, source="journey",
                 properties={"into": target})


def stitch_target(event: Event) -> str:
    return str(event.properties["into"])


def merge(closed: UserState, target: str, at: float) -> Event:
    """The news for ``target``'s partition: ``closed``'s state, to fold in."""
    return Event(merge_id(closed.user_id, target), target, MERGE, at, source="journey",
                 properties={"state": closed.to_list(), "path": [closed.user_id],
                             "bought_at": closed.last_purchase_at})


def merged_state(event: Event) -> UserState:
    return UserState.from_list(event.properties["state"])


def merge_hop(redirect: Redirect, event: Event) -> Event | None:
    """A merge that reached a redirect, sent on to its target; None when it stops here:
    this id is the smallest of a loop of redirects the merge has gone round (so every
    merge of the loop stops at the same id, whatever their order), or the merge has
    passed MAX_HOPS redirects."""
    path = list(event.properties.get("path") or ())
    here = event.user_id
    if len(path) >= MAX_HOPS:
        return None
    if redirect.target in path and here == min([*path[path.index(redirect.target):], here]):
        return None
    return Event(event.event_id, redirect.target, MERGE, event.occurred_at, source="journey",
                 properties={**event.properties, "path": [*path, here]})


def forwarded(event: Event, target: str) -> Event | None:
    """``event`` for the user its id was merged into, with only the properties the core
    reads (None: it has been forwarded MAX_HOPS times, a loop)."""
    props = event.properties
    hops = int(props.get("_hops", 0)) + 1 if event.source == "journey" else 1
    if hops > MAX_HOPS:
        return None
    kept = {k: v for k, v in props.items() if k in READ_PROPERTIES}
    kept["_hops"] = hops
    return Event(event.event_id, target, event.type, event.occurred_at, event.utc_offset_min,
                 event.amount, event.currency, event.order_id, event.rating, event.channel,
                 event.referred_user_id, "journey", kept)


def brings_purchase(event: Event, since: float) -> bool:
    """Whether a merge brings a purchase made at or after ``since`` (a comeback)."""
    bought = event.properties.get("bought_at") if event.type == MERGE else None
    return bought is not None and bought >= since


# --- the merge ------------------------------------------------------------------------------

def merge_into(t: UserState, s: UserState) -> None:
    """Fold the closed profile ``s`` into ``t`` (see KEPT and MERGED)."""
    t.first_seen_at = min(t.first_seen_at, s.first_seen_at)
    t.last_event_at = max(t.last_event_at, s.last_event_at)
    if s.active_seen and (not t.active_seen or s.last_active_at > t.last_active_at):
        t.last_active_at = s.last_active_at
    t.active_seen = t.active_seen or s.active_seen
    if not t.active_seen:  # as apply_event: no activity yet counts from first sight
        t.last_active_at = t.first_seen_at
    t.absorb_purchase_days(s)  # before the orders move last_purchase_at
    _merge_orders(t, s)
    t.refunds += s.refunds
    t.refunded += s.refunded
    _merge_held_refunds(t, s)
    t.interested = t.interested or s.interested
    t.carted = t.carted or s.carted
    t.shares += s.shares
    t.referrals_sent += s.referrals_sent
    t.referred_converted += s.referred_converted
    t.coupons += s.coupons
    t.reviews += s.reviews
    t.rating_sum += s.rating_sum
    if s.referred_by and s.referred_by != t.user_id and s.referred_at is not None \
            and (t.referred_by is None or t.referred_at is None
                 or (s.referred_at, s.referred_by) < (t.referred_at, t.referred_by)):
        t.referred_by, t.referred_at = s.referred_by, s.referred_at  # first touch
    t.referral_reported = t.referral_reported or s.referral_reported
    # an opt-out on either profile holds
    if s.consent_mask is not None:
        t.consent_mask = s.consent_mask if t.consent_mask is None \
            else t.consent_mask & s.consent_mask
    for known, there in CONTACTS:  # what the user's own identify said comes first
        if s.contact_bits & known and not t.contact_bits & known:
            t.contact_bits |= s.contact_bits & (known | there)
    if t.utc_offset_min is None:
        t.utc_offset_min = s.utc_offset_min
    t.hour_x += s.hour_x
    t.hour_y += s.hour_y
    _merge_alerts(t, s)


def _merge_orders(t: UserState, s: UserState) -> None:
    """Orders of both, an order sent under both ids counted once (its earliest copy),
    as apply_event counts a re-sent order."""
    orders, gross, log = s.orders, s.gross_spend, s.purchases()
    for day, net in s.spend_by_day():  # refunds in it too; a copy t counted is taken out below
        t.add_spend(day * 86400.0, net)
    for order_id, at, amount in s.logged_orders():
        seen = t.find_order(order_id)
        if seen is None:
            t.log_order(order_id, at, amount)
            continue
        orders -= 1
        gross -= amount
        t.add_spend(at, -amount)
        if (at, amount) in log:
            log.remove((at, amount))
        if (at, amount) < t.logged_order(seen):
            replace_purchase(t, seen, at, amount)
    t.orders += orders
    t.gross_spend += gross
    for at, amount in log:
        t.log_purchase(at, amount)
    if orders > 0 and s.first_purchase_at is not None:
        # the latest of s's own purchases: its log less the copies t had first
        last = max((at for at, _ in log), default=s.last_purchase_at or s.first_purchase_at)
        t.first_purchase_at = s.first_purchase_at if t.first_purchase_at is None \
            else min(t.first_purchase_at, s.first_purchase_at)
        t.last_purchase_at = last if t.last_purchase_at is None \
            else max(t.last_purchase_at, last)


def _merge_held_refunds(t: UserState, s: UserState) -> None:
    """Full refunds either profile holds: those whose order the other profile had are
    settled now, as if the person had been one profile all along."""
    held = held_entries(t.held_refunds + s.held_refunds)
    t.held_refunds = b""
    for key, at in sorted(held, key=lambda entry: entry[1]):
        refund_order(t, key, at)


def _merge_alerts(t: UserState, s: UserState) -> None:
    """Contact history of both, so caps and cool-downs count every alert the person had."""
    t.alerts_sent += s.alerts_sent
    t.recalls += s.recalls
    t.recall_returns += s.recall_returns
    for at in s.alert_times():
        t.log_alert(at)
    if t.last_alert_id is None:
        t.last_alert_id = s.last_alert_id
    if s.last_recall_at is not None and (t.last_recall_at is None
                                         or s.last_recall_at > t.last_recall_at):
        t.last_recall_id, t.last_recall_at = s.last_recall_id, s.last_recall_at
        t.last_recall_control = s.last_recall_control


def revive(state: UserState, redirect: Redirect) -> None:
    """A redirect becoming a user again (a merge come full circle) keeps its dedupe."""
    state.max_position = redirect.max_position
    state.recent_ids = redirect.recent_ids


assert set(KEPT) | set(MERGED) == set(RECORD_FIELDS), \
    "every UserState field is either kept or merged: see streams/core/identity.py"


# --- what a partition does with an event for an id it holds a redirect for ---------------

def at_redirect(redirect: Redirect, event: Event, out: Outputs) -> bool:
    """A stitch or merge for an id that is a redirect already; False when a merge came
    round a loop and this id must take it as a user."""
    if event.type == STITCH:
        if stitch_target(event) == redirect.target or redirect.has_seen(event.event_id):
            out.duplicates += 1
        else:
            out.stitches.append("already_merged")  # an id's first stitch stands
        return True
    hop = merge_hop(redirect, event)
    if hop is None:
        out.stitches.append("revived")
        return False
    out.feedback.append(hop)
    return True


def forward(redirects: MutableMapping[str, Redirect], redirect: Redirect, event: Event,
            position: int | None, out: Outputs, dedupe_window: int) -> None:
    """An event for a merged id, sent on to the user it was merged into."""
    onward = forwarded(event, redirect.target)
    if onward is None:
        out.rejected.append(Rejected("processing_error", "identity redirects loop: "
                                     f"forwarded {MAX_HOPS} times", event))
        return
    redirect.remember(event.event_id, position, dedupe_window)
    redirects[event.user_id] = redirect
    out.touched.add(event.user_id)
    out.feedback.append(onward)
    out.stitches.append("redirected")
