"""Per-user lifecycle state: the aggregates the rules read.

Every aggregate is order-independent (counts, sums, maxima, bounded sorted logs), so the
same set of events gives the same state whatever order they arrive in. That is what makes
out-of-order delivery, replay and the live worker agree.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields
from typing import Any

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

PURCHASE_LOG_CAP = 8  # recent purchases kept for the rhythm
ORDER_LOG_CAP = 2 * PURCHASE_LOG_CAP  # recent order ids kept to count a re-sent order once
SPEND_WINDOW_DAYS = 90  # monetary_90d: net spend (purchases minus refunds) over 90 days
# daily net spend is kept for the days since the newest one's window began: at most this many
SPEND_DAYS_CAP = SPEND_WINDOW_DAYS + 1
ALERT_LOG_CAP = 8  # recent alert times kept for the contact cap
DAY = 86400.0
# half-lives (days) of the decayed purchase-day counts the churn model reads
HALF_LIVES: tuple[float, float, float] = (30.0, 90.0, 180.0)
_DECAY = tuple(-math.log(2.0) / h for h in HALF_LIVES)


def channel_mask(channels: list[str] | tuple[str, ...]) -> int:
    mask = 0
    for c in channels:
        mask |= CHANNEL_BIT.get(c, 0)
    return mask


def mask_channels(mask: int) -> list[str]:
    return [c for c in CHANNELS if mask & CHANNEL_BIT[c]]


@dataclass(slots=True)
class UserState:
    user_id: str
    first_seen_at: float
    last_event_at: float
    last_active_at: float  # the first event's time until an activity event is seen
    # source position of the newest applied record (the Kafka offset in the live worker),
    # so redelivered records are recognised without remembering their ids
    max_position: int = -1
    # The bounded logs below are tuples, replaced whole on each change: an empty one is the
    # shared (), and none holds spare capacity (lists cost about 300 bytes more a user).
    recent_ids: tuple[str, ...] = ()  # bounded dedupe window, oldest first

    orders: int = 0
    first_purchase_at: float | None = None
    last_purchase_at: float | None = None
    gross_spend: float = 0.0  # purchases; refunds are kept apart so they may arrive first
    refunded: float = 0.0
    refunds: int = 0
    # recent purchases, sorted, flat: time, amount for each (see ``purchases``); a record
    # holds them as pairs
    purchase_log: tuple[float, ...] = ()
    # recent orders, to count an order once whichever copy of a re-sent order arrives
    # first: flat, order_id, time, amount for each
    order_log: tuple[Any, ...] = ()

    interested: bool = False
    carted: bool = False
    shares: int = 0
    referrals_sent: int = 0
    referred_converted: int = 0
    referred_by: str | None = None
    referred_at: float | None = None  # when the referral was recorded (signup)
    referral_reported: bool = False  # told the referrer that this user bought
    coupons: int = 0
    reviews: int = 0
    rating_sum: int = 0

    consent_mask: int | None = None  # None: the operator's default consent applies
    utc_offset_min: int | None = None
    active_seen: bool = False
    hour_x: float = 0.0  # circular sum of local activity hours
    hour_y: float = 0.0

    stage: str = NEW
    stage_since: float = 0.0
    # when the partition's timer index wakes this user: at or before the stage's true
    # deadline (activity moves that later lazily). Kept so a restore rebuilds the index
    # exactly as the uninterrupted run holds it.
    wake_at: float | None = None
    alerts_sent: int = 0
    recalls: int = 0
    alert_log: tuple[float, ...] = ()  # recent alert times, sorted, for the cap
    last_alert_id: str | None = None
    last_recall_id: str | None = None
    last_recall_at: float | None = None
    last_recall_control: bool | None = None
    # New fields go last: records are positional lists, and older ones end earlier.
    # UTC day number, net spend that day, flat and sorted (see ``spend_by_day``; a record
    # holds them as pairs); only days that can still fall in a 90-day window ending at or
    # after the newest day, so the same whatever the order
    spend_days: tuple[int | float, ...] = ()
    # EMAIL_KNOWN | HAS_EMAIL | PHONE_KNOWN | HAS_PHONE from identify traits; 0: never told
    contact_bits: int = 0

    # What the learned churn score reads (streams.core.churn), folded per purchase day:
    # several purchases on one UTC day are one purchase day. Appended last, so records
    # written before they existed still load (see from_list).
    purchase_days: int = 0
    last_day_spend: float = 0.0  # spend on the last purchase day
    last_gap_days: int = 0  # days between the last two purchase days; 0 with one
    # purchase days decayed with HALF_LIVES, as of the last purchase day (decayed
    # further when read)
    decay_30: float = 0.0
    decay_90: float = 0.0
    decay_180: float = 0.0
    recall_returns: int = 0  # recalls followed by a return within uplift_window_days

    # --- derived values -------------------------------------------------------------

    @property
    def monetary(self) -> float:
        """Lifetime net spend: purchases minus refunds, never below zero."""
        return max(0.0, self.gross_spend - self.refunded)

    @property
    def repeat_purchases(self) -> int:
        return max(0, self.orders - 1)

    def avg_gap_days(self) -> float | None:
        if self.orders < 2 or self.first_purchase_at is None or self.last_purchase_at is None:
            return None
        return (self.last_purchase_at - self.first_purchase_at) / 86400.0 / (self.orders - 1)

    def gap_cv(self) -> float | None:
        """Coefficient of variation of the recent purchase gaps (regularity)."""
        times = self.purchase_log[0::2]
        if len(times) < 3:
            return None
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = sum(gaps) / len(gaps)
        if mean <= 0:
            return None
        var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
        return float(var ** 0.5 / mean)

    def net_spend_90d(self, now: float) -> float:
        """Purchases minus refunds over the 90 days up to ``now`` (day resolution), never
        below zero."""
        first = int(now // 86400.0) - SPEND_WINDOW_DAYS + 1
        last = int(now // 86400.0)
        days = self.spend_days
        return max(0.0, sum(days[i + 1] for i in range(0, len(days), 2)
                            if first <= days[i] <= last))

    def spend_by_day(self) -> list[tuple[int, float]]:
        """``spend_days`` as (UTC day number, net spend that day), oldest first."""
        days = self.spend_days
        return [(int(days[i]), days[i + 1]) for i in range(0, len(days), 2)]

    def add_spend(self, at: float, amount: float) -> None:
        """Add ``amount`` (negative for a refund) to the day of ``at``."""
        day = int(at // 86400.0)
        days = self.spend_days
        i = len(days)
        while i and days[i - 2] > day:  # days come mostly in order: scan from the newest
            i -= 2
        if i and days[i - 2] == day:
            days = (*days[:i - 1], days[i - 1] + amount, *days[i:])
        else:
            days = (*days[:i], day, amount, *days[i:])
        oldest_kept = days[-2] - SPEND_DAYS_CAP
        drop = 0
        while drop < len(days) and days[drop] <= oldest_kept:
            drop += 2
        self.spend_days = days[drop:] if drop else days

    def funnel_index(self) -> int:
        if self.orders >= 1 and (self.shares or self.referrals_sent or self.referred_converted):
            return 5
        if self.orders >= 2:
            return 4
        if self.orders == 1:
            return 3
        if self.carted:
            return 2
        if self.interested:
            return 1
        return 0

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

    # --- bounded logs -----------------------------------------------------------------

    def remember_id(self, event_id: str, cap: int) -> None:
        self.recent_ids = keep_last(self.recent_ids, event_id, cap)

    def purchases(self) -> list[tuple[float, float]]:
        """``purchase_log`` as (time, amount), oldest first."""
        log = self.purchase_log
        return [(log[i], log[i + 1]) for i in range(0, len(log), 2)]

    def logged_purchases(self) -> int:
        return len(self.purchase_log) // 2

    def log_purchase(self, at: float, amount: float) -> None:
        self.purchase_log = insort_capped(self.purchase_log, (at, amount), PURCHASE_LOG_CAP)

    def unlog_purchase(self, at: float, amount: float) -> bool:
        """Take the first logged purchase equal to (at, amount) out; False if none is."""
        log = self.purchase_log
        for i in range(0, len(log), 2):
            if log[i] == at and log[i + 1] == amount:
                self.purchase_log = log[:i] + log[i + 2:]
                return True
        return False

    def find_order(self, order_id: str) -> int | None:
        """Where ``order_id`` is in the order log (for ``logged_order``), if it is."""
        log = self.order_log
        for i in range(0, len(log), 3):
            if log[i] == order_id:
                return i
        return None

    def logged_order(self, i: int) -> tuple[float, float]:
        """Time and amount of the order at ``i`` (see ``find_order``)."""
        return self.order_log[i + 1], self.order_log[i + 2]

    def relog_order(self, i: int, at: float, amount: float) -> None:
        log = self.order_log
        self.order_log = (*log[:i + 1], at, amount, *log[i + 3:])

    def logged_orders(self) -> list[tuple[str, float, float]]:
        """The order log as (order_id, time, amount), oldest first."""
        log = self.order_log
        return [(log[i], log[i + 1], log[i + 2]) for i in range(0, len(log), 3)]

    def log_order(self, order_id: str, at: float, amount: float) -> None:
        log = (*self.order_log, order_id, at, amount)
        self.order_log = log[3:] if len(log) > ORDER_LOG_CAP * 3 else log

    def fold_purchase_day(self, at: float, amount: float) -> None:
        """Fold a purchase into the purchase-day aggregates. Call it before the purchase
        enters ``purchase_log`` and ``last_purchase_at``. In time order only the first
        branch runs; a late purchase (an earlier day, within the allowed lateness) folds
        in too, equal to in-order folding up to float rounding."""
        last = self.last_purchase_at
        if last is None or self.purchase_days == 0:
            self.purchase_days, self.last_day_spend, self.last_gap_days = 1, amount, 0
            self.decay_30 = self.decay_90 = self.decay_180 = 1.0
            return
        day, last_day = int(at // DAY), int(last // DAY)
        if day > last_day:  # a new, later purchase day: the usual case
            gap = day - last_day
            self.decay_30 = self.decay_30 * math.exp(_DECAY[0] * gap) + 1.0
            self.decay_90 = self.decay_90 * math.exp(_DECAY[1] * gap) + 1.0
            self.decay_180 = self.decay_180 * math.exp(_DECAY[2] * gap) + 1.0
            self.purchase_days += 1
            self.last_gap_days = gap
            self.last_day_spend = amount
        elif day == last_day:
            self.last_day_spend += amount
        elif all(int(t // DAY) != day for t in self.purchase_log[0::2]):  # a late, new day
            age = last_day - day
            self.decay_30 += math.exp(_DECAY[0] * age)
            self.decay_90 += math.exp(_DECAY[1] * age)
            self.decay_180 += math.exp(_DECAY[2] * age)
            if self.purchase_days == 1 or age < self.last_gap_days:
                self.last_gap_days = age  # it falls between the last two purchase days
            self.purchase_days += 1

    def absorb_purchase_days(self, other: UserState) -> None:
        """Add ``other``'s purchase-day aggregates (a profile merged into this one; call
        it before the orders merge moves ``last_purchase_at``). Both decay to the later
        last purchase day and add; a day both bought on counts twice (two ids buying on
        the same day is rare, and the counts are features, not totals anyone reads)."""
        if other.purchase_days == 0 or other.last_purchase_at is None:
            return
        if self.purchase_days == 0 or self.last_purchase_at is None:
            self.purchase_days, self.last_day_spend = other.purchase_days, other.last_day_spend
            self.last_gap_days = other.last_gap_days
            self.decay_30, self.decay_90, self.decay_180 = \
                other.decay_30, other.decay_90, other.decay_180
            return
        mine, theirs = int(self.last_purchase_at // DAY), int(other.last_purchase_at // DAY)
        last = max(mine, theirs)
        a, b = last - mine, last - theirs
        self.decay_30 = self.decay_30 * math.exp(_DECAY[0] * a) \
            + other.decay_30 * math.exp(_DECAY[0] * b)
        self.decay_90 = self.decay_90 * math.exp(_DECAY[1] * a) \
            + other.decay_90 * math.exp(_DECAY[1] * b)
        self.decay_180 = self.decay_180 * math.exp(_DECAY[2] * a) \
            + other.decay_180 * math.exp(_DECAY[2] * b)
        self.purchase_days += other.purchase_days
        if theirs == mine:
            self.last_day_spend += other.last_day_spend
        elif theirs > mine:
            self.last_day_spend = other.last_day_spend
            self.last_gap_days = min(theirs - mine, other.last_gap_days or theirs - mine)
        else:
            self.last_gap_days = min(mine - theirs, self.last_gap_days or mine - theirs)

    def refold_purchase_days(self) -> None:
        """Rebuild the purchase-day aggregates from ``purchase_log``: exact while it holds
        every order; otherwise older orders count as one purchase day each and add
        nothing to the decays (records written before the aggregates existed)."""
        log, last = self.purchases(), self.last_purchase_at
        self.purchase_days = 0
        self.last_purchase_at = None
        for t, amount in log:
            self.fold_purchase_day(t, amount)
            self.last_purchase_at = t
        self.last_purchase_at = last
        self.purchase_days += max(0, self.orders - len(log))

    def log_alert(self, at: float) -> None:
        self.alert_log = insort_capped(self.alert_log, (at,), ALERT_LOG_CAP)

    # --- codec (the table's value format) ------------------------------------------

    def to_list(self) -> list[Any]:
        values = [getattr(self, n) for n in _FIELD_NAMES]
        # as pairs, the record format from before the flat logs: either version reads it
        values[_PURCHASE_LOG_AT] = self.purchases()
        values[_SPEND_DAYS_AT] = self.spend_by_day()
        return values

    @classmethod
    def from_list(cls, values: list[Any]) -> UserState:
        state = cls(*values[: len(_FIELD_NAMES)])
        state.recent_ids = tuple(state.recent_ids)
        state.purchase_log = tuple(float(v) for pair in state.purchase_log for v in pair)
        if state.order_log and isinstance(state.order_log[0], (list, tuple)):
            # written when each order was a list of its own: flatten
            state.order_log = tuple(v for entry in state.order_log for v in entry)
        else:
            state.order_log = tuple(state.order_log)
        state.alert_log = tuple(state.alert_log)
        if len(values) > _SPEND_DAYS_AT:  # records written before spend_days have none
            state.spend_days = tuple(v for d, a in state.spend_days for v in (int(d), float(a)))
        else:
            for t, a in state.purchases():
                state.add_spend(t, a)
        if state.orders and not state.purchase_days:  # written before the aggregates
            state.refold_purchase_days()
        return state


def insort_capped(log: tuple[float, ...], entry: tuple[float, ...],
                  cap: int) -> tuple[float, ...]:
    """``log``, a flat sorted log of entries as wide as ``entry``, with ``entry`` inserted
    after the equal ones and only the newest ``cap`` entries kept. Entries come mostly in
    order, so the place is searched from the newest."""
    width, i = len(entry), len(log)
    while i and log[i - width:i] > entry:
        i -= width
    log = (*log[:i], *entry, *log[i:])
    return log[width:] if len(log) > cap * width else log


def keep_last(log: tuple[str, ...], item: str, cap: int) -> tuple[str, ...]:
    """``log`` with ``item`` appended and only its last ``cap`` entries kept."""
    log = (*log, item)
    return log[len(log) - cap:] if len(log) > cap else log


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(UserState))
_SPEND_DAYS_AT = _FIELD_NAMES.index("spend_days")
_PURCHASE_LOG_AT = _FIELD_NAMES.index("purchase_log")
