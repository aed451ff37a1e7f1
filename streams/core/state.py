"""Per-user lifecycle state: the aggregates the rules read.

Every aggregate is order-independent (counts, sums, maxima, bounded sorted logs), so the
same set of events gives the same state whatever order they arrive in. That is what makes
out-of-order delivery, replay and the live worker agree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from streams.core.alert_ref import AlertRef, kept_beside, pack_id, unpack_id
from streams.core.logs import (
    held_from_record,
    held_record,
    ids_from_record,
    ids_record,
    orders_from_record,
    orders_record,
    pack,
)
from streams.core.packed import (
    NUMBERS,
    SECTIONS,
    PackedFloat,
    Section,
    all_numbers,
    numbers,
    packed,
    section,
    with_numbers,
)
from streams.core.purchase_days import DAY as DAY
from streams.core.purchase_days import HALF_LIVES as HALF_LIVES
from streams.core.purchase_days import PurchaseDayAggregates
from streams.core.sparse import SPARSE_DEFAULTS, SPARSE_NAMES, HasSparse, SparseFields
from streams.core.user_logs import (
    ALERTS_AT,
    ORDERS_AT,
    PURCHASES_AT,
    RECENT_IDS_AT,
    SPEND_AT,
    BoundedLogs,
)

CHANNELS: tuple[str, ...] = ("app_push", "email", "sms", "phone")
CHANNEL_BIT: dict[str, int] = {c: 1 << i for i, c in enumerate(CHANNELS)}

NEW, GROWING, MATURE, DECLINING, CHURNED = "new", "growing", "mature", "declining", "churned"
STAGES: tuple[str, ...] = (NEW, GROWING, MATURE, DECLINING, CHURNED)
INACTIVE_STAGES = frozenset({DECLINING, CHURNED})
ACTIVE_STAGES = frozenset({NEW, GROWING, MATURE})

FUNNEL: tuple[str, ...] = ("aware", "interested", "cart", "purchased", "repeat", "advocate")

# What identify calls told of the user's contact details (UserState.contact_bits): whether
# an email address, and a phone number, are known to be there or known to be absent.
EMAIL_KNOWN, HAS_EMAIL, PHONE_KNOWN, HAS_PHONE = 1, 2, 4, 8
CONTACTS = ((EMAIL_KNOWN, HAS_EMAIL), (PHONE_KNOWN, HAS_PHONE))  # (told, there) per detail
ALL_CHANNELS = (1 << len(CHANNELS)) - 1
NEEDS_EMAIL = 1 << CHANNELS.index("email")
NEEDS_PHONE = (1 << CHANNELS.index("sms")) | (1 << CHANNELS.index("phone"))


def channel_mask(channels: list[str] | tuple[str, ...]) -> int:
    mask = 0
    for c in channels:
        mask |= CHANNEL_BIT.get(c, 0)
    return mask


def mask_channels(mask: int) -> list[str]:
    return [c for c in CHANNELS if mask & CHANNEL_BIT[c]]


# Where the packed floats sit among the numbers of ``packed`` (streams/core/packed.py).
HOUR_SUMS_AT = 0  # hour_x, hour_y
DECAYS_AT = 2  # decay_30, decay_90, decay_180


@dataclass(slots=True, eq=False)
class UserState(HasSparse, BoundedLogs, PurchaseDayAggregates):
    user_id: str
    first_seen_at: float
    last_event_at: float
    last_active_at: float  # the first event's time until an activity event is seen
    # source position of the newest applied record (the Kafka offset in the live worker),
    # so redelivered records are recognised without remembering their ids
    max_position: int = -1
    # The five bounded logs (used through streams/core/user_logs.py) are packed
    # (streams/core/logs.py): floats as float64, ids as 8-byte digests (``key_of``). They
    # are sections of one bytes object, ``packed`` (streams/core/packed.py), read and
    # written as these attributes.
    recent_ids = Section(RECENT_IDS_AT)  # bounded dedupe window of event ids' digests, oldest first
    # recent purchases, sorted: time, amount for each (see ``purchases``)
    purchase_log = Section(PURCHASES_AT)
    # recent orders, to count an order once whichever copy of a re-sent order arrives
    # first: the order id's digest, time, amount for each (24 bytes)
    order_log = Section(ORDERS_AT)
    alert_log = Section(ALERTS_AT)  # recent alert times, sorted, for the cap
    # UTC day number, net spend that day, sorted (see ``spend_by_day``); only days that
    # can still fall in a 90-day window ending at or after the newest day, so the same
    # whatever the order
    spend_days = Section(SPEND_AT)

    orders: int = 0
    first_purchase_at: float | None = None
    last_purchase_at: float | None = None
    gross_spend: float = 0.0  # purchases; refunds (``refunded``) are kept apart

    active_seen: bool = False
    hour_x = PackedFloat(HOUR_SUMS_AT)  # circular sum of local activity hours (``add_hour``)
    hour_y = PackedFloat(HOUR_SUMS_AT + 1)

    stage: str = NEW
    stage_since: float = 0.0
    # when the partition's timer index wakes this user: at or before the stage's true
    # deadline (activity moves that later lazily). Kept so a restore rebuilds the index
    # exactly as the uninterrupted run holds it.
    wake_at: float | None = None
    alerts_sent: int = 0
    recalls: int = 0
    # the last alert's and the last recall's ids (kept packed in the slots at the end)
    last_alert_id = AlertRef("last_alert_key", "last_recall_key")
    last_recall_id = AlertRef("last_recall_key", "last_alert_key")
    last_recall_at: float | None = None
    last_recall_control: bool | None = None

    # What the learned churn score reads (streams.core.churn), folded per purchase day:
    # several purchases on one UTC day are one purchase day. Appended last, so records
    # written before they existed still load (see from_list).
    purchase_days: int = 0
    last_day_spend: float = 0.0  # spend on the last purchase day
    last_gap_days: int = 0  # days between the last two purchase days; 0 with one
    # purchase days decayed with HALF_LIVES, as of the last purchase day (decayed
    # further when read)
    decay_30 = PackedFloat(DECAYS_AT)
    decay_90 = PackedFloat(DECAYS_AT + 1)
    decay_180 = PackedFloat(DECAYS_AT + 2)
    recall_returns: int = 0  # recalls followed by a return within uplift_window_days
    # Kept compactly, read and written through the attributes above: the alert ids
    # (streams/core/alert_ref.py), then refunds, engagement, referral, consent and
    # contact details (streams/core/sparse.py; None until one of them is set), then the
    # packed floats and logs. Not in the record as such: see RECORD_FIELDS.
    last_alert_key: bytes | str | None = None
    last_recall_key: bytes | str | None = None
    sparse: SparseFields | None = None
    packed: bytes = b""

    def __eq__(self, other: object) -> bool:
        """Equal records: a ``sparse`` object back at its defaults equals none."""
        if not isinstance(other, UserState):
            return NotImplemented
        return self.to_list() == other.to_list()

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq is

    # --- derived values -------------------------------------------------------------

    @property
    def monetary(self) -> float:
        """Lifetime net spend: purchases minus refunds, never below zero."""
        sparse = self.sparse  # read directly: this is on every event's path
        return max(0.0, self.gross_spend - (0.0 if sparse is None else sparse.refunded))

    @property
    def repeat_purchases(self) -> int:
        return max(0, self.orders - 1)

    def avg_gap_days(self) -> float | None:
        if self.orders < 2 or self.first_purchase_at is None or self.last_purchase_at is None:
            return None
        return (self.last_purchase_at - self.first_purchase_at) / 86400.0 / (self.orders - 1)

    def gap_cv(self) -> float | None:
        """Coefficient of variation of the recent purchase gaps (regularity)."""
        times = self.purchase_times()
        if len(times) < 3:
            return None
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = sum(gaps) / len(gaps)
        if mean <= 0:
            return None
        var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
        return float(var ** 0.5 / mean)

    def funnel_index(self) -> int:
        orders, sparse = self.orders, self.sparse  # sparse read once: on every event's path
        if orders >= 1:
            if sparse is not None and (sparse.shares or sparse.referrals_sent
                                       or sparse.referred_converted):
                return 5
            return 4 if orders >= 2 else 3
        if sparse is None:
            return 0
        return 2 if sparse.carted else 1 if sparse.interested else 0

    def funnel_stage(self) -> str:
        return FUNNEL[self.funnel_index()]

    def consented(self, default_mask: int) -> int:
        return default_mask if self.consent_mask is None else self.consent_mask

    def reachable(self) -> int:
        """The channels the user has the details for: all, less email when identify said
        there is no address, less sms and phone when it said there is no number."""
        mask, bits = ALL_CHANNELS, self.contact_bits
        if bits & EMAIL_KNOWN and not bits & HAS_EMAIL:
            mask &= ~NEEDS_EMAIL
        if bits & PHONE_KNOWN and not bits & HAS_PHONE:
            mask &= ~NEEDS_PHONE
        return mask

    def decays(self) -> tuple[float, ...]:
        return numbers(self.packed, DECAYS_AT, 3)

    def set_decays(self, d30: float, d90: float, d180: float) -> None:
        self.packed = with_numbers(self.packed, DECAYS_AT, (d30, d90, d180))

    def add_hour(self, x: float, y: float) -> None:
        """Add an activity's local hour, as a point on the unit circle, to the sums."""
        sum_x, sum_y = numbers(self.packed, HOUR_SUMS_AT, 2)
        self.packed = with_numbers(self.packed, HOUR_SUMS_AT, (sum_x + x, sum_y + y))

    # --- codec (the table's value format) ------------------------------------------

    def to_list(self) -> list[Any]:
        """The record: RECORD_FIELDS' values, logs in readable form."""
        sparse, blob = self.sparse, self.packed
        parts = (*_slot_values(self),
                 *(SPARSE_DEFAULTS if sparse is None else _sparse_values(sparse)),
                 ids_record(section(blob, 0)), self.purchases(),
                 orders_record(section(blob, 2)), self.alert_times(), self.spend_by_day(),
                 *all_numbers(blob),
                 unpack_id(self.last_alert_key), unpack_id(self.last_recall_key))
        record = list(map(parts.__getitem__, _FROM_PARTS))
        record[_HELD_AT] = held_record(self.held_refunds)
        return record

    @classmethod
    def from_list(cls, values: list[Any]) -> UserState:
        """A state from ``to_list``'s record, or from one written by an earlier version:
        ids as text, orders as lists, no spend days, no purchase-day aggregates."""
        n = len(values)
        if n < len(RECORD_FIELDS):  # older records end earlier: the rest are defaults
            values = [*values, *BLANK_RECORD[n:]]
        at = values.__getitem__
        state = cls(*map(at, _SLOT_AT))
        sparse = list(map(at, _SPARSE_AT))
        sparse[_HELD_SPARSE] = held_from_record(sparse[_HELD_SPARSE])
        # the types too: a record must read back as it was written (0 is not 0.0)
        if sparse != _SPARSE_DEFAULTS or list(map(type, sparse)) != _SPARSE_TYPES:
            state.sparse = SparseFields(*sparse)
        alert, recall = at(_AT["last_alert_id"]), at(_AT["last_recall_id"])
        state.last_alert_key = kept = pack_id(alert)
        state.last_recall_key = kept_beside(recall, kept)
        state.packed = packed(list(map(at, _NUMBER_AT)), (
            ids_from_record(values[_AT["recent_ids"]]),
            pack([v for pair in values[_AT["purchase_log"]] for v in pair]),
            orders_from_record(values[_AT["order_log"]]),
            pack(values[_AT["alert_log"]]),
            pack([v for pair in values[_AT["spend_days"]] for v in pair])))
        if n <= _AT["spend_days"]:  # records written before spend_days: from purchases
            for t, a in state.purchases():
                state.add_spend(t, a)
        if state.orders and not state.purchase_days:  # written before the aggregates
            state.refold_purchase_days()
        return state


# The record's positional layout. Append only: a record ends where its version's did.
RECORD_FIELDS: tuple[str, ...] = (
    "user_id", "first_seen_at", "last_event_at", "last_active_at", "max_position",
    "recent_ids", "orders", "first_purchase_at", "last_purchase_at", "gross_spend",
    "refunded", "refunds", "purchase_log", "order_log", "interested", "carted", "shares",
    "referrals_sent", "referred_converted", "referred_by", "referred_at",
    "referral_reported", "coupons", "reviews", "rating_sum", "consent_mask",
    "utc_offset_min", "active_seen", "hour_x", "hour_y", "stage", "stage_since", "wake_at",
    "alerts_sent", "recalls", "alert_log", "last_alert_id", "last_recall_id",
    "last_recall_at", "last_recall_control", "spend_days", "contact_bits", "purchase_days",
    "last_day_spend", "last_gap_days", "decay_30", "decay_90", "decay_180",
    "recall_returns", "held_refunds")
_LOGS = ("recent_ids", "purchase_log", "order_log", "alert_log", "spend_days")
_NUMBERS = ("hour_x", "hour_y", "decay_30", "decay_90", "decay_180")
_TAIL = ("last_alert_key", "last_recall_key", "sparse", "packed")  # set by from_list
_SLOTS = tuple(f.name for f in fields(UserState))[:-len(_TAIL)]
assert tuple(f.name for f in fields(UserState))[-len(_TAIL):] == _TAIL
_REFS = ("last_alert_id", "last_recall_id")
assert [getattr(UserState, n).index for n in _LOGS] == list(range(SECTIONS))
assert [getattr(UserState, n).index for n in _NUMBERS] == list(range(NUMBERS))
_KEPT_APART = (*SPARSE_NAMES, *_LOGS, *_NUMBERS, *_REFS)
assert set(RECORD_FIELDS) == {*_SLOTS, *_KEPT_APART} \
    and len(RECORD_FIELDS) == len(_SLOTS) + len(_KEPT_APART), \
    "every UserState field (a slot, or kept apart) has its place in RECORD_FIELDS"
_SLOT_AT = [RECORD_FIELDS.index(n) for n in _SLOTS]
_SPARSE_AT = [RECORD_FIELDS.index(n) for n in SPARSE_NAMES]
_NUMBER_AT = [RECORD_FIELDS.index(n) for n in _NUMBERS]
_SPARSE_DEFAULTS = list(SPARSE_DEFAULTS)
_SPARSE_TYPES = list(map(type, SPARSE_DEFAULTS))
# to_list gathers the values in this order, then puts them in the record's
_PARTS = (*_SLOTS, *SPARSE_NAMES, *_LOGS, *_NUMBERS, *_REFS)
_FROM_PARTS = [_PARTS.index(n) for n in RECORD_FIELDS]
_slot_values = attrgetter(*_SLOTS)
_sparse_values = attrgetter(*SPARSE_NAMES)
_AT = {n: RECORD_FIELDS.index(n) for n in (*_LOGS, *_REFS)}
_HELD_AT = RECORD_FIELDS.index("held_refunds")  # bytes in the state, readable in the record
_HELD_SPARSE = SPARSE_NAMES.index("held_refunds")
BLANK_RECORD = UserState("", 0.0, 0.0, 0.0).to_list()  # every field at its default
