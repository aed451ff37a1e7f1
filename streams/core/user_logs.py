"""The bounded logs of a user's state, and what reads and writes them.

Five logs keep a user's recent history within fixed caps: the dedupe window of event ids,
the recent purchases (for the rhythm), the recent orders (to count a re-sent order once),
the recent alert times (for the contact cap) and the net spend by day (for the 90-day
spend). A full refund whose order has not come yet waits in a sixth, sparse, log. They
are packed bytes (``streams.core.logs``), held as sections of ``UserState.packed``.
"""

from __future__ import annotations

from streams.core.logs import (
    HELD_BYTES,
    KEY_BYTES,
    ORDER_BYTES,
    VALUE_BYTES,
    entry_at,
    find_key,
    has_id,
    held_entries,
    insort_capped,
    keep_last,
    pack_entry,
    unpack,
    with_day_amount,
)
from streams.core.packed import sections, with_logs

PURCHASE_LOG_CAP = 8  # recent purchases kept for the rhythm
ORDER_LOG_CAP = 2 * PURCHASE_LOG_CAP  # recent order ids kept to count a re-sent order once
SPEND_WINDOW_DAYS = 90  # monetary_90d: net spend (purchases minus refunds) over 90 days
# daily net spend is kept for the days since the newest one's window began: at most this many
SPEND_DAYS_CAP = SPEND_WINDOW_DAYS + 1
ALERT_LOG_CAP = 8  # recent alert times kept for the contact cap
HELD_REFUND_CAP = 8  # full refunds kept waiting for their order

# where each log sits among the sections of ``packed`` (streams/core/packed.py)
RECENT_IDS_AT, PURCHASES_AT, ORDERS_AT, ALERTS_AT, SPEND_AT = range(5)
PURCHASE_BYTES = 2 * VALUE_BYTES  # a purchase_log entry: time, amount


class BoundedLogs:
    """Reading and writing the logs; ``UserState`` holds them."""

    __slots__ = ()
    recent_ids: bytes
    purchase_log: bytes
    order_log: bytes
    alert_log: bytes
    spend_days: bytes
    held_refunds: bytes
    packed: bytes

    def remember_key(self, key: bytes, cap: int) -> None:
        """Put an event id's digest (``logs.key_of``) in the dedupe window."""
        self.recent_ids = keep_last(self.recent_ids, key, cap)

    def has_seen(self, event_id: str) -> bool:
        """Whether ``event_id`` is in the dedupe window."""
        return has_id(self.recent_ids, event_id)

    def purchases(self) -> list[tuple[float, float]]:
        """``purchase_log`` as (time, amount), oldest first."""
        log = unpack(self.purchase_log)
        return list(zip(log[0::2], log[1::2], strict=True))

    def purchase_times(self) -> list[float]:
        return unpack(self.purchase_log)[0::2]

    def logged_purchases(self) -> int:
        return len(self.purchase_log) // PURCHASE_BYTES

    def log_purchase(self, at: float, amount: float) -> None:
        self.purchase_log = insort_capped(self.purchase_log, (at, amount), PURCHASE_LOG_CAP)

    def unlog_purchase(self, at: float, amount: float) -> bool:
        """Take the first logged purchase equal to (at, amount) out; False if none is."""
        for n, entry in enumerate(self.purchases()):
            if entry == (at, amount):
                log, i = self.purchase_log, n * PURCHASE_BYTES
                self.purchase_log = log[:i] + log[i + PURCHASE_BYTES:]
                return True
        return False

    def find_order(self, key: bytes) -> int | None:
        """Where the order whose id has digest ``key`` (``key_of``) is in the order log
        (for ``logged_order``), if it is."""
        i = find_key(self.order_log, key, ORDER_BYTES)
        return None if i < 0 else i

    def logged_order(self, i: int) -> tuple[float, float]:
        """Time and amount of the order at ``i`` (see ``find_order``)."""
        at, amount = entry_at(self.order_log, i + KEY_BYTES, 2)
        return at, amount

    def relog_order(self, i: int, at: float, amount: float) -> None:
        log = self.order_log
        self.order_log = log[:i + KEY_BYTES] + pack_entry((at, amount)) + log[i + ORDER_BYTES:]

    def logged_orders(self) -> list[tuple[bytes, float, float]]:
        """The order log as (order id digest, time, amount), oldest first."""
        return [(self.order_log[i:i + KEY_BYTES], *self.logged_order(i))
                for i in range(0, len(self.order_log), ORDER_BYTES)]

    def log_order(self, key: bytes, at: float, amount: float) -> None:
        self.order_log = keep_last(self.order_log, key + pack_entry((at, amount)),
                                   ORDER_LOG_CAP)

    def hold_refund(self, key: bytes, at: float) -> None:
        """Keep a full refund at ``at`` of the order whose id has digest ``key``, which
        has not come yet (the newest HELD_REFUND_CAP are kept)."""
        self.held_refunds = keep_last(self.held_refunds, key + pack_entry((at,)),
                                      HELD_REFUND_CAP)

    def release_refunds(self, key: bytes) -> list[float]:
        """The times of the full refunds held for order ``key``, which are let go."""
        held = self.held_refunds
        if find_key(held, key, HELD_BYTES) < 0:
            return []
        entries = held_entries(held)
        self.held_refunds = b"".join(k + pack_entry((at,)) for k, at in entries if k != key)
        return [at for k, at in entries if k == key]

    def alert_times(self) -> list[float]:
        return unpack(self.alert_log)

    def record_purchase(self, key: bytes | None, at: float, amount: float) -> None:
        """Log a purchase (its order's id digest ``key``, if any) in three logs at once."""
        logs = sections(self.packed)
        if key is not None:
            logs[ORDERS_AT] = keep_last(logs[ORDERS_AT], key + pack_entry((at, amount)),
                                      ORDER_LOG_CAP)
        logs[PURCHASES_AT] = insort_capped(logs[PURCHASES_AT], (at, amount), PURCHASE_LOG_CAP)
        logs[SPEND_AT] = with_day_amount(logs[SPEND_AT], at, amount, SPEND_DAYS_CAP)
        self.packed = with_logs(self.packed, logs)

    def log_alert(self, at: float) -> None:
        self.alert_log = insort_capped(self.alert_log, (at,), ALERT_LOG_CAP)

    def net_spend_90d(self, now: float) -> float:
        """Purchases minus refunds over the 90 days up to ``now`` (day resolution), never
        below zero."""
        first = int(now // 86400.0) - SPEND_WINDOW_DAYS + 1
        last = int(now // 86400.0)
        days = unpack(self.spend_days)
        return max(0.0, sum(days[i + 1] for i in range(0, len(days), 2)
                            if first <= days[i] <= last))

    def spend_by_day(self) -> list[tuple[int, float]]:
        """``spend_days`` as (UTC day number, net spend that day), oldest first."""
        days = unpack(self.spend_days)
        return [(int(days[i]), days[i + 1]) for i in range(0, len(days), 2)]

    def add_spend(self, at: float, amount: float) -> None:
        """Add ``amount`` (negative for a refund) to the day of ``at``."""
        self.spend_days = with_day_amount(self.spend_days, at, amount, SPEND_DAYS_CAP)
